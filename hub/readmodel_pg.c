/* The read models' projections on PostgreSQL (hub/readmodel_pg.h). */
#include "readmodel_pg.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/error.h"

/* One kind of thing: its read-model table and what it keeps. */
struct rm_pg_def {
  const char *kind;     /* changes.kind */
  const char *rm_table; /* read-model table */
  const char *key;      /* the read model's primary key */
  const char *id_expr;  /* the thing's id in changes, from the row "w" */
  const char *state;    /* state column */
  const char *cols;     /* columns kept, comma-separated, same names on both sides */
};

static const struct rm_pg_def rm_pg_defs[RM__COUNT] = {
    [RM_VEHICLE] = {"vehicle", "rm_fleet", "id", "w.id", "state",
                    "id,name,station,rate_cents,state,rental,repair_due,energy_pct,lat,lon,"
                    "odometer_m,updated_ms"},
    [RM_RENTAL] = {"rental", "rm_rentals", "id", "w.id", "state",
                   "id,vehicle,customer,kiosk,state,minutes,amount_cents,charged_cents,"
                   "refunded_cents,fee_cents,reason,started,created_ms,due_ms,ended_ms,updated_ms"},
    [RM_REPAIR] = {"repair", "rm_repairs", "id", "w.id", "state",
                   "id,vehicle,state,dtcs,severity,text,opened_ms,updated_ms"},
    [RM_SAGA] = {"saga", "rm_sagas", "rental, step", "w.rental || ':' || w.step", "status",
                 "rental,step,status,amount_cents,attempts,provider_ref,last_error,next_try_ms,"
                 "updated_ms"},
    [RM_BOOKING] = {"booking", "rm_bookings", "id", "w.id", "state",
                    "id,vehicle,customer,kiosk,state,start_ms,end_ms,deposit_cents,charged_cents,refunded_cents,rental,reason,created_ms,updated_ms"},
};

/* How a column appears in generated SQL. */
enum col_form {
  COL_JSON_PAIR, /* 'c', w.c (json_build_object) */
  COL_PREFIXED,  /* <prefix>.c */
  COL_EXCLUDED,  /* c = EXCLUDED.c */
  COL_BARE       /* c */
};

/* Appends every column of d to buf (of cap bytes, holding a string) in the
 * given form, separated by ", ". */
static void append_cols(char *buf, size_t cap, const struct rm_pg_def *d, enum col_form form,
                        const char *prefix) {
  char list[512];
  snprintf(list, sizeof list, "%s", d->cols);
  size_t len = strlen(buf);
  bool first = true;
  for (char *save = NULL, *c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
    const char *sep = first ? "" : ", ";
    size_t room = len < cap ? cap - len : 0;
    if (form == COL_JSON_PAIR)
      len += (size_t)snprintf(buf + len, room, "%s'%s', w.%s", sep, c, c);
    else if (form == COL_PREFIXED)
      len += (size_t)snprintf(buf + len, room, "%s%s.%s", sep, prefix, c);
    else if (form == COL_EXCLUDED)
      len += (size_t)snprintf(buf + len, room, "%s%s = EXCLUDED.%s", sep, c, c);
    else
      len += (size_t)snprintf(buf + len, room, "%s%s", sep, c);
    first = false;
  }
}

static void append(char *buf, size_t cap, const char *s) {
  size_t len = strlen(buf);
  if (len < cap) snprintf(buf + len, cap - len, "%s", s);
}

void readmodel_pg_tail(rm_kind kind, char *buf, size_t cap) {
  const struct rm_pg_def *d = &rm_pg_defs[kind];
  /* from_state: the state the last change of this thing left it in */
  snprintf(buf, cap,
           "l AS (INSERT INTO changes(at_ms, kind, id, from_state, to_state, snapshot) "
           "SELECT w.updated_ms, '%s', %s, (SELECT c.to_state FROM changes c WHERE c.kind = '%s' "
           "AND c.id = %s ORDER BY c.seq DESC LIMIT 1), w.%s, json_build_object(",
           d->kind, d->id_expr, d->kind, d->id_expr, d->state);
  append_cols(buf, cap, d, COL_JSON_PAIR, NULL);
  append(buf, cap, ")::text FROM w) INSERT INTO ");
  append(buf, cap, d->rm_table);
  append(buf, cap, "(");
  append_cols(buf, cap, d, COL_BARE, NULL);
  append(buf, cap, ") SELECT ");
  append_cols(buf, cap, d, COL_PREFIXED, "w");
  append(buf, cap, " FROM w ON CONFLICT (");
  append(buf, cap, d->key);
  append(buf, cap, ") DO UPDATE SET ");
  append_cols(buf, cap, d, COL_EXCLUDED, NULL);
}

