/* The agent's insides, shared by its modules:
 *   agent.c     life cycle, configuration, status, submit
 *   uplink.c    hello, publishing the outbox within the window, resync timers
 *   downlink.c  messages from the hub: ack, sync, decision, command, hub status
 *   vehicle.c   unlock / lock / telemetry / fault helpers
 *   kiosk.c     rental and booking requests
 *   query.c     kiosk queries and the latest answers
 * Every function here expects a->lock to be held unless it says otherwise.
 *
 * Lock order: paho's internal mutex, then a->lock. paho runs every callback
 * with its mutex held, and fl_mqtt_publish() needs that mutex; so nothing
 * publishes (or calls any fl_mqtt_* function) while holding a->lock. Under
 * the lock the agent only records what is due (uplink__hello,
 * uplink__device_ack, new events); uplink__unlock_publish() then releases the
 * lock and publishes it. Callbacks may take a->lock: its holders never wait
 * for paho. */
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
/* Epochs of the device's partition remembered as seen (partition_status). */
#define AGENT_EPOCHS_KEPT 8
#define AGENT_TAG_GEN(gen) ((gen) & ((UINT64_C(1) << (64 - AGENT_TAG_SEQ_BITS)) - 1))

struct fl_agent {
  pthread_mutex_t lock;
  char id[FL_ID_MAX + 1];
  fl_role role;
  agent_callbacks cb;
  char *mqtt_uri, *username, *password, *ca_file, *cert_file, *key_file;
  int window, hello_retry_ms, ack_stall_ms, hello_retry_max_ms, ack_stall_max_ms;
  outbox *ob;
  fl_mqtt *mqtt;
  char topic_evt[FL_TOPIC_MAX], topic_hello[FL_TOPIC_MAX], topic_up_ack[FL_TOPIC_MAX];
  char topic_reply[FL_TOPIC_MAX];
  /* rev 1.2: the device's partition (-1: legacy topic family) and the
   * retained status of that partition, fleet/v1/p/{p}/status */
  int partition;
  char topic_part_status[FL_TOPIC_MAX];
  bool part_known, part_online;
  uint64_t part_epochs[AGENT_EPOCHS_KEPT]; /* the last epochs seen, a ring */
  unsigned n_part_epochs;

  /* link state, reset on every connect. Written under a->lock; the atomic
   * ones are also read without it (PUBACK callback, the publishing thread
   * between two publishes). */
  _Atomic bool connected;
  _Atomic bool synced;
  _Atomic uint64_t gen;    /* bumped on connect and sync: PUBACKs of older ones are ignored */
  uint64_t sent_upto;      /* highest seq handed to the publisher in this generation */
  _Atomic int inflight;    /* handed to the publisher in this generation, PUBACK pending */
  _Atomic bool publish_failed; /* a PUBACK reported failure: resync at the next tick */
  int64_t hello_sent_ms; /* monotonic */
  int64_t progress_ms;   /* last ack progress, or when events became outstanding */
  /* back-off of the resync timers: the current waits and their bases. Each
   * time a timer fires without an answer its base doubles (up to the cap)
   * and its wait is drawn from the base's upper half; both go back to the
   * configured value on sync (hello) or on ack progress (stall). */
  int64_t hello_wait_ms, stall_wait_ms, hello_base_ms, stall_base_ms;
  uint64_t jitter_state; /* splitmix64 state for the jitter */
  uint64_t resend_upto;  /* after a sync: the events being resent end here */
  uint64_t resent;

  /* what uplink__unlock_publish() still has to publish, besides events */
  bool want_hello, want_device_ack;
  const char *hello_why; /* static text, for the log */
  /* Set while one thread publishes for this agent (uplink__unlock_publish):
   * others leave the work to it, which keeps the uplink in order. The
   * buffers below belong to that thread. */
  bool pumping;
  outbox_event scratch;  /* the event being published */
  uint8_t unseq_buf[512]; /* the hello or device_ack being published */

