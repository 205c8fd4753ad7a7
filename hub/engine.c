/* The hub engine. See engine.h for the shape; the rules it keeps:
 *  - one thread writes hub.db; a batch of inputs is one transaction, each
 *    input inside its own savepoint so that one bad input never spoils the
 *    others;
 *  - nothing leaves the hub (ack, decision, command, state, payment call)
 *    before the transaction that produced it has committed;
 *  - an uplink event is applied at most once: (device, seq) at or below the
 *    device's watermark is a duplicate and is acked again; above
 *    watermark + 1 is a gap and is answered with a sync so the device resends. */
#include "engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "booking.h"
#include "engine_internal.h"
#include "fleet.h"
#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/topic.h"
#include "rental.h"

#define copy_str(dst, src) snprintf((dst), sizeof(dst), "%s", (src))
#define CLOCK_PLAUSIBLE_MS (5 * 60 * 1000) /* device clocks further off are flagged */

enum input_kind { IN_MQTT, IN_PAYMENT, IN_OP, IN_CONNECTED };

/* An operator command waiting for the engine; freed by whoever is last. */
struct op_call {
  hub_op op;
  hub_op_result res;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  int refs;
};

struct hub_input {
  enum input_kind kind;
  /* IN_MQTT: the strings point into data[] */
  char *topic;
  char *response_topic;
  uint8_t *payload;
  size_t len;
  uint8_t *corr;
  size_t corr_len;
  pay_result pay;       /* IN_PAYMENT */
  struct op_call *call; /* IN_OP */
  char data[];
};

/* A message to publish once the batch commits. */
struct out_msg {
  char topic[FL_TOPIC_MAX];
  uint8_t *payload;
  size_t len;
  bool retain;
  uint8_t corr[FL_ID_MAX];
  size_t corr_len;
};

/* Per-device acknowledgement owed after commit. */
struct ack_entry {
  char dev[FL_ID_MAX + 1];
  uint64_t upto;
  bool synced; /* a sync went out in this batch already */
};

struct hub_engine {
  hub_config cfg;
  hub_store *st;
  fl_mqtt *mqtt;
  hub_payments *pay;
  uint64_t boot;
  uint64_t mid_counter;
  /* input queue */
  pthread_mutex_t qlock;
  pthread_cond_t qnotempty, qnotfull;
  struct hub_input **ring;
  size_t qcap, qhead, qlen;
  bool stopping;
  bool thread_started;
  pthread_t thread;
  /* what the batch in hand produced */
  struct out_msg *outs;
  size_t n_outs, cap_outs;
  pay_job *jobs;
  size_t n_jobs, cap_jobs;
  struct ack_entry *acks;
  size_t n_acks, cap_acks;
  /* retained state topics of the batch -> index in outs, so that a thing
   * changed several times in one batch is published once, in its last state */
  int32_t *state_slots;
  size_t n_state_slots; /* power of two, 0 until first use */
  /* last publish time per throttled key (vehicle telemetry) */
  struct throttle_entry {
    char *key;
    int64_t at_ms;
  } *throttle;
  size_t n_throttle, cap_throttle; /* cap: power of two */
  /* the event being applied: its ack is noted only if it sticks */
  char pending_ack_dev[FL_ID_MAX + 1];
  uint64_t pending_ack_seq;
  int64_t next_retry_scan_ms;
  /* figures */
  int64_t started_us;
  atomic_bool ready;
  atomic_uint_fast64_t applied, duplicates, rejected, batches, shed;
  atomic_bool resend_due; /* the connect notice did not fit in the queue */
};

/* ---- growing arrays ---------------------------------------------------- */

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return FL_OK;
  size_t n = *cap ? *cap * 2 : 64;
  while (n < need) n *= 2;
  void *p = realloc(*arr, n * elem);
  if (!p) return FL_ERR_NOMEM;
  *arr = p;
  *cap = n;
  return FL_OK;
}

/* ---- queue --------------------------------------------------------------- */

/* Queues in (taking ownership). With wait, blocks while the queue is full;
 * without, drops in and returns FL_ERR_FULL (paho's threads must never block:
 * they hold paho's own lock during callbacks, and the engine needs that lock
 * to publish). Returns FL_ERR_SHUTDOWN (and frees in) once stopping. */
static int queue_push(hub_engine *e, struct hub_input *in, bool wait) {
  pthread_mutex_lock(&e->qlock);
  while (wait && e->qlen == e->qcap && !e->stopping) pthread_cond_wait(&e->qnotfull, &e->qlock);
  int rc = e->stopping ? FL_ERR_SHUTDOWN : e->qlen == e->qcap ? FL_ERR_FULL : FL_OK;
  if (rc == FL_OK) {
    e->ring[(e->qhead + e->qlen) % e->qcap] = in;
    e->qlen++;
    pthread_cond_signal(&e->qnotempty);
  }
  pthread_mutex_unlock(&e->qlock);
  if (rc != FL_OK) free(in);
  return rc;
}

/* Takes up to max inputs, waiting at most wait_ms for the first. */
static size_t queue_take(hub_engine *e, struct hub_input **out, size_t max, int wait_ms) {
  pthread_mutex_lock(&e->qlock);
  if (e->qlen == 0 && !e->stopping && wait_ms > 0) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)wait_ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&e->qnotempty, &e->qlock, &ts);
  }
  size_t n = 0;
  while (n < max && e->qlen > 0) {
    out[n++] = e->ring[e->qhead];
    e->qhead = (e->qhead + 1) % e->qcap;
    e->qlen--;
  }
  if (n) pthread_cond_broadcast(&e->qnotfull);
  pthread_mutex_unlock(&e->qlock);
  return n;
}

/* ---- paho and worker callbacks (not the engine thread) ------------------ */

