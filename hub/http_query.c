/* The read side of the operator API: SQL over the hub's store turned into
 * JSON. Every view is one SQL statement that SQLite and PostgreSQL read
 * alike; the JSON keys are the schema's column names, so a column added to
 * hub/schema.sql (and hub/schema_pg.sql) shows up without code here. The
 * readers (http_reader_sqlite.c, http_reader_pg.c) run them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "http_internal.h"
#include "model.h"
#include "rental.h"

/* Rentals that still hold their vehicle (the schema's one-open-rental index). */
#define OPEN_RENTAL_STATES "('REQUESTED','PAYMENT_PENDING','ACTIVE','CANCEL_REQUESTED','RETURNED')"

/* Keyset paging: "after" a row in the order (k1 DESC, id DESC) as SQL. */
#define AFTER_DESC(col, p1, p2)                                                                    \
  " AND (" p1 " IS NULL OR " col " < CAST(" p1 " AS BIGINT) OR (" col " = CAST(" p1                \
  " AS BIGINT) AND id < " p2 "))"

const http_view http_view_vehicles = {
    "vehicle",
    "SELECT * FROM rm_fleet WHERE (?1 IS NULL OR state = ?1) AND (?3 IS NULL OR id > ?3)"
    " ORDER BY id LIMIT ?2",
    {"state", "limit", "after0"},
    {"id"}};
const http_view http_view_stations = {
    "station",
    "SELECT * FROM rm_stations WHERE ?2 IS NULL OR station > ?2 ORDER BY station LIMIT ?1",
    {"limit", "after0"},
    {"station"}};
const http_view http_view_vehicle = {"vehicle", "SELECT * FROM rm_fleet WHERE id = ?1", {"id"}, {0}};
const http_view http_view_rentals = {
    "rental",
    "SELECT * FROM rm_rentals WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR customer = ?2)"
    " AND (?3 IS NULL OR vehicle = ?3)" AFTER_DESC("created_ms", "?5", "?6")
    " ORDER BY created_ms DESC, id DESC LIMIT ?4",
    {"state", "customer", "vehicle", "limit", "after0", "after1"},
    {"#created_ms", "id"}};
const http_view http_view_rental = {"rental", "SELECT * FROM rm_rentals WHERE id = ?1", {"id"}, {0}};
const http_view http_view_saga_steps = {
    "rental", "SELECT * FROM rm_sagas WHERE rental = ?1 ORDER BY updated_ms, step", {"id"}, {0}};
const http_view http_view_sagas = {
    "saga step",
    "SELECT * FROM rm_sagas WHERE (?1 IS NULL OR status = ?1) AND (?3 IS NULL"
    " OR updated_ms < CAST(?3 AS BIGINT) OR (updated_ms = CAST(?3 AS BIGINT)"
    " AND (rental < ?4 OR (rental = ?4 AND step < ?5))))"
    " ORDER BY updated_ms DESC, rental DESC, step DESC LIMIT ?2",
    {"status", "limit", "after0", "after1", "after2"},
    {"#updated_ms", "rental", "step"}};
const http_view http_view_repairs = {
    "repair",
    "SELECT * FROM rm_repairs WHERE (?1 IS NULL OR state = ?1)" AFTER_DESC("opened_ms", "?3", "?4")
    " ORDER BY opened_ms DESC, id DESC LIMIT ?2",
    {"state", "limit", "after0", "after1"},
    {"#opened_ms", "id"}};
const http_view http_view_repair = {"repair", "SELECT * FROM rm_repairs WHERE id = ?1", {"id"}, {0}};
const http_view http_view_bookings = {
    "booking",
    "SELECT * FROM bookings WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR customer = ?2)"
    " AND (?3 IS NULL OR vehicle = ?3)" AFTER_DESC("start_ms", "?5", "?6")
    " ORDER BY start_ms DESC, id DESC LIMIT ?4",
    {"state", "customer", "vehicle", "limit", "after0", "after1"},
    {"#start_ms", "id"}};
const http_view http_view_booking = {"booking", "SELECT * FROM bookings WHERE id = ?1", {"id"}, {0}};
const http_view http_view_dead_letters = {
    "dead letter",
    "SELECT * FROM dead_letters WHERE ?2 IS NULL OR id < CAST(?2 AS BIGINT) ORDER BY id DESC"
    " LIMIT ?1",
    {"limit", "after0"},
    {"#id"}};
