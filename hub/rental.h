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
 *
 * Every step is written (status "calling") before the provider is called, in
 * the same transaction as the state change that needs it; the call happens
 * after commit, and a restart calls again with the same idempotency key. */
#ifndef HUB_RENTAL_H
#define HUB_RENTAL_H

#include "engine_internal.h"

/* Handlers of kiosk events; m is the decoded event. Return FL_OK (a refused
 * request is still FL_OK: the refusal is the decision sent back) or an
 * fl_err when the store failed. */
int rental_on_request(hub_engine *e, const hub_origin *o, const fl_msg *m);
int rental_on_cancel(hub_engine *e, const hub_origin *o, const fl_msg *m);
int rental_on_return(hub_engine *e, const hub_origin *o, const fl_msg *m);

/* The vehicle was unlocked for rental id (or for its current rental): the
 * rental has started and can no longer be cancelled. */
int rental_mark_started(hub_engine *e, const char *rental, int64_t now_ms);

/* A payment call finished. */
int rental_on_payment(hub_engine *e, const pay_result *res, int64_t now_ms);

/* Resubmits saga steps: status "calling" (after a restart) or "retry" whose
 * time has come. */
int rental_resume(hub_engine *e, const char *status, int64_t now_ms);

/* Operator: run a stuck rental's pending step again, or compensate it. */
int rental_op_retry(hub_engine *e, const hub_op *op, hub_op_result *res, int64_t now_ms);
int rental_op_compensate(hub_engine *e, const hub_op *op, hub_op_result *res, int64_t now_ms);

#endif
