/* The payment breaker (hub/breaker.c) driven step by step with a made-up
 * clock, and the payment queue's admission (hub/payment.c) with a provider
 * whose calls are held until the test lets them go. */
#include <pthread.h>
#include <string.h>

#include "breaker.h"
#include "fleet/clock.h"
#include "fleet/error.h"
#include "hub_config.h"
#include "payment.h"
#include "unit.h"

#define S INT64_C(1000000)
#define MS INT64_C(1000)

static hub_breaker_cfg cfg_of(int failures, int open_s, int slow_ms, double share, int window) {
  return (hub_breaker_cfg){.failures = failures, .open_s = open_s, .slow_ms = slow_ms,
                           .slow_share = share, .window = window, .trial_lease_us = 30 * S};
}

static void test_failures_open_and_a_trial_closes(void) {
  hub_breaker_cfg c = cfg_of(3, 10, 0, 0.5, 20);
  hub_breaker b;
  hub_breaker_init(&b, &c);
  uint32_t ra = 0;
  int64_t t = 100 * S;
  hub_breaker_record(&b, true, 5 * MS, t);
  hub_breaker_record(&b, false, 5 * MS, t); /* a success breaks the run */
  hub_breaker_record(&b, true, 5 * MS, t);
  hub_breaker_record(&b, true, 5 * MS, t);
  CHECK(hub_breaker_state_at(&b, t) == BREAKER_CLOSED);
  CHECK(hub_breaker_admit(&b, t, &ra));
  hub_breaker_record(&b, true, 5 * MS, t);
  CHECK(hub_breaker_state_at(&b, t) == BREAKER_OPEN);
  CHECK(!hub_breaker_admit(&b, t + 2500 * MS, &ra) && ra == 8);
  hub_breaker_record(&b, false, 5 * MS, t + 3 * S); /* in flight when it opened: no change */
  CHECK(hub_breaker_state_at(&b, t + 3 * S) == BREAKER_OPEN);
  t += 10 * S;
  CHECK(hub_breaker_state_at(&b, t) == BREAKER_HALF_OPEN);
  CHECK(hub_breaker_admit(&b, t, &ra));                   /* the trial */
  CHECK(!hub_breaker_admit(&b, t + S, &ra) && ra == 1);   /* others: come back in 1 s */
  hub_breaker_record(&b, false, 5 * MS, t + 2 * S);
  CHECK(hub_breaker_state_at(&b, t + 2 * S) == BREAKER_CLOSED);
  CHECK(hub_breaker_admit(&b, t + 2 * S, &ra));
}

static void test_slow_calls_open_it(void) {
  /* 2 slow calls among the last 4 (slow: 1 s or more) open it */
  hub_breaker_cfg c = cfg_of(5, 2, 1000, 0.5, 4);
  hub_breaker b;
  hub_breaker_init(&b, &c);
  uint32_t ra = 0;
  int64_t t = 50 * S;
  hub_breaker_record(&b, false, 1500 * MS, t); /* slow, but alone */
  for (int i = 0; i < 3; i++) hub_breaker_record(&b, false, 10 * MS, t);
  hub_breaker_record(&b, false, 999 * MS, t); /* the slow one left the window */
  CHECK(hub_breaker_state_at(&b, t) == BREAKER_CLOSED);
  hub_breaker_record(&b, false, 2000 * MS, t);
  CHECK(hub_breaker_state_at(&b, t) == BREAKER_CLOSED);
  hub_breaker_record(&b, false, 1000 * MS, t); /* two in the window: open */
  CHECK(hub_breaker_state_at(&b, t) == BREAKER_OPEN);
  CHECK(!hub_breaker_admit(&b, t, &ra) && ra == 3);
  /* half-open: a slow trial opens it again, although it succeeded */
  t += 2 * S;
  CHECK(hub_breaker_admit(&b, t, &ra));
  hub_breaker_record(&b, false, 1200 * MS, t + 1200 * MS);
  CHECK(hub_breaker_state_at(&b, t + 1200 * MS) == BREAKER_OPEN);
  /* a fast trial closes it, with an empty window */
  t += 1200 * MS + 2 * S;
  CHECK(hub_breaker_admit(&b, t, &ra));
  hub_breaker_record(&b, false, 20 * MS, t);
  CHECK(hub_breaker_state_at(&b, t) == BREAKER_CLOSED);
  hub_breaker_record(&b, false, 1500 * MS, t);
  CHECK(hub_breaker_state_at(&b, t) == BREAKER_CLOSED);
}

static void test_slow_off_and_trial_lease(void) {
  hub_breaker_cfg c = cfg_of(1, 1, 0, 0.5, 2); /* slow_ms 0: no call is slow */
  c.trial_lease_us = 5 * S;
  hub_breaker b;
  hub_breaker_init(&b, &c);
  uint32_t ra = 0;
  for (int i = 0; i < 10; i++) hub_breaker_record(&b, false, 60 * S, 0);
  CHECK(hub_breaker_state_at(&b, 0) == BREAKER_CLOSED);
  hub_breaker_record(&b, true, MS, 0);
  CHECK(hub_breaker_state_at(&b, 0) == BREAKER_OPEN);
  CHECK(hub_breaker_admit(&b, S, &ra));                /* the trial... */
  CHECK(!hub_breaker_admit(&b, 5 * S, &ra));
  CHECK(hub_breaker_admit(&b, 6 * S + 1, &ra));        /* ...never reported: replaced */
  CHECK(strcmp(hub_breaker_state_name(BREAKER_HALF_OPEN), "half_open") == 0);
}

/* ---- the queue: a provider whose calls wait until released --------------- */

struct held {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int in_call, released;
};

