/* The hub engine: the loop, its batches and their transactions, and the
 * engine's life (create, start, stop). See engine.h for the shape; the rules
 * it keeps:
 *  - one thread writes the store; a batch of inputs is one transaction, each
 *    input inside its own savepoint so that one bad input never spoils the
 *    others;
 *  - nothing leaves the hub (ack, decision, command, state, payment call)
 *    before the transaction that produced it has committed (hub/effects.h);
 *  - a store that fails, or ends the transaction by itself, aborts the whole
 *    batch, which is then retried: no input of it is dead-lettered or acked.
 * What an input means is decided elsewhere: hub/uplink.h for devices,
 * hub/domain.h for payment results and operator commands. */
#include "engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cbor_json.h"
#include "cluster.h"
#include "domain.h"
#include "downlink.h"
#include "effects.h"
#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/topic.h"
#include "hub_config.h"
#include "inbox.h"
#include "metrics.h"
#include "outflow.h"
#include "store.h"
#include "strmap.h"
#include "txn.h"
#include "uplink.h"

struct hub_engine {
  hub_config cfg;
  hub_store *st;
  fl_mqtt *mqtt;
  hub_payments *pay;
  hub_inbox *inbox;
  hub_effects *fx;
  hub_cluster *cluster; /* cluster mode (hub/cluster.h); NULL for a hub alone */
  strmap telemetry_published;
  strmap stations_changed;
  /* outbox rows the broker has (PUBACK), to delete in the next batch; paho's
   * thread adds, the engine takes */
  pthread_mutex_t acked_lock;
  uint64_t *acked;
  size_t n_acked, cap_acked;
  uint64_t *forgetting; /* the rows deleted by the batch in hand: back to acked if it rolls back */
  size_t n_forgetting;
  /* answers to ack publishes (tag, ok), for the outflow: paho's thread adds
   * (under acked_lock), the engine takes */
  struct ack_answer {
    uint64_t tag;
    bool ok;
  } *ack_answers;
  size_t n_ack_answers, cap_ack_answers;
  hub_outflow *outflow;
  uint64_t boot;
  bool thread_started;
  pthread_t thread;
  int64_t next_retry_scan_ms;
  /* figures */
  int64_t started_us;
  atomic_bool ready;
  atomic_uint_fast64_t applied, duplicates, rejected, batches, shed;
  atomic_bool resend_due; /* the connect notice did not fit in the queue */
};

/* ---- paho and worker callbacks (not the engine thread) ------------------ */

static void on_mqtt_message(void *ctx, const fl_mqtt_msg *msg) {
  hub_engine *e = ctx;
  hub_input *in = inbox_mqtt_input(msg);
  if (!in) {
    fl_error("out of memory: message on %s dropped (the device will resend)", msg->topic);
    return;
  }
  /* Shedding is safe: an event that is not acked is sent again by its
   * device, a lost hello is repeated, a lost device_ack is covered by the next. */
  if (inbox_push(e->inbox, in, false) == FL_ERR_FULL) {
    uint64_t n = atomic_fetch_add(&e->shed, 1);
    if ((n & (n + 1)) == 0) /* 1st, 2nd, 4th, 8th... */
      fl_warn("engine queue full (%zu): %llu messages shed so far; devices will resend",
              inbox_cap(e->inbox), (unsigned long long)n + 1);
  }
}

static void on_payment_done(void *ctx, const pay_result *res) {
  hub_engine *e = ctx;
  hub_input *in = inbox_payment_input(res);
  if (in) inbox_push(e->inbox, in, true); /* else the step stays "calling": resumed at restart */
}

/* Encodes the hub's status (online or not) into buf. The hub's status is not
 * part of any batch, so it is encoded with a message identity of its own. */
