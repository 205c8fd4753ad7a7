#include "rental.h"

#include <stdio.h>
#include <string.h>

#include "booking.h"
#include "fleet.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/topic.h"
#include "saga.h"

#define copy_str(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

static bool state_is(const hub_rental *r, const char *s) { return strcmp(r->state, s) == 0; }

/* Answers a request on device's reply topic; used also when no rental row exists. */
static int answer(hub_engine *e, const char *device, const char *topic, const char *corr,
                  const hub_rental *r, const char *state, bool ok, const char *reason,
                  uint32_t retry_after_s) {
  fl_decision d = {.subject = FL_SUBJ_RENTAL, .ok = ok, .retry_after_s = retry_after_s};
  if (r) {
    d.charged_cents = r->charged_cents;
    d.refunded_cents = r->refunded_cents;
    d.fee_cents = r->fee_cents;
    d.due_ms = r->due_ms;
  }
  return saga_decision(e, device, topic, corr, &d, state, reason);
}

/* Sends the decision on r's current state to its latest requester. */
static int decide(hub_engine *e, const hub_rental *r, bool ok, const char *reason,
                  uint32_t retry_after_s) {
  return answer(e, r->kiosk, r->reply_topic, r->id, r, r->state, ok,
                reason ? reason : (r->reason[0] ? r->reason : NULL), retry_after_s);
}

/* Moves r to state (with reason, may be NULL), stores and publishes it. */
static int set_state(hub_engine *e, hub_rental *r, const char *state, const char *reason,
                     int64_t now) {
  char from[24];
  copy_str(from, r->state);
  copy_str(r->state, state);
  if (reason) copy_str(r->reason, reason);
  r->updated_ms = now;
  int rc = hub_store_rental_put(hub_engine_store(e), r);
  if (rc == FL_OK) rc = hub_emit_rental(e, r, from);
  if (rc == FL_OK) fl_info("rental=%s vehicle=%s state=%s%s%s", r->id, r->vehicle, state,
                           reason ? " reason=" : "", reason ? reason : "");
  return rc;
}

/* The rental as the owner of its saga steps. */
static saga_owner owner_of(const hub_rental *r) {
  return (saga_owner){.id = r->id, .customer = r->customer, .charge = "charge"};
}

/* Records step "calling" and hands it to the payment workers after commit. */
static int start_step(hub_engine *e, const hub_rental *r, const char *step, int64_t amount,
                      int64_t now) {
  saga_owner o = owner_of(r);
  return saga_step_start(e, &o, step, amount, now);
}

/* Sends a lock or unlock command to the rental's vehicle. */
static int command_vehicle(hub_engine *e, const hub_rental *r, fl_action action, int64_t now) {
  char topic[FL_TOPIC_MAX];
  if (fl_topic_device(topic, sizeof topic, r->vehicle, FL_CH_DOWN_CMD) < 0) return FL_ERR_INVALID;
  fl_msg m;
  fl_msg_init(&m, FL_MSG_COMMAND);
  m.body.command.action = action;
  int64_t expires = now + (int64_t)hub_engine_config(e)->command_ttl_s * 1000;
  m.body.command.expires_ms = expires;
  copy_str(m.body.command.customer, r->customer);
  return hub_emit_downlink(e, r->vehicle, topic, &m, r->id, expires);
}

/* Gives the rental's vehicle back to the fleet if it still holds this rental. */
static int release_vehicle(hub_engine *e, const hub_rental *r, int64_t now) {
  hub_vehicle v;
  int rc = hub_store_vehicle_get(hub_engine_store(e), r->vehicle, &v);
  if (rc == FL_ERR_NOT_FOUND) return FL_OK;
  if (rc != FL_OK) return rc;
  if (strcmp(v.rental, r->id) != 0) return FL_OK;
  return fleet_release_vehicle(e, &v, now);
}

/* Refuses a new rental: stores it REJECTED and answers the kiosk. */
static int reject_new(hub_engine *e, hub_rental *r, const char *reason, uint32_t retry_after_s,
                      int64_t now) {
  int rc = set_state(e, r, "REJECTED", reason, now);
  if (rc == FL_OK) rc = decide(e, r, false, reason, retry_after_s);
  return rc;
}

/* Returns true for states in which a request needs no new work: it was
 * decided already, and the decision is sent again. */
