/* The batch's effects: everything a batch of inputs makes the hub say or do
 * (publishes, acknowledgements, payment calls), held while the batch's
 * transaction is open and let out only after it commits (effects_flush), or
 * dropped with it (effects_undo, effects_discard).
 *
 * Retained state is coalesced: a thing whose state is published several
 * times in one batch goes out once, in its last state. Acks are cumulative
 * per device: one ack per device per batch, the highest seq committed. The
 * effects also own the hub's message identity (boot id and message ids) used
 * to encode what it sends. Only the engine thread uses a hub_effects. */
#ifndef HUB_EFFECTS_H
#define HUB_EFFECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet/proto.h"
#include "fleet/topic.h"
#include "payment.h"
#include "store.h"

typedef struct hub_effects hub_effects;

/* Where effects go once the batch has committed. */
typedef struct hub_effects_sink {
  void *ctx;
  /* Publishes at QoS 1; returns FL_OK or an fl_err (logged, not retried
   * here: devices resynchronize, and a durable message, tag > 0 (its seq in
   * the store's outbox), is published again from the outbox). A non-zero
   * tag asks for the broker's PUBACK to be reported. */
  int (*publish)(void *ctx, const char *topic, const uint8_t *payload, size_t len, bool retain,
                 const uint8_t *corr, size_t corr_len, uint64_t tag, uint32_t expiry_s);
  /* Hands a payment call to the workers. */
  void (*pay)(void *ctx, const pay_job *job);
  /* Device dev's events up to upto are committed (see outflow_ack for part,
   * covered and hold). NULL: the ack is published at once through publish. */
  void (*ack)(void *ctx, const char *dev, int part, uint64_t upto, uint64_t covered,
              unsigned flags);
} hub_effects_sink;

/* One held publish (what effects_at() shows). */
typedef struct hub_effect_msg {
  char topic[FL_TOPIC_MAX];
  uint8_t *payload;
  size_t len;
  bool retain;
  uint8_t corr[FL_ID_MAX];
  size_t corr_len;
  bool durable;        /* state or notification: kept in the store's outbox until PUBACK */
  uint32_t expiry_s;   /* MQTT 5 message expiry (the broker drops it then), 0: none */
  uint64_t outbox_seq; /* its row, once effects_persist wrote it */
  uint64_t covers;     /* a decision carrying covers_dev's watermark (decision.upto) */
  char covers_dev[FL_ID_MAX + 1];
} hub_effect_msg;

/* A point to undo to (effects_undo). */
typedef struct effects_mark {
  size_t msgs, jobs, notices;
} effects_mark;

/* One change collected for the batch's notices (effects_collect). */
typedef struct hub_notice {
  char kind[16];
  fl_notice change;
} hub_notice;

/* Creates empty effects for a hub whose boot id is boot. Returns FL_OK and
 * *out (free with effects_destroy, NULL accepted), or FL_ERR_NOMEM. */
int effects_create(uint64_t boot, hub_effects **out);
void effects_destroy(hub_effects *fx);

/* Encodes m with the hub's envelope (dev, seq, corr: may be NULL; a new
 * message id, the hub's boot and clock) into buf. Returns FL_OK with *len, or
 * the codec's fl_err (logged). */
int effects_encode(hub_effects *fx, fl_msg *m, const char *dev, uint64_t seq, const char *corr,
                   uint8_t *buf, size_t cap, size_t *len);

/* Holds a publish of payload (copied) on topic. Returns FL_OK or FL_ERR_NOMEM. */
int effects_publish(hub_effects *fx, const char *topic, const uint8_t *payload, size_t len,
                    bool retain, const uint8_t *corr, size_t corr_len);

/* Holds m as the retained state on topic, replacing a state held for the
 * same topic earlier in the batch. Durable (see effects_persist). Returns
 * FL_OK or an fl_err. */
int effects_state(hub_effects *fx, const char *topic, fl_msg *m, uint32_t expiry_s);

