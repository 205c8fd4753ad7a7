/* The device agent of a vehicle or a kiosk: a library, so that the daemon
 * (fleet-agent) runs one and the simulator (fleet-sim) runs thousands in one
 * process.
 *
 * An agent owns one SQLite file (its outbox, meta counters, decisions and
 * bookings) and one fl_mqtt client. It has no thread of its own: it is driven
 * by paho's callbacks (connect, messages, PUBACKs) and by agent_tick(), which
 * the owner calls every 50-100 ms to publish from the outbox, retransmit
 * after a resync and resend a hello that got no answer. Every function takes
 * the agent's mutex, so callbacks and callers may race freely. Lock order:
 * paho's internal mutex before the agent's. No agent function publishes (or
 * waits for paho) while holding the agent's mutex; what it makes due is
 * published after the mutex is released, by one thread at a time per agent
 * (another caller that finds that thread busy leaves the work to it).
 *
 * Events are written to the outbox first, with a per-device sequence number,
 * and deleted only when the hub's cumulative ack covers them. Events other
 * than telemetry are never dropped: a full outbox refuses new ones with
 * FL_ERR_FULL. Telemetry waits, without a seq, in a coalescing queue whose
 * oldest readings are dropped; it gets its seq when it is sent, so the seq
 * stream stays contiguous. docs/agent.md tells the whole story. */
#ifndef FLEET_AGENT_H
#define FLEET_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet/db.h"
#include "fleet/proto.h"

typedef struct fl_agent fl_agent;

/* Owner callbacks. They run on paho's thread WITH PAHO'S INTERNAL MUTEX HELD,
 * after the agent's mutex is released and after the change is committed to
 * SQLite; the message is valid only during the call. They may call agent
 * functions (those publish from this thread, which paho allows). They must
 * not block, and above all must not wait for a lock that the owner holds
 * while it calls agent functions: such a call may need paho's mutex to
 * publish, which this thread holds, and the two would wait for each other
 * forever. Copy what you need under a lock of your own that is never held
 * across agent calls, and return. */
typedef struct agent_callbacks {
  void *ctx;
  /* A decision (the hub's answer to a kiosk request) was applied. */
  void (*on_decision)(void *ctx, const fl_msg *decision);
  /* A command was handled; status says whether it was applied or expired. */
  void (*on_command)(void *ctx, const fl_msg *command, fl_cmd_status status);
  /* The MQTT connection came up (true) or went down (false). */
  void (*on_connection)(void *ctx, bool up);
  /* Kiosk: the hub answered a query made with agent_query() (may be NULL). */
  void (*on_answer)(void *ctx, const fl_msg *answer);
} agent_callbacks;

/* Which topic tree the agent uses (docs/protocol.md, "Revision 1.2"). */
typedef enum agent_topic_family {
  AGENT_TOPICS_PARTITIONED = 0, /* rev 1.2, the default: fleet/v1/p/{p}/dev/{id}/...,
                                   p = fl_partition_of(id, partitions) */
  AGENT_TOPICS_LEGACY,          /* rev 1.0 and 1.1: fleet/v1/dev/{id}/... */
} agent_topic_family;

typedef struct agent_config {
  const char *id;        /* device id: MQTT client id, username, envelope dev; <= 40 bytes */
  fl_role role;          /* FL_ROLE_VEHICLE or FL_ROLE_KIOSK */
  const char *db_path;   /* the agent's SQLite file, created if missing */
  const char *mqtt_uri;  /* "tcp://127.0.0.1:1883" */
  const char *username;  /* NULL: the device id */
  const char *password;  /* NULL: none */
  const char *ca_file;   /* TLS (ssl:// uri): CAs to trust; NULL: the system's */
  const char *cert_file; /* TLS: client certificate for mutual TLS; NULL: none */
  const char *key_file;  /* TLS: its key, if not in cert_file */
  fl_db_sync durability; /* outbox commits: off, normal (default) or full */
  int max_events;        /* 0: 10000. Outbox rows before FL_ERR_FULL */
  int telemetry_max;     /* 0: 100. Unsent telemetry readings kept */
  int window;            /* 0: 128. Events published and not yet PUBACKed */
  int hello_retry_ms;    /* 0: 3000. Resend hello when no sync came; doubles per retry */
  int hello_retry_max_ms;/* 0: 60000. Cap of that back-off */
  int ack_stall_ms;      /* 0: 10000. Resync when acks stop progressing; doubles per stall */
  int ack_stall_max_ms;  /* 0: 120000. Cap of that back-off */
  int reconnect_min_ms;  /* 0: fl_mqtt's default */
  int reconnect_max_ms;  /* 0: fl_mqtt's default */
  int keepalive_s;       /* 0: fl_mqtt's default */
  int64_t clock_skew_ms; /* simulation: this device's clock error (see agent_set_clock_skew) */
  int telemetry_period_ms; /* vehicle; 0: off. agent_tick() queues the last reading given to
                              agent_telemetry() again when none was given for this long */
  agent_topic_family topic_family; /* 0: partitioned (rev 1.2) */
  int partitions;        /* 0: FL_PARTITIONS_DEFAULT. The fleet's partition count,
                            1..FL_PARTITIONS_MAX (partitioned family only) */
  agent_callbacks cb;
} agent_config;

