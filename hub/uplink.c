#include "uplink.h"

#include <stdio.h>
#include <string.h>

#include "domain.h"
#include "downlink.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/partition.h"
#include "fleet/topic.h"

#define CLOCK_PLAUSIBLE_MS (5 * 60 * 1000) /* device clocks further off are flagged */

/* Keeps a rejected message for the operator. */
static int dead_letter(hub_txn *t, const uplink_msg *in, uplink_result *res, const char *dev,
                       int code, const char *detail) {
  res->outcome = UPLINK_REJECTED;
  fl_warn("rejected topic=%s device=%s error=%s detail=%s", in->topic, dev ? dev : "-",
          fl_errname(code), detail);
  return hub_store_dead_letter(t->store, t->now_ms, in->topic, dev, fl_errname(code), detail,
                               in->payload, in->len);
}

/* Returns true if type may travel on channel ch. */
static bool channel_allows(fl_channel ch, fl_msg_type type) {
  switch (ch) {
  case FL_CH_UP_EVT: return type >= FL_MSG_RENTAL_REQUEST && type <= FL_MSG_COMMAND_RESULT;
  case FL_CH_UP_HELLO: return type == FL_MSG_HELLO;
  case FL_CH_UP_WILL: return type == FL_MSG_OFFLINE;
  case FL_CH_UP_ACK: return type == FL_MSG_DEVICE_ACK;
  case FL_CH_UP_QUERY: return type == FL_MSG_QUERY;
  default: return false;
  }
}

/* The reply topic for a request from dev (on the topic family of partition
 * part, -1: the old family): its own Response Topic if that lies in dev's
 * downlink subtree of that family, else dev's default reply topic. */
static void reply_topic_for(const char *dev, int part, const char *requested, char *out,
                            size_t cap) {
  char prefix[FL_TOPIC_MAX];
  if (part < 0)
    snprintf(prefix, sizeof prefix, FL_TOPIC_ROOT "/dev/%s/down/", dev);
  else
    snprintf(prefix, sizeof prefix, FL_TOPIC_ROOT "/p/%d/dev/%s/down/", part, dev);
  if (requested && strncmp(requested, prefix, strlen(prefix)) == 0 &&
      strlen(requested) > strlen(prefix) && !strpbrk(requested, "+#")) {
    snprintf(out, cap, "%s", requested);
    return;
  }
  fl_topic_device_p(out, cap, dev, FL_CH_DOWN_REPLY, part);
}

/* Sends dev a sync: its watermark and downlink seq. */
static int send_sync(hub_txn *t, const hub_device *d) {
  char topic[FL_TOPIC_MAX];
  uint8_t buf[256];
  size_t len;
  fl_msg m;
  fl_msg_init(&m, FL_MSG_SYNC);
  m.body.sync.acked = d->up_seq;
  m.body.sync.next_seq = d->up_seq + 1;
  m.body.sync.down_seq = d->down_seq;
  if (effects_device_topic(t->fx, topic, sizeof topic, d->id, FL_CH_DOWN_SYNC) < 0)
    return FL_ERR_INVALID;
  int rc = effects_encode(t->fx, &m, d->id, 0, NULL, buf, sizeof buf, &len);
  return rc == FL_OK ? effects_publish(t->fx, topic, buf, len, false, NULL, 0) : rc;
}

static void owe_ack(uplink_result *res, const char *dev, uint64_t seq) {
  snprintf(res->ack_dev, sizeof res->ack_dev, "%s", dev);
  res->ack_seq = seq;
}

