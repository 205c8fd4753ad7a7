/* The operator API's writes: each route turns its request (and body) into
 * an operator command, runs it on the engine (hub_engine_op) and answers
 * with the entity it changed, as its GET shows it. The body parsers,
 * http__*_op, are exposed for tests/fuzz (http_internal.h). */
#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/proto.h"
#include "http_internal.h"

#define HTTP_OP_TIMEOUT_MS 10000
#define HTTP_RATE_MAX 100000000 /* cents per hour */

static unsigned status_of(int code) {
  switch (code) {
  case FL_OK: return MHD_HTTP_OK;
  case FL_ERR_NOT_FOUND: return MHD_HTTP_NOT_FOUND;
  case FL_ERR_CONFLICT:
  case FL_ERR_STATE: return MHD_HTTP_CONFLICT;
  case FL_ERR_INVALID:
  case FL_ERR_BAD_VALUE: return MHD_HTTP_BAD_REQUEST;
  case FL_ERR_TIMEOUT: return MHD_HTTP_GATEWAY_TIMEOUT;
  case FL_ERR_UNAVAILABLE:
  case FL_ERR_SHUTDOWN:
  case FL_ERR_FULL: return MHD_HTTP_SERVICE_UNAVAILABLE;
  default: return MHD_HTTP_INTERNAL_SERVER_ERROR;
  }
}

/* Runs op on the engine; on success answers with the entity of view (whose
 * {id} is r->id) and status ok_status. */
static unsigned run_op(http_request *r, const hub_op *op, const char *name, const http_view *view,
                       unsigned ok_status, cJSON **out) {
  hub_op_result res;
  memset(&res, 0, sizeof res);
  int code = hub_engine_op(r->server->engine, op, &res, HTTP_OP_TIMEOUT_MS);
  fl_info("http op=%s id=%s result=%s%s%s%s", name, r->id, fl_errname(code),
          res.message[0] ? " message=\"" : "", res.message, res.message[0] ? "\"" : "");
  if (code != FL_OK && res.message[0])
    return http__fail(out, status_of(code), code, "%s", res.message);
  if (code != FL_OK)
    return http__fail(out, status_of(code), code, "%s %s: %s", view->noun, r->id, fl_strerror(code));
  unsigned status = view == &http_view_rental || view == &http_view_booking
                        ? http__get_with_steps(r, view, out)
                        : http__read_view(r, view, true, out);
  return status == MHD_HTTP_OK ? ok_status : status;
}

/* Who asks, for the engine's event log: the token's name, or "http". */
static void op_actor(const http_request *r, hub_op *op) {
  snprintf(op->actor, sizeof op->actor, "%s", r->who ? r->who->name : "http");
}

unsigned http__post_op(http_request *r, const void *arg, cJSON **out) {
  const http_op_route *route = arg;
  hub_op op;
  memset(&op, 0, sizeof op);
  op.kind = route->kind;
  op_actor(r, &op);
  memcpy((char *)&op + route->target, r->id, strlen(r->id) + 1); /* valid id: fits */
  return run_op(r, &op, route->name, route->result, MHD_HTTP_OK, out);
}

/* Copies the string member key of body into dst (cap bytes); false when it is
 * missing, not a string, too long, or holds a control character. */
static bool body_text(const cJSON *body, const char *key, char *dst, size_t cap) {
  const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, key));
  if (!s || strlen(s) >= cap)
    return false;
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      return false;
  memcpy(dst, s, strlen(s) + 1);
  return true;
}

