#include "query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "booking.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/topic.h"
#include "rental.h"

/* ---- available ------------------------------------------------------------------- */

struct available {
  hub_txn *t;
  const fl_query *q;
  fl_answer *a;
};

static int add_vehicle(void *ctx, const hub_vehicle *v) {
  struct available *c = ctx;
  const fl_query *q = c->q;
  if (q->start_ms) { /* free for the window, as a booking_request would find it */
    bool free_then;
    int rc = booking_vehicle_free(c->t, v, q->start_ms, q->end_ms, &free_then);
    if (rc != FL_OK || !free_then) return rc;
  } else if (v->state != VEHICLE_AVAILABLE) {
    return FL_OK;
  }
  fl_answer *a = c->a;
  if (a->n_vehicles == FL_MAX_ANSWER_VEHICLES) {
    a->more = true;
    return FL_OK;
  }
  fl_answer_vehicle *out = &a->vehicles[a->n_vehicles++];
  model_copy(out->vehicle, v->id);
  model_copy(out->name, v->name);
  model_copy(out->station, v->station);
  out->rate_cents = v->rate_cents;
  out->energy_pct = v->energy_pct > 0 ? (uint32_t)v->energy_pct : 0;
  return FL_OK;
}

/* ---- customer --------------------------------------------------------------------- */

static int add_rental(void *ctx, const hub_rental *r) {
  hub_txn *t = ((void **)ctx)[0];
  fl_answer *a = ((void **)ctx)[1];
  if (a->n_rentals == FL_MAX_ANSWER_RENTALS) {
    a->more = true;
    return FL_OK;
  }
  fl_answer_rental *out = &a->rentals[a->n_rentals++];
  model_copy(out->rental, r->id);
  model_copy(out->vehicle, r->vehicle);
  model_copy(out->state, rental_state_name(r->state));
  out->due_ms = r->due_ms;
  out->charged_cents = r->charged_cents;
  out->fee_cents = r->fee_cents;
  if (r->state == RENTAL_ACTIVE) out->running_fee_cents = rental_late_fee(t->cfg, r, t->now_ms);
  return FL_OK;
}

static int add_booking(void *ctx, const hub_booking *b) {
  fl_answer *a = ((void **)ctx)[1];
  if (a->n_bookings == FL_MAX_ANSWER_BOOKINGS) {
    a->more = true;
    return FL_OK;
  }
  fl_answer_booking *out = &a->bookings[a->n_bookings++];
  model_copy(out->booking, b->id);
  model_copy(out->vehicle, b->vehicle);
  model_copy(out->state, booking_state_name(b->state));
  out->start_ms = b->start_ms;
  out->end_ms = b->end_ms;
  out->deposit_cents = b->charged_cents;
  return FL_OK;
}

static int answer_customer(hub_txn *t, const fl_query *q, fl_answer *a) {
  void *ctx[2] = {t, a};
  /* one more than fits, so that "more" says when some were left out */
  int rc = hub_store_rentals_of_customer(t->store, q->customer, FL_MAX_ANSWER_RENTALS + 1,
                                         add_rental, ctx);
  if (rc == FL_OK)
    rc = hub_store_bookings_of_customer(t->store, q->customer, FL_MAX_ANSWER_BOOKINGS + 1,
                                        add_booking, ctx);
  hub_customer_totals tot;
  if (rc == FL_OK) rc = hub_store_customer_totals(t->store, q->customer, &tot);
  if (rc != FL_OK) return rc;
  a->charged_cents = tot.charged_cents;
  a->refunded_cents = tot.refunded_cents;
  a->fees_paid_cents = tot.fees_paid_cents;
  a->fees_owed_cents = tot.fees_owed_cents;
  return FL_OK;
}

/* ---- the answer ------------------------------------------------------------------- */

/* Encodes the answer, leaving out entries from the end of its lists until it
 * fits in one message (P-QRY-5). */
static int encode_fitting(hub_txn *t, fl_msg *m, const char *dev, const char *corr, uint8_t *buf,
                          size_t cap, size_t *len) {
  fl_answer *a = &m->body.answer;
  for (;;) {
    int rc = effects_encode(t->fx, m, dev, 0, corr, buf, cap, len);
    if (rc != FL_ERR_BUFFER && rc != FL_ERR_TOO_LARGE) return rc;
    if (a->n_vehicles) a->n_vehicles--;
    else if (a->n_bookings) a->n_bookings--;
    else if (a->n_rentals) a->n_rentals--;
    else return rc;
    a->more = true;
  }
}

int query_answer(hub_txn *t, const hub_origin *o, const fl_msg *m) {
  const fl_query *q = &m->body.query;
  fl_msg *out = calloc(1, sizeof *out); /* a message with full lists is large */
  if (!out) return FL_ERR_NOMEM;
  fl_msg_init(out, FL_MSG_ANSWER);
  fl_answer *a = &out->body.answer;
  a->what = q->what;
  a->ok = true;
  hub_device d;
  int rc = hub_store_device_get(t->store, o->device, &d);
  if (rc == FL_ERR_NOT_FOUND || (rc == FL_OK && strcmp(d.role, "kiosk") != 0)) {
    a->ok = false; /* P-QRY-3 */
    snprintf(a->reason, sizeof a->reason, "only a kiosk may ask (device %s is %s)", o->device,
             rc == FL_OK && d.role[0] ? d.role : "unknown: say hello first");
    rc = FL_OK;
  } else if (rc == FL_OK && q->what == FL_QUERY_AVAILABLE) {
    struct available c = {t, q, a};
    rc = hub_store_vehicles_each(t->store, q->station[0] ? q->station : NULL, add_vehicle, &c);
  } else if (rc == FL_OK) {
    rc = answer_customer(t, q, a);
  }
  uint8_t buf[FL_MAX_MSG_BYTES];
  size_t len = 0;
  if (rc == FL_OK) rc = encode_fitting(t, out, o->device, m->env.corr, buf, sizeof buf, &len);
  /* not stored, not sequenced: a kiosk with no answer asks again (P-QRY-1) */
  if (rc == FL_OK)
    rc = effects_publish(t->fx, o->reply_topic, buf, len, false, (const uint8_t *)m->env.corr,
                         strlen(m->env.corr));
  free(out);
  return rc;
}
