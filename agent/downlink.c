/* Downlink: what the hub sends to this device, on its own subtree of the
 * topic family it uses (rev 1.2: fleet/v1/p/{p}/dev/{id}/down/..., legacy:
 * fleet/v1/dev/{id}/down/...).
 *
 *   down/ack    cumulative ack: delete outbox rows up to it (a decision's
 *               "upto", rev 1.2, is the same ack)
 *   down/sync   answer to hello: adopt the watermark, resend after it
 *   down/reply  answer     unsequenced reply to a query (agent_query), kept in memory
 *   down/reply  decision   } sequenced by the hub's per-device downlink seq:
 *   down/cmd    command    } applied at most once, in increasing seq order
 *                          } (gaps are normal), then device_ack
 *   hub/status  retained: a new hub boot, or online after offline, => hello
 *   p/{p}/status  rev 1.2, retained: the partition's epoch takes a value not
 *               seen, or online after offline, => hello
 *
 * Every byte is hostile: a message that does not decode, has the wrong type
 * for its topic, or names another device is logged and dropped. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_internal.h"
#include "decisions.h"
#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"

/* What to tell the owner once the lock is released. */
typedef struct downlink_notice {
  enum { NOTICE_NONE, NOTICE_DECISION, NOTICE_COMMAND, NOTICE_ANSWER } kind;
  fl_cmd_status status;
} downlink_notice;

/* The message type each downlink channel carries. */
static fl_msg_type channel_type(fl_channel ch) {
  switch (ch) {
  case FL_CH_DOWN_ACK:
    return FL_MSG_ACK;
  case FL_CH_DOWN_SYNC:
    return FL_MSG_SYNC;
  case FL_CH_DOWN_REPLY:
    return FL_MSG_DECISION;
  case FL_CH_DOWN_CMD:
    return FL_MSG_COMMAND;
  default:
    return FL_MSG_NONE;
  }
}

/* Applies command m inside the open transaction and records its result. */
static int command_apply(fl_agent *a, const fl_msg *m, fl_cmd_status *status) {
  const fl_command *c = &m->body.command;
  fl_msg result;
  fl_msg_init(&result, FL_MSG_COMMAND_RESULT);
  snprintf(result.env.corr, sizeof result.env.corr, "%s", m->env.corr);
  result.body.command_result.cmd_seq = m->env.seq;
  char *reason = result.body.command_result.reason;
  size_t cap = sizeof result.body.command_result.reason;
  int err = FL_OK;
  /* expires_ms is the hub's time: judged by the hub's clock as estimated
   * from its messages, so that a device clock that is off does not expire
   * (or keep) commands wrongly (P-SEQ-12) */
  int64_t now = agent__hub_now_ms(a);
  if (now > c->expires_ms) {
    *status = FL_CMD_EXPIRED;
    snprintf(reason, cap, "expired %" PRId64 " ms ago by the hub's clock", now - c->expires_ms);
  } else {
    err = vehicle__apply_command(a, m, status, reason, cap);
  }
  result.body.command_result.status = *status;
  return err == FL_OK ? agent__submit(a, &result, NULL) : err;
}

/* Applies a decision or command with downlink seq m->env.seq at most once. */
static void sequenced_apply(fl_agent *a, const fl_msg *m, downlink_notice *n) {
  uint64_t seq = m->env.seq, applied = outbox__applied(a->ob);
  const char *what = fl_msg_type_name(m->env.type);
  if (seq == 0) {
    fl_warn("%s %s without downlink seq: dropped", a->id, what);
    return;
  }
  if (seq <= applied) {
    fl_info("%s %s seq=%" PRIu64 " already applied (applied=%" PRIu64 "): acked again", a->id,
            what, seq, applied);
    uplink__device_ack(a);
    return;
  }
  if (seq > applied + 1 && !a->synced) {
    /* A hello is outstanding (connect, hub restart, resync): the hub's
     * answer resends everything after applied in order (P-SEQ-11), this one
     * too. Wait for that: a hub that restarted may not have published the
     * missing seqs yet, and applying this one now would make them
     * duplicates. Not acked, no extra hello. */
    fl_debug("%s %s seq=%" PRIu64 " after applied=%" PRIu64 " while waiting for sync:"
             " left to the resend",
             a->id, what, seq, applied);
    return;
  }
  /* Gaps are normal (P-SEQ-10): the hub does not resend expired commands. */
  if (seq > applied + 1)
    fl_debug("%s %s seq=%" PRIu64 " after applied=%" PRIu64 ": gap of %" PRIu64
             " (not resent, e.g. expired), applying",
             a->id, what, seq, applied, seq - applied - 1);
  fl_cmd_status status = FL_CMD_NONE;
  int err = outbox__begin(a->ob);
  if (err == FL_OK)
    err = m->env.type == FL_MSG_DECISION ? decisions__store(outbox__db(a->ob), m)
                                         : command_apply(a, m, &status);
  if (err == FL_OK) err = outbox__set_applied(a->ob, seq);
  if (err == FL_OK) err = outbox__commit(a->ob);
  else outbox__rollback(a->ob);
  if (err != FL_OK) {
    fl_error("%s %s seq=%" PRIu64 " not applied: %s (the hub will resend)", a->id, what, seq,
             fl_strerror(err));
    return;
  }
  uplink__device_ack(a);
  if (m->env.type == FL_MSG_DECISION) {
    const fl_decision *d = &m->body.decision;
    fl_info("%s decision %s %s %s ok=%d%s%s seq=%" PRIu64, a->id, fl_subject_name(d->subject),
            m->env.corr, d->state, d->ok, d->reason[0] ? " reason=" : "", d->reason, seq);
    n->kind = NOTICE_DECISION;
  } else {
    fl_info("%s command %s seq=%" PRIu64 " %s", a->id, fl_action_name(m->body.command.action),
            seq, fl_cmd_status_name(status));
    n->kind = NOTICE_COMMAND;
    n->status = status;
  }
}

