/* The hub's domain rules, wired: which rule handles each uplink event, each
 * payment result and each operator command, all inside the transaction
 * context the engine hands in (hub/txn.h). */
#ifndef HUB_DOMAIN_H
#define HUB_DOMAIN_H

#include "ops.h"
#include "payment.h"
#include "txn.h"

/* Applies a sequenced event of a device (m decoded and checked by the
 * uplink). Returns FL_OK (a refused request is FL_OK: the refusal is the
 * decision sent back), FL_ERR_INVALID for a type no rule takes, or an
 * fl_err when the store failed. */
int domain_on_event(hub_txn *t, const hub_origin *o, const fl_msg *m);

/* A device came online (hello) or went away (its will): what shows its
 * presence is published again. */
int domain_on_presence(hub_txn *t, const char *device);

/* A kiosk's query (up/query): answered on o's reply topic, nothing changed. */
int domain_on_query(hub_txn *t, const hub_origin *o, const fl_msg *m);

/* A payment call finished: the saga hands it to its owner. */
int domain_on_payment(hub_txn *t, const pay_result *res);

/* Puts payment steps with the given status back in flight (see saga_resume). */
int domain_resume(hub_txn *t, step_status status);

/* What time brings, run every half second inside a batch: payment steps
 * whose retry is due go out again, unused bookings expire, overdue rentals
 * raise their alert (once). */
int domain_tick(hub_txn *t);

/* The batch is about to commit: what is published once per batch goes out
 * (station counts), and every state and notification held is written to
 * the store's outbox (effects_persist). */
int domain_batch_end(hub_txn *t);

/* Runs an operator command; res gets its code and a sentence. Returns
 * res->code. Commands that change the fleet are logged in the event log
 * (device "op"). */
int domain_op(hub_txn *t, const hub_op *op, hub_op_result *res);

#endif
