/* The operator HTTP API: libmicrohttpd with a thread per connection, a route
 * table, reads from the store through a reader (http_internal.h: SQLite or
 * PostgreSQL, a read-only connection per request), writes as operator
 * commands through hub_engine_op(). See http.h for the endpoints. */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/proto.h"
#include "http_internal.h"

#define HTTP_BODY_MAX (16 * 1024)
#define HTTP_LIMIT_DEFAULT "100"
#define HTTP_LIMIT_MAX 1000
#define HTTP_OP_TIMEOUT_MS 10000
#define HTTP_RATE_MAX 100000000 /* cents per hour */

struct hub_http {
  struct MHD_Daemon *daemon;
  hub_engine *engine;
  http_reader reader;
  http_events *events; /* the console's live feed; NULL when it did not start */
  int port;
};

/* One request in progress: its body, collected across MHD's calls. */
typedef struct http_request {
  hub_http *server;
  struct MHD_Connection *conn;
  const char *id; /* the {id} segment of the path, or NULL */
  char id_buf[FL_ID_MAX + 2];
  char *body;
  size_t body_len;
  bool body_too_large;
} http_request;

/* A handler answers with a status and a JSON body (owned by the caller). */
typedef unsigned (*http_handler)(http_request *r, const void *arg, cJSON **out);

typedef struct http_route {
  const char *method;
  const char *pattern; /* "*" matches one path segment: the {id} */
  http_handler handler;
  const void *arg;
} http_route;

/* An operator command route: which op, and what to show once it is done. */
typedef struct http_op_route {
  hub_op_kind kind;
  const char *name; /* for the log */
  size_t target;    /* offsetof the hub_op field that gets the {id} */
  const http_view *result;
} http_op_route;

/* ---- responses ---------------------------------------------------------- */

static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, char *body,
                                 const char *type) {
  struct MHD_Response *resp =
      body ? MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE) : NULL;
  if (!resp) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  enum MHD_Result ret = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *json) {
  char *text = json ? cJSON_PrintUnformatted(json) : NULL;
  cJSON_Delete(json);
  return send_body(c, status, text, "application/json");
}

/* Sets *out to {"error": message, "code": token} and returns status. */
static unsigned fail(cJSON **out, unsigned status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static unsigned fail(cJSON **out, unsigned status, int code, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  *out = cJSON_CreateObject();
  cJSON_AddStringToObject(*out, "error", msg);
  cJSON_AddStringToObject(*out, "code", fl_errname(code));
  return status;
}

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

/* ---- reads -------------------------------------------------------------- */

static unsigned open_store(http_request *r, http_read *db, cJSON **out) {
  if (http_read_open(&r->server->reader, db))
    return MHD_HTTP_OK;
  return fail(out, MHD_HTTP_SERVICE_UNAVAILABLE, FL_ERR_UNAVAILABLE,
              "the hub's store is not readable yet");
}

static bool state_name_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 23)
    return false;
  for (; *s; s++)
    if (!isupper((unsigned char)*s) && *s != '_')
      return false;
  return true;
}

unsigned http__view_values(const http_view *view, const char *id, http_arg_fn arg, void *ctx,
                           const char *values[4], cJSON **out) {
  for (int i = 0; i < 4; i++) {
    const char *name = view->params[i];
    values[i] = NULL;
    if (!name)
      continue;
    if (strcmp(name, "id") == 0) {
      values[i] = id;
      continue;
    }
    const char *v = arg(ctx, name);
    if (!v) {
      values[i] = strcmp(name, "limit") == 0 ? HTTP_LIMIT_DEFAULT : NULL;
    } else if (strcmp(name, "limit") == 0) {
      char *end = NULL;
      long n = strtol(v, &end, 10);
      if (*end || n < 1 || n > HTTP_LIMIT_MAX)
        return fail(out, MHD_HTTP_BAD_REQUEST, FL_ERR_INVALID,
                    "limit must be a number from 1 to %d", HTTP_LIMIT_MAX);
      values[i] = v;
    } else if (strcmp(name, "state") == 0 ? !state_name_valid(v) : !fl_id_valid(v)) {
      return fail(out, MHD_HTTP_BAD_REQUEST, FL_ERR_INVALID, "bad value for %s", name);
    } else {
      values[i] = v;
    }
  }
  return MHD_HTTP_OK;
}

/* The query string argument name of the request (ctx), or NULL. */
static const char *query_arg(void *ctx, const char *name) {
  return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, name);
}

/* Fills values[] for view's params from the path id and the query string.
 * Returns MHD_HTTP_OK, or 400 with *out set when a value is malformed. */
