/* The PostgreSQL backend's insides, shared by store_pg.c (connection,
 * reconnection, migrations, transactions, logs, the downlink outbox, the
 * read models), store_pg_rows.c (the rows of hub/model.h, the scans, the
 * outbox) and store_pg_sql.c (the statements). Not for use outside these
 * three files. */
#ifndef HUB_STORE_PG_INTERNAL_H
#define HUB_STORE_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "readmodel.h"
#include "store_backend.h"

enum pg_stmt_id {
  P_DEVICE_GET,
  P_DEVICE_PUT,
  P_VEHICLE_GET,
  P_VEHICLE_PUT,
  P_VEHICLE_READING,
  P_RENTAL_GET,
  P_RENTAL_PUT,
  P_STEP_GET,
  P_STEP_PUT,
  P_STEPS_WHERE,
  P_REPAIR_GET,
  P_REPAIR_PUT,
  P_REPAIR_OPEN_FOR,
  P_EVENT_APPEND,
  P_DEAD_LETTER,
  P_COUNT,
  P_DOWNLINK_PUT,
  P_DOWNLINK_ACK,
  P_DOWNLINK_EACH,
  P_DOWNLINK_ONLINE,
  P_NEXT_ID,
  P_BOOKING_GET,
  P_BOOKING_PUT,
  P_BOOKINGS_HOLDING,
  P_VEHICLES_AT,
  P_BOOKINGS_STARTING,
  P_RENTALS_OVERDUE,
  P_ALERT_RECORD,
  P_RENTALS_OF_CUSTOMER,
  P_BOOKINGS_OF_CUSTOMER,
  P_CUSTOMER_TOTALS,
  P_STATION_COUNTS,
  P_OUTBOX_PUT,
  P_OUTBOX_DELETE,
  P_OUTBOX_EACH,
  P__COUNT
};

/* The text of each statement (store_pg_sql.c); NULL for those composed at
 * open (a write and its read model: pg__recorded). */
extern const char *const pg__sql[P__COUNT];

/* A write whose statement also logs and projects: the upsert, its kind. */
typedef struct pg_recorded_write {
  enum pg_stmt_id id;
  const char *upsert;
  rm_kind kind;
} pg_recorded_write;

/* The recorded writes (store_pg_sql.c), pg__n_recorded of them. */
extern const pg_recorded_write pg__recorded[];
extern const size_t pg__n_recorded;

typedef struct pg_store {
  PGconn *conn;
  char url[512];   /* as configured ("": the PG* environment) */
  char shown[512]; /* the same with its password masked, for messages */
  char *sql[P__COUNT];
  bool lost;         /* the connection broke: reconnect at the next begin */
  bool release_pending; /* "input" released, RELEASE not sent yet (pg_savepoint) */
  int failed_tries;  /* reconnections that failed in a row */
  int64_t next_try_us; /* no reconnection before this (fl_mono_us) */
  char options[96];  /* libpq "options" of every connection ("": none); cluster mode */
} pg_store;

/* ---- parameters and results --------------------------------------------------- */

#define PG_MAX_PARAMS 17

/* A statement's parameters: text, or binary for bytea. */
typedef struct pg_params {
  int n;
  const char *val[PG_MAX_PARAMS];
  int len[PG_MAX_PARAMS];
  int fmt[PG_MAX_PARAMS];
  char num[PG_MAX_PARAMS][32];
} pg_params;

static inline void p_text(pg_params *p, const char *s) {
  p->val[p->n] = s;
  p->len[p->n] = 0;
  p->fmt[p->n] = 0;
  p->n++;
}
/* s, or NULL when s is empty (as the SQLite backend stores it). */
static inline void p_text_or_null(pg_params *p, const char *s) { p_text(p, s && s[0] ? s : NULL); }
static inline void p_i64(pg_params *p, int64_t v) {
  snprintf(p->num[p->n], sizeof p->num[0], "%lld", (long long)v);
  p_text(p, p->num[p->n]);
}
static inline void p_f64(pg_params *p, double v) {
  snprintf(p->num[p->n], sizeof p->num[0], "%.17g", v);
  p_text(p, p->num[p->n]);
}
static inline void p_blob(pg_params *p, const void *b, size_t len) {
  p->val[p->n] = b ? (const char *)b : "";
  p->len[p->n] = (int)len;
  p->fmt[p->n] = 1;
  p->n++;
}

/* Runs prepared statement id with p: FL_OK and *out (the caller clears it),
 * or an fl_err (see store_pg.c's top). */
int pg__run(pg_store *st, enum pg_stmt_id id, const pg_params *p, PGresult **out);

/* Runs a statement that returns nothing: FL_OK or an fl_err. */
int pg__do(pg_store *st, enum pg_stmt_id id, const pg_params *p);

/* Runs a one-row query: FL_OK and *out (the caller clears it),
 * FL_ERR_NOT_FOUND (*out NULL), or an fl_err. */
int pg__row(pg_store *st, enum pg_stmt_id id, const pg_params *p, PGresult **out);