static int encode_hub_status(hub_engine *e, bool online, uint8_t *buf, size_t cap, size_t *len) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_HUB_STATUS);
  m.body.hub_status.online = online;
  snprintf(m.env.dev, sizeof m.env.dev, "hub");
  snprintf(m.env.mid, sizeof m.env.mid, "hub-%llu-status-%d", (unsigned long long)e->boot,
           online ? 1 : 0);
  m.env.boot = e->boot;
  m.env.time_ms = fl_now_ms();
  return fl_msg_encode(&m, buf, cap, len);
}

static void publish_hub_status(hub_engine *e, bool online) {
  uint8_t buf[256];
  size_t len;
  if (encode_hub_status(e, online, buf, sizeof buf, &len) == FL_OK)
    fl_mqtt_publish(e->mqtt, FL_TOPIC_HUB_STATUS, buf, len, 1, true, NULL, NULL, 0, 0);
}

static void on_mqtt_connected(void *ctx) {
  hub_engine *e = ctx;
  fl_info("mqtt connected uri=%s", e->cfg.mqtt_uri);
  publish_hub_status(e, true);
  /* The engine republishes the stored downlink first thing (P-SEQ-9 after a
   * restart): a decision committed just before a crash must not be
   * overtaken by a newer one. */
  hub_input *in = inbox_connected_input();
  if (!in || inbox_push(e->inbox, in, false) != FL_OK) atomic_store(&e->resend_due, true);
}

static void on_mqtt_lost(void *ctx, const char *cause) {
  hub_engine *e = ctx;
  fl_warn("mqtt lost uri=%s cause=%s", e->cfg.mqtt_uri, cause);
}

/* ---- where committed effects go ------------------------------------------ */

/* With [mqtt] json_mirror: a state, notification or notices topic's message
 * also as JSON on fleet/v1/json/... (for dashboards that read no CBOR). Best effort:
 * the CBOR original is the durable one. */
static void publish_json_mirror(hub_engine *e, const char *topic, const uint8_t *payload,
                                size_t len, bool retain, uint32_t expiry_s) {
  static const char root[] = FL_TOPIC_ROOT "/";
  const char *rest = topic + sizeof root - 1;
  if (strncmp(topic, root, sizeof root - 1) != 0 ||
      (strncmp(rest, "state/", 6) != 0 && strncmp(rest, "notify/", 7) != 0 &&
       strncmp(rest, "notices/", 8) != 0))
    return;
  char mirror[FL_TOPIC_MAX];
  if (snprintf(mirror, sizeof mirror, FL_TOPIC_ROOT "/json/%s", rest) >= (int)sizeof mirror) return;
  char *json = NULL;
  if (len && cbor_to_json(payload, len, &json) != FL_OK) return;
  fl_mqtt_publish_expiring(e->mqtt, mirror, json ? json : "", json ? strlen(json) : 0, 1, retain,
                           NULL, NULL, 0, 0, expiry_s);
  free(json);
}

static int sink_publish(void *ctx, const char *topic, const uint8_t *payload, size_t len,
                        bool retain, const uint8_t *corr, size_t corr_len, uint64_t tag,
                        uint32_t expiry_s) {
  hub_engine *e = ctx;
  int rc = fl_mqtt_publish_expiring(e->mqtt, topic, payload, len, 1, retain, NULL, corr, corr_len,
                                    tag, expiry_s);
  if (rc == FL_OK && e->cfg.json_mirror)
    publish_json_mirror(e, topic, payload, len, retain, expiry_s);
  return rc;
}

