#include "access.h"

#include <stdio.h>
#include <string.h>

#include "fleet/db.h"
#include "fleet/error.h"

int access__init(sqlite3 *db) {
  return fl_db_exec(db,
                    "CREATE TABLE IF NOT EXISTS bookings ("
                    "  booking TEXT PRIMARY KEY, customer TEXT NOT NULL,"
                    "  start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL);"
                    "CREATE TABLE IF NOT EXISTS grants (customer TEXT PRIMARY KEY)");
}

int access__replace_bookings(sqlite3 *db, const fl_booking *b, uint32_t n) {
  sqlite3_stmt *st = NULL;
  int err = fl_db_exec(db, "DELETE FROM bookings");
  if (err == FL_OK)
    err = fl_db_prepare(db, "INSERT OR REPLACE INTO bookings VALUES (?, ?, ?, ?)", &st);
  for (uint32_t i = 0; err == FL_OK && i < n; i++) {
    sqlite3_bind_text(st, 1, b[i].booking, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, b[i].customer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, b[i].start_ms);
    sqlite3_bind_int64(st, 4, b[i].end_ms);
    err = fl_db_step_done(st);
  }
  sqlite3_finalize(st);
  return err;
}

int access__bookings(sqlite3 *db, fl_booking *out, size_t cap) {
  sqlite3_stmt *st = NULL;
  int err = fl_db_prepare(
      db, "SELECT booking, customer, start_ms, end_ms FROM bookings ORDER BY start_ms", &st);
  if (err != FL_OK) return err;
  int n = 0, rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if ((size_t)n < cap) {
      const unsigned char *id = sqlite3_column_text(st, 0), *cu = sqlite3_column_text(st, 1);
      snprintf(out[n].booking, sizeof out[n].booking, "%s", id ? (const char *)id : "");
      snprintf(out[n].customer, sizeof out[n].customer, "%s", cu ? (const char *)cu : "");
      out[n].start_ms = sqlite3_column_int64(st, 2);
      out[n].end_ms = sqlite3_column_int64(st, 3);
    }
    n++;
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? n : FL_ERR_DB;
}

int access__grant(sqlite3 *db, const char *customer) {
  if (!customer || !customer[0]) return fl_db_exec(db, "DELETE FROM grants");
  sqlite3_stmt *st = NULL;
  int err = fl_db_prepare(db, "INSERT OR IGNORE INTO grants VALUES (?)", &st);
  if (err != FL_OK) return err;
  sqlite3_bind_text(st, 1, customer, -1, SQLITE_STATIC);
  err = fl_db_step_done(st);
  sqlite3_finalize(st);
  return err;
}

/* Runs a query with one text and an optional int64 parameter; returns 1 if it
 * yields a row, 0 if not, FL_ERR_DB. Writes the first column into out. */
static int query_exists(sqlite3 *db, const char *sql, const char *text, int64_t num, char *out,
                        size_t cap) {
  sqlite3_stmt *st = NULL;
  if (fl_db_prepare(db, sql, &st) != FL_OK) return FL_ERR_DB;
  sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
  if (sqlite3_bind_parameter_count(st) > 1) sqlite3_bind_int64(st, 2, num);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW && out) {
    const unsigned char *s = sqlite3_column_text(st, 0);
    snprintf(out, cap, "%s", s ? (const char *)s : "");
  }
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : FL_ERR_DB;
}

int access__check(sqlite3 *db, const char *customer, int64_t now_ms, char *why, size_t cap) {
  char booking[FL_ID_MAX + 1] = "";
  int r = query_exists(db,
                       "SELECT booking FROM bookings WHERE customer = ?1"
                       " AND start_ms <= ?2 AND end_ms > ?2 LIMIT 1",
                       customer, now_ms, booking, sizeof booking);
  if (r == 1) {
    snprintf(why, cap, "booking %s", booking);
    return 1;
  }
  if (r == 0) r = query_exists(db, "SELECT customer FROM grants WHERE customer = ?", customer, 0,
                               NULL, 0);
  if (r == 1) {
    snprintf(why, cap, "granted by hub");
    return 1;
  }
  if (r == 0) snprintf(why, cap, "no booking or grant for this customer now");
  return r;
}
