#include "readmodel.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/db.h"
#include "fleet/error.h"
#include "fleet/log.h"

/* One kind of thing: where its rows live and what its read model keeps. */
struct rm_def {
  const char *kind;     /* changes.kind */
  const char *table;    /* write-side table */
  const char *rm_table; /* read-model table */
  const char *id_expr;  /* the thing's id, in terms of the write-side row, table-qualified
                         * (inside the from_state subquery a bare "id" would name
                         * changes.id: every change of the kind, scanned each time) */
  const char *where;    /* the write-side row, by ?3 (and ?4) */
  const char *state;    /* state column */
  const char *cols;     /* columns kept, comma-separated, same names on both sides */
  const char *reals;    /* those of cols that hold REAL values, ",a,b," (NULL: none) */
};

static const struct rm_def rm_defs[RM__COUNT] = {
    [RM_VEHICLE] = {"vehicle", "vehicles", "rm_fleet", "vehicles.id", "id = ?3", "state",
                    "id,name,station,rate_cents,state,rental,repair_due,energy_pct,lat,lon,"
                    "odometer_m,updated_ms", ",lat,lon,"},
    [RM_RENTAL] = {"rental", "rentals", "rm_rentals", "rentals.id", "id = ?3", "state",
                   "id,vehicle,customer,kiosk,state,minutes,amount_cents,charged_cents,"
                   "refunded_cents,fee_cents,reason,started,created_ms,due_ms,ended_ms,updated_ms"},
    [RM_REPAIR] = {"repair", "repairs", "rm_repairs", "repairs.id", "id = ?3", "state",
                   "id,vehicle,state,dtcs,severity,text,opened_ms,updated_ms"},
    [RM_SAGA] = {"saga", "saga_steps", "rm_sagas", "saga_steps.rental || ':' || saga_steps.step",
                 "rental = ?3 AND step = ?4", "status",
                 "rental,step,status,amount_cents,attempts,provider_ref,last_error,next_try_ms,"
                 "updated_ms"},
    [RM_BOOKING] = {"booking", "bookings", "rm_bookings", "bookings.id", "id = ?3", "state",
                    "id,vehicle,customer,kiosk,state,start_ms,end_ms,deposit_cents,charged_cents,refunded_cents,rental,reason,created_ms,updated_ms"},
};

struct readmodel {
  sqlite3_stmt *log[RM__COUNT];
  sqlite3_stmt *project[RM__COUNT];
};

/* How a column appears in generated SQL: a json_object() pair, taken back
 * out of the snapshot, or taken from the write-side row as the snapshot
 * would give it back. */
enum col_form { COL_JSON_PAIR, COL_FROM_SNAPSHOT, COL_FROM_ROW };

/* Returns true if column c of d holds REAL values. */
static bool col_is_real(const struct rm_def *d, const char *c) {
  char key[64];
  snprintf(key, sizeof key, ",%s,", c);
  return d->reals && strstr(d->reals, key) != NULL;
}

/* Appends every column c of d's cols to buf in the given form, separated by ", ". */
static void for_each_col(char *buf, size_t cap, const struct rm_def *d, enum col_form form) {
  char list[512];
  snprintf(list, sizeof list, "%s", d->cols);
  size_t len = strlen(buf);
  bool first = true;
  for (char *save = NULL, *c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
    len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0, "%s", first ? "" : ", ");
    if (form == COL_JSON_PAIR)
      len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0, "'%s', %s", c, c);
    else if (form == COL_FROM_SNAPSHOT)
      len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0, "json_extract(snapshot, '$.%s')", c);
    else if (col_is_real(d, c)) /* JSON keeps 15 digits of a REAL: round it the same way */
      len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0,
                              "json_extract(json_quote(%s.%s), '$')", d->table, c);
    else /* integers, text and NULL come back out of JSON as they went in */
      len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0, "%s.%s", d->table, c);
    first = false;
  }
}

/* Writes the projection of the changes selected by `which` into `target`. */
static void projection_sql(char *buf, size_t cap, const struct rm_def *d, const char *target,
                           const char *which) {
  snprintf(buf, cap, "INSERT OR REPLACE INTO %s(%s) SELECT ", target, d->cols);
  for_each_col(buf, cap, d, COL_FROM_SNAPSHOT);
  size_t len = strlen(buf);
  snprintf(buf + len, cap - len, " FROM changes WHERE %s", which);
}

/* Writes the selection of the last change of every thing of kind d. */
static void last_changes_sql(char *buf, size_t cap, const struct rm_def *d) {
  snprintf(buf, cap, "seq IN (SELECT MAX(seq) FROM changes WHERE kind = '%s' GROUP BY id)", d->kind);
}

