/* The PostgreSQL backend of the hub's store (hub/store.h): one libpq
 * connection, every statement prepared on it, text parameters (bytea ones in
 * binary). A write of a vehicle, rental, repair or saga step is one statement
 * that also logs the change and projects the read model (readmodel_pg.h).
 *
 * libpq's errors are translated here: unique, exclusion and check
 * violations are FL_ERR_CONFLICT; a lost connection is FL_ERR_UNAVAILABLE
 * and ends the transaction (in_txn false); anything else is FL_ERR_DB. After
 * a lost connection the next begin reconnects (with back-off) and prepares
 * the statements again; the engine retries the batch it holds. */
#include "store_backend.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "readmodel_pg.h"
#include "schema_pg.h"

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

#define VEHICLE_UPSERT                                                                        \
  "INSERT INTO vehicles(id, name, station, rate_cents, state, rental, repair_due, energy_pct, " \
  "lat, lon, odometer_m, updated_ms) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) "          \
  "ON CONFLICT(id) DO UPDATE SET name=EXCLUDED.name, station=EXCLUDED.station, "              \
  "rate_cents=EXCLUDED.rate_cents, state=EXCLUDED.state, rental=EXCLUDED.rental, "            \
  "repair_due=EXCLUDED.repair_due, energy_pct=EXCLUDED.energy_pct, lat=EXCLUDED.lat, "        \
  "lon=EXCLUDED.lon, odometer_m=EXCLUDED.odometer_m, updated_ms=EXCLUDED.updated_ms"
#define RENTAL_UPSERT                                                                          \
  "INSERT INTO rentals(id, vehicle, customer, kiosk, reply_topic, state, minutes, amount_cents, " \
  "charged_cents, refunded_cents, fee_cents, reason, started, created_ms, due_ms, ended_ms, "    \
  "updated_ms) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17) "              \
  "ON CONFLICT(id) DO UPDATE SET kiosk=EXCLUDED.kiosk, reply_topic=EXCLUDED.reply_topic, "       \
  "state=EXCLUDED.state, amount_cents=EXCLUDED.amount_cents, "                                   \
  "charged_cents=EXCLUDED.charged_cents, refunded_cents=EXCLUDED.refunded_cents, "               \
  "fee_cents=EXCLUDED.fee_cents, reason=EXCLUDED.reason, started=EXCLUDED.started, "             \
  "due_ms=EXCLUDED.due_ms, ended_ms=EXCLUDED.ended_ms, updated_ms=EXCLUDED.updated_ms"
#define STEP_UPSERT                                                                            \
  "INSERT INTO saga_steps(rental, step, status, idem_key, amount_cents, attempts, provider_ref, " \
  "last_error, next_try_ms, updated_ms) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) "                 \
  "ON CONFLICT(rental, step) DO UPDATE SET status=EXCLUDED.status, "                             \
  "amount_cents=EXCLUDED.amount_cents, attempts=EXCLUDED.attempts, "                             \
  "provider_ref=EXCLUDED.provider_ref, last_error=EXCLUDED.last_error, "                         \
  "next_try_ms=EXCLUDED.next_try_ms, updated_ms=EXCLUDED.updated_ms"
#define REPAIR_UPSERT                                                                          \
  "INSERT INTO repairs(id, vehicle, state, dtcs, severity, text, opened_ms, updated_ms) "        \
  "VALUES($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT(id) DO UPDATE SET state=EXCLUDED.state, "         \
  "dtcs=EXCLUDED.dtcs, severity=EXCLUDED.severity, text=EXCLUDED.text, "                         \
  "updated_ms=EXCLUDED.updated_ms"
#define STEP_COLS                                                                              \
  "rental, step, status, idem_key, amount_cents, attempts, provider_ref, last_error, "           \
  "next_try_ms, updated_ms"
#define REPAIR_COLS "id, vehicle, state, dtcs, severity, text, opened_ms, updated_ms"
#define VEHICLE_COLS                                                                           \
  "id, name, station, rate_cents, state, rental, repair_due, energy_pct, lat, lon, odometer_m, " \
  "updated_ms"
#define RENTAL_COLS                                                                            \
  "id, vehicle, customer, kiosk, reply_topic, state, minutes, amount_cents, charged_cents, "     \
  "refunded_cents, fee_cents, reason, started, created_ms, due_ms, ended_ms, updated_ms"
#define BOOKING_COLS                                                                           \
  "id, vehicle, customer, kiosk, reply_topic, state, start_ms, end_ms, deposit_cents, "          \
  "charged_cents, refunded_cents, rental, reason, created_ms, updated_ms"