/* paho's thread: the broker has outbox row tag (PUBACK): note it for deletion. */
static void on_published(void *ctx, uint64_t tag, fl_err rc) {
  hub_engine *e = ctx;
  if (tag & OUTFLOW_ACK_TAG) { /* an ack: the engine sends the device's next one */
    pthread_mutex_lock(&e->acked_lock);
    if (e->n_ack_answers == e->cap_ack_answers) {
      size_t cap = e->cap_ack_answers ? e->cap_ack_answers * 2 : 256;
      struct ack_answer *grown = realloc(e->ack_answers, cap * sizeof *grown);
      if (grown) {
        e->ack_answers = grown;
        e->cap_ack_answers = cap;
      }
    }
    if (e->n_ack_answers < e->cap_ack_answers)
      e->ack_answers[e->n_ack_answers++] = (struct ack_answer){tag, rc == FL_OK};
    pthread_mutex_unlock(&e->acked_lock);
    inbox_wake(e->inbox);
    return;
  }
  if (rc != FL_OK || !tag) return; /* kept: published again after the next connect */
  pthread_mutex_lock(&e->acked_lock);
  if (e->n_acked == e->cap_acked) {
    size_t cap = e->cap_acked ? e->cap_acked * 2 : 256;
    uint64_t *grown = realloc(e->acked, cap * sizeof *grown);
    if (grown) {
      e->acked = grown;
      e->cap_acked = cap;
    }
  }
  if (e->n_acked < e->cap_acked) e->acked[e->n_acked++] = tag;
  pthread_mutex_unlock(&e->acked_lock);
}