static unsigned view_values(http_request *r, const http_view *view, const char *values[4],
                            cJSON **out) {
  return http__view_values(view, r->id, query_arg, r->conn, values, out);
}

/* Runs view; with single, answers its first row or 404 "no <noun> <id>". */
static unsigned query_view(http_request *r, http_read *db, const http_view *view, bool single,
                           cJSON **out) {
  const char *values[4];
  unsigned status = view_values(r, view, values, out);
  if (status != MHD_HTTP_OK)
    return status;
  cJSON *rows = http_query_rows(db, view, values);
  if (!rows)
    return fail(out, MHD_HTTP_INTERNAL_SERVER_ERROR, FL_ERR_DB, "reading the store failed");
  if (!single) {
    *out = rows;
    return MHD_HTTP_OK;
  }
  *out = cJSON_DetachItemFromArray(rows, 0);
  cJSON_Delete(rows);
  if (*out)
    return MHD_HTTP_OK;
  return fail(out, MHD_HTTP_NOT_FOUND, FL_ERR_NOT_FOUND, "no %s %s", view->noun, r->id);
}

static unsigned read_view(http_request *r, const http_view *view, bool single, cJSON **out) {
  http_read db = {0};
  unsigned status = open_store(r, &db, out);
  if (status == MHD_HTTP_OK)
    status = query_view(r, &db, view, single, out);
  http_read_close(&db);
  return status;
}

static unsigned get_list(http_request *r, const void *view, cJSON **out) {
  return read_view(r, view, false, out);
}

static unsigned get_one(http_request *r, const void *view, cJSON **out) {
  return read_view(r, view, true, out);
}

/* A rental or a booking (arg: its view), with its saga steps. */
static unsigned get_with_steps(http_request *r, const void *view, cJSON **out) {
  http_read db = {0};
  unsigned status = open_store(r, &db, out);
  if (status == MHD_HTTP_OK)
    status = query_view(r, &db, view, true, out);
  if (status == MHD_HTTP_OK &&
      !http_query_attach(*out, "saga_steps", &db, &http_view_saga_steps, r->id)) {
    cJSON_Delete(*out);
    status = fail(out, MHD_HTTP_INTERNAL_SERVER_ERROR, FL_ERR_DB, "reading the store failed");
  }
  http_read_close(&db);
  return status;
}

static unsigned get_customer(http_request *r, const void *arg, cJSON **out) {
  http_read db = {0};
  unsigned status = open_store(r, &db, out);
  if (status == MHD_HTTP_OK) {
    int err;
    *out = http_query_customer(&db, r->id, &err);
    if (err == FL_ERR_NOT_FOUND)
      status = fail(out, MHD_HTTP_NOT_FOUND, err, "no customer %s", r->id);
    else if (err != FL_OK)
      status = fail(out, MHD_HTTP_INTERNAL_SERVER_ERROR, err, "reading the store failed");
  }
  http_read_close(&db);
  return status;
}

/* The counters table as one object: {"name": value, ...}. */
static unsigned get_counters(http_request *r, const void *arg, cJSON **out) {
  cJSON *rows = NULL;
  unsigned status = read_view(r, &http_view_counters, false, &rows);
  if (status != MHD_HTTP_OK) {
    *out = rows;
    return status;
  }
  *out = cJSON_CreateObject();
  const cJSON *row;
  cJSON_ArrayForEach(row, rows) {
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(row, "name"));
    const cJSON *value = cJSON_GetObjectItem(row, "value");
    if (name && cJSON_IsNumber(value))
      cJSON_AddNumberToObject(*out, name, value->valuedouble);
  }
  cJSON_Delete(rows);
  return status;
}

static unsigned get_health(http_request *r, const void *arg, cJSON **out) {
  hub_health h;
  memset(&h, 0, sizeof h);
  hub_engine_health(r->server->engine, &h);
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "status", h.ready ? "ok" : "not_ready");
  cJSON_AddBoolToObject(j, "ready", h.ready);
  cJSON_AddBoolToObject(j, "mqtt_connected", h.mqtt_connected);
  cJSON_AddNumberToObject(j, "uptime_s", (double)h.uptime_s);
  cJSON_AddNumberToObject(j, "queue_depth", (double)h.queue_depth);
  cJSON_AddNumberToObject(j, "events_applied", (double)h.events_applied);
  cJSON_AddNumberToObject(j, "duplicates", (double)h.duplicates);
  cJSON_AddNumberToObject(j, "rejected", (double)h.rejected);
  cJSON_AddNumberToObject(j, "batches", (double)h.batches);
  cJSON_AddNumberToObject(j, "shed", (double)h.shed);
  cJSON_AddNumberToObject(j, "payments_pending", (double)h.payments_pending);
  cJSON_AddStringToObject(j, "breaker", h.breaker ? h.breaker : "unknown");
  *out = j;
  return h.ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
}

