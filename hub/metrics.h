/* The hub's in-process measurements that no store table holds: latency
 * histograms, filled by the room that measures (lock-free, any thread) and
 * written out by GET /metrics (hub/http_metrics.c) in the Prometheus text
 * format. */
#ifndef HUB_METRICS_H
#define HUB_METRICS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#define HUB_HISTOGRAM_BUCKETS 12

/* A histogram of durations: counts per upper bound (cumulative when written). */
typedef struct hub_histogram {
  const char *name; /* fleet_hub_..._seconds */
  const char *help;
  atomic_uint_fast64_t bucket[HUB_HISTOGRAM_BUCKETS]; /* not cumulative; the last is +Inf */
  atomic_uint_fast64_t count;
  atomic_uint_fast64_t sum_us;
} hub_histogram;

/* Payment provider calls, from the worker's call to its result (hub/payment.c). */
extern hub_histogram hub_metrics_payment_call;

/* Batches: from the transaction's begin to its commit (hub/engine.c). */
extern hub_histogram hub_metrics_batch;
/* Inputs applied in batches, over the hub's life (with fleet_hub_batches_total: the mean
 * batch size). */
extern atomic_uint_fast64_t hub_metrics_batch_inputs;

/* Records one duration of us microseconds (negative counts as 0) in h. */
void hub_histogram_observe(hub_histogram *h, int64_t us);

/* Writes h as a Prometheus histogram (HELP, TYPE, _bucket{le}, _sum, _count) to out. */
void hub_histogram_write(hub_histogram *h, FILE *out);

#endif
