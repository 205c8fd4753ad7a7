/* The invariant check that ends every simulator run, against the hub's own
 * views: the operator API, and when the hub's state dir is known, its SQLite
 * files (hub.db and the simulated provider's payments-sim.db, read-only). */
#ifndef SIM_INVARIANTS_H
#define SIM_INVARIANTS_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "device.h"

typedef struct sim_check {
  const char *hub_url;
  const char *hub_state_dir; /* NULL: API-only checks */
  sim_device **devices;      /* every simulated device */
  size_t n_devices;
  double settle_s;           /* how long to wait for outboxes and sagas to finish */
} sim_check;

/* Brings every device back up (ends cuts and power cuts), ticks them until
 * their outboxes are empty and no rental is in flight (at most settle_s),
 * then checks and prints one line per invariant:
 *  - every rental finished or compensated: none left REQUESTED,
 *    PAYMENT_PENDING, CANCEL_REQUESTED or RETURNED;
 *  - no vehicle in two open rentals;
 *  - every event a device sent was accepted, and is in the hub's events
 *    table exactly once (seq 1..watermark, with the hub's state dir);
 *  - no double charge: the provider's ledger and the hub's books agree per
 *    rental, and cancelled or rejected rentals net to zero (with the state
 *    dir; without it, the hub's books alone).
 * Also prints how many events the hub flagged for an implausible clock.
 * Returns the number of violations (0: all held). Call it from the thread
 * that drives the devices. */
int sim_check_invariants(const sim_check *c);

/* Returns every rental as a JSON array of objects (id, vehicle, state,
 * amount_cents, charged_cents, refunded_cents, fee_cents): from the hub's
 * store when hub_state_dir is given, else the newest 1000 from the API.
 * NULL when neither can be read. Caller frees with cJSON_Delete. */
cJSON *sim_hub_rentals(const char *hub_url, const char *hub_state_dir);

#endif
