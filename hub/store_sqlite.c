/* The SQLite backend of the hub's store (hub/store.h): <state_dir>/hub.db in WAL
 * mode, one connection, every statement prepared once. */
#include "store_backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "readmodel.h"
#include "schema.h"

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
  S__COUNT
};

static const char *const stmt_sql[S__COUNT] = {
    [S_DEVICE_GET] = "SELECT id, role, boot, up_seq, down_seq, down_applied, online, "
                     "last_seen_ms, clock_skew_ms FROM devices WHERE id = ?1",
    [S_DEVICE_PUT] = "INSERT INTO devices(id, role, boot, up_seq, down_seq, down_applied, online, "
                     "last_seen_ms, clock_skew_ms) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9) "
                     "ON CONFLICT(id) DO UPDATE SET role=?2, boot=?3, up_seq=?4, down_seq=?5, "
                     "down_applied=?6, online=?7, last_seen_ms=?8, clock_skew_ms=?9",
    [S_VEHICLE_GET] = "SELECT id, name, station, rate_cents, state, rental, repair_due, "
                      "energy_pct, lat, lon, odometer_m, updated_ms FROM vehicles WHERE id = ?1",
    [S_VEHICLE_PUT] = "INSERT INTO vehicles(id, name, station, rate_cents, state, rental, "
                      "repair_due, energy_pct, lat, lon, odometer_m, updated_ms) "
                      "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12) ON CONFLICT(id) DO UPDATE "
                      "SET name=?2, station=?3, rate_cents=?4, state=?5, rental=?6, repair_due=?7, "
                      "energy_pct=?8, lat=?9, lon=?10, odometer_m=?11, updated_ms=?12",
    [S_RENTAL_GET] = "SELECT id, vehicle, customer, kiosk, reply_topic, state, minutes, "
                     "amount_cents, charged_cents, refunded_cents, fee_cents, reason, started, "
                     "created_ms, due_ms, ended_ms, updated_ms FROM rentals WHERE id = ?1",
    [S_RENTAL_PUT] = "INSERT INTO rentals(id, vehicle, customer, kiosk, reply_topic, state, "
                     "minutes, amount_cents, charged_cents, refunded_cents, fee_cents, reason, "
                     "started, created_ms, due_ms, ended_ms, updated_ms) "
                     "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17) "
                     "ON CONFLICT(id) DO UPDATE SET kiosk=?4, reply_topic=?5, state=?6, amount_cents=?8, "
                     "charged_cents=?9, refunded_cents=?10, fee_cents=?11, reason=?12, "
                     "started=?13, due_ms=?15, ended_ms=?16, updated_ms=?17",
    [S_STEP_GET] = "SELECT rental, step, status, idem_key, amount_cents, attempts, provider_ref, "
                   "last_error, next_try_ms, updated_ms FROM saga_steps "
                   "WHERE rental = ?1 AND step = ?2",
    [S_STEP_PUT] = "INSERT INTO saga_steps(rental, step, status, idem_key, amount_cents, attempts, "
                   "provider_ref, last_error, next_try_ms, updated_ms) "
                   "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10) ON CONFLICT(rental, step) DO UPDATE "
                   "SET status=?3, amount_cents=?5, attempts=?6, provider_ref=?7, last_error=?8, "
                   "next_try_ms=?9, updated_ms=?10",
    [S_STEPS_CALLING] = "SELECT rental, step, status, idem_key, amount_cents, attempts, "
                        "provider_ref, last_error, next_try_ms, updated_ms FROM saga_steps "
                        "WHERE status = ?1 AND COALESCE(next_try_ms, 0) <= ?2 ORDER BY updated_ms",
    [S_REPAIR_GET] = "SELECT id, vehicle, state, dtcs, severity, text, opened_ms, updated_ms "
                     "FROM repairs WHERE id = ?1",
    [S_REPAIR_PUT] = "INSERT INTO repairs(id, vehicle, state, dtcs, severity, text, opened_ms, "
                     "updated_ms) VALUES(?1,?2,?3,?4,?5,?6,?7,?8) ON CONFLICT(id) DO UPDATE "
                     "SET state=?3, dtcs=?4, severity=?5, text=?6, updated_ms=?8",
    [S_REPAIR_OPEN_FOR] = "SELECT id, vehicle, state, dtcs, severity, text, opened_ms, "
                          "updated_ms FROM repairs WHERE vehicle = ?1 AND state IN "
                          "('REQUESTED','IN_PROGRESS') ORDER BY opened_ms LIMIT 1",
    [S_EVENT_APPEND] = "INSERT INTO events(device, seq, type, corr, device_time_ms, received_ms, "
                       "clock_flag, payload) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
    [S_DEAD_LETTER] = "INSERT INTO dead_letters(received_ms, topic, device, error, detail, "
                      "payload) VALUES(?1,?2,?3,?4,?5,?6)",
    [S_COUNT] = "INSERT INTO counters(name, value) VALUES(?1, ?2) "
                "ON CONFLICT(name) DO UPDATE SET value = value + ?2",
    [S_DOWNLINK_PUT] = "INSERT INTO downlink(device, seq, type, topic, corr, expires_ms, payload, "
                       "created_ms) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
    [S_DOWNLINK_ACK] = "DELETE FROM downlink WHERE device = ?1 AND seq <= ?2",
    [S_DOWNLINK_EACH] = "SELECT device, seq, type, topic, corr, expires_ms, payload FROM downlink "
                        "WHERE device = ?1 AND seq > ?2 ORDER BY seq",
    [S_DOWNLINK_ONLINE] = "SELECT d.device, d.seq, d.type, d.topic, d.corr, d.expires_ms, d.payload "
                          "FROM downlink d JOIN devices v ON v.id = d.device "
                          "WHERE v.online = 1 ORDER BY d.device, d.seq",
    [S_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [S_META_PUT] = "INSERT INTO meta(key, value) VALUES(?1, ?2) "
                   "ON CONFLICT(key) DO UPDATE SET value = ?2",
#define BOOKING_COLS "id, vehicle, customer, kiosk, reply_topic, state, start_ms, end_ms, " \
                     "deposit_cents, charged_cents, refunded_cents, rental, reason, created_ms, updated_ms"
    [S_BOOKING_GET] = "SELECT " BOOKING_COLS " FROM bookings WHERE id = ?1",
    [S_BOOKING_PUT] = "INSERT INTO bookings(" BOOKING_COLS ") "
                      "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15) "
                      "ON CONFLICT(id) DO UPDATE SET kiosk=?4, reply_topic=?5, state=?6, "
                      "charged_cents=?10, refunded_cents=?11, rental=?12, reason=?13, updated_ms=?15",
    [S_BOOKINGS_HOLDING] = "SELECT " BOOKING_COLS " FROM bookings WHERE vehicle = ?1 "
                           "AND state IN ('PAYMENT_PENDING', 'HELD') AND end_ms > ?2 "
                           "AND end_ms > ?3 AND start_ms < ?4 ORDER BY start_ms, id",
};

typedef struct sq_store {
  sqlite3 *db;
  sqlite3_stmt *st[S__COUNT];
  readmodel *rm; /* every put of a vehicle, rental, repair or step is logged and projected */
} sq_store;

/* Copies column col of st into dst (cap bytes), "" when NULL. */
static void col_text(sqlite3_stmt *st, int col, char *dst, size_t cap) {
  const unsigned char *t = sqlite3_column_text(st, col);
  snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static void bind_text(sqlite3_stmt *st, int i, const char *s) {
  sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Binds s, or NULL when s is empty. */
static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s) {
  if (s && s[0])
    bind_text(st, i, s);
  else
    sqlite3_bind_null(st, i);
}

/* Steps a SELECT bound by the caller: FL_OK with a row, FL_ERR_NOT_FOUND, or
 * FL_ERR_DB. On FL_OK the caller reads the row, then calls sqlite3_reset. */
static int row_fetch(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) return FL_OK;
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc == SQLITE_DONE) return FL_ERR_NOT_FOUND;
  fl_error("db step '%.50s': %s", sqlite3_sql(st), sqlite3_errmsg(sqlite3_db_handle(st)));
  return FL_ERR_DB;
}

