#include "fleet/db.h"

#include <stdio.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/log.h"

int fl_db_err(int rc) {
  switch (rc & 0xff) {
  case SQLITE_OK:
  case SQLITE_DONE:
  case SQLITE_ROW:
    return FL_OK;
  case SQLITE_CONSTRAINT:
    return FL_ERR_CONFLICT;
  case SQLITE_NOMEM:
    return FL_ERR_NOMEM;
  case SQLITE_FULL:
    return FL_ERR_FULL;
  case SQLITE_IOERR:
    return FL_ERR_IO;
  default:
    return FL_ERR_DB;
  }
}

int fl_db_sync_from_name(const char *name) {
  if (!name) return -1;
  if (strcmp(name, "off") == 0) return FL_DB_SYNC_OFF;
  if (strcmp(name, "normal") == 0) return FL_DB_SYNC_NORMAL;
  if (strcmp(name, "full") == 0) return FL_DB_SYNC_FULL;
  return -1;
}

int fl_db_init_small(void) {
  return sqlite3_config(SQLITE_CONFIG_PAGECACHE, (void *)NULL, 0, 0) == SQLITE_OK ? FL_OK
                                                                                 : FL_ERR_DB;
}

/* Opens path; page_size > 0 applies to a new file (before WAL writes its header). */
static int db_open(const char *path, fl_db_sync sync, bool read_only, int page_size,
                   sqlite3 **out) {
  sqlite3 *db = NULL;
  int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  flags |= SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path, &db, flags, NULL);
  if (rc != SQLITE_OK) {
    fl_error("db open %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return FL_ERR_DB;
  }
  sqlite3_busy_timeout(db, 5000);
  static const char *const sync_sql[] = {"PRAGMA synchronous=OFF", "PRAGMA synchronous=NORMAL",
                                         "PRAGMA synchronous=FULL"};
  int err = FL_OK;
  if (!read_only && page_size > 0) {
    char sql[48];
    snprintf(sql, sizeof sql, "PRAGMA page_size=%d", page_size);
    err = fl_db_exec(db, sql);
  }
  if (!read_only && err == FL_OK) {
    err = fl_db_exec(db, "PRAGMA journal_mode=WAL");
    if (err == FL_OK) err = fl_db_exec(db, sync_sql[sync]);
  }
  if (err == FL_OK) err = fl_db_exec(db, "PRAGMA foreign_keys=ON");
  if (err != FL_OK) {
    sqlite3_close(db);
    return err;
  }
  *out = db;
  return FL_OK;
}

int fl_db_open(const char *path, fl_db_sync sync, bool read_only, sqlite3 **out) {
  return db_open(path, sync, read_only, 0, out);
}

int fl_db_open_paged(const char *path, fl_db_sync sync, int page_size, sqlite3 **out) {
  if (page_size < 512 || page_size > 65536 || (page_size & (page_size - 1))) return FL_ERR_INVALID;
  return db_open(path, sync, false, page_size, out);
}

void fl_db_close(sqlite3 *db) {
  if (db) sqlite3_close(db);
}

int fl_db_exec(sqlite3 *db, const char *sql) {
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    fl_error("db exec '%.40s': %s", sql, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return fl_db_err(rc) == FL_OK ? FL_ERR_DB : fl_db_err(rc);
  }
  return FL_OK;
}

int fl_db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
  if (rc != SQLITE_OK) {
    fl_error("db prepare '%.60s': %s", sql, sqlite3_errmsg(db));
    return FL_ERR_DB;
  }
  return FL_OK;
}

int fl_db_step_done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  int err = FL_OK;
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
    err = fl_db_err(rc);
    if (err == FL_OK) err = FL_ERR_DB;
    if (err != FL_ERR_CONFLICT)
      fl_error("db step '%.60s': %s", sqlite3_sql(st), sqlite3_errmsg(sqlite3_db_handle(st)));
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return err;
}
