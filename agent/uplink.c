/* Uplink: the birth message, publishing the outbox in seq order within a
 * bounded window of unacknowledged PUBACKs, and the resync timers.
 *
 * After every connect the agent says hello and publishes nothing else until
 * the hub's sync names its watermark; then it sends every event after that
 * watermark, oldest first. A hello that gets no sync is repeated; acks that
 * stop progressing while events are outstanding trigger a new hello. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agent_internal.h"
#include "fleet/error.h"
#include "fleet/log.h"

#define AGENT_SW "fleet-agent-0.1.0"
#define TAG_SEQ_MASK ((UINT64_C(1) << AGENT_TAG_SEQ_BITS) - 1)

/* Encodes m and publishes it at QoS 1 on topic, without completion tag. */
static int publish_unsequenced(fl_agent *a, const char *topic, fl_msg *m) {
  uint8_t buf[512];
  size_t len = 0;
  agent__envelope_unsequenced(a, m);
  int err = fl_msg_encode(m, buf, sizeof buf, &len);
  if (err != FL_OK) {
    fl_error("%s: cannot encode %s: %s", a->id, fl_msg_type_name(m->env.type), fl_errname(err));
    return err;
  }
  return fl_mqtt_publish(a->mqtt, topic, buf, len, 1, false, NULL, NULL, 0, 0);
}

void uplink__hello(fl_agent *a, int64_t now_ms, const char *why) {
  a->synced = false;
  a->hello_sent_ms = now_ms;
  if (!a->connected) return;
  fl_msg m;
  fl_msg_init(&m, FL_MSG_HELLO);
  m.body.hello.role = a->role;
  m.body.hello.last_seq = outbox__next_seq(a->ob) - 1;
  m.body.hello.last_ack = outbox__last_ack(a->ob);
  m.body.hello.applied = outbox__applied(a->ob);
  snprintf(m.body.hello.sw, sizeof m.body.hello.sw, "%s", AGENT_SW);
  int err = publish_unsequenced(a, a->topic_hello, &m);
  if (err != FL_OK) {
    fl_warn("%s hello (%s) not sent: %s", a->id, why, fl_strerror(err));
    return;
  }
  fl_info("%s hello sent (%s) last_seq=%" PRIu64 " last_ack=%" PRIu64 " applied=%" PRIu64, a->id,
          why, m.body.hello.last_seq, m.body.hello.last_ack, m.body.hello.applied);
}

void uplink__device_ack(fl_agent *a) {
  if (!a->connected) return; /* the next hello carries "applied" */
  fl_msg m;
  fl_msg_init(&m, FL_MSG_DEVICE_ACK);
  m.body.device_ack.upto = outbox__applied(a->ob);
  int err = publish_unsequenced(a, a->topic_up_ack, &m);
  if (err != FL_OK) fl_warn("%s device_ack not sent: %s", a->id, fl_strerror(err));
}

/* True for the kiosk requests, which carry a response topic. */
static bool is_request(fl_msg_type t) {
  return t == FL_MSG_RENTAL_REQUEST || t == FL_MSG_RENTAL_CANCEL || t == FL_MSG_RENTAL_RETURN ||
         t == FL_MSG_BOOKING_REQUEST || t == FL_MSG_BOOKING_CANCEL;
}

/* Publishes the event in a->scratch with a PUBACK tag. */
static int publish_event(fl_agent *a) {
  const outbox_event *ev = &a->scratch;
  uint64_t tag = (AGENT_TAG_GEN(a->gen) << AGENT_TAG_SEQ_BITS) | (ev->seq & TAG_SEQ_MASK);
  bool req = is_request(ev->type) && ev->corr[0];
  return fl_mqtt_publish(a->mqtt, a->topic_evt, ev->payload, ev->len, 1, false,
                         req ? a->topic_reply : NULL, req ? ev->corr : NULL,
                         req ? strlen(ev->corr) : 0, tag);
}

