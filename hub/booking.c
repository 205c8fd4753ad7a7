#include "booking.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "downlink.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/topic.h"
#include "publish.h"
#include "saga.h"

#define copy_str(dst, src) model_copy(dst, src)
#define BOOKINGS_TTL_MS (INT64_C(366) * 24 * 3600 * 1000) /* the list command: far ahead */

/* The booking as the owner of its saga steps. */
static saga_owner owner_of(const hub_booking *b) {
  saga_owner o = {.charge = STEP_DEPOSIT};
  copy_str(o.id, b->id);
  copy_str(o.customer, b->customer);
  return o;
}

/* Writes ms as UTC "2026-01-01T10:00:00Z" into buf. */
static const char *utc(int64_t ms, char *buf, size_t cap) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  if (!gmtime_r(&t, &tm) || !strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm)) snprintf(buf, cap, "?");
  return buf;
}

/* The reason a window is refused because of booking b. */
static void booked_reason(const hub_booking *b, char *reason, size_t cap) {
  char from[32], to[32];
  snprintf(reason, cap, "vehicle %.40s is booked from %s to %s", b->vehicle,
           utc(b->start_ms, from, sizeof from), utc(b->end_ms, to, sizeof to));
}

/* Sends the decision on b's state to its latest requester; reason NULL:
 * b's own. */
static int decide(hub_txn *t, const hub_booking *b, bool ok, const char *reason,
                  uint32_t retry_after_s) {
  fl_decision d = {.subject = FL_SUBJ_BOOKING, .ok = ok, .retry_after_s = retry_after_s,
                   .charged_cents = b->charged_cents, .refunded_cents = b->refunded_cents};
  return saga_decision(t, b->kiosk, b->reply_topic, b->id, &d, booking_state_name(b->state),
                       reason ? reason : (b->reason[0] ? b->reason : NULL));
}

/* Moves b to state (with reason, may be NULL), stores it and notifies. */
static int set_state(hub_txn *t, hub_booking *b, booking_state state, const char *reason) {
  booking_state from = b->state;
  if (!model_booking_may(from, state)) {
    fl_error("booking=%s may not go from %s to %s", b->id, booking_state_name(from),
             booking_state_name(state));
    return FL_ERR_STATE;
  }
  b->state = state;
  if (reason) copy_str(b->reason, reason);
  b->updated_ms = t->now_ms;
  int rc = hub_store_booking_put(t->store, b);
  if (rc == FL_OK) rc = publish_booking(t, b, from, reason);
  if (rc == FL_OK)
    fl_info("booking=%s vehicle=%s customer=%s state=%s%s%s", b->id, b->vehicle, b->customer,
            booking_state_name(state), reason ? " reason=" : "", reason ? reason : "");
  return rc;
}

/* ---- the vehicle's list ---------------------------------------------------- */

static int add_held(void *ctx, const hub_booking *b) {
  fl_command *c = ctx;
  if (b->state != BOOKING_HELD || c->n_bookings == FL_MAX_BOOKINGS) return FL_OK;
  fl_booking *out = &c->bookings[c->n_bookings++];
  copy_str(out->booking, b->id);
  copy_str(out->customer, b->customer);
  out->start_ms = b->start_ms;
  out->end_ms = b->end_ms;
  return FL_OK;
}

/* Queues for vehicle the complete list of its current and future HELD
 * bookings (the agent replaces its own with it). */
static int send_bookings(hub_txn *t, const char *vehicle) {
  int64_t now = t->now_ms;
  char topic[FL_TOPIC_MAX];
  if (effects_device_topic(t->fx, topic, sizeof topic, vehicle, FL_CH_DOWN_CMD) < 0)
    return FL_ERR_INVALID;
  fl_msg m;
  fl_msg_init(&m, FL_MSG_COMMAND);
  fl_command *c = &m.body.command;
  c->action = FL_ACT_BOOKINGS;
  c->expires_ms = now + BOOKINGS_TTL_MS;
  int rc = hub_store_bookings_holding(t->store, vehicle, now, now, INT64_MAX, add_held, c);
  if (rc == FL_OK) rc = downlink_send(t, vehicle, topic, &m, NULL, c->expires_ms);
  if (rc == FL_OK) fl_info("vehicle=%s bookings sent: %u held", vehicle, c->n_bookings);
  return rc;
}