static void on_mqtt_message(void *ctx, const fl_mqtt_msg *msg) {
  hub_engine *e = ctx;
  size_t tlen = strlen(msg->topic) + 1;
  size_t rlen = msg->response_topic ? strlen(msg->response_topic) + 1 : 0;
  size_t clen = msg->corr_len <= FL_ID_MAX ? msg->corr_len : 0;
  struct hub_input *in = calloc(1, sizeof *in + tlen + rlen + clen + msg->len + 1);
  if (!in) {
    fl_error("out of memory: message on %s dropped (the device will resend)", msg->topic);
    return;
  }
  in->kind = IN_MQTT;
  char *p = in->data;
  in->topic = memcpy(p, msg->topic, tlen);
  p += tlen;
  if (rlen) {
    in->response_topic = memcpy(p, msg->response_topic, rlen);
    p += rlen;
  }
  if (clen) {
    in->corr = memcpy(p, msg->corr, clen);
    in->corr_len = clen;
    p += clen;
  }
  in->payload = (uint8_t *)p;
  if (msg->len) memcpy(p, msg->payload, msg->len);
  in->len = msg->len;
  /* Shedding is safe: an event that is not acked is sent again by its
   * device, a lost hello is repeated, a lost device_ack is covered by the next. */
  if (queue_push(e, in, false) == FL_ERR_FULL) {
    uint64_t n = atomic_fetch_add(&e->shed, 1);
    if ((n & (n + 1)) == 0) /* 1st, 2nd, 4th, 8th... */
      fl_warn("engine queue full (%zu): %llu messages shed so far; devices will resend",
              e->qcap, (unsigned long long)n + 1);
  }
}

static void on_payment_done(void *ctx, const pay_result *res) {
  hub_engine *e = ctx;
  struct hub_input *in = calloc(1, sizeof *in);
  if (!in) return; /* the step stays "calling" and is resumed at restart */
  in->kind = IN_PAYMENT;
  in->pay = *res;
  queue_push(e, in, true);
}

/* Encodes an envelope + body for the hub into buf. */
static int hub_encode(hub_engine *e, fl_msg *m, const char *dev, uint64_t seq, const char *corr,
                      uint8_t *buf, size_t cap, size_t *len) {
  copy_str(m->env.dev, dev);
  snprintf(m->env.mid, sizeof m->env.mid, "hub-%llu-%llu", (unsigned long long)e->boot,
           (unsigned long long)++e->mid_counter);
  m->env.boot = e->boot;
  m->env.seq = seq;
  m->env.time_ms = fl_now_ms();
  copy_str(m->env.corr, corr ? corr : "");
  int rc = fl_msg_encode(m, buf, cap, len);
  if (rc != FL_OK)
    fl_error("encode %s for %s failed: %s", fl_msg_type_name(m->env.type), dev, fl_strerror(rc));
  return rc;
}

static void publish_hub_status(hub_engine *e, bool online) {
  fl_msg m;
  uint8_t buf[256];
  size_t len;
  fl_msg_init(&m, FL_MSG_HUB_STATUS);
  m.body.hub_status.online = online;
  if (hub_encode(e, &m, "hub", 0, NULL, buf, sizeof buf, &len) == FL_OK)
    fl_mqtt_publish(e->mqtt, FL_TOPIC_HUB_STATUS, buf, len, 1, true, NULL, NULL, 0, 0);
}

static void on_mqtt_connected(void *ctx) {
  hub_engine *e = ctx;
  fl_info("mqtt connected uri=%s", e->cfg.mqtt_uri);
  publish_hub_status(e, true);
  /* The engine republishes the stored downlink first thing (P-SEQ-9 after a
   * restart): a decision committed just before a crash must not be
   * overtaken by a newer one. */
  struct hub_input *in = calloc(1, sizeof *in);
  if (in) {
    in->kind = IN_CONNECTED;
    if (queue_push(e, in, false) != FL_OK) atomic_store(&e->resend_due, true);
  }
}

static void on_mqtt_lost(void *ctx, const char *cause) {
  hub_engine *e = ctx;
  fl_warn("mqtt lost uri=%s cause=%s", e->cfg.mqtt_uri, cause);
}

/* ---- outputs ------------------------------------------------------------- */

/* Queues a publish for after commit (payload copied). */
static int out_add(hub_engine *e, const char *topic, const uint8_t *payload, size_t len,
                   bool retain, const uint8_t *corr, size_t corr_len) {
  if (grow((void **)&e->outs, &e->cap_outs, e->n_outs + 1, sizeof *e->outs) != FL_OK)
    return FL_ERR_NOMEM;
  struct out_msg *o = &e->outs[e->n_outs];
  memset(o, 0, sizeof *o);
  copy_str(o->topic, topic);
  o->payload = malloc(len ? len : 1);
  if (!o->payload) return FL_ERR_NOMEM;
  memcpy(o->payload, payload, len);
  o->len = len;
  o->retain = retain;
  if (corr && corr_len <= sizeof o->corr) {
    memcpy(o->corr, corr, corr_len);
    o->corr_len = corr_len;
  }
  e->n_outs++;
  return FL_OK;
}

/* Drops outputs and jobs queued after the given marks (a rolled-back input). */
static void out_truncate(hub_engine *e, size_t n_outs, size_t n_jobs) {
  for (size_t i = n_outs; i < e->n_outs; i++) free(e->outs[i].payload);
  e->n_outs = n_outs;
  e->n_jobs = n_jobs;
}

static struct ack_entry *ack_find(hub_engine *e, const char *dev, bool create) {
  for (size_t i = 0; i < e->n_acks; i++)
    if (strcmp(e->acks[i].dev, dev) == 0) return &e->acks[i];
  if (!create || grow((void **)&e->acks, &e->cap_acks, e->n_acks + 1, sizeof *e->acks) != FL_OK)
    return NULL;
  struct ack_entry *a = &e->acks[e->n_acks++];
  memset(a, 0, sizeof *a);
  copy_str(a->dev, dev);
  return a;
}

/* Publishes everything the committed batch produced, then forgets it. */
static void out_flush(hub_engine *e) {
  for (size_t i = 0; i < e->n_outs; i++) {
    struct out_msg *o = &e->outs[i];
    int rc = fl_mqtt_publish(e->mqtt, o->topic, o->payload, o->len, 1, o->retain, NULL,
                             o->corr_len ? o->corr : NULL, o->corr_len, 0);
    if (rc != FL_OK) fl_debug("publish %s deferred: %s", o->topic, fl_strerror(rc));
    free(o->payload);
  }
  e->n_outs = 0;
  if (e->state_slots) memset(e->state_slots, 0xff, e->n_state_slots * sizeof *e->state_slots);
  for (size_t i = 0; i < e->n_acks; i++) {
    struct ack_entry *a = &e->acks[i];
    if (!a->upto) continue;
    fl_msg m;
    uint8_t buf[256];
    size_t len;
    char topic[FL_TOPIC_MAX];
    fl_msg_init(&m, FL_MSG_ACK);
    m.body.ack.upto = a->upto;
    if (fl_topic_device(topic, sizeof topic, a->dev, FL_CH_DOWN_ACK) > 0 &&
        hub_encode(e, &m, a->dev, 0, NULL, buf, sizeof buf, &len) == FL_OK)
      fl_mqtt_publish(e->mqtt, topic, buf, len, 1, false, NULL, NULL, 0, 0);
  }
  e->n_acks = 0;
  for (size_t i = 0; i < e->n_jobs; i++) hub_payments_submit(e->pay, &e->jobs[i]);
  e->n_jobs = 0;
}