static bool decided(const hub_rental *r) {
  return !state_is(r, "PAYMENT_PENDING") && !state_is(r, "CANCEL_REQUESTED") &&
         !state_is(r, "RETURNED");
}

int rental_on_request(hub_engine *e, const hub_origin *o, const fl_msg *m) {
  hub_store *st = hub_engine_store(e);
  const fl_rental_request *q = &m->body.rental_request;
  hub_rental r;
  int rc = hub_store_rental_get(st, m->env.corr, &r);
  if (rc == FL_OK) /* the kiosk asked again for the same rental id */
    return decided(&r) ? decide(e, &r, !state_is(&r, "REJECTED"), NULL, 0) : FL_OK;
  if (rc != FL_ERR_NOT_FOUND) return rc;

  memset(&r, 0, sizeof r);
  copy_str(r.id, m->env.corr);
  copy_str(r.vehicle, q->vehicle);
  copy_str(r.customer, q->customer);
  copy_str(r.kiosk, o->device);
  copy_str(r.reply_topic, o->reply_topic);
  copy_str(r.state, "REQUESTED");
  r.minutes = q->minutes;
  r.created_ms = r.updated_ms = o->now_ms;

  hub_vehicle v;
  char reason[FL_TEXT_MAX + 1];
  rc = hub_store_vehicle_get(st, q->vehicle, &v);
  if (rc == FL_ERR_NOT_FOUND) {
    snprintf(reason, sizeof reason, "no vehicle %s", q->vehicle);
    return reject_new(e, &r, reason, 0, o->now_ms);
  }
  if (rc != FL_OK) return rc;
  if (strcmp(v.state, "AVAILABLE") != 0) {
    snprintf(reason, sizeof reason, "vehicle %s is not available (%s)", v.id, v.state);
    return reject_new(e, &r, reason, 0, o->now_ms);
  }
  bool allowed;
  rc = booking_admit_rental(e, &r, o->now_ms, &allowed, reason, sizeof reason);
  if (rc != FL_OK) return rc;
  if (!allowed) return reject_new(e, &r, reason, 0, o->now_ms);
  uint32_t retry_after = 0;
  if (!hub_payment_admit(e, &retry_after)) {
    snprintf(reason, sizeof reason, "payment unavailable, try again in %u s", retry_after);
    return reject_new(e, &r, reason, retry_after, o->now_ms);
  }
  r.amount_cents = (v.rate_cents * (int64_t)q->minutes + 59) / 60;
  rc = set_state(e, &r, "PAYMENT_PENDING", NULL, o->now_ms);
  if (rc == FL_OK) rc = fleet_set_vehicle_state(e, &v, "RESERVED", r.id, o->now_ms);
  if (rc == FL_OK) rc = start_step(e, &r, "charge", r.amount_cents, o->now_ms);
  return rc;
}

/* Loads the rental a cancel or return names, answering the requester when
 * there is none. Returns FL_OK with *r, FL_ERR_NOT_FOUND (answered), or an error. */
static int load_for_request(hub_engine *e, const hub_origin *o, const fl_msg *m, hub_rental *r) {
  int rc = hub_store_rental_get(hub_engine_store(e), m->env.corr, r);
  if (rc == FL_ERR_NOT_FOUND) {
    char reason[FL_TEXT_MAX + 1];
    snprintf(reason, sizeof reason, "no rental %s", m->env.corr);
    rc = answer(e, o->device, o->reply_topic, m->env.corr, NULL, "UNKNOWN", false, reason, 0);
    return rc == FL_OK ? FL_ERR_NOT_FOUND : rc;
  }
  if (rc == FL_OK) { /* answers go to whoever asked last */
    copy_str(r->kiosk, o->device);
    copy_str(r->reply_topic, o->reply_topic);
  }
  return rc;
}

/* Refuses a request about an existing rental without changing it; the reason
 * reads "rental R is STATE: <advice>". */
static int refuse(hub_engine *e, const hub_rental *r, const char *advice) {
  char reason[FL_TEXT_MAX + 1];
  snprintf(reason, sizeof reason, "rental %s is %s%s: %s", r->id, r->state,
           r->started ? " and started" : "", advice);
  return answer(e, r->kiosk, r->reply_topic, r->id, r, r->state, false, reason, 0);
}

