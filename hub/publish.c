#include "publish.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/topic.h"

/* Holds a notification of kind/id going from -> to (from "" for a new
 * thing) about customer (may be NULL); with always, also when from equals to. */
static int notify_any(hub_txn *t, const char *kind, const char *id, const char *from,
                      const char *to, const char *text, const char *customer, bool always) {
  if (!always && strcmp(from, to) == 0) return FL_OK;
  const char *mode = t->cfg->notify_mode[0] ? t->cfg->notify_mode : "batch";
  if (strcmp(mode, "each") != 0) { /* batch, both: collected for the batch's notices */
    fl_notice c;
    memset(&c, 0, sizeof c);
    model_copy(c.id, id);
    model_copy(c.from, from);
    model_copy(c.to, to);
    model_copy(c.text, text ? text : "");
    model_copy(c.customer, customer ? customer : "");
    int rc = effects_collect(t->fx, kind, &c);
    if (rc != FL_OK || strcmp(mode, "batch") == 0) return rc;
  }
  char topic[FL_TOPIC_MAX];
  fl_msg m;
  fl_msg_init(&m, FL_MSG_NOTIFY);
  model_copy(m.body.notify.kind, kind);
  model_copy(m.body.notify.id, id);
  model_copy(m.body.notify.from, from);
  model_copy(m.body.notify.to, to);
  model_copy(m.body.notify.text, text ? text : "");
  model_copy(m.body.notify.customer, customer ? customer : "");
  if (fl_topic_notify(topic, sizeof topic, kind) < 0) return FL_ERR_INVALID;
  return effects_notice(t->fx, topic, &m);
}

static int notify(hub_txn *t, const char *kind, const char *id, const char *from, const char *to,
                  const char *text) {
  return notify_any(t, kind, id, from, to, text, NULL, false);
}

/* Notes that station's counts may have changed (published at the batch's end). */
void publish_station_changed(hub_txn *t, const char *station) {
  bool added;
  if (t->stations_changed && station && station[0])
    (void)strmap_put(t->stations_changed, station, &added);
}

/* Holds m as the retained state of kind/id; a thing that ended (ended:
 * true) keeps it only [mqtt] ended_state_ttl_s (MQTT 5 message expiry), so
 * that the broker does not keep one message per rental ever made. */
static int state_of(hub_txn *t, fl_msg *m, const char *kind, const char *id, bool ended) {
  char topic[FL_TOPIC_MAX];
  if (fl_topic_state(topic, sizeof topic, kind, id) < 0) return FL_ERR_INVALID;
  uint32_t ttl = ended && t->cfg->ended_state_ttl_s > 0 ? (uint32_t)t->cfg->ended_state_ttl_s : 0;
  return effects_state(t->fx, topic, m, ttl);
}

static int state(hub_txn *t, fl_msg *m, const char *kind, const char *id) {
  return state_of(t, m, kind, id, false);
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
  if (from != v->state) publish_station_changed(t, v->station); /* not for readings */
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
  bool ended = r->state == RENTAL_COMPLETED || r->state == RENTAL_CANCELLED ||
               r->state == RENTAL_REJECTED;
  /* rev 1.2: no retained state per rental unless asked for ([mqtt]
   * rental_states): decisions carry it to kiosks, notices to dashboards */
  int rc = t->cfg->rental_states ? state_of(t, &m, "rental", r->id, ended) : FL_OK;
  return rc == FL_OK ? notify_any(t, "rental", r->id, rental_state_name(from),
                                  rental_state_name(r->state), r->reason, r->customer, false)
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
  int rc = state_of(t, &m, "repair", r->id, r->state == REPAIR_COMPLETED);
  return rc == FL_OK ? notify(t, "repair", r->id, repair_state_name(from),
                              repair_state_name(r->state), r->dtcs)
                     : rc;
}