/* ---- services for the domain modules ------------------------------------ */

hub_store *hub_engine_store(hub_engine *e) { return e->st; }
const hub_config *hub_engine_config(hub_engine *e) { return &e->cfg; }

/* Loads device id, or a fresh row for a device never seen. */
static int device_load(hub_engine *e, const char *id, hub_device *d) {
  int rc = hub_store_device_get(e->st, id, d);
  if (rc == FL_ERR_NOT_FOUND) {
    memset(d, 0, sizeof *d);
    copy_str(d->id, id);
    rc = FL_OK;
  }
  return rc;
}

int hub_emit_downlink(hub_engine *e, const char *device, const char *topic, fl_msg *m,
                      const char *corr, int64_t expires_ms) {
  hub_device d;
  int rc = device_load(e, device, &d);
  if (rc != FL_OK) return rc;
  d.down_seq++;
  rc = hub_store_device_put(e->st, &d);
  if (rc != FL_OK) return rc;
  uint8_t buf[FL_MAX_MSG_BYTES];
  hub_downlink dl;
  memset(&dl, 0, sizeof dl);
  rc = hub_encode(e, m, device, d.down_seq, corr, buf, sizeof buf, &dl.len);
  if (rc != FL_OK) return rc;
  copy_str(dl.device, device);
  dl.seq = d.down_seq;
  copy_str(dl.type, fl_msg_type_name(m->env.type));
  copy_str(dl.topic, topic);
  dl.corr_len = corr ? strlen(corr) : 0;
  if (dl.corr_len) memcpy(dl.corr, corr, dl.corr_len);
  dl.expires_ms = expires_ms;
  dl.payload = buf;
  rc = hub_store_downlink_put(e->st, &dl, fl_now_ms());
  /* An offline device gets it with the resend that answers its hello. */
  if (rc == FL_OK && d.online) rc = out_add(e, topic, buf, dl.len, false, dl.corr, dl.corr_len);
  return rc;
}

static uint32_t topic_hash(const char *t) {
  uint32_t h = 2166136261u;
  for (; *t; t++) h = (h ^ (uint8_t)*t) * 16777619u;
  return h;
}

/* Returns the slot for topic in the batch's state map (empty: -1 inside),
 * growing the map as outs grows. NULL when out of memory. */
static int32_t *state_slot(hub_engine *e, const char *topic) {
  if (e->n_state_slots < 2 * (e->n_outs + 1)) {
    size_t n = e->n_state_slots ? e->n_state_slots : 256;
    while (n < 2 * (e->n_outs + 1)) n *= 2;
    int32_t *slots = malloc(n * sizeof *slots);
    if (!slots) return NULL;
    memset(slots, 0xff, n * sizeof *slots);
    for (size_t i = 0; i < e->n_outs; i++) { /* rehash the retained outputs */
      if (!e->outs[i].retain) continue;
      size_t j = topic_hash(e->outs[i].topic) & (n - 1);
      while (slots[j] >= 0) j = (j + 1) & (n - 1);
      slots[j] = (int32_t)i;
    }
    free(e->state_slots);
    e->state_slots = slots;
    e->n_state_slots = n;
  }
  size_t mask = e->n_state_slots - 1, j = topic_hash(topic) & mask;
  for (;; j = (j + 1) & mask) {
    int32_t i = e->state_slots[j];
    if (i < 0) return &e->state_slots[j];
    /* entries of rolled-back outputs point past n_outs: take them over */
    if ((size_t)i >= e->n_outs) return &e->state_slots[j];
    if (e->outs[i].retain && strcmp(e->outs[i].topic, topic) == 0) return &e->state_slots[j];
  }
}

/* Publishes m retained on the state topic of kind/id: once per batch, with
 * the last state (retained state is last-writer-wins anyway). */
static int emit_state(hub_engine *e, fl_msg *m, const char *kind, const char *id) {
  char topic[FL_TOPIC_MAX];
  uint8_t buf[1024];
  size_t len;
  if (fl_topic_state(topic, sizeof topic, kind, id) < 0) return FL_ERR_INVALID;
  int rc = hub_encode(e, m, "hub", 0, NULL, buf, sizeof buf, &len);
  if (rc != FL_OK) return rc;
  int32_t *slot = state_slot(e, topic);
  if (!slot) return FL_ERR_NOMEM;
  if (*slot >= 0 && (size_t)*slot < e->n_outs) { /* already in this batch: replace it */
    struct out_msg *o = &e->outs[*slot];
    uint8_t *p = malloc(len);
    if (!p) return FL_ERR_NOMEM;
    memcpy(p, buf, len);
    free(o->payload);
    o->payload = p;
    o->len = len;
    return FL_OK;
  }
  rc = out_add(e, topic, buf, len, true, NULL, 0);
  if (rc == FL_OK) *slot = (int32_t)(e->n_outs - 1);
  return rc;
}

bool hub_throttle(hub_engine *e, const char *key, int64_t now_ms, int64_t period_ms) {
  if (2 * (e->n_throttle + 1) > e->cap_throttle) { /* grow and rehash */
    size_t cap = e->cap_throttle ? e->cap_throttle * 2 : 1024;
    struct throttle_entry *t = calloc(cap, sizeof *t);
    if (!t) return true;
    for (size_t i = 0; i < e->cap_throttle; i++) {
      if (!e->throttle[i].key) continue;
      size_t j = topic_hash(e->throttle[i].key) & (cap - 1);
      while (t[j].key) j = (j + 1) & (cap - 1);
      t[j] = e->throttle[i];
    }
    free(e->throttle);
    e->throttle = t;
    e->cap_throttle = cap;
  }
  size_t mask = e->cap_throttle - 1, j = topic_hash(key) & mask;
  while (e->throttle[j].key && strcmp(e->throttle[j].key, key) != 0) j = (j + 1) & mask;
  struct throttle_entry *t = &e->throttle[j];
  if (!t->key) {
    t->key = strdup(key);
    if (!t->key) return true;
    e->n_throttle++;
  } else if (now_ms - t->at_ms < period_ms) {
    return false;
  }
  t->at_ms = now_ms;
  return true;
}