/* Cancels a rental that is still paying. A charge waiting for its next try
 * is called off at once: the rental is CANCELLED and its vehicle free, and a
 * void follows in case a failed call took money after all. A charge in
 * flight decides when it answers (refund, or nothing to refund). */
static int cancel_while_paying(hub_engine *e, hub_rental *r, const char *reason, int64_t now) {
  hub_store *st = hub_engine_store(e);
  hub_step s;
  int rc = hub_store_step_get(st, r->id, "charge", &s);
  if (rc != FL_OK && rc != FL_ERR_NOT_FOUND) return rc;
  if (rc == FL_ERR_NOT_FOUND || strcmp(s.status, "retry") != 0)
    return set_state(e, r, "CANCEL_REQUESTED", reason, now);
  copy_str(s.status, "cancelled");
  s.updated_ms = now;
  rc = hub_store_step_put(st, &s);
  if (rc == FL_OK) rc = set_state(e, r, "CANCELLED", reason, now);
  if (rc == FL_OK) rc = release_vehicle(e, r, now);
  if (rc == FL_OK) rc = decide(e, r, true, NULL, 0);
  if (rc == FL_OK) rc = start_step(e, r, "refund", r->amount_cents, now);
  return rc;
}

int rental_on_cancel(hub_engine *e, const hub_origin *o, const fl_msg *m) {
  hub_rental r;
  int rc = load_for_request(e, o, m, &r);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_OK : rc;
  if (state_is(&r, "CANCELLED")) return decide(e, &r, true, NULL, 0);
  if (state_is(&r, "CANCEL_REQUESTED")) return hub_store_rental_put(hub_engine_store(e), &r);
  if (state_is(&r, "PAYMENT_PENDING"))
    return cancel_while_paying(e, &r, "cancelled by customer", o->now_ms);
  if (!state_is(&r, "ACTIVE")) return refuse(e, &r, "nothing to cancel");
  if (r.started) return refuse(e, &r, "return the vehicle instead");
  rc = set_state(e, &r, "CANCEL_REQUESTED", "cancelled by customer", o->now_ms);
  if (rc == FL_OK) rc = command_vehicle(e, &r, FL_ACT_LOCK, o->now_ms);
  if (rc == FL_OK) rc = start_step(e, &r, "refund", r.charged_cents, o->now_ms);
  return rc;
}

/* Returns the late fee for returning r at now, by the configured tiers. */
static int64_t late_fee(const hub_config *cfg, const hub_rental *r, int64_t now) {
  if (!r->due_ms || now <= r->due_ms || cfg->n_fee_tiers == 0) return 0;
  int64_t hour_ms = 60 * cfg->minute_ms;
  int64_t late_h = (now - r->due_ms + hour_ms - 1) / hour_ms;
  for (int i = 0; i < cfg->n_fee_tiers; i++)
    if (late_h <= cfg->fee_tier_hours[i]) return cfg->fee_tier_cents[i];
  return cfg->fee_tier_cents[cfg->n_fee_tiers - 1];
}

int rental_on_return(hub_engine *e, const hub_origin *o, const fl_msg *m) {
  hub_rental r;
  int rc = load_for_request(e, o, m, &r);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_OK : rc;
  if (state_is(&r, "COMPLETED")) return decide(e, &r, true, NULL, 0);
  if (state_is(&r, "RETURNED")) return hub_store_rental_put(hub_engine_store(e), &r);
  if (!state_is(&r, "ACTIVE")) return refuse(e, &r, "nothing to return");
  r.ended_ms = o->now_ms;
  r.fee_cents = late_fee(hub_engine_config(e), &r, o->now_ms);
  rc = release_vehicle(e, &r, o->now_ms);
  if (rc == FL_OK) rc = command_vehicle(e, &r, FL_ACT_LOCK, o->now_ms);
  if (rc != FL_OK) return rc;
  if (r.fee_cents > 0) {
    rc = set_state(e, &r, "RETURNED", "returned late", o->now_ms);
    if (rc == FL_OK) rc = start_step(e, &r, "fee", r.fee_cents, o->now_ms);
    return rc;
  }
  rc = set_state(e, &r, "COMPLETED", NULL, o->now_ms);
  if (rc == FL_OK) rc = decide(e, &r, true, NULL, 0);
  return rc;
}

