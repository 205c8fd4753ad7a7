/* Payments: one provider interface, a pool of worker threads that call it off
 * the engine thread, and a circuit breaker around it.
 *
 * A job carries an idempotency key derived from the rental and the saga step
 * ("R-17:charge"). Providers promise that the same key moves money at most
 * once and returns the same answer again, which is what makes a restart safe:
 * the saga records "calling" before the call and calls again after a crash. */
#ifndef HUB_PAYMENT_H
#define HUB_PAYMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "fleet/proto.h"

struct hub_config;

typedef enum pay_kind { PAY_CHARGE, PAY_REFUND } pay_kind;
typedef enum pay_outcome { PAY_OK, PAY_DECLINED, PAY_FAILED } pay_outcome;

typedef struct pay_job {
  pay_kind kind;
  char owner[FL_ID_MAX + 1];        /* the rental or booking whose saga step this is */
  char step[16];                    /* saga step that asked: charge, fee, deposit, refund */
  char idem_key[FL_ID_MAX + 24];
  char refund_of[FL_ID_MAX + 24];   /* refunds: idempotency key of the charge */
  char customer[FL_ID_MAX + 1];
  int64_t amount_cents;
} pay_job;

typedef struct pay_result {
  pay_job job;
  pay_outcome outcome;
  char ref[FL_ID_MAX + 1];          /* provider's reference */
  char reason[FL_TEXT_MAX + 1];     /* declines and failures */
  int64_t amount_cents;             /* money actually moved */
} pay_result;

/* A payment provider. call() blocks; it must be safe from several threads. */
typedef struct pay_provider {
  const char *name;
  void *impl;
  void (*call)(void *impl, const pay_job *job, pay_result *res);
  void (*destroy)(void *impl);
} pay_provider;

/* The built-in simulated provider: latency, decline and failure rates from
 * cfg, a ledger in <state_dir>/payments-sim.db so that it deduplicates by
 * idempotency key across hub restarts. Customers whose id contains "nofunds"
 * are always declined (like a test card number). Returns FL_OK and *out. */
int pay_sim_create(const struct hub_config *cfg, pay_provider *out);

/* The HTTP provider: a client of the protocol in docs/payments.md at
 * cfg->payment_url, each call bounded by cfg->payment_timeout_ms; it sends
 * the job's idempotency key as the Idempotency-Key header, and the provider
 * deduplicates. Any answer but 200 or 402 (and no answer) is PAY_FAILED with
 * the reason. Returns FL_OK and *out, FL_ERR_CONFIG for a url that is not
 * http(s), or FL_ERR_NOMEM. */
int pay_http_create(const struct hub_config *cfg, pay_provider *out);

typedef struct hub_payments hub_payments;
typedef void (*pay_done_fn)(void *ctx, const pay_result *res);

/* Starts cfg->payment_workers threads calling provider; done(ctx, res) runs
 * on a worker thread for every submitted job. Takes ownership of provider. */
int hub_payments_create(const struct hub_config *cfg, pay_provider provider, pay_done_fn done,
                        void *ctx, hub_payments **out);

/* Queues job, whatever the queue holds (a charge was admitted before; a
 * refund or fee must not be lost); returns FL_OK or FL_ERR_NOMEM. */
int hub_payments_submit(hub_payments *p, const pay_job *job);

/* Asks whether a new rental or booking may start paying now: the queue and
 * the breaker (breaker.h). Returns false with *retry_after_s (>= 1) when
 * cfg->payment_queue_max jobs would wait for a worker (the seconds the queue
 * takes to drain at the recent call duration), when the breaker is open (the
 * seconds it stays open) or half-open with its trial out (1). Returns true
 * when closed (or half-open and this caller gets the trial), and then holds a
 * place in the queue for the charge until it is submitted (or for 1 s, if it
 * never is: its transaction was rolled back). Refunds and fees are not asked
 * about: hub_payments_submit() takes them beyond the bound. */
bool hub_payments_admit(hub_payments *p, uint32_t *retry_after_s);

/* Returns "closed", "open" or "half_open". */
const char *hub_payments_breaker(hub_payments *p);

/* Returns the number of jobs queued or in a call. */
uint64_t hub_payments_pending(hub_payments *p);

/* Stops the workers (jobs still queued are dropped: their saga steps stay
 * "calling" and are resumed at the next start) and frees. NULL ok. */
void hub_payments_destroy(hub_payments *p);

#endif
