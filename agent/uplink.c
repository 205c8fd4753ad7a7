/* Uplink: the birth message, publishing the outbox in seq order within a
 * bounded window of unacknowledged PUBACKs, and the resync timers.
 *
 * After every connect the agent says hello and publishes nothing else until
 * the hub's sync names its watermark; then it sends every event after that
 * watermark, oldest first. A hello that gets no sync is repeated; acks that
 * stop progressing while events are outstanding trigger a new hello. Both
 * timers back off exponentially with jitter while the hub stays silent. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agent_internal.h"
#include "fleet/error.h"
#include "fleet/log.h"

#define AGENT_SW "fleet-agent-0.1.0"
#define TAG_SEQ_MASK ((UINT64_C(1) << AGENT_TAG_SEQ_BITS) - 1)

void uplink__hello(fl_agent *a, int64_t now_ms, const char *why) {
  a->synced = false;
  a->hello_sent_ms = now_ms;
  if (!a->connected) return; /* on_connected asks for one */
  a->want_hello = true;
  a->hello_why = why;
}

void uplink__device_ack(fl_agent *a) {
  if (a->connected) a->want_device_ack = true; /* else the next hello carries "applied" */
}

/* True for the kiosk requests, which carry a response topic. */
static bool is_request(fl_msg_type t) {
  return t == FL_MSG_RENTAL_REQUEST || t == FL_MSG_RENTAL_CANCEL || t == FL_MSG_RENTAL_RETURN ||
         t == FL_MSG_BOOKING_REQUEST || t == FL_MSG_BOOKING_CANCEL;
}

/* One thing to publish, chosen under a->lock and published without it. */
typedef struct out_item {
  enum { OUT_HELLO, OUT_DEVICE_ACK, OUT_EVENT } kind;
  uint64_t gen;       /* a->gen when it was chosen */
  size_t len;         /* hello, device_ack: encoded in a->unseq_buf */
  const char *why;    /* hello */
  uint64_t last_seq, last_ack, applied; /* hello, device_ack (applied): for the log */
  uint64_t seq;       /* event: in a->scratch */
  uint64_t prev_upto; /* event: a->sent_upto before it, to roll back to */
} out_item;

/* Not a publish error: the event was chosen for a generation (or a synced
 * state) that ended before it could be published; it was not sent. */
#define OUT_STALE 1

/* Encodes the unsequenced m into a->unseq_buf. */
static int encode_unsequenced(fl_agent *a, fl_msg *m, out_item *it) {
  agent__envelope_unsequenced(a, m);
  int err = fl_msg_encode(m, a->unseq_buf, sizeof a->unseq_buf, &it->len);
  if (err != FL_OK)
    fl_error("%s: cannot encode %s: %s", a->id, fl_msg_type_name(m->env.type), fl_errname(err));
  return err;
}

/* Picks the next event to publish into a->scratch and counts it as sent. */
static bool next_event(fl_agent *a, int64_t now_ms, out_item *it) {
  if (!a->connected || !a->synced) return false;
  while (a->inflight < a->window) {
    /* Every tick comes here: with nothing stored after sent_upto and no
     * telemetry waiting (both counted in memory), ask SQLite nothing. */
    bool none_stored = a->sent_upto + 1 >= outbox__next_seq(a->ob);
    if (none_stored && outbox__telemetry_queued(a->ob) == 0) return false;
    int err = none_stored ? FL_ERR_NOT_FOUND : outbox__next_event(a->ob, a->sent_upto, &a->scratch);
    if (err == FL_ERR_NOT_FOUND) {
      int moved = outbox__telemetry_promote(a->ob, a->window - a->inflight);
      if (moved <= 0) return false;
      continue;
    }
    if (err != FL_OK) {
      fl_warn("%s cannot read the outbox after seq=%" PRIu64 ": %s", a->id, a->sent_upto,
              fl_strerror(err));
      return false;
    }
    it->kind = OUT_EVENT;
    it->seq = a->scratch.seq;
    it->prev_upto = a->sent_upto;
    if (a->sent_upto <= outbox__last_ack(a->ob)) a->progress_ms = now_ms; /* first outstanding */
    a->sent_upto = it->seq;
    a->inflight++;
    return true;
  }
  return false;
}