static void row_done(sqlite3_stmt *st) {
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

/* Hubs before bookings were taken created a bookings table with fewer
 * columns and never wrote to it: such a table is dropped, and the schema
 * creates the current one. */
static int bookings_upgrade(sqlite3 *db) {
  sqlite3_stmt *q = NULL;
  int rc = fl_db_prepare(db, "SELECT count(*), count(*) FILTER (WHERE name = 'reply_topic') "
                             "FROM pragma_table_info('bookings')", &q);
  if (rc != FL_OK) return rc;
  bool old = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) > 0 &&
             sqlite3_column_int(q, 1) == 0;
  sqlite3_finalize(q);
  return old ? fl_db_exec(db, "DROP TABLE bookings") : FL_OK;
}

/* Reads the schema version of db (PRAGMA user_version: 0 for a new file). */
static int schema_version(sqlite3 *db, int *out) {
  sqlite3_stmt *q = NULL;
  int rc = fl_db_prepare(db, "PRAGMA user_version", &q);
  if (rc != FL_OK) return rc;
  *out = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) : 0;
  sqlite3_finalize(q);
  return FL_OK;
}

/* Creates the schema of a new database, or takes an older one forward
 * (hub/schema.sql is idempotent: version 1 is the first numbered one). */
static int schema_migrate(sqlite3 *db, const char *path) {
  int version = 0;
  int rc = schema_version(db, &version);
  if (rc != FL_OK) return rc;
  if (version > HUB_SCHEMA_VERSION) {
    fl_error("store: %s has schema version %d, newer than this hub's %d: run a newer fleet-hub",
             path, version, HUB_SCHEMA_VERSION);
    return FL_ERR_CONFIG;
  }
  rc = bookings_upgrade(db);
  if (rc == FL_OK) rc = fl_db_exec(db, hub_schema_sql);
  return rc;
}