static int on_hello(hub_txn *t, const fl_msg *m) {
  hub_device d;
  int rc = downlink_device(t, m->env.dev, &d);
  if (rc != FL_OK) return rc;
  const fl_hello *h = &m->body.hello;
  bool was_online = d.online;
  model_copy(d.role, fl_role_name(h->role));
  d.boot = m->env.boot;
  d.online = true;
  d.last_seen_ms = t->now_ms;
  rc = downlink_acked(t, &d, h->applied);
  if (rc == FL_OK) rc = hub_store_device_put(t->store, &d);
  if (rc == FL_OK) rc = send_sync(t, &d);
  if (rc == FL_OK) rc = downlink_resend(t, d.id, h->applied);
  if (rc == FL_OK && !was_online) rc = domain_on_presence(t, d.id);
  effects_sync_once(t->fx, d.id); /* no second sync for a gap in this batch */
  fl_info("hello device=%s role=%s boot=%llu last_seq=%llu watermark=%llu applied=%llu", d.id,
          d.role, (unsigned long long)d.boot, (unsigned long long)h->last_seq,
          (unsigned long long)d.up_seq, (unsigned long long)h->applied);
  return rc;
}

static int on_presence(hub_txn *t, const fl_msg *m) {
  hub_device d;
  int rc = downlink_device(t, m->env.dev, &d);
  if (rc != FL_OK) return rc;
  bool went_away = false;
  if (m->env.type == FL_MSG_OFFLINE) {
    went_away = d.online;
    d.online = false;
    fl_info("offline device=%s", d.id);
  } else { /* device_ack */
    rc = downlink_acked(t, &d, m->body.device_ack.upto);
    if (rc != FL_OK) return rc;
  }
  d.last_seen_ms = t->now_ms;
  rc = hub_store_device_put(t->store, &d);
  return rc == FL_OK && went_away ? domain_on_presence(t, d.id) : rc;
}

/* Applies a sequenced event once, in order. */
static int on_event(hub_txn *t, const uplink_msg *in, uplink_result *res) {
  const fl_msg *m = &res->msg;
  hub_device d;
  int rc = downlink_device(t, m->env.dev, &d);
  if (rc != FL_OK) return rc;
  uint64_t seq = m->env.seq;
  if (seq <= d.up_seq) { /* duplicate: ack again, change nothing */
    res->outcome = UPLINK_DUPLICATE;
    owe_ack(res, d.id, d.up_seq);
    return FL_OK;
  }
  if (seq > d.up_seq + 1) { /* gap: ask the device to resend after the watermark */
    res->outcome = UPLINK_GAP;
    if (!effects_sync_once(t->fx, d.id)) return FL_OK;
    fl_info("gap device=%s seq=%llu watermark=%llu: sync sent", d.id, (unsigned long long)seq,
            (unsigned long long)d.up_seq);
    return send_sync(t, &d);
  }
  int64_t skew = m->env.time_ms - t->now_ms;
  const char *flag =
      (skew > CLOCK_PLAUSIBLE_MS || skew < -CLOCK_PLAUSIBLE_MS) ? "implausible" : NULL;
  rc = hub_store_event_append(t->store, d.id, seq, fl_msg_type_name(m->env.type), m->env.corr,
                              m->env.time_ms, t->now_ms, flag, in->payload, in->len);
  if (rc != FL_OK) return rc;
  char reply[FL_TOPIC_MAX];
  reply_topic_for(d.id, effects_family(t->fx, d.id), in->response_topic, reply, sizeof reply);
  hub_origin o = {.device = d.id, .reply_topic = reply};
  size_t jobs = effects_jobs(t->fx);
  t->event_device = d.id; /* a decision to it in this batch carries seq as its ack */
  t->event_seq = seq;
  rc = domain_on_event(t, &o, m);
  t->event_device = NULL;
  t->event_seq = 0;
  if (rc != FL_OK) return rc;
  /* a request waiting for its payment: its decision may carry its ack */
  if (effects_jobs(t->fx) > jobs && (rc = effects_ack_hold(t->fx, d.id)) != FL_OK) return rc;
  /* the rules may have touched the device row (downlink seq): reload it */
  hub_device cur;
  rc = downlink_device(t, d.id, &cur);
  if (rc != FL_OK) return rc;
  cur.up_seq = seq;
  cur.last_seen_ms = t->now_ms;
  cur.clock_skew_ms = skew;
  rc = hub_store_device_put(t->store, &cur);
  if (rc == FL_OK) {
    res->outcome = UPLINK_APPLIED;
    owe_ack(res, d.id, seq);
  }
  return rc;
}

