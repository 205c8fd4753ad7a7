/* Outbox: uplink events in SQLite until the hub's cumulative ack covers them.
 *
 *   meta(key, value)       next_seq, boot, last_ack, applied; fence (outbox_fence)
 *   events(seq, ...)       encoded events with their seq, sent until acked
 *   telemetry(id, ...)     readings without a seq, oldest dropped beyond
 *                          telemetry_max, numbered when promoted to events
 *
 * The counters are cached in the struct and reloaded after a rollback. */
#include "outbox.h"

#define OUTBOX_PAGE_SIZE 1024

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS events ("
    "  seq INTEGER PRIMARY KEY, type TEXT NOT NULL, corr TEXT NOT NULL DEFAULT '',"
    "  payload BLOB NOT NULL, created_ms INTEGER NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('critical', 'telemetry')));"
    "CREATE TABLE IF NOT EXISTS telemetry ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, created_ms INTEGER NOT NULL,"
    "  odometer_m INTEGER NOT NULL, energy_pct INTEGER NOT NULL,"
    "  lat REAL NOT NULL, lon REAL NOT NULL, speed_kmh INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta VALUES ('next_seq', 1), ('boot', 0), ('last_ack', 0),"
    "  ('applied', 0);";

enum stmt_id {
  ST_META_GET,
  ST_META_SET,
  ST_EVENT_INSERT,
  ST_EVENT_NEXT,
  ST_EVENT_DELETE_UPTO,
  ST_EVENT_COUNT,
  ST_EVENT_COUNT_UPTO,
  ST_EVENT_RENUMBER,
  ST_TEL_INSERT,
  ST_TEL_DROP_OLDEST,
  ST_TEL_OLDEST,
  ST_TEL_DELETE,
  ST_TEL_COUNT,
  ST__COUNT
};

static const char *const stmt_sql[ST__COUNT] = {
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?",
    [ST_META_SET] = "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    [ST_EVENT_INSERT] = "INSERT INTO events (seq, type, corr, payload, created_ms, kind)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
    [ST_EVENT_NEXT] = "SELECT seq, type, corr, payload FROM events WHERE seq > ?"
                      " ORDER BY seq LIMIT 1",
    [ST_EVENT_DELETE_UPTO] = "DELETE FROM events WHERE seq <= ?",
    [ST_EVENT_COUNT] = "SELECT count(*), coalesce(sum(kind = 'critical'), 0) FROM events",
    [ST_EVENT_COUNT_UPTO] = "SELECT count(*), coalesce(sum(kind = 'critical'), 0) FROM events"
                            " WHERE seq <= ?",
    [ST_EVENT_RENUMBER] = "UPDATE events SET seq = ?, payload = ? WHERE seq = ?",
    [ST_TEL_INSERT] = "INSERT INTO telemetry (created_ms, odometer_m, energy_pct, lat, lon,"
                      " speed_kmh) VALUES (?, ?, ?, ?, ?, ?)",
    [ST_TEL_DROP_OLDEST] = "DELETE FROM telemetry WHERE id IN"
                           " (SELECT id FROM telemetry ORDER BY id LIMIT ?)",
    [ST_TEL_OLDEST] = "SELECT id, created_ms, odometer_m, energy_pct, lat, lon, speed_kmh"
                      " FROM telemetry ORDER BY id LIMIT 1",
    [ST_TEL_DELETE] = "DELETE FROM telemetry WHERE id = ?",
    [ST_TEL_COUNT] = "SELECT count(*) FROM telemetry",
};

struct outbox {
  sqlite3 *db;
  sqlite3_stmt *st[ST__COUNT];
  char dev[FL_ID_MAX + 1];
  int max_events, telemetry_max;
  int depth; /* nesting of outbox__begin */
  bool in_doubt; /* a COMMIT failed and outbox_fence has not succeeded since */
  /* cached from the database */
  uint64_t next_seq, boot, last_ack, applied;
  uint64_t backlog, critical, tel_queued;
  uint64_t tel_dropped; /* since open, not persisted */
};

static int meta_get(outbox *ob, const char *key, uint64_t *out) {
  sqlite3_stmt *st = ob->st[ST_META_GET];
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *out = (uint64_t)sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_ROW ? FL_OK : FL_ERR_DB;
}

static int meta_set(outbox *ob, const char *key, uint64_t value) {
  sqlite3_stmt *st = ob->st[ST_META_SET];
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)value);
  return fl_db_step_done(st);
}