static void sq_close(void *b_);

static int sq_open(const hub_store_opts *o, void **out) {
  bool memory = strcmp(o->state_dir, ":memory:") == 0;
  if (!memory && mkdir(o->state_dir, 0750) != 0 && errno != EEXIST) {
    fl_error("store: cannot create state dir %s: %s", o->state_dir, strerror(errno));
    return FL_ERR_IO;
  }
  char path[512];
  snprintf(path, sizeof path, memory ? "%s" : "%s/hub.db", o->state_dir);
  sq_store *st = calloc(1, sizeof *st);
  if (!st) return FL_ERR_NOMEM;
  int rc = fl_db_open(path, o->durability, false, &st->db);
  /* Each input runs in its own savepoint, whose sub-journal (the pages it
   * changed, as they were) SQLite spills to a temporary file past 64 KiB and
   * then writes to for the rest of the transaction: a pwrite per first touch
   * of a page per input. In memory it costs a memcpy; it is only ever needed
   * to roll one input back, never for crash recovery (that is the WAL's). */
  if (rc == FL_OK) rc = fl_db_exec(st->db, "PRAGMA temp_store=MEMORY");
  if (rc == FL_OK) rc = schema_migrate(st->db, path);
  for (int i = 0; rc == FL_OK && i < S__COUNT; i++) rc = fl_db_prepare(st->db, stmt_sql[i], &st->st[i]);
  if (rc == FL_OK) rc = readmodel_open(st->db, &st->rm);
  if (rc != FL_OK) {
    sq_close(st);
    return rc;
  }
  *out = st;
  return FL_OK;
}

static void sq_close(void *b_) {
  sq_store *st = b_;
  if (!st) return;
  for (int i = 0; i < S__COUNT; i++) sqlite3_finalize(st->st[i]);
  readmodel_close(st->rm);
  fl_db_close(st->db);
  free(st);
}

static int sq_exec(void *b_, const char *sql) {
  sq_store *st = b_;
  return fl_db_exec(st->db, sql);
}
static int sq_begin(void *b_) { return sq_exec(b_, "BEGIN IMMEDIATE"); }
static int sq_commit(void *b_) { return sq_exec(b_, "COMMIT"); }
static int sq_savepoint(void *b_) { return sq_exec(b_, "SAVEPOINT input"); }
static int sq_release(void *b_) { return sq_exec(b_, "RELEASE input"); }
static int sq_rollback_to(void *b_) { return sq_exec(b_, "ROLLBACK TO input"); }
/* SQLite rolls a transaction back by itself on a full disk, an I/O error or
 * out of memory: then the connection is back in autocommit mode. */
static bool sq_in_txn(void *b_) {
  sq_store *st = b_;
  return !sqlite3_get_autocommit(st->db);
}
static int sq_rollback(void *b_) {
  return sq_in_txn(b_) ? sq_exec(b_, "ROLLBACK") : FL_OK; /* a failed COMMIT may have ended it */
}

static int sq_readmodel_rebuild(void *b_, uint64_t *changes) {
  sq_store *st = b_;
  return readmodel_rebuild(st->db, changes);
}

