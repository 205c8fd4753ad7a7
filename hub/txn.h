/* The transaction context a domain rule acts in: the batch's open store
 * transaction, the batch's effects, the settings and the batch's clock.
 * The engine makes one per batch; unit tests make their own with an
 * in-memory store. Domain rules receive it; they never see the engine. */
#ifndef HUB_TXN_H
#define HUB_TXN_H

#include <stdbool.h>
#include <stdint.h>

#include "effects.h"
#include "hub_config.h"
#include "store.h"
#include "strmap.h"

typedef struct hub_txn {
  hub_store *store;       /* its transaction is open */
  hub_effects *fx;        /* held until commit */
  const hub_config *cfg;
  int64_t now_ms;         /* the hub's time for the whole batch */
  /* The payment circuit breaker: true when a new payment may start now;
   * false with *retry_after_s when it is open. NULL: always true. */
  bool (*pay_admit)(void *ctx, uint32_t *retry_after_s);
  void *pay_ctx;
  /* When each vehicle's telemetry was last published (hub memory kept
   * across batches; NULL: publish every reading). */
  strmap *telemetry_published;
  /* Stations whose counts changed in this batch: their station_state is
   * published once, at the batch's end (publish_stations). NULL: never. */
  strmap *stations_changed;
  /* The device event being applied (NULL: none) and its seq: a decision to
   * that device carries seq as its ack (decision.upto), since the event
   * commits with it. */
  const char *event_device;
  uint64_t event_seq;
} hub_txn;

/* Asks the breaker (see pay_admit). */
static inline bool txn_payment_admit(hub_txn *t, uint32_t *retry_after_s) {
  *retry_after_s = 0;
  return !t->pay_admit || t->pay_admit(t->pay_ctx, retry_after_s);
}

/* The input being handled: who sent it and where its answers go. */
typedef struct hub_origin {
  const char *device;      /* sending device */
  const char *reply_topic; /* where decisions for this request go */
} hub_origin;

#endif
