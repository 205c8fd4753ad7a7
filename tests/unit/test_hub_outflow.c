/* hub/outflow.c: retained states paced per topic, one ack in flight per
 * device, acks that a decision carried or that wait for one, driven with a
 * recording sink and a clock of the test's own. */
#include <stdlib.h>
#include <string.h>

#include "effects.h"
#include "fleet/error.h"
#include "fleet/proto.h"
#include "outflow.h"
#include "unit.h"

#define MAX_SENT 64

typedef struct sent {
  char topic[FL_TOPIC_MAX];
  uint8_t payload[256];
  size_t len;
  uint64_t tag;
} sent;

static sent log_[MAX_SENT];
static size_t n_sent;
static uint64_t forgotten[MAX_SENT];
static size_t n_forgotten;
static int publish_rc = FL_OK;

static int rec_publish(void *ctx, const char *topic, const uint8_t *payload, size_t len,
                       bool retain, uint64_t tag, uint32_t expiry_s) {
  (void)ctx, (void)retain, (void)expiry_s;
  if (publish_rc != FL_OK) return publish_rc;
  if (n_sent < MAX_SENT) {
    sent *s = &log_[n_sent++];
    snprintf(s->topic, sizeof s->topic, "%s", topic);
    s->len = len < sizeof s->payload ? len : sizeof s->payload;
    memcpy(s->payload, payload, s->len);
    s->tag = tag;
  }
  return FL_OK;
}

static void rec_forget(void *ctx, uint64_t seq) {
  (void)ctx;
  if (n_forgotten < MAX_SENT) forgotten[n_forgotten++] = seq;
}

static void reset(void) { n_sent = n_forgotten = 0; }

/* The upto of the ack published i-th, 0 if it is not an ack. */
static uint64_t ack_upto(size_t i) {
  fl_msg *m = malloc(sizeof *m);
  uint64_t upto = 0;
  if (m && i < n_sent && fl_msg_decode(log_[i].payload, log_[i].len, m, NULL) == FL_OK &&
      m->env.type == FL_MSG_ACK)
    upto = m->body.ack.upto;
  free(m);
  return upto;
}

static void states_are_paced(hub_effects *fx) {
  outflow_sink sink = {.publish = rec_publish, .forget = rec_forget};
  hub_outflow *o = NULL;
  CHECK(outflow_create(1000, 250, fx, &sink, &o) == FL_OK);
  reset();
  const uint8_t a[] = "A", b[] = "B", c[] = "C";
  /* the first state of a topic goes at once */
  CHECK(outflow_state(o, "fleet/v1/state/vehicle/V1", a, 1, 0, 10, 1000) == FL_OK);
  CHECK(n_sent == 1 && log_[0].tag == 10);
  /* the next ones within the interval are held, the newest replacing */
  CHECK(outflow_state(o, "fleet/v1/state/vehicle/V1", b, 1, 0, 11, 1100) == FL_OK);
  CHECK(outflow_state(o, "fleet/v1/state/vehicle/V1", c, 1, 0, 12, 1200) == FL_OK);
  CHECK(n_sent == 1);
  CHECK(n_forgotten == 1 && forgotten[0] == 11); /* B was never needed */
  /* another topic is not held back by it */
  CHECK(outflow_state(o, "fleet/v1/state/vehicle/V2", a, 1, 0, 13, 1200) == FL_OK);
  CHECK(n_sent == 2);
  CHECK(outflow_next_ms(o) == 2000);
  outflow_due(o, 1999);
  CHECK(n_sent == 2);
  outflow_due(o, 2000); /* the interval is over: the newest goes */
  CHECK(n_sent == 3 && log_[2].tag == 12 && log_[2].payload[0] == 'C');
  CHECK(outflow_next_ms(o) == INT64_MAX);
  /* an older outbox row (the outbox published again after a connect) loses */
  CHECK(outflow_state(o, "fleet/v1/state/vehicle/V1", a, 1, 0, 9, 5000) == FL_OK);
  CHECK(n_sent == 3 && n_forgotten == 2 && forgotten[1] == 9);
  outflow_stats st;
  outflow_get_stats(o, &st);
  CHECK(st.states_skipped == 1 && st.states_held == 0);
  outflow_destroy(o);
}