/* Runs a one-row query and returns its first (and second) integer column. */
static int query_counts(sqlite3_stmt *st, uint64_t *a, uint64_t *b) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *a = (uint64_t)sqlite3_column_int64(st, 0);
    if (b) *b = (uint64_t)sqlite3_column_int64(st, 1);
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? FL_OK : FL_ERR_DB;
}

/* Reloads every cached counter from the database. */
static int outbox_reload(outbox *ob) {
  int err = meta_get(ob, "next_seq", &ob->next_seq);
  if (err == FL_OK) err = meta_get(ob, "boot", &ob->boot);
  if (err == FL_OK) err = meta_get(ob, "last_ack", &ob->last_ack);
  if (err == FL_OK) err = meta_get(ob, "applied", &ob->applied);
  if (err == FL_OK) err = query_counts(ob->st[ST_EVENT_COUNT], &ob->backlog, &ob->critical);
  if (err == FL_OK) err = query_counts(ob->st[ST_TEL_COUNT], &ob->tel_queued, NULL);
  return err;
}

int outbox__open(const outbox_opts *o, outbox **out) {
  if (!o || !o->path || !o->dev || strlen(o->dev) > AGENT_ID_MAX) return FL_ERR_INVALID;
  outbox *ob = calloc(1, sizeof *ob);
  if (!ob) return FL_ERR_NOMEM;
  snprintf(ob->dev, sizeof ob->dev, "%s", o->dev);
  ob->max_events = o->max_events > 0 ? o->max_events : 10000;
  ob->telemetry_max = o->telemetry_max > 0 ? o->telemetry_max : 100;
  /* 1 KiB pages: each commit of an event or an ack rewrites a few pages
   * whole, so smaller pages write less (bench/run footprint: write
   * amplification) */
  int err = fl_db_open_paged(o->path, o->durability, OUTBOX_PAGE_SIZE, &ob->db);
  /* The outbox is used at its two ends (insert at the tail, send and delete
   * at the head): 256 KiB of cached pages hold those; SQLite's default of 2 MB would
   * keep a whole backlog of 10,000 events in memory (bench/run footprint). */
  if (err == FL_OK) err = fl_db_exec(ob->db, "PRAGMA cache_size=-256");
  if (err == FL_OK) err = fl_db_exec(ob->db, schema_sql);
  for (int i = 0; err == FL_OK && i < ST__COUNT; i++)
    err = fl_db_prepare(ob->db, stmt_sql[i], &ob->st[i]);
  if (err == FL_OK) err = outbox_reload(ob);
  if (err == FL_OK) err = meta_set(ob, "boot", ob->boot + 1);
  if (err != FL_OK) {
    outbox__close(ob);
    return err;
  }
  ob->boot++;
  *out = ob;
  return FL_OK;
}

void outbox__close(outbox *ob) {
  if (!ob) return;
  for (int i = 0; i < ST__COUNT; i++) sqlite3_finalize(ob->st[i]);
  fl_db_close(ob->db);
  free(ob);
}

sqlite3 *outbox__db(outbox *ob) { return ob->db; }
uint64_t outbox__boot(const outbox *ob) { return ob->boot; }
uint64_t outbox__next_seq(const outbox *ob) { return ob->next_seq; }
uint64_t outbox__last_ack(const outbox *ob) { return ob->last_ack; }
uint64_t outbox__applied(const outbox *ob) { return ob->applied; }
uint64_t outbox__backlog(const outbox *ob) { return ob->backlog; }
uint64_t outbox__telemetry_queued(const outbox *ob) { return ob->tel_queued; }
uint64_t outbox__telemetry_dropped(const outbox *ob) { return ob->tel_dropped; }

/* After a COMMIT that failed, the transaction's pages may still be whole in
 * the WAL: a sync that fails comes after the pages and the commit mark were
 * written. SQLite no longer sees them, but its recovery after a crash would,
 * and would send an event whose caller was told it was refused. The next
 * write transaction starts at the same place of the WAL and cuts them off;
 * this is one, made at once: meta 'fence' counts up (a row rewritten with the
 * same bytes would not be written at all). While it fails the
 * outbox is in doubt and every new transaction tries it first. Returns FL_OK
 * or the store's error. */
