#include "rental.h"

#include <stdio.h>
#include <string.h>

#include "booking.h"
#include "downlink.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/topic.h"
#include "publish.h"
#include "saga.h"
#include "vehicle.h"

/* Answers a request on device's reply topic; used also when no rental row exists. */
static int answer(hub_txn *t, const char *device, const char *topic, const char *corr,
                  const hub_rental *r, const char *state, bool ok, const char *reason,
                  uint32_t retry_after_s) {
  fl_decision d = {.subject = FL_SUBJ_RENTAL, .ok = ok, .retry_after_s = retry_after_s};
  if (r) {
    d.charged_cents = r->charged_cents;
    d.refunded_cents = r->refunded_cents;
    d.fee_cents = r->fee_cents;
    d.due_ms = r->due_ms;
  }
  return saga_decision(t, device, topic, corr, &d, state, reason);
}

/* Sends the decision on r's current state to its latest requester. */
static int decide(hub_txn *t, const hub_rental *r, bool ok, const char *reason,
                  uint32_t retry_after_s) {
  return answer(t, r->kiosk, r->reply_topic, r->id, r, rental_state_name(r->state), ok,
                reason ? reason : (r->reason[0] ? r->reason : NULL), retry_after_s);
}

/* Moves r to state (with reason, may be NULL), stores and publishes it.
 * FL_ERR_STATE for a move the rental machine does not allow. */
static int set_state(hub_txn *t, hub_rental *r, rental_state state, const char *reason) {
  rental_state from = r->state;
  if (!model_rental_may(from, state)) {
    fl_error("rental=%s may not go from %s to %s", r->id, rental_state_name(from),
             rental_state_name(state));
    return FL_ERR_STATE;
  }
  r->state = state;
  if (reason) model_copy(r->reason, reason);
  r->updated_ms = t->now_ms;
  int rc = hub_store_rental_put(t->store, r);
  if (rc == FL_OK) rc = publish_rental(t, r, from);
  if (rc == FL_OK)
    fl_info("rental=%s vehicle=%s state=%s%s%s", r->id, r->vehicle, rental_state_name(state),
            reason ? " reason=" : "", reason ? reason : "");
  return rc;
}

/* The rental as the owner of its saga steps. */
static saga_owner owner_of(const hub_rental *r) {
  saga_owner o = {.charge = STEP_CHARGE};
  model_copy(o.id, r->id);
  model_copy(o.customer, r->customer);
  return o;
}

/* Records step "calling" and holds its call for after commit. */
static int start_step(hub_txn *t, const hub_rental *r, step_kind kind, int64_t amount) {
  saga_owner o = owner_of(r);
  return saga_step_start(t, &o, kind, amount);
}

/* Sends a lock or unlock command to the rental's vehicle. */
static int command_vehicle(hub_txn *t, const hub_rental *r, fl_action action) {
  char topic[FL_TOPIC_MAX];
  if (effects_device_topic(t->fx, topic, sizeof topic, r->vehicle, FL_CH_DOWN_CMD) < 0)
    return FL_ERR_INVALID;
  fl_msg m;
  fl_msg_init(&m, FL_MSG_COMMAND);
  m.body.command.action = action;
  int64_t expires = t->now_ms + (int64_t)t->cfg->command_ttl_s * 1000;
  m.body.command.expires_ms = expires;
  model_copy(m.body.command.customer, r->customer);
  return downlink_send(t, r->vehicle, topic, &m, r->id, expires);
}

/* Gives the rental's vehicle back to the fleet if it still holds this rental. */
static int release_vehicle(hub_txn *t, const hub_rental *r) {
  hub_vehicle v;
  int rc = hub_store_vehicle_get(t->store, r->vehicle, &v);
  if (rc == FL_ERR_NOT_FOUND) return FL_OK;
  if (rc != FL_OK) return rc;
  if (strcmp(v.rental, r->id) != 0) return FL_OK;
  return vehicle_release(t, &v);
}

/* Refuses a new rental: stores it REJECTED and answers the kiosk. */
static int reject_new(hub_txn *t, hub_rental *r, const char *reason, uint32_t retry_after_s) {
  int rc = set_state(t, r, RENTAL_REJECTED, reason);
  if (rc == FL_OK) rc = decide(t, r, false, reason, retry_after_s);
  return rc;
}

/* Returns true for states in which a request needs no new work: it was
 * decided already, and the decision is sent again. */
