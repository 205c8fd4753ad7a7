/* Payment worker pool and circuit breaker. */
#include "payment.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "hub_config.h"

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

struct job_node {
  pay_job job;
  struct job_node *next;
};

struct hub_payments {
  pay_provider provider;
  pay_done_fn done;
  void *ctx;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct job_node *head, *tail;
  uint64_t pending;
  bool stopping;
  int n_workers;
  pthread_t *workers;
  /* breaker, under lock */
  enum breaker_state breaker;
  int failures, failure_threshold, open_s;
  int64_t open_until_us;
  bool trial_out;       /* half-open: one trial call admitted... */
  int64_t trial_end_us; /* ...whose answer is due by then, or another is admitted */
  int64_t trial_lease_us;
};

/* Moves an open breaker to half-open when its time is up. Lock held. */
static void breaker_tick(hub_payments *p) {
  if (p->breaker == BREAKER_OPEN && fl_mono_us() >= p->open_until_us) {
    p->breaker = BREAKER_HALF_OPEN;
    p->trial_out = false;
    fl_info("payment breaker=half_open");
  }
}

/* Records one call's outcome in the breaker. Called with lock held.
 * An open breaker stays open for open_s whatever finishes meanwhile (calls
 * that were in flight when it opened, saga retries): only after that does a
 * result decide, the first success closing it, a failure opening it again. */
static void breaker_record(hub_payments *p, pay_outcome outcome) {
  breaker_tick(p);
  if (p->breaker == BREAKER_OPEN) return;
  if (outcome == PAY_FAILED) {
    p->failures++;
    if (p->breaker == BREAKER_HALF_OPEN || p->failures >= p->failure_threshold) {
      p->breaker = BREAKER_OPEN;
      p->open_until_us = fl_mono_us() + (int64_t)p->open_s * 1000000;
      p->trial_out = false;
      fl_warn("payment breaker=open failures=%d open_s=%d", p->failures, p->open_s);
    }
  } else {
    if (p->breaker != BREAKER_CLOSED) fl_info("payment breaker=closed");
    p->breaker = BREAKER_CLOSED;
    p->failures = 0;
    p->trial_out = false;
  }
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
    pthread_mutex_unlock(&p->lock);

    pay_result res;
    memset(&res, 0, sizeof res);
    res.job = n->job;
    p->provider.call(p->provider.impl, &n->job, &res);
    free(n);

    pthread_mutex_lock(&p->lock);
    breaker_record(p, res.outcome);
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
  p->failure_threshold = cfg->breaker_failures;
  p->open_s = cfg->breaker_open_s;
  /* a trial waits in the queue and in its call; one that never reports
   * (its rental was rolled back) must not keep the breaker half-open */
  p->trial_lease_us = ((int64_t)cfg->breaker_open_s * 1000 + cfg->payment_timeout_ms) * 1000;
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
  pthread_cond_signal(&p->cond);
  pthread_mutex_unlock(&p->lock);
  return FL_OK;
}

bool hub_payments_admit(hub_payments *p, uint32_t *retry_after_s) {
  pthread_mutex_lock(&p->lock);
  breaker_tick(p);
  bool ok = true;
  if (p->breaker == BREAKER_OPEN) {
    int64_t left_us = p->open_until_us - fl_mono_us();
    *retry_after_s = (uint32_t)(left_us / 1000000 + 1);
    ok = false;
  } else if (p->breaker == BREAKER_HALF_OPEN) {
    int64_t now = fl_mono_us();
    if (p->trial_out && now < p->trial_end_us) {
      *retry_after_s = 1;
      ok = false;
    } else {
      p->trial_out = true;
      p->trial_end_us = now + p->trial_lease_us;
    }
  }
  pthread_mutex_unlock(&p->lock);
  return ok;
}

const char *hub_payments_breaker(hub_payments *p) {
  static const char *const names[] = {"closed", "open", "half_open"};
  pthread_mutex_lock(&p->lock);
  breaker_tick(p);
  const char *n = names[p->breaker];
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
