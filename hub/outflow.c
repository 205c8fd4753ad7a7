#include "outflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/topic.h"
#include "grow.h"
#include "strmap.h"

/* A retained topic's pacing. */
struct paced {
  char *topic;
  int64_t last_ms;      /* last publish (0: never) */
  uint8_t *payload;     /* the held state (NULL: none held) */
  size_t len;
  uint32_t expiry_s;
  uint64_t outbox_seq;  /* its outbox row, 0: none */
  uint64_t newest_seq;  /* the highest outbox row seen for this topic */
};

/* A device's acks. */
struct dev_acks {
  char dev[FL_ID_MAX + 1];
  int part;
  uint64_t want;      /* committed: owed to the device */
  uint64_t sent;      /* sent (in flight or confirmed) or carried by a decision */
  uint64_t confirmed; /* PUBACKed */
  uint64_t inflight_upto;
  bool inflight;
  int64_t inflight_since; /* when the ack in flight went */
  int64_t hold_until; /* 0: not held */
};

struct hub_outflow {
  int interval_ms, hold_ms;
  hub_effects *fx;
  outflow_sink sink;
  struct paced *topics;
  size_t n_topics, cap_topics;
  strmap topic_ix;
  size_t *held; /* indexes into topics with a state held */
  size_t n_held, cap_held;
  struct dev_acks *devs;
  size_t n_devs, cap_devs;
  strmap dev_ix;
  size_t *holding; /* indexes into devs with an ack held */
  size_t n_holding, cap_holding;
  uint64_t ack_calls, acks_sent, states_skipped;
  size_t prune_at; /* topics kept before the quiet ones are forgotten */
};

int outflow_create(int state_interval_ms, int ack_hold_ms, hub_effects *fx,
                   const outflow_sink *sink, hub_outflow **out) {
  hub_outflow *o = calloc(1, sizeof *o);
  if (!o) return FL_ERR_NOMEM;
  o->interval_ms = state_interval_ms > 0 ? state_interval_ms : 0;
  o->hold_ms = ack_hold_ms > 0 ? ack_hold_ms : 0;
  o->fx = fx;
  o->sink = *sink;
  o->prune_at = 4096;
  *out = o;
  return FL_OK;
}

void outflow_destroy(hub_outflow *o) {
  if (!o) return;
  for (size_t i = 0; i < o->n_topics; i++) {
    free(o->topics[i].topic);
    free(o->topics[i].payload);
  }
  free(o->topics);
  free(o->held);
  free(o->devs);
  free(o->holding);
  strmap_free(&o->topic_ix);
  strmap_free(&o->dev_ix);
  free(o);
}

/* ---- retained states -------------------------------------------------- */

static struct paced *paced_of(hub_outflow *o, const char *topic, size_t *ix) {
  bool added;
  int64_t *slot = strmap_put(&o->topic_ix, topic, &added);
  if (!slot) return NULL;
  if (added) {
    if (hub_grow((void **)&o->topics, &o->cap_topics, o->n_topics + 1, sizeof *o->topics) != FL_OK)
      return NULL;
    struct paced *p = &o->topics[o->n_topics];
    memset(p, 0, sizeof *p);
    p->topic = strdup(topic);
    if (!p->topic) return NULL;
    *slot = (int64_t)o->n_topics++;
  }
  *ix = (size_t)*slot;
  return &o->topics[*ix];
}

static int paced_send(hub_outflow *o, struct paced *p, const uint8_t *payload, size_t len,
                      uint32_t expiry_s, uint64_t seq, int64_t now_ms) {
  p->last_ms = now_ms;
  return o->sink.publish(o->sink.ctx, p->topic, payload, len, true, seq, expiry_s);
}

