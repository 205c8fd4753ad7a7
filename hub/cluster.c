/* Cluster mode: membership, leases, rebalancing, and the engine's side of
 * them (admission and the fence). See cluster.h.
 *
 * Why a thread and a connection of its own: the heartbeat and the renewal
 * of leases must go on while the engine is inside a long batch (or retrying
 * one against a slow database), and the engine's batch transaction must never
 * wait for cluster work. The two share only the array of epochs held
 * (atomics: the cluster thread sets them, the engine reads them, and clears
 * one when its fence finds it moved) and a few flags. */
#include "cluster.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/partition.h"
#include "fleet/proto.h"
#include "fleet/topic.h"
#include "store_cluster.h"

#define MAX_HUBS 256

struct hub_cluster {
  char hub[FL_ID_MAX + 1];
  uint32_t partitions;
  int64_t lease_ms, settle_ms, tick_ms, started_ms, claim_ms;
  hub_cluster_db *db;
  fl_mqtt *mqtt;
  hub_cluster_hooks hooks;
  /* shared with the engine */
  _Atomic int64_t *held; /* [partitions]: the epoch of this hub's lease, 0: not held */
  atomic_bool ready, recovery_due, stopping;
  /* the cluster thread's own */
  bool *subscribed; /* [partitions] */
  bool *announced;  /* [partitions]: its status published */
  char live[MAX_HUBS][FL_ID_MAX + 1];
  size_t n_live;
  int64_t stable_since_ms;
  bool first_tick;
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t wake_lock;
  pthread_cond_t wake;
  /* the engine thread's own: the batch in hand */
  uint32_t *touched;
  int64_t *touched_epoch;
  size_t n_touched;
  bool *is_touched; /* [partitions] */
};

/* ---- the partition's status (retained on fleet/v1/p/{p}/status) ---------------------- */

/* The partition status message (protocol P-PART-5): envelope dev "hub",
 * seq 0, the hub's boot; the body says which hub holds partition part at
 * which epoch, and whether it is online. */
int hub_cluster_status_encode(uint32_t part, int64_t epoch, const char *hub, uint64_t boot,
                              bool online, uint8_t *buf, size_t cap, size_t *len) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_PARTITION_STATUS);
  m.body.partition_status.partition = part;
  m.body.partition_status.epoch = (uint64_t)epoch;
  snprintf(m.body.partition_status.hub, sizeof m.body.partition_status.hub, "%s", hub);
  m.body.partition_status.online = online;
  snprintf(m.env.dev, sizeof m.env.dev, "hub");
  snprintf(m.env.mid, sizeof m.env.mid, "hub-%llu-p%u-e%lld-%d", (unsigned long long)boot, part,
           (long long)epoch, online ? 1 : 0);
  m.env.boot = boot;
  m.env.time_ms = fl_now_ms();
  return fl_msg_encode(&m, buf, cap, len);
}

static bool status_publish(hub_cluster *c, uint32_t part, int64_t epoch, bool online) {
  char topic[FL_TOPIC_MAX];
  uint8_t buf[256];
  size_t len;
  if (fl_topic_partition_status(topic, sizeof topic, part) < 0 ||
      hub_cluster_status_encode(part, epoch, c->hub, c->hooks.boot, online, buf, sizeof buf,
                                &len) != FL_OK)
    return false;
  return fl_mqtt_publish(c->mqtt, topic, buf, len, 1, true, NULL, NULL, 0, 0) == FL_OK;
}

/* ---- membership and leases (the cluster's thread) ------------------------------------ */

/* This hub's fair share when the live hubs are c->live: an even split, the
 * first hubs by id taking one more each for the remainder. 0 if this hub is
 * not among them. */
static uint32_t fair_share(const hub_cluster *c) {
  for (size_t r = 0; r < c->n_live; r++)
    if (strcmp(c->live[r], c->hub) == 0) return hub_cluster_fair_share(c->partitions, c->n_live, r);
  return 0;
}

uint32_t hub_cluster_fair_share(uint32_t partitions, size_t n_live, size_t rank) {
  if (rank >= n_live) return 0;
  return (uint32_t)(partitions / n_live + (rank < partitions % n_live ? 1 : 0));
}

static uint32_t held_count(const hub_cluster *c) {
  uint32_t n = 0;
  for (uint32_t p = 0; p < c->partitions; p++) n += atomic_load(&c->held[p]) != 0;
  return n;
}