int uplink_apply(hub_txn *t, const uplink_msg *in, uplink_result *res) {
  char dev[FL_ID_MAX + 1], detail[200];
  fl_channel ch;
  int part;
  memset(res, 0, sizeof *res);
  res->outcome = UPLINK_CONTROL;
  if (fl_topic_parse_device_p(in->topic, dev, sizeof dev, &ch, &part) != FL_OK)
    return dead_letter(t, in, res, NULL, FL_ERR_TOPIC, "not a device topic of fleet/v1");
  /* cluster mode (hub/cluster.h): a partitioned topic must name the device's partition */
  if (part >= 0 && t->cfg->cluster_enabled &&
      (uint32_t)part != fl_partition_of(dev, (uint32_t)t->cfg->cluster_partitions)) {
    snprintf(detail, sizeof detail, "topic partition %d is not device %s's partition %u of %d",
             part, dev, fl_partition_of(dev, (uint32_t)t->cfg->cluster_partitions),
             t->cfg->cluster_partitions);
    res->outcome = UPLINK_REJECTED;
    fl_warn("rejected topic=%s device=%s error=partition detail=%s", in->topic, dev, detail);
    return hub_store_dead_letter(t->store, t->now_ms, in->topic, dev, "partition", detail,
                                 in->payload, in->len);
  }
  fl_decode_error err;
  fl_msg *m = &res->msg;
  int rc = fl_msg_decode(in->payload, in->len, m, &err);
  if (rc != FL_OK) return dead_letter(t, in, res, dev, rc, err.detail);
  if (strcmp(m->env.dev, dev) != 0) {
    snprintf(detail, sizeof detail, "envelope dev '%s' differs from the topic's device '%s'",
             m->env.dev, dev);
    return dead_letter(t, in, res, dev, FL_ERR_TOPIC, detail);
  }
  if (!channel_allows(ch, m->env.type)) {
    snprintf(detail, sizeof detail, "message type %s is not allowed on %s",
             fl_msg_type_name(m->env.type), in->topic);
    return dead_letter(t, in, res, dev, FL_ERR_TOPIC, detail);
  }
  if (ch == FL_CH_UP_EVT && m->env.seq == 0)
    return dead_letter(t, in, res, dev, FL_ERR_BAD_VALUE, "event without a sequence number");
  effects_learn_family(t->fx, dev, part); /* answers go back on the family it used */
  switch (ch) {
  case FL_CH_UP_EVT:
    res->is_event = true;
    return on_event(t, in, res);
  case FL_CH_UP_HELLO: return on_hello(t, m);
  case FL_CH_UP_QUERY: {
    char reply[FL_TOPIC_MAX];
    reply_topic_for(dev, part, in->response_topic, reply, sizeof reply);
    hub_origin o = {.device = dev, .reply_topic = reply};
    return domain_on_query(t, &o, m);
  }
  default: return on_presence(t, m);
  }
}

int uplink_reject(hub_txn *t, const uplink_msg *in, uplink_result *res, int code) {
  const fl_msg *m = &res->msg;
  char detail[200];
  snprintf(detail, sizeof detail, "could not apply %s seq %llu: %.100s",
           fl_msg_type_name(m->env.type), (unsigned long long)m->env.seq, fl_strerror(code));
  res->ack_dev[0] = '\0';
  int rc = dead_letter(t, in, res, m->env.dev, code, detail);
  if (rc != FL_OK || !res->is_event) return rc;
  hub_device d;
  rc = downlink_device(t, m->env.dev, &d);
  if (rc != FL_OK || m->env.seq != d.up_seq + 1) return rc;
  d.up_seq = m->env.seq;
  d.last_seen_ms = t->now_ms;
  rc = hub_store_device_put(t->store, &d);
  if (rc == FL_OK) owe_ack(res, d.id, d.up_seq);
  return rc;
}
