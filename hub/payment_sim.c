/* The built-in simulated payment provider. It behaves like a real one where
 * it matters to the saga: it is slow (latency), it declines, it fails, and it
 * deduplicates by idempotency key, with its ledger in its own SQLite file so
 * that the deduplication survives a hub crash. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/clock.h"
#include "fleet/db.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "hub_config.h"
#include "payment.h"

struct pay_sim {
  sqlite3 *db;
  sqlite3_stmt *find, *insert, *charged;
  pthread_mutex_t lock;
  int latency_ms;
  double decline_rate, failure_rate;
  unsigned seed;
};

static const char sim_schema[] =
    "CREATE TABLE IF NOT EXISTS ledger ("
    "  idem_key TEXT PRIMARY KEY, kind TEXT NOT NULL, rental TEXT NOT NULL,"
    "  customer TEXT NOT NULL, amount_cents INTEGER NOT NULL, outcome TEXT NOT NULL,"
    "  ref TEXT NOT NULL, reason TEXT, created_ms INTEGER NOT NULL)";

/* Returns a uniform number in [0, 1) from the provider's own generator. */
static double sim_random(struct pay_sim *s) { return (double)rand_r(&s->seed) / ((double)RAND_MAX + 1.0); }

/* Looks key up in the ledger. Returns 1 and fills res if it was seen, 0 if
 * not, or a negative fl_err when the ledger cannot be read (then nothing may
 * be charged: the key might be in it). */
static int sim_find(struct pay_sim *s, const char *key, pay_result *res) {
  sqlite3_bind_text(s->find, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s->find), found = 0;
  if (rc == SQLITE_ROW) {
    const char *outcome = (const char *)sqlite3_column_text(s->find, 0);
    res->outcome = strcmp(outcome, "ok") == 0 ? PAY_OK : PAY_DECLINED;
    snprintf(res->ref, sizeof res->ref, "%s", (const char *)sqlite3_column_text(s->find, 1));
    const unsigned char *reason = sqlite3_column_text(s->find, 2);
    snprintf(res->reason, sizeof res->reason, "%s", reason ? (const char *)reason : "");
    res->amount_cents = res->outcome == PAY_OK ? sqlite3_column_int64(s->find, 3) : 0;
    found = 1;
  } else if (rc != SQLITE_DONE) {
    found = fl_db_err(rc) != FL_OK ? fl_db_err(rc) : FL_ERR_DB;
  }
  sqlite3_reset(s->find);
  sqlite3_clear_bindings(s->find);
  return found;
}

/* Sets *amount to what was charged under key (0 if nothing). Returns FL_OK
 * or the fl_err of a ledger that cannot be read. */
static int sim_charged(struct pay_sim *s, const char *key, int64_t *amount) {
  sqlite3_bind_text(s->charged, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s->charged);
  *amount = rc == SQLITE_ROW ? sqlite3_column_int64(s->charged, 0) : 0;
  sqlite3_reset(s->charged);
  sqlite3_clear_bindings(s->charged);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? FL_OK : fl_db_err(rc) ? fl_db_err(rc) : FL_ERR_DB;
}

/* Writes the outcome to the ledger. Returns FL_OK or the store's fl_err: then
 * no money moved, for the ledger is the provider's record of it. */
static int sim_record(struct pay_sim *s, const pay_job *job, const pay_result *res) {
  sqlite3_stmt *st = s->insert;
  sqlite3_bind_text(st, 1, job->idem_key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, job->kind == PAY_CHARGE ? "charge" : "refund", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, job->owner, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, job->customer, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, res->amount_cents);
  sqlite3_bind_text(st, 6, res->outcome == PAY_OK ? "ok" : "declined", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 7, res->ref, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 8, res->reason, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 9, fl_now_ms());
  int err = fl_db_step_done(st);
  return err;
}

/* Turns res into a provider failure (the saga retries with the same key). */
static void sim_failed(pay_result *res, const char *what, int err) {
  res->outcome = PAY_FAILED;
  res->amount_cents = 0;
  res->ref[0] = '\0';
  snprintf(res->reason, sizeof res->reason, "payment provider error (simulated): %s: %s", what,
           fl_strerror(err));
}