static bool decided(const hub_rental *r) {
  return r->state != RENTAL_PAYMENT_PENDING && r->state != RENTAL_CANCEL_REQUESTED &&
         r->state != RENTAL_RETURNED;
}

int rental_on_request(hub_txn *t, const hub_origin *o, const fl_msg *m) {
  const fl_rental_request *q = &m->body.rental_request;
  hub_rental r;
  int rc = hub_store_rental_get(t->store, m->env.corr, &r);
  if (rc == FL_OK) /* the kiosk asked again for the same rental id */
    return decided(&r) ? decide(t, &r, r.state != RENTAL_REJECTED, NULL, 0) : FL_OK;
  if (rc != FL_ERR_NOT_FOUND) return rc;

  memset(&r, 0, sizeof r);
  model_copy(r.id, m->env.corr);
  model_copy(r.vehicle, q->vehicle);
  model_copy(r.customer, q->customer);
  model_copy(r.kiosk, o->device);
  model_copy(r.reply_topic, o->reply_topic);
  r.state = RENTAL_REQUESTED;
  r.minutes = q->minutes;
  r.created_ms = r.updated_ms = t->now_ms;

  hub_vehicle v;
  char reason[FL_TEXT_MAX + 1];
  rc = hub_store_vehicle_get(t->store, q->vehicle, &v);
  if (rc == FL_ERR_NOT_FOUND) {
    snprintf(reason, sizeof reason, "no vehicle %s", q->vehicle);
    return reject_new(t, &r, reason, 0);
  }
  if (rc != FL_OK) return rc;
  if (v.state != VEHICLE_AVAILABLE) {
    snprintf(reason, sizeof reason, "vehicle %s is not available (%s)", v.id,
             vehicle_state_name(v.state));
    return reject_new(t, &r, reason, 0);
  }
  bool allowed;
  rc = booking_admit_rental(t, &r, &allowed, reason, sizeof reason);
  if (rc != FL_OK) return rc;
  if (!allowed) return reject_new(t, &r, reason, 0);
  uint32_t retry_after = 0;
  if (!txn_payment_admit(t, &retry_after)) {
    snprintf(reason, sizeof reason, "payment unavailable, try again in %u s", retry_after);
    return reject_new(t, &r, reason, retry_after);
  }
  r.amount_cents = (v.rate_cents * (int64_t)q->minutes + 59) / 60;
  rc = set_state(t, &r, RENTAL_PAYMENT_PENDING, NULL);
  if (rc == FL_OK) rc = vehicle_set_state(t, &v, VEHICLE_RESERVED, r.id);
  if (rc == FL_OK) rc = start_step(t, &r, STEP_CHARGE, r.amount_cents);
  return rc;
}

/* Loads the rental a cancel or return names, answering the requester when
 * there is none. Returns FL_OK with *r, FL_ERR_NOT_FOUND (answered), or an error. */
static int load_for_request(hub_txn *t, const hub_origin *o, const fl_msg *m, hub_rental *r) {
  int rc = hub_store_rental_get(t->store, m->env.corr, r);
  if (rc == FL_ERR_NOT_FOUND) {
    char reason[FL_TEXT_MAX + 1];
    snprintf(reason, sizeof reason, "no rental %s", m->env.corr);
    rc = answer(t, o->device, o->reply_topic, m->env.corr, NULL, "UNKNOWN", false, reason, 0);
    return rc == FL_OK ? FL_ERR_NOT_FOUND : rc;
  }
  if (rc == FL_OK) { /* answers go to whoever asked last */
    model_copy(r->kiosk, o->device);
    model_copy(r->reply_topic, o->reply_topic);
  }
  return rc;
}

/* Refuses a request about an existing rental without changing it; the reason
 * reads "rental R is STATE: <advice>". */
static int refuse(hub_txn *t, const hub_rental *r, const char *advice) {
  char reason[FL_TEXT_MAX + 1];
  snprintf(reason, sizeof reason, "rental %s is %s%s: %s", r->id, rental_state_name(r->state),
           r->started ? " and started" : "", advice);
  return answer(t, r->kiosk, r->reply_topic, r->id, r, rental_state_name(r->state), false, reason,
                0);
}

/* Accepts a cancel whose money comes back later (a refund to make, or a
 * charge in flight): the rental is CANCEL_REQUESTED, its vehicle is free at
 * once, and the kiosk is told now that the refund is pending; the final
 * answer (CANCELLED) follows when the money is back, however long the
 * provider takes. */
