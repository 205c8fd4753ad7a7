#include "downlink.h"

#include <string.h>

#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/topic.h"

int downlink_device(hub_txn *t, const char *id, hub_device *d) {
  int rc = hub_store_device_get(t->store, id, d);
  if (rc == FL_ERR_NOT_FOUND) {
    memset(d, 0, sizeof *d);
    model_copy(d->id, id);
    rc = FL_OK;
  }
  return rc;
}

int downlink_send(hub_txn *t, const char *device, const char *topic, fl_msg *m, const char *corr,
                  int64_t expires_ms) {
  hub_device d;
  int rc = downlink_device(t, device, &d);
  if (rc != FL_OK) return rc;
  d.down_seq++;
  rc = hub_store_device_put(t->store, &d);
  if (rc != FL_OK) return rc;
  uint64_t upto = 0;
  if (m->env.type == FL_MSG_DECISION) {
    /* rev 1.2: the decision carries the device's committed watermark; for
     * a device of that revision it is the ack (P-ACK-1). The event being
     * applied commits with the decision. */
    upto = d.up_seq;
    if (t->event_device && strcmp(t->event_device, device) == 0 && t->event_seq > upto)
      upto = t->event_seq;
    m->body.decision.upto = upto;
  }
  uint8_t buf[FL_MAX_MSG_BYTES];
  hub_downlink dl;
  memset(&dl, 0, sizeof dl);
  rc = effects_encode(t->fx, m, device, d.down_seq, corr, buf, sizeof buf, &dl.len);
  if (rc != FL_OK) return rc;
  model_copy(dl.device, device);
  dl.seq = d.down_seq;
  model_copy(dl.type, fl_msg_type_name(m->env.type));
  model_copy(dl.topic, topic);
  dl.corr_len = corr ? strlen(corr) : 0;
  if (dl.corr_len > sizeof dl.corr) dl.corr_len = sizeof dl.corr;
  if (dl.corr_len) memcpy(dl.corr, corr, dl.corr_len);
  dl.expires_ms = expires_ms;
  dl.payload = buf;
  rc = hub_store_downlink_put(t->store, &dl, t->now_ms);
  /* An offline device gets it with the resend that answers its hello. */
  if (rc == FL_OK && d.online) {
    rc = effects_publish(t->fx, topic, buf, dl.len, false, dl.corr, dl.corr_len);
    if (rc == FL_OK && upto) rc = effects_ack_covered(t->fx, device, upto);
  }
  return rc;
}

/* Holds one stored message, unless it is an expired command. A message
 * stored for one of the device's own channels goes out in the topic family
 * the device uses now (it may have said hello on the other one since). */
static int resend_one(void *ctx, const hub_downlink *d) {
  hub_txn *t = ctx;
  if (d->expires_ms && d->expires_ms < fl_now_ms()) return FL_OK;
  char dev[FL_ID_MAX + 1], topic[FL_TOPIC_MAX];
  fl_channel ch;
  int part;
  const char *to = d->topic;
  if (fl_topic_parse_device_p(d->topic, dev, sizeof dev, &ch, &part) == FL_OK &&
      strcmp(dev, d->device) == 0 && part != effects_family(t->fx, dev) &&
      effects_device_topic(t->fx, topic, sizeof topic, dev, ch) > 0)
    to = topic;
  return effects_publish(t->fx, to, d->payload, d->len, false, d->corr, d->corr_len);
}

int downlink_resend(hub_txn *t, const char *device, uint64_t after) {
  return hub_store_downlink_each(t->store, device, after, resend_one, t);
}

int downlink_resend_online(hub_txn *t) {
  return hub_store_downlink_online(t->store, resend_one, t);
}

int downlink_acked(hub_txn *t, hub_device *d, uint64_t upto) {
  if (upto <= d->down_applied || upto > d->down_seq) return FL_OK;
  d->down_applied = upto;
  return hub_store_downlink_ack(t->store, d->id, upto);
}