static void one_ack_in_flight(hub_effects *fx) {
  outflow_sink sink = {.publish = rec_publish, .forget = rec_forget};
  hub_outflow *o = NULL;
  CHECK(outflow_create(0, 250, fx, &sink, &o) == FL_OK);
  reset();
  outflow_ack(o, "V1", -1, 3, 0, 0, 1000);
  CHECK(n_sent == 1 && ack_upto(0) == 3 && (log_[0].tag & OUTFLOW_ACK_TAG));
  CHECK(strcmp(log_[0].topic, "fleet/v1/dev/V1/down/ack") == 0);
  /* newer watermarks wait for the PUBACK, and only the newest goes */
  outflow_ack(o, "V1", -1, 5, 0, 0, 1001);
  outflow_ack(o, "V1", -1, 9, 0, 0, 1002);
  CHECK(n_sent == 1);
  outflow_published(o, log_[0].tag, true, 1003);
  CHECK(n_sent == 2 && ack_upto(1) == 9);
  /* a duplicate from the device: an ack message again, whatever went before */
  outflow_published(o, log_[1].tag, true, 1004);
  outflow_ack(o, "V1", -1, 9, 0, OUTFLOW_REPEAT, 1005);
  CHECK(n_sent == 3 && ack_upto(2) == 9);
  /* a PUBACK that never comes does not stop the device's acks for good */
  outflow_ack(o, "V1", -1, 10, 0, 0, 1006);
  CHECK(n_sent == 3);
  outflow_ack(o, "V1", -1, 11, 0, OUTFLOW_REPEAT, 1006 + 5000);
  CHECK(n_sent == 4 && ack_upto(3) == 11);
  /* a failed publish (connection lost): owed again after the next PUBACK or commit */
  outflow_published(o, log_[3].tag, false, 7000);
  outflow_ack(o, "V1", -1, 11, 0, 0, 7001);
  CHECK(n_sent == 5 && ack_upto(4) == 11);
  outflow_destroy(o);
}

static void decisions_ack_rev12(hub_effects *fx) {
  outflow_sink sink = {.publish = rec_publish, .forget = rec_forget};
  hub_outflow *o = NULL;
  CHECK(outflow_create(0, 250, fx, &sink, &o) == FL_OK);
  reset();
  /* a decision carried the watermark: no ack message (partitioned family) */
  outflow_ack(o, "K1", 97, 4, 4, 0, 1000);
  CHECK(n_sent == 0);
  /* the same for a device of 1.1: it does not read decision.upto */
  outflow_ack(o, "K2", -1, 4, 4, 0, 1000);
  CHECK(n_sent == 1 && ack_upto(0) == 4);
  /* a request waiting for its payment: its ack is held ... */
  outflow_ack(o, "K1", 97, 5, 0, OUTFLOW_HOLD, 1000);
  CHECK(n_sent == 1 && outflow_next_ms(o) == 1250);
  /* ... and the decision that comes carries it: nothing else goes */
  outflow_ack(o, "K1", 97, 0, 5, 0, 1020);
  outflow_due(o, 1300);
  CHECK(n_sent == 1);
  /* held, and no decision in time: the ack goes alone, in the device's family */
  outflow_ack(o, "K1", 97, 6, 0, OUTFLOW_HOLD, 2000);
  outflow_due(o, 2249);
  CHECK(n_sent == 1);
  outflow_due(o, 2250);
  CHECK(n_sent == 2 && ack_upto(1) == 6);
  CHECK(strcmp(log_[1].topic, "fleet/v1/p/97/dev/K1/down/ack") == 0);
  outflow_stats st;
  outflow_get_stats(o, &st);
  CHECK(st.acks_sent == 2);
  outflow_destroy(o);
}

int main(void) {
  hub_effects *fx = NULL;
  CHECK(effects_create(7, &fx) == FL_OK);
  states_are_paced(fx);
  one_ack_in_flight(fx);
  decisions_ack_rev12(fx);
  effects_destroy(fx);
  return unit_report("hub_outflow");
}