static int accept_cancel(hub_txn *t, hub_rental *r, const char *reason, const char *pending) {
  int rc = set_state(t, r, RENTAL_CANCEL_REQUESTED, reason);
  if (rc == FL_OK) rc = release_vehicle(t, r);
  if (rc == FL_OK) rc = decide(t, r, true, pending, 0);
  return rc;
}

/* Cancels a rental that is still paying. A charge waiting for its next try
 * is called off at once: the rental is CANCELLED and its vehicle free, and a
 * void follows in case a failed call took money after all. A charge in
 * flight decides when it answers (refund, or nothing to refund). */
static int cancel_while_paying(hub_txn *t, hub_rental *r, const char *reason) {
  hub_step s;
  int rc = hub_store_step_get(t->store, r->id, STEP_CHARGE, &s);
  if (rc != FL_OK && rc != FL_ERR_NOT_FOUND) return rc;
  if (rc == FL_ERR_NOT_FOUND || s.status != STEP_RETRY)
    return accept_cancel(t, r, reason, "the payment in flight is refunded if it went through");
  rc = saga_step_call_off(t, &s);
  if (rc == FL_OK) rc = set_state(t, r, RENTAL_CANCELLED, reason);
  if (rc == FL_OK) rc = release_vehicle(t, r);
  if (rc == FL_OK) rc = decide(t, r, true, NULL, 0);
  if (rc == FL_OK) rc = start_step(t, r, STEP_REFUND, r->amount_cents);
  return rc;
}

int rental_on_cancel(hub_txn *t, const hub_origin *o, const fl_msg *m) {
  hub_rental r;
  int rc = load_for_request(t, o, m, &r);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_OK : rc;
  if (r.state == RENTAL_CANCELLED) return decide(t, &r, true, NULL, 0);
  if (r.state == RENTAL_CANCEL_REQUESTED) { /* asked again: still pending */
    rc = hub_store_rental_put(t->store, &r);
    return rc == FL_OK ? decide(t, &r, true, "refund pending", 0) : rc;
  }
  if (r.state == RENTAL_PAYMENT_PENDING) return cancel_while_paying(t, &r, "cancelled by customer");
  if (r.state != RENTAL_ACTIVE) return refuse(t, &r, "nothing to cancel");
  if (r.started) return refuse(t, &r, "return the vehicle instead");
  rc = accept_cancel(t, &r, "cancelled by customer", "refund pending");
  if (rc == FL_OK) rc = command_vehicle(t, &r, FL_ACT_LOCK);
  if (rc == FL_OK) rc = start_step(t, &r, STEP_REFUND, r.charged_cents);
  return rc;
}

int64_t rental_late_fee(const hub_config *cfg, const hub_rental *r, int64_t now_ms) {
  if (!r->due_ms || now_ms <= r->due_ms || cfg->n_fee_tiers == 0) return 0;
  int64_t hour_ms = 60 * cfg->minute_ms;
  int64_t late_h = (now_ms - r->due_ms + hour_ms - 1) / hour_ms;
  for (int i = 0; i < cfg->n_fee_tiers; i++)
    if (late_h <= cfg->fee_tier_hours[i]) return cfg->fee_tier_cents[i];
  return cfg->fee_tier_cents[cfg->n_fee_tiers - 1];
}

int rental_on_return(hub_txn *t, const hub_origin *o, const fl_msg *m) {
  hub_rental r;
  int rc = load_for_request(t, o, m, &r);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_OK : rc;
  if (r.state == RENTAL_COMPLETED) return decide(t, &r, true, NULL, 0);
  if (r.state == RENTAL_RETURNED) return hub_store_rental_put(t->store, &r);
  if (r.state != RENTAL_ACTIVE) return refuse(t, &r, "nothing to return");
  r.ended_ms = t->now_ms;
  r.fee_cents = rental_late_fee(t->cfg, &r, t->now_ms);
  const fl_rental_return *back = &m->body.rental_return;
  rc = vehicle_returned_at(t, r.vehicle, back->station, back->odometer_m);
  if (rc == FL_OK) rc = release_vehicle(t, &r);
  if (rc == FL_OK) rc = command_vehicle(t, &r, FL_ACT_LOCK);
  if (rc != FL_OK) return rc;
  if (r.fee_cents > 0) {
    rc = set_state(t, &r, RENTAL_RETURNED, "returned late");
    if (rc == FL_OK) rc = start_step(t, &r, STEP_FEE, r.fee_cents);
    return rc;
  }
  rc = set_state(t, &r, RENTAL_COMPLETED, NULL);
  if (rc == FL_OK) rc = decide(t, &r, true, NULL, 0);
  return rc;
}