int outflow_state(hub_outflow *o, const char *topic, const uint8_t *payload, size_t len,
                  uint32_t expiry_s, uint64_t outbox_seq, int64_t now_ms) {
  if (!o->interval_ms)
    return o->sink.publish(o->sink.ctx, topic, payload, len, true, outbox_seq, expiry_s);
  size_t ix;
  struct paced *p = paced_of(o, topic, &ix);
  if (!p) /* out of memory: unpaced is still correct */
    return o->sink.publish(o->sink.ctx, topic, payload, len, true, outbox_seq, expiry_s);
  if (outbox_seq && outbox_seq < p->newest_seq) {
    /* an older row (the outbox published again after a connect) than one
     * already handled: the newer one wins, this one is never needed */
    if (o->sink.forget) o->sink.forget(o->sink.ctx, outbox_seq);
    return FL_OK;
  }
  if (outbox_seq) p->newest_seq = outbox_seq;
  if (!p->payload && (p->last_ms == 0 || now_ms - p->last_ms >= o->interval_ms))
    return paced_send(o, p, payload, len, expiry_s, outbox_seq, now_ms);
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) return paced_send(o, p, payload, len, expiry_s, outbox_seq, now_ms);
  if (len) memcpy(copy, payload, len);
  if (p->payload) { /* replaced before it went out */
    if (p->outbox_seq && o->sink.forget) o->sink.forget(o->sink.ctx, p->outbox_seq);
    free(p->payload);
    o->states_skipped++;
  } else if (hub_grow((void **)&o->held, &o->cap_held, o->n_held + 1, sizeof *o->held) == FL_OK) {
    o->held[o->n_held++] = ix;
  } else {
    free(copy);
    return paced_send(o, p, payload, len, expiry_s, outbox_seq, now_ms);
  }
  p->payload = copy;
  p->len = len;
  p->expiry_s = expiry_s;
  p->outbox_seq = outbox_seq;
  return FL_OK;
}

static void states_due(hub_outflow *o, int64_t now_ms) {
  for (size_t i = 0; i < o->n_held;) {
    struct paced *p = &o->topics[o->held[i]];
    if (now_ms - p->last_ms < o->interval_ms) {
      i++;
      continue;
    }
    uint8_t *payload = p->payload;
    p->payload = NULL;
    int rc = paced_send(o, p, payload, p->len, p->expiry_s, p->outbox_seq, now_ms);
    if (rc != FL_OK) /* kept in the outbox: published again after the next connect */
      fl_debug("paced state %s deferred: %s", p->topic, fl_strerror(rc));
    free(payload);
    o->held[i] = o->held[--o->n_held];
  }
}

/* ---- acks ----------------------------------------------------------------- */

static struct dev_acks *dev_of(hub_outflow *o, const char *dev, size_t *ix) {
  bool added;
  int64_t *slot = strmap_put(&o->dev_ix, dev, &added);
  if (!slot) return NULL;
  if (added) {
    if (hub_grow((void **)&o->devs, &o->cap_devs, o->n_devs + 1, sizeof *o->devs) != FL_OK) return NULL;
    struct dev_acks *d = &o->devs[o->n_devs];
    memset(d, 0, sizeof *d);
    snprintf(d->dev, sizeof d->dev, "%s", dev);
    *slot = (int64_t)o->n_devs++;
  }
  *ix = (size_t)*slot;
  return &o->devs[*ix];
}

/* An ack whose PUBACK has not come back in this long is taken as lost (a
 * publish that paho dropped without a word must not stop a device's acks
 * for good): the newest watermark may go again. */
#define ACK_LOST_MS 5000

/* Sends d's newest watermark unless an ack of it is in flight. */
static void ack_send(hub_outflow *o, struct dev_acks *d, size_t ix, int64_t now_ms) {
  if (d->inflight && now_ms - d->inflight_since >= ACK_LOST_MS) {
    d->inflight = false;
    if (d->sent == d->inflight_upto) d->sent = d->confirmed;
  }
  if (d->inflight || d->want <= d->sent) return;
  fl_msg m;
  uint8_t buf[256];
  size_t len;
  char topic[FL_TOPIC_MAX];
  fl_msg_init(&m, FL_MSG_ACK);
  m.body.ack.upto = d->want;
  if (fl_topic_device_p(topic, sizeof topic, d->dev, FL_CH_DOWN_ACK, d->part) < 0 ||
      effects_encode(o->fx, &m, d->dev, 0, NULL, buf, sizeof buf, &len) != FL_OK)
    return;
  int rc = o->sink.publish(o->sink.ctx, topic, buf, len, false, OUTFLOW_ACK_TAG | ix, 0);
  if (rc != FL_OK) return; /* not connected: the device's next hello gets a sync */
  d->inflight = true;
  d->inflight_since = now_ms;
  d->inflight_upto = d->want;
  d->sent = d->want;
  o->acks_sent++;
}

static void unhold(hub_outflow *o, struct dev_acks *d, size_t ix) {
  if (!d->hold_until) return;
  d->hold_until = 0;
  for (size_t i = 0; i < o->n_holding; i++)
    if (o->holding[i] == ix) {
      o->holding[i] = o->holding[--o->n_holding];
      break;
    }
}