static int sq_readmodel_check(void *b_, uint64_t *differing, char *msg, size_t cap) {
  sq_store *st = b_;
  return readmodel_check(st->db, differing, msg, cap);
}

static int sq_device_get(void *b_, const char *id, hub_device *out) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_DEVICE_GET];
  bind_text(s, 1, id);
  int rc = row_fetch(s);
  if (rc != FL_OK) return rc;
  memset(out, 0, sizeof *out);
  col_text(s, 0, out->id, sizeof out->id);
  col_text(s, 1, out->role, sizeof out->role);
  out->boot = (uint64_t)sqlite3_column_int64(s, 2);
  out->up_seq = (uint64_t)sqlite3_column_int64(s, 3);
  out->down_seq = (uint64_t)sqlite3_column_int64(s, 4);
  out->down_applied = (uint64_t)sqlite3_column_int64(s, 5);
  out->online = sqlite3_column_int(s, 6) != 0;
  out->last_seen_ms = sqlite3_column_int64(s, 7);
  out->clock_skew_ms = sqlite3_column_int64(s, 8);
  row_done(s);
  return FL_OK;
}

static int sq_device_put(void *b_, const hub_device *d) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_DEVICE_PUT];
  bind_text(s, 1, d->id);
  bind_text_or_null(s, 2, d->role);
  sqlite3_bind_int64(s, 3, (sqlite3_int64)d->boot);
  sqlite3_bind_int64(s, 4, (sqlite3_int64)d->up_seq);
  sqlite3_bind_int64(s, 5, (sqlite3_int64)d->down_seq);
  sqlite3_bind_int64(s, 6, (sqlite3_int64)d->down_applied);
  sqlite3_bind_int(s, 7, d->online);
  sqlite3_bind_int64(s, 8, d->last_seen_ms);
  sqlite3_bind_int64(s, 9, d->clock_skew_ms);
  return fl_db_step_done(s);
}

static int sq_vehicle_get(void *b_, const char *id, hub_vehicle *out) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_VEHICLE_GET];
  bind_text(s, 1, id);
  int rc = row_fetch(s);
  if (rc != FL_OK) return rc;
  memset(out, 0, sizeof *out);
  col_text(s, 0, out->id, sizeof out->id);
  col_text(s, 1, out->name, sizeof out->name);
  col_text(s, 2, out->station, sizeof out->station);
  out->rate_cents = sqlite3_column_int64(s, 3);
  bool bad = false;
  COL_STATE(s, 4, vehicle_state_parse, &out->state);
  col_text(s, 5, out->rental, sizeof out->rental);
  out->repair_due = sqlite3_column_int(s, 6) != 0;
  out->energy_pct = sqlite3_column_type(s, 7) == SQLITE_NULL ? -1 : sqlite3_column_int(s, 7);
  out->has_position = sqlite3_column_type(s, 8) != SQLITE_NULL;
  out->lat = sqlite3_column_double(s, 8);
  out->lon = sqlite3_column_double(s, 9);
  out->odometer_m = sqlite3_column_int64(s, 10);
  out->updated_ms = sqlite3_column_int64(s, 11);
  row_done(s);
  return bad ? FL_ERR_DB : FL_OK;
}

static int sq_vehicle_reading(void *b_, const hub_vehicle *v);

static int sq_vehicle_put(void *b_, const hub_vehicle *v) {
  sq_store *st = b_;
  int rc = sq_vehicle_reading(st, v);
  return rc == FL_OK ? readmodel_record(st->rm, RM_VEHICLE, v->id, NULL) : rc;
}

static int sq_vehicle_reading(void *b_, const hub_vehicle *v) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_VEHICLE_PUT];
  bind_text(s, 1, v->id);
  bind_text(s, 2, v->name);
  bind_text(s, 3, v->station);
  sqlite3_bind_int64(s, 4, v->rate_cents);
  bind_text(s, 5, vehicle_state_name(v->state));
  bind_text_or_null(s, 6, v->rental);
  sqlite3_bind_int(s, 7, v->repair_due);
  if (v->energy_pct >= 0) sqlite3_bind_int(s, 8, v->energy_pct);
  if (v->has_position) {
    sqlite3_bind_double(s, 9, v->lat);
    sqlite3_bind_double(s, 10, v->lon);
  }
  sqlite3_bind_int64(s, 11, v->odometer_m);
  sqlite3_bind_int64(s, 12, v->updated_ms);
  return fl_db_step_done(s);
}

