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

/* Rentals that still hold their vehicle (the schema's one-open-rental index). */
#define OPEN_RENTAL_STATES "('REQUESTED','PAYMENT_PENDING','ACTIVE','CANCEL_REQUESTED','RETURNED')"

const http_view http_view_vehicles = {
    "vehicle", "SELECT * FROM rm_fleet WHERE ?1 IS NULL OR state = ?1 ORDER BY id", {"state"}};
const http_view http_view_vehicle = {"vehicle", "SELECT * FROM rm_fleet WHERE id = ?1", {"id"}};
const http_view http_view_rentals = {
    "rental",
    "SELECT * FROM rm_rentals WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR customer = ?2)"
    " AND (?3 IS NULL OR vehicle = ?3) ORDER BY created_ms DESC, id DESC LIMIT ?4",
    {"state", "customer", "vehicle", "limit"}};
const http_view http_view_rental = {"rental", "SELECT * FROM rm_rentals WHERE id = ?1", {"id"}};
const http_view http_view_saga_steps = {
    "rental", "SELECT * FROM rm_sagas WHERE rental = ?1 ORDER BY updated_ms, step", {"id"}};
const http_view http_view_sagas = {
    "saga step",
    "SELECT * FROM rm_sagas WHERE ?1 IS NULL OR status = ?1 ORDER BY updated_ms DESC LIMIT ?2",
    {"status", "limit"}};
const http_view http_view_repairs = {
    "repair",
    "SELECT * FROM rm_repairs WHERE ?1 IS NULL OR state = ?1 ORDER BY opened_ms DESC, id DESC",
    {"state"}};
const http_view http_view_repair = {"repair", "SELECT * FROM rm_repairs WHERE id = ?1", {"id"}};
const http_view http_view_bookings = {
    "booking",
    "SELECT * FROM bookings WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR customer = ?2)"
    " AND (?3 IS NULL OR vehicle = ?3) ORDER BY start_ms DESC, id DESC LIMIT ?4",
    {"state", "customer", "vehicle", "limit"}};
const http_view http_view_booking = {"booking", "SELECT * FROM bookings WHERE id = ?1", {"id"}};
const http_view http_view_dead_letters = {
    "dead letter", "SELECT * FROM dead_letters ORDER BY id DESC LIMIT ?1", {"limit"}};
/* A vehicle's history: its entries of the change log, newest first; snapshot
 * is the row as written, a JSON text. */
const http_view http_view_vehicle_history = {
    "vehicle",
    "SELECT seq, at_ms, from_state, to_state, snapshot FROM changes"
    " WHERE kind = 'vehicle' AND id = ?1 ORDER BY seq DESC LIMIT ?2",
    {"id", "limit"}};
const http_view http_view_devices = {"device", "SELECT * FROM devices ORDER BY id", {NULL}};
const http_view http_view_counters = {"counter", "SELECT * FROM counters ORDER BY name", {NULL}};

static const http_view view_open_rentals = {
    "rental",
    "SELECT * FROM rm_rentals WHERE customer = ?1 AND state IN " OPEN_RENTAL_STATES
    " ORDER BY created_ms DESC",
    {"id"}};
static const http_view view_held_bookings = {
    "booking",
    "SELECT * FROM bookings WHERE customer = ?1 AND state = 'HELD' ORDER BY start_ms",
    {"id"}};
/* The customer's own view (rm_customers: fees owed are late fees whose step
 * is not done), plus the bookings count. */
static const http_view view_customer_totals = {
    "customer",
    "SELECT coalesce(c.rentals, 0) AS rentals,"
    " coalesce(c.charged_cents, 0) AS charged_cents, coalesce(c.refunded_cents, 0) AS refunded_cents,"
    " (SELECT count(*) FROM bookings WHERE customer = ?1) AS bookings,"
    " coalesce(c.fees_owed_cents, 0) AS fees_owed_cents"
    " FROM (SELECT 1) AS one LEFT JOIN rm_customers c ON c.customer = ?1",
    {"id"}};

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

cJSON *http_query_rows(http_read *r, const http_view *view, const char *const values[4]) {
  return r->reader->ops->rows(r->conn, view, values);
}

bool http_query_attach(cJSON *obj, const char *key, http_read *db, const http_view *view,
                       const char *id) {
  const char *values[4] = {id};
  cJSON *rows = http_query_rows(db, view, values);
  if (rows && cJSON_AddItemToObject(obj, key, rows))
    return true;
  cJSON_Delete(rows);
  return false;
}

cJSON *http_query_customer(http_read *db, const char *id, int *err) {
  const char *values[4] = {id};
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
      !http_query_attach(out, "held_bookings", db, &view_held_bookings, id)) {
    cJSON_Delete(out);
    out = NULL;
    goto out;
  }
  *err = FL_OK;
out:
  cJSON_Delete(totals);
  return out;
}
