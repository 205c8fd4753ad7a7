/* Vehicles and repairs: registration, telemetry, lock events, faults and the
 * repair tickets they open. */
#ifndef HUB_FLEET_H
#define HUB_FLEET_H

#include "engine_internal.h"

/* Vehicle events from the vehicle's own agent. Return FL_OK or an fl_err
 * when the store failed. */
int fleet_on_telemetry(hub_engine *e, const hub_origin *o, const fl_msg *m);
int fleet_on_lock(hub_engine *e, const hub_origin *o, const fl_msg *m);
int fleet_on_fault(hub_engine *e, const hub_origin *o, const fl_msg *m);

/* The vehicle's rental ended: it becomes AVAILABLE, or REPAIR_REQUESTED if a
 * fault came in during the rental. v is updated and published. */
int fleet_release_vehicle(hub_engine *e, hub_vehicle *v, int64_t now_ms);

/* Operator commands; res gets the outcome and a sentence. */
int fleet_op_register(hub_engine *e, const hub_op *op, hub_op_result *res, int64_t now_ms);
int fleet_op_retire(hub_engine *e, const hub_op *op, hub_op_result *res, int64_t now_ms);
int fleet_op_repair_start(hub_engine *e, const hub_op *op, hub_op_result *res, int64_t now_ms);
int fleet_op_repair_complete(hub_engine *e, const hub_op *op, hub_op_result *res, int64_t now_ms);

/* Sets a vehicle's state (and rental) and publishes the change. */
int fleet_set_vehicle_state(hub_engine *e, hub_vehicle *v, const char *state, const char *rental,
                            int64_t now_ms);

#endif