int rental_mark_started(hub_engine *e, const char *rental, int64_t now_ms) {
  hub_rental r;
  int rc = hub_store_rental_get(hub_engine_store(e), rental, &r);
  if (rc == FL_ERR_NOT_FOUND) return FL_OK;
  if (rc != FL_OK || r.started || !state_is(&r, "ACTIVE")) return rc;
  r.started = true;
  r.updated_ms = now_ms;
  return hub_store_rental_put(hub_engine_store(e), &r);
}

/* The charge step finished. */
static int charge_done(hub_engine *e, hub_rental *r, hub_step *s, const pay_result *res,
                       int64_t now) {
  int rc;
  char reason[FL_TEXT_MAX + 1];
  if (res->outcome == PAY_OK) {
    r->charged_cents = res->amount_cents;
    if (state_is(r, "PAYMENT_PENDING")) {
      hub_vehicle v;
      r->due_ms = now + (int64_t)r->minutes * hub_engine_config(e)->minute_ms;
      rc = set_state(e, r, "ACTIVE", NULL, now);
      if (rc == FL_OK) rc = hub_store_vehicle_get(hub_engine_store(e), r->vehicle, &v);
      if (rc == FL_OK) rc = fleet_set_vehicle_state(e, &v, "RENTED", r->id, now);
      if (rc == FL_OK) rc = decide(e, r, true, NULL, 0);
      if (rc == FL_OK) rc = command_vehicle(e, r, FL_ACT_UNLOCK, now);
      if (rc == FL_OK) rc = booking_on_rental_active(e, r, now);
      return rc;
    }
    /* cancelled or compensated while paying: give the money back */
    rc = hub_store_rental_put(hub_engine_store(e), r);
    if (rc == FL_OK) rc = start_step(e, r, "refund", r->charged_cents, now);
    return rc;
  }
  bool final;
  rc = saga_charge_refused(e, s, res, now, &final, reason, sizeof reason);
  if (rc != FL_OK || !final) return rc;
  bool was_cancel = state_is(r, "CANCEL_REQUESTED");
  if (!state_is(r, "PAYMENT_PENDING") && !was_cancel) return FL_OK;
  rc = set_state(e, r, was_cancel ? "CANCELLED" : "REJECTED", was_cancel ? NULL : reason, now);
  if (rc == FL_OK) rc = release_vehicle(e, r, now);
  if (rc == FL_OK) rc = decide(e, r, was_cancel, NULL, 0);
  /* A failed call may still have moved money: void it (a no-op if not). */
  if (rc == FL_OK && res->outcome == PAY_FAILED) rc = start_step(e, r, "refund", r->amount_cents, now);
  return rc;
}

/* The refund step finished (cancel, compensation or void). */
static int refund_done(hub_engine *e, hub_rental *r, hub_step *s, const pay_result *res,
                       int64_t now) {
  if (res->outcome != PAY_OK) {
    bool gave_up;
    return saga_step_failed(e, s, res, now, &gave_up);
  }
  r->refunded_cents += res->amount_cents;
  if (!state_is(r, "CANCEL_REQUESTED")) return hub_store_rental_put(hub_engine_store(e), r);
  int rc = set_state(e, r, "CANCELLED", NULL, now);
  if (rc == FL_OK) rc = release_vehicle(e, r, now);
  if (rc == FL_OK) rc = decide(e, r, true, NULL, 0);
  return rc;
}

/* The late-fee step finished: the rental completes either way; a fee that
 * could not be charged stays owed (the step is not "done"). */
static int fee_done(hub_engine *e, hub_rental *r, hub_step *s, const pay_result *res,
                    int64_t now) {
  if (res->outcome == PAY_FAILED) {
    bool gave_up;
    int rc = saga_step_failed(e, s, res, now, &gave_up);
    if (rc != FL_OK || !gave_up) return rc;
  }
  if (res->outcome == PAY_OK) r->charged_cents += res->amount_cents;
  if (!state_is(r, "RETURNED")) return hub_store_rental_put(hub_engine_store(e), r);
  int rc = set_state(e, r, "COMPLETED", res->outcome == PAY_OK ? "" : "late fee owed", now);
  if (rc == FL_OK) rc = decide(e, r, true, NULL, 0);
  return rc;
}