/* ---- conflicts ----------------------------------------------------------------- */

/* What a scan of a vehicle's holding bookings looks for. */
typedef struct scan {
  const char *skip_customer; /* bookings of this customer do not count (NULL: all count) */
  bool held_only;            /* only HELD bookings count */
  int64_t held_at_ms;        /* with held_only: the window must hold this time */
  int count;
  hub_booking first; /* the first one that counts */
} scan;

static int scan_one(void *ctx, const hub_booking *b) {
  scan *s = ctx;
  if (s->skip_customer && strcmp(b->customer, s->skip_customer) == 0) return FL_OK;
  if (s->held_only && (b->state != BOOKING_HELD || b->start_ms > s->held_at_ms))
    return FL_OK;
  if (s->count++ == 0) s->first = *b;
  return FL_OK;
}

/* Fills reason when the open rental of v (RESERVED or RENTED) holds it at
 * b's start: until its due time, or until now when it is late. */
static int rental_conflict(hub_txn *t, const hub_vehicle *v, const hub_booking *b, char *reason,
                           size_t cap) {
  hub_rental r;
  if (!v->rental[0]) return FL_OK;
  int rc = hub_store_rental_get(t->store, v->rental, &r);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_OK : rc;
  int64_t due = r.due_ms ? r.due_ms : r.created_ms + (int64_t)r.minutes * t->cfg->minute_ms;
  int64_t until = due > t->now_ms ? due : t->now_ms + 1;
  char at[32];
  if (b->start_ms < until)
    snprintf(reason, cap, "vehicle %.40s is rented until %s", v->id, utc(until, at, sizeof at));
  return FL_OK;
}

/* Finds why vehicle v cannot be booked for b's window: a holding booking, its
 * open rental, or too many bookings ahead. Leaves reason "" when it can. */
static int booking_conflict(hub_txn *t, const hub_vehicle *v, const hub_booking *b, char *reason,
                            size_t cap) {
  int64_t now = t->now_ms;
  reason[0] = '\0';
  scan s = {0};
  int rc = hub_store_bookings_holding(t->store, v->id, now, b->start_ms, b->end_ms, scan_one, &s);
  if (rc != FL_OK) return rc;
  if (s.count) {
    booked_reason(&s.first, reason, cap);
    return FL_OK;
  }
  rc = rental_conflict(t, v, b, reason, cap);
  if (rc != FL_OK || reason[0]) return rc;
  memset(&s, 0, sizeof s);
  rc = hub_store_bookings_holding(t->store, v->id, now, now, INT64_MAX, scan_one, &s);
  if (rc == FL_OK && s.count >= FL_MAX_BOOKINGS)
    snprintf(reason, cap, "vehicle %.40s has %d bookings ahead already", v->id, s.count);
  return rc;
}

int booking_vehicle_free(hub_txn *t, const hub_vehicle *v, int64_t start_ms, int64_t end_ms,
                         bool *free_then) {
  *free_then = false;
  if (v->state == VEHICLE_RETIRED || v->state == VEHICLE_REPAIR_REQUESTED ||
      v->state == VEHICLE_IN_REPAIR || v->state == VEHICLE_NEW)
    return FL_OK;
  hub_booking window = {.start_ms = start_ms, .end_ms = end_ms};
  char reason[FL_TEXT_MAX + 1];
  int rc = booking_conflict(t, v, &window, reason, sizeof reason);
  if (rc == FL_OK) *free_then = reason[0] == '\0';
  return rc;
}