void outflow_ack(hub_outflow *o, const char *dev, int part, uint64_t upto, uint64_t covered,
                 unsigned flags, int64_t now_ms) {
  bool hold = flags & OUTFLOW_HOLD;
  size_t ix;
  struct dev_acks *d = dev_of(o, dev, &ix);
  if (!d) return; /* out of memory: the device resends, and gets acked then */
  o->ack_calls++;
  d->part = part;
  if (upto > d->want) d->want = upto;
  if (part >= 0 && covered > d->sent) d->sent = covered; /* the decision was its ack */
  if (flags & OUTFLOW_REPEAT) d->sent = 0; /* it did not get it: an ack message again */
  if (d->want <= d->sent) {
    unhold(o, d, ix);
    return;
  }
  if (hold && part >= 0 && o->hold_ms && !d->hold_until) {
    if (hub_grow((void **)&o->holding, &o->cap_holding, o->n_holding + 1, sizeof *o->holding) == FL_OK) {
      d->hold_until = now_ms + o->hold_ms;
      o->holding[o->n_holding++] = ix;
      return;
    }
  }
  if (d->hold_until && now_ms < d->hold_until) return;
  unhold(o, d, ix);
  ack_send(o, d, ix, now_ms);
}

void outflow_published(hub_outflow *o, uint64_t tag, bool ok, int64_t now_ms) {
  size_t ix = (size_t)(tag & ~OUTFLOW_ACK_TAG);
  if (!(tag & OUTFLOW_ACK_TAG) || ix >= o->n_devs) return;
  struct dev_acks *d = &o->devs[ix];
  if (!d->inflight) return;
  d->inflight = false;
  if (ok) {
    if (d->inflight_upto > d->confirmed) d->confirmed = d->inflight_upto;
  } else if (d->sent == d->inflight_upto) {
    d->sent = d->confirmed; /* lost with the connection: owed again */
  }
  if (!d->hold_until || now_ms >= d->hold_until) {
    unhold(o, d, ix);
    ack_send(o, d, ix, now_ms);
  }
}

static void acks_due(hub_outflow *o, int64_t now_ms) {
  for (size_t i = 0; i < o->n_holding;) {
    size_t ix = o->holding[i];
    struct dev_acks *d = &o->devs[ix];
    if (now_ms < d->hold_until) {
      i++;
      continue;
    }
    d->hold_until = 0;
    o->holding[i] = o->holding[--o->n_holding];
    ack_send(o, d, ix, now_ms);
  }
}

/* Forgets the topics that hold nothing and were last published longer than
 * an interval ago (they would be published at once anyway), so that one
 * entry per booking or repair ever made does not stay. */
static void topics_prune(hub_outflow *o, int64_t now_ms) {
  size_t kept = 0, n_held = 0;
  strmap_clear(&o->topic_ix);
  for (size_t i = 0; i < o->n_topics; i++) {
    struct paced *p = &o->topics[i];
    if (!p->payload && now_ms - p->last_ms >= o->interval_ms) {
      free(p->topic);
      continue;
    }
    bool added;
    int64_t *slot = strmap_put(&o->topic_ix, p->topic, &added);
    if (!slot) { /* out of memory: its held state goes now, unpaced */
      if (p->payload)
        o->sink.publish(o->sink.ctx, p->topic, p->payload, p->len, true, p->outbox_seq,
                        p->expiry_s);
      free(p->payload);
      free(p->topic);
      continue;
    }
    *slot = (int64_t)kept;
    o->topics[kept] = *p;
    if (p->payload) o->held[n_held++] = kept;
    kept++;
  }
  o->n_topics = kept;
  o->n_held = n_held;
  o->prune_at = kept * 2 > 4096 ? kept * 2 : 4096;
}

void outflow_due(hub_outflow *o, int64_t now_ms) {
  if (o->n_topics >= o->prune_at) topics_prune(o, now_ms);
  if (o->n_held) states_due(o, now_ms);
  if (o->n_holding) acks_due(o, now_ms);
}

int64_t outflow_next_ms(const hub_outflow *o) {
  int64_t next = INT64_MAX;
  for (size_t i = 0; i < o->n_held; i++) {
    int64_t due = o->topics[o->held[i]].last_ms + o->interval_ms;
    if (due < next) next = due;
  }
  for (size_t i = 0; i < o->n_holding; i++)
    if (o->devs[o->holding[i]].hold_until < next) next = o->devs[o->holding[i]].hold_until;
  return next;
}

void outflow_get_stats(const hub_outflow *o, outflow_stats *s) {
  s->states_held = o->n_held;
  s->states_skipped = o->states_skipped;
  s->acks_sent = o->acks_sent;
  s->acks_saved = o->ack_calls > o->acks_sent ? o->ack_calls - o->acks_sent : 0;
}