int rental_on_payment(hub_engine *e, const pay_result *res, int64_t now_ms) {
  hub_rental r;
  hub_step s;
  int rc = hub_store_rental_get(hub_engine_store(e), res->job.rental, &r);
  if (rc == FL_ERR_NOT_FOUND) return booking_on_payment(e, res, now_ms);
  if (rc == FL_OK) rc = saga_step_settle(e, res, now_ms, &s);
  if (rc == FL_ERR_STATE) return FL_OK; /* a late duplicate of a settled call */
  if (rc == FL_ERR_NOT_FOUND) {
    fl_warn("payment result for unknown rental=%s step=%s", res->job.rental, res->job.step);
    return FL_OK;
  }
  if (rc != FL_OK) return rc;
  if (strcmp(s.step, "charge") == 0) return charge_done(e, &r, &s, res, now_ms);
  if (strcmp(s.step, "refund") == 0) return refund_done(e, &r, &s, res, now_ms);
  return fee_done(e, &r, &s, res, now_ms);
}

/* Puts step s back in flight; steps of bookings go to hub/booking.c. */
static int resubmit(void *ctx, const hub_step *step) {
  hub_engine *e = ((void **)ctx)[0];
  int64_t now = *(const int64_t *)((void **)ctx)[1];
  hub_rental r;
  int rc = hub_store_rental_get(hub_engine_store(e), step->rental, &r);
  if (rc == FL_ERR_NOT_FOUND) return booking_resubmit(e, step, now);
  if (rc != FL_OK) return rc;
  saga_owner o = owner_of(&r);
  return saga_step_resubmit(e, &o, step, now);
}

int rental_resume(hub_engine *e, const char *status, int64_t now_ms) {
  void *ctx[2] = {e, &now_ms};
  return hub_store_steps_where(hub_engine_store(e), status, now_ms, resubmit, ctx);
}

int rental_op_retry(hub_engine *e, const hub_op *op, hub_op_result *res, int64_t now_ms) {
  static const char *const steps[] = {"charge", "refund", "fee"};
  hub_store *st = hub_engine_store(e);
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    hub_step s;
    int rc = hub_store_step_get(st, op->rental, steps[i], &s);
    if (rc == FL_ERR_NOT_FOUND) continue;
    if (rc != FL_OK) return res->code = rc;
    if (strcmp(s.status, "retry") != 0 && strcmp(s.status, "failed") != 0) continue;
    void *ctx[2] = {e, &now_ms};
    rc = resubmit(ctx, &s);
    res->code = rc;
    snprintf(res->message, sizeof res->message, "rental %s: step %s retried (attempt %d)",
             op->rental, s.step, s.attempts + 1);
    return rc;
  }
  res->code = FL_ERR_STATE;
  snprintf(res->message, sizeof res->message, "rental %s has no failed or waiting step", op->rental);
  return res->code;
}

int rental_op_compensate(hub_engine *e, const hub_op *op, hub_op_result *res, int64_t now_ms) {
  hub_rental r;
  int rc = hub_store_rental_get(hub_engine_store(e), op->rental, &r);
  if (rc != FL_OK) {
    snprintf(res->message, sizeof res->message, "no rental %s", op->rental);
    return res->code = rc;
  }
  if (decided(&r) && !state_is(&r, "ACTIVE")) {
    snprintf(res->message, sizeof res->message, "rental %s is %s: nothing to compensate", r.id, r.state);
    return res->code = FL_ERR_STATE;
  }
  const char *why = "compensated by operator";
  if (state_is(&r, "PAYMENT_PENDING")) {
    rc = cancel_while_paying(e, &r, why, now_ms);
  } else {
    rc = set_state(e, &r, "CANCEL_REQUESTED", why, now_ms);
    if (rc == FL_OK && r.charged_cents > 0) rc = start_step(e, &r, "refund", r.charged_cents, now_ms);
    if (rc == FL_OK && r.charged_cents == 0) {
      rc = set_state(e, &r, "CANCELLED", NULL, now_ms);
      if (rc == FL_OK) rc = release_vehicle(e, &r, now_ms);
      if (rc == FL_OK) rc = decide(e, &r, true, NULL, 0);
    }
  }
  res->code = rc;
  snprintf(res->message, sizeof res->message, "rental %s: %s", r.id,
           state_is(&r, "CANCELLED") ? "cancelled, vehicle released" : "compensation started");
  return rc;
}