/* ---- operator commands -------------------------------------------------- */

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
    return fail(out, status_of(code), code, "%s", res.message);
  if (code != FL_OK)
    return fail(out, status_of(code), code, "%s %s: %s", view->noun, r->id, fl_strerror(code));
  unsigned status = read_view(r, view, true, out);
  return status == MHD_HTTP_OK ? ok_status : status;
}

static unsigned post_op(http_request *r, const void *arg, cJSON **out) {
  const http_op_route *route = arg;
  hub_op op;
  memset(&op, 0, sizeof op);
  op.kind = route->kind;
  snprintf(op.actor, sizeof op.actor, "http");
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
    fail(out, status, FL_ERR_INVALID, "the body must be a JSON object");
  else if (!body_text(body, "id", op->vehicle, sizeof op->vehicle) || !fl_id_valid(op->vehicle))
    fail(out, status, FL_ERR_INVALID, "id must be 1 to %d characters of A-Z a-z 0-9 . _ : -",
         FL_ID_MAX);
  else if (!body_text(body, "name", op->name, sizeof op->name))
    fail(out, status, FL_ERR_INVALID, "name must be a text of at most %d bytes", FL_TEXT_MAX);
  else if (!body_text(body, "station", op->station, sizeof op->station) ||
           !fl_id_valid(op->station))
    fail(out, status, FL_ERR_INVALID, "station must be an id (A-Z a-z 0-9 . _ : -)");
  else if (!cJSON_IsNumber(rate) || rate->valuedouble < 1 || rate->valuedouble > HTTP_RATE_MAX ||
           rate->valuedouble != (double)(int64_t)rate->valuedouble)
    fail(out, status, FL_ERR_INVALID, "rate_cents must be a whole number from 1 to %d",
         HTTP_RATE_MAX);
  else {
    op->rate_cents = (int64_t)rate->valuedouble;
    status = MHD_HTTP_OK;
  }
  cJSON_Delete(body);
  return status;
}

static unsigned post_vehicle(http_request *r, const void *arg, cJSON **out) {
  hub_op op;
  unsigned status = http__vehicle_op(r->body, r->body_len, &op, out);
  if (status != MHD_HTTP_OK)
    return status;
  memcpy(r->id_buf, op.vehicle, sizeof op.vehicle);
  r->id = r->id_buf;
  return run_op(r, &op, "register", &http_view_vehicle, MHD_HTTP_CREATED, out);
}

/* POST /v1/read-models/check | /rebuild; arg points at the op kind. Answers
 * {"message": ...}: 200 when equal (or rebuilt), 409 when the read models
 * differ from a rebuild. */
static unsigned post_readmodel(http_request *r, const void *arg, cJSON **out) {
  hub_op op;
  memset(&op, 0, sizeof op);
  op.kind = *(const hub_op_kind *)arg;
  snprintf(op.actor, sizeof op.actor, "http");
  hub_op_result res;
  int code = hub_engine_op(r->server->engine, &op, &res, HTTP_OP_TIMEOUT_MS);
  if (code != FL_OK && code != FL_ERR_CONFLICT)
    return fail(out, status_of(code), code, "%s", res.message);
  *out = cJSON_CreateObject();
  cJSON_AddStringToObject(*out, "message", res.message);
  cJSON_AddBoolToObject(*out, "equal", code == FL_OK);
  return code == FL_OK ? MHD_HTTP_OK : MHD_HTTP_CONFLICT;
}

static const hub_op_kind op_readmodel_check = HUB_OP_READMODEL_CHECK;
static const hub_op_kind op_readmodel_rebuild = HUB_OP_READMODEL_REBUILD;

/* ---- routing ------------------------------------------------------------ */

#define OP_ROUTE(kind, name, field, view)                                                          \
  { kind, name, offsetof(hub_op, field), &view }
static const http_op_route op_retire =
    OP_ROUTE(HUB_OP_VEHICLE_RETIRE, "retire", vehicle, http_view_vehicle);
static const http_op_route op_repair_start =
    OP_ROUTE(HUB_OP_REPAIR_START, "repair-start", repair, http_view_repair);
static const http_op_route op_repair_complete =
    OP_ROUTE(HUB_OP_REPAIR_COMPLETE, "repair-complete", repair, http_view_repair);
static const http_op_route op_retry =
    OP_ROUTE(HUB_OP_SAGA_RETRY, "retry", rental, http_view_rental);