static int sq_rental_get(void *b_, const char *id, hub_rental *out) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_RENTAL_GET];
  bind_text(s, 1, id);
  int rc = row_fetch(s);
  if (rc != FL_OK) return rc;
  memset(out, 0, sizeof *out);
  col_text(s, 0, out->id, sizeof out->id);
  col_text(s, 1, out->vehicle, sizeof out->vehicle);
  col_text(s, 2, out->customer, sizeof out->customer);
  col_text(s, 3, out->kiosk, sizeof out->kiosk);
  col_text(s, 4, out->reply_topic, sizeof out->reply_topic);
  bool bad = false;
  COL_STATE(s, 5, rental_state_parse, &out->state);
  out->minutes = (uint32_t)sqlite3_column_int(s, 6);
  out->amount_cents = sqlite3_column_int64(s, 7);
  out->charged_cents = sqlite3_column_int64(s, 8);
  out->refunded_cents = sqlite3_column_int64(s, 9);
  out->fee_cents = sqlite3_column_int64(s, 10);
  col_text(s, 11, out->reason, sizeof out->reason);
  out->started = sqlite3_column_int(s, 12) != 0;
  out->created_ms = sqlite3_column_int64(s, 13);
  out->due_ms = sqlite3_column_int64(s, 14);
  out->ended_ms = sqlite3_column_int64(s, 15);
  out->updated_ms = sqlite3_column_int64(s, 16);
  row_done(s);
  return bad ? FL_ERR_DB : FL_OK;
}

static int sq_rental_put(void *b_, const hub_rental *r) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_RENTAL_PUT];
  bind_text(s, 1, r->id);
  bind_text(s, 2, r->vehicle);
  bind_text(s, 3, r->customer);
  bind_text(s, 4, r->kiosk);
  bind_text(s, 5, r->reply_topic);
  bind_text(s, 6, rental_state_name(r->state));
  sqlite3_bind_int(s, 7, (int)r->minutes);
  sqlite3_bind_int64(s, 8, r->amount_cents);
  sqlite3_bind_int64(s, 9, r->charged_cents);
  sqlite3_bind_int64(s, 10, r->refunded_cents);
  sqlite3_bind_int64(s, 11, r->fee_cents);
  bind_text_or_null(s, 12, r->reason);
  sqlite3_bind_int(s, 13, r->started);
  sqlite3_bind_int64(s, 14, r->created_ms);
  if (r->due_ms) sqlite3_bind_int64(s, 15, r->due_ms);
  if (r->ended_ms) sqlite3_bind_int64(s, 16, r->ended_ms);
  sqlite3_bind_int64(s, 17, r->updated_ms);
  int rc = fl_db_step_done(s);
  return rc == FL_OK ? readmodel_record(st->rm, RM_RENTAL, r->id, NULL) : rc;
}

/* Reads a saga_steps row; FL_ERR_DB for a kind or status this hub does not know. */
static int step_read(sqlite3_stmt *s, hub_step *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(s, 0, out->owner, sizeof out->owner);
  COL_STATE(s, 1, step_kind_parse, &out->kind);
  COL_STATE(s, 2, step_status_parse, &out->status);
  col_text(s, 3, out->idem_key, sizeof out->idem_key);
  out->amount_cents = sqlite3_column_int64(s, 4);
  out->attempts = sqlite3_column_int(s, 5);
  col_text(s, 6, out->provider_ref, sizeof out->provider_ref);
  col_text(s, 7, out->last_error, sizeof out->last_error);
  out->next_try_ms = sqlite3_column_int64(s, 8);
  out->updated_ms = sqlite3_column_int64(s, 9);
  return bad ? FL_ERR_DB : FL_OK;
}

static int sq_step_get(void *b_, const char *owner, step_kind kind, hub_step *out) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_STEP_GET];
  bind_text(s, 1, owner);
  bind_text(s, 2, step_kind_name(kind));
  int rc = row_fetch(s);
  if (rc != FL_OK) return rc;
  rc = step_read(s, out);
  row_done(s);
  return rc;
}

