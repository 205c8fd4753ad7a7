#include "vehicle.h"

#include <stdio.h>
#include <string.h>

#include "booking.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "publish.h"

/* A vehicle in one of these can be rented or booked. */
static bool in_service(vehicle_state s) {
  return s == VEHICLE_AVAILABLE || s == VEHICLE_RESERVED || s == VEHICLE_RENTED;
}

int vehicle_set_state(hub_txn *t, hub_vehicle *v, vehicle_state state, const char *rental) {
  vehicle_state from = v->state;
  if (!model_vehicle_may(from, state)) {
    fl_error("vehicle=%s may not go from %s to %s", v->id, vehicle_state_name(from),
             vehicle_state_name(state));
    return FL_ERR_STATE;
  }
  v->state = state;
  if (rental) model_copy(v->rental, rental);
  v->updated_ms = t->now_ms;
  int rc = hub_store_vehicle_put(t->store, v);
  if (rc == FL_OK) rc = publish_vehicle(t, v, from, NULL);
  if (rc == FL_OK && from != state)
    fl_info("vehicle=%s state=%s%s%s", v->id, vehicle_state_name(state),
            v->rental[0] ? " rental=" : "", v->rental);
  if (rc == FL_OK && in_service(from) && !in_service(state)) rc = booking_on_vehicle_out(t, v);
  return rc;
}

int vehicle_release(hub_txn *t, hub_vehicle *v) {
  bool repair = v->repair_due;
  v->repair_due = false;
  return vehicle_set_state(t, v, repair ? VEHICLE_REPAIR_REQUESTED : VEHICLE_AVAILABLE, "");
}

int vehicle_of_sender(hub_txn *t, const hub_origin *o, hub_vehicle *v) {
  int rc = hub_store_vehicle_get(t->store, o->device, v);
  if (rc == FL_ERR_NOT_FOUND) {
    fl_debug("device=%s is not a registered vehicle: event has no effect", o->device);
    int crc = hub_store_count(t->store, "events.unregistered_vehicle", 1);
    if (crc != FL_OK) return crc;
  }
  return rc;
}

/* Returns true when vehicle id's reading may be published at now_ms (and
 * remembers it); false when one was published less than period_ms ago. */
static bool publish_due(hub_txn *t, const char *id, int64_t period_ms) {
  if (!t->telemetry_published) return true;
  bool added;
  int64_t *at = strmap_put(t->telemetry_published, id, &added);
  if (!at) return true;
  if (!added && t->now_ms - *at < period_ms) return false;
  *at = t->now_ms;
  return true;
}

int vehicle_on_telemetry(hub_txn *t, const hub_origin *o, const fl_msg *m) {
  hub_vehicle v;
  int rc = vehicle_of_sender(t, o, &v);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_OK : rc;
  const fl_telemetry *r = &m->body.telemetry;
  v.energy_pct = (int)r->energy_pct;
  v.lat = r->lat;
  v.lon = r->lon;
  v.has_position = true;
  v.odometer_m = (int64_t)r->odometer_m;
  v.updated_ms = t->now_ms;
  /* A dashboard needs the position, not every sample. */
  if (!publish_due(t, v.id, t->cfg->telemetry_publish_ms))
    return hub_store_vehicle_reading(t->store, &v);
  rc = hub_store_vehicle_put(t->store, &v);
  return rc == FL_OK ? publish_vehicle(t, &v, v.state, NULL) : rc;
}

int vehicle_on_presence(hub_txn *t, const char *device) {
  hub_vehicle v;
  int rc = hub_store_vehicle_get(t->store, device, &v);
  if (rc == FL_ERR_NOT_FOUND) return FL_OK;
  return rc == FL_OK ? publish_vehicle(t, &v, v.state, NULL) : rc;
}

