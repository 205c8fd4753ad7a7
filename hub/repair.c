#include "repair.h"

#include <stdio.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "publish.h"
#include "vehicle.h"

/* Appends the codes of f to a comma-separated list in dst (cap bytes). */
static void dtcs_append(char *dst, size_t cap, const fl_fault *f) {
  for (uint32_t i = 0; i < f->n_dtcs; i++) {
    if (strstr(dst, f->dtcs[i])) continue;
    size_t len = strlen(dst);
    snprintf(dst + len, cap - len, "%s%s", len ? "," : "", f->dtcs[i]);
  }
}

/* Moves r to state, stores and publishes it. */
static int set_state(hub_txn *t, hub_repair *r, repair_state state) {
  repair_state from = r->state;
  if (!model_repair_may(from, state)) {
    fl_error("repair=%s may not go from %s to %s", r->id, repair_state_name(from),
             repair_state_name(state));
    return FL_ERR_STATE;
  }
  r->state = state;
  r->updated_ms = t->now_ms;
  int rc = hub_store_repair_put(t->store, r);
  return rc == FL_OK ? publish_repair(t, r, from) : rc;
}

/* Opens a ticket for v with codes dtcs (may be "") at severity with text,
 * or adds the codes and text to its open one; the vehicle leaves service
 * (or, rented, is repaired at its return: an alert says so). *r gets the ticket. */
static int open_ticket(hub_txn *t, hub_vehicle *v, const fl_fault *f, const char *severity,
                       const char *text, hub_repair *r) {
  int rc = hub_store_repair_open_for(t->store, v->id, r);
  if (rc == FL_OK) { /* one open ticket per vehicle collects every code */
    if (f) dtcs_append(r->dtcs, sizeof r->dtcs, f);
    if (text && text[0] && !strstr(r->text, text)) {
      size_t len = strlen(r->text);
      snprintf(r->text + len, sizeof r->text - len, "%s%s", len ? "; " : "", text);
    }
    return set_state(t, r, r->state);
  }
  if (rc != FL_ERR_NOT_FOUND) return rc;
  uint64_t n;
  rc = hub_store_next_id(t->store, "repair", &n);
  if (rc != FL_OK) return rc;
  memset(r, 0, sizeof *r);
  snprintf(r->id, sizeof r->id, "RP-%llu", (unsigned long long)n);
  model_copy(r->vehicle, v->id);
  r->state = REPAIR_NEW;
  if (f) dtcs_append(r->dtcs, sizeof r->dtcs, f);
  model_copy(r->severity, severity);
  model_copy(r->text, text ? text : "");
  r->opened_ms = t->now_ms;
  rc = set_state(t, r, REPAIR_REQUESTED);
  if (rc != FL_OK) return rc;
  fl_info("repair=%s vehicle=%s dtcs=%s severity=%s", r->id, v->id, r->dtcs, r->severity);
  if (v->state == VEHICLE_AVAILABLE) return vehicle_set_state(t, v, VEHICLE_REPAIR_REQUESTED, NULL);
  if (v->state == VEHICLE_RENTED || v->state == VEHICLE_RESERVED) {
    char alert[FL_TEXT_MAX + 1];
    snprintf(alert, sizeof alert, "fault %s on rented vehicle %s: repair %s starts at return",
             r->dtcs[0] ? r->dtcs : "reported", v->id, r->id);
    v->repair_due = true;
    rc = hub_store_vehicle_put(t->store, v);
    if (rc == FL_OK) rc = publish_alert(t, v->id, "fault_while_rented", alert);
  }
  return rc;
}

int repair_on_fault(hub_txn *t, const hub_origin *o, const fl_msg *m) {
  hub_vehicle v;
  int rc = vehicle_of_sender(t, o, &v);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_OK : rc;
  const fl_fault *f = &m->body.fault;
  const char *sev = fl_severity_name(f->severity) ? fl_severity_name(f->severity) : "info";
  hub_repair r;
  return open_ticket(t, &v, f, sev, f->text, &r);
}

int repair_open(hub_txn *t, const char *vehicle, const char *text, char *msg, size_t cap) {
  hub_vehicle v;
  int rc = hub_store_vehicle_get(t->store, vehicle, &v);
  if (rc != FL_OK) {
    snprintf(msg, cap, "no vehicle %s", vehicle);
    return rc;
  }
  if (v.state == VEHICLE_RETIRED) {
    snprintf(msg, cap, "vehicle %s is retired", v.id);
    return FL_ERR_STATE;
  }
  if (!text || !text[0]) {
    snprintf(msg, cap, "a repair needs a description of the damage");
    return FL_ERR_INVALID;
  }
  hub_repair r;
  rc = open_ticket(t, &v, NULL, "warning", text, &r);
  snprintf(msg, cap, "repair %s %s for vehicle %s (%s)", r.id, repair_state_name(r.state), v.id,
           v.repair_due ? "repaired at its return" : vehicle_state_name(v.state));
  return rc;
}

/* Moves repair id from `from` to `to`, and its vehicle from vfrom to vto
 * (when the vehicle is in vfrom). */
static int repair_step(hub_txn *t, const char *id, repair_state from, repair_state to,
                       vehicle_state vfrom, vehicle_state vto, char *msg, size_t cap) {
  hub_repair r;
  hub_vehicle v;
  int rc = hub_store_repair_get(t->store, id, &r);
  if (rc != FL_OK) {
    snprintf(msg, cap, "no repair %s", id);
    return rc;
  }
  if (r.state != from) {
    snprintf(msg, cap, "repair %s is %s, not %s", r.id, repair_state_name(r.state),
             repair_state_name(from));
    return FL_ERR_STATE;
  }
  rc = hub_store_vehicle_get(t->store, r.vehicle, &v);
  if (rc != FL_OK) {
    snprintf(msg, cap, "vehicle of the repair is gone");
    return rc;
  }
  if (v.state != vfrom && v.state != vto) {
    snprintf(msg, cap, "vehicle %s is %s: the repair waits until it is back", v.id,
             vehicle_state_name(v.state));
    return FL_ERR_STATE;
  }
  rc = set_state(t, &r, to);
  if (rc == FL_OK && v.state == vfrom) rc = vehicle_set_state(t, &v, vto, NULL);
  snprintf(msg, cap, "repair %s %s, vehicle %s %s", r.id, repair_state_name(to), v.id,
           vehicle_state_name(v.state));
  return rc;
}

int repair_start(hub_txn *t, const char *id, char *msg, size_t cap) {
  return repair_step(t, id, REPAIR_REQUESTED, REPAIR_IN_PROGRESS, VEHICLE_REPAIR_REQUESTED,
                     VEHICLE_IN_REPAIR, msg, cap);
}

int repair_complete(hub_txn *t, const char *id, char *msg, size_t cap) {
  return repair_step(t, id, REPAIR_IN_PROGRESS, REPAIR_COMPLETED, VEHICLE_IN_REPAIR,
                     VEHICLE_AVAILABLE, msg, cap);
}