void uplink__pump(fl_agent *a, int64_t now_ms) {
  if (!a->connected || !a->synced) return;
  while (a->inflight < a->window) {
    int err = outbox__next_event(a->ob, a->sent_upto, &a->scratch);
    if (err == FL_ERR_NOT_FOUND) {
      int moved = outbox__telemetry_promote(a->ob, a->window - a->inflight);
      if (moved <= 0) break;
      continue;
    }
    if (err == FL_OK) err = publish_event(a);
    if (err != FL_OK) {
      if (err != FL_ERR_UNAVAILABLE) fl_warn("%s publish: %s", a->id, fl_strerror(err));
      break;
    }
    uint64_t seq = a->scratch.seq;
    if (a->sent_upto <= outbox__last_ack(a->ob)) a->progress_ms = now_ms; /* first outstanding */
    a->sent_upto = seq;
    a->inflight++;
    if (a->resend_upto && seq <= a->resend_upto) a->resent++;
    if (a->resend_upto && seq >= a->resend_upto) {
      fl_info("%s resent %" PRIu64 " events", a->id, a->resent);
      a->resend_upto = 0;
    }
  }
}

void uplink__timers(fl_agent *a, int64_t now_ms) {
  if (!a->connected) return;
  if (atomic_exchange(&a->publish_failed, false) && a->synced) {
    uplink__hello(a, now_ms, "publish failed");
    return;
  }
  if (!a->synced) {
    if (now_ms - a->hello_sent_ms >= a->hello_retry_ms) uplink__hello(a, now_ms, "no sync");
    return;
  }
  if (a->sent_upto > outbox__last_ack(a->ob) && now_ms - a->progress_ms >= a->ack_stall_ms)
    uplink__hello(a, now_ms, "acks stalled");
}

void uplink__published(fl_agent *a, uint64_t tag, int rc) {
  if (tag >> AGENT_TAG_SEQ_BITS != AGENT_TAG_GEN(a->gen)) return; /* older generation */
  int n = atomic_load(&a->inflight);
  while (n > 0 && !atomic_compare_exchange_weak(&a->inflight, &n, n - 1)) {
  }
  if (rc != 0) {
    fl_warn("%s publish of seq=%" PRIu64 " failed rc=%d (resent after a resync)", a->id,
            tag & TAG_SEQ_MASK, rc);
    a->publish_failed = true;
  }
}

void uplink__synced(fl_agent *a, const fl_sync *s, int64_t now_ms) {
  if (s->next_seq > outbox__next_seq(a->ob)) {
    int err = outbox__rebase(a->ob, s->next_seq);
    if (err != FL_OK) fl_error("%s rebase to %" PRIu64 ": %s", a->id, s->next_seq, fl_strerror(err));
  }
  uint64_t last = outbox__next_seq(a->ob) - 1;
  uint64_t acked = s->acked < last ? s->acked : last;
  if (acked > outbox__last_ack(a->ob)) {
    int n = outbox__ack(a->ob, acked);
    if (n < 0) fl_error("%s ack %" PRIu64 ": %s", a->id, acked, fl_strerror(n));
  }
  a->gen++;
  a->inflight = 0;
  a->sent_upto = acked;
  a->synced = true;
  a->progress_ms = now_ms;
  a->resend_upto = last > acked ? last : 0;
  if (a->gap_asked) a->gap_synced = true;
  a->resent = 0;
  fl_info("%s sync received acked=%" PRIu64 " next_seq=%" PRIu64 " down_seq=%" PRIu64
          " resending=%" PRIu64,
          a->id, s->acked, s->next_seq, s->down_seq, last > acked ? last - acked : 0);
  if (s->down_seq > outbox__applied(a->ob))
    fl_info("%s hub has downlink up to %" PRIu64 ", applied %" PRIu64, a->id, s->down_seq,
            outbox__applied(a->ob));
  uplink__pump(a, now_ms);
}

void uplink__acked(fl_agent *a, uint64_t upto, int64_t now_ms) {
  uint64_t last = outbox__next_seq(a->ob) - 1;
  if (upto > last) {
    fl_warn("%s ack upto=%" PRIu64 " beyond last seq %" PRIu64 ": clamped", a->id, upto, last);
    upto = last;
  }
  if (upto <= outbox__last_ack(a->ob)) {
    fl_debug("%s ack upto=%" PRIu64 ": nothing new", a->id, upto);
    return;
  }
  int n = outbox__ack(a->ob, upto);
  if (n < 0) {
    fl_error("%s ack upto=%" PRIu64 ": %s", a->id, upto, fl_strerror(n));
    return;
  }
  a->progress_ms = now_ms;
  fl_info("%s ack upto=%" PRIu64 " deleted=%d backlog=%" PRIu64, a->id, upto, n,
          outbox__backlog(a->ob));
  uplink__pump(a, now_ms);
}
