/* The hub's outflow: what happens to committed output on its way to the
 * broker, after the batch's effects are let out (hub/effects.h).
 *
 *  - Retained states are paced: at most one publish per topic per
 *    [mqtt] state_interval_ms. A state that comes sooner is held, a newer
 *    one replaces it (the replaced one's outbox row is forgotten: it was
 *    never needed), and the newest goes out when the interval is over. A
 *    state replaced within the interval (a vehicle RESERVED only while its
 *    payment is called) is never published.
 *  - Acks: at most one in flight per device. The newest committed watermark
 *    goes when the previous ack's PUBACK returns; meanwhile newer ones only
 *    raise it. For a device of revision 1.2 a decision carrying the
 *    watermark (decision.upto) is its ack, and a request whose decision is
 *    pending (its payment is being called) has its ack held up to
 *    [mqtt] ack_hold_ms so that the decision carries it.
 *
 * Everything here runs on the engine thread; the broker's PUBACKs reach it
 * through the engine (outflow_published), never from paho's callbacks. */
#ifndef HUB_OUTFLOW_H
#define HUB_OUTFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "effects.h"

/* Tags of ack publishes carry this bit (outbox rows' tags never do). */
#define OUTFLOW_ACK_TAG (UINT64_C(1) << 63)

typedef struct hub_outflow hub_outflow;

/* Where the outflow's publishes go. */
typedef struct outflow_sink {
  void *ctx;
  /* A QoS 1 publish; returns FL_OK or an fl_err. A non-zero tag asks for
   * outflow_published (ack tags) or the outbox's PUBACK bookkeeping. */
  int (*publish)(void *ctx, const char *topic, const uint8_t *payload, size_t len, bool retain,
                 uint64_t tag, uint32_t expiry_s);
  /* A held state's outbox row that will never be published (replaced by a
   * newer state of its topic): delete it as if the broker had it. */
  void (*forget)(void *ctx, uint64_t outbox_seq);
} outflow_sink;

/* Creates an outflow pacing states by state_interval_ms (0: no pacing) and
 * holding acks up to ack_hold_ms (0: never); acks are encoded with fx's
 * identity. Returns FL_OK and *out (free with outflow_destroy, NULL
 * accepted), or FL_ERR_NOMEM. */
int outflow_create(int state_interval_ms, int ack_hold_ms, hub_effects *fx,
                   const outflow_sink *sink, hub_outflow **out);
void outflow_destroy(hub_outflow *o);

/* A committed retained state on topic (payload copied), kept in the outbox
 * as row outbox_seq (0: none): published now, or held. Returns FL_OK, or
 * the sink's fl_err of a publish made now. */
int outflow_state(hub_outflow *o, const char *topic, const uint8_t *payload, size_t len,
                  uint32_t expiry_s, uint64_t outbox_seq, int64_t now_ms);

/* What outflow_ack is told besides the watermark. */
enum {
  OUTFLOW_HOLD = 1,  /* a decision for the device's request is pending */
  OUTFLOW_REPEAT = 2 /* the device sent an event again: it needs an ack message again */
};

/* Device dev's events up to upto are committed; part is the partition of
 * its topic family (-1: revision 1.1, which knows no decision.upto);
 * covered is the highest upto a decision to it carried in this batch (0:
 * none); flags: OUTFLOW_HOLD, OUTFLOW_REPEAT. */
void outflow_ack(hub_outflow *o, const char *dev, int part, uint64_t upto, uint64_t covered,
                 unsigned flags, int64_t now_ms);

/* The broker answered the ack publish tagged tag (ok: PUBACK). */
void outflow_published(hub_outflow *o, uint64_t tag, bool ok, int64_t now_ms);

/* Lets out held states and acks whose time has come. */
void outflow_due(hub_outflow *o, int64_t now_ms);

/* The earliest time something held is due (INT64_MAX: nothing held). */
int64_t outflow_next_ms(const hub_outflow *o);

/* Figures: states held now, states never published (replaced while held),
 * acks sent, acks that a decision or a later ack made unnecessary. */
typedef struct outflow_stats {
  uint64_t states_held, states_skipped, acks_sent, acks_saved;
} outflow_stats;
void outflow_get_stats(const hub_outflow *o, outflow_stats *s);

#endif
