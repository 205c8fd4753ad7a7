/* The hub's write-side store: the rows of hub/model.h, the event log, the
 * downlink outbox, dead letters, counters and the read models, behind one
 * interface with two backends: SQLite (embedded, the default) and PostgreSQL
 * (hub/store_backend.h says what a backend provides).
 *
 * Only the engine thread uses a hub_store. Writes go into the transaction
 * the engine opened with hub_store_begin(); nothing here commits on its own.
 * Every function returns FL_OK or an fl_err; the store failing is FL_ERR_DB,
 * FL_ERR_IO, FL_ERR_FULL or FL_ERR_NOMEM (hub_store_failed() tells them from
 * answers such as FL_ERR_NOT_FOUND and FL_ERR_CONFLICT). */
#ifndef HUB_STORE_H
#define HUB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet/db.h"
#include "model.h"

typedef struct hub_store hub_store;

/* Where and how to open a store. */
typedef struct hub_store_opts {
  const char *backend;   /* "sqlite" (NULL: sqlite) or "postgresql" */
  const char *state_dir; /* sqlite: <state_dir>/hub.db; ":memory:" for a private in-memory store */
  fl_db_sync durability; /* sqlite */
  const char *url;       /* postgresql: connection URL ("" or NULL: the PG* environment) */
  bool cluster;          /* postgresql, [cluster] enabled: the rows a batch reads are locked
                            (SELECT ... FOR UPDATE), as other hubs write the same tables */
  int idle_txn_timeout_ms; /* postgresql, > 0: the server ends a transaction left idle this
                              long (a hub frozen mid-batch must not hold its locks for ever) */
} hub_store_opts;

/* Opens the store, creates or upgrades its schema, prepares statements.
 * Returns FL_OK and *out (free with hub_store_close), or an fl_err (logged
 * with the reason: FL_ERR_CONFIG for an unknown backend or a database newer
 * than this hub, FL_ERR_DB / FL_ERR_IO / FL_ERR_UNAVAILABLE otherwise). */
int hub_store_open(const hub_store_opts *o, hub_store **out);
void hub_store_close(hub_store *st);

/* The backend's name: "sqlite" or "postgresql". */
const char *hub_store_backend(const hub_store *st);

/* True for the codes that mean the store itself failed (the batch cannot go on). */
bool hub_store_failed(int rc);

/* ---- transactions ------------------------------------------------------------ */
/* One transaction per batch, a savepoint per input. hub_store_in_txn() is
 * false once the backend ended the transaction by itself (SQLite does on a
 * full disk or an I/O error; PostgreSQL on a lost connection): then nothing of
 * the batch may be written or acknowledged. */
int hub_store_begin(hub_store *st);
int hub_store_commit(hub_store *st);
int hub_store_rollback(hub_store *st);
int hub_store_savepoint(hub_store *st);
int hub_store_release(hub_store *st);
int hub_store_rollback_to(hub_store *st);
bool hub_store_in_txn(hub_store *st);

/* ---- rows ---------------------------------------------------------------------- */
/* Getters return FL_OK and fill *out, or FL_ERR_NOT_FOUND. Putters insert or
 * update the whole row; FL_ERR_CONFLICT when a rule of the database refuses
 * it (a vehicle in two open rentals, overlapping bookings). Every put of a
 * vehicle (but readings), rental, repair or step is logged in the change log
 * and projected into the read models in the same transaction. */
int hub_store_device_get(hub_store *st, const char *id, hub_device *out);
int hub_store_device_put(hub_store *st, const hub_device *d);
int hub_store_vehicle_get(hub_store *st, const char *id, hub_vehicle *out);
int hub_store_vehicle_put(hub_store *st, const hub_vehicle *v);
/* Writes v like hub_store_vehicle_put but records no change: for readings
 * (telemetry) that are not published, so that the change log does not grow
 * with every sample. */
