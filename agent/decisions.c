#include "decisions.h"

#include <stdio.h>
#include <string.h>

#include "fleet/db.h"
#include "fleet/error.h"

int decisions__init(sqlite3 *db) {
  return fl_db_exec(db,
                    "CREATE TABLE IF NOT EXISTS decisions ("
                    "  corr TEXT PRIMARY KEY, subject TEXT NOT NULL, state TEXT NOT NULL,"
                    "  decided INTEGER NOT NULL DEFAULT 0, ok INTEGER NOT NULL DEFAULT 0,"
                    "  reason TEXT NOT NULL DEFAULT '', retry_after_s INTEGER NOT NULL DEFAULT 0,"
                    "  charged_cents INTEGER NOT NULL DEFAULT 0,"
                    "  refunded_cents INTEGER NOT NULL DEFAULT 0,"
                    "  fee_cents INTEGER NOT NULL DEFAULT 0, due_ms INTEGER NOT NULL DEFAULT 0,"
                    "  rev INTEGER NOT NULL DEFAULT 0)");
}

int decisions__queue(sqlite3 *db, const char *corr, fl_subject subject) {
  sqlite3_stmt *st = NULL;
  int err = fl_db_prepare(db,
                          "INSERT OR IGNORE INTO decisions (corr, subject, state)"
                          " VALUES (?, ?, 'QUEUED')",
                          &st);
  if (err != FL_OK) return err;
  sqlite3_bind_text(st, 1, corr, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, fl_subject_name(subject), -1, SQLITE_STATIC);
  err = fl_db_step_done(st);
  sqlite3_finalize(st);
  return err;
}

int decisions__store(sqlite3 *db, const fl_msg *m) {
  const fl_decision *d = &m->body.decision;
  sqlite3_stmt *st = NULL;
  int err = fl_db_prepare(
      db,
      "INSERT INTO decisions (corr, subject, state, decided, ok, reason, retry_after_s,"
      "  charged_cents, refunded_cents, fee_cents, due_ms, rev)"
      " VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1)"
      " ON CONFLICT (corr) DO UPDATE SET subject = ?2, state = ?3, decided = 1, ok = ?4,"
      "  reason = ?5, retry_after_s = ?6, charged_cents = ?7, refunded_cents = ?8,"
      "  fee_cents = ?9, due_ms = ?10, rev = rev + 1",
      &st);
  if (err != FL_OK) return err;
  sqlite3_bind_text(st, 1, m->env.corr, -1, SQLITE_STATIC);
  const char *subject = fl_subject_name(d->subject);
  sqlite3_bind_text(st, 2, subject ? subject : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, d->state, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 4, d->ok);
  sqlite3_bind_text(st, 5, d->reason, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 6, d->retry_after_s);
  sqlite3_bind_int64(st, 7, d->charged_cents);
  sqlite3_bind_int64(st, 8, d->refunded_cents);
  sqlite3_bind_int64(st, 9, d->fee_cents);
  sqlite3_bind_int64(st, 10, d->due_ms);
  err = fl_db_step_done(st);
  sqlite3_finalize(st);
  return err;
}

static void column_copy(sqlite3_stmt *st, int col, char *dst, size_t cap) {
  const unsigned char *s = sqlite3_column_text(st, col);
  snprintf(dst, cap, "%s", s ? (const char *)s : "");
}

int decisions__get(sqlite3 *db, const char *corr, agent_decision *out) {
  sqlite3_stmt *st = NULL;
  int err = fl_db_prepare(db,
                          "SELECT subject, state, decided, ok, reason, retry_after_s,"
                          " charged_cents, refunded_cents, fee_cents, due_ms, rev"
                          " FROM decisions WHERE corr = ?",
                          &st);
  if (err != FL_OK) return err;
  sqlite3_bind_text(st, 1, corr, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    memset(out, 0, sizeof *out);
    snprintf(out->corr, sizeof out->corr, "%s", corr);
    out->subject = fl_subject_from_name((const char *)sqlite3_column_text(st, 0));
    column_copy(st, 1, out->state, sizeof out->state);
    out->decided = sqlite3_column_int(st, 2) != 0;
    out->ok = sqlite3_column_int(st, 3) != 0;
    column_copy(st, 4, out->reason, sizeof out->reason);
    out->retry_after_s = (uint32_t)sqlite3_column_int64(st, 5);
    out->charged_cents = sqlite3_column_int64(st, 6);
    out->refunded_cents = sqlite3_column_int64(st, 7);
    out->fee_cents = sqlite3_column_int64(st, 8);
    out->due_ms = sqlite3_column_int64(st, 9);
    out->rev = (uint64_t)sqlite3_column_int64(st, 10);
  }
  err = rc == SQLITE_ROW ? FL_OK : rc == SQLITE_DONE ? FL_ERR_NOT_FOUND : FL_ERR_DB;
  sqlite3_finalize(st);
  return err;
}