static void sim_call(void *impl, const pay_job *job, pay_result *res) {
  struct pay_sim *s = impl;
  if (s->latency_ms > 0) fl_sleep_ms(s->latency_ms);
  pthread_mutex_lock(&s->lock);
  int seen = sim_find(s, job->idem_key, res);
  if (seen < 0) {
    pthread_mutex_unlock(&s->lock);
    sim_failed(res, "ledger not readable", seen);
    return;
  }
  if (seen) {
    pthread_mutex_unlock(&s->lock);
    return; /* the same key answers the same, and moves no money again */
  }
  if (sim_random(s) < s->failure_rate) {
    pthread_mutex_unlock(&s->lock);
    res->outcome = PAY_FAILED;
    snprintf(res->reason, sizeof res->reason, "payment provider error (simulated)");
    return;
  }
  static uint64_t ref_counter;
  snprintf(res->ref, sizeof res->ref, "sim-%llu-%lld", (unsigned long long)++ref_counter,
           (long long)fl_now_ms());
  if (job->kind == PAY_CHARGE) {
    bool decline = strstr(job->customer, "nofunds") != NULL || sim_random(s) < s->decline_rate;
    res->outcome = decline ? PAY_DECLINED : PAY_OK;
    res->amount_cents = decline ? 0 : job->amount_cents;
    if (decline) snprintf(res->reason, sizeof res->reason, "card declined: insufficient funds");
  } else {
    /* A refund returns at most what the referenced charge took. */
    int64_t charged = 0;
    int err = sim_charged(s, job->refund_of, &charged);
    if (err != FL_OK) {
      pthread_mutex_unlock(&s->lock);
      sim_failed(res, "ledger not readable", err);
      return;
    }
    res->outcome = PAY_OK;
    res->amount_cents = job->amount_cents < charged ? job->amount_cents : charged;
  }
  int err = sim_record(s, job, res);
  pthread_mutex_unlock(&s->lock);
  if (err != FL_OK) {
    /* Not in the ledger, so not charged: an answer of "ok" here would be a
     * charge the provider has no record of, and the same key would charge
     * again. */
    fl_warn("payment sim: %s %s not recorded: %s", job->idem_key,
            job->kind == PAY_CHARGE ? "charge" : "refund", fl_strerror(err));
    sim_failed(res, "ledger write failed", err);
  }
}

static void sim_destroy(void *impl) {
  struct pay_sim *s = impl;
  if (!s) return;
  sqlite3_finalize(s->find);
  sqlite3_finalize(s->insert);
  sqlite3_finalize(s->charged);
  fl_db_close(s->db);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

int pay_sim_create(const hub_config *cfg, pay_provider *out) {
  struct pay_sim *s = calloc(1, sizeof *s);
  if (!s) return FL_ERR_NOMEM;
  pthread_mutex_init(&s->lock, NULL);
  s->latency_ms = cfg->sim_latency_ms;
  s->decline_rate = cfg->sim_decline_rate;
  s->failure_rate = cfg->sim_failure_rate;
  s->seed = (unsigned)fl_mono_us();
  char path[512];
  snprintf(path, sizeof path, "%s/payments-sim.db", cfg->state_dir);
  int rc = fl_db_open(path, cfg->durability, false, &s->db);
  if (rc == FL_OK) rc = fl_db_exec(s->db, sim_schema);
  if (rc == FL_OK)
    rc = fl_db_prepare(s->db,
                       "SELECT outcome, ref, reason, amount_cents FROM ledger WHERE idem_key = ?1",
                       &s->find);
  if (rc == FL_OK)
    rc = fl_db_prepare(s->db,
                       "INSERT INTO ledger(idem_key, kind, rental, customer, amount_cents, "
                       "outcome, ref, reason, created_ms) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)",
                       &s->insert);
  if (rc == FL_OK)
    rc = fl_db_prepare(s->db,
                       "SELECT amount_cents FROM ledger WHERE idem_key = ?1 AND outcome = 'ok'",
                       &s->charged);
  if (rc != FL_OK) {
    sim_destroy(s);
    return rc;
  }
  *out = (pay_provider){.name = "sim", .impl = s, .call = sim_call, .destroy = sim_destroy};
  return FL_OK;
}
