#include "effects.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/topic.h"
#include "outflow.h"
#include "grow.h"
#include "strmap.h"

/* Per-device acknowledgement owed after commit. */
struct ack_owed {
  char dev[FL_ID_MAX + 1];
  uint64_t upto;
  uint64_t covered; /* the highest upto a decision to it carries in this batch */
  bool hold;        /* a decision for its request is pending */
  bool repeat;      /* it sent an event again */
  bool synced;      /* a sync went out in this batch already */
};

struct hub_effects {
  uint64_t boot;
  uint64_t mid_counter;
  hub_effect_msg *msgs;
  size_t n_msgs, cap_msgs;
  pay_job *jobs;
  size_t n_jobs, cap_jobs;
  struct ack_owed *acks;
  size_t n_acks, cap_acks;
  hub_notice *notices;
  size_t n_notices, cap_notices;
  strmap state_topics; /* retained topic -> index in msgs */
  strmap families;     /* device -> its partition + 1 (0: the family of 1.0 and 1.1) */
};

int effects_create(uint64_t boot, hub_effects **out) {
  hub_effects *fx = calloc(1, sizeof *fx);
  if (!fx) return FL_ERR_NOMEM;
  fx->boot = boot;
  *out = fx;
  return FL_OK;
}

void effects_destroy(hub_effects *fx) {
  if (!fx) return;
  effects_discard(fx);
  free(fx->msgs);
  free(fx->jobs);
  free(fx->acks);
  free(fx->notices);
  strmap_free(&fx->state_topics);
  strmap_free(&fx->families);
  free(fx);
}

int effects_encode(hub_effects *fx, fl_msg *m, const char *dev, uint64_t seq, const char *corr,
                   uint8_t *buf, size_t cap, size_t *len) {
  snprintf(m->env.dev, sizeof m->env.dev, "%s", dev);
  snprintf(m->env.mid, sizeof m->env.mid, "hub-%llu-%llu", (unsigned long long)fx->boot,
           (unsigned long long)++fx->mid_counter);
  m->env.boot = fx->boot;
  m->env.seq = seq;
  m->env.time_ms = fl_now_ms();
  snprintf(m->env.corr, sizeof m->env.corr, "%s", corr ? corr : "");
  int rc = fl_msg_encode(m, buf, cap, len);
  if (rc != FL_OK)
    fl_error("encode %s for %s failed: %s", fl_msg_type_name(m->env.type), dev, fl_strerror(rc));
  return rc;
}

int effects_publish(hub_effects *fx, const char *topic, const uint8_t *payload, size_t len,
                    bool retain, const uint8_t *corr, size_t corr_len) {
  if (hub_grow((void **)&fx->msgs, &fx->cap_msgs, fx->n_msgs + 1, sizeof *fx->msgs) != FL_OK)
    return FL_ERR_NOMEM;
  hub_effect_msg *o = &fx->msgs[fx->n_msgs];
  memset(o, 0, sizeof *o);
  snprintf(o->topic, sizeof o->topic, "%s", topic);
  o->payload = malloc(len ? len : 1);
  if (!o->payload) return FL_ERR_NOMEM;
  if (len) memcpy(o->payload, payload, len);
  o->len = len;
  o->retain = retain;
  if (corr && corr_len <= sizeof o->corr) {
    memcpy(o->corr, corr, corr_len);
    o->corr_len = corr_len;
  }
  fx->n_msgs++;
  return FL_OK;
}

int effects_state(hub_effects *fx, const char *topic, fl_msg *m, uint32_t expiry_s) {
  uint8_t buf[FL_MAX_MSG_BYTES];
  size_t len;
  int rc = effects_encode(fx, m, "hub", 0, NULL, buf, sizeof buf, &len);
  if (rc != FL_OK) return rc;
  bool added;
  int64_t *slot = strmap_put(&fx->state_topics, topic, &added);
  if (!slot) return FL_ERR_NOMEM;
  /* an entry left by an output that was rolled back points past the end, or
   * at a later output of another topic: take it over */
  size_t i = (size_t)*slot;
  if (!added && i < fx->n_msgs && fx->msgs[i].retain && strcmp(fx->msgs[i].topic, topic) == 0) {
    uint8_t *p = malloc(len);
    if (!p) return FL_ERR_NOMEM;
    memcpy(p, buf, len);
    free(fx->msgs[i].payload);
    fx->msgs[i].payload = p;
    fx->msgs[i].len = len;
    fx->msgs[i].expiry_s = expiry_s;
    return FL_OK;
  }
  rc = effects_publish(fx, topic, buf, len, true, NULL, 0);
  if (rc == FL_OK) {
    *slot = (int64_t)(fx->n_msgs - 1);
    fx->msgs[fx->n_msgs - 1].durable = true;
    fx->msgs[fx->n_msgs - 1].expiry_s = expiry_s;
  }
  return rc;
}