/* Reads the live hubs; restarts the settle time when they changed. */
static int membership(hub_cluster *c, int64_t now) {
  char ids[MAX_HUBS][FL_ID_MAX + 1];
  size_t n;
  int rc = hub_cluster_db_live(c->db, now - c->lease_ms, ids, MAX_HUBS, &n);
  if (rc != FL_OK) return rc;
  if (n > MAX_HUBS) n = MAX_HUBS;
  bool same = n == c->n_live;
  for (size_t i = 0; same && i < n; i++) same = strcmp(ids[i], c->live[i]) == 0;
  if (same) return FL_OK;
  /* Only hubs gone (stopped, or dead past their lease): their partitions are
   * free or expired, and taking them at once moves nothing twice, so the
   * settle time does not start again (a SIGTERM hands over within a tick).
   * A hub that joins restarts it: the shares settle before anything moves. */
  bool only_gone = n < c->n_live;
  for (size_t i = 0; only_gone && i < n; i++) {
    bool known = false;
    for (size_t j = 0; !known && j < c->n_live; j++) known = strcmp(ids[i], c->live[j]) == 0;
    only_gone = known;
  }
  memcpy(c->live, ids, sizeof ids[0] * n);
  c->n_live = n;
  if (!only_gone) c->stable_since_ms = now;
  char list[512] = "";
  for (size_t i = 0, len = 0; i < n && len < sizeof list - 1; i++)
    len += (size_t)snprintf(list + len, sizeof list - len, i ? ",%s" : "%s", ids[i]);
  if (only_gone)
    fl_info("cluster: live hubs now %zu (%s); their partitions are taken now", n, list);
  else
    fl_info("cluster: live hubs now %zu (%s); rebalancing after %lld ms without change", n,
            list, (long long)c->settle_ms);
  return FL_OK;
}

/* Sets the epochs held to the leases the database gives this hub. */
static void hold_exactly(hub_cluster *c, const hub_lease *leases, size_t n) {
  bool *mine = calloc(c->partitions, sizeof *mine);
  if (!mine) return;
  for (size_t i = 0; i < n; i++) {
    if (leases[i].part >= c->partitions) continue;
    mine[leases[i].part] = true;
    atomic_store(&c->held[leases[i].part], leases[i].epoch);
  }
  for (uint32_t p = 0; p < c->partitions; p++)
    if (!mine[p] && atomic_exchange(&c->held[p], 0) != 0)
      fl_warn("cluster: partition %u is no longer this hub's (its lease moved)", p);
  free(mine);
}

/* Takes free partitions up to the fair share, or gives up the excess. */
static int rebalance(hub_cluster *c, int64_t now, uint32_t share) {
  uint32_t mine = held_count(c);
  hub_lease *got = calloc(c->partitions, sizeof *got);
  uint32_t *gone = calloc(c->partitions, sizeof *gone);
  int rc = got && gone ? FL_OK : FL_ERR_NOMEM;
  if (rc == FL_OK && mine < share) {
    size_t n = 0;
    rc = hub_cluster_db_take(c->db, c->hub, now, now + c->lease_ms, share - mine, got,
                             c->partitions, &n);
    for (size_t i = 0; rc == FL_OK && i < n; i++)
      if (got[i].part < c->partitions) atomic_store(&c->held[got[i].part], got[i].epoch);
    if (rc == FL_OK && n)
      fl_info("cluster: took %zu partitions (now %u, fair share %u)", n, mine + (uint32_t)n,
              share);
  } else if (rc == FL_OK && mine > share) {
    /* the highest numbers first; the engine stops applying them before the
     * database lets them go (its fence covers a batch already under way) */
    size_t n = 0;
    for (uint32_t p = c->partitions; p-- > 0 && n < mine - share;)
      if (atomic_exchange(&c->held[p], 0) != 0) gone[n++] = p;
    rc = hub_cluster_db_release(c->db, c->hub, gone, n, now);
    if (rc == FL_OK)
      fl_info("cluster: released %zu partitions to the others (now %u, fair share %u)", n,
              mine - (uint32_t)n, share);
  }
  free(got);
  free(gone);
  return rc;
}

/* Subscribes to the partitions held and not yet subscribed (and publishes
 * their status), unsubscribes from those no longer held. */