int booking_admit_rental(hub_txn *t, const hub_rental *r, bool *allowed, char *reason,
                         size_t cap) {
  hub_booking b;
  *allowed = false;
  int rc = hub_store_booking_get(t->store, r->id, &b);
  if (rc == FL_OK) {
    snprintf(reason, cap, "id %s is already used by a booking", r->id);
    return FL_OK;
  }
  if (rc != FL_ERR_NOT_FOUND) return rc;
  int64_t now = t->now_ms, end = now + (int64_t)r->minutes * t->cfg->minute_ms;
  scan s = {.skip_customer = r->customer};
  rc = hub_store_bookings_holding(t->store, r->vehicle, now, now, end, scan_one, &s);
  if (rc != FL_OK) return rc;
  if (s.count)
    booked_reason(&s.first, reason, cap);
  else
    *allowed = true;
  return FL_OK;
}

int booking_on_rental_active(hub_txn *t, const hub_rental *r) {
  int64_t at = r->created_ms;
  scan s = {.held_only = true, .held_at_ms = at};
  int rc = hub_store_bookings_holding(t->store, r->vehicle, at, at, at + 1, scan_one, &s);
  if (rc != FL_OK || !s.count || strcmp(s.first.customer, r->customer) != 0) return rc;
  copy_str(s.first.rental, r->id);
  char text[FL_TEXT_MAX + 1];
  snprintf(text, sizeof text, "used by rental %.64s", r->id);
  rc = set_state(t, &s.first, BOOKING_USED, text);
  if (rc == FL_OK && s.first.charged_cents > 0)
    rc = publish_payment(t, s.first.id, s.first.customer, "deposit_kept", s.first.charged_cents);
  if (rc == FL_OK) rc = send_bookings(t, r->vehicle);
  return rc;
}

/* ---- requests ------------------------------------------------------------------ */

/* Refuses a new booking: stores it REJECTED and answers the kiosk. */
static int reject_new(hub_txn *t, hub_booking *b, const char *reason, uint32_t retry_after_s) {
  int rc = set_state(t, b, BOOKING_REJECTED, reason);
  if (rc == FL_OK) rc = decide(t, b, false, reason, retry_after_s);
  return rc;
}

/* b is HELD now: tell the kiosk and the vehicle. */
static int hold(hub_txn *t, hub_booking *b) {
  int rc = set_state(t, b, BOOKING_HELD, NULL);
  if (rc == FL_OK) rc = decide(t, b, true, NULL, 0);
  if (rc == FL_OK) rc = send_bookings(t, b->vehicle);
  return rc;
}

/* Checks a new booking; fills reason (and *retry_after_s) when it is refused. */
static int check_new(hub_txn *t, const hub_booking *b, char *reason, size_t cap,
                     uint32_t *retry_after_s) {
  hub_rental r;
  hub_vehicle v;
  char at[32];
  reason[0] = '\0';
  int rc = hub_store_rental_get(t->store, b->id, &r);
  if (rc == FL_OK) {
    snprintf(reason, cap, "id %s is already used by a rental", b->id);
    return FL_OK;
  }
  if (rc != FL_ERR_NOT_FOUND) return rc;
  if (b->end_ms <= t->now_ms) {
    snprintf(reason, cap, "the window ended at %s", utc(b->end_ms, at, sizeof at));
    return FL_OK;
  }
  rc = hub_store_vehicle_get(t->store, b->vehicle, &v);
  if (rc == FL_ERR_NOT_FOUND) {
    snprintf(reason, cap, "no vehicle %s", b->vehicle);
    return FL_OK;
  }
  if (rc != FL_OK) return rc;
  if (v.state == VEHICLE_RETIRED) {
    snprintf(reason, cap, "vehicle %s is retired", v.id);
    return FL_OK;
  }
  rc = booking_conflict(t, &v, b, reason, cap);
  if (rc != FL_OK || reason[0]) return rc;
  if (!txn_payment_admit(t, retry_after_s))
    snprintf(reason, cap, "payment unavailable, try again in %u s", *retry_after_s);
  return FL_OK;
}

