/* Vehicles: registration, retirement, state changes and telemetry.
 * The moves allowed are model_vehicle_may()'s (hub/model.h). */
#ifndef HUB_VEHICLE_H
#define HUB_VEHICLE_H

#include "txn.h"

/* Sets v's state (and its rental, when rental is not NULL), stores and
 * publishes the change. FL_ERR_STATE for a move the machine does not allow. */
int vehicle_set_state(hub_txn *t, hub_vehicle *v, vehicle_state state, const char *rental);

/* The vehicle's rental ended: it becomes AVAILABLE, or REPAIR_REQUESTED if a
 * fault came in during the rental. */
int vehicle_release(hub_txn *t, hub_vehicle *v);

/* Loads the vehicle that is the sending device; FL_ERR_NOT_FOUND (counted as
 * events.unregistered_vehicle) when the device is not a registered vehicle. */
int vehicle_of_sender(hub_txn *t, const hub_origin *o, hub_vehicle *v);

/* A telemetry event of the vehicle's own agent: stored every time, published
 * (and recorded in the change log) at most once per telemetry_publish_ms. */
int vehicle_on_telemetry(hub_txn *t, const hub_origin *o, const fl_msg *m);

/* The vehicle's agent connected or went away: its retained state (which
 * carries `online`) is published again. Not a vehicle: nothing to do. */
int vehicle_on_presence(hub_txn *t, const char *device);

/* Operator: registers a vehicle (id, name, station, rate) AVAILABLE, or
 * retires one that no rental holds. msg gets a sentence. */
int vehicle_register(hub_txn *t, const char *id, const char *name, const char *station,
                     int64_t rate_cents, char *msg, size_t cap);
int vehicle_retire(hub_txn *t, const char *id, char *msg, size_t cap);

/* Operator: edits a vehicle's name (NULL: unchanged), rate (negative:
 * unchanged) and station (NULL: unchanged). msg gets a sentence. */
int vehicle_edit(hub_txn *t, const char *id, const char *name, int64_t rate_cents,
                 const char *station, char *msg, size_t cap);

/* The vehicle came back at station (NULL or "": where it was) with its
 * odometer (0: unknown): a one-way return moves it to that station. */
int vehicle_returned_at(hub_txn *t, const char *id, const char *station, uint64_t odometer_m);

#endif
