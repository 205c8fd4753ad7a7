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
#include "store_sqlite_internal.h"

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
                      "ON CONFLICT(id) DO UPDATE SET vehicle=?2, kiosk=?4, reply_topic=?5, state=?6, "
                      "charged_cents=?10, refunded_cents=?11, rental=?12, reason=?13, updated_ms=?15",
    [S_BOOKINGS_HOLDING] = "SELECT " BOOKING_COLS " FROM bookings WHERE vehicle = ?1 "
                           "AND state IN ('PAYMENT_PENDING', 'HELD') AND end_ms > ?2 "
                           "AND end_ms > ?3 AND start_ms < ?4 ORDER BY start_ms, id",
#define OPEN_RENTAL_STATES "('REQUESTED','PAYMENT_PENDING','ACTIVE','RETURNED','CANCEL_REQUESTED')"
#define VEHICLE_COLS "id, name, station, rate_cents, state, rental, repair_due, energy_pct, lat, " \
                     "lon, odometer_m, updated_ms"
#define RENTAL_COLS "id, vehicle, customer, kiosk, reply_topic, state, minutes, amount_cents, " \
                    "charged_cents, refunded_cents, fee_cents, reason, started, created_ms, due_ms, " \
                    "ended_ms, updated_ms"
    [S_VEHICLES_AT] = "SELECT " VEHICLE_COLS " FROM vehicles WHERE ?1 IS NULL OR station = ?1 "
                      "ORDER BY id",
    [S_BOOKINGS_STARTING] = "SELECT " BOOKING_COLS " FROM bookings WHERE state = ?1 "
                            "AND start_ms < ?2 ORDER BY start_ms, id",
    [S_RENTALS_OVERDUE] = "SELECT " RENTAL_COLS " FROM rentals r WHERE state = 'ACTIVE' "
                          "AND due_ms < ?1 AND NOT EXISTS (SELECT 1 FROM alerts_raised a "
                          "WHERE a.kind = 'rental_overdue' AND a.id = r.id) ORDER BY due_ms",
    [S_ALERT_RECORD] = "INSERT INTO alerts_raised(kind, id, at_ms) VALUES(?1, ?2, ?3)",
    [S_RENTALS_OF_CUSTOMER] = "SELECT " RENTAL_COLS " FROM rentals WHERE customer = ?1 "
                              "ORDER BY state NOT IN " OPEN_RENTAL_STATES ", created_ms DESC, id LIMIT ?2",
    [S_BOOKINGS_OF_CUSTOMER] = "SELECT " BOOKING_COLS " FROM bookings WHERE customer = ?1 "
                               "ORDER BY end_ms <= ?3, start_ms DESC, id LIMIT ?2",
    [S_CUSTOMER_TOTALS] =
        "SELECT (SELECT coalesce(sum(charged_cents), 0) FROM rentals WHERE customer = ?1) + "
        "(SELECT coalesce(sum(charged_cents), 0) FROM bookings WHERE customer = ?1), "
        "(SELECT coalesce(sum(refunded_cents), 0) FROM rentals WHERE customer = ?1) + "
        "(SELECT coalesce(sum(refunded_cents), 0) FROM bookings WHERE customer = ?1), "
        "(SELECT coalesce(sum(r.fee_cents), 0) FROM rentals r JOIN saga_steps s ON s.rental = r.id "
        "AND s.step = 'fee' AND s.status = 'done' WHERE r.customer = ?1), "
        "(SELECT coalesce(sum(r.fee_cents), 0) FROM rentals r WHERE r.customer = ?1 AND "
        "r.fee_cents > 0 AND NOT EXISTS (SELECT 1 FROM saga_steps s WHERE s.rental = r.id AND "
        "s.step = 'fee' AND s.status = 'done'))",
    [S_STATION_COUNTS] =
        "SELECT count(*) FILTER (WHERE state = 'AVAILABLE'), "
        "count(*) FILTER (WHERE state IN ('RESERVED', 'RENTED')), "
        "count(*) FILTER (WHERE state IN ('REPAIR_REQUESTED', 'IN_REPAIR')), "
        "count(*) FILTER (WHERE EXISTS (SELECT 1 FROM bookings b WHERE b.vehicle = v.id "
        "AND b.state = 'HELD' AND b.end_ms > ?2)) FROM vehicles v WHERE station = ?1",
    [S_OUTBOX_PUT] = "INSERT INTO outbox(topic, payload, retain, created_ms, expiry_s) "
                     "VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_OUTBOX_DELETE] = "DELETE FROM outbox WHERE seq BETWEEN ?1 AND ?2",
    [S_OUTBOX_EACH] = "SELECT seq, topic, payload, retain, expiry_s FROM outbox ORDER BY seq",
};

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
  /* 4: bookings joined the read models: the ones made before get their
   * first change logged and their read-model row, so that a rebuild keeps them */
  if (rc == FL_OK && version > 0 && version < 4)
    rc = fl_db_exec(db, "INSERT INTO changes(at_ms, kind, id, from_state, to_state, snapshot) "
                        "SELECT updated_ms, 'booking', id, NULL, state, json_object('id', id, 'vehicle', vehicle, 'customer', customer, 'kiosk', kiosk, 'state', state, 'start_ms', start_ms, 'end_ms', end_ms, 'deposit_cents', deposit_cents, 'charged_cents', charged_cents, 'refunded_cents', refunded_cents, 'rental', rental, 'reason', reason, 'created_ms', created_ms, 'updated_ms', updated_ms) "
                        "FROM bookings ORDER BY created_ms, id; "
                        "INSERT OR REPLACE INTO rm_bookings(id, vehicle, customer, kiosk, state, start_ms, end_ms, deposit_cents, charged_cents, refunded_cents, rental, reason, created_ms, updated_ms) SELECT id, vehicle, customer, kiosk, state, start_ms, end_ms, deposit_cents, charged_cents, refunded_cents, rental, reason, created_ms, updated_ms FROM bookings");
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

