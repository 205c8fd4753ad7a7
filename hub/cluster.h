/* Cluster mode ([cluster] enabled, PostgreSQL only): several hubs share one
 * fleet. The fleet's devices fall into partitions (fl_partition_of, a count
 * fixed at the fleet's first start); each partition is leased to one hub at
 * a time through the table partitions (hub/store_cluster.h), and every lease
 * taken raises the partition's epoch.
 *
 * This room keeps the membership and the leases on a thread and a
 * PostgreSQL connection of its own: every lease/6 it heartbeats, renews its
 * leases, and once the set of live hubs has been stable for settle_ms takes
 * free or expired partitions up to its fair share (FOR UPDATE SKIP LOCKED)
 * or gives up what it holds beyond it. For each partition gained it
 * subscribes to fleet/v1/p/{p}/dev/+/up/#, publishes the partition's
 * retained status and asks the engine to publish the stored downlink again;
 * for each lost one it unsubscribes.
 *
 * The engine asks it, on its own thread, which inputs to apply (those of
 * partitions held), and fences every batch: just before the commit, the
 * epochs of the partitions the batch touched must still be the ones this
 * hub holds, or the batch is rolled back (a hub frozen past its lease never
 * commits for that partition again). The periodic scans of the saga and
 * the recovery of payment calls run on the hub that holds partition 0 (the
 * leader), fenced by partition 0. */
#ifndef HUB_CLUSTER_H
#define HUB_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "effects.h"
#include "fleet/mqtt.h"
#include "hub_config.h"
#include "inbox.h"
#include "payment.h"
#include "store.h"

typedef struct hub_cluster hub_cluster;

/* What the cluster asks of the engine (called on the cluster's thread). */
typedef struct hub_cluster_hooks {
  void *ctx;
  void (*gained)(void *ctx);            /* partitions gained: publish their stored downlink */
  size_t (*queue_depth)(void *ctx);     /* for the hubs table */
  uint64_t (*events_applied)(void *ctx);
  uint64_t boot; /* the hub's boot counter, for the envelopes of partition statuses */
} hub_cluster_hooks;

/* Connects to the store's database and fixes or checks the partition
 * count. Returns FL_OK and *out (free with hub_cluster_destroy), FL_ERR_CONFIG
 * (logged, naming [cluster] partitions and both numbers) when the fleet was
 * set up with another count, or FL_ERR_UNAVAILABLE / FL_ERR_DB / FL_ERR_NOMEM. */
int hub_cluster_create(const hub_config *cfg, hub_cluster **out);

/* Starts the cluster's thread; mqtt is the engine's client (subscriptions,
 * statuses), hooks are copied. Returns FL_OK or FL_ERR_NOMEM. */
int hub_cluster_start(hub_cluster *c, fl_mqtt *mqtt, const hub_cluster_hooks *hooks);

/* Stops the thread and gives up every partition at once (owner '', lease
 * ended now), so that the other hubs take them within about a second.
 * Call after the engine's last batch. Safe on NULL and twice. */
void hub_cluster_stop(hub_cluster *c);
void hub_cluster_destroy(hub_cluster *c);

/* This hub's name among the hubs ([cluster] hub_id). */
const char *hub_cluster_hub(const hub_cluster *c);

/* True while the hub holds at least its fair share of the partitions and
 * the live hubs have been stable for the settle time: /v1/health's ready. */
bool hub_cluster_ready(const hub_cluster *c);

/* ---- the engine's thread: one batch ---------------------------------------------- */

/* A new attempt of a batch: forgets the partitions it touched. */
void hub_cluster_batch_begin(hub_cluster *c);

/* For a device message on topic: true when this hub holds the message's
 * partition (the one its topic names, else the device's), which the batch
 * then touches; false when another hub does: the message is dropped, not
 * acked (its device sends it again, to the owner). A topic that names no
 * device is the leader's (it dead-letters it). */
bool hub_cluster_admit(hub_cluster *c, const char *topic);

/* Locks, in the order of their ids, the device rows of the messages of in[]
 * (n inputs) whose partitions this hub holds: at a batch's start, before
 * any input of it is applied. Returns FL_OK or a store error. */
int hub_cluster_lock_batch(hub_cluster *c, hub_store *st, hub_input *const *in, size_t n);

/* True when this hub leads (holds partition 0), which the batch then
 * touches: the saga's scans and recovery are the leader's. */
bool hub_cluster_lead(hub_cluster *c);

/* True once after this hub gained partition 0: recover the payment calls. */
bool hub_cluster_recovery_due(hub_cluster *c);

/* Just before the commit of a batch whose effects are fx: claims the
 * payment calls it holds for this hub until now_ms + claim_ms (the table
 * saga_claims), then the fence (hub_store_fence): FL_OK, or FL_ERR_STATE when
 * a partition the batch touched has moved (logged; the partitions are
 * forgotten at once, so that the retried batch drops their inputs), or a
 * store error. */
int hub_cluster_precommit(hub_cluster *c, hub_store *st, const hub_effects *fx, int64_t now_ms);

/* For a payment result of job: FL_OK when this hub's claim made the call
 * (or none is recorded), FL_ERR_STATE when another hub's claim stands (the
 * result is not applied: that hub's call applies its own), or a store error. */
int hub_cluster_admit_payment(hub_cluster *c, hub_store *st, const pay_job *job);

/* *due: some step is still "calling" after its claim ended (its hub died or
 * lost the call): the leader calls them again, with the same keys. */
int hub_cluster_stale_claims(hub_cluster *c, hub_store *st, int64_t now_ms, bool *due);

/* ---- the rules, pure (tests/unit/test_hub_cluster.c) ------------------------------- */

/* The fair share of partitions of the hub ranked rank (0-based, by id) among
 * n_live hubs: an even split, the first hubs one more each for the
 * remainder (the shares add up to partitions). 0 when rank >= n_live. */
uint32_t hub_cluster_fair_share(uint32_t partitions, size_t n_live, size_t rank);

/* Encodes the retained status of partition part (fleet/v1/p/{part}/status,
 * protocol P-PART-5) into buf (cap bytes): a partition_status message from
 * hub (of boot boot) holding part at epoch. Returns FL_OK and *len, or the
 * fl_err of fl_msg_encode (FL_ERR_BUFFER when cap is too small). */
int hub_cluster_status_encode(uint32_t part, int64_t epoch, const char *hub, uint64_t boot,
                              bool online, uint8_t *buf, size_t cap, size_t *len);

#endif