/* The retained hub status: resync when the hub restarted or came back. */
static void hub_status_seen(fl_agent *a, const fl_msg *m) {
  bool online = m->body.hub_status.online;
  bool resync = a->hub_known && online && (!a->hub_online || m->env.boot != a->hub_boot);
  if (!a->hub_known || online != a->hub_online || m->env.boot != a->hub_boot)
    fl_info("%s hub %s boot=%" PRIu64, a->id, online ? "online" : "offline", m->env.boot);
  a->hub_known = true;
  a->hub_online = online;
  if (online) a->hub_boot = m->env.boot;
  /* A hub seen for the first time while a hello waits in vain (sent before
   * the hub was up, its retry backed off): say hello now. */
  int64_t now = agent__mono_ms();
  if (!resync && online && !a->synced && now - a->hello_sent_ms >= a->hello_retry_ms) {
    if (a->connected) uplink__hello(a, now, "hub online");
    return;
  }
  if (resync && a->connected) uplink__hello(a, now, "hub restarted");
}

/* True if epoch is one of the last AGENT_EPOCHS_KEPT epochs seen; remembers
 * it otherwise. */
static bool epoch_seen(fl_agent *a, uint64_t epoch) {
  unsigned n = a->n_part_epochs < AGENT_EPOCHS_KEPT ? a->n_part_epochs : AGENT_EPOCHS_KEPT;
  for (unsigned i = 0; i < n; i++)
    if (a->part_epochs[i] == epoch) return true;
  a->part_epochs[a->n_part_epochs++ % AGENT_EPOCHS_KEPT] = epoch;
  return false;
}

/* The retained status of this device's partition (rev 1.2, P-PART-6):
 * resync when its epoch takes a value not seen before (another hub owns the
 * partition now, or the owner took it over again) or online turns true. The
 * first status after start only records: the connect's hello is on its way. */
static void partition_status_seen(fl_agent *a, const fl_msg *m) {
  const fl_partition_status *ps = &m->body.partition_status;
  bool known = a->part_known, was_online = a->part_online;
  bool new_epoch = !epoch_seen(a, ps->epoch);
  a->part_known = true;
  a->part_online = ps->online;
  if (!known || new_epoch || ps->online != was_online)
    fl_info("%s partition %u %s epoch=%" PRIu64 " hub=%s", a->id, ps->partition,
            ps->online ? "online" : "offline", ps->epoch, ps->hub);
  int64_t now = agent__mono_ms();
  if (!ps->online || !a->connected) return;
  if (known && (new_epoch || !was_online)) {
    uplink__hello(a, now, new_epoch ? "partition epoch" : "partition online");
    return;
  }
  /* as for the hub status: a hello waiting in vain is repeated now */
  if (!a->synced && now - a->hello_sent_ms >= a->hello_retry_ms)
    uplink__hello(a, now, "partition online");
}

