#include "domain.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "booking.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "publish.h"
#include "query.h"
#include "rental.h"
#include "repair.h"
#include "saga.h"
#include "vehicle.h"

static const saga_owner_kind *const owner_kinds[] = {&rental_saga_owner, &booking_saga_owner};
static const saga_owners owners = {owner_kinds, sizeof owner_kinds / sizeof owner_kinds[0]};

/* A vehicle reports how a command went: only what did not apply is news. */
static int on_command_result(hub_txn *t, const hub_origin *o, const fl_msg *m) {
  const fl_command_result *c = &m->body.command_result;
  fl_info("command device=%s seq=%llu status=%s %s", o->device, (unsigned long long)c->cmd_seq,
          fl_cmd_status_name(c->status), c->reason);
  if (c->status == FL_CMD_APPLIED) return FL_OK;
  char text[FL_TEXT_MAX + 1];
  snprintf(text, sizeof text, "command %llu %s: %.80s", (unsigned long long)c->cmd_seq,
           fl_cmd_status_name(c->status), c->reason);
  return publish_alert(t, o->device, "command_not_applied", text);
}

int domain_on_event(hub_txn *t, const hub_origin *o, const fl_msg *m) {
  switch (m->env.type) {
  case FL_MSG_RENTAL_REQUEST: return rental_on_request(t, o, m);
  case FL_MSG_RENTAL_CANCEL: return rental_on_cancel(t, o, m);
  case FL_MSG_RENTAL_RETURN: return rental_on_return(t, o, m);
  case FL_MSG_LOCK: return rental_on_lock(t, o, m);
  case FL_MSG_TELEMETRY: return vehicle_on_telemetry(t, o, m);
  case FL_MSG_FAULT: return repair_on_fault(t, o, m);
  case FL_MSG_BOOKING_REQUEST: return booking_on_request(t, o, m);
  case FL_MSG_BOOKING_CANCEL: return booking_on_cancel(t, o, m);
  case FL_MSG_COMMAND_RESULT: return on_command_result(t, o, m);
  default: return FL_ERR_INVALID;
  }
}

int domain_on_presence(hub_txn *t, const char *device) { return vehicle_on_presence(t, device); }

int domain_on_query(hub_txn *t, const hub_origin *o, const fl_msg *m) {
  return query_answer(t, o, m);
}

int domain_on_payment(hub_txn *t, const pay_result *res) { return saga_on_result(t, &owners, res); }

int domain_resume(hub_txn *t, step_status status) { return saga_resume(t, &owners, status); }

int domain_batch_end(hub_txn *t) {
  int rc = publish_stations(t);
  if (rc == FL_OK) rc = publish_notices(t);
  return rc == FL_OK ? effects_persist(t->fx, t->store, t->now_ms) : rc;
}

int domain_tick(hub_txn *t) {
  int rc = saga_resume(t, &owners, STEP_RETRY);
  if (rc == FL_OK) rc = booking_expire_due(t);
  if (rc == FL_OK) rc = rental_overdue_alerts(t);
  return rc;
}

static const char *op_name(hub_op_kind k) {
  static const char *const names[] = {
      [HUB_OP_VEHICLE_REGISTER] = "vehicle_register", [HUB_OP_VEHICLE_RETIRE] = "vehicle_retire",
      [HUB_OP_REPAIR_START] = "repair_start",         [HUB_OP_REPAIR_COMPLETE] = "repair_complete",
      [HUB_OP_SAGA_RETRY] = "saga_retry",             [HUB_OP_SAGA_COMPENSATE] = "saga_compensate",
      [HUB_OP_READMODEL_CHECK] = "readmodel_check",   [HUB_OP_READMODEL_REBUILD] = "readmodel_rebuild",
      [HUB_OP_VEHICLE_EDIT] = "vehicle_edit",         [HUB_OP_REPAIR_OPEN] = "repair_open",
      [HUB_OP_BOOKING_CANCEL] = "booking_cancel",
  };
  return names[k];
}