static int sq_step_put(void *b_, const hub_step *p) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_STEP_PUT];
  bind_text(s, 1, p->owner);
  bind_text(s, 2, step_kind_name(p->kind));
  bind_text(s, 3, step_status_name(p->status));
  bind_text(s, 4, p->idem_key);
  sqlite3_bind_int64(s, 5, p->amount_cents);
  sqlite3_bind_int(s, 6, p->attempts);
  bind_text_or_null(s, 7, p->provider_ref);
  bind_text_or_null(s, 8, p->last_error);
  sqlite3_bind_int64(s, 9, p->next_try_ms);
  sqlite3_bind_int64(s, 10, p->updated_ms);
  int rc = fl_db_step_done(s);
  return rc == FL_OK ? readmodel_record(st->rm, RM_SAGA, p->owner, step_kind_name(p->kind)) : rc;
}

static int sq_steps_where(void *b_, step_status status, int64_t due_ms,
                          int (*fn)(void *ctx, const hub_step *s), void *ctx) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_STEPS_CALLING];
  bind_text(s, 1, step_status_name(status));
  sqlite3_bind_int64(s, 2, due_ms);
  size_t n = 0, cap = 0;
  hub_step *steps = NULL;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      hub_step *grown = realloc(steps, cap * sizeof *steps);
      if (!grown) {
        free(steps);
        row_done(s);
        return FL_ERR_NOMEM;
      }
      steps = grown;
    }
    if (step_read(s, &steps[n]) == FL_OK) n++; /* a damaged row is logged and left alone */
  }
  row_done(s);
  int err = rc == SQLITE_DONE ? FL_OK : FL_ERR_DB;
  for (size_t i = 0; err == FL_OK && i < n; i++) err = fn(ctx, &steps[i]);
  free(steps);
  return err;
}

static int repair_read(sqlite3_stmt *s, hub_repair *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(s, 0, out->id, sizeof out->id);
  col_text(s, 1, out->vehicle, sizeof out->vehicle);
  COL_STATE(s, 2, repair_state_parse, &out->state);
  col_text(s, 3, out->dtcs, sizeof out->dtcs);
  col_text(s, 4, out->severity, sizeof out->severity);
  col_text(s, 5, out->text, sizeof out->text);
  out->opened_ms = sqlite3_column_int64(s, 6);
  out->updated_ms = sqlite3_column_int64(s, 7);
  return bad ? FL_ERR_DB : FL_OK;
}

/* Runs a one-row repair query bound with key. */
static int repair_query(sqlite3_stmt *s, const char *key, hub_repair *out) {
  bind_text(s, 1, key);
  int rc = row_fetch(s);
  if (rc != FL_OK) return rc;
  rc = repair_read(s, out);
  row_done(s);
  return rc;
}

static int sq_repair_get(void *b_, const char *id, hub_repair *out) {
  sq_store *st = b_;
  return repair_query(st->st[S_REPAIR_GET], id, out);
}

static int sq_repair_open_for(void *b_, const char *vehicle, hub_repair *out) {
  sq_store *st = b_;
  return repair_query(st->st[S_REPAIR_OPEN_FOR], vehicle, out);
}

static int sq_repair_put(void *b_, const hub_repair *r) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_REPAIR_PUT];
  bind_text(s, 1, r->id);
  bind_text(s, 2, r->vehicle);
  bind_text(s, 3, repair_state_name(r->state));
  bind_text(s, 4, r->dtcs);
  bind_text(s, 5, r->severity);
  bind_text_or_null(s, 6, r->text);
  sqlite3_bind_int64(s, 7, r->opened_ms);
  sqlite3_bind_int64(s, 8, r->updated_ms);
  int rc = fl_db_step_done(s);
  return rc == FL_OK ? readmodel_record(st->rm, RM_REPAIR, r->id, NULL) : rc;
}

static int sq_event_append(void *b_, const char *device, uint64_t seq, const char *type,
                           const char *corr, int64_t device_time_ms, int64_t received_ms,
                           const char *clock_flag, const uint8_t *payload, size_t len) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_EVENT_APPEND];
  bind_text(s, 1, device);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)seq);
  bind_text(s, 3, type);
  bind_text_or_null(s, 4, corr);
  sqlite3_bind_int64(s, 5, device_time_ms);
  sqlite3_bind_int64(s, 6, received_ms);
  bind_text_or_null(s, 7, clock_flag);
  sqlite3_bind_blob(s, 8, payload, (int)len, SQLITE_STATIC);
  return fl_db_step_done(s);
}

static int sq_count(void *b_, const char *name, int64_t n);

