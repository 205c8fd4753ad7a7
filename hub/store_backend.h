/* What a store backend provides (hub/store.h is the interface the hub uses).
 * Each backend fills a hub_store_ops table with functions of the same
 * contracts as the hub_store_* functions of the same names, taking its own
 * state as the first argument. Two backends: store_sqlite*.c, store_pg*.c. */
#ifndef HUB_STORE_BACKEND_H
#define HUB_STORE_BACKEND_H

#include "store.h"

/* The schema version this hub writes. A store newer than this is refused. */
#define HUB_SCHEMA_VERSION 5

typedef struct hub_store_ops {
  const char *name;
  int (*open)(const hub_store_opts *o, void **out);
  void (*close)(void *b);

  int (*begin)(void *b);
  int (*commit)(void *b);
  int (*rollback)(void *b);
  int (*savepoint)(void *b);
  int (*release)(void *b);
  int (*rollback_to)(void *b);
  bool (*in_txn)(void *b);

  int (*device_get)(void *b, const char *id, hub_device *out);
  int (*device_put)(void *b, const hub_device *d);
  int (*vehicle_get)(void *b, const char *id, hub_vehicle *out);
  int (*vehicle_put)(void *b, const hub_vehicle *v);
  int (*vehicle_reading)(void *b, const hub_vehicle *v);
  int (*rental_get)(void *b, const char *id, hub_rental *out);
  int (*rental_put)(void *b, const hub_rental *r);
  int (*step_get)(void *b, const char *owner, step_kind kind, hub_step *out);
  int (*step_put)(void *b, const hub_step *s);
  int (*repair_get)(void *b, const char *id, hub_repair *out);
  int (*repair_put)(void *b, const hub_repair *r);
  int (*repair_open_for)(void *b, const char *vehicle, hub_repair *out);
  int (*booking_get)(void *b, const char *id, hub_booking *out);
  int (*booking_put)(void *b, const hub_booking *bk);
  int (*bookings_holding)(void *b, const char *vehicle, int64_t now_ms, int64_t start_ms,
                          int64_t end_ms, int (*fn)(void *ctx, const hub_booking *bk), void *ctx);
  int (*steps_where)(void *b, step_status status, int64_t due_ms,
                     int (*fn)(void *ctx, const hub_step *s), void *ctx);
  int (*vehicles_each)(void *b, const char *station, int (*fn)(void *ctx, const hub_vehicle *v),
                       void *ctx);
  int (*bookings_starting_before)(void *b, booking_state state, int64_t before_ms,
                                  int (*fn)(void *ctx, const hub_booking *bk), void *ctx);
  int (*rentals_overdue)(void *b, int64_t now_ms, int (*fn)(void *ctx, const hub_rental *r),
                         void *ctx);
  int (*alert_record)(void *b, const char *kind, const char *id, int64_t at_ms);
  int (*rentals_of_customer)(void *b, const char *customer, int limit,
                             int (*fn)(void *ctx, const hub_rental *r), void *ctx);
  int (*bookings_of_customer)(void *b, const char *customer, int limit,
                              int (*fn)(void *ctx, const hub_booking *bk), void *ctx);
  int (*customer_totals)(void *b, const char *customer, hub_customer_totals *out);
  int (*station_counts)(void *b, const char *station, int64_t now_ms, hub_station_counts *out);
  int (*outbox_put)(void *b, const char *topic, const uint8_t *payload, size_t len, bool retain,
                    uint32_t expiry_s, int64_t now_ms, uint64_t *seq);
  int (*outbox_delete)(void *b, uint64_t first, uint64_t last);
  int (*outbox_each)(void *b,
                     int (*fn)(void *ctx, uint64_t seq, const char *topic,
                               const uint8_t *payload, size_t len, bool retain,
                               uint32_t expiry_s),
                     void *ctx);

  int (*event_append)(void *b, const char *device, uint64_t seq, const char *type,
                      const char *corr, int64_t device_time_ms, int64_t received_ms,
                      const char *clock_flag, const uint8_t *payload, size_t len);
  int (*dead_letter)(void *b, int64_t received_ms, const char *topic, const char *device,
                     const char *error, const char *detail, const uint8_t *payload, size_t len);
  int (*count)(void *b, const char *name, int64_t n);
  int (*next_id)(void *b, const char *name, uint64_t *out);

  int (*downlink_put)(void *b, const hub_downlink *d, int64_t now_ms);
  int (*downlink_ack)(void *b, const char *device, uint64_t upto);
  int (*downlink_each)(void *b, const char *device, uint64_t after,
                       int (*fn)(void *ctx, const hub_downlink *d), void *ctx);
  int (*downlink_online)(void *b, int (*fn)(void *ctx, const hub_downlink *d), void *ctx);

  int (*readmodel_rebuild)(void *b, uint64_t *changes);
  int (*readmodel_check)(void *b, uint64_t *differing, char *msg, size_t cap);

  /* Cluster mode; NULL in a backend without it (SQLite). */
  int (*fence)(void *b, const char *hub, const uint32_t *parts, const int64_t *epochs, size_t n,
               uint32_t *lost, size_t *n_lost);
  int (*lock_devices)(void *b, const char *const *ids, size_t n);
  int (*claim)(void *b, const char *owner, const char *step, const char *hub, int64_t until_ms);
  int (*claim_holder)(void *b, const char *owner, const char *step, char *hub, size_t cap);
  int (*claims_stale)(void *b, int64_t now_ms, uint64_t *n);
} hub_store_ops;

extern const hub_store_ops hub_store_sqlite;
/* NULL in a build without libpq. */
extern const hub_store_ops *const hub_store_postgresql;

#endif