/* Publishes a notification of a change of kind/id from -> to. */
static int emit_notify(hub_engine *e, const char *kind, const char *id, const char *from,
                       const char *to, const char *text) {
  if (from && strcmp(from, to) == 0) return FL_OK;
  char topic[FL_TOPIC_MAX];
  uint8_t buf[1024];
  size_t len;
  fl_msg m;
  fl_msg_init(&m, FL_MSG_NOTIFY);
  copy_str(m.body.notify.kind, kind);
  copy_str(m.body.notify.id, id);
  copy_str(m.body.notify.from, from ? from : "");
  copy_str(m.body.notify.to, to);
  copy_str(m.body.notify.text, text ? text : "");
  if (fl_topic_notify(topic, sizeof topic, kind) < 0) return FL_ERR_INVALID;
  int rc = hub_encode(e, &m, "hub", 0, NULL, buf, sizeof buf, &len);
  return rc == FL_OK ? out_add(e, topic, buf, len, false, NULL, 0) : rc;
}

int hub_emit_vehicle(hub_engine *e, const hub_vehicle *v, const char *from, const char *text) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_VEHICLE_STATE);
  fl_vehicle_state *s = &m.body.vehicle_state;
  copy_str(s->vehicle, v->id);
  copy_str(s->name, v->name);
  copy_str(s->station, v->station);
  s->rate_cents = v->rate_cents;
  copy_str(s->state, v->state);
  copy_str(s->rental, v->rental);
  s->energy_pct = v->energy_pct > 0 ? (uint32_t)v->energy_pct : 0;
  if (v->has_position) {
    s->lat = v->lat;
    s->lon = v->lon;
  }
  int rc = emit_state(e, &m, "vehicle", v->id);
  return rc == FL_OK ? emit_notify(e, "vehicle", v->id, from, v->state, text) : rc;
}

int hub_emit_rental(hub_engine *e, const hub_rental *r, const char *from) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_RENTAL_STATE);
  fl_rental_state *s = &m.body.rental_state;
  copy_str(s->rental, r->id);
  copy_str(s->vehicle, r->vehicle);
  copy_str(s->customer, r->customer);
  copy_str(s->state, r->state);
  copy_str(s->reason, r->reason);
  s->charged_cents = r->charged_cents;
  s->refunded_cents = r->refunded_cents;
  s->fee_cents = r->fee_cents;
  s->due_ms = r->due_ms;
  int rc = emit_state(e, &m, "rental", r->id);
  return rc == FL_OK ? emit_notify(e, "rental", r->id, from, r->state, r->reason) : rc;
}

int hub_emit_repair(hub_engine *e, const hub_repair *r, const char *from) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_REPAIR_STATE);
  fl_repair_state *s = &m.body.repair_state;
  copy_str(s->repair, r->id);
  copy_str(s->vehicle, r->vehicle);
  copy_str(s->state, r->state);
  snprintf(s->text, sizeof s->text, "%s %s", r->dtcs, r->text);
  int rc = emit_state(e, &m, "repair", r->id);
  return rc == FL_OK ? emit_notify(e, "repair", r->id, from, r->state, r->dtcs) : rc;
}

int hub_emit_booking(hub_engine *e, const char *id, const char *from, const char *to,
                     const char *text) {
  return emit_notify(e, "booking", id, from, to, text);
}

int hub_emit_alert(hub_engine *e, const char *id, const char *name, const char *text) {
  fl_warn("alert=%s id=%s %s", name, id, text);
  return emit_notify(e, "alert", id, NULL, name, text);
}

int hub_emit_payment(hub_engine *e, const pay_job *job) {
  if (grow((void **)&e->jobs, &e->cap_jobs, e->n_jobs + 1, sizeof *e->jobs) != FL_OK)
    return FL_ERR_NOMEM;
  e->jobs[e->n_jobs++] = *job;
  return FL_OK;
}

bool hub_payment_admit(hub_engine *e, uint32_t *retry_after_s) {
  return hub_payments_admit(e->pay, retry_after_s);
}

static const char *op_name(hub_op_kind k) {
  static const char *const names[] = {
      [HUB_OP_VEHICLE_REGISTER] = "vehicle_register", [HUB_OP_VEHICLE_RETIRE] = "vehicle_retire",
      [HUB_OP_REPAIR_START] = "repair_start",         [HUB_OP_REPAIR_COMPLETE] = "repair_complete",
      [HUB_OP_SAGA_RETRY] = "saga_retry",             [HUB_OP_SAGA_COMPENSATE] = "saga_compensate",
      [HUB_OP_READMODEL_CHECK] = "readmodel_check",   [HUB_OP_READMODEL_REBUILD] = "readmodel_rebuild",
  };
  return names[k];
}

int hub_log_op(hub_engine *e, const hub_op *op, int64_t now_ms) {
  uint64_t seq;
  int rc = hub_store_next_id(e->st, "op", &seq);
  if (rc != FL_OK) return rc;
  char json[512];
  int n = snprintf(json, sizeof json,
                   "{\"op\":\"%s\",\"vehicle\":\"%s\",\"name\":\"%s\",\"station\":\"%s\","
                   "\"rate_cents\":%lld,\"repair\":\"%s\",\"rental\":\"%s\",\"actor\":\"%s\"}",
                   op_name(op->kind), op->vehicle, op->name, op->station,
                   (long long)op->rate_cents, op->repair, op->rental, op->actor);
  return hub_store_event_append(e->st, "op", seq, op_name(op->kind), NULL, now_ms, now_ms, NULL,
                                (const uint8_t *)json, (size_t)(n < (int)sizeof json ? n : 0));
}

/* ---- applying inputs ------------------------------------------------------ */

/* Keeps a rejected message for the operator. */
static int dead_letter(hub_engine *e, const struct hub_input *in, const char *dev, int code,
                       const char *detail) {
  atomic_fetch_add(&e->rejected, 1);
  fl_warn("rejected topic=%s device=%s error=%s detail=%s", in->topic, dev ? dev : "-",
          fl_errname(code), detail);
  return hub_store_dead_letter(e->st, fl_now_ms(), in->topic, dev, fl_errname(code), detail,
                               in->payload, in->len);
}

/* Returns true if type may travel on channel ch. */
static bool channel_allows(fl_channel ch, fl_msg_type t) {
  switch (ch) {
  case FL_CH_UP_EVT:
    return t >= FL_MSG_RENTAL_REQUEST && t <= FL_MSG_COMMAND_RESULT;
  case FL_CH_UP_HELLO:
    return t == FL_MSG_HELLO;
  case FL_CH_UP_WILL:
    return t == FL_MSG_OFFLINE;
  case FL_CH_UP_ACK:
    return t == FL_MSG_DEVICE_ACK;
  default:
    return false;
  }
}

