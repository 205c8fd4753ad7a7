/* The rental and payment saga.
 *
 *   rental_request -> PAYMENT_PENDING (vehicle RESERVED, step charge "calling")
 *     charge ok       -> ACTIVE (vehicle RENTED, decision, unlock command)
 *     charge declined -> REJECTED (vehicle AVAILABLE, decision with reason)
 *     charge failed   -> retried with back-off; after max attempts REJECTED
 *                        and the charge is voided (refund step) in case it
 *                        went through
 *   rental_cancel (not started) -> CANCEL_REQUESTED (step refund) -> CANCELLED
 *   rental_return -> RETURNED -> late fee step if late -> COMPLETED
 *   lock event "unlocked" -> the rental has started: no cancel after that
 *
 * Every step is written (status "calling") before the provider is called, in
 * the same transaction as the state change that needs it; the call happens
 * after commit, and a restart calls again with the same idempotency key.
 * The moves allowed are model_rental_may()'s (hub/model.h). */
#ifndef HUB_RENTAL_H
#define HUB_RENTAL_H

#include <stddef.h>

#include "saga.h"
#include "txn.h"

/* Handlers of kiosk and vehicle events; m is the decoded event. Return FL_OK
 * (a refused request is still FL_OK: the refusal is the decision sent back)
 * or an fl_err when the store failed. */
int rental_on_request(hub_txn *t, const hub_origin *o, const fl_msg *m);
int rental_on_cancel(hub_txn *t, const hub_origin *o, const fl_msg *m);
int rental_on_return(hub_txn *t, const hub_origin *o, const fl_msg *m);
int rental_on_lock(hub_txn *t, const hub_origin *o, const fl_msg *m);

/* Rentals as owners of saga steps (their payment results come here). */
extern const saga_owner_kind rental_saga_owner;

/* Returns the late fee for returning r at now_ms, by cfg's tiers. */
int64_t rental_late_fee(const hub_config *cfg, const hub_rental *r, int64_t now_ms);

/* Raises the alert "rental_overdue" once for each ACTIVE rental past its
 * due time (fleet/v1/notify/alert, with the fee it runs into). */
int rental_overdue_alerts(hub_txn *t);

/* Operator: undoes rental id (refund, vehicle released). msg gets a sentence. */
int rental_compensate(hub_txn *t, const char *id, char *msg, size_t cap);

#endif