/* The statements; NULL for those composed at open (a write and its read model). */
static const char *const pg_sql[P__COUNT] = {
    [P_DEVICE_GET] = "SELECT id, role, boot, up_seq, down_seq, down_applied, online, "
                     "last_seen_ms, clock_skew_ms FROM devices WHERE id = $1",
    [P_DEVICE_PUT] = "INSERT INTO devices(id, role, boot, up_seq, down_seq, down_applied, online, "
                     "last_seen_ms, clock_skew_ms) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9) "
                     "ON CONFLICT(id) DO UPDATE SET role=EXCLUDED.role, boot=EXCLUDED.boot, "
                     "up_seq=EXCLUDED.up_seq, down_seq=EXCLUDED.down_seq, "
                     "down_applied=EXCLUDED.down_applied, online=EXCLUDED.online, "
                     "last_seen_ms=EXCLUDED.last_seen_ms, clock_skew_ms=EXCLUDED.clock_skew_ms",
    [P_VEHICLE_GET] = "SELECT id, name, station, rate_cents, state, rental, repair_due, "
                      "energy_pct, lat, lon, odometer_m, updated_ms FROM vehicles WHERE id = $1",
    [P_VEHICLE_READING] = VEHICLE_UPSERT,
    [P_RENTAL_GET] = "SELECT id, vehicle, customer, kiosk, reply_topic, state, minutes, "
                     "amount_cents, charged_cents, refunded_cents, fee_cents, reason, started, "
                     "created_ms, due_ms, ended_ms, updated_ms FROM rentals WHERE id = $1",
    [P_STEP_GET] = "SELECT " STEP_COLS " FROM saga_steps WHERE rental = $1 AND step = $2",
    [P_STEPS_WHERE] = "SELECT " STEP_COLS " FROM saga_steps WHERE status = $1 "
                      "AND COALESCE(next_try_ms, 0) <= $2 ORDER BY updated_ms",
    [P_REPAIR_GET] = "SELECT " REPAIR_COLS " FROM repairs WHERE id = $1",
    [P_REPAIR_OPEN_FOR] = "SELECT " REPAIR_COLS " FROM repairs WHERE vehicle = $1 AND state IN "
                          "('REQUESTED','IN_PROGRESS') ORDER BY opened_ms LIMIT 1",
    [P_EVENT_APPEND] = "INSERT INTO events(device, seq, type, corr, device_time_ms, received_ms, "
                       "clock_flag, payload) VALUES($1,$2,$3,$4,$5,$6,$7,$8)",
    [P_DEAD_LETTER] = "WITH d AS (INSERT INTO dead_letters(received_ms, topic, device, error, "
                      "detail, payload) VALUES($1,$2,$3,$4,$5,$6)) "
                      "INSERT INTO counters(name, value) VALUES('rejected.' || $4, 1) "
                      "ON CONFLICT(name) DO UPDATE SET value = counters.value + 1",
    [P_COUNT] = "INSERT INTO counters(name, value) VALUES($1, $2) "
                "ON CONFLICT(name) DO UPDATE SET value = counters.value + EXCLUDED.value",
    [P_DOWNLINK_PUT] = "INSERT INTO downlink(device, seq, type, topic, corr, expires_ms, payload, "
                       "created_ms) VALUES($1,$2,$3,$4,$5,$6,$7,$8)",
    [P_DOWNLINK_ACK] = "DELETE FROM downlink WHERE device = $1 AND seq <= $2",
    [P_DOWNLINK_EACH] = "SELECT device, seq, type, topic, corr, expires_ms, payload FROM downlink "
                        "WHERE device = $1 AND seq > $2 ORDER BY seq",
    [P_DOWNLINK_ONLINE] = "SELECT d.device, d.seq, d.type, d.topic, d.corr, d.expires_ms, "
                          "d.payload FROM downlink d JOIN devices v ON v.id = d.device "
                          "WHERE v.online = 1 ORDER BY d.device, d.seq",
    [P_NEXT_ID] = "INSERT INTO id_sequences(name, value) VALUES($1, 1) ON CONFLICT(name) "
                  "DO UPDATE SET value = id_sequences.value + 1 RETURNING value",
    [P_BOOKING_GET] = "SELECT " BOOKING_COLS " FROM bookings WHERE id = $1",
    [P_BOOKING_PUT] = "INSERT INTO bookings(" BOOKING_COLS ") "
                      "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) "
                      "ON CONFLICT(id) DO UPDATE SET vehicle=EXCLUDED.vehicle, kiosk=EXCLUDED.kiosk, "
                      "reply_topic=EXCLUDED.reply_topic, state=EXCLUDED.state, "
                      "charged_cents=EXCLUDED.charged_cents, "
                      "refunded_cents=EXCLUDED.refunded_cents, rental=EXCLUDED.rental, "
                      "reason=EXCLUDED.reason, updated_ms=EXCLUDED.updated_ms",
    [P_BOOKINGS_HOLDING] = "SELECT " BOOKING_COLS " FROM bookings WHERE vehicle = $1 "
                           "AND state IN ('PAYMENT_PENDING', 'HELD') AND end_ms > $2 "
                           "AND end_ms > $3 AND start_ms < $4 ORDER BY start_ms, id",
    [P_VEHICLES_AT] = "SELECT " VEHICLE_COLS " FROM vehicles WHERE $1::text IS NULL "
                      "OR station = $1 ORDER BY id",
    [P_BOOKINGS_STARTING] = "SELECT " BOOKING_COLS " FROM bookings WHERE state = $1 "
                            "AND start_ms < $2 ORDER BY start_ms, id",
    [P_RENTALS_OVERDUE] = "SELECT " RENTAL_COLS " FROM rentals r WHERE state = 'ACTIVE' "
                          "AND due_ms < $1 AND NOT EXISTS (SELECT 1 FROM alerts_raised a "
                          "WHERE a.kind = 'rental_overdue' AND a.id = r.id) ORDER BY due_ms",
    [P_ALERT_RECORD] = "INSERT INTO alerts_raised(kind, id, at_ms) VALUES($1, $2, $3)",
    [P_RENTALS_OF_CUSTOMER] = "SELECT " RENTAL_COLS " FROM rentals WHERE customer = $1 ORDER BY "
                              "state NOT IN ('REQUESTED','PAYMENT_PENDING','ACTIVE','RETURNED',"
                              "'CANCEL_REQUESTED'), created_ms DESC, id LIMIT $2",
    [P_BOOKINGS_OF_CUSTOMER] = "SELECT " BOOKING_COLS " FROM bookings WHERE customer = $1 "
                               "ORDER BY end_ms <= $3, start_ms DESC, id LIMIT $2",
    [P_CUSTOMER_TOTALS] =
        "SELECT (SELECT coalesce(sum(charged_cents), 0) FROM rentals WHERE customer = $1) + "
        "(SELECT coalesce(sum(charged_cents), 0) FROM bookings WHERE customer = $1), "
        "(SELECT coalesce(sum(refunded_cents), 0) FROM rentals WHERE customer = $1) + "
        "(SELECT coalesce(sum(refunded_cents), 0) FROM bookings WHERE customer = $1), "
        "(SELECT coalesce(sum(r.fee_cents), 0) FROM rentals r JOIN saga_steps s ON s.rental = r.id "
        "AND s.step = 'fee' AND s.status = 'done' WHERE r.customer = $1), "
        "(SELECT coalesce(sum(r.fee_cents), 0) FROM rentals r WHERE r.customer = $1 AND "
        "r.fee_cents > 0 AND NOT EXISTS (SELECT 1 FROM saga_steps s WHERE s.rental = r.id AND "
        "s.step = 'fee' AND s.status = 'done'))",
    [P_STATION_COUNTS] =
        "SELECT count(*) FILTER (WHERE state = 'AVAILABLE'), "
        "count(*) FILTER (WHERE state IN ('RESERVED', 'RENTED')), "
        "count(*) FILTER (WHERE state IN ('REPAIR_REQUESTED', 'IN_REPAIR')), "
        "count(*) FILTER (WHERE EXISTS (SELECT 1 FROM bookings b WHERE b.vehicle = v.id "
        "AND b.state = 'HELD' AND b.end_ms > $2)) FROM vehicles v WHERE station = $1",
    [P_OUTBOX_PUT] = "INSERT INTO outbox(topic, payload, retain, created_ms, expiry_s) "
                     "VALUES($1, $2, $3, $4, $5) RETURNING seq",
    [P_OUTBOX_DELETE] = "DELETE FROM outbox WHERE seq BETWEEN $1 AND $2",
    [P_OUTBOX_EACH] = "SELECT seq, topic, payload, retain, expiry_s FROM outbox ORDER BY seq",
};

/* The writes whose statement also logs and projects: the upsert, its kind. */
static const struct {
  enum pg_stmt_id id;
  const char *upsert;
  rm_kind kind;
} pg_recorded[] = {
    {P_VEHICLE_PUT, VEHICLE_UPSERT, RM_VEHICLE},
    {P_RENTAL_PUT, RENTAL_UPSERT, RM_RENTAL},
    {P_STEP_PUT, STEP_UPSERT, RM_SAGA},
    {P_REPAIR_PUT, REPAIR_UPSERT, RM_REPAIR},
};

/* Forward migrations: pg_migrations[v] takes a database from version v to
 * v + 1 (version 0: an empty database). */
static const char *const *pg_migrations[HUB_SCHEMA_VERSION] = {
    [0] = (const char *const[]){hub_schema_pg_sql, NULL},
    /* 2: a rental holds its vehicle only while paying or ACTIVE */
    [1] = (const char *const[]){"DROP INDEX IF EXISTS rentals_one_open_per_vehicle",
                                "CREATE UNIQUE INDEX IF NOT EXISTS rentals_vehicle_held ON "
                                "rentals(vehicle) WHERE state IN ('PAYMENT_PENDING', 'ACTIVE')",
                                NULL},
    /* 3: alerts raised once; indexes for the periodic scans */
    [2] = (const char *const[]){"CREATE TABLE IF NOT EXISTS alerts_raised (kind TEXT NOT NULL, "
                                "id TEXT NOT NULL, at_ms BIGINT NOT NULL, PRIMARY KEY (kind, id))",
                                "CREATE INDEX IF NOT EXISTS rentals_due ON rentals(state, due_ms)",
                                "CREATE INDEX IF NOT EXISTS vehicles_station ON vehicles(station)",
                                "CREATE INDEX IF NOT EXISTS bookings_state_start ON "
                                "bookings(state, start_ms)",
                                NULL},
    /* 4: the hub's outbox to subscribers */
    [3] = (const char *const[]){"CREATE TABLE IF NOT EXISTS outbox (seq BIGSERIAL PRIMARY KEY, "
                                "topic TEXT NOT NULL, payload BYTEA NOT NULL, retain INTEGER NOT "
                                "NULL, created_ms BIGINT NOT NULL, expiry_s BIGINT NOT NULL "
                                "DEFAULT 0)",
                                "CREATE INDEX IF NOT EXISTS rentals_customer_state ON "
                                "rentals(customer, state)",
                                NULL},
};