int booking_on_request(hub_txn *t, const hub_origin *o, const fl_msg *m) {
  const fl_booking_request *q = &m->body.booking_request;
  hub_booking b;
  int rc = hub_store_booking_get(t->store, m->env.corr, &b);
  if (rc == FL_OK) { /* asked again (P-REQ-4): the decision taken, to whoever asked last */
    copy_str(b.kiosk, o->device);
    copy_str(b.reply_topic, o->reply_topic);
    rc = hub_store_booking_put(t->store, &b);
    if (rc != FL_OK || b.state == BOOKING_PAYMENT_PENDING) return rc; /* the answer follows */
    return decide(t, &b, b.state != BOOKING_REJECTED, NULL, 0);
  }
  if (rc != FL_ERR_NOT_FOUND) return rc;

  memset(&b, 0, sizeof b);
  copy_str(b.id, m->env.corr);
  copy_str(b.vehicle, q->vehicle);
  copy_str(b.customer, q->customer);
  copy_str(b.kiosk, o->device);
  copy_str(b.reply_topic, o->reply_topic);
  b.state = BOOKING_NEW;
  b.start_ms = q->start_ms;
  b.end_ms = q->end_ms;
  b.created_ms = b.updated_ms = t->now_ms;

  char reason[FL_TEXT_MAX + 1];
  uint32_t retry_after = 0;
  rc = check_new(t, &b, reason, sizeof reason, &retry_after);
  if (rc != FL_OK) return rc;
  if (reason[0]) return reject_new(t, &b, reason, retry_after);
  b.deposit_cents = t->cfg->booking_deposit_cents;
  if (b.deposit_cents == 0) return hold(t, &b);
  rc = set_state(t, &b, BOOKING_PAYMENT_PENDING, NULL);
  saga_owner own = owner_of(&b);
  if (rc == FL_OK) rc = saga_step_start(t, &own, STEP_DEPOSIT, b.deposit_cents);
  return rc;
}

/* Sets *pending when the answer to cancelling b comes later: its deposit is
 * still being charged, or a deposit it took is still being refunded. */
static int answer_pending(hub_txn *t, const hub_booking *b, bool *pending) {
  bool charged = b->charged_cents > 0;
  hub_step s;
  *pending = false;
  int rc = hub_store_step_get(t->store, b->id, charged ? STEP_REFUND : STEP_DEPOSIT, &s);
  if (rc == FL_OK)
    *pending = charged ? s.status != STEP_DONE
                       : s.status == STEP_CALLING || s.status == STEP_RETRY;
  return rc == FL_ERR_NOT_FOUND ? FL_OK : rc;
}

/* Calls off the deposit step s of cancelled booking b that is not in flight
 * (waiting for its next try, or just failed): answers the kiosk at once and
 * voids the deposit in case a failed call took money after all. */
static int call_off(hub_txn *t, hub_booking *b, hub_step *s) {
  saga_owner own = owner_of(b);
  int rc = saga_step_call_off(t, s);
  if (rc == FL_OK) rc = decide(t, b, true, NULL, 0);
  if (rc == FL_OK) rc = saga_step_start(t, &own, STEP_REFUND, b->deposit_cents);
  return rc;
}