/* The reply topic for a request from dev: its own Response Topic if that lies
 * in dev's downlink subtree, else dev's default reply topic. */
static void reply_topic_for(const char *dev, const char *requested, char *out, size_t cap) {
  char prefix[FL_TOPIC_MAX];
  snprintf(prefix, sizeof prefix, FL_TOPIC_ROOT "/dev/%s/down/", dev);
  if (requested && strncmp(requested, prefix, strlen(prefix)) == 0 &&
      strlen(requested) > strlen(prefix) && !strpbrk(requested, "+#")) {
    snprintf(out, cap, "%s", requested);
    return;
  }
  fl_topic_device(out, cap, dev, FL_CH_DOWN_REPLY);
}

/* Sends dev a sync: its watermark and downlink seq. */
static int emit_sync(hub_engine *e, const hub_device *d) {
  char topic[FL_TOPIC_MAX];
  uint8_t buf[256];
  size_t len;
  fl_msg m;
  fl_msg_init(&m, FL_MSG_SYNC);
  m.body.sync.acked = d->up_seq;
  m.body.sync.next_seq = d->up_seq + 1;
  m.body.sync.down_seq = d->down_seq;
  if (fl_topic_device(topic, sizeof topic, d->id, FL_CH_DOWN_SYNC) < 0) return FL_ERR_INVALID;
  int rc = hub_encode(e, &m, d->id, 0, NULL, buf, sizeof buf, &len);
  return rc == FL_OK ? out_add(e, topic, buf, len, false, NULL, 0) : rc;
}

/* Resends one stored downlink message, unless it is an expired command
 * (P-SEQ-11: the device would only report it expired). */
static int resend_downlink(void *ctx, const hub_downlink *d) {
  if (d->expires_ms && d->expires_ms < fl_now_ms()) return FL_OK;
  return out_add(ctx, d->topic, d->payload, d->len, false, d->corr, d->corr_len);
}

static int apply_hello(hub_engine *e, const fl_msg *m, int64_t now) {
  hub_device d;
  int rc = device_load(e, m->env.dev, &d);
  if (rc != FL_OK) return rc;
  const fl_hello *h = &m->body.hello;
  copy_str(d.role, fl_role_name(h->role));
  d.boot = m->env.boot;
  d.online = true;
  d.last_seen_ms = now;
  if (h->applied > d.down_applied && h->applied <= d.down_seq) {
    d.down_applied = h->applied;
    rc = hub_store_downlink_ack(e->st, d.id, d.down_applied);
    if (rc != FL_OK) return rc;
  }
  rc = hub_store_device_put(e->st, &d);
  if (rc == FL_OK) rc = emit_sync(e, &d);
  if (rc == FL_OK) rc = hub_store_downlink_each(e->st, d.id, h->applied, resend_downlink, e);
  struct ack_entry *a = ack_find(e, d.id, true);
  if (a) a->synced = true;
  fl_info("hello device=%s role=%s boot=%llu last_seq=%llu watermark=%llu applied=%llu", d.id,
          d.role, (unsigned long long)d.boot, (unsigned long long)h->last_seq,
          (unsigned long long)d.up_seq, (unsigned long long)h->applied);
  return rc;
}

static int apply_presence(hub_engine *e, const fl_msg *m, int64_t now) {
  hub_device d;
  int rc = device_load(e, m->env.dev, &d);
  if (rc != FL_OK) return rc;
  if (m->env.type == FL_MSG_OFFLINE) {
    d.online = false;
    fl_info("offline device=%s", d.id);
  } else { /* device_ack */
    uint64_t upto = m->body.device_ack.upto;
    if (upto > d.down_applied && upto <= d.down_seq) {
      d.down_applied = upto;
      rc = hub_store_downlink_ack(e->st, d.id, upto);
      if (rc != FL_OK) return rc;
    }
  }
  d.last_seen_ms = now;
  return hub_store_device_put(e->st, &d);
}

/* Runs the domain handler of a sequenced event. */
static int dispatch_event(hub_engine *e, const hub_origin *o, const fl_msg *m) {
  switch (m->env.type) {
  case FL_MSG_RENTAL_REQUEST:
    return rental_on_request(e, o, m);
  case FL_MSG_RENTAL_CANCEL:
    return rental_on_cancel(e, o, m);
  case FL_MSG_RENTAL_RETURN:
    return rental_on_return(e, o, m);
  case FL_MSG_TELEMETRY:
    return fleet_on_telemetry(e, o, m);
  case FL_MSG_LOCK:
    return fleet_on_lock(e, o, m);
  case FL_MSG_FAULT:
    return fleet_on_fault(e, o, m);
  case FL_MSG_BOOKING_REQUEST:
    return booking_on_request(e, o, m);
  case FL_MSG_BOOKING_CANCEL:
    return booking_on_cancel(e, o, m);
  case FL_MSG_COMMAND_RESULT: {
    const fl_command_result *c = &m->body.command_result;
    fl_info("command device=%s seq=%llu status=%s %s", o->device, (unsigned long long)c->cmd_seq,
            fl_cmd_status_name(c->status), c->reason);
    if (c->status == FL_CMD_APPLIED) return FL_OK;
    char text[FL_TEXT_MAX + 1];
    snprintf(text, sizeof text, "command %llu %s: %.80s", (unsigned long long)c->cmd_seq,
             fl_cmd_status_name(c->status), c->reason);
    return hub_emit_alert(e, o->device, "command_not_applied", text);
  }
  default:
    return FL_ERR_INVALID;
  }
}

