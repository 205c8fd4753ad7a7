/* Cluster mode on PostgreSQL (hub/cluster.h): the statements of the leases,
 * the heartbeats and the fence.
 *
 * Two sides: the engine's connection (pg_store, store_pg_internal.h) gets
 * its one-row reads locked (FOR UPDATE, so that two hubs that briefly both
 * hold a device, or that write one vehicle from two partitions, apply their
 * changes one after the other and never over a stale read) and the fence
 * checked before each commit; the cluster thread has a connection of its own
 * (hub_cluster_db, store_cluster.h) for short autocommit statements. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "store_cluster.h"
#include "store_pg_internal.h"

/* ---- the engine's connection --------------------------------------------------- */

/* A vehicle's row is read after its device's row is locked: the vehicle's
 * own hub locks them in that order (its event's device, then the vehicle),
 * and so must the hub of a kiosk in another partition that rents it (the
 * vehicle, then its unlock command's device row), or the two would wait
 * for each other until PostgreSQL broke the cycle. The uncorrelated
 * sub-select runs once, before the scan of vehicles. */
#define LOCK_DEVICE_FIRST \
  " AND (SELECT count(*) FROM (SELECT 1 FROM devices WHERE id = $1 FOR UPDATE) AS d) >= 0"

int pg__cluster_lock_reads(pg_store *st) {
  static const enum pg_stmt_id reads[] = {P_DEVICE_GET, P_VEHICLE_GET, P_RENTAL_GET,
                                          P_STEP_GET,   P_REPAIR_GET,  P_BOOKING_GET};
  for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
    const char *sql = st->sql[reads[i]];
    const char *first = reads[i] == P_VEHICLE_GET ? LOCK_DEVICE_FIRST : "";
    size_t n = strlen(sql) + strlen(first) + sizeof " FOR UPDATE";
    char *locked = malloc(n);
    if (!locked) return FL_ERR_NOMEM;
    snprintf(locked, n, "%s%s FOR UPDATE", sql, first);
    free(st->sql[reads[i]]);
    st->sql[reads[i]] = locked;
  }
  return FL_OK;
}

/* Writes the numbers as a PostgreSQL array literal "{1,2,3}" into a new
 * string (the caller frees it), or returns NULL. */
static char *int_array(const uint32_t *v, size_t n) {
  size_t cap = 3 + n * 11;
  char *s = malloc(cap);
  if (!s) return NULL;
  size_t len = 0;
  s[len++] = '{';
  for (size_t i = 0; i < n; i++)
    len += (size_t)snprintf(s + len, cap - len, i ? ",%u" : "%u", v[i]);
  snprintf(s + len, cap - len, "}");
  return s;
}

int pg__cluster_fence(void *b, const char *hub, const uint32_t *parts, const int64_t *epochs,
                      size_t n, uint32_t *lost, size_t *n_lost) {
  pg_store *st = b;
  *n_lost = 0;
  if (n == 0) return FL_OK;
  if (st->lost) return FL_ERR_UNAVAILABLE;
  char *arr = int_array(parts, n);
  if (!arr) return FL_ERR_NOMEM;
  const char *vals[1] = {arr};
  static const char sql[] =
      "SELECT part, epoch, owner FROM partitions WHERE part = ANY($1::int[]) ORDER BY part "
      "FOR SHARE";
  PGresult *r = PQexecParams(st->conn, sql, 1, NULL, vals, NULL, NULL, 0);
  free(arr);
  int rc = PQresultStatus(r) == PGRES_TUPLES_OK ? FL_OK : pg__error(st, r, "fencing the batch");
  for (size_t i = 0; rc == FL_OK && i < n; i++) {
    bool held = false;
    for (int row = 0; row < PQntuples(r) && !held; row++)
      held = (uint32_t)col_i64(r, row, 0) == parts[i] && col_i64(r, row, 1) == epochs[i] &&
             strcmp(PQgetvalue(r, row, 2), hub) == 0;
    if (!held) lost[(*n_lost)++] = parts[i];
  }
  PQclear(r);
  if (rc == FL_OK && *n_lost) rc = FL_ERR_STATE;
  return rc;
}

/* Runs sql with n text parameters on the engine's connection: FL_OK and
 * *out (the caller clears it), or an fl_err (pg__error). */