  /* The hub's clock, as well as the device can tell: the highest
   * (envelope time - monotonic ms at receipt) of the hub's syncs since start.
   * A sync that waited somewhere only lowers it, so the maximum is the
   * freshest; the monotonic base makes it immune to the device's own clock
   * being wrong or jumping. Unknown until the first sync. */
  int64_t hub_clock_base_ms;
  bool hub_clock_known;

  /* hub status, from the retained fleet/v1/hub/status */
  bool hub_known, hub_online;
  uint64_t hub_boot;

  uint64_t unseq_count;   /* for mids of unsequenced messages */
  /* query.c: the last AGENT_QUERIES_KEPT queries and their latest answers
   * (allocated on the first agent_query(), freed by agent_destroy) */
  struct agent_query_slot *queries;
  uint64_t query_count;   /* queries asked: picks the slot to reuse */
  uint64_t request_count; /* for request ids */
  bool locked;            /* vehicle */
  _Atomic int64_t clock_skew_ms; /* agent_set_clock_skew: this device's clock error */
  /* vehicle: the last reading, repeated every telemetry_period_ms */
  int telemetry_period_ms;
  bool has_reading;
  fl_telemetry reading;
  int64_t reading_ms;     /* monotonic: when a reading was last queued */
};

/* Monotonic milliseconds, the clock of the agent's timers. */
int64_t agent__mono_ms(void);

/* The hub's time now as estimated from its syncs (hub_clock_base_ms), or
 * the device's own clock before the first sync of this start. */
int64_t agent__hub_now_ms(const fl_agent *a);

/* Fills the envelope of an unsequenced message (hello, device_ack, offline). */
void agent__envelope_unsequenced(fl_agent *a, fl_msg *m);

/* Stores event m (see agent_submit) without taking the lock. */
int agent__submit(fl_agent *a, fl_msg *m, uint64_t *seq);

/* uplink.c */
/* Stops sending events until sync and asks for a hello (published by the
 * next uplink__unlock_publish). */
void uplink__hello(fl_agent *a, int64_t now_ms, const char *why);
/* Asks for device_ack{upto = applied} (published by the next
 * uplink__unlock_publish; several requests may become one ack). */
void uplink__device_ack(fl_agent *a);
/* Called WITH a->lock held; returns with it RELEASED. Publishes what is due:
 * a hello, a device_ack, then outbox events (promoting telemetry) while
 * synced and the window has room. Each item is chosen under the lock and
 * published without it. If another thread is already publishing for a, it
 * leaves the work to that thread (which looks again before it stops) and
 * returns at once. Call it at the end of every entry point that may have
 * made something due. */
void uplink__unlock_publish(fl_agent *a);
/* Timers: hello without sync, acks not progressing. */
void uplink__timers(fl_agent *a, int64_t now_ms);
/* A PUBACK (or failure) for tag arrived. Lock-free: call WITHOUT a->lock. */
void uplink__published(fl_agent *a, uint64_t tag, fl_err rc);
/* The hub's sync arrived: adopt its watermark and resend after it. */
void uplink__synced(fl_agent *a, const fl_sync *s, int64_t now_ms);
/* The hub's cumulative ack arrived. */
void uplink__acked(fl_agent *a, uint64_t upto, int64_t now_ms);

/* downlink.c: fl_mqtt's on_message (takes the lock itself; runs on paho's
 * thread with paho's mutex held). */
void downlink__on_message(void *ctx, const fl_mqtt_msg *msg);

/* query.c: answer m arrived (decoded, on this device's topic). Keeps it if
 * it answers one of our queries; returns true if so (tell on_answer). */
bool query__answered(fl_agent *a, const fl_msg *m);
/* query.c: frees the slots. */
void query__free(fl_agent *a);

/* vehicle.c: applies an unexpired command in the caller's transaction and
 * sets *status (and reason for a refusal). Returns FL_OK or the store's
 * error (then the transaction must be rolled back). */
int vehicle__apply_command(fl_agent *a, const fl_msg *cmd, fl_cmd_status *status, char *reason,
                           size_t cap);
/* vehicle.c: queues the last reading again when the period has passed. */
void vehicle__telemetry_timer(fl_agent *a, int64_t now_ms);

#endif