#define PG_RECONNECT_MAX_MS 5000

typedef struct pg_store {
  PGconn *conn;
  char url[512];   /* as configured ("": the PG* environment) */
  char shown[512]; /* the same with its password masked, for messages */
  char *sql[P__COUNT];
  bool lost;         /* the connection broke: reconnect at the next begin */
  bool release_pending; /* "input" released, RELEASE not sent yet (pg_savepoint) */
  int failed_tries;  /* reconnections that failed in a row */
  int64_t next_try_us; /* no reconnection before this (fl_mono_us) */
} pg_store;

/* ---- errors and connections ------------------------------------------------- */

/* Copies url into out with the password masked: the user:password@ of a
 * URL and any password=... parameter or keyword show as "***". */
static void mask_url(const char *url, char *out, size_t cap) {
  snprintf(out, cap, "%s", url && url[0] ? url : "(PG* environment)");
  char *scheme = strstr(out, "://");
  if (scheme) {
    char *user = scheme + 3;
    size_t authority = strcspn(user, "/?");
    char *at = NULL; /* the last '@' of the authority: a password may hold one */
    for (char *p = user; p < user + authority; p++)
      if (*p == '@') at = p;
    char *colon = strchr(user, ':');
    if (at && colon && colon < at) {
      memmove(colon + 4, at, strlen(at) + 1);
      memcpy(colon + 1, "***", 3);
    }
  }
  for (char *p = strstr(out, "password="); p; p = strstr(p + 1, "password=")) {
    char *v = p + strlen("password=");
    size_t n = strcspn(v, "& ");
    if (strlen(v) + 3 - n >= cap - (size_t)(v - out)) break;
    memmove(v + 3, v + n, strlen(v + n) + 1);
    memcpy(v, "***", 3);
  }
}

/* Copies libpq's message into out on one line (its messages span lines). */
static void one_line(const char *msg, char *out, size_t cap) {
  size_t j = 0;
  for (size_t i = 0; msg && msg[i] && j + 1 < cap; i++) {
    char c = msg[i] == '\n' || msg[i] == '\t' ? ' ' : msg[i];
    if (c == ' ' && (j == 0 || out[j - 1] == ' ')) continue;
    out[j++] = c;
  }
  while (j > 0 && out[j - 1] == ' ') j--;
  out[j] = '\0';
}

static void lost_connection(pg_store *st, const char *why) {
  if (!st->lost)
    fl_error("store: lost the connection to PostgreSQL at %s (%s): the batch is retried "
             "after reconnecting", st->shown, why);
  st->lost = true;
}

/* Translates a failed result r (NULL: none) into an fl_err (see the top). */
static int pg_error(pg_store *st, const PGresult *r, const char *what) {
  char msg[512];
  one_line(r ? PQresultErrorMessage(r) : PQerrorMessage(st->conn), msg, sizeof msg);
  if (!msg[0]) one_line(PQerrorMessage(st->conn), msg, sizeof msg);
  const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  if (PQstatus(st->conn) != CONNECTION_OK || (state && (strncmp(state, "08", 2) == 0 ||
                                                        strncmp(state, "57P", 3) == 0))) {
    lost_connection(st, msg);
    return FL_ERR_UNAVAILABLE;
  }
  if (state && (strcmp(state, "23505") == 0 || strcmp(state, "23P01") == 0 ||
                strcmp(state, "23514") == 0)) {
    fl_info("store: %s refused: %s", what, msg);
    return FL_ERR_CONFLICT;
  }
  fl_error("store: %s: %s", what, msg);
  return FL_ERR_DB;
}

/* Runs a statement without parameters (several, separated by ';'). */
static int pg_exec(pg_store *st, const char *sql) {
  PGresult *r = PQexec(st->conn, sql);
  ExecStatusType s = PQresultStatus(r);
  int rc = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? FL_OK : pg_error(st, r, sql);
  PQclear(r);
  return rc;
}