/* Holds m, a notification, on topic; durable (see effects_persist). */
int effects_notice(hub_effects *fx, const char *topic, fl_msg *m);

/* Collects one change of kind for the batch's notices (rev 1.2: one
 * fleet/v1/notices/{kind} message per kind per batch, publish_notices).
 * Undone with the input that made it. Returns FL_OK or FL_ERR_NOMEM. */
int effects_collect(hub_effects *fx, const char *kind, const fl_notice *change);

/* The changes collected in this batch, in order (pointers valid until the
 * effects change); effects_collected_clear forgets them. */
size_t effects_collected(const hub_effects *fx);
const hub_notice *effects_collected_at(const hub_effects *fx, size_t i);
void effects_collected_clear(hub_effects *fx);

/* Writes every durable message held (states and notifications) to the
 * store's outbox, in the batch's transaction, just before it commits: so a
 * crash between commit and publish loses none of them (they are published
 * again, the same bytes, from the outbox). Returns FL_OK or the store's fl_err. */
int effects_persist(hub_effects *fx, hub_store *st, int64_t now_ms);

/* Holds a payment call. Returns FL_OK or FL_ERR_NOMEM. */
int effects_payment(hub_effects *fx, const pay_job *job);

/* Notes that device's events up to seq are committed (acked after commit). */
int effects_ack(hub_effects *fx, const char *device, uint64_t seq);

/* The publish held last is a decision to device carrying upto
 * (decision.upto): for a device of revision 1.2 it is the ack (undone with
 * the publish). */
int effects_ack_covered(hub_effects *fx, const char *device, uint64_t upto);

/* device sent an event it had sent before: it needs an ack message again,
 * whatever decisions carried. */
int effects_ack_repeat(hub_effects *fx, const char *device);

/* device's request waits for its decision (a payment is being called): its
 * ack may wait a moment for the decision to carry it (outflow.h). */
int effects_ack_hold(hub_effects *fx, const char *device);

/* Remembers the topic family device last used: part is its partition in
 * the family of revision 1.2, -1 the family of 1.0 and 1.1. Hub memory,
 * kept across batches. */
void effects_learn_family(hub_effects *fx, const char *device, int part);

/* The family device last used (-1 when it used the old one or is unknown). */
int effects_family(const hub_effects *fx, const char *device);

/* Writes the topic of device's channel ch in the family it last used into
 * buf. Returns its length or a negative fl_err, as fl_topic_device_p. */
int effects_device_topic(const hub_effects *fx, char *buf, size_t cap, const char *device,
                         fl_channel ch);

/* A sync (the device's watermark) goes to device in this batch: returns true
 * the first time it is asked for device in a batch, false after that. */
bool effects_sync_once(hub_effects *fx, const char *device);

/* Marks the publish held last as the outbox row seq (a resend of it) with
 * its expiry. */
void effects_tag_last(hub_effects *fx, uint64_t seq, uint32_t expiry_s);

effects_mark effects_mark_now(const hub_effects *fx);
/* Drops what was held after mark (an input rolled back). */
void effects_undo(hub_effects *fx, effects_mark mark);
/* Drops everything held (the batch rolled back). */
void effects_discard(hub_effects *fx);

/* Lets everything held out through sink, in the order held (acks last, then
 * payment calls), and empties the effects. */
void effects_flush(hub_effects *fx, const hub_effects_sink *sink);

/* What is held: publishes, acks and payment calls (for tests and logs).
 * Pointers are valid until the effects change. */
size_t effects_count(const hub_effects *fx);
const hub_effect_msg *effects_at(const hub_effects *fx, size_t i);
size_t effects_jobs(const hub_effects *fx);
const pay_job *effects_job_at(const hub_effects *fx, size_t i);
/* The ack held for device (0: none). */
uint64_t effects_ack_of(const hub_effects *fx, const char *device);

#endif