static int outbox_fence(outbox *ob) {
  int err = fl_db_exec(ob->db, "INSERT INTO meta (key, value) VALUES ('fence', 1)"
                               " ON CONFLICT (key) DO UPDATE SET value = value + 1");
  if (err != FL_OK && !ob->in_doubt)
    fl_warn("outbox: a commit failed and the store still fails (%s): if the agent stops now, "
            "the refused write may come back",
            fl_strerror(err));
  ob->in_doubt = err != FL_OK;
  return err;
}

int outbox__begin(outbox *ob) {
  if (ob->depth == 0) {
    int err = ob->in_doubt ? outbox_fence(ob) : FL_OK;
    if (err == FL_OK) err = fl_db_exec(ob->db, "BEGIN IMMEDIATE");
    if (err != FL_OK) return err;
  }
  ob->depth++;
  return FL_OK;
}

int outbox__commit(outbox *ob) {
  if (ob->depth <= 0) return FL_ERR_DB; /* rolled back by an inner call */
  if (--ob->depth > 0) return FL_OK;
  int err = fl_db_exec(ob->db, "COMMIT");
  if (err != FL_OK) {
    outbox__rollback(ob);
    outbox_fence(ob);
  }
  return err;
}

void outbox__rollback(outbox *ob) {
  if (!sqlite3_get_autocommit(ob->db)) fl_db_exec(ob->db, "ROLLBACK");
  ob->depth = 0;
  if (outbox_reload(ob) != FL_OK) fl_error("outbox: cannot reload counters after rollback");
}

/* Stores encoded m (envelope complete) as row seq. */
static int event_insert(outbox *ob, const fl_msg *m, outbox_kind kind) {
  uint8_t buf[FL_MAX_MSG_BYTES];
  size_t len = 0;
  int err = fl_msg_encode(m, buf, sizeof buf, &len);
  if (err != FL_OK) {
    const char *name = fl_msg_type_name(m->env.type);
    fl_warn("outbox: %s does not encode: %s", name ? name : "?", fl_errname(err));
    return FL_ERR_INVALID;
  }
  sqlite3_stmt *st = ob->st[ST_EVENT_INSERT];
  sqlite3_bind_int64(st, 1, (sqlite3_int64)m->env.seq);
  sqlite3_bind_text(st, 2, fl_msg_type_name(m->env.type), -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, m->env.corr, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 4, buf, (int)len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, m->env.time_ms);
  sqlite3_bind_text(st, 6, kind == OUTBOX_CRITICAL ? "critical" : "telemetry", -1, SQLITE_STATIC);
  return fl_db_step_done(st);
}

/* Sets the sequenced envelope of m for seq. */
static void envelope_fill(const outbox *ob, fl_msg *m, uint64_t seq) {
  m->env.v = FL_PROTO_VERSION;
  m->env.seq = seq;
  m->env.boot = ob->boot;
  snprintf(m->env.dev, sizeof m->env.dev, "%s", ob->dev);
  if (snprintf(m->env.mid, sizeof m->env.mid, "%s:%" PRIu64, ob->dev, seq) >=
      (int)sizeof m->env.mid)
    m->env.mid[0] = '\0'; /* cannot happen with ids <= AGENT_ID_MAX; fails encoding */
  if (m->env.time_ms == 0) m->env.time_ms = fl_now_ms();
}

/* Appends m with the next seq, in a (nested) transaction. */
static int append_kind(outbox *ob, fl_msg *m, outbox_kind kind, uint64_t *seq) {
  uint64_t s = ob->next_seq;
  envelope_fill(ob, m, s);
  int err = outbox__begin(ob);
  if (err != FL_OK) return err;
  err = event_insert(ob, m, kind);
  if (err == FL_OK) err = meta_set(ob, "next_seq", s + 1);
  if (err != FL_OK) {
    outbox__rollback(ob);
    return err;
  }
  ob->next_seq = s + 1;
  ob->backlog++;
  if (kind == OUTBOX_CRITICAL) ob->critical++;
  err = outbox__commit(ob);
  if (err == FL_OK && seq) *seq = s;
  return err;
}

int outbox__append(outbox *ob, fl_msg *m, uint64_t *seq) {
  if (ob->critical >= (uint64_t)ob->max_events) return FL_ERR_FULL;
  return append_kind(ob, m, OUTBOX_CRITICAL, seq);
}