int hub_store_vehicle_reading(hub_store *st, const hub_vehicle *v);
int hub_store_rental_get(hub_store *st, const char *id, hub_rental *out);
int hub_store_rental_put(hub_store *st, const hub_rental *r);
int hub_store_step_get(hub_store *st, const char *owner, step_kind kind, hub_step *out);
int hub_store_step_put(hub_store *st, const hub_step *s);
int hub_store_repair_get(hub_store *st, const char *id, hub_repair *out);
int hub_store_repair_put(hub_store *st, const hub_repair *r);
/* Finds the open (REQUESTED or IN_PROGRESS) repair of vehicle, if any. */
int hub_store_repair_open_for(hub_store *st, const char *vehicle, hub_repair *out);
int hub_store_booking_get(hub_store *st, const char *id, hub_booking *out);
int hub_store_booking_put(hub_store *st, const hub_booking *b);

/* Calls fn for each booking of vehicle that holds it (PAYMENT_PENDING or
 * HELD) whose window ends after now_ms and overlaps [start_ms, end_ms), by
 * start time; fn must not write to the store. Stops early and returns fn's
 * value if it is not FL_OK. */
int hub_store_bookings_holding(hub_store *st, const char *vehicle, int64_t now_ms,
                               int64_t start_ms, int64_t end_ms,
                               int (*fn)(void *ctx, const hub_booking *b), void *ctx);

/* Calls fn for each step with the given status whose next_try_ms is at or
 * before due_ms, oldest first. Reads every row first, so fn may write to the
 * store. Stops at and returns fn's first error. */
int hub_store_steps_where(hub_store *st, step_status status, int64_t due_ms,
                          int (*fn)(void *ctx, const hub_step *s), void *ctx);

/* Calls fn for each vehicle at station (NULL: every vehicle), by id. fn
 * must not write to the store. Stops at and returns fn's first error. */
int hub_store_vehicles_each(hub_store *st, const char *station,
                            int (*fn)(void *ctx, const hub_vehicle *v), void *ctx);

/* Calls fn for each booking in state whose window starts before before_ms,
 * by start. Reads every row first, so fn may write to the store. */
int hub_store_bookings_starting_before(hub_store *st, booking_state state, int64_t before_ms,
                                       int (*fn)(void *ctx, const hub_booking *b), void *ctx);

/* Calls fn for each ACTIVE rental due before now_ms whose overdue alert was
 * not raised yet (hub_store_alert_record "rental_overdue"), by due time.
 * Reads every row first, so fn may write to the store. */
int hub_store_rentals_overdue(hub_store *st, int64_t now_ms,
                              int (*fn)(void *ctx, const hub_rental *r), void *ctx);

/* Records that the alert kind was raised for id. FL_ERR_CONFLICT if it was already. */
int hub_store_alert_record(hub_store *st, const char *kind, const char *id, int64_t at_ms);

/* Calls fn for each rental (then each booking) of customer: the ones not
 * over first, then the latest others, at most limit of each. fn must not
 * write to the store. */
int hub_store_rentals_of_customer(hub_store *st, const char *customer, int limit,
                                  int (*fn)(void *ctx, const hub_rental *r), void *ctx);
int hub_store_bookings_of_customer(hub_store *st, const char *customer, int limit,
                                   int (*fn)(void *ctx, const hub_booking *b), void *ctx);

/* A customer's money over all their rentals and bookings. */
typedef struct hub_customer_totals {
  int64_t charged_cents, refunded_cents, fees_paid_cents, fees_owed_cents;
} hub_customer_totals;
int hub_store_customer_totals(hub_store *st, const char *customer, hub_customer_totals *out);

/* Vehicles at station by what they can do now; booked: with a HELD booking
 * whose window ends after now_ms. */
typedef struct hub_station_counts {
  uint32_t available, rented, in_repair, booked;
} hub_station_counts;
int hub_store_station_counts(hub_store *st, const char *station, int64_t now_ms,
                             hub_station_counts *out);

/* ---- the hub's outbox to subscribers ------------------------------------------------ */
/* Retained state and notifications, written in the transaction of the change
 * and deleted once the broker has them (PUBACK), so that a crash between
 * commit and publish loses none: what is left is published again, the same
 * bytes (same message id). outbox_put gives the row its seq. */
int hub_store_outbox_put(hub_store *st, const char *topic, const uint8_t *payload, size_t len,
                         bool retain, uint32_t expiry_s, int64_t now_ms, uint64_t *seq);
