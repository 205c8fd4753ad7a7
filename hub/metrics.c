/* Latency histograms (metrics.h). Bucket bounds are the same for every
 * histogram: 1 ms to 10 s, roughly 1-2.5-5 per decade. */
#include "metrics.h"

static const double bounds_s[HUB_HISTOGRAM_BUCKETS - 1] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                           0.1,   0.25,   0.5,   1.0,  10.0};

hub_histogram hub_metrics_batch = {
    .name = "fleet_hub_batch_seconds",
    .help = "Engine batches: from the transaction's begin to its commit, in seconds.",
};
atomic_uint_fast64_t hub_metrics_batch_inputs;

hub_histogram hub_metrics_payment_call = {
    .name = "fleet_hub_payment_call_seconds",
    .help = "Payment provider calls: from a worker's call to its result, in seconds.",
};

void hub_histogram_observe(hub_histogram *h, int64_t us) {
  if (us < 0) us = 0;
  int i = 0;
  while (i < HUB_HISTOGRAM_BUCKETS - 1 && (double)us / 1e6 > bounds_s[i]) i++;
  atomic_fetch_add(&h->bucket[i], 1);
  atomic_fetch_add(&h->sum_us, (uint_fast64_t)us);
  atomic_fetch_add(&h->count, 1);
}

void hub_histogram_write(hub_histogram *h, FILE *out) {
  fprintf(out, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name);
  /* count first: a bucket observed meanwhile may make the buckets exceed it
   * by a little, never fall short of it, so le="+Inf" is taken as count */
  uint64_t count = atomic_load(&h->count), sum_us = atomic_load(&h->sum_us), cumulative = 0;
  for (int i = 0; i < HUB_HISTOGRAM_BUCKETS - 1; i++) {
    cumulative += atomic_load(&h->bucket[i]);
    if (cumulative > count) cumulative = count;
    fprintf(out, "%s_bucket{le=\"%g\"} %llu\n", h->name, bounds_s[i], (unsigned long long)cumulative);
  }
  fprintf(out, "%s_bucket{le=\"+Inf\"} %llu\n", h->name, (unsigned long long)count);
  fprintf(out, "%s_sum %.6f\n%s_count %llu\n", h->name, (double)sum_us / 1e6, h->name,
          (unsigned long long)count);
}