static int sq_customer_totals(void *b_, const char *customer, hub_customer_totals *out) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_CUSTOMER_TOTALS];
  bind_text(s, 1, customer);
  int rc = row_fetch(s);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_ERR_DB : rc;
  out->charged_cents = sqlite3_column_int64(s, 0);
  out->refunded_cents = sqlite3_column_int64(s, 1);
  out->fees_paid_cents = sqlite3_column_int64(s, 2);
  out->fees_owed_cents = sqlite3_column_int64(s, 3);
  row_done(s);
  return FL_OK;
}

static int sq_station_counts(void *b_, const char *station, int64_t now_ms,
                             hub_station_counts *out) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_STATION_COUNTS];
  bind_text(s, 1, station);
  sqlite3_bind_int64(s, 2, now_ms);
  int rc = row_fetch(s);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_ERR_DB : rc;
  out->available = (uint32_t)sqlite3_column_int64(s, 0);
  out->rented = (uint32_t)sqlite3_column_int64(s, 1);
  out->in_repair = (uint32_t)sqlite3_column_int64(s, 2);
  out->booked = (uint32_t)sqlite3_column_int64(s, 3);
  row_done(s);
  return FL_OK;
}

static int sq_outbox_put(void *b_, const char *topic, const uint8_t *payload, size_t len,
                         bool retain, uint32_t expiry_s, int64_t now_ms, uint64_t *seq) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_OUTBOX_PUT];
  bind_text(s, 1, topic);
  sqlite3_bind_blob(s, 2, len ? (const void *)payload : "", (int)len, SQLITE_STATIC);
  sqlite3_bind_int(s, 3, retain);
  sqlite3_bind_int64(s, 4, now_ms);
  sqlite3_bind_int64(s, 5, expiry_s);
  int rc = fl_db_step_done(s);
  if (rc == FL_OK) *seq = (uint64_t)sqlite3_last_insert_rowid(st->db);
  return rc;
}

static int sq_outbox_delete(void *b_, uint64_t first, uint64_t last) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_OUTBOX_DELETE];
  sqlite3_bind_int64(s, 1, (sqlite3_int64)first);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)last);
  return fl_db_step_done(s);
}

static int sq_outbox_each(void *b_,
                          int (*fn)(void *ctx, uint64_t seq, const char *topic,
                                    const uint8_t *payload, size_t len, bool retain,
                                    uint32_t expiry_s),
                          void *ctx) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_OUTBOX_EACH];
  int rc, err = FL_OK;
  while (err == FL_OK && (rc = sqlite3_step(s)) == SQLITE_ROW)
    err = fn(ctx, (uint64_t)sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
             sqlite3_column_blob(s, 2), (size_t)sqlite3_column_bytes(s, 2),
             sqlite3_column_int(s, 3) != 0, (uint32_t)sqlite3_column_int64(s, 4));
  if (err == FL_OK && rc != SQLITE_DONE) err = FL_ERR_DB;
  row_done(s);
  return err;
}

static int sq_alert_record(void *b_, const char *kind, const char *id, int64_t at_ms) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_ALERT_RECORD];
  bind_text(s, 1, kind);
  bind_text(s, 2, id);
  sqlite3_bind_int64(s, 3, at_ms);
  return fl_db_step_done(s);
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
    .vehicles_each = sq_vehicles_each,
    .bookings_starting_before = sq_bookings_starting_before,
    .rentals_overdue = sq_rentals_overdue,
    .alert_record = sq_alert_record,
    .rentals_of_customer = sq_rentals_of_customer,
    .bookings_of_customer = sq_bookings_of_customer,
    .customer_totals = sq_customer_totals,
    .station_counts = sq_station_counts,
    .outbox_put = sq_outbox_put,
    .outbox_delete = sq_outbox_delete,
    .outbox_each = sq_outbox_each,
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
