/* The agent's insides, shared by its modules:
 *   agent.c     life cycle, configuration, status, submit
 *   uplink.c    hello, publishing the outbox within the window, resync timers
 *   downlink.c  messages from the hub: ack, sync, decision, command, hub status
 *   vehicle.c   unlock / lock / telemetry / fault helpers
 *   kiosk.c     rental and booking requests
 * Every function here expects a->lock to be held unless it says otherwise. */
#ifndef AGENT_INTERNAL_H
#define AGENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleet/agent.h"
#include "fleet/mqtt.h"
#include "fleet/topic.h"
#include "outbox.h"

/* Bits of a PUBACK tag that hold the seq; the rest is the generation. */
#define AGENT_TAG_SEQ_BITS 40
#define AGENT_TAG_GEN(gen) ((gen) & ((UINT64_C(1) << (64 - AGENT_TAG_SEQ_BITS)) - 1))

struct fl_agent {
  pthread_mutex_t lock;
  char id[FL_ID_MAX + 1];
  fl_role role;
  agent_callbacks cb;
  char *mqtt_uri, *username, *password;
  int window, hello_retry_ms, ack_stall_ms;
  outbox *ob;
  fl_mqtt *mqtt;
  char topic_evt[FL_TOPIC_MAX], topic_hello[FL_TOPIC_MAX], topic_up_ack[FL_TOPIC_MAX];
  char topic_reply[FL_TOPIC_MAX];

  /* link state, reset on every connect. paho runs the PUBACK and
   * connection-lost callbacks while holding its own mutex, so those two must
   * not take a->lock (publishing under a->lock needs paho's mutex): what
   * they touch is atomic. */
  _Atomic bool connected;
  bool synced;
  _Atomic uint64_t gen;    /* bumped on connect and sync: PUBACKs of older ones are ignored */
  uint64_t sent_upto;      /* highest seq published in this generation */
  _Atomic int inflight;    /* published in this generation, PUBACK pending */
  _Atomic bool publish_failed; /* a PUBACK reported failure: resync at the next tick */
  int64_t hello_sent_ms; /* monotonic */
  int64_t progress_ms;   /* last ack progress, or when events became outstanding */
  uint64_t resend_upto;  /* after a sync: the events being resent end here */
  uint64_t resent;

  /* downlink gaps: asked the hub to fill one; a sync came since */
  bool gap_asked, gap_synced;

  /* hub status, from the retained fleet/v1/hub/status */
  bool hub_known, hub_online;
  uint64_t hub_boot;

  uint64_t unseq_count;   /* for mids of unsequenced messages */
  uint64_t request_count; /* for request ids */
  bool locked;            /* vehicle */
  outbox_event scratch;   /* one event read back for publishing */
};

/* Monotonic milliseconds, the clock of the agent's timers. */
int64_t agent__mono_ms(void);

/* Fills the envelope of an unsequenced message (hello, device_ack, offline). */
void agent__envelope_unsequenced(fl_agent *a, fl_msg *m);

/* Stores event m (see agent_submit) without taking the lock. */
int agent__submit(fl_agent *a, fl_msg *m, uint64_t *seq);

/* uplink.c */
/* Publishes hello and starts waiting for sync. */
void uplink__hello(fl_agent *a, int64_t now_ms, const char *why);
/* Publishes outbox events (and promotes telemetry) while the window has room. */
void uplink__pump(fl_agent *a, int64_t now_ms);
/* Timers: hello without sync, acks not progressing. */
void uplink__timers(fl_agent *a, int64_t now_ms);
/* A PUBACK (or failure) for tag arrived. Lock-free: call WITHOUT a->lock. */
void uplink__published(fl_agent *a, uint64_t tag, int rc);
/* Publishes device_ack{upto = applied}. */
void uplink__device_ack(fl_agent *a);
/* The hub's sync arrived: adopt its watermark and resend after it. */
void uplink__synced(fl_agent *a, const fl_sync *s, int64_t now_ms);
/* The hub's cumulative ack arrived. */
void uplink__acked(fl_agent *a, uint64_t upto, int64_t now_ms);

/* downlink.c: fl_mqtt's on_message (takes the lock itself). */
void downlink__on_message(void *ctx, const fl_mqtt_msg *msg);

/* vehicle.c: applies an unexpired command in the caller's transaction and
 * sets *status (and reason for a refusal). Returns FL_OK or the store's
 * error (then the transaction must be rolled back). */
int vehicle__apply_command(fl_agent *a, const fl_msg *cmd, fl_cmd_status *status, char *reason,
                           size_t cap);

#endif