/* Applies a sequenced event once, in order. */
static int apply_event(hub_engine *e, const struct hub_input *in, const fl_msg *m, int64_t now) {
  hub_device d;
  int rc = device_load(e, m->env.dev, &d);
  if (rc != FL_OK) return rc;
  uint64_t seq = m->env.seq;
  if (seq <= d.up_seq) { /* duplicate: ack again, change nothing */
    atomic_fetch_add(&e->duplicates, 1);
    copy_str(e->pending_ack_dev, d.id);
    e->pending_ack_seq = d.up_seq;
    return FL_OK;
  }
  if (seq > d.up_seq + 1) { /* gap: ask the device to resend after the watermark */
    struct ack_entry *a = ack_find(e, d.id, true);
    if (!a || a->synced) return FL_OK;
    a->synced = true;
    fl_info("gap device=%s seq=%llu watermark=%llu: sync sent", d.id, (unsigned long long)seq,
            (unsigned long long)d.up_seq);
    return emit_sync(e, &d);
  }
  int64_t skew = m->env.time_ms - now;
  const char *flag = (skew > CLOCK_PLAUSIBLE_MS || skew < -CLOCK_PLAUSIBLE_MS) ? "implausible" : NULL;
  rc = hub_store_event_append(e->st, d.id, seq, fl_msg_type_name(m->env.type), m->env.corr,
                              m->env.time_ms, now, flag, in->payload, in->len);
  if (rc != FL_OK) return rc;
  char reply[FL_TOPIC_MAX];
  reply_topic_for(d.id, in->response_topic, reply, sizeof reply);
  hub_origin o = {.device = d.id, .reply_topic = reply, .now_ms = now};
  rc = dispatch_event(e, &o, m);
  if (rc != FL_OK) return rc;
  /* the handlers may have touched the device row (downlink seq): reload it */
  hub_device cur;
  rc = device_load(e, d.id, &cur);
  if (rc != FL_OK) return rc;
  cur.up_seq = seq;
  cur.last_seen_ms = now;
  cur.clock_skew_ms = skew;
  rc = hub_store_device_put(e->st, &cur);
  if (rc == FL_OK) {
    atomic_fetch_add(&e->applied, 1);
    copy_str(e->pending_ack_dev, d.id);
    e->pending_ack_seq = seq;
  }
  return rc;
}

/* Marks the event with seq of dev consumed although its handler failed: it
 * is dead-lettered, logged and acked so that the device moves on. */
static int consume_failed_event(hub_engine *e, const fl_msg *m, int64_t now) {
  hub_device d;
  int rc = device_load(e, m->env.dev, &d);
  if (rc != FL_OK || m->env.seq != d.up_seq + 1) return rc;
  d.up_seq = m->env.seq;
  d.last_seen_ms = now;
  rc = hub_store_device_put(e->st, &d);
  if (rc == FL_OK) {
    copy_str(e->pending_ack_dev, d.id);
    e->pending_ack_seq = d.up_seq;
  }
  return rc;
}

/* Decodes and validates an MQTT input. Returns FL_OK with *m, or the fl_err
 * of the rejection after dead-lettering it (FL_OK returned then as handled). */
static int apply_mqtt(hub_engine *e, struct hub_input *in, fl_msg *m, int64_t now, bool *is_event) {
  char dev[FL_ID_MAX + 1], detail[200];
  fl_channel ch;
  *is_event = false;
  if (fl_topic_parse_device(in->topic, dev, sizeof dev, &ch) != FL_OK)
    return dead_letter(e, in, NULL, FL_ERR_TOPIC, "not a device topic of fleet/v1");
  fl_decode_error err;
  int rc = fl_msg_decode(in->payload, in->len, m, &err);
  if (rc != FL_OK) return dead_letter(e, in, dev, rc, err.detail);
  if (strcmp(m->env.dev, dev) != 0) {
    snprintf(detail, sizeof detail, "envelope dev '%s' differs from the topic's device '%s'",
             m->env.dev, dev);
    return dead_letter(e, in, dev, FL_ERR_TOPIC, detail);
  }
  if (!channel_allows(ch, m->env.type)) {
    snprintf(detail, sizeof detail, "message type %s is not allowed on %s",
             fl_msg_type_name(m->env.type), in->topic);
    return dead_letter(e, in, dev, FL_ERR_TOPIC, detail);
  }
  if (ch == FL_CH_UP_EVT && m->env.seq == 0)
    return dead_letter(e, in, dev, FL_ERR_BAD_VALUE, "event without a sequence number");
  switch (ch) {
  case FL_CH_UP_EVT:
    *is_event = true;
    return apply_event(e, in, m, now);
  case FL_CH_UP_HELLO:
    return apply_hello(e, m, now);
  default:
    return apply_presence(e, m, now);
  }
}

/* Checks the read models against a rebuild from the change log, or rebuilds them. */
static int apply_readmodel_op(hub_engine *e, struct op_call *c) {
  uint64_t n = 0;
  char where[FL_TEXT_MAX + 1];
  hub_op_result *res = &c->res;
  if (c->op.kind == HUB_OP_READMODEL_REBUILD) {
    res->code = hub_store_readmodel_rebuild(e->st, &n);
    snprintf(res->message, sizeof res->message, "read models rebuilt from %llu changes",
             (unsigned long long)n);
  } else {
    res->code = hub_store_readmodel_check(e->st, &n, where, sizeof where);
    if (res->code == FL_OK && n > 0) res->code = FL_ERR_CONFLICT;
    snprintf(res->message, sizeof res->message, "%s",
             n ? where : "read models equal a rebuild from the change log");
  }
  if (res->code == FL_OK || res->code == FL_ERR_CONFLICT)
    fl_info("op=%s %s", op_name(c->op.kind), res->message);
  return res->code;
}

static int apply_op(hub_engine *e, struct op_call *c, int64_t now) {
  switch (c->op.kind) {
  case HUB_OP_VEHICLE_REGISTER:
    return fleet_op_register(e, &c->op, &c->res, now);
  case HUB_OP_VEHICLE_RETIRE:
    return fleet_op_retire(e, &c->op, &c->res, now);
  case HUB_OP_REPAIR_START:
    return fleet_op_repair_start(e, &c->op, &c->res, now);
  case HUB_OP_REPAIR_COMPLETE:
    return fleet_op_repair_complete(e, &c->op, &c->res, now);
  case HUB_OP_SAGA_RETRY:
    return rental_op_retry(e, &c->op, &c->res, now);
  case HUB_OP_SAGA_COMPENSATE:
    return rental_op_compensate(e, &c->op, &c->res, now);
  case HUB_OP_READMODEL_CHECK:
  case HUB_OP_READMODEL_REBUILD:
    return apply_readmodel_op(e, c);
  }
  return FL_ERR_INVALID;
}

/* Errors after which the batch cannot go on: the store itself is failing
 * (a full disk included: SQLite may already have rolled the whole
 * transaction back, and nothing written after that may commit on its own). */
static bool fatal(int rc) {
  return rc == FL_ERR_DB || rc == FL_ERR_IO || rc == FL_ERR_NOMEM || rc == FL_ERR_FULL;
}

/* Returns true while the batch's transaction is still open: SQLite rolls a
 * transaction back by itself on some errors (SQLITE_FULL, SQLITE_IOERR,
 * SQLITE_NOMEM), and then the savepoint and the batch are gone too. */
