/* Payment worker pool, its bounded queue and the circuit breaker. */
#include "payment.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "breaker.h"
#include "hub_config.h"
#include "metrics.h"

struct job_node {
  pay_job job;
  struct job_node *next;
};

/* A rental or booking admitted holds a place in the queue from its admission
 * (in the engine's transaction) until its charge is submitted (after the
 * commit); a place whose charge never comes (the input was rolled back) is
 * given up this long after the last admission. */
#define RESERVE_LEASE_US INT64_C(1000000)

struct hub_payments {
  pay_provider provider;
  pay_done_fn done;
  void *ctx;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct job_node *head, *tail;
  uint64_t pending;       /* queued or in a call */
  uint64_t queued;        /* waiting for a worker */
  int busy;               /* workers in a call */
  int queue_max;          /* [payment] queue_max */
  int reserved;           /* places held by admitted payments not yet submitted */
  int64_t reserved_until_us;
  int64_t call_avg_us;    /* recent call duration (moving average), for retry_after */
  bool stopping;
  int n_workers;
  pthread_t *workers;
  hub_breaker breaker;    /* under lock */
};

/* Returns true for a job that a hub_payments_admit() made room for: the
 * first charge of a rental or the deposit of a booking (and their retries,
 * which then free a place no one holds: harmless). */
static bool job_was_admitted(const pay_job *job) {
  return job->kind == PAY_CHARGE &&
         (strcmp(job->step, "charge") == 0 || strcmp(job->step, "deposit") == 0);
}

static void *worker_main(void *arg) {
  hub_payments *p = arg;
  pthread_mutex_lock(&p->lock);
  for (;;) {
    while (!p->head && !p->stopping) pthread_cond_wait(&p->cond, &p->lock);
    if (p->stopping) break;
    struct job_node *n = p->head;
    p->head = n->next;
    if (!p->head) p->tail = NULL;
    p->queued--;
    p->busy++;
    pthread_mutex_unlock(&p->lock);

    pay_result res;
    memset(&res, 0, sizeof res);
    res.job = n->job;
    int64_t t0 = fl_mono_us();
    p->provider.call(p->provider.impl, &n->job, &res);
    int64_t now = fl_mono_us();
    hub_histogram_observe(&hub_metrics_payment_call, now - t0);
    free(n);

    pthread_mutex_lock(&p->lock);
    p->busy--;
    p->call_avg_us = p->call_avg_us ? (p->call_avg_us * 7 + (now - t0)) / 8 : now - t0;
    hub_breaker_record(&p->breaker, res.outcome == PAY_FAILED, now - t0, now);
    pthread_mutex_unlock(&p->lock);
    p->done(p->ctx, &res);
    pthread_mutex_lock(&p->lock);
    p->pending--;
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

int hub_payments_create(const hub_config *cfg, pay_provider provider, pay_done_fn done,
                        void *ctx, hub_payments **out) {
  hub_payments *p = calloc(1, sizeof *p);
  if (!p) return FL_ERR_NOMEM;
  p->provider = provider;
  p->done = done;
  p->ctx = ctx;
  p->queue_max = cfg->payment_queue_max;
  hub_breaker_cfg bc = {
      .failures = cfg->breaker_failures,
      .open_s = cfg->breaker_open_s,
      .slow_ms = cfg->breaker_slow_ms,
      .slow_share = cfg->breaker_slow_share,
      .window = cfg->breaker_window,
      /* a trial waits in the queue and in its call; one that never reports
       * (its rental was rolled back) must not keep the breaker half-open */
      .trial_lease_us = ((int64_t)cfg->breaker_open_s * 1000 + cfg->payment_timeout_ms) * 1000,
  };
  hub_breaker_init(&p->breaker, &bc);
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->cond, NULL);
  p->workers = calloc((size_t)cfg->payment_workers, sizeof *p->workers);
  if (!p->workers) {
    hub_payments_destroy(p);
    return FL_ERR_NOMEM;
  }
  for (int i = 0; i < cfg->payment_workers; i++) {
    if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0) break;
    p->n_workers++;
  }
  if (p->n_workers == 0) {
    hub_payments_destroy(p);
    return FL_ERR_NOMEM;
  }
  *out = p;
  return FL_OK;
}

int hub_payments_submit(hub_payments *p, const pay_job *job) {
  struct job_node *n = malloc(sizeof *n);
  if (!n) return FL_ERR_NOMEM;
  n->job = *job;
  n->next = NULL;
  pthread_mutex_lock(&p->lock);
  if (p->tail)
    p->tail->next = n;
  else
    p->head = n;
  p->tail = n;
  p->pending++;
  p->queued++;
  if (job_was_admitted(job) && p->reserved > 0) p->reserved--;
  pthread_cond_signal(&p->cond);
  pthread_mutex_unlock(&p->lock);
  return FL_OK;
}

/* Returns the seconds the queue needs to drain at the recent call duration
 * (at least 1). Lock held. */
static uint32_t drain_s(const hub_payments *p) {
  int64_t us = p->call_avg_us * (int64_t)(p->queued + (uint64_t)p->reserved + 1) / p->n_workers;
  int64_t s = us / 1000000 + 1;
  return (uint32_t)(s > 300 ? 300 : s);
}

bool hub_payments_admit(hub_payments *p, uint32_t *retry_after_s) {
  pthread_mutex_lock(&p->lock);
  int64_t now = fl_mono_us();
  if (p->reserved && now >= p->reserved_until_us) p->reserved = 0; /* rolled back */
  /* the jobs that will wait for a worker: queued, and admitted ones on
   * their way, less the workers that are free to take them at once */
  int64_t waiting = (int64_t)p->queued + p->reserved - (p->n_workers - p->busy);
  bool ok;
  if (waiting >= p->queue_max) {
    *retry_after_s = drain_s(p);
    ok = false;
  } else {
    ok = hub_breaker_admit(&p->breaker, now, retry_after_s);
  }
  if (ok) {
    p->reserved++;
    p->reserved_until_us = now + RESERVE_LEASE_US;
  }
  pthread_mutex_unlock(&p->lock);
  return ok;
}

const char *hub_payments_breaker(hub_payments *p) {
  pthread_mutex_lock(&p->lock);
  const char *n = hub_breaker_state_name(hub_breaker_state_at(&p->breaker, fl_mono_us()));
  pthread_mutex_unlock(&p->lock);
  return n;
}

uint64_t hub_payments_pending(hub_payments *p) {
  pthread_mutex_lock(&p->lock);
  uint64_t n = p->pending;
  pthread_mutex_unlock(&p->lock);
  return n;
}

void hub_payments_destroy(hub_payments *p) {
  if (!p) return;
  pthread_mutex_lock(&p->lock);
  p->stopping = true;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  for (int i = 0; i < p->n_workers; i++) pthread_join(p->workers[i], NULL);
  for (struct job_node *n = p->head, *next; n; n = next) {
    next = n->next;
    free(n);
  }
  if (p->provider.destroy) p->provider.destroy(p->provider.impl);
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->cond);
  free(p->workers);
  free(p);
}