static const http_op_route op_compensate =
    OP_ROUTE(HUB_OP_SAGA_COMPENSATE, "compensate", rental, http_view_rental);

/* A NULL handler answers by itself (arg: an http_raw_route): page, files, stream. */

static const http_route routes[] = {
    {"GET", "/", NULL, &http_page_route},
    {"GET", "/console/*", NULL, &http_page_route},
    {"GET", "/v1/events", NULL, &http_events_route},
    {"GET", "/v1/health", get_health, NULL},
    {"GET", "/v1/vehicles", get_list, &http_view_vehicles},
    {"POST", "/v1/vehicles", post_vehicle, NULL},
    {"GET", "/v1/vehicles/*", get_one, &http_view_vehicle},
    {"POST", "/v1/vehicles/*/retire", post_op, &op_retire},
    {"GET", "/v1/vehicles/*/history", get_list, &http_view_vehicle_history},
    {"GET", "/v1/rentals", get_list, &http_view_rentals},
    {"GET", "/v1/rentals/*", get_with_steps, &http_view_rental},
    {"POST", "/v1/rentals/*/retry", post_op, &op_retry},
    {"POST", "/v1/rentals/*/compensate", post_op, &op_compensate},
    {"GET", "/v1/customers/*", get_customer, NULL},
    {"GET", "/v1/bookings", get_list, &http_view_bookings},
    {"GET", "/v1/bookings/*", get_with_steps, &http_view_booking},
    {"GET", "/v1/sagas", get_list, &http_view_sagas},
    {"GET", "/v1/repairs", get_list, &http_view_repairs},
    {"GET", "/v1/repairs/*", get_one, &http_view_repair},
    {"POST", "/v1/repairs/*/start", post_op, &op_repair_start},
    {"POST", "/v1/repairs/*/complete", post_op, &op_repair_complete},
    {"GET", "/v1/dead-letters", get_list, &http_view_dead_letters},
    {"GET", "/v1/devices", get_list, &http_view_devices},
    {"GET", "/v1/counters", get_counters, NULL},
    {"POST", "/v1/read-models/check", post_readmodel, &op_readmodel_check},
    {"POST", "/v1/read-models/rebuild", post_readmodel, &op_readmodel_rebuild},
};

/* Matches url against pattern; a "*" segment is copied into id (cap bytes),
 * or id is left empty when the segment is too long for it. */
static bool path_match(const char *pattern, const char *url, char *id, size_t cap) {
  while (*pattern && *url) {
    if (*pattern == '*') {
      size_t n = strcspn(url, "/");
      if (n == 0)
        return false;
      size_t kept = n < cap ? n : 0; /* too long: an empty id, refused as a bad id */
      memcpy(id, url, kept);
      id[kept] = '\0';
      url += n;
      pattern++;
    } else if (*pattern++ != *url++) {
      return false;
    }
  }
  return *pattern == '\0' && *url == '\0';
}

/* Finds the route for method and url; sets *status to 404 or 405 if none. */
static const http_route *route_find(const char *method, const char *url, http_request *r,
                                    unsigned *status) {
  *status = MHD_HTTP_NOT_FOUND;
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    if (!path_match(routes[i].pattern, url, r->id_buf, sizeof r->id_buf))
      continue;
    if (strcmp(routes[i].method, method) == 0) {
      r->id = strchr(routes[i].pattern, '*') ? r->id_buf : NULL;
      return &routes[i];
    }
    *status = MHD_HTTP_METHOD_NOT_ALLOWED;
  }
  return NULL;
}

static bool content_is_json(struct MHD_Connection *c) {
  const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  return type && strncasecmp(type, "application/json", 16) == 0 &&
         (type[16] == '\0' || type[16] == ';');
}

static enum MHD_Result dispatch(http_request *r, const char *method, const char *url) {
  cJSON *out = NULL;
  unsigned status;
  const http_route *route = route_find(method, url, r, &status);
  if (!route)
    fail(&out, status, status == MHD_HTTP_NOT_FOUND ? FL_ERR_NOT_FOUND : FL_ERR_INVALID,
         status == MHD_HTTP_NOT_FOUND ? "no such endpoint: %s" : "method not allowed on %s", url);
  else if (!route->handler)
    return ((const http_raw_route *)route->arg)->serve(r->conn, url, r->server->events);
  else if (r->id && !fl_id_valid(r->id))
    status = fail(&out, MHD_HTTP_BAD_REQUEST, FL_ERR_INVALID, "bad id in the path");
  else if (strcmp(method, "POST") == 0 && !content_is_json(r->conn))
    status = fail(&out, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, FL_ERR_INVALID,
                  "POST needs Content-Type: application/json");
  else if (r->body_too_large)
    status = fail(&out, MHD_HTTP_CONTENT_TOO_LARGE, FL_ERR_TOO_LARGE,
                  "the body is larger than %d bytes", HTTP_BODY_MAX);
  else
    status = route->handler(r, route->arg, &out);
  return send_json(r->conn, status, out);
}