static bool txn_alive(sqlite3 *db) { return !sqlite3_get_autocommit(db); }

/* Applies one input inside its own savepoint. Returns FL_OK, or a fatal
 * error that aborts the batch. */
static int apply_input(hub_engine *e, struct hub_input *in, int64_t now) {
  sqlite3 *db = hub_store_db(e->st);
  size_t mark_outs = e->n_outs, mark_jobs = e->n_jobs;
  e->pending_ack_dev[0] = '\0';
  if (fl_db_exec(db, "SAVEPOINT input") != FL_OK) return FL_ERR_DB;
  fl_msg m;
  bool is_event = false;
  int rc;
  switch (in->kind) {
  case IN_MQTT:
    rc = apply_mqtt(e, in, &m, now, &is_event);
    break;
  case IN_PAYMENT:
    rc = rental_on_payment(e, &in->pay, now);
    break;
  case IN_CONNECTED:
    rc = hub_store_downlink_online(e->st, resend_downlink, e);
    if (rc == FL_OK) fl_info("connected: stored downlink of online devices published again");
    break;
  default:
    rc = apply_op(e, in->call, now);
    if (rc != FL_OK && !in->call->res.message[0])
      snprintf(in->call->res.message, sizeof in->call->res.message, "%s", fl_strerror(rc));
    in->call->res.code = rc;
    break;
  }
  if (rc != FL_OK && !txn_alive(db)) {
    /* The store rolled the batch back under us: whatever the error looked
     * like, nothing of this batch may be written, dead-lettered or acked. */
    out_truncate(e, mark_outs, mark_jobs);
    e->pending_ack_dev[0] = '\0';
    return fatal(rc) ? rc : FL_ERR_DB;
  }
  if (rc != FL_OK && in->kind == IN_CONNECTED) {
    rc = fatal(rc) ? rc : FL_OK;
  } else if (rc != FL_OK && in->kind != IN_OP) {
    /* Undo this input only, then keep it for the operator. */
    fl_db_exec(db, "ROLLBACK TO input");
    out_truncate(e, mark_outs, mark_jobs);
    e->pending_ack_dev[0] = '\0';
    if (fatal(rc)) {
      fl_db_exec(db, "RELEASE input");
      return rc;
    }
    if (in->kind == IN_MQTT) {
      char detail[200];
      snprintf(detail, sizeof detail, "could not apply %s seq %llu: %.100s",
               fl_msg_type_name(m.env.type), (unsigned long long)m.env.seq, fl_strerror(rc));
      rc = dead_letter(e, in, m.env.dev, rc, detail);
      if (rc == FL_OK && is_event) rc = consume_failed_event(e, &m, now);
    } else {
      fl_error("payment result rental=%s step=%s not applied: %s", in->pay.job.rental,
               in->pay.job.step, fl_strerror(rc));
      rc = FL_OK;
    }
  } else if (rc != FL_OK) { /* an operator command that was refused changes nothing */
    fl_db_exec(db, "ROLLBACK TO input");
    out_truncate(e, mark_outs, mark_jobs);
    rc = fatal(rc) ? rc : FL_OK;
  }
  if (fl_db_exec(db, "RELEASE input") != FL_OK) return FL_ERR_DB;
  if (rc == FL_OK && e->pending_ack_dev[0]) {
    struct ack_entry *a = ack_find(e, e->pending_ack_dev, true);
    if (a && e->pending_ack_seq > a->upto) a->upto = e->pending_ack_seq;
  }
  return rc;
}

static void op_call_release(struct op_call *c) {
  pthread_mutex_lock(&c->lock);
  bool last = --c->refs == 0;
  pthread_mutex_unlock(&c->lock);
  if (!last) return;
  pthread_mutex_destroy(&c->lock);
  pthread_cond_destroy(&c->cond);
  free(c);
}

static void op_call_finish(struct op_call *c) {
  pthread_mutex_lock(&c->lock);
  c->done = true;
  pthread_cond_signal(&c->cond);
  pthread_mutex_unlock(&c->lock);
  op_call_release(c);
}

/* Applies the batch in one transaction; retries the whole batch while the
 * store fails (the inputs are kept until they are committed). */
static void run_batch(hub_engine *e, struct hub_input **in, size_t n) {
  sqlite3 *db = hub_store_db(e->st);
  for (int attempt = 0;; attempt++) {
    int64_t now = fl_now_ms();
    int rc = fl_db_exec(db, "BEGIN IMMEDIATE");
    for (size_t i = 0; rc == FL_OK && i < n; i++) rc = apply_input(e, in[i], now);
    if (rc == FL_OK && now >= e->next_retry_scan_ms) {
      rc = rental_resume(e, "retry", now);
      e->next_retry_scan_ms = now + 500;
    }
    if (rc == FL_OK) rc = fl_db_exec(db, "COMMIT");
    if (rc == FL_OK) break;
    if (txn_alive(db)) fl_db_exec(db, "ROLLBACK"); /* a failed COMMIT may have ended it */
    out_truncate(e, 0, 0);
    e->n_acks = 0;
    fl_error("batch of %zu inputs not committed (%s), attempt %d; retrying", n, fl_strerror(rc),
             attempt + 1);
    if (e->stopping && attempt >= 3) {
      for (size_t i = 0; i < n; i++)
        if (in[i]->kind == IN_OP) in[i]->call->res.code = FL_ERR_SHUTDOWN;
      break;
    }
    fl_sleep_ms(attempt < 10 ? 100 << (attempt / 2) : 3000);
  }
  atomic_fetch_add(&e->batches, 1);
  out_flush(e);
  for (size_t i = 0; i < n; i++) {
    if (in[i]->kind == IN_OP) op_call_finish(in[i]->call);
    free(in[i]);
  }
}