int readmodel_open(sqlite3 *db, readmodel **out) {
  readmodel *rm = calloc(1, sizeof *rm);
  if (!rm) return FL_ERR_NOMEM;
  int rc = FL_OK;
  char sql[4096];
  for (int k = 0; rc == FL_OK && k < RM__COUNT; k++) {
    const struct rm_def *d = &rm_defs[k];
    /* from_state: the state the last change of this thing left it in */
    snprintf(sql, sizeof sql,
             "INSERT INTO changes(at_ms, kind, id, from_state, to_state, snapshot) "
             "SELECT updated_ms, '%s', %s, (SELECT to_state FROM changes c WHERE c.kind = '%s' "
             "AND c.id = %s ORDER BY c.seq DESC LIMIT 1), %s, json_object(",
             d->kind, d->id_expr, d->kind, d->id_expr, d->state);
    for_each_col(sql, sizeof sql, d, COL_JSON_PAIR);
    size_t len = strlen(sql);
    snprintf(sql + len, sizeof sql - len, ") FROM %s WHERE %s", d->table, d->where);
    rc = fl_db_prepare(db, sql, &rm->log[k]);
    if (rc == FL_OK) {
      /* The live projection reads the row the snapshot was just taken from
       * rather than parsing the snapshot again: the same values (see
       * for_each_col), without the JSON round trip. */
      snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO %s(%s) SELECT ", d->rm_table, d->cols);
      for_each_col(sql, sizeof sql, d, COL_FROM_ROW);
      len = strlen(sql);
      snprintf(sql + len, sizeof sql - len, " FROM %s WHERE %s", d->table, d->where);
      rc = fl_db_prepare(db, sql, &rm->project[k]);
    }
  }
  if (rc != FL_OK) {
    readmodel_close(rm);
    return rc;
  }
  *out = rm;
  return FL_OK;
}

void readmodel_close(readmodel *rm) {
  if (!rm) return;
  for (int k = 0; k < RM__COUNT; k++) {
    sqlite3_finalize(rm->log[k]);
    sqlite3_finalize(rm->project[k]);
  }
  free(rm);
}

int readmodel_record(readmodel *rm, rm_kind kind, const char *key, const char *key2) {
  sqlite3_stmt *log = rm->log[kind];
  sqlite3_bind_text(log, 3, key, -1, SQLITE_STATIC);
  if (key2) sqlite3_bind_text(log, 4, key2, -1, SQLITE_STATIC);
  int rc = fl_db_step_done(log);
  if (rc != FL_OK) return rc;
  sqlite3_stmt *project = rm->project[kind];
  sqlite3_bind_text(project, 3, key, -1, SQLITE_STATIC);
  if (key2) sqlite3_bind_text(project, 4, key2, -1, SQLITE_STATIC);
  return fl_db_step_done(project);
}

/* Projects the last change of every thing into the tables named by prefix
 * ("" for the live tables, "temp.rebuilt_" for a check). */
static int project_all(sqlite3 *db, const char *prefix) {
  char sql[4096], which[256], target[64];
  for (int k = 0; k < RM__COUNT; k++) {
    const struct rm_def *d = &rm_defs[k];
    snprintf(target, sizeof target, "%s%s", prefix, d->rm_table);
    last_changes_sql(which, sizeof which, d);
    projection_sql(sql, sizeof sql, d, target, which);
    int rc = fl_db_exec(db, sql);
    if (rc != FL_OK) return rc;
  }
  return FL_OK;
}

int readmodel_rebuild(sqlite3 *db, uint64_t *changes) {
  char sql[128];
  for (int k = 0; k < RM__COUNT; k++) {
    snprintf(sql, sizeof sql, "DELETE FROM %s", rm_defs[k].rm_table);
    if (fl_db_exec(db, sql) != FL_OK) return FL_ERR_DB;
  }
  int rc = project_all(db, "");
  sqlite3_stmt *st = NULL;
  *changes = 0;
  if (rc == FL_OK && fl_db_prepare(db, "SELECT COUNT(*) FROM changes", &st) == FL_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) *changes = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  return rc;
}

/* Returns how many rows differ between a and b: the larger of (rows of a not
 * in b) and (rows of b not in a), so that a changed row counts once. */
static int64_t rows_differing(sqlite3 *db, const char *a, const char *b) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT MAX((SELECT COUNT(*) FROM (SELECT * FROM %s EXCEPT SELECT * FROM %s)), "
           "(SELECT COUNT(*) FROM (SELECT * FROM %s EXCEPT SELECT * FROM %s)))",
           a, b, b, a);
  sqlite3_stmt *st = NULL;
  int64_t n = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

int readmodel_check(sqlite3 *db, uint64_t *differing, char *msg, size_t cap) {
  char sql[256], rebuilt[64];
  int rc = FL_OK;
  for (int k = 0; rc == FL_OK && k < RM__COUNT; k++) {
    snprintf(sql, sizeof sql,
             "DROP TABLE IF EXISTS temp.rebuilt_%s; CREATE TEMP TABLE rebuilt_%s AS "
             "SELECT * FROM main.%s WHERE 0",
             rm_defs[k].rm_table, rm_defs[k].rm_table, rm_defs[k].rm_table);
    rc = fl_db_exec(db, sql);
  }
  if (rc == FL_OK) rc = project_all(db, "temp.rebuilt_");
  *differing = 0;
  size_t len = 0;
  msg[0] = '\0';
  for (int k = 0; rc == FL_OK && k < RM__COUNT; k++) {
    snprintf(rebuilt, sizeof rebuilt, "temp.rebuilt_%s", rm_defs[k].rm_table);
    char live[64];
    snprintf(live, sizeof live, "main.%s", rm_defs[k].rm_table);
    int64_t n = rows_differing(db, live, rebuilt);
    if (n < 0) {
      rc = FL_ERR_DB;
      break;
    }
    if (n > 0 && len < cap)
      len += (size_t)snprintf(msg + len, cap - len, "%s%s: %lld rows differ", len ? "; " : "",
                              rm_defs[k].rm_table, (long long)n);
    *differing += (uint64_t)n;
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS temp.rebuilt_%s", rm_defs[k].rm_table);
    fl_db_exec(db, sql);
  }
  return rc;
}
