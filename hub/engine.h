/* The hub engine: one thread, one SQLite writer. MQTT messages, payment
 * results and operator commands arrive on one bounded queue; the engine takes
 * a batch, applies it in one transaction, commits, and only then publishes
 * what the batch produced (acks, decisions, commands, state, notifications)
 * and hands payment jobs to the payment workers. */
#ifndef HUB_ENGINE_H
#define HUB_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet/mqtt.h"
#include "fleet/proto.h"
#include "ops.h"

typedef struct hub_engine hub_engine;
struct hub_config;
struct hub_payments;

/* Health figures for `fleetctl status` and the HTTP API. */
typedef struct hub_health {
  bool mqtt_connected;
  bool ready;              /* store open, recovery done, MQTT connected */
  uint64_t uptime_s;
  uint64_t queue_depth;
  uint64_t events_applied;   /* accepted uplink events */
  uint64_t duplicates;       /* re-delivered events acked again */
  uint64_t rejected;         /* dead-lettered messages */
  uint64_t batches;
  uint64_t shed;             /* messages dropped because the queue was full (resent by devices) */
  uint64_t payments_pending;
  const char *breaker;     /* "closed", "open", "half_open" */
} hub_health;

/* Creates the engine: opens the store at cfg's state dir and runs recovery
 * (sagas left half-way are resumed). Returns FL_OK and *out, or an fl_err.
 * Free with hub_engine_destroy(). */
int hub_engine_create(const struct hub_config *cfg, hub_engine **out);

/* Connects to the broker and starts the engine thread and payment workers. */
int hub_engine_start(hub_engine *e);

/* Runs op on the engine thread and waits (at most timeout_ms) for its result.
 * Returns res->code; FL_ERR_TIMEOUT if the engine did not answer in time. */
int hub_engine_op(hub_engine *e, const hub_op *op, hub_op_result *res, int timeout_ms);

/* Fills *h with current figures (thread-safe). */
void hub_engine_health(hub_engine *e, hub_health *h);

/* Stops taking input, finishes the batch in hand, publishes hub offline and
 * disconnects. NULL is accepted by destroy. */
void hub_engine_stop(hub_engine *e);
void hub_engine_destroy(hub_engine *e);

#endif
