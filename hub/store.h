/* The hub's write-side store: hub.db, its schema and the rows the engine
 * reads and writes. Only the engine thread uses a hub_store. Every write goes
 * into the engine's open transaction; nothing here commits on its own. */
#ifndef HUB_STORE_H
#define HUB_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleet/db.h"
#include "fleet/proto.h"

typedef struct hub_store hub_store;

typedef struct hub_device {
  char id[FL_ID_MAX + 1];
  char role[16];
  uint64_t boot;
  uint64_t up_seq;       /* ack watermark */
  uint64_t down_seq;     /* highest downlink seq issued */
  uint64_t down_applied; /* highest downlink seq the device acked */
  bool online;
  int64_t last_seen_ms;
  int64_t clock_skew_ms;
} hub_device;

typedef struct hub_vehicle {
  char id[FL_ID_MAX + 1];
  char name[FL_TEXT_MAX + 1];
  char station[FL_ID_MAX + 1];
  int64_t rate_cents;
  char state[24];
  char rental[FL_ID_MAX + 1];
  bool repair_due;
  int energy_pct; /* -1: unknown */
  double lat, lon;
  bool has_position;
  int64_t odometer_m;
  int64_t updated_ms;
} hub_vehicle;

typedef struct hub_rental {
  char id[FL_ID_MAX + 1];
  char vehicle[FL_ID_MAX + 1];
  char customer[FL_ID_MAX + 1];
  char kiosk[FL_ID_MAX + 1];
  char reply_topic[160];
  char state[24];
  uint32_t minutes;
  int64_t amount_cents, charged_cents, refunded_cents, fee_cents;
  char reason[FL_TEXT_MAX + 1];
  bool started;
  int64_t created_ms, due_ms, ended_ms, updated_ms;
} hub_rental;

typedef struct hub_step {
  char rental[FL_ID_MAX + 1];
  char step[16];   /* charge, refund, fee */
  char status[16]; /* calling, done, declined, failed */
  char idem_key[FL_ID_MAX + 24];
  int64_t amount_cents;
  int attempts;
  char provider_ref[FL_ID_MAX + 1];
  char last_error[FL_TEXT_MAX + 1];
  int64_t next_try_ms;
  int64_t updated_ms;
} hub_step;

typedef struct hub_repair {
  char id[FL_ID_MAX + 1];
  char vehicle[FL_ID_MAX + 1];
  char state[24];
  char dtcs[FL_MAX_DTCS * (FL_DTC_MAX + 1) + 1]; /* comma-separated */
  char severity[16];
  char text[FL_TEXT_MAX + 1];
  int64_t opened_ms, updated_ms;
} hub_repair;

typedef struct hub_booking {
  char id[FL_ID_MAX + 1];
  char vehicle[FL_ID_MAX + 1];
  char customer[FL_ID_MAX + 1];
  char kiosk[FL_ID_MAX + 1];
  char reply_topic[160];
  char state[24]; /* PAYMENT_PENDING HELD USED CANCELLED REJECTED */
  int64_t start_ms, end_ms;
  int64_t deposit_cents, charged_cents, refunded_cents;
  char rental[FL_ID_MAX + 1]; /* the rental that used it */
  char reason[FL_TEXT_MAX + 1];
  int64_t created_ms, updated_ms;
} hub_booking;

/* One stored hub -> device message. */
typedef struct hub_downlink {
  char device[FL_ID_MAX + 1];
  uint64_t seq;
  char type[24];
  char topic[160];
  uint8_t corr[FL_ID_MAX];
  size_t corr_len;
  int64_t expires_ms; /* 0: never */
  const uint8_t *payload; /* valid until the next store call */
  size_t len;
} hub_downlink;

/* Opens <state_dir>/hub.db, creates the schema and prepares statements.
 * Returns FL_OK and *out (free with hub_store_close), or FL_ERR_DB/FL_ERR_IO. */