static void col_text(const PGresult *r, int row, int col, char *dst, size_t cap) {
  snprintf(dst, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

static void ignore_notice(void *arg, const char *message) {}

/* Connects to st->url; FL_OK or FL_ERR_UNAVAILABLE (message in err). */
static int pg_connect(pg_store *st, char *err, size_t cap) {
  const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
  const char *values[] = {"5", "fleet-hub", st->url[0] ? st->url : NULL, NULL};
  if (!st->url[0]) keys[2] = NULL;
  PQfinish(st->conn);
  st->conn = PQconnectdbParams(keys, values, 1);
  if (!st->conn) {
    snprintf(err, cap, "out of memory");
    return FL_ERR_UNAVAILABLE;
  }
  if (PQstatus(st->conn) != CONNECTION_OK) {
    one_line(PQerrorMessage(st->conn), err, cap);
    return FL_ERR_UNAVAILABLE;
  }
  PQsetNoticeProcessor(st->conn, ignore_notice, NULL);
  return FL_OK;
}

/* Prepares every statement on the current connection. */
static int pg_prepare_all(pg_store *st) {
  for (int i = 0; i < P__COUNT; i++) {
    char name[16];
    snprintf(name, sizeof name, "s%d", i);
    PGresult *r = PQprepare(st->conn, name, st->sql[i], 0, NULL);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? FL_OK : pg_error(st, r, st->sql[i]);
    PQclear(r);
    if (rc != FL_OK) return rc;
  }
  return FL_OK;
}

/* Runs a query of one value into out (cap bytes). */
static int pg_value(pg_store *st, const char *sql, char *out, size_t cap) {
  PGresult *r = PQexec(st->conn, sql);
  int rc = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? FL_OK
                                                                      : pg_error(st, r, sql);
  if (rc == FL_OK) col_text(r, 0, 0, out, cap);
  PQclear(r);
  return rc;
}

/* Reads the schema version (0: no schema yet) under the schema lock. */
static int schema_version(pg_store *st, int *out) {
  char v[32];
  int rc = pg_value(st, "SELECT to_regclass('schema_version') IS NOT NULL", v, sizeof v);
  *out = 0;
  if (rc == FL_OK && strcmp(v, "t") == 0) {
    rc = pg_value(st, "SELECT coalesce(max(version), 0) FROM schema_version", v, sizeof v);
    if (rc == FL_OK) *out = atoi(v);
  }
  return rc;
}

/* Creates the schema of an empty database or takes an older one forward,
 * in one transaction under an advisory lock (two hubs starting together). */
static int schema_migrate(pg_store *st) {
  int version = 0;
  int rc = pg_exec(st, "BEGIN; SELECT pg_advisory_xact_lock(7283640019)");
  if (rc == FL_OK) rc = schema_version(st, &version);
  if (rc == FL_OK && version > HUB_SCHEMA_VERSION) {
    fl_error("store: the PostgreSQL database at %s has schema version %d, newer than this "
             "hub's %d: run a newer fleet-hub", st->shown, version, HUB_SCHEMA_VERSION);
    rc = FL_ERR_CONFIG;
  }
  for (int v = version; rc == FL_OK && v < HUB_SCHEMA_VERSION; v++) {
    for (const char *const *m = pg_migrations[v]; rc == FL_OK && *m; m++) rc = pg_exec(st, *m);
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO schema_version(version) VALUES(%d)", v + 1);
    if (rc == FL_OK) rc = pg_exec(st, sql);
    if (rc == FL_OK) fl_info("store: PostgreSQL schema at version %d", v + 1);
  }
  if (rc == FL_OK) return pg_exec(st, "COMMIT");
  if (PQstatus(st->conn) == CONNECTION_OK) pg_exec(st, "ROLLBACK");
  return rc;
}

/* Reconnects after a lost connection, at most once per back-off period:
 * FL_OK with the statements prepared again, or FL_ERR_UNAVAILABLE. */
static int pg_reconnect(pg_store *st) {
  int64_t now = fl_mono_us();
  if (now < st->next_try_us) return FL_ERR_UNAVAILABLE;
  char err[512];
  int rc = pg_connect(st, err, sizeof err);
  if (rc == FL_OK) {
    st->lost = false;
    rc = pg_prepare_all(st);
  }
  if (rc == FL_OK) {
    fl_info("store: reconnected to PostgreSQL at %s after %d failed attempts", st->shown,
            st->failed_tries);
    st->failed_tries = 0;
    st->next_try_us = 0;
    return FL_OK;
  }
  st->lost = true;
  if (st->failed_tries % 10 == 0)
    fl_error("store: cannot reconnect to PostgreSQL at %s: %s", st->shown,
             rc == FL_ERR_UNAVAILABLE ? err : "preparing statements failed");
  int64_t wait_ms = 100LL << (st->failed_tries < 6 ? st->failed_tries : 6);
  st->failed_tries++;
  st->next_try_us = now + 1000 * (wait_ms < PG_RECONNECT_MAX_MS ? wait_ms : PG_RECONNECT_MAX_MS);
  return FL_ERR_UNAVAILABLE;
}

static void pg_close(void *b_);

static int pg_open(const hub_store_opts *o, void **out) {
  pg_store *st = calloc(1, sizeof *st);
  if (!st) return FL_ERR_NOMEM;
  snprintf(st->url, sizeof st->url, "%s", o->url ? o->url : "");
  mask_url(st->url, st->shown, sizeof st->shown);
  int rc = FL_OK;
  for (int i = 0; rc == FL_OK && i < P__COUNT; i++) {
    if (pg_sql[i]) st->sql[i] = strdup(pg_sql[i]);
    if (!pg_sql[i] || !st->sql[i]) rc = pg_sql[i] ? FL_ERR_NOMEM : FL_OK;
  }
  for (size_t k = 0; rc == FL_OK && k < sizeof pg_recorded / sizeof pg_recorded[0]; k++) {
    char tail[4096], *sql = malloc(8192);
    readmodel_pg_tail(pg_recorded[k].kind, tail, sizeof tail);
    if (sql) snprintf(sql, 8192, "WITH w AS (%s RETURNING *), %s", pg_recorded[k].upsert, tail);
    st->sql[pg_recorded[k].id] = sql;
    if (!sql) rc = FL_ERR_NOMEM;
  }
  char err[512];
  if (rc == FL_OK && (rc = pg_connect(st, err, sizeof err)) != FL_OK)
    fl_error("store: cannot connect to PostgreSQL at %s: %s", st->shown, err);
  if (rc == FL_OK) rc = schema_migrate(st);
  if (rc == FL_OK) rc = pg_prepare_all(st);
  if (rc != FL_OK) {
    pg_close(st);
    return rc;
  }
  fl_info("store: PostgreSQL at %s (server %d)", st->shown, PQserverVersion(st->conn));
  *out = st;
  return FL_OK;
}

static void pg_close(void *b_) {
  pg_store *st = b_;
  if (!st) return;
  PQfinish(st->conn);
  for (int i = 0; i < P__COUNT; i++) free(st->sql[i]);
  free(st);
}

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

static void p_text(pg_params *p, const char *s) {
  p->val[p->n] = s;
  p->len[p->n] = 0;
  p->fmt[p->n] = 0;
  p->n++;
}
/* s, or NULL when s is empty (as the SQLite backend stores it). */
static void p_text_or_null(pg_params *p, const char *s) { p_text(p, s && s[0] ? s : NULL); }
static void p_i64(pg_params *p, int64_t v) {
  snprintf(p->num[p->n], sizeof p->num[0], "%lld", (long long)v);
  p_text(p, p->num[p->n]);
}
static void p_f64(pg_params *p, double v) {
  snprintf(p->num[p->n], sizeof p->num[0], "%.17g", v);
  p_text(p, p->num[p->n]);
}
static void p_blob(pg_params *p, const void *b, size_t len) {
  p->val[p->n] = b ? (const char *)b : "";
  p->len[p->n] = (int)len;
  p->fmt[p->n] = 1;
  p->n++;
}

/* Runs prepared statement id with p: FL_OK and *out (the caller clears it),
 * or an fl_err (see pg_error). */
static int pg_run(pg_store *st, enum pg_stmt_id id, const pg_params *p, PGresult **out) {
  char name[16];
  snprintf(name, sizeof name, "s%d", (int)id);
  *out = NULL;
  if (st->lost) return FL_ERR_UNAVAILABLE;
  PGresult *r = PQexecPrepared(st->conn, name, p ? p->n : 0, p ? p->val : NULL,
                               p ? p->len : NULL, p ? p->fmt : NULL, 0);
  ExecStatusType s = PQresultStatus(r);
  if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
    *out = r;
    return FL_OK;
  }
  int rc = pg_error(st, r, st->sql[id]);
  PQclear(r);
  return rc;
}

/* Runs a statement that returns nothing. */
static int pg_do(pg_store *st, enum pg_stmt_id id, const pg_params *p) {
  PGresult *r;
  int rc = pg_run(st, id, p, &r);
  PQclear(r);
  return rc;
}

/* Runs a one-row query: FL_OK and *out, FL_ERR_NOT_FOUND, or an fl_err. */
static int pg_row(pg_store *st, enum pg_stmt_id id, const pg_params *p, PGresult **out) {
  int rc = pg_run(st, id, p, out);
  if (rc == FL_OK && PQntuples(*out) == 0) {
    PQclear(*out);
    *out = NULL;
    rc = FL_ERR_NOT_FOUND;
  }
  return rc;
}

static int64_t col_i64(const PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}
static double col_f64(const PGresult *r, int row, int col) {
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

/* ---- transactions ---------------------------------------------------------------- */

static int pg_begin(void *b_) {
  pg_store *st = b_;
  st->release_pending = false;
  int rc = st->lost || PQstatus(st->conn) != CONNECTION_OK ? pg_reconnect(st) : FL_OK;
  if (rc != FL_OK) return rc;
  rc = pg_exec(st, "BEGIN");
  if (rc == FL_ERR_UNAVAILABLE) { /* the server went away while the hub was idle */
    rc = pg_reconnect(st);
    if (rc == FL_OK) rc = pg_exec(st, "BEGIN");
  }
  return rc;
}

static bool pg_in_txn(void *b_) {
  pg_store *st = b_;
  if (st->lost) return false;
  PGTransactionStatusType t = PQtransactionStatus(st->conn);
  return t == PQTRANS_INTRANS || t == PQTRANS_INERROR;
}

static int pg_commit(void *b_) {
  pg_store *st = b_;
  st->release_pending = false;
  if (st->lost) return FL_ERR_UNAVAILABLE;
  if (PQtransactionStatus(st->conn) == PQTRANS_INERROR) {
    fl_error("store: commit of a failed transaction: rolled back");
    pg_exec(st, "ROLLBACK");
    return FL_ERR_DB;
  }
  return pg_exec(st, "COMMIT");
}

static int pg_rollback(void *b_) {
  pg_store *st = b_;
  st->release_pending = false;
  return pg_in_txn(st) ? pg_exec(st, "ROLLBACK") : FL_OK;
}
/* A released savepoint costs no round trip of its own: the RELEASE goes
 * with the next input's SAVEPOINT (one simple query), and is dropped before
 * COMMIT or ROLLBACK, which end every savepoint anyway. Statements between
 * a release and the next savepoint (the engine's end-of-batch scan) run
 * inside the unreleased savepoint, which changes nothing they see or do. */
static int pg_savepoint(void *b_) {
  pg_store *st = b_;
  if (st->lost) return FL_ERR_UNAVAILABLE;
  bool release = st->release_pending;
  st->release_pending = false;
  return pg_exec(st, release ? "RELEASE SAVEPOINT input; SAVEPOINT input" : "SAVEPOINT input");
}
static int pg_release(void *b_) {
  pg_store *st = b_;
  if (st->lost) return FL_ERR_UNAVAILABLE;
  st->release_pending = true;
  return FL_OK;
}
static int pg_rollback_to(void *b_) {
  return ((pg_store *)b_)->lost ? FL_ERR_UNAVAILABLE : pg_exec(b_, "ROLLBACK TO SAVEPOINT input");
}

/* ---- rows ------------------------------------------------------------------------- */

static int pg_device_get(void *b_, const char *id, hub_device *out) {
  pg_params p = {0};
  p_text(&p, id);
  PGresult *r;
  int rc = pg_row(b_, P_DEVICE_GET, &p, &r);
  if (rc != FL_OK) return rc;
  memset(out, 0, sizeof *out);
  col_text(r, 0, 0, out->id, sizeof out->id);
  col_text(r, 0, 1, out->role, sizeof out->role);
  out->boot = (uint64_t)col_i64(r, 0, 2);
  out->up_seq = (uint64_t)col_i64(r, 0, 3);
  out->down_seq = (uint64_t)col_i64(r, 0, 4);
  out->down_applied = (uint64_t)col_i64(r, 0, 5);
  out->online = col_i64(r, 0, 6) != 0;
  out->last_seen_ms = col_i64(r, 0, 7);
  out->clock_skew_ms = col_i64(r, 0, 8);
  PQclear(r);
  return FL_OK;
}

static int pg_device_put(void *b_, const hub_device *d) {
  pg_params p = {0};
  p_text(&p, d->id);
  p_text_or_null(&p, d->role);
  p_i64(&p, (int64_t)d->boot);
  p_i64(&p, (int64_t)d->up_seq);
  p_i64(&p, (int64_t)d->down_seq);
  p_i64(&p, (int64_t)d->down_applied);
  p_i64(&p, d->online);
  p_i64(&p, d->last_seen_ms);
  p_i64(&p, d->clock_skew_ms);
  return pg_do(b_, P_DEVICE_PUT, &p);
}

static int vehicle_read(const PGresult *r, int row, hub_vehicle *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(r, row, 0, out->id, sizeof out->id);
  col_text(r, row, 1, out->name, sizeof out->name);
  col_text(r, row, 2, out->station, sizeof out->station);
  out->rate_cents = col_i64(r, row, 3);
  COL_STATE(r, row, 4, vehicle_state_parse, &out->state);
  col_text(r, row, 5, out->rental, sizeof out->rental);
  out->repair_due = col_i64(r, row, 6) != 0;
  out->energy_pct = PQgetisnull(r, row, 7) ? -1 : (int)col_i64(r, row, 7);
  out->has_position = !PQgetisnull(r, row, 8);
  out->lat = col_f64(r, row, 8);
  out->lon = col_f64(r, row, 9);
  out->odometer_m = col_i64(r, row, 10);
  out->updated_ms = col_i64(r, row, 11);
  return bad ? FL_ERR_DB : FL_OK;
}

static int pg_vehicle_get(void *b_, const char *id, hub_vehicle *out) {
  pg_params p = {0};
  p_text(&p, id);
  PGresult *r;
  int rc = pg_row(b_, P_VEHICLE_GET, &p, &r);
  if (rc != FL_OK) return rc;
  rc = vehicle_read(r, 0, out);
  PQclear(r);
  return rc;
}

/* Writes v with statement id (with or without its change logged). */
static int vehicle_write(pg_store *st, enum pg_stmt_id id, const hub_vehicle *v) {
  pg_params p = {0};
  p_text(&p, v->id);
  p_text(&p, v->name);
  p_text(&p, v->station);
  p_i64(&p, v->rate_cents);
  p_text(&p, vehicle_state_name(v->state));
  p_text_or_null(&p, v->rental);
  p_i64(&p, v->repair_due);
  if (v->energy_pct >= 0) p_i64(&p, v->energy_pct);
  else p_text(&p, NULL);
  if (v->has_position) {
    p_f64(&p, v->lat);
    p_f64(&p, v->lon);
  } else {
    p_text(&p, NULL);
    p_text(&p, NULL);
  }
  p_i64(&p, v->odometer_m);
  p_i64(&p, v->updated_ms);
  return pg_do(st, id, &p);
}

static int pg_vehicle_put(void *b_, const hub_vehicle *v) { return vehicle_write(b_, P_VEHICLE_PUT, v); }
static int pg_vehicle_reading(void *b_, const hub_vehicle *v) {
  return vehicle_write(b_, P_VEHICLE_READING, v);
}

static int rental_read(const PGresult *r, int row, hub_rental *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(r, row, 0, out->id, sizeof out->id);
  col_text(r, row, 1, out->vehicle, sizeof out->vehicle);
  col_text(r, row, 2, out->customer, sizeof out->customer);
  col_text(r, row, 3, out->kiosk, sizeof out->kiosk);
  col_text(r, row, 4, out->reply_topic, sizeof out->reply_topic);
  COL_STATE(r, row, 5, rental_state_parse, &out->state);
  out->minutes = (uint32_t)col_i64(r, row, 6);
  out->amount_cents = col_i64(r, row, 7);
  out->charged_cents = col_i64(r, row, 8);
  out->refunded_cents = col_i64(r, row, 9);
  out->fee_cents = col_i64(r, row, 10);
  col_text(r, row, 11, out->reason, sizeof out->reason);
  out->started = col_i64(r, row, 12) != 0;
  out->created_ms = col_i64(r, row, 13);
  out->due_ms = col_i64(r, row, 14);
  out->ended_ms = col_i64(r, row, 15);
  out->updated_ms = col_i64(r, row, 16);
  return bad ? FL_ERR_DB : FL_OK;
}

static int pg_rental_get(void *b_, const char *id, hub_rental *out) {
  pg_params p = {0};
  p_text(&p, id);
  PGresult *r;
  int rc = pg_row(b_, P_RENTAL_GET, &p, &r);
  if (rc != FL_OK) return rc;
  rc = rental_read(r, 0, out);
  PQclear(r);
  return rc;
}

static int pg_rental_put(void *b_, const hub_rental *x) {
  pg_params p = {0};
  p_text(&p, x->id);
  p_text(&p, x->vehicle);
  p_text(&p, x->customer);
  p_text(&p, x->kiosk);
  p_text(&p, x->reply_topic);
  p_text(&p, rental_state_name(x->state));
  p_i64(&p, x->minutes);
  p_i64(&p, x->amount_cents);
  p_i64(&p, x->charged_cents);
  p_i64(&p, x->refunded_cents);
  p_i64(&p, x->fee_cents);
  p_text_or_null(&p, x->reason);
  p_i64(&p, x->started);
  p_i64(&p, x->created_ms);
  if (x->due_ms) p_i64(&p, x->due_ms);
  else p_text(&p, NULL);
  if (x->ended_ms) p_i64(&p, x->ended_ms);
  else p_text(&p, NULL);
  p_i64(&p, x->updated_ms);
  return pg_do(b_, P_RENTAL_PUT, &p);
}

/* Reads a saga_steps row; FL_ERR_DB for a kind or status this hub does not know. */
static int step_read(const PGresult *r, int row, hub_step *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(r, row, 0, out->owner, sizeof out->owner);
  COL_STATE(r, row, 1, step_kind_parse, &out->kind);
  COL_STATE(r, row, 2, step_status_parse, &out->status);
  col_text(r, row, 3, out->idem_key, sizeof out->idem_key);
  out->amount_cents = col_i64(r, row, 4);
  out->attempts = (int)col_i64(r, row, 5);
  col_text(r, row, 6, out->provider_ref, sizeof out->provider_ref);
  col_text(r, row, 7, out->last_error, sizeof out->last_error);
  out->next_try_ms = col_i64(r, row, 8);
  out->updated_ms = col_i64(r, row, 9);
  return bad ? FL_ERR_DB : FL_OK;
}

static int pg_step_get(void *b_, const char *owner, step_kind kind, hub_step *out) {
  pg_params p = {0};
  p_text(&p, owner);
  p_text(&p, step_kind_name(kind));
  PGresult *r;
  int rc = pg_row(b_, P_STEP_GET, &p, &r);
  if (rc != FL_OK) return rc;
  rc = step_read(r, 0, out);
  PQclear(r);
  return rc;
}

static int pg_step_put(void *b_, const hub_step *s) {
  pg_params p = {0};
  p_text(&p, s->owner);
  p_text(&p, step_kind_name(s->kind));
  p_text(&p, step_status_name(s->status));
  p_text(&p, s->idem_key);
  p_i64(&p, s->amount_cents);
  p_i64(&p, s->attempts);
  p_text_or_null(&p, s->provider_ref);
  p_text_or_null(&p, s->last_error);
  p_i64(&p, s->next_try_ms);
  p_i64(&p, s->updated_ms);
  return pg_do(b_, P_STEP_PUT, &p);
}

/* The rows are all in the result before fn runs, so fn may write. */
static int pg_steps_where(void *b_, step_status status, int64_t due_ms,
                          int (*fn)(void *ctx, const hub_step *s), void *ctx) {
  pg_params p = {0};
  p_text(&p, step_status_name(status));
  p_i64(&p, due_ms);
  PGresult *r;
  int rc = pg_run(b_, P_STEPS_WHERE, &p, &r);
  for (int i = 0; rc == FL_OK && i < PQntuples(r); i++) {
    hub_step s;
    if (step_read(r, i, &s) == FL_OK) rc = fn(ctx, &s); /* a damaged row is logged and left alone */
  }
  PQclear(r);
  return rc;
}

static int repair_read(const PGresult *r, hub_repair *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(r, 0, 0, out->id, sizeof out->id);
  col_text(r, 0, 1, out->vehicle, sizeof out->vehicle);
  COL_STATE(r, 0, 2, repair_state_parse, &out->state);
  col_text(r, 0, 3, out->dtcs, sizeof out->dtcs);
  col_text(r, 0, 4, out->severity, sizeof out->severity);
  col_text(r, 0, 5, out->text, sizeof out->text);
  out->opened_ms = col_i64(r, 0, 6);
  out->updated_ms = col_i64(r, 0, 7);
  return bad ? FL_ERR_DB : FL_OK;
}

static int repair_query(pg_store *st, enum pg_stmt_id id, const char *key, hub_repair *out) {
  pg_params p = {0};
  p_text(&p, key);
  PGresult *r;
  int rc = pg_row(st, id, &p, &r);
  if (rc != FL_OK) return rc;
  rc = repair_read(r, out);
  PQclear(r);
  return rc;
}

static int pg_repair_get(void *b_, const char *id, hub_repair *out) {
  return repair_query(b_, P_REPAIR_GET, id, out);
}
static int pg_repair_open_for(void *b_, const char *vehicle, hub_repair *out) {
  return repair_query(b_, P_REPAIR_OPEN_FOR, vehicle, out);
}

static int pg_repair_put(void *b_, const hub_repair *x) {
  pg_params p = {0};
  p_text(&p, x->id);
  p_text(&p, x->vehicle);
  p_text(&p, repair_state_name(x->state));
  p_text(&p, x->dtcs);
  p_text(&p, x->severity);
  p_text_or_null(&p, x->text);
  p_i64(&p, x->opened_ms);
  p_i64(&p, x->updated_ms);
  return pg_do(b_, P_REPAIR_PUT, &p);
}

static int booking_read(const PGresult *r, int row, hub_booking *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(r, row, 0, out->id, sizeof out->id);
  col_text(r, row, 1, out->vehicle, sizeof out->vehicle);
  col_text(r, row, 2, out->customer, sizeof out->customer);
  col_text(r, row, 3, out->kiosk, sizeof out->kiosk);
  col_text(r, row, 4, out->reply_topic, sizeof out->reply_topic);
  COL_STATE(r, row, 5, booking_state_parse, &out->state);
  out->start_ms = col_i64(r, row, 6);
  out->end_ms = col_i64(r, row, 7);
  out->deposit_cents = col_i64(r, row, 8);
  out->charged_cents = col_i64(r, row, 9);
  out->refunded_cents = col_i64(r, row, 10);
  col_text(r, row, 11, out->rental, sizeof out->rental);
  col_text(r, row, 12, out->reason, sizeof out->reason);
  out->created_ms = col_i64(r, row, 13);
  out->updated_ms = col_i64(r, row, 14);
  return bad ? FL_ERR_DB : FL_OK;
}

static int pg_booking_get(void *b_, const char *id, hub_booking *out) {
  pg_params p = {0};
  p_text(&p, id);
  PGresult *r;
  int rc = pg_row(b_, P_BOOKING_GET, &p, &r);
  if (rc != FL_OK) return rc;
  rc = booking_read(r, 0, out);
  PQclear(r);
  return rc;
}

static int pg_booking_put(void *b_, const hub_booking *bk) {
  pg_params p = {0};
  p_text(&p, bk->id);
  p_text(&p, bk->vehicle);
  p_text(&p, bk->customer);
  p_text(&p, bk->kiosk);
  p_text(&p, bk->reply_topic);
  p_text(&p, booking_state_name(bk->state));
  p_i64(&p, bk->start_ms);
  p_i64(&p, bk->end_ms);
  p_i64(&p, bk->deposit_cents);
  p_i64(&p, bk->charged_cents);
  p_i64(&p, bk->refunded_cents);
  p_text_or_null(&p, bk->rental);
  p_text_or_null(&p, bk->reason);
  p_i64(&p, bk->created_ms);
  p_i64(&p, bk->updated_ms);
  return pg_do(b_, P_BOOKING_PUT, &p);
}

static int pg_bookings_holding(void *b_, const char *vehicle, int64_t now_ms, int64_t start_ms,
                               int64_t end_ms, int (*fn)(void *ctx, const hub_booking *bk),
                               void *ctx) {
  pg_params p = {0};
  p_text(&p, vehicle);
  p_i64(&p, now_ms);
  p_i64(&p, start_ms);
  p_i64(&p, end_ms);
  PGresult *r;
  int rc = pg_run(b_, P_BOOKINGS_HOLDING, &p, &r);
  for (int i = 0; rc == FL_OK && i < PQntuples(r); i++) {
    hub_booking bk;
    if (booking_read(r, i, &bk) == FL_OK) rc = fn(ctx, &bk);
  }
  PQclear(r);
  return rc;
}

/* The periodic scans (hub/store.h): every row is read before fn runs, so
 * that fn may write. */
static int pg_vehicles_each(void *b_, const char *station,
                            int (*fn)(void *ctx, const hub_vehicle *v), void *ctx) {
  pg_params p = {0};
  p_text(&p, station && station[0] ? station : NULL);
  PGresult *r;
  int rc = pg_run(b_, P_VEHICLES_AT, &p, &r);
  for (int i = 0; rc == FL_OK && i < PQntuples(r); i++) {
    hub_vehicle v;
    if (vehicle_read(r, i, &v) == FL_OK) rc = fn(ctx, &v);
  }
  PQclear(r);
  return rc;
}

static int pg_bookings_starting_before(void *b_, booking_state state, int64_t before_ms,
                                       int (*fn)(void *ctx, const hub_booking *bk), void *ctx) {
  pg_params p = {0};
  p_text(&p, booking_state_name(state));
  p_i64(&p, before_ms);
  PGresult *r;
  int rc = pg_run(b_, P_BOOKINGS_STARTING, &p, &r);
  for (int i = 0; rc == FL_OK && i < PQntuples(r); i++) {
    hub_booking bk;
    if (booking_read(r, i, &bk) == FL_OK) rc = fn(ctx, &bk);
  }
  PQclear(r);
  return rc;
}

static int pg_rentals_overdue(void *b_, int64_t now_ms, int (*fn)(void *ctx, const hub_rental *x),
                              void *ctx) {
  pg_params p = {0};
  p_i64(&p, now_ms);
  PGresult *r;
  int rc = pg_run(b_, P_RENTALS_OVERDUE, &p, &r);
  for (int i = 0; rc == FL_OK && i < PQntuples(r); i++) {
    hub_rental x;
    if (rental_read(r, i, &x) == FL_OK) rc = fn(ctx, &x);
  }
  PQclear(r);
  return rc;
}

static int pg_rentals_of_customer(void *b_, const char *customer, int limit,
                                  int (*fn)(void *ctx, const hub_rental *x), void *ctx) {
  pg_params p = {0};
  p_text(&p, customer);
  p_i64(&p, limit);
  PGresult *r;
  int rc = pg_run(b_, P_RENTALS_OF_CUSTOMER, &p, &r);
  for (int i = 0; rc == FL_OK && i < PQntuples(r); i++) {
    hub_rental x;
    if (rental_read(r, i, &x) == FL_OK) rc = fn(ctx, &x);
  }
  PQclear(r);
  return rc;
}

static int pg_bookings_of_customer(void *b_, const char *customer, int limit,
                                   int (*fn)(void *ctx, const hub_booking *bk), void *ctx) {
  pg_params p = {0};
  p_text(&p, customer);
  p_i64(&p, limit);
  p_i64(&p, fl_now_ms());
  PGresult *r;
  int rc = pg_run(b_, P_BOOKINGS_OF_CUSTOMER, &p, &r);
  for (int i = 0; rc == FL_OK && i < PQntuples(r); i++) {
    hub_booking bk;
    if (booking_read(r, i, &bk) == FL_OK) rc = fn(ctx, &bk);
  }
  PQclear(r);
  return rc;
}

static int pg_customer_totals(void *b_, const char *customer, hub_customer_totals *out) {
  pg_params p = {0};
  p_text(&p, customer);
  PGresult *r;
  int rc = pg_row(b_, P_CUSTOMER_TOTALS, &p, &r);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_ERR_DB : rc;
  out->charged_cents = col_i64(r, 0, 0);
  out->refunded_cents = col_i64(r, 0, 1);
  out->fees_paid_cents = col_i64(r, 0, 2);
  out->fees_owed_cents = col_i64(r, 0, 3);
  PQclear(r);
  return FL_OK;
}

static int pg_station_counts(void *b_, const char *station, int64_t now_ms,
                             hub_station_counts *out) {
  pg_params p = {0};
  p_text(&p, station);
  p_i64(&p, now_ms);
  PGresult *r;
  int rc = pg_row(b_, P_STATION_COUNTS, &p, &r);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_ERR_DB : rc;
  out->available = (uint32_t)col_i64(r, 0, 0);
  out->rented = (uint32_t)col_i64(r, 0, 1);
  out->in_repair = (uint32_t)col_i64(r, 0, 2);
  out->booked = (uint32_t)col_i64(r, 0, 3);
  PQclear(r);
  return FL_OK;
}

static int pg_outbox_put(void *b_, const char *topic, const uint8_t *payload, size_t len,
                         bool retain, uint32_t expiry_s, int64_t now_ms, uint64_t *seq) {
  pg_params p = {0};
  p_text(&p, topic);
  p_blob(&p, payload, len);
  p_i64(&p, retain);
  p_i64(&p, now_ms);
  p_i64(&p, expiry_s);
  PGresult *r;
  int rc = pg_row(b_, P_OUTBOX_PUT, &p, &r);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_ERR_DB : rc;
  *seq = (uint64_t)col_i64(r, 0, 0);
  PQclear(r);
  return FL_OK;
}

static int pg_outbox_delete(void *b_, uint64_t first, uint64_t last) {
  pg_params p = {0};
  p_i64(&p, (int64_t)first);
  p_i64(&p, (int64_t)last);
  return pg_do(b_, P_OUTBOX_DELETE, &p);
}

static int pg_outbox_each(void *b_,
                          int (*fn)(void *ctx, uint64_t seq, const char *topic,
                                    const uint8_t *payload, size_t len, bool retain,
                                    uint32_t expiry_s),
                          void *ctx) {
  PGresult *r;
  pg_params p = {0};
  int rc = pg_run(b_, P_OUTBOX_EACH, &p, &r);
  for (int i = 0; rc == FL_OK && i < PQntuples(r); i++) {
    size_t len = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 2), &len);
    if (!bytes) {
      rc = FL_ERR_NOMEM;
      break;
    }
    rc = fn(ctx, (uint64_t)col_i64(r, i, 0), PQgetvalue(r, i, 1), bytes, len,
            col_i64(r, i, 3) != 0, (uint32_t)col_i64(r, i, 4));
    PQfreemem(bytes);
  }
  PQclear(r);
  return rc;
}