/* Copies (row, col) of r into dst (cap bytes), "" when NULL. */
static inline void col_text(const PGresult *r, int row, int col, char *dst, size_t cap) {
  snprintf(dst, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

/* (row, col) of r as a number, 0 when NULL. */
static inline int64_t col_i64(const PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}
static inline double col_f64(const PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? 0 : strtod(PQgetvalue(r, row, col), NULL);
}

/* Reads the state name in (row, col) with parse; a name this hub does not
 * know is a damaged row: logged, and *bad set. */
#define COL_STATE(r, row, col, parse, out)                                        \
  do {                                                                            \
    char name_[32];                                                               \
    col_text((r), (row), (col), name_, sizeof name_);                             \
    if (parse(name_, (out)) != FL_OK) {                                           \
      fl_error("store: unknown state '%s' in column %s", name_, PQfname((r), (col))); \
      bad = true;                                                                 \
    }                                                                             \
  } while (0)

/* The row functions (store_pg_rows.c), with the contracts of hub/store.h. */
int pg_device_get(void *b_, const char *id, hub_device *out);
int pg_device_put(void *b_, const hub_device *d);
int pg_vehicle_get(void *b_, const char *id, hub_vehicle *out);
int pg_vehicle_put(void *b_, const hub_vehicle *v);
int pg_vehicle_reading(void *b_, const hub_vehicle *v);
int pg_rental_get(void *b_, const char *id, hub_rental *out);
int pg_rental_put(void *b_, const hub_rental *x);
int pg_step_get(void *b_, const char *owner, step_kind kind, hub_step *out);
int pg_step_put(void *b_, const hub_step *s);
int pg_steps_where(void *b_, step_status status, int64_t due_ms,
                   int (*fn)(void *ctx, const hub_step *s), void *ctx);
int pg_repair_get(void *b_, const char *id, hub_repair *out);
int pg_repair_open_for(void *b_, const char *vehicle, hub_repair *out);
int pg_repair_put(void *b_, const hub_repair *x);
int pg_booking_get(void *b_, const char *id, hub_booking *out);
int pg_booking_put(void *b_, const hub_booking *bk);
int pg_bookings_holding(void *b_, const char *vehicle, int64_t now_ms, int64_t start_ms,
                        int64_t end_ms, int (*fn)(void *ctx, const hub_booking *bk), void *ctx);
int pg_vehicles_each(void *b_, const char *station, int (*fn)(void *ctx, const hub_vehicle *v),
                     void *ctx);
int pg_bookings_starting_before(void *b_, booking_state state, int64_t before_ms,
                                int (*fn)(void *ctx, const hub_booking *bk), void *ctx);
int pg_rentals_overdue(void *b_, int64_t now_ms, int (*fn)(void *ctx, const hub_rental *x),
                       void *ctx);
int pg_rentals_of_customer(void *b_, const char *customer, int limit,
                           int (*fn)(void *ctx, const hub_rental *x), void *ctx);
int pg_bookings_of_customer(void *b_, const char *customer, int limit,
                            int (*fn)(void *ctx, const hub_booking *bk), void *ctx);
int pg_customer_totals(void *b_, const char *customer, hub_customer_totals *out);
int pg_station_counts(void *b_, const char *station, int64_t now_ms, hub_station_counts *out);
int pg_outbox_put(void *b_, const char *topic, const uint8_t *payload, size_t len, bool retain,
                  uint32_t expiry_s, int64_t now_ms, uint64_t *seq);
int pg_outbox_delete(void *b_, uint64_t first, uint64_t last);
int pg_outbox_each(void *b_,
                   int (*fn)(void *ctx, uint64_t seq, const char *topic, const uint8_t *payload,
                             size_t len, bool retain, uint32_t expiry_s),
                   void *ctx);
int pg_alert_record(void *b_, const char *kind, const char *id, int64_t at_ms);

/* ---- cluster mode (store_pg_cluster.c) ------------------------------------------- */

/* Appends FOR UPDATE to the statements that read one row the batch may
 * write (devices, vehicles, rentals, steps, repairs, bookings), before they
 * are prepared: FL_OK or FL_ERR_NOMEM. */
int pg__cluster_lock_reads(pg_store *st);

/* The backend's fence (hub_store_fence in hub/store.h). */
int pg__cluster_fence(void *b, const char *hub, const uint32_t *parts, const int64_t *epochs,
                      size_t n, uint32_t *lost, size_t *n_lost);

/* The backend's hub_store_lock_devices. */
int pg__cluster_lock_devices(void *b, const char *const *ids, size_t n);

/* The backend's saga claims (hub_store_claim* in hub/store.h). */
int pg__cluster_claim(void *b, const char *owner, const char *step, const char *hub,
                      int64_t until_ms);
int pg__cluster_claim_holder(void *b, const char *owner, const char *step, char *hub, size_t cap);
int pg__cluster_claims_stale(void *b, int64_t now_ms, uint64_t *n);

/* Translates a failed result (see store_pg.c): for store_pg_cluster.c. */
int pg__error(pg_store *st, const PGresult *r, const char *what);

#endif