static int seq_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Deletes the outbox rows the broker has (in the batch's transaction). On a
 * store error the rows not deleted are kept for the next batch. */
static int outbox_forget(hub_engine *e) {
  pthread_mutex_lock(&e->acked_lock);
  size_t n = e->n_acked;
  uint64_t *seqs = n ? malloc(n * sizeof *seqs) : NULL;
  if (seqs) {
    memcpy(seqs, e->acked, n * sizeof *seqs);
    e->n_acked = 0;
  }
  pthread_mutex_unlock(&e->acked_lock);
  free(e->forgetting);
  e->forgetting = seqs;
  e->n_forgetting = seqs ? n : 0;
  if (!seqs) return FL_OK; /* none (or no memory: kept for the next batch) */
  /* PUBACKs come back mostly in order: one DELETE per run of seqs */
  qsort(seqs, n, sizeof *seqs, seq_cmp);
  int rc = FL_OK;
  for (size_t i = 0; rc == FL_OK && i < n;) {
    size_t j = i;
    while (j + 1 < n && seqs[j + 1] <= seqs[j] + 1) j++;
    rc = hub_store_outbox_delete(e->st, seqs[i], seqs[j]);
    i = j + 1;
  }
  return rc;
}

/* The batch rolled back: its deletions of outbox rows are undone, so the
 * rows are to be deleted again by the next batch. */
static void outbox_unforget(hub_engine *e) {
  for (size_t i = 0; i < e->n_forgetting; i++) on_published(e, e->forgetting[i], FL_OK);
  e->n_forgetting = 0;
}

/* Holds every outbox row for publishing again (after the hub (re)connects). */
static int outbox_resend_one(void *ctx, uint64_t seq, const char *topic, const uint8_t *payload,
                             size_t len, bool retain, uint32_t expiry_s) {
  hub_effects *fx = ctx;
  int rc = effects_publish(fx, topic, payload, len, retain, NULL, 0);
  if (rc == FL_OK) effects_tag_last(fx, seq, expiry_s);
  return rc;
}

static void sink_pay(void *ctx, const pay_job *job) {
  hub_engine *e = ctx;
  hub_payments_submit(e->pay, job);
}

static bool breaker_admit(void *ctx, uint32_t *retry_after_s) {
  return hub_payments_admit(ctx, retry_after_s);
}

/* The effects' publishes: retained states go through the outflow's pacing. */
static int flush_publish(void *ctx, const char *topic, const uint8_t *payload, size_t len,
                         bool retain, const uint8_t *corr, size_t corr_len, uint64_t tag,
                         uint32_t expiry_s) {
  hub_engine *e = ctx;
  if (retain) return outflow_state(e->outflow, topic, payload, len, expiry_s, tag, fl_now_ms());
  return sink_publish(e, topic, payload, len, retain, corr, corr_len, tag, expiry_s);
}

static void flush_ack(void *ctx, const char *dev, int part, uint64_t upto, uint64_t covered,
                      unsigned flags) {
  hub_engine *e = ctx;
  outflow_ack(e->outflow, dev, part, upto, covered, flags, fl_now_ms());
}

static int outflow_publish(void *ctx, const char *topic, const uint8_t *payload, size_t len,
                           bool retain, uint64_t tag, uint32_t expiry_s) {
  return sink_publish(ctx, topic, payload, len, retain, NULL, 0, tag, expiry_s);
}

/* A held state's outbox row that is never to be published: deleted with
 * the rows the broker has. */
static void outflow_forget(void *ctx, uint64_t seq) { on_published(ctx, seq, FL_OK); }

static void flush(hub_engine *e) {
  hub_effects_sink sink = {
      .ctx = e, .publish = flush_publish, .pay = sink_pay, .ack = flush_ack};
  effects_flush(e->fx, &sink);
}

/* Hands the broker's answers to ack publishes to the outflow and lets out
 * what it held whose time has come. Returns how long the engine may sleep
 * (ms) before the outflow needs it again. */
static int outflow_pump(hub_engine *e) {
  pthread_mutex_lock(&e->acked_lock);
  size_t n = e->n_ack_answers;
  struct ack_answer *answers = n ? malloc(n * sizeof *answers) : NULL;
  if (answers) {
    memcpy(answers, e->ack_answers, n * sizeof *answers);
    e->n_ack_answers = 0;
  }
  pthread_mutex_unlock(&e->acked_lock);
  int64_t now = fl_now_ms();
  for (size_t i = 0; answers && i < n; i++)
    outflow_published(e->outflow, answers[i].tag, answers[i].ok, now);
  free(answers);
  outflow_due(e->outflow, now);
  int64_t next = outflow_next_ms(e->outflow);
  if (next == INT64_MAX || next - now > 200) return 200;
  return next > now ? (int)(next - now) : 1;
}

/* ---- applying a batch ------------------------------------------------------ */

/* Applies one input inside its own savepoint. Returns FL_OK, or an error
 * that aborts the batch (the store failed). */
static int apply_input(hub_engine *e, hub_txn *t, hub_input *in) {
  /* cluster mode: a message of a partition another hub holds is dropped,
   * not acked (its device sends it again, to that hub) */
  if (e->cluster && in->kind == IN_MQTT && !hub_cluster_admit(e->cluster, in->topic)) return FL_OK;
  effects_mark mark = effects_mark_now(e->fx);
  if (hub_store_savepoint(e->st) != FL_OK) return FL_ERR_DB;
  uplink_result up = {0};
  int rc;
  switch (in->kind) {
  case IN_MQTT: {
    uplink_msg msg = {in->topic, in->response_topic, in->payload, in->len};
    rc = uplink_apply(t, &msg, &up);
    break;
  }
  case IN_PAYMENT:
    /* cluster mode: only the result of this hub's claim (hub/cluster.h) */
    rc = e->cluster ? hub_cluster_admit_payment(e->cluster, e->st, &in->pay.job) : FL_OK;
    if (rc == FL_ERR_STATE) rc = FL_OK;
    else if (rc == FL_OK) rc = domain_on_payment(t, &in->pay);
    break;
  case IN_CONNECTED:
    rc = downlink_resend_online(t);
    if (rc == FL_OK) rc = hub_store_outbox_each(e->st, outbox_resend_one, e->fx);
    if (rc == FL_OK)
      fl_info("connected: stored downlink of online devices and the outbox published again");
    break;
  default: rc = domain_op(t, &in->call->op, &in->call->res); break;
  }
  if (rc != FL_OK && (hub_store_failed(rc) || !hub_store_in_txn(e->st))) {
    /* The store failed, or ended the batch's transaction under us: whatever
     * the error looked like, nothing of this batch may be written,
     * dead-lettered or acked. */
    effects_undo(e->fx, mark);
    return hub_store_failed(rc) ? rc : FL_ERR_DB;
  }
  if (rc != FL_OK) { /* a rule refused or failed: undo this input only */
    if (hub_store_rollback_to(e->st) != FL_OK) return FL_ERR_DB;
    effects_undo(e->fx, mark);
    if (in->kind == IN_MQTT) {
      uplink_msg msg = {in->topic, in->response_topic, in->payload, in->len};
      rc = uplink_reject(t, &msg, &up, rc); /* kept for the operator, seq consumed */
      if (rc != FL_OK) return hub_store_failed(rc) ? rc : FL_ERR_DB;
    } else if (in->kind == IN_PAYMENT) {
      fl_error("payment result owner=%s step=%s not applied: %s", in->pay.job.owner,
               in->pay.job.step, fl_strerror(rc));
    }
    rc = FL_OK;
  }
  if (hub_store_release(e->st) != FL_OK) return FL_ERR_DB;
  if (in->kind == IN_MQTT) {
    if (up.outcome == UPLINK_APPLIED) atomic_fetch_add(&e->applied, 1);
    if (up.outcome == UPLINK_DUPLICATE) atomic_fetch_add(&e->duplicates, 1);
    if (up.outcome == UPLINK_REJECTED) atomic_fetch_add(&e->rejected, 1);
    if (up.ack_dev[0]) rc = effects_ack(e->fx, up.ack_dev, up.ack_seq);
    if (rc == FL_OK && up.outcome == UPLINK_DUPLICATE) rc = effects_ack_repeat(e->fx, up.ack_dev);
  }
  return rc;
}

static hub_txn txn_for(hub_engine *e, int64_t now) {
  return (hub_txn){.store = e->st,
                   .fx = e->fx,
                   .cfg = &e->cfg,
                   .now_ms = now,
                   .pay_admit = breaker_admit,
                   .pay_ctx = e->pay,
                   .telemetry_published = &e->telemetry_published,
                   .stations_changed = &e->stations_changed};
}

/* Applies the batch in one transaction; retries the whole batch while the
 * store fails (the inputs are kept until they are committed). */
static void run_batch(hub_engine *e, hub_input **in, size_t n) {
  int64_t t0 = fl_mono_us();
  for (int attempt = 0;; attempt++) {
    hub_txn t = txn_for(e, fl_now_ms());
    int rc = hub_store_begin(e->st);
    if (e->cluster) hub_cluster_batch_begin(e->cluster); /* cluster mode: partitions touched */
    /* cluster mode: the batch's device rows locked first, in a fixed order */
    if (rc == FL_OK && e->cluster) rc = hub_cluster_lock_batch(e->cluster, e->st, in, n);
    if (rc == FL_OK) rc = outbox_forget(e);
    for (size_t i = 0; rc == FL_OK && i < n; i++) rc = apply_input(e, &t, in[i]);
    if (rc == FL_OK && t.now_ms >= e->next_retry_scan_ms) {
      /* cluster mode: the scans are the leader's (hub/cluster.h) */
      bool lead = !e->cluster || hub_cluster_lead(e->cluster), stale = false;
      if (lead) rc = domain_tick(&t);
      if (rc == FL_OK && lead && e->cluster) rc = hub_cluster_stale_claims(e->cluster, e->st, t.now_ms, &stale);
      if (rc == FL_OK && stale) rc = domain_resume(&t, STEP_CALLING); /* same idempotency keys */
      e->next_retry_scan_ms = t.now_ms + 500;
    }
    if (rc == FL_OK) rc = domain_batch_end(&t);
    /* cluster mode: payment calls claimed; the fence, that this hub still holds what it touched */
    if (rc == FL_OK && e->cluster) rc = hub_cluster_precommit(e->cluster, e->st, e->fx, t.now_ms);
    if (rc == FL_OK) rc = hub_store_commit(e->st);
    if (rc == FL_OK) break;
    hub_store_rollback(e->st);
    effects_discard(e->fx);
    strmap_clear(&e->stations_changed);
    outbox_unforget(e);
    fl_error("batch of %zu inputs not committed (%s), attempt %d; retrying", n, fl_strerror(rc),
             attempt + 1);
    if (inbox_stopping(e->inbox) && attempt >= 3) {
      for (size_t i = 0; i < n; i++)
        if (in[i]->kind == IN_OP) in[i]->call->res.code = FL_ERR_SHUTDOWN;
      break;
    }
    fl_sleep_ms(attempt < 10 ? 100 << (attempt / 2) : 3000);
  }
  atomic_fetch_add(&e->batches, 1);
  hub_histogram_observe(&hub_metrics_batch, fl_mono_us() - t0);
  atomic_fetch_add(&hub_metrics_batch_inputs, n);
  flush(e);
  for (size_t i = 0; i < n; i++) {
    if (in[i]->kind == IN_OP) inbox_call_finish(in[i]->call);
    free(in[i]);
  }
}

/* Recovery: every step recorded as "calling" is called again (same key). */
static void recover(hub_engine *e) {
  if (e->cluster) { /* cluster mode: the leader's, when it gains partition 0 (hub/cluster.h) */
    if (!hub_cluster_recovery_due(e->cluster)) return;
    hub_cluster_batch_begin(e->cluster);
    if (!hub_cluster_lead(e->cluster)) return;
  }
  hub_txn t = txn_for(e, fl_now_ms());
  if (hub_store_begin(e->st) != FL_OK) return;
  int rc = domain_resume(&t, STEP_CALLING);
  if (rc == FL_OK) rc = domain_batch_end(&t);
  if (rc == FL_OK && e->cluster) rc = hub_cluster_precommit(e->cluster, e->st, e->fx, t.now_ms);
  size_t jobs = effects_jobs(e->fx);
  if (rc == FL_OK && hub_store_commit(e->st) == FL_OK) {
    if (jobs) fl_info("recovery: %zu payment steps resumed", jobs);
    flush(e);
  } else {
    hub_store_rollback(e->st);
    effects_discard(e->fx);
  }
}

static void *engine_main(void *arg) {
  hub_engine *e = arg;
  size_t max = (size_t)e->cfg.batch_max;
  hub_input **batch = calloc(max, sizeof *batch);
  if (!batch) {
    fl_error("engine: out of memory");
    return NULL;
  }
  recover(e);
  atomic_store(&e->ready, true);
  for (;;) {
    size_t n = 0;
    if (e->cluster) recover(e); /* cluster mode: when this hub became the leader */
    int wait_ms = outflow_pump(e);
    if (atomic_exchange(&e->resend_due, false) && (batch[0] = inbox_connected_input())) n = 1;
    n += inbox_take(e->inbox, batch + n, max - n, n ? 0 : wait_ms);
    if (n > 0 && n < max / 4 && e->cfg.linger_us > 0) {
      /* Group commit: a small batch waits a moment for company, so that a
       * steady stream costs one transaction (and one wake-up) per many
       * inputs instead of per input. */
      struct timespec ts = {0, (long)e->cfg.linger_us * 1000L};
      nanosleep(&ts, NULL);
      n += inbox_take(e->inbox, batch + n, max - n, 0);
    }
    bool stopping = inbox_stopping(e->inbox);
    if (n == 0 && fl_now_ms() < e->next_retry_scan_ms && !stopping) continue;
    run_batch(e, batch, n);
    /* Stopping: the batch in hand is committed and published (with what the
     * outflow held); what is still queued was never acked, so its senders
     * resend it (payment results: their steps stay "calling" and are called
     * again at the next start). */
    if (stopping) {
      outflow_due(e->outflow, INT64_MAX / 4);
      break;
    }
  }
  free(batch);
  return NULL;
}

/* ---- lifecycle ------------------------------------------------------------ */

/* Cluster mode's hooks (hub/cluster.h), on the cluster's thread. */
static void cluster_gained(void *ctx) {
  hub_engine *e = ctx;
  atomic_store(&e->resend_due, true); /* the stored downlink, published again */
  /* devices of the legacy topics (1.0, 1.1) know no partition status: the
   * hub status with this hub's boot makes them say hello again, and resend
   * what no hub acked while their partition moved */
  publish_hub_status(e, true);
}
static size_t cluster_queue_depth(void *ctx) { return inbox_depth(((hub_engine *)ctx)->inbox); }
static uint64_t cluster_events_applied(void *ctx) {
  return atomic_load(&((hub_engine *)ctx)->applied);
}

int hub_engine_create(const hub_config *cfg, hub_engine **out) {
  hub_engine *e = calloc(1, sizeof *e);
  if (!e) return FL_ERR_NOMEM;
  e->cfg = *cfg;
  e->started_us = fl_mono_us();
  pthread_mutex_init(&e->acked_lock, NULL);
  hub_store_opts so = {.backend = cfg->store_backend,
                       .state_dir = cfg->state_dir,
                       .durability = cfg->durability,
                       .url = cfg->store_url,
                       .cluster = cfg->cluster_enabled,
                       /* cluster mode: a hub frozen mid-batch loses its transaction (and its
                        * locks) after a lease, like its partitions */
                       .idle_txn_timeout_ms = cfg->cluster_enabled ? cfg->cluster_lease_ms : 0};
  int rc = inbox_create((size_t)cfg->queue_max, &e->inbox);
  if (rc == FL_OK) rc = hub_store_open(&so, &e->st);
  if (rc == FL_OK && (rc = hub_store_begin(e->st)) == FL_OK) {
    rc = hub_store_next_id(e->st, "hub_boot", &e->boot);
    rc = rc == FL_OK ? hub_store_commit(e->st) : (hub_store_rollback(e->st), rc);
  }
  if (rc == FL_OK) rc = effects_create(e->boot, &e->fx);
  outflow_sink osink = {.ctx = e, .publish = outflow_publish, .forget = outflow_forget};
  if (rc == FL_OK)
    rc = outflow_create(cfg->state_interval_ms, cfg->ack_hold_ms, e->fx, &osink, &e->outflow);
  if (rc == FL_OK && cfg->cluster_enabled) rc = hub_cluster_create(cfg, &e->cluster); /* cluster mode */
  pay_provider provider = {0};
  bool http = strcmp(cfg->payment_provider, "http") == 0; /* hub_config allows sim or http */
  if (rc == FL_OK) rc = http ? pay_http_create(cfg, &provider) : pay_sim_create(cfg, &provider);
  if (rc == FL_OK) rc = hub_payments_create(cfg, provider, on_payment_done, e, &e->pay);
  if (rc != FL_OK) {
    hub_engine_destroy(e);
    return rc;
  }
  *out = e;
  return FL_OK;
}

int hub_engine_start(hub_engine *e) {
  uint8_t will[256];
  size_t will_len = 0;
  int rc = encode_hub_status(e, false, will, sizeof will, &will_len);
  if (rc != FL_OK) return rc;
  const char *subs[] = {FL_TOPIC_ALL_UP, FL_TOPIC_ALL_UP_P};
  fl_mqtt_opts o = {
      .uri = e->cfg.mqtt_uri,
      .client_id = e->cfg.mqtt_client_id,
      .username = e->cfg.mqtt_username[0] ? e->cfg.mqtt_username : NULL,
      .password = e->cfg.mqtt_password[0] ? e->cfg.mqtt_password : NULL,
      .clean_start = false,
      .max_inflight = e->cfg.mqtt_max_inflight,
      .reconnect_max_ms = 5000,
      .will_topic = FL_TOPIC_HUB_STATUS,
      .will_payload = will,
      .will_len = will_len,
      .will_retained = true,
      .subscriptions = subs,
      /* cluster mode: the partitions' filters are subscribed as they are leased (hub/cluster.h) */
      .n_subscriptions = e->cluster ? 1 : 2,
      .ca_file = e->cfg.mqtt_ca_file,
      .cert_file = e->cfg.mqtt_cert_file,
      .key_file = e->cfg.mqtt_key_file,
  };
  fl_mqtt_callbacks cb = {.ctx = e, .on_message = on_mqtt_message,
                          .on_connected = on_mqtt_connected, .on_lost = on_mqtt_lost,
                          .on_published = on_published};
  rc = fl_mqtt_create(&o, &cb, &e->mqtt);
  if (rc != FL_OK) return rc;
  if (e->cluster) { /* cluster mode: membership and leases on their own thread */
    hub_cluster_hooks hooks = {.ctx = e, .gained = cluster_gained,
                               .queue_depth = cluster_queue_depth,
                               .events_applied = cluster_events_applied, .boot = e->boot};
    rc = hub_cluster_start(e->cluster, e->mqtt, &hooks);
    if (rc != FL_OK) return rc;
  }
  if (pthread_create(&e->thread, NULL, engine_main, e) != 0) return FL_ERR_NOMEM;
  e->thread_started = true;
  fl_info("engine started boot=%llu store=%s state_dir=%s", (unsigned long long)e->boot,
          hub_store_backend(e->st), e->cfg.state_dir);
  return fl_mqtt_start(e->mqtt);
}

int hub_engine_op(hub_engine *e, const hub_op *op, hub_op_result *res, int timeout_ms) {
  return inbox_call(e->inbox, op, res, timeout_ms);
}

void hub_engine_health(hub_engine *e, hub_health *h) {
  memset(h, 0, sizeof *h);
  h->mqtt_connected = e->mqtt && fl_mqtt_connected(e->mqtt);
  h->ready = atomic_load(&e->ready) && h->mqtt_connected &&
             /* cluster mode: its fair share held, the downlink of what it gained resent */
             (!e->cluster || (hub_cluster_ready(e->cluster) && !atomic_load(&e->resend_due)));
  h->uptime_s = (uint64_t)((fl_mono_us() - e->started_us) / 1000000);
  h->queue_depth = inbox_depth(e->inbox);
  h->events_applied = atomic_load(&e->applied);
  h->duplicates = atomic_load(&e->duplicates);
  h->rejected = atomic_load(&e->rejected);
  h->batches = atomic_load(&e->batches);
  h->shed = atomic_load(&e->shed);
  h->payments_pending = e->pay ? hub_payments_pending(e->pay) : 0;
  h->breaker = e->pay ? hub_payments_breaker(e->pay) : "closed";
}

void hub_engine_stop(hub_engine *e) {
  if (!e) return;
  if (e->inbox) inbox_stop(e->inbox);
  if (e->thread_started) {
    pthread_join(e->thread, NULL);
    e->thread_started = false;
  }
  hub_cluster_stop(e->cluster); /* cluster mode: its partitions given up at once */
  hub_payments_destroy(e->pay);
  e->pay = NULL;
  if (e->mqtt) {
    publish_hub_status(e, false);
    fl_mqtt_stop(e->mqtt, 2000);
  }
}

void hub_engine_destroy(hub_engine *e) {
  if (!e) return;
  hub_engine_stop(e);
  fl_mqtt_destroy(e->mqtt);
  hub_cluster_destroy(e->cluster);
  hub_store_close(e->st);
  inbox_destroy(e->inbox);
  outflow_destroy(e->outflow);
  effects_destroy(e->fx);
  strmap_free(&e->telemetry_published);
  strmap_free(&e->stations_changed);
  free(e->acked);
  free(e->forgetting);
  free(e->ack_answers);
  pthread_mutex_destroy(&e->acked_lock);
  free(e);
}
