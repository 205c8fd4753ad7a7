/* The operator API's reader of the PostgreSQL store: a small pool of libpq
 * connections (one per request in flight, at most HTTP_PG_POOL kept idle),
 * each read-only. The views' ?N become $N; a column comes back as JSON the
 * way the SQLite reader gives it: integer and floating types as numbers,
 * bytea as lowercase hex, text as strings, NULL as null. */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "http_internal.h"

#define HTTP_PG_POOL 4

/* Type OIDs of pg_type (stable across PostgreSQL versions). */
enum { OID_BYTEA = 17, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_TEXT = 25,
       OID_OID = 26, OID_FLOAT4 = 700, OID_FLOAT8 = 701, OID_NUMERIC = 1700 };

typedef struct pg_reader {
  char url[512];
  pthread_mutex_t lock;
  PGconn *idle[HTTP_PG_POOL];
  int n_idle;
  bool warned; /* the store was unreadable, logged once until it is back */
} pg_reader;

static void ignore_notice(void *arg, const char *message) {}

static void *pg_acquire(void *src) {
  pg_reader *rd = src;
  PGconn *c = NULL;
  pthread_mutex_lock(&rd->lock);
  if (rd->n_idle > 0)
    c = rd->idle[--rd->n_idle];
  pthread_mutex_unlock(&rd->lock);
  if (c && PQstatus(c) == CONNECTION_OK)
    return c;
  PQfinish(c);
  const char *keys[] = {"connect_timeout", "application_name", "options", "dbname", NULL};
  const char *values[] = {"5", "fleet-hub-http", "-c default_transaction_read_only=on",
                          rd->url[0] ? rd->url : NULL, NULL};
  if (!rd->url[0])
    keys[3] = NULL;
  c = PQconnectdbParams(keys, values, 1);
  if (PQstatus(c) != CONNECTION_OK) {
    pthread_mutex_lock(&rd->lock);
    bool warn = !rd->warned;
    rd->warned = true;
    pthread_mutex_unlock(&rd->lock);
    if (warn)
      fl_error("http: the PostgreSQL store is not readable: %s", PQerrorMessage(c));
    PQfinish(c);
    return NULL;
  }
  pthread_mutex_lock(&rd->lock);
  rd->warned = false;
  pthread_mutex_unlock(&rd->lock);
  PQsetNoticeProcessor(c, ignore_notice, NULL);
  return c;
}

static void pg_release(void *src, void *conn) {
  pg_reader *rd = src;
  PGconn *c = conn;
  if (!c)
    return;
  if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE) {
    pthread_mutex_lock(&rd->lock);
    if (rd->n_idle < HTTP_PG_POOL) {
      rd->idle[rd->n_idle++] = c;
      c = NULL;
    }
    pthread_mutex_unlock(&rd->lock);
  }
  PQfinish(c);
}

static void pg_reader_close(void *src) {
  pg_reader *rd = src;
  if (!rd)
    return;
  for (int i = 0; i < rd->n_idle; i++)
    PQfinish(rd->idle[i]);
  pthread_mutex_destroy(&rd->lock);
  free(rd);
}

/* Copies sql into out with every ?N turned into $N. */
static void dollar_params(const char *sql, char *out, size_t cap) {
  size_t j = 0;
  for (; *sql && j + 1 < cap; sql++)
    out[j++] = *sql == '?' ? '$' : *sql;
  out[j] = '\0';
}

static cJSON *value_json(const PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col))
    return cJSON_CreateNull();
  const char *v = PQgetvalue(r, row, col);
  switch (PQftype(r, col)) {
  case OID_INT2:
  case OID_INT4:
  case OID_INT8:
  case OID_OID:
  case OID_FLOAT4:
  case OID_FLOAT8:
  case OID_NUMERIC: return cJSON_CreateNumber(strtod(v, NULL));
  case OID_BYTEA: /* text form: \x and lowercase hex, as the SQLite reader writes it */
    return cJSON_CreateString(strncmp(v, "\\x", 2) == 0 ? v + 2 : v);
  default: return cJSON_CreateString(v);
  }
}

static cJSON *pg_rows(void *conn, const http_view *view,
                      const char *const values[HTTP_VIEW_PARAMS]) {
  PGconn *c = conn;
  char sql[2048];
  dollar_params(view->sql, sql, sizeof sql);
  unsigned int types[HTTP_VIEW_PARAMS];
  int n = 0;
  for (; n < HTTP_VIEW_PARAMS && view->params[n]; n++)
    types[n] = strcmp(view->params[n], "limit") == 0 ? OID_INT8 : OID_TEXT;
  PGresult *r = PQexecParams(c, sql, n, types, values, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK && PQstatus(c) != CONNECTION_OK) {
    /* a pooled connection the server dropped (a restart): once more, anew */
    PQclear(r);
    PQreset(c);
    r = PQexecParams(c, sql, n, types, values, NULL, NULL, 0);
  }
  cJSON *rows = NULL;
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    fl_error("http %s query: %s", view->noun, PQresultErrorMessage(r));
    goto out;
  }
  rows = cJSON_CreateArray();
  bool ok = rows != NULL;
  for (int i = 0; ok && i < PQntuples(r); i++) {
    cJSON *row = cJSON_CreateObject();
    ok = row && cJSON_AddItemToArray(rows, row);
    for (int k = 0; ok && k < PQnfields(r); k++) {
      cJSON *v = value_json(r, i, k);
      ok = v && cJSON_AddItemToObject(row, PQfname(r, k), v);
      if (!ok)
        cJSON_Delete(v);
    }
  }
  if (!ok) {
    fl_error("http %s query: out of memory", view->noun);
    cJSON_Delete(rows);
    rows = NULL;
  }
out:
  PQclear(r);
  return rows;
}

static const http_reader_ops pg_reader_ops = {
    .acquire = pg_acquire,
    .release = pg_release,
    .rows = pg_rows,
    .close = pg_reader_close,
};

int http_reader_pg(const char *url, http_reader *out) {
  pg_reader *rd = calloc(1, sizeof *rd);
  if (!rd)
    return FL_ERR_NOMEM;
  snprintf(rd->url, sizeof rd->url, "%s", url ? url : "");
  pthread_mutex_init(&rd->lock, NULL);
  out->ops = &pg_reader_ops;
  out->src = rd;
  return FL_OK;
}
