/* The read side of the operator API: SQL over hub.db turned into JSON.
 * Every view is one SQL statement; the JSON keys are the schema's column
 * names, so a column added to hub/schema.sql shows up without code here. */
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
    " FROM (SELECT 1) LEFT JOIN rm_customers c ON c.customer = ?1",
    {"id"}};

static cJSON *column_json(sqlite3_stmt *st, int i) {
  switch (sqlite3_column_type(st, i)) {
  case SQLITE_INTEGER: return cJSON_CreateNumber((double)sqlite3_column_int64(st, i));
  case SQLITE_FLOAT: return cJSON_CreateNumber(sqlite3_column_double(st, i));
  case SQLITE_TEXT: return cJSON_CreateString((const char *)sqlite3_column_text(st, i));
  case SQLITE_BLOB: {
    const unsigned char *b = sqlite3_column_blob(st, i);
    int n = sqlite3_column_bytes(st, i);
    char *hex = malloc((size_t)n * 2 + 1);
    if (!hex)
      return NULL;
    for (int k = 0; k < n; k++)
      snprintf(hex + 2 * k, 3, "%02x", b[k]);
    hex[2 * n] = '\0';
    cJSON *s = cJSON_CreateString(hex);
    free(hex);
    return s;
  }
  default: return cJSON_CreateNull();
  }
}

static int bind_values(sqlite3_stmt *st, const http_view *view, const char *const values[4]) {
  for (int i = 0; i < 4 && view->params[i]; i++) {
    int rc;
    if (!values[i])
      rc = sqlite3_bind_null(st, i + 1);
    else if (strcmp(view->params[i], "limit") == 0)
      rc = sqlite3_bind_int64(st, i + 1, strtoll(values[i], NULL, 10));
    else
      rc = sqlite3_bind_text(st, i + 1, values[i], -1, SQLITE_STATIC);
    if (rc != SQLITE_OK)
      return rc;
  }
  return SQLITE_OK;
}

cJSON *http_query_rows(sqlite3 *db, const http_view *view, const char *const values[4]) {
  sqlite3_stmt *st = NULL;
  cJSON *rows = cJSON_CreateArray();
  int rc = rows ? sqlite3_prepare_v2(db, view->sql, -1, &st, NULL) : SQLITE_NOMEM;
  if (rc == SQLITE_OK)
    rc = bind_values(st, view, values);
  while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    cJSON *row = cJSON_CreateObject();
    rc = row && cJSON_AddItemToArray(rows, row) ? SQLITE_OK : SQLITE_NOMEM;
    for (int i = 0; rc == SQLITE_OK && i < sqlite3_column_count(st); i++) {
      cJSON *v = column_json(st, i);
      if (!v || !cJSON_AddItemToObject(row, sqlite3_column_name(st, i), v)) {
        cJSON_Delete(v);
        rc = SQLITE_NOMEM;
      }
    }
  }
  if (rc != SQLITE_DONE) {
    fl_error("http %s query: %s", view->noun,
             rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(db));
    cJSON_Delete(rows);
    rows = NULL;
  }
  sqlite3_finalize(st);
  return rows;
}

bool http_query_attach(cJSON *obj, const char *key, sqlite3 *db, const http_view *view,
                       const char *id) {
  const char *values[4] = {id};
  cJSON *rows = http_query_rows(db, view, values);
  if (rows && cJSON_AddItemToObject(obj, key, rows))
    return true;
  cJSON_Delete(rows);
  return false;
}

cJSON *http_query_customer(sqlite3 *db, const char *id, int *err) {
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