int outbox__telemetry_add(outbox *ob, const fl_msg *m) {
  const fl_telemetry *t = &m->body.telemetry;
  /* Validate now: a reading that does not encode would block the queue. */
  fl_msg probe = *m;
  uint8_t buf[FL_MAX_MSG_BYTES];
  size_t len = 0;
  envelope_fill(ob, &probe, 1);
  if (fl_msg_encode(&probe, buf, sizeof buf, &len) != FL_OK) return FL_ERR_INVALID;
  int err = outbox__begin(ob);
  if (err != FL_OK) return err;
  sqlite3_stmt *st = ob->st[ST_TEL_INSERT];
  sqlite3_bind_int64(st, 1, m->env.time_ms ? m->env.time_ms : fl_now_ms());
  sqlite3_bind_int64(st, 2, (sqlite3_int64)t->odometer_m);
  sqlite3_bind_int64(st, 3, t->energy_pct);
  sqlite3_bind_double(st, 4, t->lat);
  sqlite3_bind_double(st, 5, t->lon);
  sqlite3_bind_int64(st, 6, t->speed_kmh);
  err = fl_db_step_done(st);
  uint64_t excess = ob->tel_queued + 1 > (uint64_t)ob->telemetry_max
                        ? ob->tel_queued + 1 - (uint64_t)ob->telemetry_max
                        : 0;
  if (err == FL_OK && excess > 0) {
    sqlite3_bind_int64(ob->st[ST_TEL_DROP_OLDEST], 1, (sqlite3_int64)excess);
    err = fl_db_step_done(ob->st[ST_TEL_DROP_OLDEST]);
  }
  if (err != FL_OK) {
    outbox__rollback(ob);
    return err;
  }
  err = outbox__commit(ob);
  if (err == FL_OK) {
    ob->tel_queued = ob->tel_queued + 1 - excess;
    ob->tel_dropped += excess;
  }
  return err;
}

/* Moves the oldest queued reading into the outbox. Returns 1, 0 if none. */
static int telemetry_promote_one(outbox *ob) {
  sqlite3_stmt *st = ob->st[ST_TEL_OLDEST];
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : FL_ERR_DB;
  }
  fl_msg m;
  fl_msg_init(&m, FL_MSG_TELEMETRY);
  sqlite3_int64 id = sqlite3_column_int64(st, 0);
  m.env.time_ms = sqlite3_column_int64(st, 1);
  m.body.telemetry.odometer_m = (uint64_t)sqlite3_column_int64(st, 2);
  m.body.telemetry.energy_pct = (uint32_t)sqlite3_column_int64(st, 3);
  m.body.telemetry.lat = sqlite3_column_double(st, 4);
  m.body.telemetry.lon = sqlite3_column_double(st, 5);
  m.body.telemetry.speed_kmh = (uint32_t)sqlite3_column_int64(st, 6);
  sqlite3_reset(st);
  sqlite3_bind_int64(ob->st[ST_TEL_DELETE], 1, id);
  int err = fl_db_step_done(ob->st[ST_TEL_DELETE]);
  if (err == FL_OK) err = append_kind(ob, &m, OUTBOX_TELEMETRY, NULL);
  return err == FL_OK ? 1 : err;
}

int outbox__telemetry_promote(outbox *ob, int max) {
  if (max <= 0 || ob->tel_queued == 0) return 0;
  int err = outbox__begin(ob);
  if (err != FL_OK) return err;
  int moved = 0;
  while (moved < max) {
    int r = telemetry_promote_one(ob);
    if (r < 0) {
      outbox__rollback(ob);
      return r;
    }
    if (r == 0) break;
    moved++;
  }
  err = outbox__commit(ob);
  if (err != FL_OK) return err;
  ob->tel_queued -= (uint64_t)moved;
  return moved;
}

