/* Saga steps: the payment calls of rentals (hub/rental.c) and bookings
 * (hub/booking.c), recorded in the store before they are made, called after
 * commit, called again with the same idempotency key after a restart.
 *
 * A step is keyed by (owner id, step kind); its owner is a rental or a
 * booking. Their ids are request correlation ids, unique across both kinds
 * (P-ENV-7; the hub also refuses a request that reuses the other kind's id),
 * so one table and one idempotency-key scheme ("<owner>:<step>") serve both.
 * A refund step gives back the owner's charging step (a rental's charge, a
 * booking's deposit).
 *
 * The saga routes payment results: each kind of owner registers a
 * saga_owner_kind (what it is called, how to find one, what to do with a
 * step's result), and saga_on_result() hands each result to the owner whose
 * step it settles. The owner kinds are passed in, so the saga calls no
 * domain module by name. */
#ifndef HUB_SAGA_H
#define HUB_SAGA_H

#include <stdbool.h>
#include <stddef.h>

#include "txn.h"

/* Who a step belongs to: enough to build the provider call. */
typedef struct saga_owner {
  char id[FL_ID_MAX + 1];       /* rental or booking id */
  char customer[FL_ID_MAX + 1]; /* who pays */
  step_kind charge;             /* the step a refund refunds */
} saga_owner;

/* A kind of owner of saga steps. */
typedef struct saga_owner_kind {
  const char *name; /* "rental", "booking" */
  /* Fills *who and returns FL_OK when id is an owner of this kind;
   * FL_ERR_NOT_FOUND when it is not; or the store's fl_err. */
  int (*find)(hub_txn *t, const char *id, saga_owner *who);
  /* The call of step s (already settled by the saga: "done" or "declined",
   * or still "calling" for a failure) returned res. */
  int (*on_result)(hub_txn *t, hub_step *s, const pay_result *res);
} saga_owner_kind;

/* The owner kinds a hub has (see saga.h's top comment). */
typedef struct saga_owners {
  const saga_owner_kind *const *kinds;
  size_t n;
} saga_owners;

/* Records step `kind` of owner o as "calling" (idempotency key
 * "<id>:<step>") and holds its call for after commit. A step that exists
 * already is left alone (steps start once). */
int saga_step_start(hub_txn *t, const saga_owner *o, step_kind kind, int64_t amount_cents);

/* Puts step s of o back in flight (after a restart, a back-off or an
 * operator's retry): "calling" again with one more attempt unless it is
 * calling already, same idempotency key. */
int saga_step_resubmit(hub_txn *t, const saga_owner *o, const hub_step *s);

/* A call of step s failed: schedules another try after a back-off (status
 * "retry"), or gives up (status "failed", *gave_up true) after the
 * configured attempts; a refund never gives up. Stores s. */
int saga_step_failed(hub_txn *t, hub_step *s, const pay_result *res, bool *gave_up);

/* A charging step s did not go through (res declined or failed). A failure
 * is retried as saga_step_failed() does: then *final is false and nothing
 * else is to be done yet. Otherwise (declined, or failed for the last time)
 * *final is true and reason gets "payment declined: ..." or "payment failed:
 * ...". */
int saga_charge_refused(hub_txn *t, hub_step *s, const pay_result *res, bool *final, char *reason,
                        size_t cap);

/* Calls off step s (not in flight: waiting for a retry, or failed). */
int saga_step_call_off(hub_txn *t, hub_step *s);

/* Routes a payment result to the owner of its step, once: a late duplicate
 * of a result already settled, and a result for an unknown owner, are
 * logged and change nothing. */
int saga_on_result(hub_txn *t, const saga_owners *owners, const pay_result *res);

/* Puts every step with the given status back in flight: "calling" (after a
 * restart: all of them) or "retry" whose time has come (t->now_ms). */
int saga_resume(hub_txn *t, const saga_owners *owners, step_status status);

/* Operator: runs again the step of owner id that waits for a retry or gave
 * up. FL_ERR_NOT_FOUND when there is no such owner, FL_ERR_STATE when it has
 * no such step; msg gets a sentence either way. */
int saga_retry(hub_txn *t, const saga_owners *owners, const char *id, char *msg, size_t cap);

/* Answers a kiosk's request about a rental or booking: a decision on corr
 * with state and reason (may be NULL) besides what d holds (subject, ok,
 * retry_after_s, amounts), sent as device's next downlink message on topic. */
int saga_decision(hub_txn *t, const char *device, const char *topic, const char *corr,
                  const fl_decision *d, const char *state, const char *reason);

#endif