/* Runs sql; FL_OK, or FL_ERR_DB with *failed set. */
static int run(PGconn *conn, const char *sql, PGresult **failed) {
  PGresult *r = PQexec(conn, sql);
  ExecStatusType s = PQresultStatus(r);
  if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
    PQclear(r);
    return FL_OK;
  }
  *failed = r;
  return FL_ERR_DB;
}

/* Runs a query of one integer; FL_OK with *out, or FL_ERR_DB with *failed. */
static int run_count(PGconn *conn, const char *sql, int64_t *out, PGresult **failed) {
  PGresult *r = PQexec(conn, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
    *failed = r;
    return FL_ERR_DB;
  }
  *out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  return FL_OK;
}

/* Projects the last change of every thing into the tables named by prefix
 * ("" for the live tables, "pg_temp.rebuilt_" for a check). The snapshot's
 * keys are the read model's columns: json_populate_record types them. */
static int project_all(PGconn *conn, const char *prefix, PGresult **failed) {
  char sql[4096];
  for (int k = 0; k < RM__COUNT; k++) {
    const struct rm_pg_def *d = &rm_pg_defs[k];
    snprintf(sql, sizeof sql, "INSERT INTO %s%s(", prefix, d->rm_table);
    append_cols(sql, sizeof sql, d, COL_BARE, NULL);
    append(sql, sizeof sql, ") SELECT ");
    append_cols(sql, sizeof sql, d, COL_PREFIXED, "r");
    size_t len = strlen(sql);
    snprintf(sql + len, sizeof sql - len,
             " FROM changes ch, json_populate_record(NULL::%s, ch.snapshot::json) r "
             "WHERE ch.seq IN (SELECT max(seq) FROM changes WHERE kind = '%s' GROUP BY id)",
             d->rm_table, d->kind);
    int rc = run(conn, sql, failed);
    if (rc != FL_OK) return rc;
  }
  return FL_OK;
}

int readmodel_pg_rebuild(PGconn *conn, uint64_t *changes, PGresult **failed) {
  char sql[128];
  *failed = NULL;
  *changes = 0;
  for (int k = 0; k < RM__COUNT; k++) {
    snprintf(sql, sizeof sql, "DELETE FROM %s", rm_pg_defs[k].rm_table);
    if (run(conn, sql, failed) != FL_OK) return FL_ERR_DB;
  }
  int rc = project_all(conn, "", failed);
  int64_t n = 0;
  if (rc == FL_OK) rc = run_count(conn, "SELECT count(*) FROM changes", &n, failed);
  if (rc == FL_OK) *changes = (uint64_t)n;
  return rc;
}

int readmodel_pg_check(PGconn *conn, uint64_t *differing, char *msg, size_t cap,
                       PGresult **failed) {
  char sql[1024];
  int rc = FL_OK;
  *failed = NULL;
  *differing = 0;
  msg[0] = '\0';
  for (int k = 0; rc == FL_OK && k < RM__COUNT; k++) {
    const char *t = rm_pg_defs[k].rm_table;
    snprintf(sql, sizeof sql,
             "DROP TABLE IF EXISTS pg_temp.rebuilt_%s; CREATE TEMP TABLE rebuilt_%s "
             "(LIKE %s)", t, t, t);
    rc = run(conn, sql, failed);
  }
  if (rc == FL_OK) rc = project_all(conn, "pg_temp.rebuilt_", failed);
  size_t len = 0;
  for (int k = 0; rc == FL_OK && k < RM__COUNT; k++) {
    const char *t = rm_pg_defs[k].rm_table;
    /* the larger of (live rows not rebuilt) and (rebuilt rows not live), so
     * that a changed row counts once */
    snprintf(sql, sizeof sql,
             "SELECT greatest((SELECT count(*) FROM (SELECT * FROM %s EXCEPT "
             "SELECT * FROM pg_temp.rebuilt_%s) a), (SELECT count(*) FROM (SELECT * FROM "
             "pg_temp.rebuilt_%s EXCEPT SELECT * FROM %s) b))", t, t, t, t);
    int64_t n = 0;
    rc = run_count(conn, sql, &n, failed);
    if (rc != FL_OK) break;
    if (n > 0 && len < cap)
      len += (size_t)snprintf(msg + len, cap - len, "%s%s: %lld rows differ", len ? "; " : "",
                              t, (long long)n);
    *differing += (uint64_t)n;
    snprintf(sql, sizeof sql, "DROP TABLE pg_temp.rebuilt_%s", t);
    rc = run(conn, sql, failed);
  }
  return rc;
}