/* Dispatches a decoded, checked message with a->lock held. */
static void downlink_dispatch(fl_agent *a, const fl_msg *m, downlink_notice *n) {
  int64_t now = agent__mono_ms();
  if (m->env.type == FL_MSG_SYNC) {
    /* Only a sync tells the hub's time: it answers a hello of this
     * connection, while a command, decision or ack may have waited in the
     * broker's session for hours. A sync that waited only lowers the value,
     * and the highest one is kept. */
    int64_t base = m->env.time_ms - now;
    if (!a->hub_clock_known || base > a->hub_clock_base_ms) {
      a->hub_clock_base_ms = base;
      a->hub_clock_known = true;
      fl_debug("%s hub clock: this device's clock is %+" PRId64 " ms off", a->id,
               agent_now_ms(a) - (base + now));
    }
  }
  switch (m->env.type) {
  case FL_MSG_ACK:
    uplink__acked(a, m->body.ack.upto, now);
    break;
  case FL_MSG_SYNC:
    uplink__synced(a, &m->body.sync, now);
    break;
  case FL_MSG_DECISION:
    /* rev 1.2 (P-ACK-1): a decision's upto is an ack with that upto, whether
     * the decision itself is new, a duplicate or left to the resend */
    if (m->body.decision.upto) uplink__acked(a, m->body.decision.upto, now);
    sequenced_apply(a, m, n);
    break;
  case FL_MSG_COMMAND:
    sequenced_apply(a, m, n);
    break;
  case FL_MSG_HUB_STATUS:
    hub_status_seen(a, m);
    break;
  case FL_MSG_PARTITION_STATUS:
    partition_status_seen(a, m);
    break;
  case FL_MSG_ANSWER:
    if (query__answered(a, m)) n->kind = NOTICE_ANSWER;
    break;
  default:
    break;
  }
}

/* Decodes msg and checks it belongs on its topic. Returns FL_OK or why not. */
static int downlink_check(const fl_agent *a, const fl_mqtt_msg *msg, fl_msg *m,
                          fl_decode_error *de) {
  fl_msg_type want;
  if (strcmp(msg->topic, FL_TOPIC_HUB_STATUS) == 0) {
    want = FL_MSG_HUB_STATUS;
  } else if (a->partition >= 0 && strcmp(msg->topic, a->topic_part_status) == 0) {
    want = FL_MSG_PARTITION_STATUS;
  } else {
    /* only this device's subtree of its own family (and partition) */
    char dev[FL_ID_MAX + 1];
    fl_channel ch = FL_CH_NONE;
    int part = -1;
    if (fl_topic_parse_device_p(msg->topic, dev, sizeof dev, &ch, &part) != FL_OK ||
        strcmp(dev, a->id) || part != a->partition)
      return FL_ERR_TOPIC;
    want = channel_type(ch);
    if (want == FL_MSG_NONE) return FL_ERR_TOPIC;
  }
  int err = fl_msg_decode(msg->payload, msg->len, m, de);
  if (err != FL_OK) return err;
  /* a response topic (default down/reply) carries decisions and answers */
  if (want == FL_MSG_DECISION && m->env.type == FL_MSG_ANSWER) want = FL_MSG_ANSWER;
  if (m->env.type != want) {
    snprintf(de->detail, sizeof de->detail, "type %s on this topic",
             fl_msg_type_name(m->env.type));
    return FL_ERR_WRONG_TYPE;
  }
  if (want == FL_MSG_PARTITION_STATUS &&
      m->body.partition_status.partition != (uint32_t)a->partition) {
    snprintf(de->detail, sizeof de->detail, "partition %u on the status topic of %d",
             m->body.partition_status.partition, a->partition);
    return FL_ERR_TOPIC;
  }
  if (want != FL_MSG_HUB_STATUS && want != FL_MSG_PARTITION_STATUS &&
      strcmp(m->env.dev, a->id) != 0) {
    snprintf(de->detail, sizeof de->detail, "dev '%s' is not this device", m->env.dev);
    return FL_ERR_TOPIC;
  }
  return FL_OK;
}

void downlink__on_message(void *ctx, const fl_mqtt_msg *msg) {
  fl_agent *a = ctx;
  fl_msg *m = malloc(sizeof *m);
  if (!m) {
    fl_error("%s out of memory: message on %s dropped", a->id, msg->topic);
    return;
  }
  fl_decode_error de = {0};
  int err = downlink_check(a, msg, m, &de);
  if (err != FL_OK) {
    fl_warn("%s dropped message on %s (%zu bytes): %s %s", a->id, msg->topic, msg->len,
            fl_errname(err), de.detail);
    free(m);
    return;
  }
  downlink_notice n = {.kind = NOTICE_NONE};
  pthread_mutex_lock(&a->lock);
  downlink_dispatch(a, m, &n);
  agent_callbacks cb = a->cb;
  uplink__unlock_publish(a); /* device_ack, hello, events after an ack or sync */
  if (n.kind == NOTICE_DECISION && cb.on_decision) cb.on_decision(cb.ctx, m);
  if (n.kind == NOTICE_COMMAND && cb.on_command) cb.on_command(cb.ctx, m, n.status);
  if (n.kind == NOTICE_ANSWER && cb.on_answer) cb.on_answer(cb.ctx, m);
  free(m);
}
