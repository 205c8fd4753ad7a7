/* Bookings ahead of time: a customer reserves a vehicle for a window and pays
 * a deposit; the vehicle's agent is sent the bookings it must honour, so that
 * the booked customer can unlock it even while it is offline.
 *
 *   booking_request -> PAYMENT_PENDING (step deposit "calling")
 *     deposit ok       -> HELD (decision, the vehicle's list of bookings)
 *     deposit declined -> REJECTED (decision with reason)
 *     deposit failed   -> retried with back-off; after max attempts REJECTED
 *                         and the deposit voided (refund step)
 *   refused at once (REJECTED): unknown or retired vehicle, window already
 *     over, overlap with a booking that holds the vehicle (PAYMENT_PENDING or
 *     HELD) or with its open rental, FL_MAX_BOOKINGS bookings ahead already,
 *     payment circuit open
 *   booking_cancel: HELD -> CANCELLED (step refund; decision once refunded);
 *     PAYMENT_PENDING -> CANCELLED (the deposit result decides: refund or
 *     nothing to refund)
 *   a rental of the booked vehicle by the booking's customer inside the
 *     window: HELD -> USED once the rental is ACTIVE (the deposit is kept as
 *     the booking fee)
 *
 * Steps go through hub/saga.c like a rental's, keyed by the booking id (the
 * kiosk's corr). The moves allowed are model_booking_may()'s (hub/model.h). */
#ifndef HUB_BOOKING_H
#define HUB_BOOKING_H

#include <stdbool.h>
#include <stddef.h>

#include "saga.h"
#include "txn.h"

/* Handlers of kiosk events; m is the decoded event. Return FL_OK (a refused
 * request is still FL_OK: the refusal is the decision sent back) or an
 * fl_err when the store failed. */
int booking_on_request(hub_txn *t, const hub_origin *o, const fl_msg *m);
int booking_on_cancel(hub_txn *t, const hub_origin *o, const fl_msg *m);

/* Bookings as owners of saga steps (their payment results come here). */
extern const saga_owner_kind booking_saga_owner;

/* Decides whether the new rental r (its vehicle, customer, minutes; starting
 * now) may go ahead as far as bookings are concerned: *allowed false, with a
 * reason, when its id is a booking's or when its planned time overlaps a
 * booking of its vehicle by another customer. */
int booking_admit_rental(hub_txn *t, const hub_rental *r, bool *allowed, char *reason,
                         size_t cap);

/* Sets *free_then when vehicle v could be booked for [start_ms, end_ms):
 * in service, no booking or rental of it overlapping the window. */
int booking_vehicle_free(hub_txn *t, const hub_vehicle *v, int64_t start_ms, int64_t end_ms,
                         bool *free_then);

/* Rental r became ACTIVE: the HELD booking of its customer for its vehicle
 * whose window holds the rental's start becomes USED. */
int booking_on_rental_active(hub_txn *t, const hub_rental *r);

/* Vehicle v left service (repair, retired): each booking that holds it for
 * a window ahead moves to an equivalent vehicle free for the window at the
 * same station (the nearest rate), or is cancelled with its deposit
 * refunded; the kiosk, the vehicles and subscribers are told. */
int booking_on_vehicle_out(hub_txn *t, const hub_vehicle *v);

/* HELD bookings not used [booking] grace_s after their start expire (a
 * no-show): the deposit is kept or refunded by [booking] no_show. */
int booking_expire_due(hub_txn *t);

/* Operator: cancels booking id (HELD or paying) and refunds its deposit.
 * msg gets a sentence. */
int booking_cancel_by_operator(hub_txn *t, const char *id, char *msg, size_t cap);

#endif