static int pg_alert_record(void *b_, const char *kind, const char *id, int64_t at_ms) {
  pg_params p = {0};
  p_text(&p, kind);
  p_text(&p, id);
  p_i64(&p, at_ms);
  return pg_do(b_, P_ALERT_RECORD, &p);
}

/* ---- logs, counters, sequences ------------------------------------------------------ */

static int pg_event_append(void *b_, const char *device, uint64_t seq, const char *type,
                           const char *corr, int64_t device_time_ms, int64_t received_ms,
                           const char *clock_flag, const uint8_t *payload, size_t len) {
  pg_params p = {0};
  p_text(&p, device);
  p_i64(&p, (int64_t)seq);
  p_text(&p, type);
  p_text_or_null(&p, corr);
  p_i64(&p, device_time_ms);
  p_i64(&p, received_ms);
  p_text_or_null(&p, clock_flag);
  p_blob(&p, payload, len);
  return pg_do(b_, P_EVENT_APPEND, &p);
}

/* Keeps the message and counts rejected.<error>, in one statement. */
static int pg_dead_letter(void *b_, int64_t received_ms, const char *topic, const char *device,
                          const char *error, const char *detail, const uint8_t *payload,
                          size_t len) {
  pg_params p = {0};
  p_i64(&p, received_ms);
  p_text(&p, topic);
  p_text_or_null(&p, device);
  p_text(&p, error);
  p_text(&p, detail);
  p_blob(&p, payload, len);
  return pg_do(b_, P_DEAD_LETTER, &p);
}