static int engine_run(pg_store *st, const char *sql, int n, const char *const *vals,
                      PGresult **out) {
  *out = NULL;
  if (st->lost) return FL_ERR_UNAVAILABLE;
  PGresult *r = PQexecParams(st->conn, sql, n, NULL, vals, NULL, NULL, 0);
  ExecStatusType s = PQresultStatus(r);
  if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
    *out = r;
    return FL_OK;
  }
  int rc = pg__error(st, r, sql);
  PQclear(r);
  return rc;
}

/* Writes the strings as a PostgreSQL array literal {"a","b"} (quotes and
 * backslashes escaped) into a new string (the caller frees it), or NULL. */
static char *text_array(const char *const *v, size_t n) {
  size_t cap = 3;
  for (size_t i = 0; i < n; i++) cap += 2 * strlen(v[i]) + 3;
  char *s = malloc(cap);
  if (!s) return NULL;
  size_t len = 0;
  s[len++] = '{';
  for (size_t i = 0; i < n; i++) {
    if (i) s[len++] = ',';
    s[len++] = '"';
    for (const char *c = v[i]; *c; c++) {
      if (*c == '"' || *c == '\\') s[len++] = '\\';
      s[len++] = *c;
    }
    s[len++] = '"';
  }
  s[len++] = '}';
  s[len] = '\0';
  return s;
}

int pg__cluster_lock_devices(void *b, const char *const *ids, size_t n) {
  if (n == 0) return FL_OK;
  char *arr = text_array(ids, n);
  if (!arr) return FL_ERR_NOMEM;
  const char *v[] = {arr};
  PGresult *r;
  int rc = engine_run(b, "SELECT 1 FROM devices WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
                      1, v, &r);
  PQclear(r);
  free(arr);
  return rc;
}

int pg__cluster_claim(void *b, const char *owner, const char *step, const char *hub,
                      int64_t until_ms) {
  char until[24];
  snprintf(until, sizeof until, "%lld", (long long)until_ms);
  const char *v[] = {owner, step, hub, until};
  PGresult *r;
  int rc = engine_run(b,
                      "INSERT INTO saga_claims(rental, step, hub, until_ms) VALUES ($1, $2, $3, "
                      "$4::bigint) ON CONFLICT (rental, step) DO UPDATE SET hub = excluded.hub, "
                      "until_ms = excluded.until_ms",
                      4, v, &r);
  PQclear(r);
  return rc;
}

int pg__cluster_claim_holder(void *b, const char *owner, const char *step, char *hub, size_t cap) {
  const char *v[] = {owner, step};
  PGresult *r;
  int rc = engine_run(b, "SELECT hub FROM saga_claims WHERE rental = $1 AND step = $2 FOR UPDATE",
                      2, v, &r);
  if (rc == FL_OK && PQntuples(r) == 0) rc = FL_ERR_NOT_FOUND;
  if (rc == FL_OK) col_text(r, 0, 0, hub, cap);
  PQclear(r);
  return rc;
}

int pg__cluster_claims_stale(void *b, int64_t now_ms, uint64_t *n) {
  char now[24];
  snprintf(now, sizeof now, "%lld", (long long)now_ms);
  const char *v[] = {now};
  PGresult *r;
  int rc = engine_run(b,
                      "SELECT count(*) FROM saga_steps s LEFT JOIN saga_claims c ON c.rental = "
                      "s.rental AND c.step = s.step WHERE s.status = 'calling' AND "
                      "(c.until_ms IS NULL OR c.until_ms < $1::bigint)",
                      1, v, &r);
  *n = rc == FL_OK && PQntuples(r) == 1 ? (uint64_t)col_i64(r, 0, 0) : 0;
  PQclear(r);
  return rc;
}

/* ---- the cluster's own connection ----------------------------------------------- */
/* Every statement that changes several rows of partitions locks them in the
 * order of their numbers (a sub-select ORDER BY part FOR UPDATE), as the
 * fence does (FOR SHARE): the engine's batch and the cluster's renewal of
 * the same hub never wait for each other in a cycle. */

struct hub_cluster_db {
  PGconn *conn;
  char url[512];
};