int rental_on_lock(hub_txn *t, const hub_origin *o, const fl_msg *m) {
  hub_vehicle v;
  int rc = vehicle_of_sender(t, o, &v);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_OK : rc;
  const fl_lock *l = &m->body.lock;
  if (l->refused) {
    char text[FL_TEXT_MAX + 1];
    snprintf(text, sizeof text, "unlock refused for %s: %s%s", l->customer[0] ? l->customer : "?",
             l->reason, l->offline ? " (offline)" : "");
    return publish_alert(t, v.id, "unlock_refused", text);
  }
  if (l->locked) return FL_OK;
  /* An unlock starts the rental it was for: no cancel after that. */
  const char *id = m->env.corr[0] ? m->env.corr : v.rental;
  if (!id[0]) return FL_OK;
  hub_rental r;
  rc = hub_store_rental_get(t->store, id, &r);
  if (rc == FL_ERR_NOT_FOUND) return FL_OK;
  if (rc != FL_OK || r.started || r.state != RENTAL_ACTIVE) return rc;
  r.started = true;
  r.updated_ms = t->now_ms;
  return hub_store_rental_put(t->store, &r);
}

/* The charge step finished. */
static int charge_done(hub_txn *t, hub_rental *r, hub_step *s, const pay_result *res) {
  int rc;
  char reason[FL_TEXT_MAX + 1];
  if (res->outcome == PAY_OK) {
    r->charged_cents = res->amount_cents;
    rc = publish_payment(t, r->id, r->customer, "charged", res->amount_cents);
    if (rc != FL_OK) return rc;
    if (r->state == RENTAL_PAYMENT_PENDING) {
      hub_vehicle v;
      r->due_ms = t->now_ms + (int64_t)r->minutes * t->cfg->minute_ms;
      rc = set_state(t, r, RENTAL_ACTIVE, NULL);
      if (rc == FL_OK) rc = hub_store_vehicle_get(t->store, r->vehicle, &v);
      if (rc == FL_OK) rc = vehicle_set_state(t, &v, VEHICLE_RENTED, r->id);
      if (rc == FL_OK) rc = decide(t, r, true, NULL, 0);
      if (rc == FL_OK) rc = command_vehicle(t, r, FL_ACT_UNLOCK);
      if (rc == FL_OK) rc = booking_on_rental_active(t, r);
      return rc;
    }
    /* cancelled or compensated while paying: give the money back */
    rc = hub_store_rental_put(t->store, r);
    if (rc == FL_OK) rc = start_step(t, r, STEP_REFUND, r->charged_cents);
    return rc;
  }
  bool final;
  rc = saga_charge_refused(t, s, res, &final, reason, sizeof reason);
  if (rc != FL_OK || !final) return rc;
  bool was_cancel = r->state == RENTAL_CANCEL_REQUESTED;
  if (r->state != RENTAL_PAYMENT_PENDING && !was_cancel) return FL_OK;
  rc = set_state(t, r, was_cancel ? RENTAL_CANCELLED : RENTAL_REJECTED, was_cancel ? NULL : reason);
  if (rc == FL_OK) rc = release_vehicle(t, r);
  if (rc == FL_OK) rc = decide(t, r, was_cancel, NULL, 0);
  /* A failed call may still have moved money: void it (a no-op if not). */
  if (rc == FL_OK && res->outcome == PAY_FAILED) rc = start_step(t, r, STEP_REFUND, r->amount_cents);
  return rc;
}

/* The refund step finished (cancel, compensation or void). */
static int refund_done(hub_txn *t, hub_rental *r, hub_step *s, const pay_result *res) {
  if (res->outcome != PAY_OK) {
    bool gave_up;
    return saga_step_failed(t, s, res, &gave_up);
  }
  r->refunded_cents += res->amount_cents;
  int rc = res->amount_cents ? publish_payment(t, r->id, r->customer, "refunded", res->amount_cents)
                             : FL_OK; /* a void that found nothing to give back */
  if (rc != FL_OK) return rc;
  if (r->state != RENTAL_CANCEL_REQUESTED) return hub_store_rental_put(t->store, r);
  rc = set_state(t, r, RENTAL_CANCELLED, NULL);
  if (rc == FL_OK) rc = release_vehicle(t, r);
  if (rc == FL_OK) rc = decide(t, r, true, NULL, 0);
  return rc;
}