int vehicle_register(hub_txn *t, const char *id, const char *name, const char *station,
                     int64_t rate_cents, char *msg, size_t cap) {
  if (!fl_id_valid(id) || rate_cents < 0) {
    snprintf(msg, cap, "a vehicle needs a valid id and a rate >= 0");
    return FL_ERR_INVALID;
  }
  hub_vehicle v;
  int rc = hub_store_vehicle_get(t->store, id, &v);
  if (rc == FL_OK) {
    snprintf(msg, cap, "vehicle %s is already registered", id);
    return FL_ERR_CONFLICT;
  }
  if (rc != FL_ERR_NOT_FOUND) return rc;
  memset(&v, 0, sizeof v);
  model_copy(v.id, id);
  model_copy(v.name, name);
  model_copy(v.station, station);
  v.rate_cents = rate_cents;
  v.energy_pct = -1;
  v.state = VEHICLE_NEW;
  rc = vehicle_set_state(t, &v, VEHICLE_AVAILABLE, "");
  snprintf(msg, cap, "vehicle %s registered, AVAILABLE", v.id);
  return rc;
}

int vehicle_retire(hub_txn *t, const char *id, char *msg, size_t cap) {
  hub_vehicle v;
  int rc = hub_store_vehicle_get(t->store, id, &v);
  if (rc != FL_OK) {
    snprintf(msg, cap, "no vehicle %s", id);
    return rc;
  }
  if (v.rental[0]) {
    snprintf(msg, cap, "vehicle %s is %s for rental %s: retire it after the return", v.id,
             vehicle_state_name(v.state), v.rental);
    return FL_ERR_STATE;
  }
  rc = vehicle_set_state(t, &v, VEHICLE_RETIRED, "");
  snprintf(msg, cap, "vehicle %s retired", v.id);
  return rc;
}

int vehicle_edit(hub_txn *t, const char *id, const char *name, int64_t rate_cents,
                 const char *station, char *msg, size_t cap) {
  hub_vehicle v;
  int rc = hub_store_vehicle_get(t->store, id, &v);
  if (rc != FL_OK) {
    snprintf(msg, cap, "no vehicle %s", id);
    return rc;
  }
  if (station && station[0] && !fl_id_valid(station)) {
    snprintf(msg, cap, "a station needs a valid id");
    return FL_ERR_INVALID;
  }
  if (name) model_copy(v.name, name);
  if (rate_cents >= 0) v.rate_cents = rate_cents;
  if (station) {
    publish_station_changed(t, v.station); /* it leaves that one */
    model_copy(v.station, station);
    publish_station_changed(t, v.station); /* and joins this one */
  }
  v.updated_ms = t->now_ms;
  rc = hub_store_vehicle_put(t->store, &v);
  if (rc == FL_OK) rc = publish_vehicle(t, &v, v.state, NULL);
  snprintf(msg, cap, "vehicle %s: %s, %s, %lld.%02lld an hour", v.id, v.name[0] ? v.name : "-",
           v.station[0] ? v.station : "no station", (long long)(v.rate_cents / 100),
           (long long)(v.rate_cents % 100));
  return rc;
}

int vehicle_returned_at(hub_txn *t, const char *id, const char *station, uint64_t odometer_m) {
  hub_vehicle v;
  int rc = hub_store_vehicle_get(t->store, id, &v);
  if (rc == FL_ERR_NOT_FOUND) return FL_OK;
  if (rc != FL_OK) return rc;
  bool moved = station && station[0] && strcmp(station, v.station) != 0;
  if (!moved && (!odometer_m || (int64_t)odometer_m <= v.odometer_m)) return FL_OK;
  if (moved) {
    fl_info("vehicle=%s station %s -> %s (one-way return)", v.id, v.station, station);
    publish_station_changed(t, v.station);
    model_copy(v.station, station);
    publish_station_changed(t, v.station);
  }
  if ((int64_t)odometer_m > v.odometer_m) v.odometer_m = (int64_t)odometer_m;
  v.updated_ms = t->now_ms;
  rc = hub_store_vehicle_put(t->store, &v);
  return rc == FL_OK ? publish_vehicle(t, &v, v.state, NULL) : rc;
}
