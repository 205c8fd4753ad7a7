#include "publish.h"

#include <stdio.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/topic.h"

/* Holds a notification of kind/id going from -> to (from "" for a new
 * thing); with always, also when from equals to. */
static int notify_any(hub_txn *t, const char *kind, const char *id, const char *from,
                      const char *to, const char *text, bool always) {
  if (!always && strcmp(from, to) == 0) return FL_OK;
  char topic[FL_TOPIC_MAX];
  uint8_t buf[1024];
  size_t len;
  fl_msg m;
  fl_msg_init(&m, FL_MSG_NOTIFY);
  model_copy(m.body.notify.kind, kind);
  model_copy(m.body.notify.id, id);
  model_copy(m.body.notify.from, from);
  model_copy(m.body.notify.to, to);
  model_copy(m.body.notify.text, text ? text : "");
  if (fl_topic_notify(topic, sizeof topic, kind) < 0) return FL_ERR_INVALID;
  int rc = effects_encode(t->fx, &m, "hub", 0, NULL, buf, sizeof buf, &len);
  return rc == FL_OK ? effects_publish(t->fx, topic, buf, len, false, NULL, 0) : rc;
}

static int notify(hub_txn *t, const char *kind, const char *id, const char *from, const char *to,
                  const char *text) {
  return notify_any(t, kind, id, from, to, text, false);
}

/* Holds m as the retained state of kind/id. */
static int state(hub_txn *t, fl_msg *m, const char *kind, const char *id) {
  char topic[FL_TOPIC_MAX];
  if (fl_topic_state(topic, sizeof topic, kind, id) < 0) return FL_ERR_INVALID;
  return effects_state(t->fx, topic, m);
}

int publish_vehicle(hub_txn *t, const hub_vehicle *v, vehicle_state from, const char *text) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_VEHICLE_STATE);
  fl_vehicle_state *s = &m.body.vehicle_state;
  model_copy(s->vehicle, v->id);
  model_copy(s->name, v->name);
  model_copy(s->station, v->station);
  s->rate_cents = v->rate_cents;
  model_copy(s->state, vehicle_state_name(v->state));
  model_copy(s->rental, v->rental);
  s->energy_pct = v->energy_pct > 0 ? (uint32_t)v->energy_pct : 0;
  if (v->has_position) {
    s->lat = v->lat;
    s->lon = v->lon;
  }
  hub_device d; /* the vehicle's own agent: is it connected? */
  int rc = hub_store_device_get(t->store, v->id, &d);
  if (rc != FL_OK && rc != FL_ERR_NOT_FOUND) return rc;
  s->online = rc == FL_OK && d.online;
  rc = state(t, &m, "vehicle", v->id);
  return rc == FL_OK ? notify(t, "vehicle", v->id, vehicle_state_name(from),
                              vehicle_state_name(v->state), text)
                     : rc;
}

int publish_rental(hub_txn *t, const hub_rental *r, rental_state from) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_RENTAL_STATE);
  fl_rental_state *s = &m.body.rental_state;
  model_copy(s->rental, r->id);
  model_copy(s->vehicle, r->vehicle);
  model_copy(s->customer, r->customer);
  model_copy(s->state, rental_state_name(r->state));
  model_copy(s->reason, r->reason);
  s->charged_cents = r->charged_cents;
  s->refunded_cents = r->refunded_cents;
  s->fee_cents = r->fee_cents;
  s->due_ms = r->due_ms;
  int rc = state(t, &m, "rental", r->id);
  return rc == FL_OK ? notify(t, "rental", r->id, rental_state_name(from),
                              rental_state_name(r->state), r->reason)
                     : rc;
}

int publish_repair(hub_txn *t, const hub_repair *r, repair_state from) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_REPAIR_STATE);
  fl_repair_state *s = &m.body.repair_state;
  model_copy(s->repair, r->id);
  model_copy(s->vehicle, r->vehicle);
  model_copy(s->state, repair_state_name(r->state));
  snprintf(s->text, sizeof s->text, "%s %s", r->dtcs, r->text);
  int rc = state(t, &m, "repair", r->id);
  return rc == FL_OK ? notify(t, "repair", r->id, repair_state_name(from),
                              repair_state_name(r->state), r->dtcs)
                     : rc;
}

int publish_booking(hub_txn *t, const hub_booking *b, booking_state from, const char *text) {
  return notify(t, "booking", b->id, booking_state_name(from), booking_state_name(b->state), text);
}

int publish_booking_news(hub_txn *t, const hub_booking *b, const char *text) {
  const char *state = booking_state_name(b->state);
  return notify_any(t, "booking", b->id, state, state, text, true);
}

int publish_alert(hub_txn *t, const char *id, const char *name, const char *text) {
  fl_warn("alert=%s id=%s %s", name, id, text);
  return notify(t, "alert", id, "", name, text);
}