static int pg_count(void *b_, const char *name, int64_t n) {
  pg_params p = {0};
  p_text(&p, name);
  p_i64(&p, n);
  return pg_do(b_, P_COUNT, &p);
}

static int pg_next_id(void *b_, const char *name, uint64_t *out) {
  pg_params p = {0};
  p_text(&p, name);
  PGresult *r;
  int rc = pg_row(b_, P_NEXT_ID, &p, &r);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_ERR_DB : rc;
  *out = (uint64_t)col_i64(r, 0, 0);
  PQclear(r);
  return FL_OK;
}

/* ---- the downlink outbox ---------------------------------------------------------------- */

static int pg_downlink_put(void *b_, const hub_downlink *d, int64_t now_ms) {
  pg_params p = {0};
  p_text(&p, d->device);
  p_i64(&p, (int64_t)d->seq);
  p_text(&p, d->type);
  p_text(&p, d->topic);
  if (d->corr_len) p_blob(&p, d->corr, d->corr_len);
  else p_text(&p, NULL);
  if (d->expires_ms) p_i64(&p, d->expires_ms);
  else p_text(&p, NULL);
  p_blob(&p, d->payload, d->len);
  p_i64(&p, now_ms);
  return pg_do(b_, P_DOWNLINK_PUT, &p);
}