static void *engine_main(void *arg) {
  hub_engine *e = arg;
  size_t max = (size_t)e->cfg.batch_max;
  struct hub_input **batch = calloc(max, sizeof *batch);
  if (!batch) {
    fl_error("engine: out of memory");
    return NULL;
  }
  /* Recovery: every step recorded as "calling" is called again (same key). */
  sqlite3 *db = hub_store_db(e->st);
  if (fl_db_exec(db, "BEGIN IMMEDIATE") == FL_OK) {
    int rc = rental_resume(e, "calling", INT64_MAX);
    if (rc == FL_OK && fl_db_exec(db, "COMMIT") == FL_OK) {
      if (e->n_jobs) fl_info("recovery: %zu payment steps resumed", e->n_jobs);
      out_flush(e);
    } else {
      fl_db_exec(db, "ROLLBACK");
      out_truncate(e, 0, 0);
    }
  }
  atomic_store(&e->ready, true);
  for (;;) {
    size_t n = 0;
    if (atomic_exchange(&e->resend_due, false) && (batch[0] = calloc(1, sizeof *batch[0]))) {
      batch[0]->kind = IN_CONNECTED;
      n = 1;
    }
    n += queue_take(e, batch + n, max - n, n ? 0 : 200);
    if (n > 0 && n < max / 4 && e->cfg.linger_us > 0) {
      /* Group commit: a small batch waits a moment for company, so that a
       * steady stream costs one transaction (and one wake-up) per many
       * inputs instead of per input. */
      struct timespec ts = {0, (long)e->cfg.linger_us * 1000L};
      nanosleep(&ts, NULL);
      n += queue_take(e, batch + n, max - n, 0);
    }
    if (n == 0 && fl_now_ms() < e->next_retry_scan_ms && !e->stopping) continue;
    run_batch(e, batch, n);
    /* Stopping: the batch in hand is committed and published; what is still
     * queued was never acked, so its senders resend it (payment results:
     * their steps stay "calling" and are called again at the next start). */
    pthread_mutex_lock(&e->qlock);
    bool done = e->stopping;
    pthread_mutex_unlock(&e->qlock);
    if (done) break;
  }
  free(batch);
  return NULL;
}

/* ---- lifecycle ------------------------------------------------------------ */

int hub_engine_create(const hub_config *cfg, hub_engine **out) {
  hub_engine *e = calloc(1, sizeof *e);
  if (!e) return FL_ERR_NOMEM;
  e->cfg = *cfg;
  pthread_mutex_init(&e->qlock, NULL);
  pthread_cond_init(&e->qnotempty, NULL);
  pthread_cond_init(&e->qnotfull, NULL);
  e->qcap = (size_t)cfg->queue_max;
  e->ring = calloc(e->qcap, sizeof *e->ring);
  e->started_us = fl_mono_us();
  int rc = e->ring ? hub_store_open(cfg->state_dir, cfg->durability, &e->st) : FL_ERR_NOMEM;
  if (rc == FL_OK) rc = hub_store_next_id(e->st, "hub_boot", &e->boot);
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
  fl_msg m;
  fl_msg_init(&m, FL_MSG_HUB_STATUS);
  m.body.hub_status.online = false;
  int rc = hub_encode(e, &m, "hub", 0, NULL, will, sizeof will, &will_len);
  if (rc != FL_OK) return rc;
  const char *subs[] = {FL_TOPIC_ALL_UP};
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
      .n_subscriptions = 1,
      .ca_file = e->cfg.mqtt_ca_file,
      .cert_file = e->cfg.mqtt_cert_file,
      .key_file = e->cfg.mqtt_key_file,
  };
  fl_mqtt_callbacks cb = {.ctx = e, .on_message = on_mqtt_message,
                          .on_connected = on_mqtt_connected, .on_lost = on_mqtt_lost};
  rc = fl_mqtt_create(&o, &cb, &e->mqtt);
  if (rc != FL_OK) return rc;
  if (pthread_create(&e->thread, NULL, engine_main, e) != 0) return FL_ERR_NOMEM;
  e->thread_started = true;
  fl_info("engine started boot=%llu state_dir=%s", (unsigned long long)e->boot, e->cfg.state_dir);
  return fl_mqtt_start(e->mqtt);
}

int hub_engine_op(hub_engine *e, const hub_op *op, hub_op_result *res, int timeout_ms) {
  struct op_call *c = calloc(1, sizeof *c);
  struct hub_input *in = calloc(1, sizeof *in);
  if (!c || !in) {
    free(c);
    free(in);
    res->code = FL_ERR_NOMEM;
    snprintf(res->message, sizeof res->message, "out of memory");
    return res->code;
  }
  c->op = *op;
  c->refs = 2;
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->cond, NULL);
  in->kind = IN_OP;
  in->call = c;
  if (queue_push(e, in, true) != FL_OK) {
    c->refs = 1;
    op_call_release(c);
    res->code = FL_ERR_SHUTDOWN;
    snprintf(res->message, sizeof res->message, "the hub is shutting down");
    return res->code;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += timeout_ms / 1000;
  ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&c->lock);
  while (!c->done)
    if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) != 0) break;
  if (c->done) {
    *res = c->res;
  } else {
    res->code = FL_ERR_TIMEOUT;
    snprintf(res->message, sizeof res->message, "the hub did not answer within %d ms", timeout_ms);
  }
  pthread_mutex_unlock(&c->lock);
  op_call_release(c);
  return res->code;
}

void hub_engine_health(hub_engine *e, hub_health *h) {
  memset(h, 0, sizeof *h);
  h->mqtt_connected = e->mqtt && fl_mqtt_connected(e->mqtt);
  h->ready = atomic_load(&e->ready) && h->mqtt_connected;
  h->uptime_s = (uint64_t)((fl_mono_us() - e->started_us) / 1000000);
  pthread_mutex_lock(&e->qlock);
  h->queue_depth = e->qlen;
  pthread_mutex_unlock(&e->qlock);
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
  pthread_mutex_lock(&e->qlock);
  e->stopping = true;
  pthread_cond_broadcast(&e->qnotempty);
  pthread_cond_broadcast(&e->qnotfull);
  pthread_mutex_unlock(&e->qlock);
  if (e->thread_started) {
    pthread_join(e->thread, NULL);
    e->thread_started = false;
  }
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
  hub_store_close(e->st);
  /* inputs still queued were not acked: their senders resend them */
  for (size_t i = 0; i < e->qlen; i++) {
    struct hub_input *in = e->ring[(e->qhead + i) % e->qcap];
    if (in->kind == IN_OP) {
      in->call->res.code = FL_ERR_SHUTDOWN;
      op_call_finish(in->call);
    }
    free(in);
  }
  out_truncate(e, 0, 0);
  free(e->outs);
  free(e->jobs);
  free(e->acks);
  free(e->state_slots);
  for (size_t i = 0; i < e->cap_throttle; i++) free(e->throttle[i].key);
  free(e->throttle);
  free(e->ring);
  pthread_mutex_destroy(&e->qlock);
  pthread_cond_destroy(&e->qnotempty);
  pthread_cond_destroy(&e->qnotfull);
  free(e);
}
