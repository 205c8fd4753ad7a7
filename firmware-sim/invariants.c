#include "invariants.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "fleet/clock.h"
#include "fleet/db.h"
#include "fleet/error.h"
#include "hubapi.h"

/* Rental states in which the saga still has work to do. */
static bool unfinished(const char *state) {
  return !strcmp(state, "REQUESTED") || !strcmp(state, "PAYMENT_PENDING") ||
         !strcmp(state, "CANCEL_REQUESTED") || !strcmp(state, "RETURNED");
}

/* Rental states that hold a vehicle (a cancel or a return frees it at once). */
static bool holds_vehicle(const char *state) {
  return !strcmp(state, "ACTIVE") || !strcmp(state, "PAYMENT_PENDING");
}

/* Returns the open read-only hub.db of c, or NULL (no state dir, or not readable). */
static sqlite3 *open_hub_db(const sim_check *c) {
  char path[600];
  sqlite3 *db = NULL;
  if (!c->hub_state_dir) return NULL;
  snprintf(path, sizeof path, "%s/hub.db", c->hub_state_dir);
  return fl_db_open(path, FL_DB_SYNC_NORMAL, true, &db) == FL_OK ? db : NULL;
}

/* Every rental from the hub's store (id, vehicle, state and money). */
static cJSON *rentals_from_db(sqlite3 *db) {
  static const char *const cols[] = {"id", "vehicle", "state", "amount_cents", "charged_cents",
                                     "refunded_cents", "fee_cents"};
  sqlite3_stmt *st = NULL;
  cJSON *rows = cJSON_CreateArray();
  if (!rows || sqlite3_prepare_v2(db, "SELECT id, vehicle, state, amount_cents, charged_cents,"
                                      " refunded_cents, fee_cents FROM rentals", -1, &st, NULL) != SQLITE_OK) {
    cJSON_Delete(rows);
    return NULL;
  }
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    cJSON *row = cJSON_CreateObject();
    if (!row || !cJSON_AddItemToArray(rows, row)) break;
    for (int i = 0; i < 3; i++)
      cJSON_AddStringToObject(row, cols[i], (const char *)sqlite3_column_text(st, i));
    for (int i = 3; i < 7; i++) cJSON_AddNumberToObject(row, cols[i], (double)sqlite3_column_int64(st, i));
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) {
    cJSON_Delete(rows);
    return NULL;
  }
  return rows;
}

cJSON *sim_hub_rentals(const char *hub_url, const char *hub_state_dir) {
  sim_check c = {.hub_url = hub_url, .hub_state_dir = hub_state_dir};
  sqlite3 *db = open_hub_db(&c);
  cJSON *rows = NULL;
  if (db) {
    rows = rentals_from_db(db);
    fl_db_close(db);
    return rows;
  }
  if (sim_hub_call(hub_url, "GET", "/v1/rentals?limit=1000", NULL, &rows) != 200 ||
      !cJSON_IsArray(rows)) {
    cJSON_Delete(rows);
    return NULL;
  }
  return rows;
}

static int count_unfinished(const cJSON *rows) {
  int n = 0;
  const cJSON *r;
  cJSON_ArrayForEach(r, rows) n += unfinished(sim_json_str(r, "state"));
  return n;
}

/* True when every device is up with an empty outbox. */
static bool devices_drained(const sim_check *c) {
  for (size_t i = 0; i < c->n_devices; i++) {
    fl_agent *a = sim_device_agent(c->devices[i]);
    agent_status st;
    if (!a) return false;
    agent_get_status(a, &st);
    if (!st.synced || st.backlog || st.telemetry_queued) return false;
  }
  return true;
}

/* Restores every device and ticks them until drained and settled. */
static void settle(const sim_check *c) {
  for (size_t i = 0; i < c->n_devices; i++) sim_device_restore(c->devices[i]);
  int64_t end = fl_mono_us() + (int64_t)(c->settle_s * 1e6), next_poll = 0;
  for (;;) {
    int64_t now = fl_mono_us();
    for (size_t i = 0; i < c->n_devices; i++) sim_device_tick(c->devices[i], now);
    if (now >= next_poll) {
      next_poll = now + 250000;
      if (devices_drained(c)) {
        cJSON *rows = sim_hub_rentals(c->hub_url, c->hub_state_dir);
        int open = rows ? count_unfinished(rows) : 1;
        cJSON_Delete(rows);
        if (open == 0) return;
      }
    }
    if (now > end) return;
    fl_sleep_ms(50);
  }
}

/* Prints one verdict line; returns 1 for a violation, else 0. */
__attribute__((format(printf, 2, 3))) static int report(bool ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("  [%s] ", ok ? " ok " : "FAIL");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  return ok ? 0 : 1;
}

static int check_rentals(const cJSON *rows) {
  int double_held = 0;
  const cJSON *a, *b;
  cJSON_ArrayForEach(a, rows) {
    if (!holds_vehicle(sim_json_str(a, "state"))) continue;
    for (b = a->next; b; b = b->next)
      if (holds_vehicle(sim_json_str(b, "state")) &&
          strcmp(sim_json_str(a, "vehicle"), sim_json_str(b, "vehicle")) == 0)
        double_held++;
  }
  int bad = report(count_unfinished(rows) == 0,
                   "every rental finished or compensated (%d still in flight)",
                   count_unfinished(rows));
  return bad + report(double_held == 0, "no vehicle in two open rentals (%d)", double_held);
}

/* Returns the first integer column of sql's first row (binding text p1 when
 * not NULL), or -1 on error. */
