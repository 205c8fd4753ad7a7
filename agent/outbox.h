/* The agent's outbox: uplink events in SQLite, numbered by a per-device seq
 * that survives restarts, plus the meta counters (next_seq, boot, last_ack,
 * applied) and the telemetry queue whose readings get a seq only when they
 * are moved into the outbox to be sent. Not thread-safe: the agent's mutex
 * guards it. Internal to the agent library (and its unit test). */
#ifndef AGENT_OUTBOX_H
#define AGENT_OUTBOX_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleet/db.h"
#include "fleet/proto.h"

/* Longest device id: leaves room for ":{seq}" in a mid of FL_ID_MAX bytes. */
#define AGENT_ID_MAX 40

typedef struct outbox outbox;

typedef enum outbox_kind { OUTBOX_CRITICAL, OUTBOX_TELEMETRY } outbox_kind;

typedef struct outbox_opts {
  const char *path;      /* SQLite file */
  const char *dev;       /* device id for the envelope, <= AGENT_ID_MAX */
  fl_db_sync durability;
  int max_events;        /* critical rows before FL_ERR_FULL */
  int telemetry_max;     /* queued readings before the oldest is dropped */
} outbox_opts;

/* One stored event, as read back for publishing. */
typedef struct outbox_event {
  uint64_t seq;
  fl_msg_type type;
  char corr[FL_ID_MAX + 1];
  uint8_t payload[FL_MAX_MSG_BYTES];
  size_t len;
} outbox_event;

/* Opens (creating) the store and increments its boot counter. Returns FL_OK
 * and *out (close with outbox__close), FL_ERR_DB. */
int outbox__open(const outbox_opts *o, outbox **out);
/* Closes the store; NULL accepted. */
void outbox__close(outbox *ob);
/* The SQLite handle, for the other tables of the agent's file. */
sqlite3 *outbox__db(outbox *ob);

uint64_t outbox__boot(const outbox *ob);
uint64_t outbox__next_seq(const outbox *ob);
uint64_t outbox__last_ack(const outbox *ob);
uint64_t outbox__applied(const outbox *ob);
/* Rows in the outbox (critical and sent telemetry). */
uint64_t outbox__backlog(const outbox *ob);
/* Readings in the telemetry queue, and readings dropped since open. */
uint64_t outbox__telemetry_queued(const outbox *ob);
uint64_t outbox__telemetry_dropped(const outbox *ob);

/* A transaction around several calls (they nest inside it). rollback also
 * reloads the cached counters. Return FL_OK or FL_ERR_DB. */
int outbox__begin(outbox *ob);
int outbox__commit(outbox *ob);
void outbox__rollback(outbox *ob);

/* Fills the envelope of m (v, mid, dev, boot, seq, time if 0), encodes it and
 * stores it. Returns FL_OK and *seq, FL_ERR_FULL (critical, outbox full),
 * FL_ERR_INVALID (does not encode), FL_ERR_DB. */
int outbox__append(outbox *ob, fl_msg *m, uint64_t *seq);

/* Queues a telemetry message (no seq) taken at m->env.time_ms, dropping the
 * oldest readings beyond telemetry_max. Returns FL_OK or FL_ERR_DB. */
int outbox__telemetry_add(outbox *ob, const fl_msg *m);

/* Gives up to max queued readings, oldest first, a seq in the outbox.
 * Returns how many moved, or a negative fl_err. */
int outbox__telemetry_promote(outbox *ob, int max);

/* Reads the first event with seq > after into *ev. Returns FL_OK,
 * FL_ERR_NOT_FOUND when there is none, FL_ERR_DB. */
int outbox__next_event(outbox *ob, uint64_t after, outbox_event *ev);

/* The hub acked everything <= upto: deletes those rows, persists last_ack.
 * Returns the number of rows deleted or a negative fl_err. */
int outbox__ack(outbox *ob, uint64_t upto);

/* The hub already holds seqs below next_seq (our storage was lost):
 * renumbers the unacked rows from next_seq on and moves last_ack to
 * next_seq - 1. No-op when next_seq <= outbox__next_seq(). Returns FL_OK or
 * a negative fl_err. */
int outbox__rebase(outbox *ob, uint64_t next_seq);

/* Persists the highest downlink seq applied. Returns FL_OK or FL_ERR_DB. */
int outbox__set_applied(outbox *ob, uint64_t applied);

#endif
