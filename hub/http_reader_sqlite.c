/* The operator API's reader of the SQLite store: <state_dir>/hub.db opened
 * read-only for each request (WAL: a reader never blocks the engine). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/db.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "http_internal.h"

static void *sqlite_acquire(void *src) {
  sqlite3 *db = NULL;
  return fl_db_open(src, FL_DB_SYNC_NORMAL, true, &db) == FL_OK ? db : NULL;
}

static void sqlite_release(void *src, void *conn) { fl_db_close(conn); }

static cJSON *column_json(sqlite3_stmt *st, int i) {
  switch (sqlite3_column_type(st, i)) {
  case SQLITE_INTEGER: return cJSON_CreateNumber((double)sqlite3_column_int64(st, i));
  case SQLITE_FLOAT: return cJSON_CreateNumber(sqlite3_column_double(st, i));
  case SQLITE_TEXT: return cJSON_CreateString((const char *)sqlite3_column_text(st, i));
  case SQLITE_BLOB:
    return http_json_hex(sqlite3_column_blob(st, i), (size_t)sqlite3_column_bytes(st, i));
  default: return cJSON_CreateNull();
  }
}

static int bind_values(sqlite3_stmt *st, const http_view *view, const char *const values[HTTP_VIEW_PARAMS]) {
  for (int i = 0; i < HTTP_VIEW_PARAMS && view->params[i]; i++) {
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

static cJSON *sqlite_rows(void *conn, const http_view *view, const char *const values[HTTP_VIEW_PARAMS]) {
  sqlite3 *db = conn;
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

static const http_reader_ops sqlite_reader = {
    .acquire = sqlite_acquire,
    .release = sqlite_release,
    .rows = sqlite_rows,
    .close = free,
};

int http_reader_sqlite(const char *db_path, http_reader *out) {
  out->ops = &sqlite_reader;
  out->src = strdup(db_path);
  return out->src ? FL_OK : FL_ERR_NOMEM;
}

#ifndef FLEET_WITH_POSTGRESQL
int http_reader_pg(const char *url, http_reader *out) {
  fl_error("http: this build has no PostgreSQL reader");
  return FL_ERR_CONFIG;
}
#endif
