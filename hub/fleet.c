#include "fleet.h"

#include <stdio.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "rental.h"

#define copy_str(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

/* Fills res and returns its code. */
static int op_result(hub_op_result *res, int code, const char *message) {
  res->code = code;
  copy_str(res->message, message);
  return code;
}

int fleet_set_vehicle_state(hub_engine *e, hub_vehicle *v, const char *state, const char *rental,
                            int64_t now_ms) {
  char from[24];
  copy_str(from, v->state);
  copy_str(v->state, state);
  if (rental) copy_str(v->rental, rental);
  v->updated_ms = now_ms;
  int rc = hub_store_vehicle_put(hub_engine_store(e), v);
  if (rc == FL_OK) rc = hub_emit_vehicle(e, v, from, NULL);
  if (rc == FL_OK && strcmp(from, state) != 0)
    fl_info("vehicle=%s state=%s%s%s", v->id, state, v->rental[0] ? " rental=" : "", v->rental);
  return rc;
}

int fleet_release_vehicle(hub_engine *e, hub_vehicle *v, int64_t now_ms) {
  bool repair = v->repair_due;
  v->repair_due = false;
  return fleet_set_vehicle_state(e, v, repair ? "REPAIR_REQUESTED" : "AVAILABLE", "", now_ms);
}

/* Loads the vehicle that is the sending device; FL_ERR_NOT_FOUND when the
 * device is not a registered vehicle (its event is logged, with no effect). */
static int sender_vehicle(hub_engine *e, const hub_origin *o, hub_vehicle *v) {
  int rc = hub_store_vehicle_get(hub_engine_store(e), o->device, v);
  if (rc == FL_ERR_NOT_FOUND) {
    fl_debug("device=%s is not a registered vehicle: event has no effect", o->device);
    hub_store_count(hub_engine_store(e), "events.unregistered_vehicle", 1);
  }
  return rc;
}

int fleet_on_telemetry(hub_engine *e, const hub_origin *o, const fl_msg *m) {
  hub_vehicle v;
  int rc = sender_vehicle(e, o, &v);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_OK : rc;
  const fl_telemetry *t = &m->body.telemetry;
  v.energy_pct = (int)t->energy_pct;
  v.lat = t->lat;
  v.lon = t->lon;
  v.has_position = true;
  v.odometer_m = (int64_t)t->odometer_m;
  v.updated_ms = o->now_ms;
  /* Readings are stored every time but published (and recorded in the change
   * log, hence the read model) at most once per period per vehicle: a
   * dashboard needs the position, not every sample. */
  int64_t period = hub_engine_config(e)->telemetry_publish_ms;
  if (!hub_throttle(e, v.id, o->now_ms, period)) return hub_store_vehicle_reading(hub_engine_store(e), &v);
  rc = hub_store_vehicle_put(hub_engine_store(e), &v);
  return rc == FL_OK ? hub_emit_vehicle(e, &v, v.state, NULL) : rc;
}

int fleet_on_lock(hub_engine *e, const hub_origin *o, const fl_msg *m) {
  hub_vehicle v;
  int rc = sender_vehicle(e, o, &v);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_OK : rc;
  const fl_lock *l = &m->body.lock;
  if (l->refused) {
    char text[FL_TEXT_MAX + 1];
    snprintf(text, sizeof text, "unlock refused for %s: %s%s", l->customer[0] ? l->customer : "?",
             l->reason, l->offline ? " (offline)" : "");
    return hub_emit_alert(e, v.id, "unlock_refused", text);
  }
  if (l->locked) return FL_OK;
  /* An unlock starts the rental it was for: no cancel after that. */
  const char *rental = m->env.corr[0] ? m->env.corr : v.rental;
  return rental[0] ? rental_mark_started(e, rental, o->now_ms) : FL_OK;
}

/* Appends the codes of f to a comma-separated list in dst (cap bytes). */
static void dtcs_append(char *dst, size_t cap, const fl_fault *f) {
  for (uint32_t i = 0; i < f->n_dtcs; i++) {
    if (strstr(dst, f->dtcs[i])) continue;
    size_t len = strlen(dst);
    snprintf(dst + len, cap - len, "%s%s", len ? "," : "", f->dtcs[i]);
  }
}

int fleet_on_fault(hub_engine *e, const hub_origin *o, const fl_msg *m) {
  hub_store *st = hub_engine_store(e);
  hub_vehicle v;
  int rc = sender_vehicle(e, o, &v);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_OK : rc;
  const fl_fault *f = &m->body.fault;
  hub_repair r;
  rc = hub_store_repair_open_for(st, v.id, &r);
  if (rc == FL_OK) { /* one open ticket per vehicle collects every code */
    dtcs_append(r.dtcs, sizeof r.dtcs, f);
    r.updated_ms = o->now_ms;
    rc = hub_store_repair_put(st, &r);
    return rc == FL_OK ? hub_emit_repair(e, &r, r.state) : rc;
  }
  if (rc != FL_ERR_NOT_FOUND) return rc;
  uint64_t n;
  rc = hub_store_next_id(st, "repair", &n);
  if (rc != FL_OK) return rc;
  memset(&r, 0, sizeof r);
  snprintf(r.id, sizeof r.id, "RP-%llu", (unsigned long long)n);
  copy_str(r.vehicle, v.id);
  copy_str(r.state, "REQUESTED");
  dtcs_append(r.dtcs, sizeof r.dtcs, f);
  copy_str(r.severity, fl_severity_name(f->severity) ? fl_severity_name(f->severity) : "info");
  copy_str(r.text, f->text);
  r.opened_ms = r.updated_ms = o->now_ms;
  rc = hub_store_repair_put(st, &r);
  if (rc == FL_OK) rc = hub_emit_repair(e, &r, "");
  if (rc != FL_OK) return rc;
  fl_info("repair=%s vehicle=%s dtcs=%s severity=%s", r.id, v.id, r.dtcs, r.severity);
  if (strcmp(v.state, "AVAILABLE") == 0)
    return fleet_set_vehicle_state(e, &v, "REPAIR_REQUESTED", NULL, o->now_ms);
  if (strcmp(v.state, "RENTED") == 0 || strcmp(v.state, "RESERVED") == 0) {
    char text[FL_TEXT_MAX + 1];
    snprintf(text, sizeof text, "fault %s on rented vehicle %s: repair %s starts at return",
             r.dtcs, v.id, r.id);
    v.repair_due = true;
    rc = hub_store_vehicle_put(st, &v);
    if (rc == FL_OK) rc = hub_emit_alert(e, v.id, "fault_while_rented", text);
  }
  return rc;
}