/* Deletes the rows with seq in [first, last]. */
int hub_store_outbox_delete(hub_store *st, uint64_t first, uint64_t last);
/* Calls fn for every row, by seq (payload valid during the call). */
int hub_store_outbox_each(hub_store *st,
                          int (*fn)(void *ctx, uint64_t seq, const char *topic,
                                    const uint8_t *payload, size_t len, bool retain,
                                    uint32_t expiry_s),
                          void *ctx);

/* ---- logs ------------------------------------------------------------------------ */
/* Appends an accepted event (or operator command: device "op") to the event
 * log. FL_ERR_CONFLICT if (device, seq) is there already. */
int hub_store_event_append(hub_store *st, const char *device, uint64_t seq, const char *type,
                           const char *corr, int64_t device_time_ms, int64_t received_ms,
                           const char *clock_flag, const uint8_t *payload, size_t len);
/* Keeps a rejected message for the operator and counts it as rejected.<error>. */
int hub_store_dead_letter(hub_store *st, int64_t received_ms, const char *topic,
                          const char *device, const char *error, const char *detail,
                          const uint8_t *payload, size_t len);
/* Adds n to the named counter. */
int hub_store_count(hub_store *st, const char *name, int64_t n);
/* Returns the next value of a named sequence (starting at 1). */
int hub_store_next_id(hub_store *st, const char *name, uint64_t *out);

/* ---- the downlink outbox ------------------------------------------------------------- */
/* Stores a downlink message (its seq must be new for the device). */
int hub_store_downlink_put(hub_store *st, const hub_downlink *d, int64_t now_ms);
/* Deletes the device's downlink messages with seq <= upto. */
int hub_store_downlink_ack(hub_store *st, const char *device, uint64_t upto);
/* Calls fn for each downlink message of device with seq > after, in order.
 * Stops early and returns fn's value if it is not FL_OK. */
int hub_store_downlink_each(hub_store *st, const char *device, uint64_t after,
                            int (*fn)(void *ctx, const hub_downlink *d), void *ctx);
/* Calls fn for every stored downlink message of every online device, by
 * device and seq (what to publish again after the hub (re)connects). */
int hub_store_downlink_online(hub_store *st, int (*fn)(void *ctx, const hub_downlink *d),
                              void *ctx);

/* ---- cluster mode (hub/cluster.h) ---------------------------------------------------- */
/* The fence of a batch, just before its commit: locks (FOR SHARE) the rows of
 * the n partitions parts[] in the table partitions and compares each with the
 * epochs[] this hub (hub) holds. Returns FL_OK when all are still this hub's
 * at those epochs; FL_ERR_STATE when some moved, their numbers in lost[] (cap
 * n, *n_lost of them): the batch must then be rolled back; another fl_err
 * when the store failed; FL_ERR_CONFIG for a backend without cluster mode. */
int hub_store_fence(hub_store *st, const char *hub, const uint32_t *parts, const int64_t *epochs,
                    size_t n, uint32_t *lost, size_t *n_lost);

/* Locks the rows of the n devices ids[] that exist (SELECT ... ORDER BY id FOR
 * UPDATE): in a fixed order, so that two hubs' batches never wait for each
 * other in a cycle over them. */
int hub_store_lock_devices(hub_store *st, const char *const *ids, size_t n);

/* Records that hub makes the payment call of step (of the rental or booking
 * owner) and holds that claim until until_ms. */
int hub_store_claim(hub_store *st, const char *owner, const char *step, const char *hub,
                    int64_t until_ms);
/* The hub whose claim the step's call is (locked until the commit): FL_OK
 * and hub (cap bytes), or FL_ERR_NOT_FOUND. */
int hub_store_claim_holder(hub_store *st, const char *owner, const char *step, char *hub,
                           size_t cap);
/* *n: the steps still "calling" whose claim ended before now_ms or that have none. */
int hub_store_claims_stale(hub_store *st, int64_t now_ms, uint64_t *n);

/* ---- read models ------------------------------------------------------------------------ */
/* Rebuild replaces the read models from the change log (*changes: its
 * length); check compares them with a rebuild (*differing: rows that differ,
 * msg: where). */
int hub_store_readmodel_rebuild(hub_store *st, uint64_t *changes);
int hub_store_readmodel_check(hub_store *st, uint64_t *differing, char *msg, size_t cap);

#endif