static void follow_leases(hub_cluster *c) {
  bool gained = false;
  for (uint32_t p = 0; p < c->partitions; p++) {
    int64_t epoch = atomic_load(&c->held[p]);
    char filter[FL_TOPIC_MAX];
    if (fl_topic_partition_up(filter, sizeof filter, p) < 0) continue;
    if (epoch && !c->subscribed[p]) {
      c->subscribed[p] = fl_mqtt_subscribe(c->mqtt, filter) == FL_OK;
      c->announced[p] = false;
      gained = true;
      if (p == 0) atomic_store(&c->recovery_due, true);
    } else if (!epoch && c->subscribed[p]) {
      fl_mqtt_unsubscribe(c->mqtt, filter);
      c->subscribed[p] = false;
    }
    if (epoch && !c->announced[p]) c->announced[p] = status_publish(c, p, epoch, true);
  }
  if (gained && c->hooks.gained) c->hooks.gained(c->hooks.ctx);
}

static void tick(hub_cluster *c) {
  int64_t now = fl_now_ms();
  hub_member me = {.started_ms = c->started_ms, .owned = held_count(c)};
  snprintf(me.id, sizeof me.id, "%s", c->hub);
  if (c->hooks.queue_depth) me.queue_depth = c->hooks.queue_depth(c->hooks.ctx);
  if (c->hooks.events_applied) me.events_applied = c->hooks.events_applied(c->hooks.ctx);
  int rc = hub_cluster_db_heartbeat(c->db, &me, now);
  if (rc == FL_OK) rc = membership(c, now);
  hub_lease *leases = calloc(c->partitions, sizeof *leases);
  size_t n = 0;
  if (rc == FL_OK && !leases) rc = FL_ERR_NOMEM;
  /* the first renewal raises the epochs: what a previous run of this hub
   * held is taken back as by a new owner */
  if (rc == FL_OK)
    rc = hub_cluster_db_renew(c->db, c->hub, now + c->lease_ms, c->first_tick, leases,
                              c->partitions, &n);
  if (rc == FL_OK) {
    if (c->first_tick && n) fl_info("cluster: took back %zu partitions held before", n);
    c->first_tick = false;
    hold_exactly(c, leases, n);
  }
  free(leases);
  uint32_t share = fair_share(c);
  bool settled = now - c->stable_since_ms >= c->settle_ms;
  if (rc == FL_OK && settled && share) rc = rebalance(c, now, share);
  follow_leases(c);
  atomic_store(&c->ready, rc == FL_OK && settled && share && held_count(c) >= share);
}

static void *cluster_main(void *arg) {
  hub_cluster *c = arg;
  while (!atomic_load(&c->stopping)) {
    tick(c);
    pthread_mutex_lock(&c->wake_lock);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += (long)(c->tick_ms % 1000) * 1000000L;
    until.tv_sec += c->tick_ms / 1000 + until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    if (!atomic_load(&c->stopping)) pthread_cond_timedwait(&c->wake, &c->wake_lock, &until);
    pthread_mutex_unlock(&c->wake_lock);
  }
  return NULL;
}

/* ---- life --------------------------------------------------------------------------- */

int hub_cluster_create(const hub_config *cfg, hub_cluster **out) {
  hub_cluster *c = calloc(1, sizeof *c);
  if (!c) return FL_ERR_NOMEM;
  snprintf(c->hub, sizeof c->hub, "%s", cfg->cluster_hub_id);
  c->partitions = (uint32_t)cfg->cluster_partitions;
  c->lease_ms = cfg->cluster_lease_ms;
  c->settle_ms = cfg->cluster_settle_ms;
  c->claim_ms = cfg->cluster_claim_ms;
  c->tick_ms = c->lease_ms / 6 > 0 ? c->lease_ms / 6 : 1;
  c->started_ms = fl_now_ms();
  c->first_tick = true;
  pthread_mutex_init(&c->wake_lock, NULL);
  pthread_cond_init(&c->wake, NULL);
  c->held = calloc(c->partitions, sizeof *c->held);
  c->subscribed = calloc(c->partitions, sizeof *c->subscribed);
  c->announced = calloc(c->partitions, sizeof *c->announced);
  c->touched = calloc(c->partitions, sizeof *c->touched);
  c->touched_epoch = calloc(c->partitions, sizeof *c->touched_epoch);
  c->is_touched = calloc(c->partitions, sizeof *c->is_touched);
  int rc = c->held && c->subscribed && c->announced && c->touched && c->touched_epoch &&
                   c->is_touched
               ? FL_OK
               : FL_ERR_NOMEM;
  for (uint32_t p = 0; rc == FL_OK && p < c->partitions; p++) atomic_init(&c->held[p], 0);
  if (rc == FL_OK) rc = hub_cluster_db_open(cfg->store_url, &c->db);
  uint32_t stored = 0;
  if (rc == FL_OK) rc = hub_cluster_db_setup(c->db, c->partitions, c->started_ms, &stored);
  if (rc == FL_OK && stored != c->partitions) {
    fl_error("config [cluster] partitions = %u, but this fleet's database was set up with %u "
             "partitions, a number fixed at its first start: set [cluster] partitions = %u",
             c->partitions, stored, stored);
    rc = FL_ERR_CONFIG;
  }
  if (rc != FL_OK) {
    hub_cluster_destroy(c);
    return rc;
  }
  fl_info("cluster: hub %s, %u partitions, lease %lld ms, settle %lld ms", c->hub, c->partitions,
          (long long)c->lease_ms, (long long)c->settle_ms);
  *out = c;
  return FL_OK;
}