static void quiet(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

/* Connects (again) when there is no good connection: FL_OK or FL_ERR_UNAVAILABLE. */
static int db_connect(hub_cluster_db *db) {
  if (db->conn && PQstatus(db->conn) == CONNECTION_OK) return FL_OK;
  PQfinish(db->conn);
  const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
  const char *values[] = {"3", "fleet-hub-cluster", db->url[0] ? db->url : NULL, NULL};
  if (!db->url[0]) keys[2] = NULL;
  db->conn = PQconnectdbParams(keys, values, 1);
  if (!db->conn || PQstatus(db->conn) != CONNECTION_OK) return FL_ERR_UNAVAILABLE;
  PQsetNoticeProcessor(db->conn, quiet, NULL);
  return FL_OK;
}

/* Runs sql with n text parameters: FL_OK and *out (the caller clears it),
 * or an fl_err (logged). */
static int db_run(hub_cluster_db *db, const char *sql, int n, const char *const *vals,
                  PGresult **out) {
  *out = NULL;
  if (db_connect(db) != FL_OK) return FL_ERR_UNAVAILABLE;
  PGresult *r = PQexecParams(db->conn, sql, n, NULL, vals, NULL, NULL, 0);
  ExecStatusType s = PQresultStatus(r);
  if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
    *out = r;
    return FL_OK;
  }
  bool gone = PQstatus(db->conn) != CONNECTION_OK;
  fl_warn("cluster: %s", gone ? PQerrorMessage(db->conn) : PQresultErrorMessage(r));
  PQclear(r);
  return gone ? FL_ERR_UNAVAILABLE : FL_ERR_DB;
}

static int db_do(hub_cluster_db *db, const char *sql, int n, const char *const *vals) {
  PGresult *r;
  int rc = db_run(db, sql, n, vals, &r);
  PQclear(r);
  return rc;
}

/* Reads (part, epoch) rows into out. */
static void leases_of(const PGresult *r, hub_lease *out, size_t cap, size_t *n) {
  *n = 0;
  for (int i = 0; i < PQntuples(r) && *n < cap; i++) {
    out[*n].part = (uint32_t)col_i64(r, i, 0);
    out[*n].epoch = col_i64(r, i, 1);
    (*n)++;
  }
}

int hub_cluster_db_open(const char *url, hub_cluster_db **out) {
  hub_cluster_db *db = calloc(1, sizeof *db);
  if (!db) return FL_ERR_NOMEM;
  snprintf(db->url, sizeof db->url, "%s", url ? url : "");
  if (db_connect(db) != FL_OK) {
    fl_error("cluster: cannot connect to PostgreSQL: %s",
             db->conn ? PQerrorMessage(db->conn) : "out of memory");
    hub_cluster_db_close(db);
    return FL_ERR_UNAVAILABLE;
  }
  *out = db;
  return FL_OK;
}

void hub_cluster_db_close(hub_cluster_db *db) {
  if (!db) return;
  PQfinish(db->conn);
  free(db);
}

int hub_cluster_db_setup(hub_cluster_db *db, uint32_t partitions, int64_t now_ms,
                         uint32_t *stored) {
  char p[16], now[24];
  snprintf(p, sizeof p, "%u", partitions);
  snprintf(now, sizeof now, "%lld", (long long)now_ms);
  const char *v[] = {p, now};
  /* the first hub fixes the count; the rows of the partitions come with it */
  int rc = db_do(db,
                 "WITH c AS (INSERT INTO cluster(id, partitions, created_ms) VALUES (1, $1::int, "
                 "$2::bigint) ON CONFLICT (id) DO NOTHING RETURNING partitions) "
                 "INSERT INTO partitions(part) SELECT g FROM c, generate_series(0, c.partitions - 1) g "
                 "ON CONFLICT (part) DO NOTHING",
                 2, v);
  if (rc != FL_OK) return rc;
  PGresult *r;
  rc = db_run(db, "SELECT partitions FROM cluster WHERE id = 1", 0, NULL, &r);
  if (rc == FL_OK && PQntuples(r) != 1) rc = FL_ERR_DB;
  if (rc == FL_OK) *stored = (uint32_t)col_i64(r, 0, 0);
  PQclear(r);
  return rc;
}

int hub_cluster_db_heartbeat(hub_cluster_db *db, const hub_member *me, int64_t now_ms) {
  char started[24], now[24], owned[16], depth[24], applied[24];
  snprintf(started, sizeof started, "%lld", (long long)me->started_ms);
  snprintf(now, sizeof now, "%lld", (long long)now_ms);
  snprintf(owned, sizeof owned, "%u", me->owned);
  snprintf(depth, sizeof depth, "%llu", (unsigned long long)me->queue_depth);
  snprintf(applied, sizeof applied, "%llu", (unsigned long long)me->events_applied);
  const char *v[] = {me->id, started, now, owned, depth, applied};
  return db_do(db,
               "INSERT INTO hubs(id, started_ms, heartbeat_ms, owned, queue_depth, events_applied) "
               "VALUES ($1, $2::bigint, $3::bigint, $4::int, $5::bigint, $6::bigint) "
               "ON CONFLICT (id) DO UPDATE SET started_ms = excluded.started_ms, heartbeat_ms = "
               "excluded.heartbeat_ms, owned = excluded.owned, queue_depth = excluded.queue_depth, "
               "events_applied = excluded.events_applied",
               6, v);
}