int booking_on_cancel(hub_txn *t, const hub_origin *o, const fl_msg *m) {
  hub_booking b;
  char reason[FL_TEXT_MAX + 1];
  int rc = hub_store_booking_get(t->store, m->env.corr, &b);
  if (rc == FL_ERR_NOT_FOUND) { /* answered about a booking that is not stored */
    memset(&b, 0, sizeof b);
    copy_str(b.id, m->env.corr);
    copy_str(b.kiosk, o->device);
    copy_str(b.reply_topic, o->reply_topic);
    snprintf(reason, sizeof reason, "no booking %s", m->env.corr);
    fl_decision d = {.subject = FL_SUBJ_BOOKING, .ok = false};
    return saga_decision(t, b.kiosk, b.reply_topic, b.id, &d, "UNKNOWN", reason);
  }
  if (rc != FL_OK) return rc;
  copy_str(b.kiosk, o->device); /* answers go to whoever asked last */
  copy_str(b.reply_topic, o->reply_topic);
  if (b.state == BOOKING_CANCELLED) { /* again: answered now, or once the refund is back */
    bool pending;
    rc = answer_pending(t, &b, &pending);
    if (rc == FL_OK) rc = hub_store_booking_put(t->store, &b);
    return rc == FL_OK && !pending ? decide(t, &b, true, NULL, 0) : rc;
  }
  if (b.state == BOOKING_PAYMENT_PENDING) { /* a deposit in flight decides: refund or nothing */
    hub_step s;
    rc = set_state(t, &b, BOOKING_CANCELLED, "cancelled by customer");
    if (rc == FL_OK) rc = hub_store_step_get(t->store, b.id, STEP_DEPOSIT, &s);
    if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_OK : rc;
    return s.status == STEP_RETRY ? call_off(t, &b, &s) : FL_OK;
  }
  if (b.state != BOOKING_HELD || b.end_ms <= t->now_ms) {
    snprintf(reason, sizeof reason, "booking %s is %s%s: nothing to cancel", b.id,
             booking_state_name(b.state), b.state == BOOKING_HELD ? " and over" : "");
    return decide(t, &b, false, reason, 0);
  }
  rc = set_state(t, &b, BOOKING_CANCELLED, "cancelled by customer");
  if (rc == FL_OK) rc = send_bookings(t, b.vehicle);
  if (rc != FL_OK) return rc;
  if (b.charged_cents == 0) return decide(t, &b, true, NULL, 0);
  saga_owner own = owner_of(&b);
  return saga_step_start(t, &own, STEP_REFUND, b.charged_cents);
}

/* ---- payment results ------------------------------------------------------------- */

/* The deposit step finished. */
static int deposit_done(hub_txn *t, hub_booking *b, hub_step *s, const pay_result *res) {
  saga_owner own = owner_of(b);
  char reason[FL_TEXT_MAX + 1];
  int rc;
  if (res->outcome == PAY_OK) {
    b->charged_cents = res->amount_cents;
    rc = publish_payment(t, b->id, b->customer, "charged", res->amount_cents);
    if (rc != FL_OK) return rc;
    if (b->state == BOOKING_PAYMENT_PENDING) return hold(t, b);
    /* cancelled while paying: give the money back */
    rc = hub_store_booking_put(t->store, b);
    if (rc == FL_OK) rc = saga_step_start(t, &own, STEP_REFUND, b->charged_cents);
    return rc;
  }
  if (b->state == BOOKING_CANCELLED && res->outcome == PAY_FAILED) return call_off(t, b, s);
  bool final;
  rc = saga_charge_refused(t, s, res, &final, reason, sizeof reason);
  if (rc != FL_OK || !final) return rc;
  if (b->state == BOOKING_CANCELLED) return decide(t, b, true, NULL, 0); /* declined: nothing to refund */
  rc = reject_new(t, b, reason, 0);
  /* A failed call may still have moved money: void it (a no-op if not). */
  if (rc == FL_OK && res->outcome == PAY_FAILED)
    rc = saga_step_start(t, &own, STEP_REFUND, b->deposit_cents);
  return rc;
}