static int sq_dead_letter(void *b_, int64_t received_ms, const char *topic,
                          const char *device, const char *error, const char *detail,
                          const uint8_t *payload, size_t len) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_DEAD_LETTER];
  sqlite3_bind_int64(s, 1, received_ms);
  bind_text(s, 2, topic);
  bind_text_or_null(s, 3, device);
  bind_text(s, 4, error);
  bind_text(s, 5, detail);
  sqlite3_bind_blob(s, 6, payload ? (const void *)payload : "", (int)len, SQLITE_STATIC);
  int rc = fl_db_step_done(s);
  if (rc == FL_OK) {
    char name[64];
    snprintf(name, sizeof name, "rejected.%s", error);
    rc = sq_count(st, name, 1);
  }
  return rc;
}

static int sq_count(void *b_, const char *name, int64_t n) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_COUNT];
  bind_text(s, 1, name);
  sqlite3_bind_int64(s, 2, n);
  return fl_db_step_done(s);
}

static int sq_downlink_put(void *b_, const hub_downlink *d, int64_t now_ms) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_DOWNLINK_PUT];
  bind_text(s, 1, d->device);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)d->seq);
  bind_text(s, 3, d->type);
  bind_text(s, 4, d->topic);
  if (d->corr_len) sqlite3_bind_blob(s, 5, d->corr, (int)d->corr_len, SQLITE_STATIC);
  if (d->expires_ms) sqlite3_bind_int64(s, 6, d->expires_ms);
  sqlite3_bind_blob(s, 7, d->payload, (int)d->len, SQLITE_STATIC);
  sqlite3_bind_int64(s, 8, now_ms);
  return fl_db_step_done(s);
}

static int sq_downlink_ack(void *b_, const char *device, uint64_t upto) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_DOWNLINK_ACK];
  bind_text(s, 1, device);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)upto);
  return fl_db_step_done(s);
}

/* Runs the bound downlink query s, calling fn per row. */
static int downlink_rows(sqlite3_stmt *s, int (*fn)(void *ctx, const hub_downlink *d), void *ctx) {
  int rc, err = FL_OK;
  while (err == FL_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    hub_downlink d;
    memset(&d, 0, sizeof d);
    col_text(s, 0, d.device, sizeof d.device);
    d.seq = (uint64_t)sqlite3_column_int64(s, 1);
    col_text(s, 2, d.type, sizeof d.type);
    col_text(s, 3, d.topic, sizeof d.topic);
    int clen = sqlite3_column_bytes(s, 4);
    if (clen > 0 && (size_t)clen <= sizeof d.corr) {
      memcpy(d.corr, sqlite3_column_blob(s, 4), (size_t)clen);
      d.corr_len = (size_t)clen;
    }
    d.expires_ms = sqlite3_column_int64(s, 5);
    d.payload = sqlite3_column_blob(s, 6);
    d.len = (size_t)sqlite3_column_bytes(s, 6);
    err = fn(ctx, &d);
  }
  row_done(s);
  return err;
}

static int sq_downlink_each(void *b_, const char *device, uint64_t after,
                            int (*fn)(void *ctx, const hub_downlink *d), void *ctx) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_DOWNLINK_EACH];
  bind_text(s, 1, device);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)after);
  return downlink_rows(s, fn, ctx);
}

static int sq_downlink_online(void *b_, int (*fn)(void *ctx, const hub_downlink *d), void *ctx) {
  sq_store *st = b_;
  return downlink_rows(st->st[S_DOWNLINK_ONLINE], fn, ctx);
}

static int sq_next_id(void *b_, const char *name, uint64_t *out) {
  sq_store *st = b_;
  sqlite3_stmt *g = st->st[S_META_GET];
  bind_text(g, 1, name);
  uint64_t v = 0;
  int rc = row_fetch(g);
  if (rc == FL_OK) {
    v = (uint64_t)sqlite3_column_int64(g, 0);
    row_done(g);
  } else if (rc != FL_ERR_NOT_FOUND) {
    return rc;
  }
  v++;
  char text[32];
  snprintf(text, sizeof text, "%llu", (unsigned long long)v);
  sqlite3_stmt *p = st->st[S_META_PUT];
  bind_text(p, 1, name);
  bind_text(p, 2, text);
  rc = fl_db_step_done(p);
  if (rc == FL_OK) *out = v;
  return rc;
}