int effects_notice(hub_effects *fx, const char *topic, fl_msg *m) {
  uint8_t buf[FL_MAX_MSG_BYTES];
  size_t len;
  int rc = effects_encode(fx, m, "hub", 0, NULL, buf, sizeof buf, &len);
  if (rc == FL_OK) rc = effects_publish(fx, topic, buf, len, false, NULL, 0);
  if (rc == FL_OK) fx->msgs[fx->n_msgs - 1].durable = true;
  return rc;
}

int effects_persist(hub_effects *fx, hub_store *st, int64_t now_ms) {
  for (size_t i = 0; i < fx->n_msgs; i++) {
    hub_effect_msg *o = &fx->msgs[i];
    if (!o->durable || o->outbox_seq) continue;
    int rc = hub_store_outbox_put(st, o->topic, o->payload, o->len, o->retain, o->expiry_s,
                                  now_ms, &o->outbox_seq);
    if (rc != FL_OK) return rc;
  }
  return FL_OK;
}

int effects_payment(hub_effects *fx, const pay_job *job) {
  if (hub_grow((void **)&fx->jobs, &fx->cap_jobs, fx->n_jobs + 1, sizeof *fx->jobs) != FL_OK)
    return FL_ERR_NOMEM;
  fx->jobs[fx->n_jobs++] = *job;
  return FL_OK;
}

static struct ack_owed *ack_find(hub_effects *fx, const char *dev, bool create) {
  for (size_t i = 0; i < fx->n_acks; i++)
    if (strcmp(fx->acks[i].dev, dev) == 0) return &fx->acks[i];
  if (!create || hub_grow((void **)&fx->acks, &fx->cap_acks, fx->n_acks + 1, sizeof *fx->acks) != FL_OK)
    return NULL;
  struct ack_owed *a = &fx->acks[fx->n_acks++];
  memset(a, 0, sizeof *a);
  snprintf(a->dev, sizeof a->dev, "%s", dev);
  return a;
}

int effects_ack(hub_effects *fx, const char *device, uint64_t seq) {
  struct ack_owed *a = ack_find(fx, device, true);
  if (!a) return FL_ERR_NOMEM;
  if (seq > a->upto) a->upto = seq;
  return FL_OK;
}

int effects_ack_covered(hub_effects *fx, const char *device, uint64_t upto) {
  if (!fx->n_msgs) return FL_ERR_INVALID;
  hub_effect_msg *o = &fx->msgs[fx->n_msgs - 1];
  o->covers = upto;
  snprintf(o->covers_dev, sizeof o->covers_dev, "%s", device);
  return FL_OK;
}

int effects_ack_repeat(hub_effects *fx, const char *device) {
  struct ack_owed *a = ack_find(fx, device, true);
  if (!a) return FL_ERR_NOMEM;
  a->repeat = true;
  return FL_OK;
}

int effects_ack_hold(hub_effects *fx, const char *device) {
  struct ack_owed *a = ack_find(fx, device, true);
  if (!a) return FL_ERR_NOMEM;
  a->hold = true;
  return FL_OK;
}

void effects_learn_family(hub_effects *fx, const char *device, int part) {
  if (part < 0 && !strmap_get(&fx->families, device)) return; /* the default */
  bool added;
  int64_t *slot = strmap_put(&fx->families, device, &added);
  if (slot) *slot = part < 0 ? 0 : (int64_t)part + 1;
}

int effects_family(const hub_effects *fx, const char *device) {
  const int64_t *slot = strmap_get(&fx->families, device);
  return slot ? (int)*slot - 1 : -1;
}

int effects_device_topic(const hub_effects *fx, char *buf, size_t cap, const char *device,
                         fl_channel ch) {
  return fl_topic_device_p(buf, cap, device, ch, effects_family(fx, device));
}

bool effects_sync_once(hub_effects *fx, const char *device) {
  struct ack_owed *a = ack_find(fx, device, true);
  if (!a || a->synced) return false;
  a->synced = true;
  return true;
}

void effects_tag_last(hub_effects *fx, uint64_t seq, uint32_t expiry_s) {
  if (!fx->n_msgs) return;
  fx->msgs[fx->n_msgs - 1].outbox_seq = seq;
  fx->msgs[fx->n_msgs - 1].expiry_s = expiry_s;
}

