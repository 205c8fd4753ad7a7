/* The PostgreSQL backend of the hub's store (hub/store.h): one libpq
 * connection, every statement prepared on it, text parameters (bytea ones in
 * binary). A write of a vehicle, rental, repair or saga step is one statement
 * that also logs the change and projects the read model (readmodel_pg.h).
 *
 * libpq's errors are translated here: unique, exclusion and check
 * violations are FL_ERR_CONFLICT; a lost connection is FL_ERR_UNAVAILABLE
 * and ends the transaction (in_txn false); anything else is FL_ERR_DB. After
 * a lost connection the next begin reconnects (with back-off) and prepares
 * the statements again; the engine retries the batch it holds.
 *
 * This file: the connection, reconnection, migrations, transactions, logs,
 * counters, the downlink outbox and the read models; the rows and scans are
 * store_pg_rows.c, the statements store_pg_sql.c (store_pg_internal.h). */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "readmodel_pg.h"
#include "schema_pg.h"
#include "store_pg_internal.h"

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
                                "CREATE TABLE IF NOT EXISTS rm_bookings (id TEXT PRIMARY KEY, vehicle TEXT, customer TEXT, "
                                "kiosk TEXT, state TEXT, start_ms BIGINT, end_ms BIGINT, deposit_cents "
                                "BIGINT, charged_cents BIGINT, refunded_cents BIGINT, rental TEXT, "
                                "reason TEXT, created_ms BIGINT, updated_ms BIGINT)",
                                "CREATE INDEX IF NOT EXISTS rm_bookings_customer ON rm_bookings(customer)",
                                "CREATE INDEX IF NOT EXISTS rm_bookings_vehicle ON "
                                "rm_bookings(vehicle, start_ms)",
                                "INSERT INTO changes(at_ms, kind, id, from_state, to_state, snapshot) "
                                "SELECT updated_ms, 'booking', id, NULL, state, json_build_object('id', id, 'vehicle', vehicle, 'customer', customer, 'kiosk', kiosk, 'state', state, 'start_ms', start_ms, 'end_ms', end_ms, 'deposit_cents', deposit_cents, 'charged_cents', charged_cents, 'refunded_cents', refunded_cents, 'rental', rental, 'reason', reason, 'created_ms', created_ms, 'updated_ms', updated_ms)::text "
                                "FROM bookings ORDER BY created_ms, id",
                                "INSERT INTO rm_bookings(id, vehicle, customer, kiosk, state, start_ms, end_ms, deposit_cents, charged_cents, refunded_cents, rental, reason, created_ms, updated_ms) SELECT id, vehicle, customer, kiosk, state, start_ms, end_ms, deposit_cents, charged_cents, refunded_cents, rental, reason, created_ms, updated_ms FROM bookings",
                                "CREATE OR REPLACE VIEW rm_stations AS SELECT f.station AS station, "
                                "count(*) FILTER (WHERE f.state = 'AVAILABLE') AS available, "
                                "count(*) FILTER (WHERE f.state IN ('RESERVED', 'RENTED')) AS rented, "
                                "count(*) FILTER (WHERE f.state IN ('REPAIR_REQUESTED', 'IN_REPAIR')) "
                                "AS in_repair, count(*) FILTER (WHERE EXISTS (SELECT 1 FROM rm_bookings b "
                                "WHERE b.vehicle = f.id AND b.state = 'HELD' AND b.end_ms > "
                                "(extract(epoch FROM now()) * 1000)::bigint)) AS booked, count(*) AS "
                                "vehicles FROM rm_fleet f WHERE f.station <> '' AND f.state <> 'RETIRED' "
                                "GROUP BY f.station",
                                NULL},
    /* 5: cluster mode: the partition count, the leases, the hubs (schema_pg.sql's end) */
    [4] = (const char *const[]){"CREATE TABLE IF NOT EXISTS cluster (id INTEGER PRIMARY KEY CHECK "
                                "(id = 1), partitions INTEGER NOT NULL CHECK (partitions > 0), "
                                "created_ms BIGINT NOT NULL)",
                                "CREATE TABLE IF NOT EXISTS partitions (part INTEGER PRIMARY KEY, "
                                "owner TEXT NOT NULL DEFAULT '', epoch BIGINT NOT NULL DEFAULT 0, "
                                "lease_until_ms BIGINT NOT NULL DEFAULT 0)",
                                "CREATE TABLE IF NOT EXISTS hubs (id TEXT PRIMARY KEY, started_ms "
                                "BIGINT NOT NULL, heartbeat_ms BIGINT NOT NULL, owned INTEGER NOT "
                                "NULL DEFAULT 0, queue_depth BIGINT NOT NULL DEFAULT 0, "
                                "events_applied BIGINT NOT NULL DEFAULT 0)",
                                "CREATE TABLE IF NOT EXISTS saga_claims (rental TEXT NOT NULL, "
                                "step TEXT NOT NULL, hub TEXT NOT NULL, until_ms BIGINT NOT NULL, "
                                "PRIMARY KEY (rental, step))",
                                NULL},
};