int hub_store_open(const char *state_dir, fl_db_sync durability, hub_store **out);
void hub_store_close(hub_store *st);

/* The connection, for transactions (BEGIN/COMMIT/SAVEPOINT) by the engine. */
sqlite3 *hub_store_db(hub_store *st);

/* Row getters return FL_OK and fill *out, FL_ERR_NOT_FOUND, or FL_ERR_DB.
 * Row putters insert or update the whole row; they return FL_OK,
 * FL_ERR_CONFLICT (a constraint, e.g. a vehicle in two open rentals) or FL_ERR_DB. */
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
int hub_store_step_get(hub_store *st, const char *rental, const char *step, hub_step *out);
int hub_store_step_put(hub_store *st, const hub_step *s);
int hub_store_repair_get(hub_store *st, const char *id, hub_repair *out);
int hub_store_repair_put(hub_store *st, const hub_repair *r);
/* Finds the open (REQUESTED or IN_PROGRESS) repair of vehicle, if any. */
int hub_store_repair_open_for(hub_store *st, const char *vehicle, hub_repair *out);

/* Bookings. The put refuses (FL_ERR_CONFLICT) a booking in PAYMENT_PENDING
 * or HELD that overlaps another such booking of its vehicle not ended by its
 * updated_ms (a trigger of the schema). */
int hub_store_booking_get(hub_store *st, const char *id, hub_booking *out);
int hub_store_booking_put(hub_store *st, const hub_booking *b);
/* Calls fn for each booking of vehicle in PAYMENT_PENDING or HELD whose
 * window ends after now_ms and overlaps [start_ms, end_ms), by start time;
 * fn must not write to the store. Stops early and returns fn's value if it
 * is not FL_OK. */
int hub_store_bookings_holding(hub_store *st, const char *vehicle, int64_t now_ms,
                               int64_t start_ms, int64_t end_ms,
                               int (*fn)(void *ctx, const hub_booking *b), void *ctx);

/* Appends an accepted event (or operator command) to the event log.
 * Returns FL_OK, FL_ERR_CONFLICT if (device, seq) is already there, FL_ERR_DB. */
int hub_store_event_append(hub_store *st, const char *device, uint64_t seq, const char *type,
                           const char *corr, int64_t device_time_ms, int64_t received_ms,
                           const char *clock_flag, const uint8_t *payload, size_t len);

/* Keeps a rejected message for the operator and counts it by error name. */
int hub_store_dead_letter(hub_store *st, int64_t received_ms, const char *topic,
                          const char *device, const char *error, const char *detail,
                          const uint8_t *payload, size_t len);

/* Adds n to the named counter. */
int hub_store_count(hub_store *st, const char *name, int64_t n);

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
int hub_store_downlink_online(hub_store *st, int (*fn)(void *ctx, const hub_downlink *d), void *ctx);

/* Calls fn for each saga step with the given status whose next_try_ms is at
 * or before due_ms ("calling": work to resume after a restart; "retry": a
 * failed call waiting for its next try). Reads every row first, so fn may
 * write to the store. Stops at and returns fn's first error. */
int hub_store_steps_where(hub_store *st, const char *status, int64_t due_ms,
                          int (*fn)(void *ctx, const hub_step *s), void *ctx);

/* Read models (hub/readmodel.h): every put of a vehicle (but readings), a
 * rental, a repair or a saga step is logged in `changes` and projected into
 * rm_*. Rebuild replaces them from the log (*changes: its length); check
 * compares them with a rebuild (*differing: rows that differ, msg: where). */
int hub_store_readmodel_rebuild(hub_store *st, uint64_t *changes);
int hub_store_readmodel_check(hub_store *st, uint64_t *differing, char *msg, size_t cap);

/* Returns the next value of a named sequence kept in meta (starting at 1). */
int hub_store_next_id(hub_store *st, const char *name, uint64_t *out);

#endif