static void held_call(void *impl, const pay_job *job, pay_result *res) {
  struct held *h = impl;
  pthread_mutex_lock(&h->lock);
  h->in_call++;
  pthread_cond_broadcast(&h->cond);
  while (!h->released) pthread_cond_wait(&h->cond, &h->lock);
  h->in_call--;
  pthread_mutex_unlock(&h->lock);
  res->outcome = PAY_OK;
  res->amount_cents = job->amount_cents;
}

static int done_count;
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_done(void *ctx, const pay_result *res) {
  (void)ctx;
  (void)res;
  pthread_mutex_lock(&done_lock);
  done_count++;
  pthread_mutex_unlock(&done_lock);
}

static pay_job job_of(pay_kind kind, const char *owner, const char *step) {
  pay_job j;
  memset(&j, 0, sizeof j);
  j.kind = kind;
  snprintf(j.owner, sizeof j.owner, "%s", owner);
  snprintf(j.step, sizeof j.step, "%s", step);
  snprintf(j.idem_key, sizeof j.idem_key, "%s:%s", owner, step);
  snprintf(j.customer, sizeof j.customer, "C1");
  j.amount_cents = 100;
  return j;
}

/* Waits until n calls are in the provider (at most 5 s). */
static bool wait_in_call(struct held *h, int n) {
  for (int i = 0; i < 500; i++) {
    pthread_mutex_lock(&h->lock);
    int in = h->in_call;
    pthread_mutex_unlock(&h->lock);
    if (in == n) return true;
    fl_sleep_ms(10);
  }
  return false;
}

static void test_queue_bound(void) {
  hub_config cfg;
  char err[256];
  CHECK(hub_config_load(NULL, &cfg, err, sizeof err) == FL_OK);
  cfg.payment_workers = 1;
  cfg.payment_queue_max = 2;
  struct held h = {.in_call = 0, .released = 0};
  pthread_mutex_init(&h.lock, NULL);
  pthread_cond_init(&h.cond, NULL);
  pay_provider prov = {.name = "held", .impl = &h, .call = held_call, .destroy = NULL};
  hub_payments *p = NULL;
  CHECK(hub_payments_create(&cfg, prov, on_done, NULL, &p) == FL_OK);
  if (!p) return;
  uint32_t ra = 0;
  /* admitted and submitted one by one: the worker takes the first, two wait */
  const char *owners[] = {"R1", "R2", "R3"};
  for (int i = 0; i < 3; i++) {
    CHECK(hub_payments_admit(p, &ra));
    pay_job j = job_of(PAY_CHARGE, owners[i], "charge");
    CHECK(hub_payments_submit(p, &j) == FL_OK);
    if (i == 0) CHECK(wait_in_call(&h, 1));
  }
  CHECK(hub_payments_pending(p) == 3);
  CHECK(!hub_payments_admit(p, &ra) && ra >= 1); /* two wait: full */
  CHECK(strcmp(hub_payments_breaker(p), "closed") == 0);
  /* compensation and fees go in beyond the bound */
  pay_job refund = job_of(PAY_REFUND, "R0", "refund");
  pay_job fee = job_of(PAY_CHARGE, "R9", "fee");
  CHECK(hub_payments_submit(p, &refund) == FL_OK);
  CHECK(hub_payments_submit(p, &fee) == FL_OK);
  CHECK(hub_payments_pending(p) == 5);
  CHECK(!hub_payments_admit(p, &ra));
  /* the queue drains: admitted again */
  pthread_mutex_lock(&h.lock);
  h.released = 1;
  pthread_cond_broadcast(&h.cond);
  pthread_mutex_unlock(&h.lock);
  for (int i = 0; i < 500 && hub_payments_pending(p) > 0; i++) fl_sleep_ms(10);
  CHECK(hub_payments_pending(p) == 0);
  pthread_mutex_lock(&done_lock);
  CHECK(done_count == 5);
  pthread_mutex_unlock(&done_lock);
  CHECK(hub_payments_admit(p, &ra));
  hub_payments_destroy(p);
  pthread_mutex_destroy(&h.lock);
  pthread_cond_destroy(&h.cond);
}

static void test_admitted_places_are_held(void) {
  hub_config cfg;
  char err[256];
  CHECK(hub_config_load(NULL, &cfg, err, sizeof err) == FL_OK);
  cfg.payment_workers = 1;
  cfg.payment_queue_max = 2;
  struct held h = {.in_call = 0, .released = 1};
  pthread_mutex_init(&h.lock, NULL);
  pthread_cond_init(&h.cond, NULL);
  pay_provider prov = {.name = "held", .impl = &h, .call = held_call, .destroy = NULL};
  hub_payments *p = NULL;
  CHECK(hub_payments_create(&cfg, prov, on_done, NULL, &p) == FL_OK);
  if (!p) return;
  uint32_t ra = 0;
  /* one batch admits before anything is submitted: 1 for the free worker,
   * 2 to wait, then full */
  CHECK(hub_payments_admit(p, &ra));
  CHECK(hub_payments_admit(p, &ra));
  CHECK(hub_payments_admit(p, &ra));
  CHECK(!hub_payments_admit(p, &ra) && ra >= 1);
  /* a rolled-back batch never submits: its places are given up after 1 s */
  fl_sleep_ms(1100);
  CHECK(hub_payments_admit(p, &ra));
  hub_payments_destroy(p);
  pthread_mutex_destroy(&h.lock);
  pthread_cond_destroy(&h.cond);
}

int main(void) {
  test_failures_open_and_a_trial_closes();
  test_slow_calls_open_it();
  test_slow_off_and_trial_lease();
  test_queue_bound();
  test_admitted_places_are_held();
  return unit_report("hub_breaker");
}