/* A vehicle's history: its entries of the change log, newest first; snapshot
 * is the row as written, a JSON text. */
const http_view http_view_vehicle_history = {
    "vehicle",
    "SELECT seq, at_ms, from_state, to_state, snapshot FROM changes WHERE kind = 'vehicle'"
    " AND id = ?1 AND (?3 IS NULL OR seq < CAST(?3 AS BIGINT)) ORDER BY seq DESC LIMIT ?2",
    {"id", "limit", "after0"},
    {"#seq"}};
const http_view http_view_devices = {
    "device", "SELECT * FROM devices WHERE ?2 IS NULL OR id > ?2 ORDER BY id LIMIT ?1",
    {"limit", "after0"}, {"id"}};
const http_view http_view_counters = {"counter", "SELECT * FROM counters ORDER BY name", {NULL}, {0}};

static const http_view view_open_rentals = {
    "rental",
    "SELECT * FROM rm_rentals WHERE customer = ?1 AND state IN " OPEN_RENTAL_STATES
    " ORDER BY created_ms DESC",
    {"id"}, {0}};
static const http_view view_held_bookings = {
    "booking",
    "SELECT * FROM bookings WHERE customer = ?1 AND state = 'HELD' ORDER BY start_ms",
    {"id"}, {0}};
/* The customer's own view (rm_customers: fees owed are late fees whose step
 * is not done), plus the bookings count. */
static const http_view view_customer_totals = {
    "customer",
    "SELECT coalesce(c.rentals, 0) AS rentals,"
    " coalesce(c.charged_cents, 0) AS charged_cents, coalesce(c.refunded_cents, 0) AS refunded_cents,"
    " (SELECT count(*) FROM bookings WHERE customer = ?1) AS bookings,"
    " coalesce(c.fees_owed_cents, 0) AS fees_owed_cents,"
    " (SELECT coalesce(sum(s.amount_cents), 0) FROM rm_sagas s JOIN rm_rentals f ON f.id = s.rental"
    "  WHERE f.customer = ?1 AND s.step = 'fee' AND s.status = 'done') AS fees_paid_cents"
    " FROM (SELECT 1) AS one LEFT JOIN rm_customers c ON c.customer = ?1",
    {"id"}, {0}};

/* The store's figures for GET /metrics, one (kind, name, n) row each. */
static const http_view view_metrics = {
    "metric",
    "SELECT 'vehicles' AS kind, state AS name, count(*) AS n FROM rm_fleet GROUP BY state"
    " UNION ALL SELECT 'sagas', status, count(*) FROM rm_sagas"
    "  WHERE status NOT IN ('done', 'declined', 'cancelled') GROUP BY status"
    " UNION ALL SELECT 'devices_online', '', count(*) FROM devices WHERE online <> 0"
    " UNION ALL SELECT 'devices', '', count(*) FROM devices"
    " UNION ALL SELECT 'downlink_queued', '', count(*) FROM downlink"
    " UNION ALL SELECT 'rejected', substr(name, 10), value FROM counters"
    "  WHERE name LIKE 'rejected.%'",
    {NULL}, {0}};

cJSON *http_json_hex(const unsigned char *b, size_t n) {
  char *hex = malloc(n * 2 + 1);
  if (!hex)
    return NULL;
  for (size_t k = 0; k < n; k++)
    snprintf(hex + 2 * k, 3, "%02x", b[k]);
  hex[2 * n] = '\0';
  cJSON *s = cJSON_CreateString(hex);
  free(hex);
  return s;
}

bool http_read_open(const http_reader *rd, http_read *out) {
  out->reader = rd;
  out->conn = rd->ops->acquire(rd->src);
  return out->conn != NULL;
}

void http_read_close(http_read *r) {
  if (r && r->reader && r->conn)
    r->reader->ops->release(r->reader->src, r->conn);
  if (r)
    r->conn = NULL;
}

void http_reader_close(http_reader *rd) {
  if (rd && rd->ops)
    rd->ops->close(rd->src);
}