int hub_cluster_db_live(hub_cluster_db *db, int64_t since_ms, char (*ids)[FL_ID_MAX + 1],
                        size_t cap, size_t *n) {
  char since[24];
  snprintf(since, sizeof since, "%lld", (long long)since_ms);
  const char *v[] = {since};
  PGresult *r;
  int rc = db_run(db, "SELECT id FROM hubs WHERE heartbeat_ms > $1::bigint ORDER BY id", 1, v, &r);
  *n = 0;
  if (rc == FL_OK) {
    *n = (size_t)PQntuples(r);
    for (size_t i = 0; i < *n && i < cap; i++)
      snprintf(ids[i], sizeof ids[i], "%s", PQgetvalue(r, (int)i, 0));
  }
  PQclear(r);
  return rc;
}

int hub_cluster_db_renew(hub_cluster_db *db, const char *hub, int64_t until_ms, int bump,
                         hub_lease *out, size_t cap, size_t *n) {
  char until[24];
  snprintf(until, sizeof until, "%lld", (long long)until_ms);
  const char *v[] = {hub, until, bump ? "1" : "0"};
  PGresult *r;
  int rc = db_run(db,
                  "UPDATE partitions p SET lease_until_ms = $2::bigint, epoch = p.epoch + "
                  "$3::int FROM (SELECT part FROM partitions WHERE owner = $1 ORDER BY part FOR "
                  "UPDATE) o WHERE p.part = o.part AND p.owner = $1 RETURNING p.part, p.epoch",
                  3, v, &r);
  *n = 0;
  if (rc == FL_OK) leases_of(r, out, cap, n);
  PQclear(r);
  return rc;
}

int hub_cluster_db_take(hub_cluster_db *db, const char *hub, int64_t now_ms, int64_t until_ms,
                        size_t k, hub_lease *out, size_t cap, size_t *n) {
  char now[24], until[24], lim[24];
  snprintf(now, sizeof now, "%lld", (long long)now_ms);
  snprintf(until, sizeof until, "%lld", (long long)until_ms);
  snprintf(lim, sizeof lim, "%zu", k);
  const char *v[] = {hub, now, until, lim};
  PGresult *r;
  int rc = db_run(db,
                  "UPDATE partitions p SET owner = $1, epoch = p.epoch + 1, lease_until_ms = "
                  "$3::bigint FROM (SELECT part FROM partitions WHERE owner = '' OR "
                  "lease_until_ms < $2::bigint ORDER BY part LIMIT $4::int FOR UPDATE SKIP "
                  "LOCKED) f WHERE p.part = f.part RETURNING p.part, p.epoch",
                  4, v, &r);
  *n = 0;
  if (rc == FL_OK) leases_of(r, out, cap, n);
  PQclear(r);
  return rc;
}

int hub_cluster_db_release(hub_cluster_db *db, const char *hub, const uint32_t *parts, size_t n,
                           int64_t now_ms) {
  if (n == 0) return FL_OK;
  char *arr = int_array(parts, n);
  if (!arr) return FL_ERR_NOMEM;
  char now[24];
  snprintf(now, sizeof now, "%lld", (long long)now_ms);
  const char *v[] = {hub, arr, now};
  int rc = db_do(db,
                 "UPDATE partitions p SET owner = '', lease_until_ms = $3::bigint FROM (SELECT "
                 "part FROM partitions WHERE owner = $1 AND part = ANY($2::int[]) ORDER BY part "
                 "FOR UPDATE) o WHERE p.part = o.part",
                 3, v);
  free(arr);
  return rc;
}

int hub_cluster_db_leave(hub_cluster_db *db, const char *hub, int64_t now_ms) {
  char now[24];
  snprintf(now, sizeof now, "%lld", (long long)now_ms);
  const char *v[] = {hub, now};
  int rc = db_do(db,
                 "UPDATE partitions p SET owner = '', lease_until_ms = $2::bigint FROM (SELECT "
                 "part FROM partitions WHERE owner = $1 ORDER BY part FOR UPDATE) o WHERE "
                 "p.part = o.part",
                 2, v);
  const char *w[] = {hub};
  if (rc == FL_OK) rc = db_do(db, "DELETE FROM hubs WHERE id = $1", 1, w);
  return rc;
}