/* MHD calls this first with the headers, then once per piece of the body,
 * then once more with *upload_size 0: that last call answers. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  http_request *r = *con_cls;
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r)
      return MHD_NO;
    r->server = cls;
    r->conn = conn;
    *con_cls = r;
    const char *len =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (len && strtoull(len, NULL, 10) > HTTP_BODY_MAX) {
      cJSON *out = NULL;
      fail(&out, MHD_HTTP_CONTENT_TOO_LARGE, FL_ERR_TOO_LARGE, "the body is larger than %d bytes",
           HTTP_BODY_MAX);
      return send_json(conn, MHD_HTTP_CONTENT_TOO_LARGE, out);
    }
    return MHD_YES;
  }
  if (*upload_size > 0) {
    if (r->body_too_large || r->body_len + *upload_size > HTTP_BODY_MAX) {
      r->body_too_large = true; /* drain the rest, answer 413 at the end */
    } else {
      char *grown = realloc(r->body, r->body_len + *upload_size + 1);
      if (!grown)
        return MHD_NO;
      memcpy(grown + r->body_len, upload, *upload_size);
      r->body = grown;
      r->body_len += *upload_size;
      r->body[r->body_len] = '\0';
    }
    *upload_size = 0;
    return MHD_YES;
  }
  return dispatch(r, method, url);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
  http_request *r = *con_cls;
  if (r)
    free(r->body);
  free(r);
  *con_cls = NULL;
}

/* ---- server ------------------------------------------------------------- */

int hub_http_start(const hub_config *cfg, hub_engine *engine, hub_http **out) {
  *out = NULL;
  if (cfg->http_port == 0)
    return FL_OK;
  struct sockaddr_in in4;
  struct sockaddr_in6 in6;
  memset(&in4, 0, sizeof in4);
  memset(&in6, 0, sizeof in6);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
  const struct sockaddr *addr = (const struct sockaddr *)&in4;
  if (inet_pton(AF_INET, cfg->http_bind, &in4.sin_addr) == 1) {
    in4.sin_family = AF_INET;
    in4.sin_port = htons((uint16_t)cfg->http_port);
  } else if (inet_pton(AF_INET6, cfg->http_bind, &in6.sin6_addr) == 1) {
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons((uint16_t)cfg->http_port);
    addr = (const struct sockaddr *)&in6;
    flags |= MHD_USE_IPv6;
  } else {
    fl_error("http bind '%s': not a numeric IPv4 or IPv6 address", cfg->http_bind);
    return FL_ERR_CONFIG;
  }
  hub_http *h = calloc(1, sizeof *h);
  if (!h)
    return FL_ERR_NOMEM;
  h->engine = engine;
  int rc;
  if (strcmp(cfg->store_backend, "postgresql") == 0) {
    rc = http_reader_pg(cfg->store_url, &h->reader);
  } else {
    char path[300];
    snprintf(path, sizeof path, "%s/hub.db", cfg->state_dir);
    rc = http_reader_sqlite(path, &h->reader);
  }
  if (rc != FL_OK) {
    free(h);
    return rc;
  }
  if (http_events_start(cfg, &h->events) != FL_OK)
    fl_warn("http: no live feed for the console (GET /v1/events answers 503)");
  h->daemon = MHD_start_daemon(flags, (uint16_t)cfg->http_port, NULL, NULL, on_request, h,
                               MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_NOTIFY_COMPLETED,
                               on_completed, h, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
  if (!h->daemon) {
    fl_error("http: cannot serve on %s port %d", cfg->http_bind, cfg->http_port);
    http_events_close(h->events);
    http_events_free(h->events);
    http_reader_close(&h->reader);
    free(h);
    return FL_ERR_IO;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
  h->port = info && info->port ? info->port : cfg->http_port;
  fl_info("http operator API on %s port %d", cfg->http_bind, h->port);
  *out = h;
  return FL_OK;
}

int hub_http_port(const hub_http *h) { return h ? h->port : 0; }

void hub_http_stop(hub_http *h) {
  if (!h)
    return;
  http_events_close(h->events); /* ends the streams, or MHD_stop_daemon would wait for them */
  MHD_stop_daemon(h->daemon);
  http_events_free(h->events);
  http_reader_close(&h->reader);
  free(h);
}