/* The refund step finished (cancel or void). */
static int refund_done(hub_txn *t, hub_booking *b, hub_step *s, const pay_result *res) {
  if (res->outcome != PAY_OK) {
    bool gave_up;
    return saga_step_failed(t, s, res, &gave_up);
  }
  b->refunded_cents += res->amount_cents;
  b->updated_ms = t->now_ms;
  int rc = res->amount_cents
               ? publish_payment(t, b->id, b->customer, "deposit_returned", res->amount_cents)
               : FL_OK;
  if (rc == FL_OK) rc = hub_store_booking_put(t->store, b);
  if (rc == FL_OK && b->state == BOOKING_CANCELLED && b->charged_cents > 0) /* voids were answered */
    rc = decide(t, b, true, NULL, 0);
  return rc;
}

/* ---- the fleet changing, no-shows, the operator ----------------------------------- */

/* Ends b (HELD or PAYMENT_PENDING) as CANCELLED for reason, told to its
 * kiosk; its deposit comes back (the decision follows the refund), or the
 * deposit in flight decides. */
static int cancel_for(hub_txn *t, hub_booking *b, const char *reason) {
  bool held = b->state == BOOKING_HELD;
  int rc = set_state(t, b, BOOKING_CANCELLED, reason);
  if (rc == FL_OK && held) rc = send_bookings(t, b->vehicle);
  if (rc != FL_OK) return rc;
  if (!held) { /* paying: the deposit's result decides, or it is called off now */
    hub_step s;
    rc = hub_store_step_get(t->store, b->id, STEP_DEPOSIT, &s);
    if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_OK : rc;
    return s.status == STEP_RETRY ? call_off(t, b, &s) : FL_OK;
  }
  if (b->charged_cents == 0) return decide(t, b, true, NULL, 0);
  saga_owner own = owner_of(b);
  return saga_step_start(t, &own, STEP_REFUND, b->charged_cents);
}

/* What a search for a replacement vehicle looks for. */
typedef struct replacement {
  hub_txn *t;
  const hub_booking *b;
  const hub_vehicle *gone;
  hub_vehicle best;
  bool found;
  int64_t best_gap; /* |rate difference| of best */
} replacement;

static int consider(void *ctx, const hub_vehicle *v) {
  replacement *r = ctx;
  if (strcmp(v->id, r->gone->id) == 0) return FL_OK;
  if (v->state == VEHICLE_RETIRED || v->state == VEHICLE_REPAIR_REQUESTED ||
      v->state == VEHICLE_IN_REPAIR || v->state == VEHICLE_NEW)
    return FL_OK;
  char reason[FL_TEXT_MAX + 1];
  int rc = booking_conflict(r->t, v, r->b, reason, sizeof reason);
  if (rc != FL_OK || reason[0]) return rc; /* taken for the window */
  int64_t gap = v->rate_cents - r->gone->rate_cents;
  if (gap < 0) gap = -gap;
  if (!r->found || gap < r->best_gap) {
    r->best = *v;
    r->best_gap = gap;
    r->found = true;
  }
  return FL_OK;
}

/* Moves b to vehicle v, or cancels it when the station has no vehicle free
 * for its window; the customer's kiosk is told either way. */
static int reassign_or_cancel(hub_txn *t, hub_booking *b, const hub_vehicle *gone) {
  replacement r = {.t = t, .b = b, .gone = gone};
  int rc = gone->station[0] ? hub_store_vehicles_each(t->store, gone->station, consider, &r) : FL_OK;
  if (rc != FL_OK) return rc;
  char text[FL_TEXT_MAX + 1];
  if (!r.found) {
    snprintf(text, sizeof text, "vehicle %.40s left service and no other vehicle at %.40s is free",
             gone->id, gone->station[0] ? gone->station : "its station");
    return cancel_for(t, b, text);
  }
  snprintf(text, sizeof text, "moved from %.40s (out of service) to %.40s", gone->id, r.best.id);
  copy_str(b->vehicle, r.best.id);
  copy_str(b->reason, text);
  b->updated_ms = t->now_ms;
  rc = hub_store_booking_put(t->store, b); /* the store refuses an overlap on the new vehicle */
  if (rc == FL_OK) rc = publish_booking_news(t, b, text);
  if (rc == FL_OK) rc = send_bookings(t, gone->id);
  if (rc == FL_OK && b->state == BOOKING_HELD) rc = send_bookings(t, r.best.id);
  if (rc == FL_OK && b->state == BOOKING_HELD) rc = decide(t, b, true, text, 0);
  if (rc == FL_OK) fl_info("booking=%s %s", b->id, text);
  return rc;
}

