/* What the engine offers the domain modules (rental saga, fleet) while they
 * handle one input inside the engine's transaction. Everything they emit is
 * held until the transaction commits, and dropped if it rolls back. Only the
 * engine thread calls these. */
#ifndef HUB_ENGINE_INTERNAL_H
#define HUB_ENGINE_INTERNAL_H

#include "engine.h"
#include "hub_config.h"
#include "payment.h"
#include "store.h"

/* The input being handled: who sent it and how to answer. */
typedef struct hub_origin {
  const char *device;         /* sending device, NULL for operator and payment inputs */
  const char *reply_topic;    /* where decisions for this request go */
  int64_t now_ms;             /* hub time of the batch */
} hub_origin;

hub_store *hub_engine_store(hub_engine *e);
const hub_config *hub_engine_config(hub_engine *e);

/* Stores m as the next downlink message of device (assigning its seq) and
 * publishes it on topic after commit, with correlation data corr.
 * expires_ms 0 means never. Returns FL_OK or an fl_err. */
int hub_emit_downlink(hub_engine *e, const char *device, const char *topic, fl_msg *m,
                      const char *corr, int64_t expires_ms);

/* Publishes the retained state of a vehicle, rental or repair after commit,
 * and a notification of the change when from differs from the new state
 * (from may be "" for a new thing). */
int hub_emit_vehicle(hub_engine *e, const hub_vehicle *v, const char *from, const char *text);
int hub_emit_rental(hub_engine *e, const hub_rental *r, const char *from);
int hub_emit_repair(hub_engine *e, const hub_repair *r, const char *from);

/* Publishes a notification (fleet/v1/notify/booking) that booking id went
 * from one state to another (from may be "" for a new booking). */
int hub_emit_booking(hub_engine *e, const char *id, const char *from, const char *to,
                     const char *text);

/* Publishes an operator alert notification (fleet/v1/notify/alert). */
int hub_emit_alert(hub_engine *e, const char *id, const char *name, const char *text);

/* Returns true (and remembers now_ms) when key was not let through in the
 * last period_ms; false otherwise. For publishing frequent readings
 * (telemetry) at a bounded rate per thing. */
bool hub_throttle(hub_engine *e, const char *key, int64_t now_ms, int64_t period_ms);

/* Hands job to the payment workers after commit. */
int hub_emit_payment(hub_engine *e, const pay_job *job);

/* Asks the payment circuit breaker whether a new rental may pay now. */
bool hub_payment_admit(hub_engine *e, uint32_t *retry_after_s);

/* Appends an operator command to the event log (device "op"). */
int hub_log_op(hub_engine *e, const hub_op *op, int64_t now_ms);

#endif