int publish_booking(hub_txn *t, const hub_booking *b, booking_state from, const char *text) {
  if (b->state != BOOKING_NEW) { /* a new booking refused at once has no state to keep */
    fl_msg m;
    fl_msg_init(&m, FL_MSG_BOOKING_STATE);
    fl_booking_state *s = &m.body.booking_state;
    model_copy(s->booking, b->id);
    model_copy(s->vehicle, b->vehicle);
    model_copy(s->customer, b->customer);
    model_copy(s->state, booking_state_name(b->state));
    s->start_ms = b->start_ms;
    s->end_ms = b->end_ms;
    s->charged_cents = b->charged_cents;
    s->refunded_cents = b->refunded_cents;
    model_copy(s->reason, b->reason);
    bool ended = b->state != BOOKING_PAYMENT_PENDING && b->state != BOOKING_HELD;
    int rc = state_of(t, &m, "booking", b->id, ended);
    if (rc != FL_OK) return rc;
  }
  if (from == BOOKING_HELD || b->state == BOOKING_HELD) { /* the station's booked count */
    hub_vehicle v;
    int rc = hub_store_vehicle_get(t->store, b->vehicle, &v);
    if (rc == FL_OK) publish_station_changed(t, v.station);
  }
  return notify_any(t, "booking", b->id, booking_state_name(from), booking_state_name(b->state),
                    text, b->customer, false);
}

int publish_payment(hub_txn *t, const char *owner, const char *customer, const char *what,
                    int64_t amount_cents) {
  char text[64];
  snprintf(text, sizeof text, "%lld.%02lld", (long long)(amount_cents / 100),
           (long long)(amount_cents % 100));
  return notify_any(t, "payment", owner, "", what, text, customer, true);
}

int publish_stations(hub_txn *t) {
  strmap *m = t->stations_changed;
  if (!m || !m->n) return FL_OK;
  int rc = FL_OK;
  for (size_t i = 0; rc == FL_OK && i < m->cap; i++) {
    const char *station = m->slots[i].key;
    if (!station) continue;
    hub_station_counts c;
    rc = hub_store_station_counts(t->store, station, t->now_ms, &c);
    if (rc != FL_OK) break;
    fl_msg msg;
    fl_msg_init(&msg, FL_MSG_STATION_STATE);
    fl_station_state *s = &msg.body.station_state;
    model_copy(s->station, station);
    s->available = c.available;
    s->rented = c.rented;
    s->in_repair = c.in_repair;
    s->booked = c.booked;
    rc = state(t, &msg, "station", station);
  }
  strmap_clear(m);
  return rc;
}

int publish_notices(hub_txn *t) {
  size_t n = effects_collected(t->fx);
  if (!n) return FL_OK;
  fl_msg *m = malloc(sizeof *m); /* several KB */
  bool *done = calloc(n, sizeof *done);
  int rc = m && done ? FL_OK : FL_ERR_NOMEM;
  /* kind by kind, in the order of their first change; at most
   * FL_MAX_NOTICES changes a message (P-NOT-2) */
  for (size_t first = 0; rc == FL_OK && first < n; first++) {
    if (done[first]) continue;
    const char *kind = effects_collected_at(t->fx, first)->kind;
    char topic[FL_TOPIC_MAX];
    if (snprintf(topic, sizeof topic, FL_TOPIC_ROOT "/notices/%s", kind) >= (int)sizeof topic) {
      rc = FL_ERR_INVALID;
      break;
    }
    fl_msg_init(m, FL_MSG_NOTICES);
    model_copy(m->body.notices.kind, kind);
    for (size_t i = first; rc == FL_OK && i < n; i++) {
      const hub_notice *c = effects_collected_at(t->fx, i);
      if (done[i] || strcmp(c->kind, kind) != 0) continue;
      done[i] = true;
      m->body.notices.changes[m->body.notices.n_changes++] = c->change;
      if (m->body.notices.n_changes == FL_MAX_NOTICES) {
        rc = effects_notice(t->fx, topic, m);
        fl_msg_init(m, FL_MSG_NOTICES);
        model_copy(m->body.notices.kind, kind);
      }
    }
    if (rc == FL_OK && m->body.notices.n_changes) rc = effects_notice(t->fx, topic, m);
  }
  effects_collected_clear(t->fx);
  free(done);
  free(m);
  return rc;
}

int publish_booking_news(hub_txn *t, const hub_booking *b, const char *text) {
  const char *state = booking_state_name(b->state);
  return notify_any(t, "booking", b->id, state, state, text, b->customer, true);
}

int publish_alert(hub_txn *t, const char *id, const char *name, const char *text) {
  fl_warn("alert=%s id=%s %s", name, id, text);
  return notify_any(t, "alert", id, "", name, text, NULL, true);
}
