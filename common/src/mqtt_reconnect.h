/* Internal to libfleetcommon: the reconnect scheduler of fl_mqtt.
 *
 * paho's automatic reconnect doubles its interval but has no jitter, and it
 * does not retry a first connect that failed; a fleet that lost its broker
 * would come back in lock-step. So each client has a reconnect__entry (its own
 * back-off state) and every client of a process is driven by one scheduler
 * (one thread, so that a simulator can run thousands of clients): a lost or
 * failed connection plans the next attempt at base/2 + rand(base/2), base
 * doubling from min_ms up to max_ms.
 *
 * The scheduler is an object of its own (struct reconnect__sched, in
 * mqtt_reconnect.c). The entries of clients that have started hold a
 * reference to it: the first start creates it and its thread, the last
 * reconnect__release() stops the thread and frees it. Knows nothing of
 * paho: an attempt is a call of the entry's attempt() function. */
#ifndef FLEET_MQTT_RECONNECT_H
#define FLEET_MQTT_RECONNECT_H

#include <stdbool.h>
#include <stdint.h>

struct reconnect__sched;

enum reconnect__state {
  RECONNECT_IDLE,       /* not started */
  RECONNECT_WAITING,    /* an attempt is planned at due_us */
  RECONNECT_CONNECTING, /* attempt() was called; waiting for its outcome */
  RECONNECT_UP,         /* connected */
  RECONNECT_STOPPED     /* reconnect__stop() was called: no attempt any more */
};

/* One client's entry. Embedded in its owner and set up with
 * reconnect__init(); every field is private to mqtt_reconnect.c and, once
 * started, guarded by the scheduler's lock. */
typedef struct reconnect__entry {
  int min_ms, max_ms;
  void (*attempt)(void *ctx); /* called on the scheduler's thread, without its lock */
  void *ctx;
  struct reconnect__sched *sched; /* a reference, from start to release */
  enum reconnect__state state;
  int tries;         /* attempts since the last connection: the back-off's exponent */
  int64_t due_us;    /* when WAITING: fl_mono_us() of the next attempt */
  bool in_attempt;   /* the scheduler is inside attempt() for this entry */
  struct reconnect__entry *next;
} reconnect__entry;

/* Sets up r (IDLE) for a client whose attempts are attempt(ctx); min_ms > 0,
 * max_ms >= min_ms. Takes no resource. */
void reconnect__init(reconnect__entry *r, int min_ms, int max_ms, void (*attempt)(void *ctx),
                       void *ctx);

/* Joins the process's scheduler (creating it and its thread if none runs)
 * and plans the first attempt at once. Does nothing unless r is IDLE.
 * Returns FL_OK or FL_ERR_NOMEM (no thread; r stays IDLE). */
int reconnect__start(reconnect__entry *r);

/* The connection is made: resets the back-off. Returns false when r was
 * stopped meanwhile (the connection should then be ignored). */
bool reconnect__connected(reconnect__entry *r);

/* An attempt failed (refused locally or by the broker, or timed out): plans
 * the next one if r is still CONNECTING. */
void reconnect__failed(reconnect__entry *r);

/* The connection was lost: plans the next attempt. Returns false when r was
 * stopped (then nothing is planned). */
bool reconnect__lost(reconnect__entry *r);

/* Stops r: no attempt is planned or started after this, and an attempt()
 * running for r has returned when this returns. Must not be called from
 * attempt(). r keeps its reference to the scheduler: callbacks that still
 * come for r see it STOPPED. */
void reconnect__stop(reconnect__entry *r);

/* Stops r if needed and drops its reference to the scheduler (the last one
 * stops the scheduler's thread and frees it). Call once nothing can call
 * the functions above for r any more. Accepts an r never started. */
void reconnect__release(reconnect__entry *r);

/* The back-off before attempt number tries + 1 after a loss or failure:
 * base = min_ms doubled tries times, at most max_ms; returns base/2 plus
 * rnd modulo (base/2 + 1). Pure; exposed for the unit test. */
int64_t reconnect__delay_ms(int min_ms, int max_ms, int tries, uint64_t rnd);

#endif