int effects_collect(hub_effects *fx, const char *kind, const fl_notice *change) {
  if (hub_grow((void **)&fx->notices, &fx->cap_notices, fx->n_notices + 1, sizeof *fx->notices) != FL_OK)
    return FL_ERR_NOMEM;
  hub_notice *n = &fx->notices[fx->n_notices++];
  snprintf(n->kind, sizeof n->kind, "%s", kind);
  n->change = *change;
  return FL_OK;
}

size_t effects_collected(const hub_effects *fx) { return fx->n_notices; }
const hub_notice *effects_collected_at(const hub_effects *fx, size_t i) {
  return i < fx->n_notices ? &fx->notices[i] : NULL;
}
void effects_collected_clear(hub_effects *fx) { fx->n_notices = 0; }

effects_mark effects_mark_now(const hub_effects *fx) {
  return (effects_mark){.msgs = fx->n_msgs, .jobs = fx->n_jobs, .notices = fx->n_notices};
}

void effects_undo(hub_effects *fx, effects_mark mark) {
  for (size_t i = mark.msgs; i < fx->n_msgs; i++) free(fx->msgs[i].payload);
  if (mark.msgs < fx->n_msgs) fx->n_msgs = mark.msgs;
  if (mark.jobs < fx->n_jobs) fx->n_jobs = mark.jobs;
  if (mark.notices < fx->n_notices) fx->n_notices = mark.notices;
}

void effects_discard(hub_effects *fx) {
  effects_undo(fx, (effects_mark){0, 0, 0});
  fx->n_acks = 0;
  strmap_clear(&fx->state_topics);
}

void effects_flush(hub_effects *fx, const hub_effects_sink *sink) {
  for (size_t i = 0; i < fx->n_msgs; i++) {
    hub_effect_msg *o = &fx->msgs[i];
    if (o->covers) {
      struct ack_owed *a = ack_find(fx, o->covers_dev, true);
      if (a && o->covers > a->covered) a->covered = o->covers;
    }
    int rc = sink->publish(sink->ctx, o->topic, o->payload, o->len, o->retain,
                           o->corr_len ? o->corr : NULL, o->corr_len, o->outbox_seq, o->expiry_s);
    if (rc != FL_OK) fl_debug("publish %s deferred: %s", o->topic, fl_strerror(rc));
  }
  for (size_t i = 0; i < fx->n_acks; i++) {
    struct ack_owed *a = &fx->acks[i];
    int part = effects_family(fx, a->dev);
    if (sink->ack) {
      unsigned flags = (a->hold ? OUTFLOW_HOLD : 0) | (a->repeat ? OUTFLOW_REPEAT : 0);
      if (a->upto || a->covered) sink->ack(sink->ctx, a->dev, part, a->upto, a->covered, flags);
      continue;
    }
    if (!a->upto || (part >= 0 && a->covered >= a->upto && !a->repeat)) continue; /* the decision was the ack */
    fl_msg m;
    uint8_t buf[256];
    size_t len;
    char topic[FL_TOPIC_MAX];
    fl_msg_init(&m, FL_MSG_ACK);
    m.body.ack.upto = a->upto;
    if (fl_topic_device_p(topic, sizeof topic, a->dev, FL_CH_DOWN_ACK, part) > 0 &&
        effects_encode(fx, &m, a->dev, 0, NULL, buf, sizeof buf, &len) == FL_OK)
      sink->publish(sink->ctx, topic, buf, len, false, NULL, 0, 0, 0);
  }
  for (size_t i = 0; i < fx->n_jobs; i++) sink->pay(sink->ctx, &fx->jobs[i]);
  fx->n_jobs = 0;
  effects_discard(fx);
}

size_t effects_count(const hub_effects *fx) { return fx->n_msgs; }
const hub_effect_msg *effects_at(const hub_effects *fx, size_t i) {
  return i < fx->n_msgs ? &fx->msgs[i] : NULL;
}
size_t effects_jobs(const hub_effects *fx) { return fx->n_jobs; }
const pay_job *effects_job_at(const hub_effects *fx, size_t i) {
  return i < fx->n_jobs ? &fx->jobs[i] : NULL;
}
uint64_t effects_ack_of(const hub_effects *fx, const char *device) {
  for (size_t i = 0; i < fx->n_acks; i++)
    if (strcmp(fx->acks[i].dev, device) == 0) return fx->acks[i].upto;
  return 0;
}
