/* The store interface: picks a backend at open and forwards every call to
 * it (hub/store_backend.h). */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "store_backend.h"

struct hub_store {
  const hub_store_ops *ops;
  void *b;
};

/* True when the backend provides every function of the interface. */
static bool ops_complete(const hub_store_ops *o) {
  const void *fns[] = {
      (const void *)o->open, (const void *)o->close, (const void *)o->begin,
      (const void *)o->commit, (const void *)o->rollback, (const void *)o->savepoint,
      (const void *)o->release, (const void *)o->rollback_to, (const void *)o->in_txn,
      (const void *)o->device_get, (const void *)o->device_put, (const void *)o->vehicle_get,
      (const void *)o->vehicle_put, (const void *)o->vehicle_reading, (const void *)o->rental_get,
      (const void *)o->rental_put, (const void *)o->step_get, (const void *)o->step_put,
      (const void *)o->repair_get, (const void *)o->repair_put, (const void *)o->repair_open_for,
      (const void *)o->booking_get, (const void *)o->booking_put,
      (const void *)o->bookings_holding, (const void *)o->steps_where,
      (const void *)o->vehicles_each, (const void *)o->bookings_starting_before,
      (const void *)o->rentals_overdue, (const void *)o->alert_record,
      (const void *)o->rentals_of_customer, (const void *)o->bookings_of_customer,
      (const void *)o->customer_totals, (const void *)o->station_counts,
      (const void *)o->outbox_put, (const void *)o->outbox_delete, (const void *)o->outbox_each,
      (const void *)o->event_append, (const void *)o->dead_letter, (const void *)o->count,
      (const void *)o->next_id, (const void *)o->downlink_put, (const void *)o->downlink_ack,
      (const void *)o->downlink_each, (const void *)o->downlink_online,
      (const void *)o->readmodel_rebuild, (const void *)o->readmodel_check,
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
    if (!fns[i]) return false;
  return true;
}

int hub_store_open(const hub_store_opts *o, hub_store **out) {
  const char *name = o->backend && o->backend[0] ? o->backend : "sqlite";
  const hub_store_ops *ops = NULL;
  if (strcmp(name, "sqlite") == 0) ops = &hub_store_sqlite;
  else if (strcmp(name, "postgresql") == 0) ops = hub_store_postgresql;
  if (!ops) {
    fl_error("store: backend '%s' is not %s", name,
             hub_store_postgresql ? "sqlite or postgresql" : "sqlite (this build has no postgresql)");
    return FL_ERR_CONFIG;
  }
  if (!ops_complete(ops)) {
    fl_error("store: the %s backend lacks a function of hub/store_backend.h", ops->name);
    return FL_ERR_CONFIG;
  }
  hub_store *st = calloc(1, sizeof *st);
  if (!st) return FL_ERR_NOMEM;
  st->ops = ops;
  int rc = ops->open(o, &st->b);
  if (rc != FL_OK) {
    free(st);
    return rc;
  }
  *out = st;
  return FL_OK;
}

void hub_store_close(hub_store *st) {
  if (!st) return;
  st->ops->close(st->b);
  free(st);
}

const char *hub_store_backend(const hub_store *st) { return st->ops->name; }

bool hub_store_failed(int rc) {
  return rc == FL_ERR_DB || rc == FL_ERR_IO || rc == FL_ERR_FULL || rc == FL_ERR_NOMEM ||
         rc == FL_ERR_UNAVAILABLE;
}

int hub_store_begin(hub_store *st) { return st->ops->begin(st->b); }
int hub_store_commit(hub_store *st) { return st->ops->commit(st->b); }
int hub_store_rollback(hub_store *st) { return st->ops->rollback(st->b); }
int hub_store_savepoint(hub_store *st) { return st->ops->savepoint(st->b); }
int hub_store_release(hub_store *st) { return st->ops->release(st->b); }
int hub_store_rollback_to(hub_store *st) { return st->ops->rollback_to(st->b); }
bool hub_store_in_txn(hub_store *st) { return st->ops->in_txn(st->b); }

int hub_store_device_get(hub_store *st, const char *id, hub_device *out) {
  return st->ops->device_get(st->b, id, out);
}
int hub_store_device_put(hub_store *st, const hub_device *d) { return st->ops->device_put(st->b, d); }
int hub_store_vehicle_get(hub_store *st, const char *id, hub_vehicle *out) {
  return st->ops->vehicle_get(st->b, id, out);
}
int hub_store_vehicle_put(hub_store *st, const hub_vehicle *v) {
  return st->ops->vehicle_put(st->b, v);
}
int hub_store_vehicle_reading(hub_store *st, const hub_vehicle *v) {
  return st->ops->vehicle_reading(st->b, v);
}
int hub_store_rental_get(hub_store *st, const char *id, hub_rental *out) {
  return st->ops->rental_get(st->b, id, out);
}
int hub_store_rental_put(hub_store *st, const hub_rental *r) { return st->ops->rental_put(st->b, r); }
int hub_store_step_get(hub_store *st, const char *owner, step_kind kind, hub_step *out) {
  return st->ops->step_get(st->b, owner, kind, out);
}
int hub_store_step_put(hub_store *st, const hub_step *s) { return st->ops->step_put(st->b, s); }
int hub_store_repair_get(hub_store *st, const char *id, hub_repair *out) {
  return st->ops->repair_get(st->b, id, out);
}
int hub_store_repair_put(hub_store *st, const hub_repair *r) { return st->ops->repair_put(st->b, r); }
int hub_store_repair_open_for(hub_store *st, const char *vehicle, hub_repair *out) {
  return st->ops->repair_open_for(st->b, vehicle, out);
}
int hub_store_booking_get(hub_store *st, const char *id, hub_booking *out) {
  return st->ops->booking_get(st->b, id, out);
}
int hub_store_booking_put(hub_store *st, const hub_booking *b) {
  return st->ops->booking_put(st->b, b);
}
int hub_store_bookings_holding(hub_store *st, const char *vehicle, int64_t now_ms,
                               int64_t start_ms, int64_t end_ms,
                               int (*fn)(void *ctx, const hub_booking *b), void *ctx) {
  return st->ops->bookings_holding(st->b, vehicle, now_ms, start_ms, end_ms, fn, ctx);
}
int hub_store_steps_where(hub_store *st, step_status status, int64_t due_ms,
                          int (*fn)(void *ctx, const hub_step *s), void *ctx) {
  return st->ops->steps_where(st->b, status, due_ms, fn, ctx);
}
int hub_store_event_append(hub_store *st, const char *device, uint64_t seq, const char *type,
                           const char *corr, int64_t device_time_ms, int64_t received_ms,
                           const char *clock_flag, const uint8_t *payload, size_t len) {
  return st->ops->event_append(st->b, device, seq, type, corr, device_time_ms, received_ms,
                               clock_flag, payload, len);
}
int hub_store_dead_letter(hub_store *st, int64_t received_ms, const char *topic,
                          const char *device, const char *error, const char *detail,
                          const uint8_t *payload, size_t len) {
  return st->ops->dead_letter(st->b, received_ms, topic, device, error, detail, payload, len);
}
int hub_store_count(hub_store *st, const char *name, int64_t n) {
  return st->ops->count(st->b, name, n);
}
int hub_store_next_id(hub_store *st, const char *name, uint64_t *out) {
  return st->ops->next_id(st->b, name, out);
}
int hub_store_downlink_put(hub_store *st, const hub_downlink *d, int64_t now_ms) {
  return st->ops->downlink_put(st->b, d, now_ms);
}
int hub_store_downlink_ack(hub_store *st, const char *device, uint64_t upto) {
  return st->ops->downlink_ack(st->b, device, upto);
}
int hub_store_downlink_each(hub_store *st, const char *device, uint64_t after,
                            int (*fn)(void *ctx, const hub_downlink *d), void *ctx) {
  return st->ops->downlink_each(st->b, device, after, fn, ctx);
}
int hub_store_downlink_online(hub_store *st, int (*fn)(void *ctx, const hub_downlink *d),
                              void *ctx) {
  return st->ops->downlink_online(st->b, fn, ctx);
}
int hub_store_readmodel_rebuild(hub_store *st, uint64_t *changes) {
  return st->ops->readmodel_rebuild(st->b, changes);
}
int hub_store_readmodel_check(hub_store *st, uint64_t *differing, char *msg, size_t cap) {
  return st->ops->readmodel_check(st->b, differing, msg, cap);
}
int hub_store_vehicles_each(hub_store *st, const char *station,
                            int (*fn)(void *ctx, const hub_vehicle *v), void *ctx) {
  return st->ops->vehicles_each(st->b, station, fn, ctx);
}
int hub_store_bookings_starting_before(hub_store *st, booking_state state, int64_t before_ms,
                                       int (*fn)(void *ctx, const hub_booking *b), void *ctx) {
  return st->ops->bookings_starting_before(st->b, state, before_ms, fn, ctx);
}
int hub_store_rentals_overdue(hub_store *st, int64_t now_ms,
                              int (*fn)(void *ctx, const hub_rental *r), void *ctx) {
  return st->ops->rentals_overdue(st->b, now_ms, fn, ctx);
}
int hub_store_alert_record(hub_store *st, const char *kind, const char *id, int64_t at_ms) {
  return st->ops->alert_record(st->b, kind, id, at_ms);
}
int hub_store_rentals_of_customer(hub_store *st, const char *customer, int limit,
                                  int (*fn)(void *ctx, const hub_rental *r), void *ctx) {
  return st->ops->rentals_of_customer(st->b, customer, limit, fn, ctx);
}
int hub_store_bookings_of_customer(hub_store *st, const char *customer, int limit,
                                   int (*fn)(void *ctx, const hub_booking *b), void *ctx) {
  return st->ops->bookings_of_customer(st->b, customer, limit, fn, ctx);
}
int hub_store_customer_totals(hub_store *st, const char *customer, hub_customer_totals *out) {
  return st->ops->customer_totals(st->b, customer, out);
}
int hub_store_station_counts(hub_store *st, const char *station, int64_t now_ms,
                             hub_station_counts *out) {
  return st->ops->station_counts(st->b, station, now_ms, out);
}
int hub_store_outbox_put(hub_store *st, const char *topic, const uint8_t *payload, size_t len,
                         bool retain, uint32_t expiry_s, int64_t now_ms, uint64_t *seq) {
  return st->ops->outbox_put(st->b, topic, payload, len, retain, expiry_s, now_ms, seq);
}
int hub_store_outbox_delete(hub_store *st, uint64_t first, uint64_t last) {
  return st->ops->outbox_delete(st->b, first, last);
}
int hub_store_outbox_each(hub_store *st,
                          int (*fn)(void *ctx, uint64_t seq, const char *topic,
                                    const uint8_t *payload, size_t len, bool retain,
                                    uint32_t expiry_s),
                          void *ctx) {
  return st->ops->outbox_each(st->b, fn, ctx);
}

int hub_store_fence(hub_store *st, const char *hub, const uint32_t *parts, const int64_t *epochs,
                    size_t n, uint32_t *lost, size_t *n_lost) {
  *n_lost = 0;
  if (!st->ops->fence) return FL_ERR_CONFIG;
  return st->ops->fence(st->b, hub, parts, epochs, n, lost, n_lost);
}

int hub_store_claim(hub_store *st, const char *owner, const char *step, const char *hub,
                    int64_t until_ms) {
  return st->ops->claim ? st->ops->claim(st->b, owner, step, hub, until_ms) : FL_ERR_CONFIG;
}

int hub_store_claim_holder(hub_store *st, const char *owner, const char *step, char *hub,
                           size_t cap) {
  return st->ops->claim_holder ? st->ops->claim_holder(st->b, owner, step, hub, cap)
                               : FL_ERR_CONFIG;
}

int hub_store_claims_stale(hub_store *st, int64_t now_ms, uint64_t *n) {
  *n = 0;
  return st->ops->claims_stale ? st->ops->claims_stale(st->b, now_ms, n) : FL_ERR_CONFIG;
}

int hub_store_lock_devices(hub_store *st, const char *const *ids, size_t n) {
  return st->ops->lock_devices ? st->ops->lock_devices(st->b, ids, n) : FL_ERR_CONFIG;
}