int fleet_op_register(hub_engine *e, const hub_op *op, hub_op_result *res, int64_t now_ms) {
  char msg[FL_TEXT_MAX + 1];
  if (!fl_id_valid(op->vehicle) || op->rate_cents < 0)
    return op_result(res, FL_ERR_INVALID, "a vehicle needs a valid id and a rate >= 0");
  hub_vehicle v;
  int rc = hub_store_vehicle_get(hub_engine_store(e), op->vehicle, &v);
  if (rc == FL_OK) {
    snprintf(msg, sizeof msg, "vehicle %s is already registered", op->vehicle);
    return op_result(res, FL_ERR_CONFLICT, msg);
  }
  if (rc != FL_ERR_NOT_FOUND) return op_result(res, rc, "store error");
  memset(&v, 0, sizeof v);
  copy_str(v.id, op->vehicle);
  copy_str(v.name, op->name);
  copy_str(v.station, op->station);
  v.rate_cents = op->rate_cents;
  v.energy_pct = -1;
  rc = hub_log_op(e, op, now_ms);
  if (rc == FL_OK) rc = fleet_set_vehicle_state(e, &v, "AVAILABLE", "", now_ms);
  snprintf(msg, sizeof msg, "vehicle %s registered, AVAILABLE", v.id);
  return op_result(res, rc, rc == FL_OK ? msg : "store error");
}

int fleet_op_retire(hub_engine *e, const hub_op *op, hub_op_result *res, int64_t now_ms) {
  char msg[FL_TEXT_MAX + 1];
  hub_vehicle v;
  int rc = hub_store_vehicle_get(hub_engine_store(e), op->vehicle, &v);
  if (rc != FL_OK) {
    snprintf(msg, sizeof msg, "no vehicle %s", op->vehicle);
    return op_result(res, rc, msg);
  }
  if (v.rental[0]) {
    snprintf(msg, sizeof msg, "vehicle %s is %s for rental %s: retire it after the return", v.id,
             v.state, v.rental);
    return op_result(res, FL_ERR_STATE, msg);
  }
  rc = hub_log_op(e, op, now_ms);
  if (rc == FL_OK) rc = fleet_set_vehicle_state(e, &v, "RETIRED", "", now_ms);
  snprintf(msg, sizeof msg, "vehicle %s retired", v.id);
  return op_result(res, rc, rc == FL_OK ? msg : "store error");
}

/* Moves repair op->repair from state `from` to `to`, and its vehicle from
 * vfrom to vto (when the vehicle is in vfrom). */
static int repair_step(hub_engine *e, const hub_op *op, hub_op_result *res, int64_t now_ms,
                       const char *from, const char *to, const char *vfrom, const char *vto) {
  hub_store *st = hub_engine_store(e);
  char msg[FL_TEXT_MAX + 1];
  hub_repair r;
  hub_vehicle v;
  int rc = hub_store_repair_get(st, op->repair, &r);
  if (rc != FL_OK) {
    snprintf(msg, sizeof msg, "no repair %s", op->repair);
    return op_result(res, rc, msg);
  }
  if (strcmp(r.state, from) != 0) {
    snprintf(msg, sizeof msg, "repair %s is %s, not %s", r.id, r.state, from);
    return op_result(res, FL_ERR_STATE, msg);
  }
  rc = hub_store_vehicle_get(st, r.vehicle, &v);
  if (rc != FL_OK) return op_result(res, rc, "vehicle of the repair is gone");
  if (strcmp(v.state, vfrom) != 0 && strcmp(v.state, vto) != 0) {
    snprintf(msg, sizeof msg, "vehicle %s is %s: the repair waits until it is back", v.id, v.state);
    return op_result(res, FL_ERR_STATE, msg);
  }
  copy_str(r.state, to);
  r.updated_ms = now_ms;
  rc = hub_log_op(e, op, now_ms);
  if (rc == FL_OK) rc = hub_store_repair_put(st, &r);
  if (rc == FL_OK) rc = hub_emit_repair(e, &r, from);
  if (rc == FL_OK && strcmp(v.state, vfrom) == 0) rc = fleet_set_vehicle_state(e, &v, vto, NULL, now_ms);
  snprintf(msg, sizeof msg, "repair %s %s, vehicle %s %s", r.id, to, v.id, v.state);
  return op_result(res, rc, rc == FL_OK ? msg : "store error");
}

int fleet_op_repair_start(hub_engine *e, const hub_op *op, hub_op_result *res, int64_t now_ms) {
  return repair_step(e, op, res, now_ms, "REQUESTED", "IN_PROGRESS", "REPAIR_REQUESTED", "IN_REPAIR");
}

int fleet_op_repair_complete(hub_engine *e, const hub_op *op, hub_op_result *res, int64_t now_ms) {
  return repair_step(e, op, res, now_ms, "IN_PROGRESS", "COMPLETED", "IN_REPAIR", "AVAILABLE");
}