static long long query_int(sqlite3 *db, const char *sql, const char *p1) {
  sqlite3_stmt *st = NULL;
  long long v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
      (!p1 || sqlite3_bind_text(st, 1, p1, -1, SQLITE_STATIC) == SQLITE_OK) &&
      sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* Every event a device numbered reached the hub's watermark, and (with db)
 * sits in the events table once per seq. */
static int check_events(const sim_check *c, sqlite3 *db) {
  cJSON *hub_devices = NULL;
  if (sim_hub_call(c->hub_url, "GET", "/v1/devices", NULL, &hub_devices) != 200) {
    cJSON_Delete(hub_devices);
    return report(false, "the hub's devices could not be read");
  }
  int unaccepted = 0, not_once = 0;
  for (size_t i = 0; i < c->n_devices; i++) {
    fl_agent *a = sim_device_agent(c->devices[i]);
    if (!a) {
      unaccepted++;
      continue;
    }
    agent_status st;
    agent_get_status(a, &st);
    long long sent = (long long)st.next_seq - 1, watermark = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, hub_devices)
      if (strcmp(sim_json_str(d, "id"), c->devices[i]->id) == 0)
        watermark = (long long)sim_json_num(d, "up_seq");
    if (watermark != sent || (long long)st.last_ack != sent) {
      printf("         %s: sent up to seq %lld, hub watermark %lld, acked %llu\n",
             c->devices[i]->id, sent, watermark, (unsigned long long)st.last_ack);
      unaccepted++;
    }
    if (db) {
      long long n = query_int(db, "SELECT count(*) FROM events WHERE device = ?1", c->devices[i]->id);
      long long top = query_int(db, "SELECT coalesce(max(seq), 0) FROM events WHERE device = ?1",
                                c->devices[i]->id);
      if (n != watermark || top != watermark) {
        printf("         %s: events table holds %lld rows up to seq %lld, watermark %lld\n",
               c->devices[i]->id, n, top, watermark);
        not_once++;
      }
    }
  }
  cJSON_Delete(hub_devices);
  int bad = report(unaccepted == 0, "every event the devices sent was accepted (%d devices short)",
                   unaccepted);
  if (db)
    bad += report(not_once == 0, "every accepted event is in the hub's events table once (%d devices differ)",
                  not_once);
  return bad;
}

/* Per rental: the provider's ledger against the hub's books. */
static const char money_sql[] =
    "SELECT count(*) FROM (SELECT r.id, r.state, r.charged_cents AS charged,"
    " r.refunded_cents AS refunded, r.amount_cents + r.fee_cents AS due,"
    " coalesce((SELECT sum(amount_cents) FROM pay.ledger l WHERE l.rental = r.id"
    "  AND l.kind = 'charge' AND l.outcome = 'ok'), 0) AS paid,"
    " coalesce((SELECT sum(amount_cents) FROM pay.ledger l WHERE l.rental = r.id"
    "  AND l.kind = 'refund' AND l.outcome = 'ok'), 0) AS back FROM rentals r)"
    " WHERE paid <> charged OR back <> refunded OR paid > due"
    " OR (state IN ('CANCELLED', 'REJECTED') AND paid <> back)";

static int check_money(const sim_check *c, sqlite3 *db, const cJSON *rows) {
  if (db) {
    char attach[700];
    snprintf(attach, sizeof attach, "ATTACH '%s/payments-sim.db' AS pay", c->hub_state_dir);
    long long bad = -1;
    if (sqlite3_exec(db, attach, NULL, NULL, NULL) == SQLITE_OK) bad = query_int(db, money_sql, NULL);
    if (bad < 0) printf("         the provider's ledger could not be read: %s\n", sqlite3_errmsg(db));
    return report(bad == 0,
                  "no double charge: the provider's ledger and the hub's books agree, "
                  "cancelled and rejected rentals net zero (%lld rentals differ)", bad);
  }
  int bad = 0;
  const cJSON *r;
  cJSON_ArrayForEach(r, rows) {
    const char *state = sim_json_str(r, "state");
    double charged = sim_json_num(r, "charged_cents"), refunded = sim_json_num(r, "refunded_cents");
    if ((!strcmp(state, "CANCELLED") || !strcmp(state, "REJECTED")) && charged != refunded) bad++;
    if (charged > sim_json_num(r, "amount_cents") + sim_json_num(r, "fee_cents")) bad++;
  }
  return report(bad == 0, "no double charge in the hub's books (%d rentals differ; "
                          "give --hub-state for the provider's ledger)", bad);
}

int sim_check_invariants(const sim_check *c) {
  settle(c);
  sqlite3 *db = open_hub_db(c);
  if (c->hub_state_dir && !db) {
    printf("  [FAIL] %s/hub.db cannot be opened\n", c->hub_state_dir);
    return 1;
  }
  cJSON *rows = db ? rentals_from_db(db) : sim_hub_rentals(c->hub_url, NULL);
  if (!rows) {
    fl_db_close(db);
    return report(false, "the hub's rentals could not be read");
  }
  if (!db && cJSON_GetArraySize(rows) >= 1000)
    printf("  [info] the API shows the newest 1000 rentals only: give --hub-state to check all\n");
  int bad = check_rentals(rows);
  bad += check_events(c, db);
  bad += check_money(c, db, rows);
  if (db) {
    long long flagged = query_int(db, "SELECT count(*) FROM events WHERE clock_flag IS NOT NULL", NULL);
    printf("  [info] events the hub flagged for an implausible device clock: %lld\n", flagged);
  }
  fl_db_close(db);
  cJSON_Delete(rows);
  return bad;
}