int outbox__next_event(outbox *ob, uint64_t after, outbox_event *ev) {
  sqlite3_stmt *st = ob->st[ST_EVENT_NEXT];
  sqlite3_bind_int64(st, 1, (sqlite3_int64)after);
  int rc = sqlite3_step(st);
  int err = FL_OK;
  if (rc == SQLITE_ROW) {
    const void *blob = sqlite3_column_blob(st, 3);
    int len = sqlite3_column_bytes(st, 3);
    const char *type = (const char *)sqlite3_column_text(st, 1);
    const char *corr = (const char *)sqlite3_column_text(st, 2);
    ev->seq = (uint64_t)sqlite3_column_int64(st, 0);
    ev->type = fl_msg_type_from_name(type ? type : "");
    snprintf(ev->corr, sizeof ev->corr, "%s", corr ? corr : "");
    if (len < 0 || (size_t)len > sizeof ev->payload) {
      err = FL_ERR_DB;
    } else {
      if (len > 0) memcpy(ev->payload, blob, (size_t)len);
      ev->len = (size_t)len;
    }
  } else {
    err = rc == SQLITE_DONE ? FL_ERR_NOT_FOUND : FL_ERR_DB;
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return err;
}

int outbox__ack(outbox *ob, uint64_t upto) {
  if (upto <= ob->last_ack) return 0;
  int err = outbox__begin(ob);
  if (err != FL_OK) return err;
  /* Count what goes by its kind over the deleted range only: counting the
   * whole table at every ack made draining a large backlog quadratic. */
  uint64_t gone = 0, gone_critical = 0;
  sqlite3_stmt *count = ob->st[ST_EVENT_COUNT_UPTO];
  sqlite3_bind_int64(count, 1, (sqlite3_int64)upto);
  err = query_counts(count, &gone, &gone_critical);
  sqlite3_clear_bindings(count);
  if (err == FL_OK) {
    sqlite3_bind_int64(ob->st[ST_EVENT_DELETE_UPTO], 1, (sqlite3_int64)upto);
    err = fl_db_step_done(ob->st[ST_EVENT_DELETE_UPTO]);
  }
  if (err == FL_OK) err = meta_set(ob, "last_ack", upto);
  if (err == FL_OK) err = outbox__commit(ob);
  else outbox__rollback(ob);
  if (err != FL_OK) return err;
  ob->last_ack = upto;
  ob->backlog = ob->backlog > gone ? ob->backlog - gone : 0;
  ob->critical = ob->critical > gone_critical ? ob->critical - gone_critical : 0;
  return (int)gone;
}

/* Gives the row old_seq the number new_seq, re-encoding its envelope. */
static int renumber_one(outbox *ob, uint64_t old_seq, uint64_t new_seq) {
  outbox_event *ev = malloc(sizeof *ev);
  fl_msg *m = malloc(sizeof *m);
  uint8_t *buf = malloc(FL_MAX_MSG_BYTES);
  size_t len = 0;
  int err = ev && m && buf ? outbox__next_event(ob, old_seq - 1, ev) : FL_ERR_NOMEM;
  if (err == FL_OK && ev->seq != old_seq) err = FL_ERR_NOT_FOUND;
  if (err == FL_OK) err = fl_msg_decode(ev->payload, ev->len, m, NULL);
  if (err == FL_OK) {
    envelope_fill(ob, m, new_seq);
    err = fl_msg_encode(m, buf, FL_MAX_MSG_BYTES, &len);
  }
  if (err == FL_OK) {
    sqlite3_stmt *st = ob->st[ST_EVENT_RENUMBER];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)new_seq);
    sqlite3_bind_blob(st, 2, buf, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)old_seq);
    err = fl_db_step_done(st);
  }
  free(buf);
  free(m);
  free(ev);
  return err;
}

int outbox__rebase(outbox *ob, uint64_t next_seq) {
  if (next_seq <= ob->next_seq) return FL_OK;
  int err = outbox__begin(ob);
  if (err != FL_OK) return err;
  uint64_t first = ob->last_ack + 1, n = ob->next_seq - first;
  /* Rows are first..next_seq-1 (contiguous); renumber from the top down is
   * not needed: every new number is above every old one. */
  for (uint64_t i = 0; err == FL_OK && i < n; i++) err = renumber_one(ob, first + i, next_seq + i);
  if (err == FL_OK) err = meta_set(ob, "next_seq", next_seq + n);
  if (err == FL_OK) err = meta_set(ob, "last_ack", next_seq - 1);
  if (err == FL_OK) err = outbox__commit(ob);
  else outbox__rollback(ob);
  if (err != FL_OK) return err;
  fl_warn("outbox: hub holds seqs up to %" PRIu64 ", storage was lost: renumbered %" PRIu64
          " events from %" PRIu64,
          next_seq - 1, n, next_seq);
  ob->next_seq = next_seq + n;
  ob->last_ack = next_seq - 1;
  return FL_OK;
}

int outbox__set_applied(outbox *ob, uint64_t applied) {
  int err = meta_set(ob, "applied", applied);
  if (err == FL_OK) ob->applied = applied;
  return err;
}
