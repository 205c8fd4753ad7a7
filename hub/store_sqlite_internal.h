/* The SQLite backend's insides, shared by store_sqlite.c (open,
 * transactions, logs, the downlink outbox) and store_sqlite_rows.c (the
 * rows of hub/model.h). Not for use outside these two files. */
#ifndef HUB_STORE_SQLITE_INTERNAL_H
#define HUB_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>
#include <stdio.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "readmodel.h"
#include "store.h"

enum stmt_id {
  S_DEVICE_GET,
  S_DEVICE_PUT,
  S_VEHICLE_GET,
  S_VEHICLE_PUT,
  S_RENTAL_GET,
  S_RENTAL_PUT,
  S_STEP_GET,
  S_STEP_PUT,
  S_STEPS_CALLING,
  S_REPAIR_GET,
  S_REPAIR_PUT,
  S_REPAIR_OPEN_FOR,
  S_EVENT_APPEND,
  S_DEAD_LETTER,
  S_COUNT,
  S_DOWNLINK_PUT,
  S_DOWNLINK_ACK,
  S_DOWNLINK_EACH,
  S_DOWNLINK_ONLINE,
  S_META_GET,
  S_META_PUT,
  S_BOOKING_GET,
  S_BOOKING_PUT,
  S_BOOKINGS_HOLDING,
  S_VEHICLES_AT,
  S_BOOKINGS_STARTING,
  S_RENTALS_OVERDUE,
  S_ALERT_RECORD,
  S_RENTALS_OF_CUSTOMER,
  S_BOOKINGS_OF_CUSTOMER,
  S_CUSTOMER_TOTALS,
  S_STATION_COUNTS,
  S_OUTBOX_PUT,
  S_OUTBOX_DELETE,
  S_OUTBOX_EACH,
  S__COUNT
};

typedef struct sq_store {
  sqlite3 *db;
  sqlite3_stmt *st[S__COUNT];
  readmodel *rm; /* every put of a vehicle, rental, repair or step is logged and projected */
} sq_store;

/* Copies column col of st into dst (cap bytes), "" when NULL. */
static inline void col_text(sqlite3_stmt *st, int col, char *dst, size_t cap) {
  const unsigned char *t = sqlite3_column_text(st, col);
  snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static inline void bind_text(sqlite3_stmt *st, int i, const char *s) {
  sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Binds s, or NULL when s is empty. */
static inline void bind_text_or_null(sqlite3_stmt *st, int i, const char *s) {
  if (s && s[0])
    bind_text(st, i, s);
  else
    sqlite3_bind_null(st, i);
}

/* Steps a SELECT bound by the caller: FL_OK with a row, FL_ERR_NOT_FOUND, or
 * FL_ERR_DB. On FL_OK the caller reads the row, then calls sqlite3_reset. */
static inline int row_fetch(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) return FL_OK;
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc == SQLITE_DONE) return FL_ERR_NOT_FOUND;
  fl_error("db step '%.50s': %s", sqlite3_sql(st), sqlite3_errmsg(sqlite3_db_handle(st)));
  return FL_ERR_DB;
}

static inline void row_done(sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

/* Reads the state name in column col into *out with parse; a name this hub
 * does not know is a damaged row: logged, FL_ERR_DB. */
#define COL_STATE(s, col, parse, out)                                                   \
  do {                                                                                  \
    char name_[32];                                                                     \
    col_text((s), (col), name_, sizeof name_);                                          \
    if (parse(name_, (out)) != FL_OK) {                                                 \
      fl_error("store: unknown state '%s' in '%.40s'", name_, sqlite3_sql(s));           \
      bad = true;                                                                       \
    }                                                                                   \
  } while (0)

/* The row functions (store_sqlite_rows.c), with the contracts of hub/store.h. */
int sq_device_get(void *b_, const char *id, hub_device *out);
int sq_device_put(void *b_, const hub_device *d);
int sq_vehicle_get(void *b_, const char *id, hub_vehicle *out);
int sq_vehicle_reading(void *b_, const hub_vehicle *v);

int sq_vehicle_put(void *b_, const hub_vehicle *v);
int sq_rental_get(void *b_, const char *id, hub_rental *out);
int sq_rental_put(void *b_, const hub_rental *r);
int sq_step_get(void *b_, const char *owner, step_kind kind, hub_step *out);
int sq_step_put(void *b_, const hub_step *p);
int sq_steps_where(void *b_, step_status status, int64_t due_ms,
                          int (*fn)(void *ctx, const hub_step *s), void *ctx);
int sq_repair_get(void *b_, const char *id, hub_repair *out);
int sq_repair_open_for(void *b_, const char *vehicle, hub_repair *out);
int sq_repair_put(void *b_, const hub_repair *r);
int sq_booking_get(void *b_, const char *id, hub_booking *out);
int sq_booking_put(void *b_, const hub_booking *bk);
int sq_bookings_holding(void *b_, const char *vehicle, int64_t now_ms,
                               int64_t start_ms, int64_t end_ms,
                               int (*fn)(void *ctx, const hub_booking *bk), void *ctx);
int sq_vehicles_each(void *b_, const char *station, int (*fn)(void *ctx, const hub_vehicle *v),
                     void *ctx);
int sq_bookings_starting_before(void *b_, booking_state state, int64_t before_ms,
                                int (*fn)(void *ctx, const hub_booking *bk), void *ctx);
int sq_rentals_overdue(void *b_, int64_t now_ms, int (*fn)(void *ctx, const hub_rental *r),
                       void *ctx);
int sq_rentals_of_customer(void *b_, const char *customer, int limit,
                           int (*fn)(void *ctx, const hub_rental *r), void *ctx);
int sq_bookings_of_customer(void *b_, const char *customer, int limit,
                            int (*fn)(void *ctx, const hub_booking *bk), void *ctx);

#endif