/* Chooses what to publish next, in this order: hello, device_ack, events. */
static bool next_item(fl_agent *a, int64_t now_ms, out_item *it) {
  memset(it, 0, sizeof *it);
  it->gen = a->gen;
  if (a->want_hello) {
    a->want_hello = false;
    fl_msg m;
    fl_msg_init(&m, FL_MSG_HELLO);
    m.body.hello.role = a->role;
    m.body.hello.last_seq = it->last_seq = outbox__next_seq(a->ob) - 1;
    m.body.hello.last_ack = it->last_ack = outbox__last_ack(a->ob);
    m.body.hello.applied = it->applied = outbox__applied(a->ob);
    snprintf(m.body.hello.sw, sizeof m.body.hello.sw, "%s", AGENT_SW);
    it->kind = OUT_HELLO;
    it->why = a->hello_why ? a->hello_why : "?";
    if (a->connected && encode_unsequenced(a, &m, it) == FL_OK) return true;
  }
  if (a->want_device_ack) {
    a->want_device_ack = false;
    fl_msg m;
    fl_msg_init(&m, FL_MSG_DEVICE_ACK);
    m.body.device_ack.upto = it->applied = outbox__applied(a->ob);
    it->kind = OUT_DEVICE_ACK;
    if (a->connected && encode_unsequenced(a, &m, it) == FL_OK) return true;
  }
  return next_event(a, now_ms, it);
}

/* Publishes it; runs WITHOUT a->lock. Returns FL_OK, OUT_STALE or the error. */
static int publish_item(fl_agent *a, const out_item *it) {
  if (it->kind == OUT_HELLO)
    return fl_mqtt_publish(a->mqtt, a->topic_hello, a->unseq_buf, it->len, 1, false, NULL, NULL,
                           0, 0);
  if (it->kind == OUT_DEVICE_ACK)
    return fl_mqtt_publish(a->mqtt, a->topic_up_ack, a->unseq_buf, it->len, 1, false, NULL, NULL,
                           0, 0);
  /* A reconnect, a hello or a sync since it was chosen: the event belongs to
   * a stream that was restarted, and must not precede the new hello. */
  if (a->gen != it->gen || !a->synced) return OUT_STALE;
  const outbox_event *ev = &a->scratch;
  uint64_t tag = (AGENT_TAG_GEN(it->gen) << AGENT_TAG_SEQ_BITS) | (ev->seq & TAG_SEQ_MASK);
  bool req = is_request(ev->type) && ev->corr[0];
  return fl_mqtt_publish(a->mqtt, a->topic_evt, ev->payload, ev->len, 1, false,
                         req ? a->topic_reply : NULL, req ? ev->corr : NULL,
                         req ? strlen(ev->corr) : 0, tag);
}

/* Records the outcome of publishing it (a->lock held again). Returns true to
 * look for more work, false to stop: a publish failed and nothing changed
 * since (the next tick, event or connect tries again). */
static bool finish_item(fl_agent *a, const out_item *it, int err) {
  bool same_gen = a->gen == it->gen;
  switch (it->kind) {
  case OUT_HELLO:
    if (err != FL_OK) {
      fl_warn("%s hello (%s) not sent: %s", a->id, it->why, fl_strerror(err));
      break;
    }
    fl_info("%s hello sent (%s) last_seq=%" PRIu64 " last_ack=%" PRIu64 " applied=%" PRIu64,
            a->id, it->why, it->last_seq, it->last_ack, it->applied);
    break;
  case OUT_DEVICE_ACK:
    if (err != FL_OK)
      fl_warn("%s device_ack upto=%" PRIu64 " not sent: %s", a->id, it->applied,
              fl_strerror(err));
    break;
  case OUT_EVENT:
    if (!same_gen) break; /* connect or sync reset sent_upto and inflight */
    if (err != FL_OK) {
      /* Not handed to paho: send it again later. Only this thread moves
       * sent_upto within a generation, so it still equals it->seq. */
      a->sent_upto = it->prev_upto;
      a->inflight--;
      if (err != OUT_STALE && err != FL_ERR_UNAVAILABLE)
        fl_warn("%s publish of seq=%" PRIu64 ": %s", a->id, it->seq, fl_strerror(err));
      break;
    }
    if (a->resend_upto && it->seq <= a->resend_upto) a->resent++;
    if (a->resend_upto && it->seq >= a->resend_upto) {
      fl_info("%s resent %" PRIu64 " events", a->id, a->resent);
      a->resend_upto = 0;
    }
    break;
  }
  return err == FL_OK || err == OUT_STALE || !same_gen;
}