cJSON *http_query_rows(http_read *r, const http_view *view,
                       const char *const values[HTTP_VIEW_PARAMS]) {
  return r->reader->ops->rows(r->conn, view, values);
}

bool http_query_attach(cJSON *obj, const char *key, http_read *db, const http_view *view,
                       const char *id) {
  const char *values[HTTP_VIEW_PARAMS] = {id};
  cJSON *rows = http_query_rows(db, view, values);
  if (rows && cJSON_AddItemToObject(obj, key, rows))
    return true;
  cJSON_Delete(rows);
  return false;
}

/* Adds "running_fee_cents" to each ACTIVE rental of rentals past its due
 * time: what rental_late_fee() would charge for a return at now_ms. */
static bool add_running_fees(cJSON *rentals, const hub_config *cfg, int64_t now_ms) {
  cJSON *row;
  cJSON_ArrayForEach(row, rentals) {
    const char *state = cJSON_GetStringValue(cJSON_GetObjectItem(row, "state"));
    const cJSON *due = cJSON_GetObjectItem(row, "due_ms");
    if (!state || strcmp(state, "ACTIVE") != 0 || !cJSON_IsNumber(due))
      continue;
    hub_rental r;
    memset(&r, 0, sizeof r);
    r.due_ms = (int64_t)due->valuedouble;
    if (r.due_ms <= 0 || now_ms <= r.due_ms)
      continue;
    if (!cJSON_AddNumberToObject(row, "running_fee_cents", (double)rental_late_fee(cfg, &r, now_ms)))
      return false;
  }
  return true;
}

cJSON *http_query_customer(http_read *db, const char *id, const hub_config *cfg, int64_t now_ms,
                           int *err) {
  const char *values[HTTP_VIEW_PARAMS] = {id};
  cJSON *totals = http_query_rows(db, &view_customer_totals, values);
  cJSON *t = cJSON_GetArrayItem(totals, 0);
  cJSON *out = NULL;
  *err = FL_ERR_DB;
  if (!t)
    goto out;
  if (cJSON_GetObjectItem(t, "rentals")->valuedouble == 0 &&
      cJSON_GetObjectItem(t, "bookings")->valuedouble == 0) {
    *err = FL_ERR_NOT_FOUND;
    goto out;
  }
  out = cJSON_CreateObject();
  bool ok = out && cJSON_AddStringToObject(out, "customer", id);
  const cJSON *field; /* every total of the customer's view, as the view names it */
  cJSON_ArrayForEach(field, t) {
    if (ok) ok = cJSON_AddItemToObject(out, field->string, cJSON_Duplicate(field, true));
  }
  if (!ok || !http_query_attach(out, "open_rentals", db, &view_open_rentals, id) ||
      !http_query_attach(out, "held_bookings", db, &view_held_bookings, id) ||
      !add_running_fees(cJSON_GetObjectItem(out, "open_rentals"), cfg, now_ms)) {
    cJSON_Delete(out);
    out = NULL;
    goto out;
  }
  *err = FL_OK;
out:
  cJSON_Delete(totals);
  return out;
}

cJSON *http_query_metrics(http_read *db) {
  const char *values[HTTP_VIEW_PARAMS] = {NULL};
  cJSON *rows = http_query_rows(db, &view_metrics, values);
  cJSON *out = rows ? cJSON_CreateObject() : NULL;
  bool ok = out != NULL;
  const cJSON *row;
  cJSON_ArrayForEach(row, rows) {
    const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(row, "kind"));
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(row, "name"));
    const cJSON *n = cJSON_GetObjectItem(row, "n");
    if (!ok || !kind || !name || !cJSON_IsNumber(n))
      continue;
    if (!name[0]) { /* a single figure */
      ok = cJSON_AddNumberToObject(out, kind, n->valuedouble) != NULL;
      continue;
    }
    cJSON *group = cJSON_GetObjectItem(out, kind);
    if (!group)
      group = cJSON_AddObjectToObject(out, kind);
    ok = group && cJSON_AddNumberToObject(group, name, n->valuedouble) != NULL;
  }
  cJSON_Delete(rows);
  if (!ok) {
    cJSON_Delete(out);
    return NULL;
  }
  return out;
}