#define PG_RECONNECT_MAX_MS 5000

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

int pg__error(pg_store *st, const PGresult *r, const char *what) { return pg_error(st, r, what); }

/* Runs a statement without parameters (several, separated by ';'). */
static int pg_exec(pg_store *st, const char *sql) {
  PGresult *r = PQexec(st->conn, sql);
  ExecStatusType s = PQresultStatus(r);
  int rc = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? FL_OK : pg_error(st, r, sql);
  PQclear(r);
  return rc;
}

static void ignore_notice(void *arg, const char *message) {}

/* Connects to st->url; FL_OK or FL_ERR_UNAVAILABLE (message in err). */
static int pg_connect(pg_store *st, char *err, size_t cap) {
  const char *keys[] = {"connect_timeout", "application_name", "options", "dbname", NULL};
  const char *values[] = {"5", "fleet-hub", st->options, st->url[0] ? st->url : NULL, NULL};
  if (!st->url[0]) keys[3] = NULL;
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
  if (o->idle_txn_timeout_ms > 0) /* cluster mode (store_pg_cluster.c) */
    snprintf(st->options, sizeof st->options, "-c idle_in_transaction_session_timeout=%d",
             o->idle_txn_timeout_ms);
  mask_url(st->url, st->shown, sizeof st->shown);
  int rc = FL_OK;
  for (int i = 0; rc == FL_OK && i < P__COUNT; i++) {
    if (pg__sql[i]) st->sql[i] = strdup(pg__sql[i]);
    if (!pg__sql[i] || !st->sql[i]) rc = pg__sql[i] ? FL_ERR_NOMEM : FL_OK;
  }
  for (size_t k = 0; rc == FL_OK && k < pg__n_recorded; k++) {
    char tail[4096], *sql = malloc(8192);
    readmodel_pg_tail(pg__recorded[k].kind, tail, sizeof tail);
    if (sql) snprintf(sql, 8192, "WITH w AS (%s RETURNING *), %s", pg__recorded[k].upsert, tail);
    st->sql[pg__recorded[k].id] = sql;
    if (!sql) rc = FL_ERR_NOMEM;
  }
  /* cluster mode: reads lock their rows (store_pg_cluster.c) */
  if (rc == FL_OK && o->cluster) rc = pg__cluster_lock_reads(st);
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

/* Runs prepared statement id with p: FL_OK and *out (the caller clears it),
 * or an fl_err (see pg_error). */
int pg__run(pg_store *st, enum pg_stmt_id id, const pg_params *p, PGresult **out) {
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
int pg__do(pg_store *st, enum pg_stmt_id id, const pg_params *p) {
  PGresult *r;
  int rc = pg__run(st, id, p, &r);
  PQclear(r);
  return rc;
}

/* Runs a one-row query: FL_OK and *out, FL_ERR_NOT_FOUND, or an fl_err. */
int pg__row(pg_store *st, enum pg_stmt_id id, const pg_params *p, PGresult **out) {
  int rc = pg__run(st, id, p, out);
  if (rc == FL_OK && PQntuples(*out) == 0) {
    PQclear(*out);
    *out = NULL;
    rc = FL_ERR_NOT_FOUND;
  }
  return rc;
}

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
  return pg__do(b_, P_EVENT_APPEND, &p);
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
  return pg__do(b_, P_DEAD_LETTER, &p);
}

static int pg_count(void *b_, const char *name, int64_t n) {
  pg_params p = {0};
  p_text(&p, name);
  p_i64(&p, n);
  return pg__do(b_, P_COUNT, &p);
}

static int pg_next_id(void *b_, const char *name, uint64_t *out) {
  pg_params p = {0};
  p_text(&p, name);
  PGresult *r;
  int rc = pg__row(b_, P_NEXT_ID, &p, &r);
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
  return pg__do(b_, P_DOWNLINK_PUT, &p);
}

static int pg_downlink_ack(void *b_, const char *device, uint64_t upto) {
  pg_params p = {0};
  p_text(&p, device);
  p_i64(&p, (int64_t)upto);
  return pg__do(b_, P_DOWNLINK_ACK, &p);
}

/* Calls fn for each row of a downlink query. bytea comes back in text form
 * (hex): each payload is decoded for its call and freed after it. */
static int downlink_rows(pg_store *st, enum pg_stmt_id id, const pg_params *p,
                         int (*fn)(void *ctx, const hub_downlink *d), void *ctx) {
  PGresult *r;
  int rc = pg__run(st, id, p, &r);
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
    .fence = pg__cluster_fence, /* store_pg_cluster.c */
    .lock_devices = pg__cluster_lock_devices,
    .claim = pg__cluster_claim,
    .claim_holder = pg__cluster_claim_holder,
    .claims_stale = pg__cluster_claims_stale,
};

const hub_store_ops *const hub_store_postgresql = &pg_ops;