static int booking_read(sqlite3_stmt *s, hub_booking *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(s, 0, out->id, sizeof out->id);
  col_text(s, 1, out->vehicle, sizeof out->vehicle);
  col_text(s, 2, out->customer, sizeof out->customer);
  col_text(s, 3, out->kiosk, sizeof out->kiosk);
  col_text(s, 4, out->reply_topic, sizeof out->reply_topic);
  COL_STATE(s, 5, booking_state_parse, &out->state);
  out->start_ms = sqlite3_column_int64(s, 6);
  out->end_ms = sqlite3_column_int64(s, 7);
  out->deposit_cents = sqlite3_column_int64(s, 8);
  out->charged_cents = sqlite3_column_int64(s, 9);
  out->refunded_cents = sqlite3_column_int64(s, 10);
  col_text(s, 11, out->rental, sizeof out->rental);
  col_text(s, 12, out->reason, sizeof out->reason);
  out->created_ms = sqlite3_column_int64(s, 13);
  out->updated_ms = sqlite3_column_int64(s, 14);
  return bad ? FL_ERR_DB : FL_OK;
}

static int sq_booking_get(void *b_, const char *id, hub_booking *out) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_BOOKING_GET];
  bind_text(s, 1, id);
  int rc = row_fetch(s);
  if (rc != FL_OK) return rc;
  rc = booking_read(s, out);
  row_done(s);
  return rc;
}

static int sq_booking_put(void *b_, const hub_booking *bk) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_BOOKING_PUT];
  bind_text(s, 1, bk->id);
  bind_text(s, 2, bk->vehicle);
  bind_text(s, 3, bk->customer);
  bind_text(s, 4, bk->kiosk);
  bind_text(s, 5, bk->reply_topic);
  bind_text(s, 6, booking_state_name(bk->state));
  sqlite3_bind_int64(s, 7, bk->start_ms);
  sqlite3_bind_int64(s, 8, bk->end_ms);
  sqlite3_bind_int64(s, 9, bk->deposit_cents);
  sqlite3_bind_int64(s, 10, bk->charged_cents);
  sqlite3_bind_int64(s, 11, bk->refunded_cents);
  bind_text_or_null(s, 12, bk->rental);
  bind_text_or_null(s, 13, bk->reason);
  sqlite3_bind_int64(s, 14, bk->created_ms);
  sqlite3_bind_int64(s, 15, bk->updated_ms);
  return fl_db_step_done(s);
}

static int sq_bookings_holding(void *b_, const char *vehicle, int64_t now_ms,
                               int64_t start_ms, int64_t end_ms,
                               int (*fn)(void *ctx, const hub_booking *bk), void *ctx) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_BOOKINGS_HOLDING];
  bind_text(s, 1, vehicle);
  sqlite3_bind_int64(s, 2, now_ms);
  sqlite3_bind_int64(s, 3, start_ms);
  sqlite3_bind_int64(s, 4, end_ms);
  int rc = SQLITE_DONE, err = FL_OK;
  while (err == FL_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    hub_booking bk;
    if (booking_read(s, &bk) == FL_OK) err = fn(ctx, &bk);
  }
  if (err == FL_OK && rc != SQLITE_DONE) err = FL_ERR_DB;
  row_done(s);
  return err;
}

const hub_store_ops hub_store_sqlite = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .savepoint = sq_savepoint,
    .release = sq_release,
    .rollback_to = sq_rollback_to,
    .in_txn = sq_in_txn,
    .device_get = sq_device_get,
    .device_put = sq_device_put,
    .vehicle_get = sq_vehicle_get,
    .vehicle_put = sq_vehicle_put,
    .vehicle_reading = sq_vehicle_reading,
    .rental_get = sq_rental_get,
    .rental_put = sq_rental_put,
    .step_get = sq_step_get,
    .step_put = sq_step_put,
    .repair_get = sq_repair_get,
    .repair_put = sq_repair_put,
    .repair_open_for = sq_repair_open_for,
    .booking_get = sq_booking_get,
    .booking_put = sq_booking_put,
    .bookings_holding = sq_bookings_holding,
    .steps_where = sq_steps_where,
    .event_append = sq_event_append,
    .dead_letter = sq_dead_letter,
    .count = sq_count,
    .next_id = sq_next_id,
    .downlink_put = sq_downlink_put,
    .downlink_ack = sq_downlink_ack,
    .downlink_each = sq_downlink_each,
    .downlink_online = sq_downlink_online,
    .readmodel_rebuild = sq_readmodel_rebuild,
    .readmodel_check = sq_readmodel_check,
};

#ifndef FLEET_WITH_POSTGRESQL
const hub_store_ops *const hub_store_postgresql = NULL;
#endif