int hub_cluster_start(hub_cluster *c, fl_mqtt *mqtt, const hub_cluster_hooks *hooks) {
  c->mqtt = mqtt;
  if (hooks) c->hooks = *hooks;
  if (pthread_create(&c->thread, NULL, cluster_main, c) != 0) return FL_ERR_NOMEM;
  c->thread_started = true;
  return FL_OK;
}

void hub_cluster_stop(hub_cluster *c) {
  if (!c || !c->thread_started) return;
  pthread_mutex_lock(&c->wake_lock);
  atomic_store(&c->stopping, true);
  pthread_cond_signal(&c->wake);
  pthread_mutex_unlock(&c->wake_lock);
  pthread_join(c->thread, NULL);
  c->thread_started = false;
  int64_t now = fl_now_ms();
  uint32_t had = held_count(c);
  int64_t *epochs = calloc(c->partitions, sizeof *epochs); /* for the statuses; NULL: 0s */
  for (uint32_t p = 0; p < c->partitions; p++) {
    int64_t epoch = atomic_exchange(&c->held[p], 0);
    if (epochs) epochs[p] = epoch;
  }
  int rc = hub_cluster_db_leave(c->db, c->hub, now);
  if (rc == FL_OK)
    fl_info("cluster: left; %u partitions given up for the other hubs to take", had);
  else
    fl_warn("cluster: could not give up the partitions (%s): they move when their leases end",
            fl_strerror(rc));
  for (uint32_t p = 0; p < c->partitions; p++)
    if (c->subscribed[p]) status_publish(c, p, epochs ? epochs[p] : 0, false);
  free(epochs);
  atomic_store(&c->ready, false);
}

void hub_cluster_destroy(hub_cluster *c) {
  if (!c) return;
  hub_cluster_stop(c);
  hub_cluster_db_close(c->db);
  free(c->held);
  free(c->subscribed);
  free(c->announced);
  free(c->touched);
  free(c->touched_epoch);
  free(c->is_touched);
  pthread_cond_destroy(&c->wake);
  pthread_mutex_destroy(&c->wake_lock);
  free(c);
}

const char *hub_cluster_hub(const hub_cluster *c) { return c->hub; }

bool hub_cluster_ready(const hub_cluster *c) { return atomic_load(&c->ready); }

/* ---- the engine's thread ------------------------------------------------------------ */

void hub_cluster_batch_begin(hub_cluster *c) {
  for (size_t i = 0; i < c->n_touched; i++) c->is_touched[c->touched[i]] = false;
  c->n_touched = 0;
}

/* Notes that the batch touches part (held at epoch), once. */
static void touch(hub_cluster *c, uint32_t part, int64_t epoch) {
  if (c->is_touched[part]) return;
  c->is_touched[part] = true;
  c->touched[c->n_touched] = part;
  c->touched_epoch[c->n_touched++] = epoch;
}

bool hub_cluster_admit(hub_cluster *c, const char *topic) {
  char dev[FL_ID_MAX + 1];
  fl_channel ch;
  int part = -1;
  uint32_t p = 0; /* a topic that names no device: the leader's */
  if (fl_topic_parse_device_p(topic, dev, sizeof dev, &ch, &part) == FL_OK)
    p = part >= 0 ? (uint32_t)part : fl_partition_of(dev, c->partitions);
  if (p >= c->partitions) p = 0; /* a partition beyond the count: dead-lettered by the leader */
  int64_t epoch = atomic_load(&c->held[p]);
  if (!epoch) return false;
  touch(c, p, epoch);
  return true;
}