/* What agent_status() reports. */
typedef struct agent_status {
  bool connected;
  bool synced;              /* the hub answered the last hello */
  uint64_t boot;            /* this start's boot counter */
  uint64_t next_seq;        /* seq the next event gets */
  uint64_t last_ack;        /* hub's cumulative ack */
  uint64_t applied;         /* highest downlink seq applied */
  uint64_t backlog;         /* events in the outbox (not acked yet) */
  uint64_t telemetry_queued;/* readings waiting for a seq */
  uint64_t telemetry_dropped;/* readings dropped since start */
  uint64_t inflight;        /* published, PUBACK not yet received */
  bool locked;              /* vehicle: last known lock state */
  int partition;            /* the device's partition; -1 on the legacy topic family */
} agent_status;

/* A decision as stored for `fleet-agent ctl decision`. */
typedef struct agent_decision {
  char corr[FL_ID_MAX + 1];
  fl_subject subject;
  char state[24];           /* "QUEUED" until the hub answered */
  bool decided;             /* false while only queued */
  bool ok;
  char reason[FL_TEXT_MAX + 1];
  uint32_t retry_after_s;
  int64_t charged_cents, refunded_cents, fee_cents, due_ms;
  uint64_t rev;             /* grows by one with every decision for corr */
} agent_decision;

/* The latest answer to one query, as agent_answer_get() copies it. */
typedef struct agent_answer {
  char query[FL_ID_MAX + 1]; /* the query id (envelope corr) */
  uint64_t rev;              /* grows by one with every answer for this id */
  int64_t time_ms;           /* the hub's envelope time of the answer */
  fl_answer answer;          /* ~15 KB: better on the heap than on a small stack */
} agent_answer;

/* How many queries the agent remembers; asking more forgets the oldest. */
#define AGENT_QUERIES_KEPT 8

/* Result of agent_unlock(). */
typedef struct agent_unlock_result {
  bool allowed;
  char reason[FL_TEXT_MAX + 1]; /* why it was refused, or what allowed it */
  uint64_t seq;                 /* seq of the recorded lock event */
} agent_unlock_result;

/* Opens (creating) the agent's store, increments its boot counter and
 * creates its MQTT client (not connecting yet). Strings in cfg are copied.
 * Returns FL_OK and *out (free with agent_destroy), FL_ERR_INVALID for a bad
 * config, FL_ERR_DB / FL_ERR_MQTT / FL_ERR_NOMEM. */
int agent_create(const agent_config *cfg, fl_agent **out);

/* Starts connecting (in the background, with reconnects). Returns FL_OK or
 * FL_ERR_MQTT. */
int agent_start(fl_agent *a);

/* Disconnects cleanly (no last will), waiting at most timeout_ms. */
void agent_stop(fl_agent *a, int timeout_ms);

/* Drops the connection as a power cut would (the broker sends the will). */
void agent_kill(fl_agent *a);

/* Stops if needed, closes the store and frees a. NULL is accepted. */
void agent_destroy(fl_agent *a);

/* The device's clock: the time its events carry, fl_now_ms() plus the skew
 * set by agent_set_clock_skew() (0 unless a simulator sets one). */
int64_t agent_now_ms(const fl_agent *a);

/* Simulation: makes this device's clock run skew_ms off (ahead when
 * positive), for its events and its own decisions, without touching the
 * process's clock or other agents. */
void agent_set_clock_skew(fl_agent *a, int64_t skew_ms);

/* Periodic work; now_ms is monotonic (fl_mono_us() / 1000). Publishes from
 * the outbox within the window, resends hello when needed. Cheap when idle. */
void agent_tick(fl_agent *a, int64_t now_ms);

/* Returns the device id (lives as long as a). */
const char *agent_id(const fl_agent *a);

/* Fills *st with the agent's counters. */
void agent_get_status(fl_agent *a, agent_status *st);