static int pg_downlink_ack(void *b_, const char *device, uint64_t upto) {
  pg_params p = {0};
  p_text(&p, device);
  p_i64(&p, (int64_t)upto);
  return pg_do(b_, P_DOWNLINK_ACK, &p);
}

/* Calls fn for each row of a downlink query. bytea comes back in text form
 * (hex): each payload is decoded for its call and freed after it. */
static int downlink_rows(pg_store *st, enum pg_stmt_id id, const pg_params *p,
                         int (*fn)(void *ctx, const hub_downlink *d), void *ctx) {
  PGresult *r;
  int rc = pg_run(st, id, p, &r);
  for (int i = 0; rc == FL_OK && i < PQntuples(r); i++) {
    hub_downlink d;
    memset(&d, 0, sizeof d);
    col_text(r, i, 0, d.device, sizeof d.device);
    d.seq = (uint64_t)col_i64(r, i, 1);
    col_text(r, i, 2, d.type, sizeof d.type);
    col_text(r, i, 3, d.topic, sizeof d.topic);
    if (!PQgetisnull(r, i, 4)) {
      size_t n = 0;
      unsigned char *corr = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 4), &n);
      if (corr && n <= sizeof d.corr) {
        memcpy(d.corr, corr, n);
        d.corr_len = n;
      }
      PQfreemem(corr);
    }
    d.expires_ms = col_i64(r, i, 5);
    unsigned char *payload = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 6), &d.len);
    if (!payload) {
      rc = FL_ERR_NOMEM;
      break;
    }
    d.payload = payload;
    rc = fn(ctx, &d);
    PQfreemem(payload);
  }
  PQclear(r);
  return rc;
}