/* The late-fee step finished: the rental completes either way; a fee that
 * could not be charged stays owed (the step is not "done"). */
static int fee_done(hub_txn *t, hub_rental *r, hub_step *s, const pay_result *res) {
  if (res->outcome == PAY_FAILED) {
    bool gave_up;
    int rc = saga_step_failed(t, s, res, &gave_up);
    if (rc != FL_OK || !gave_up) return rc;
  }
  int rc = FL_OK;
  if (res->outcome == PAY_OK) {
    r->charged_cents += res->amount_cents;
    rc = publish_payment(t, r->id, r->customer, "fee_charged", res->amount_cents);
    if (rc != FL_OK) return rc;
  }
  if (r->state != RENTAL_RETURNED) return hub_store_rental_put(t->store, r);
  rc = set_state(t, r, RENTAL_COMPLETED, res->outcome == PAY_OK ? "" : "late fee owed");
  if (rc == FL_OK) rc = decide(t, r, true, NULL, 0);
  return rc;
}

static int find_owner(hub_txn *t, const char *id, saga_owner *who) {
  hub_rental r;
  int rc = hub_store_rental_get(t->store, id, &r);
  if (rc == FL_OK) *who = owner_of(&r);
  return rc;
}

static int on_step_result(hub_txn *t, hub_step *s, const pay_result *res) {
  hub_rental r;
  int rc = hub_store_rental_get(t->store, s->owner, &r);
  if (rc != FL_OK) return rc;
  switch (s->kind) {
  case STEP_CHARGE: return charge_done(t, &r, s, res);
  case STEP_REFUND: return refund_done(t, &r, s, res);
  case STEP_FEE: return fee_done(t, &r, s, res);
  default: return FL_ERR_STATE;
  }
}

const saga_owner_kind rental_saga_owner = {
    .name = "rental", .find = find_owner, .on_result = on_step_result};

static int overdue_one(void *ctx, const hub_rental *r) {
  hub_txn *t = ctx;
  int rc = hub_store_alert_record(t->store, "rental_overdue", r->id, t->now_ms);
  if (rc != FL_OK) return rc == FL_ERR_CONFLICT ? FL_OK : rc;
  int64_t fee = rental_late_fee(t->cfg, r, t->now_ms + 1);
  char text[FL_TEXT_MAX + 1];
  snprintf(text, sizeof text, "rental %.40s of %.40s (vehicle %.40s) is overdue; late fee from %lld.%02lld",
           r->id, r->customer, r->vehicle, (long long)(fee / 100), (long long)(fee % 100));
  return publish_alert(t, r->id, "rental_overdue", text);
}

int rental_overdue_alerts(hub_txn *t) {
  return hub_store_rentals_overdue(t->store, t->now_ms, overdue_one, t);
}

int rental_compensate(hub_txn *t, const char *id, char *msg, size_t cap) {
  hub_rental r;
  int rc = hub_store_rental_get(t->store, id, &r);
  if (rc != FL_OK) {
    snprintf(msg, cap, "no rental %s", id);
    return rc;
  }
  if (decided(&r) && r.state != RENTAL_ACTIVE) {
    snprintf(msg, cap, "rental %s is %s: nothing to compensate", r.id, rental_state_name(r.state));
    return FL_ERR_STATE;
  }
  const char *why = "compensated by operator";
  if (r.state == RENTAL_PAYMENT_PENDING) {
    rc = cancel_while_paying(t, &r, why);
  } else if (r.charged_cents > 0) {
    rc = accept_cancel(t, &r, why, "refund pending");
    if (rc == FL_OK) rc = start_step(t, &r, STEP_REFUND, r.charged_cents);
  } else { /* nothing was charged: cancelled at once */
    rc = set_state(t, &r, RENTAL_CANCEL_REQUESTED, why);
    if (rc == FL_OK) rc = set_state(t, &r, RENTAL_CANCELLED, NULL);
    if (rc == FL_OK) rc = release_vehicle(t, &r);
    if (rc == FL_OK) rc = decide(t, &r, true, NULL, 0);
  }
  snprintf(msg, cap, "rental %s: %s", r.id,
           r.state == RENTAL_CANCELLED ? "cancelled, vehicle released" : "compensation started");
  return rc;
}