/* Writes one event to the outbox. The caller fills m->env.type, m->env.corr
 * and m->body; the agent fills the rest of the envelope (v, mid, dev, boot,
 * seq, time = fl_now_ms()). Telemetry goes to the coalescing queue and gets
 * no seq yet (*seq = 0). Returns FL_OK and *seq (seq may be NULL),
 * FL_ERR_FULL when the outbox holds max_events, FL_ERR_INVALID when m is not
 * an uplink event or does not encode, FL_ERR_DB. */
int agent_submit(fl_agent *a, fl_msg *m, uint64_t *seq);

/* Writes a new unique request id "{dev}-{boot}-{n}" into buf (cap >= FL_ID_MAX
 * + 1). Returns FL_OK or FL_ERR_BUFFER. */
int agent_new_request_id(fl_agent *a, char *buf, size_t cap);

/* Kiosk requests. rental / booking may be NULL or empty: a new id is chosen;
 * it is written to id_out (cap >= FL_ID_MAX + 1, may be NULL). Returns as
 * agent_submit(); the answer arrives as a decision. */
int agent_rent(fl_agent *a, const char *vehicle, const char *customer, uint32_t minutes,
               const char *rental, char *id_out, size_t cap);
int agent_cancel(fl_agent *a, const char *rental, const char *reason);
int agent_return(fl_agent *a, const char *rental, const char *station, uint64_t odometer_m);
int agent_book(fl_agent *a, const char *vehicle, const char *customer, int64_t start_ms,
               int64_t end_ms, const char *booking, char *id_out, size_t cap);
/* Cancels a booking (the deposit is refunded, the vehicle's window freed);
 * reason may be NULL. Returns as agent_submit(); the answer arrives as a
 * decision for the booking id. */
int agent_unbook(fl_agent *a, const char *booking, const char *reason);

/* Returns the last known decision for corr in *out: FL_OK (possibly still
 * QUEUED), FL_ERR_NOT_FOUND when this agent never made or heard of it. */
int agent_decision_get(fl_agent *a, const char *corr, agent_decision *out);

/* Kiosk: asks the hub q (docs/protocol.md 6.1) now: publishes a "query" on
 * fleet/v1/dev/{id}/up/query, QoS 1, seq 0, with Response Topic = the
 * kiosk's down/reply and Correlation Data = the query id. Not stored in the
 * outbox: when no answer comes, ask again (the same id may be passed again
 * as `id`; the hub answers every copy). id NULL or "": a new query id is
 * chosen. The id is written to id_out (cap >= FL_ID_MAX + 1; may be NULL).
 * The agent keeps the latest answer per query id, for the last
 * AGENT_QUERIES_KEPT ids; read it with agent_answer_get(). q is the
 * caller's and is only read. Returns FL_OK (published: the answer comes
 * later), FL_ERR_INVALID (not a kiosk, q breaks the contract, bad id),
 * FL_ERR_UNAVAILABLE (not connected: nothing was sent), FL_ERR_NOMEM,
 * FL_ERR_MQTT. */
int agent_query(fl_agent *a, const fl_query *q, const char *id, char *id_out, size_t cap);

/* Copies the latest answer to query id into *out (caller-owned; nothing to
 * free). Returns FL_OK, or FL_ERR_NOT_FOUND when no answer has come (yet)
 * for an id this agent asked, or the id is not one of its last
 * AGENT_QUERIES_KEPT queries. */
int agent_answer_get(fl_agent *a, const char *id, agent_answer *out);

/* Vehicle: a customer asks to unlock. Allowed if a stored booking of that
 * customer covers now_ms (device time) or the hub sent an unlock command for
 * that customer. Either way a lock event is recorded (unlocked, or refused
 * with the reason). Returns FL_OK with *res filled, or an agent_submit error
 * (then nothing was decided). */
int agent_unlock(fl_agent *a, const char *customer, int64_t now_ms, agent_unlock_result *res);

/* Vehicle: locks and records a lock event. Returns as agent_submit(). */
int agent_lock(fl_agent *a);

/* Vehicle: queues a telemetry reading (coalescing; never FL_ERR_FULL). With
 * telemetry_period_ms set, it is also the reading agent_tick() repeats. */
int agent_telemetry(fl_agent *a, uint64_t odometer_m, uint32_t energy_pct, double lat,
                    double lon);

/* Vehicle: records a fault with n codes (1..FL_MAX_DTCS). text may be NULL.
 * Returns as agent_submit(). */
int agent_fault(fl_agent *a, const char *const *dtcs, size_t n, fl_severity severity,
                const char *text, uint64_t *seq);

/* Copies up to cap stored bookings into out. Returns the number stored (may
 * exceed cap) or a negative fl_err. */
int agent_bookings(fl_agent *a, fl_booking *out, size_t cap);

#endif