static int pg_downlink_each(void *b_, const char *device, uint64_t after,
                            int (*fn)(void *ctx, const hub_downlink *d), void *ctx) {
  pg_params p = {0};
  p_text(&p, device);
  p_i64(&p, (int64_t)after);
  return downlink_rows(b_, P_DOWNLINK_EACH, &p, fn, ctx);
}

static int pg_downlink_online(void *b_, int (*fn)(void *ctx, const hub_downlink *d), void *ctx) {
  return downlink_rows(b_, P_DOWNLINK_ONLINE, NULL, fn, ctx);
}

/* ---- read models ------------------------------------------------------------------------- */

static int pg_readmodel_rebuild(void *b_, uint64_t *changes) {
  pg_store *st = b_;
  if (st->lost) return FL_ERR_UNAVAILABLE;
  PGresult *failed = NULL;
  int rc = readmodel_pg_rebuild(st->conn, changes, &failed);
  if (rc != FL_OK) rc = pg_error(st, failed, "rebuilding the read models");
  PQclear(failed);
  return rc;
}

static int pg_readmodel_check(void *b_, uint64_t *differing, char *msg, size_t cap) {
  pg_store *st = b_;
  if (st->lost) return FL_ERR_UNAVAILABLE;
  PGresult *failed = NULL;
  int rc = readmodel_pg_check(st->conn, differing, msg, cap, &failed);
  if (rc != FL_OK) rc = pg_error(st, failed, "checking the read models");
  PQclear(failed);
  return rc;
}

static const hub_store_ops pg_ops = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .savepoint = pg_savepoint,
    .release = pg_release,
    .rollback_to = pg_rollback_to,
    .in_txn = pg_in_txn,
    .device_get = pg_device_get,
    .device_put = pg_device_put,
    .vehicle_get = pg_vehicle_get,
    .vehicle_put = pg_vehicle_put,
    .vehicle_reading = pg_vehicle_reading,
    .rental_get = pg_rental_get,
    .rental_put = pg_rental_put,
    .step_get = pg_step_get,
    .step_put = pg_step_put,
    .repair_get = pg_repair_get,
    .repair_put = pg_repair_put,
    .repair_open_for = pg_repair_open_for,
    .booking_get = pg_booking_get,
    .booking_put = pg_booking_put,
    .bookings_holding = pg_bookings_holding,
    .steps_where = pg_steps_where,
    .vehicles_each = pg_vehicles_each,
    .bookings_starting_before = pg_bookings_starting_before,
    .rentals_overdue = pg_rentals_overdue,
    .alert_record = pg_alert_record,
    .rentals_of_customer = pg_rentals_of_customer,
    .bookings_of_customer = pg_bookings_of_customer,
    .customer_totals = pg_customer_totals,
    .station_counts = pg_station_counts,
    .outbox_put = pg_outbox_put,
    .outbox_delete = pg_outbox_delete,
    .outbox_each = pg_outbox_each,
    .event_append = pg_event_append,
    .dead_letter = pg_dead_letter,
    .count = pg_count,
    .next_id = pg_next_id,
    .downlink_put = pg_downlink_put,
    .downlink_ack = pg_downlink_ack,
    .downlink_each = pg_downlink_each,
    .downlink_online = pg_downlink_online,
    .readmodel_rebuild = pg_readmodel_rebuild,
    .readmodel_check = pg_readmodel_check,
};

const hub_store_ops *const hub_store_postgresql = &pg_ops;