void uplink__unlock_publish(fl_agent *a) {
  if (a->pumping) { /* that thread looks again before it stops */
    pthread_mutex_unlock(&a->lock);
    return;
  }
  a->pumping = true;
  out_item it;
  while (next_item(a, agent__mono_ms(), &it)) {
    pthread_mutex_unlock(&a->lock);
    int err = publish_item(a, &it);
    pthread_mutex_lock(&a->lock);
    if (!finish_item(a, &it, err)) break;
  }
  a->pumping = false;
  pthread_mutex_unlock(&a->lock);
}

/* One of the resync timers fired without an answer: doubles its back-off
 * *base (capped at max_ms) and returns the next wait, drawn uniformly from
 * the upper half of the new base, so that devices which lost the hub
 * together spread their retries out while each one's waits still grow. */
static int64_t backoff_next(fl_agent *a, int64_t *base, int64_t max_ms) {
  *base = *base * 2 > max_ms ? max_ms : *base * 2;
  uint64_t z = (a->jitter_state += UINT64_C(0x9E3779B97F4A7C15)); /* splitmix64 */
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  z ^= z >> 31;
  int64_t half = *base / 2;
  return *base - half + (int64_t)(z % (uint64_t)(half + 1));
}

void uplink__timers(fl_agent *a, int64_t now_ms) {
  if (!a->connected) return;
  if (atomic_exchange(&a->publish_failed, false) && a->synced) {
    uplink__hello(a, now_ms, "publish failed");
    return;
  }
  if (!a->synced) {
    if (now_ms - a->hello_sent_ms >= a->hello_wait_ms) {
      a->hello_wait_ms = backoff_next(a, &a->hello_base_ms, a->hello_retry_max_ms);
      uplink__hello(a, now_ms, "no sync");
    }
    return;
  }
  if (a->sent_upto > outbox__last_ack(a->ob) && now_ms - a->progress_ms >= a->stall_wait_ms) {
    /* The hub may only be slow (its queue full of others' events): each
     * stall without an ack in between waits longer before resyncing again. */
    a->stall_wait_ms = backoff_next(a, &a->stall_base_ms, a->ack_stall_max_ms);
    uplink__hello(a, now_ms, "acks stalled");
  }
}

void uplink__published(fl_agent *a, uint64_t tag, fl_err rc) {
  if (tag >> AGENT_TAG_SEQ_BITS != AGENT_TAG_GEN(a->gen)) return; /* older generation */
  int n = atomic_load(&a->inflight);
  while (n > 0 && !atomic_compare_exchange_weak(&a->inflight, &n, n - 1)) {
  }
  if (rc != FL_OK) {
    fl_warn("%s publish of seq=%" PRIu64 " failed: %s (resent after a resync)", a->id,
            tag & TAG_SEQ_MASK, fl_strerror(rc));
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
  a->hello_wait_ms = a->hello_base_ms = a->hello_retry_ms;
  a->resend_upto = last > acked ? last : 0;
  a->resent = 0;
  fl_info("%s sync received acked=%" PRIu64 " next_seq=%" PRIu64 " down_seq=%" PRIu64
          " resending=%" PRIu64,
          a->id, s->acked, s->next_seq, s->down_seq, last > acked ? last - acked : 0);
  if (s->down_seq > outbox__applied(a->ob))
    fl_info("%s hub has downlink up to %" PRIu64 ", applied %" PRIu64, a->id, s->down_seq,
            outbox__applied(a->ob));
  /* the caller's uplink__unlock_publish() resends */
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
  a->stall_wait_ms = a->stall_base_ms = a->ack_stall_ms;
  fl_info("%s ack upto=%" PRIu64 " deleted=%d backlog=%" PRIu64, a->id, upto, n,
          outbox__backlog(a->ob));
}