unsigned http__vehicle_op(const char *json, size_t len, hub_op *op, cJSON **out) {
  memset(op, 0, sizeof *op);
  op->kind = HUB_OP_VEHICLE_REGISTER;
  snprintf(op->actor, sizeof op->actor, "http");
  cJSON *body = cJSON_ParseWithLength(json ? json : "", len);
  const cJSON *rate = cJSON_GetObjectItemCaseSensitive(body, "rate_cents");
  unsigned status = MHD_HTTP_BAD_REQUEST;
  if (!cJSON_IsObject(body))
    http__fail(out, status, FL_ERR_INVALID, "the body must be a JSON object");
  else if (!body_text(body, "id", op->vehicle, sizeof op->vehicle) || !fl_id_valid(op->vehicle))
    http__fail(out, status, FL_ERR_INVALID, "id must be 1 to %d characters of A-Z a-z 0-9 . _ : -",
               FL_ID_MAX);
  else if (!body_text(body, "name", op->name, sizeof op->name))
    http__fail(out, status, FL_ERR_INVALID, "name must be a text of at most %d bytes", FL_TEXT_MAX);
  else if (!body_text(body, "station", op->station, sizeof op->station) ||
           !fl_id_valid(op->station))
    http__fail(out, status, FL_ERR_INVALID, "station must be an id (A-Z a-z 0-9 . _ : -)");
  else if (!cJSON_IsNumber(rate) || rate->valuedouble < 1 || rate->valuedouble > HTTP_RATE_MAX ||
           rate->valuedouble != (double)(int64_t)rate->valuedouble)
    http__fail(out, status, FL_ERR_INVALID, "rate_cents must be a whole number from 1 to %d",
               HTTP_RATE_MAX);
  else {
    op->rate_cents = (int64_t)rate->valuedouble;
    status = MHD_HTTP_OK;
  }
  cJSON_Delete(body);
  return status;
}

unsigned http__post_vehicle(http_request *r, const void *arg, cJSON **out) {
  hub_op op;
  unsigned status = http__vehicle_op(r->body, r->body_len, &op, out);
  if (status != MHD_HTTP_OK)
    return status;
  op_actor(r, &op);
  memcpy(r->id_buf, op.vehicle, sizeof op.vehicle);
  r->id = r->id_buf;
  return run_op(r, &op, "register", &http_view_vehicle, MHD_HTTP_CREATED, out);
}

unsigned http__vehicle_edit_op(const char *json, size_t len, const char *vehicle, hub_op *op,
                               cJSON **out) {
  memset(op, 0, sizeof *op);
  op->kind = HUB_OP_VEHICLE_EDIT;
  snprintf(op->actor, sizeof op->actor, "http");
  snprintf(op->vehicle, sizeof op->vehicle, "%s", vehicle);
  cJSON *body = cJSON_ParseWithLength(json ? json : "", len);
  unsigned status = MHD_HTTP_BAD_REQUEST;
  const cJSON *m;
  if (!cJSON_IsObject(body)) {
    http__fail(out, status, FL_ERR_INVALID, "the body must be a JSON object");
    goto out;
  }
  cJSON_ArrayForEach(m, body) {
    if (strcmp(m->string, "name") == 0) {
      op->fields |= HUB_OP_FIELD_NAME;
      if (!body_text(body, "name", op->name, sizeof op->name) || !op->name[0]) {
        http__fail(out, status, FL_ERR_INVALID, "name must be a text of 1 to %d bytes", FL_TEXT_MAX);
        goto out;
      }
    } else if (strcmp(m->string, "station") == 0) {
      op->fields |= HUB_OP_FIELD_STATION;
      if (!body_text(body, "station", op->station, sizeof op->station) ||
          !fl_id_valid(op->station)) {
        http__fail(out, status, FL_ERR_INVALID, "station must be an id (A-Z a-z 0-9 . _ : -)");
        goto out;
      }
    } else if (strcmp(m->string, "rate_cents") == 0) {
      op->fields |= HUB_OP_FIELD_RATE;
      if (!cJSON_IsNumber(m) || m->valuedouble < 1 || m->valuedouble > HTTP_RATE_MAX ||
          m->valuedouble != (double)(int64_t)m->valuedouble) {
        http__fail(out, status, FL_ERR_INVALID, "rate_cents must be a whole number from 1 to %d",
                   HTTP_RATE_MAX);
        goto out;
      }
      op->rate_cents = (int64_t)m->valuedouble;
    } else {
      http__fail(out, status, FL_ERR_INVALID, "unknown member %.64s: a vehicle's name, station and "
                 "rate_cents may be changed", m->string);
      goto out;
    }
  }
  if (op->fields == 0)
    http__fail(out, status, FL_ERR_INVALID, "nothing to change: give name, station or rate_cents");
  else
    status = MHD_HTTP_OK;
out:
  cJSON_Delete(body);
  return status;
}