/* Collects the bookings that hold a vehicle (they are changed after the scan). */
typedef struct held_list {
  hub_booking v[FL_MAX_BOOKINGS * 2];
  int n;
} held_list;

static int collect(void *ctx, const hub_booking *b) {
  held_list *l = ctx;
  if (l->n < (int)(sizeof l->v / sizeof l->v[0])) l->v[l->n++] = *b;
  return FL_OK;
}

int booking_on_vehicle_out(hub_txn *t, const hub_vehicle *v) {
  held_list *l = calloc(1, sizeof *l);
  if (!l) return FL_ERR_NOMEM;
  int rc = hub_store_bookings_holding(t->store, v->id, t->now_ms, t->now_ms, INT64_MAX, collect, l);
  for (int i = 0; rc == FL_OK && i < l->n; i++) rc = reassign_or_cancel(t, &l->v[i], v);
  free(l);
  return rc;
}

static int expire_one(void *ctx, const hub_booking *held) {
  hub_txn *t = ctx;
  hub_booking b = *held;
  bool refund = t->cfg->booking_no_show_refund && b.charged_cents > 0;
  int rc = set_state(t, &b, BOOKING_EXPIRED,
                     refund ? "not used in its window: deposit returned"
                            : "not used in its window: deposit kept");
  if (rc == FL_OK) rc = send_bookings(t, b.vehicle);
  if (rc == FL_OK) rc = decide(t, &b, false, NULL, 0);
  if (rc == FL_OK && refund) {
    saga_owner own = owner_of(&b);
    rc = saga_step_start(t, &own, STEP_REFUND, b.charged_cents);
  } else if (rc == FL_OK && b.charged_cents > 0) {
    rc = publish_payment(t, b.id, b.customer, "deposit_kept", b.charged_cents);
  }
  return rc;
}

int booking_expire_due(hub_txn *t) {
  int64_t before = t->now_ms - (int64_t)t->cfg->booking_grace_s * 1000;
  return hub_store_bookings_starting_before(t->store, BOOKING_HELD, before, expire_one, t);
}

int booking_cancel_by_operator(hub_txn *t, const char *id, char *msg, size_t cap) {
  hub_booking b;
  int rc = hub_store_booking_get(t->store, id, &b);
  if (rc != FL_OK) {
    snprintf(msg, cap, "no booking %s", id);
    return rc;
  }
  if (b.state != BOOKING_HELD && b.state != BOOKING_PAYMENT_PENDING) {
    snprintf(msg, cap, "booking %s is %s: nothing to cancel", b.id, booking_state_name(b.state));
    return FL_ERR_STATE;
  }
  rc = cancel_for(t, &b, "cancelled by operator");
  snprintf(msg, cap, "booking %s cancelled%s", b.id,
           b.charged_cents > 0 ? ", deposit being refunded" : "");
  return rc;
}

static int find_owner(hub_txn *t, const char *id, saga_owner *who) {
  hub_booking b;
  int rc = hub_store_booking_get(t->store, id, &b);
  if (rc == FL_OK) *who = owner_of(&b);
  return rc;
}

static int on_step_result(hub_txn *t, hub_step *s, const pay_result *res) {
  hub_booking b;
  int rc = hub_store_booking_get(t->store, s->owner, &b);
  if (rc != FL_OK) return rc;
  if (s->kind == STEP_DEPOSIT) return deposit_done(t, &b, s, res);
  return refund_done(t, &b, s, res);
}

const saga_owner_kind booking_saga_owner = {
    .name = "booking", .find = find_owner, .on_result = on_step_result};
