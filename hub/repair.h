/* Repairs: a vehicle's fault opens a repair ticket (one open ticket per
 * vehicle collects every code), a mechanic starts and completes it, and the
 * vehicle follows (REPAIR_REQUESTED -> IN_REPAIR -> AVAILABLE). A fault on a
 * rented vehicle raises an alert and the repair starts at its return. The
 * moves allowed are model_repair_may()'s (hub/model.h). */
#ifndef HUB_REPAIR_H
#define HUB_REPAIR_H

#include <stddef.h>

#include "txn.h"

/* A fault event of the vehicle's own agent. */
int repair_on_fault(hub_txn *t, const hub_origin *o, const fl_msg *m);

/* Operator: opens a repair ticket for vehicle with a description of the
 * damage (or adds it to the vehicle's open ticket), as a fault would. */
int repair_open(hub_txn *t, const char *vehicle, const char *text, char *msg, size_t cap);

/* Operator (mechanic): starts a REQUESTED repair, completes an IN_PROGRESS
 * one. msg gets a sentence. FL_ERR_NOT_FOUND, FL_ERR_STATE when the repair
 * or its vehicle is not where the step needs it. */
int repair_start(hub_txn *t, const char *id, char *msg, size_t cap);
int repair_complete(hub_txn *t, const char *id, char *msg, size_t cap);

#endif