static int id_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int hub_cluster_lock_batch(hub_cluster *c, hub_store *st, hub_input *const *in, size_t n) {
  char (*devs)[FL_ID_MAX + 1] = n ? malloc(n * sizeof *devs) : NULL;
  const char **ids = n ? malloc(n * sizeof *ids) : NULL;
  int rc = n && (!devs || !ids) ? FL_ERR_NOMEM : FL_OK;
  size_t k = 0;
  for (size_t i = 0; rc == FL_OK && i < n; i++) {
    fl_channel ch;
    int part = -1;
    if (in[i]->kind != IN_MQTT ||
        fl_topic_parse_device_p(in[i]->topic, devs[k], sizeof devs[k], &ch, &part) != FL_OK)
      continue;
    uint32_t p = part >= 0 ? (uint32_t)part : fl_partition_of(devs[k], c->partitions);
    if (p < c->partitions && atomic_load(&c->held[p])) {
      ids[k] = devs[k];
      k++;
    }
  }
  if (rc == FL_OK && k) {
    qsort(ids, k, sizeof *ids, id_cmp);
    size_t u = 0; /* each once */
    for (size_t i = 0; i < k; i++)
      if (!u || strcmp(ids[u - 1], ids[i]) != 0) ids[u++] = ids[i];
    rc = hub_store_lock_devices(st, ids, u);
  }
  free(ids);
  free(devs);
  return rc;
}

bool hub_cluster_lead(hub_cluster *c) {
  int64_t epoch = atomic_load(&c->held[0]);
  if (epoch) touch(c, 0, epoch);
  return epoch != 0;
}

bool hub_cluster_recovery_due(hub_cluster *c) { return atomic_exchange(&c->recovery_due, false); }

/* The fence: see hub_cluster_precommit. */
static int fence(hub_cluster *c, hub_store *st) {
  uint32_t *lost = malloc((c->n_touched ? c->n_touched : 1) * sizeof *lost);
  if (!lost) return FL_ERR_NOMEM;
  size_t n_lost = 0;
  int rc = hub_store_fence(st, c->hub, c->touched, c->touched_epoch, c->n_touched, lost, &n_lost);
  for (size_t i = 0; rc == FL_ERR_STATE && i < n_lost; i++) {
    /* only the epoch this batch saw: a lease taken again since stays */
    for (size_t j = 0; j < c->n_touched; j++) {
      int64_t seen = c->touched_epoch[j];
      if (c->touched[j] == lost[i]) atomic_compare_exchange_strong(&c->held[lost[i]], &seen, 0);
    }
    fl_warn("cluster: fence: partition %u moved to another hub; the batch is rolled back and its "
            "inputs of that partition dropped (their devices send them again to the owner)",
            lost[i]);
  }
  free(lost);
  return rc;
}

int hub_cluster_precommit(hub_cluster *c, hub_store *st, const hub_effects *fx, int64_t now_ms) {
  int rc = FL_OK;
  for (size_t i = 0; rc == FL_OK && i < effects_jobs(fx); i++) {
    const pay_job *job = effects_job_at(fx, i);
    rc = hub_store_claim(st, job->owner, job->step, c->hub, now_ms + c->claim_ms);
  }
  return rc == FL_OK ? fence(c, st) : rc;
}

int hub_cluster_admit_payment(hub_cluster *c, hub_store *st, const pay_job *job) {
  char holder[FL_ID_MAX + 1];
  int rc = hub_store_claim_holder(st, job->owner, job->step, holder, sizeof holder);
  if (rc == FL_ERR_NOT_FOUND) return FL_OK;
  if (rc != FL_OK) return rc;
  if (strcmp(holder, c->hub) == 0) return FL_OK;
  fl_info("cluster: payment result of %s step %s not applied: the call is %s's claim now",
          job->owner, job->step, holder);
  return FL_ERR_STATE;
}

int hub_cluster_stale_claims(hub_cluster *c, hub_store *st, int64_t now_ms, bool *due) {
  uint64_t n = 0;
  int rc = hub_store_claims_stale(st, now_ms, &n);
  *due = rc == FL_OK && n > 0;
  if (*due) fl_info("cluster: %llu payment calls outlived their claim: called again by %s",
                    (unsigned long long)n, c->hub);
  return rc;
}