unsigned http__patch_vehicle(http_request *r, const void *arg, cJSON **out) {
  hub_op op;
  unsigned status = http__vehicle_edit_op(r->body, r->body_len, r->id, &op, out);
  if (status != MHD_HTTP_OK)
    return status;
  op_actor(r, &op);
  return run_op(r, &op, "edit", &http_view_vehicle, MHD_HTTP_OK, out);
}

unsigned http__repair_open_op(const char *json, size_t len, const char *vehicle, hub_op *op,
                              cJSON **out) {
  memset(op, 0, sizeof *op);
  op->kind = HUB_OP_REPAIR_OPEN;
  snprintf(op->actor, sizeof op->actor, "http");
  snprintf(op->vehicle, sizeof op->vehicle, "%s", vehicle);
  cJSON *body = cJSON_ParseWithLength(json ? json : "", len);
  unsigned status = MHD_HTTP_BAD_REQUEST;
  if (!cJSON_IsObject(body))
    http__fail(out, status, FL_ERR_INVALID, "the body must be a JSON object");
  else if (cJSON_GetArraySize(body) != 1 || !body_text(body, "text", op->text, sizeof op->text) ||
           !op->text[0])
    http__fail(out, status, FL_ERR_INVALID,
               "the body must be {\"text\": the damage, 1 to %d bytes without control characters}",
               FL_TEXT_MAX);
  else
    status = MHD_HTTP_OK;
  cJSON_Delete(body);
  return status;
}

/* POST /v1/vehicles/{id}/repairs: answers 201 with the repair the engine
 * opened (its id is the second word of the engine's message). */
unsigned http__post_repair(http_request *r, const void *arg, cJSON **out) {
  hub_op op;
  unsigned status = http__repair_open_op(r->body, r->body_len, r->id, &op, out);
  if (status != MHD_HTTP_OK)
    return status;
  op_actor(r, &op);
  hub_op_result res;
  memset(&res, 0, sizeof res);
  int code = hub_engine_op(r->server->engine, &op, &res, HTTP_OP_TIMEOUT_MS);
  fl_info("http op=repair-open id=%s result=%s message=\"%s\"", r->id, fl_errname(code),
          res.message);
  if (code != FL_OK)
    return http__fail(out, status_of(code), code, "%s", res.message[0] ? res.message : fl_strerror(code));
  char repair[FL_ID_MAX + 1] = "";
  if (sscanf(res.message, "repair %64s", repair) != 1 || !fl_id_valid(repair)) {
    *out = cJSON_CreateObject();
    cJSON_AddStringToObject(*out, "message", res.message);
    return MHD_HTTP_CREATED;
  }
  memcpy(r->id_buf, repair, sizeof repair);
  r->id = r->id_buf;
  status = http__read_view(r, &http_view_repair, true, out);
  return status == MHD_HTTP_OK ? MHD_HTTP_CREATED : status;
}

/* POST /v1/read-models/check | /rebuild; arg points at the op kind. Answers
 * {"message": ...}: 200 when equal (or rebuilt), 409 when the read models
 * differ from a rebuild. */
unsigned http__post_readmodel(http_request *r, const void *arg, cJSON **out) {
  hub_op op;
  memset(&op, 0, sizeof op);
  op.kind = *(const hub_op_kind *)arg;
  op_actor(r, &op);
  hub_op_result res;
  int code = hub_engine_op(r->server->engine, &op, &res, HTTP_OP_TIMEOUT_MS);
  if (code != FL_OK && code != FL_ERR_CONFLICT)
    return http__fail(out, status_of(code), code, "%s", res.message);
  *out = cJSON_CreateObject();
  cJSON_AddStringToObject(*out, "message", res.message);
  cJSON_AddBoolToObject(*out, "equal", code == FL_OK);
  return code == FL_OK ? MHD_HTTP_OK : MHD_HTTP_CONFLICT;
}
