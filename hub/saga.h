/* Saga steps: the payment calls of rentals (hub/rental.c) and bookings
 * (hub/booking.c), recorded in saga_steps before they are made.
 *
 * A step is keyed by (owner id, step name); the owner is a rental or a
 * booking. Their ids are request correlation ids, unique across both kinds
 * (P-ENV-7; the hub also refuses a request that reuses the other kind's id),
 * so one table and one idempotency-key scheme ("<id>:<step>") serve both. A
 * step named "refund" gives back the owner's charging step ("charge" for a
 * rental, "deposit" for a booking). */
#ifndef HUB_SAGA_H
#define HUB_SAGA_H

#include <stdbool.h>
#include <stddef.h>

#include "engine_internal.h"

/* Who a step belongs to: enough to build the provider call. */
typedef struct saga_owner {
  const char *id;       /* rental or booking id */
  const char *customer; /* who pays */
  const char *charge;   /* the step a "refund" step refunds */
} saga_owner;

/* Records step of o as "calling" (idempotency key "<id>:<step>") and hands
 * it to the payment workers after commit. A step that exists already is left
 * alone (steps are started once). Returns FL_OK or the store's fl_err. */
int saga_step_start(hub_engine *e, const saga_owner *o, const char *step, int64_t amount_cents,
                    int64_t now_ms);

/* Puts step s of o back in flight (after a restart, a back-off or an
 * operator's retry): "calling" again with one more attempt unless it is
 * calling already, same idempotency key. Returns FL_OK or an fl_err. */
int saga_step_resubmit(hub_engine *e, const saga_owner *o, const hub_step *s, int64_t now_ms);

/* A call of step s failed: schedules another try after a back-off
 * (status "retry"), or gives up (status "failed", *gave_up true) after the
 * configured attempts; a "refund" step never gives up. Stores s. */
int saga_step_failed(hub_engine *e, hub_step *s, const pay_result *res, int64_t now_ms,
                     bool *gave_up);

/* A charging step s did not go through (res declined or failed). A failure
 * is retried as saga_step_failed() does: then *final is false and nothing
 * else is to be done yet. Otherwise (declined, or failed for the last time)
 * *final is true and reason gets "payment declined: ..." or "payment failed:
 * ...". Returns FL_OK or the store's fl_err. */
int saga_charge_refused(hub_engine *e, hub_step *s, const pay_result *res, int64_t now_ms,
                        bool *final, char *reason, size_t cap);

/* Loads the step res answers into *s and records a final outcome (ok ->
 * "done", declined -> "declined"; a failure leaves it for saga_step_failed).
 * Returns FL_OK when the result is new, FL_ERR_STATE for a late duplicate of
 * a call already settled, FL_ERR_NOT_FOUND, or the store's fl_err. */
int saga_step_settle(hub_engine *e, const pay_result *res, int64_t now_ms, hub_step *s);

/* Answers a kiosk's request about a rental or booking: a decision on corr
 * with state and reason (may be NULL) besides what d holds (subject, ok,
 * retry_after_s, amounts), stored as device's next downlink message and
 * published on topic after commit. Returns FL_OK or an fl_err. */
int saga_decision(hub_engine *e, const char *device, const char *topic, const char *corr,
                  const fl_decision *d, const char *state, const char *reason);

#endif