/* Appends the command to the event log (device "op", its own sequence) as JSON. */
static int log_op(hub_txn *t, const hub_op *op) {
  uint64_t seq;
  int rc = hub_store_next_id(t->store, "op", &seq);
  if (rc != FL_OK) return rc;
  cJSON *j = cJSON_CreateObject();
  char *json = NULL;
  if (j && cJSON_AddStringToObject(j, "op", op_name(op->kind)) &&
      cJSON_AddStringToObject(j, "vehicle", op->vehicle) &&
      cJSON_AddStringToObject(j, "name", op->name) &&
      cJSON_AddStringToObject(j, "station", op->station) &&
      cJSON_AddNumberToObject(j, "rate_cents", (double)op->rate_cents) &&
      cJSON_AddStringToObject(j, "repair", op->repair) &&
      cJSON_AddStringToObject(j, "rental", op->rental) &&
      cJSON_AddStringToObject(j, "booking", op->booking) &&
      cJSON_AddStringToObject(j, "text", op->text) &&
      cJSON_AddStringToObject(j, "actor", op->actor))
    json = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  if (!json) return FL_ERR_NOMEM;
  rc = hub_store_event_append(t->store, "op", seq, op_name(op->kind), NULL, t->now_ms, t->now_ms,
                              NULL, (const uint8_t *)json, strlen(json));
  free(json);
  return rc;
}

/* Checks the read models against a rebuild from the change log, or rebuilds them. */
static int readmodel_op(hub_txn *t, const hub_op *op, hub_op_result *res) {
  uint64_t n = 0;
  char where[FL_TEXT_MAX + 1];
  if (op->kind == HUB_OP_READMODEL_REBUILD) {
    res->code = hub_store_readmodel_rebuild(t->store, &n);
    snprintf(res->message, sizeof res->message, "read models rebuilt from %llu changes",
             (unsigned long long)n);
  } else {
    res->code = hub_store_readmodel_check(t->store, &n, where, sizeof where);
    if (res->code == FL_OK && n > 0) res->code = FL_ERR_CONFLICT;
    snprintf(res->message, sizeof res->message, "%s",
             n ? where : "read models equal a rebuild from the change log");
  }
  return res->code;
}

int domain_op(hub_txn *t, const hub_op *op, hub_op_result *res) {
  char *msg = res->message;
  size_t cap = sizeof res->message;
  int rc = FL_OK;
  msg[0] = '\0';
  switch (op->kind) {
  case HUB_OP_VEHICLE_REGISTER:
  case HUB_OP_VEHICLE_RETIRE:
  case HUB_OP_REPAIR_START:
  case HUB_OP_REPAIR_COMPLETE:
  case HUB_OP_VEHICLE_EDIT:
  case HUB_OP_REPAIR_OPEN:
  case HUB_OP_BOOKING_CANCEL:
  case HUB_OP_SAGA_RETRY:
  case HUB_OP_SAGA_COMPENSATE:
    rc = log_op(t, op); /* rolled back with the command if it is refused */
    break;
  default:
    break;
  }
  if (rc == FL_OK) {
    switch (op->kind) {
    case HUB_OP_VEHICLE_REGISTER:
      rc = vehicle_register(t, op->vehicle, op->name, op->station, op->rate_cents, msg, cap);
      break;
    case HUB_OP_VEHICLE_RETIRE: rc = vehicle_retire(t, op->vehicle, msg, cap); break;
    case HUB_OP_REPAIR_START: rc = repair_start(t, op->repair, msg, cap); break;
    case HUB_OP_REPAIR_COMPLETE: rc = repair_complete(t, op->repair, msg, cap); break;
    case HUB_OP_SAGA_RETRY: rc = saga_retry(t, &owners, op->rental, msg, cap); break;
    case HUB_OP_SAGA_COMPENSATE: rc = rental_compensate(t, op->rental, msg, cap); break;
    case HUB_OP_READMODEL_CHECK:
    case HUB_OP_READMODEL_REBUILD: rc = readmodel_op(t, op, res); break;
    case HUB_OP_VEHICLE_EDIT:
      rc = vehicle_edit(t, op->vehicle, op->fields & HUB_OP_FIELD_NAME ? op->name : NULL,
                        op->fields & HUB_OP_FIELD_RATE ? op->rate_cents : -1,
                        op->fields & HUB_OP_FIELD_STATION ? op->station : NULL, msg, cap);
      break;
    case HUB_OP_REPAIR_OPEN: rc = repair_open(t, op->vehicle, op->text, msg, cap); break;
    case HUB_OP_BOOKING_CANCEL: rc = booking_cancel_by_operator(t, op->booking, msg, cap); break;
    default: rc = FL_ERR_INVALID; break;
    }
  }
  if (hub_store_failed(rc) || !msg[0]) snprintf(msg, cap, "%s", fl_strerror(rc));
  if (rc == FL_OK || rc == FL_ERR_CONFLICT) fl_info("op=%s %s", op_name(op->kind), msg);
  return res->code = rc;
}
