/* The engine's inbox: one bounded queue of inputs (MQTT messages, payment
 * results, operator commands, "connected" notices) filled by paho's and the
 * payment workers' threads and the HTTP threads, emptied in batches by the
 * engine thread. */
#ifndef HUB_INBOX_H
#define HUB_INBOX_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet/mqtt.h"
#include "ops.h"
#include "payment.h"

typedef enum hub_input_kind { IN_MQTT, IN_PAYMENT, IN_OP, IN_CONNECTED } hub_input_kind;

/* An operator command waiting for the engine; freed by whoever is last. */
typedef struct hub_op_call {
  hub_op op;
  hub_op_result res;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  int refs;
} hub_op_call;

typedef struct hub_input {
  hub_input_kind kind;
  /* IN_MQTT: the strings point into data[] */
  char *topic;
  char *response_topic;
  uint8_t *payload;
  size_t len;
  pay_result pay;     /* IN_PAYMENT */
  hub_op_call *call;  /* IN_OP */
  char data[];
} hub_input;

typedef struct hub_inbox hub_inbox;

/* Creates an inbox for at most cap inputs. Returns FL_OK and *out (free with
 * inbox_destroy, which answers commands still queued with FL_ERR_SHUTDOWN),
 * or FL_ERR_NOMEM. */
int inbox_create(size_t cap, hub_inbox **out);
void inbox_destroy(hub_inbox *q);

/* Make an input (NULL when out of memory); free with free(). */
hub_input *inbox_mqtt_input(const fl_mqtt_msg *msg);
hub_input *inbox_payment_input(const pay_result *res);
hub_input *inbox_connected_input(void);

/* Queues in (taking ownership). With wait, blocks while the queue is full;
 * without, drops in and returns FL_ERR_FULL (paho's threads must never
 * block). Returns FL_ERR_SHUTDOWN (and frees in) once stopping. */
int inbox_push(hub_inbox *q, hub_input *in, bool wait);

/* Takes up to max inputs into out, waiting at most wait_ms for the first.
 * Returns how many. */
size_t inbox_take(hub_inbox *q, hub_input **out, size_t max, int wait_ms);

/* Wakes the engine waiting in inbox_take (which then returns what it has,
 * maybe nothing) without queueing an input: something outside the queue
 * needs it (a PUBACK of an ack). Safe from paho's callbacks. */
void inbox_wake(hub_inbox *q);

/* Inputs queued now; the capacity. */
size_t inbox_depth(hub_inbox *q);
size_t inbox_cap(const hub_inbox *q);

/* Stops the inbox: pushes fail, waiters wake. inbox_stopping() tells. */
void inbox_stop(hub_inbox *q);
bool inbox_stopping(hub_inbox *q);

/* Runs op on the engine through q and waits at most timeout_ms for its
 * result into *res. Returns res->code (FL_ERR_TIMEOUT, FL_ERR_SHUTDOWN). */
int inbox_call(hub_inbox *q, const hub_op *op, hub_op_result *res, int timeout_ms);

/* The engine is done with an IN_OP input's call: wakes its caller. */
void inbox_call_finish(hub_op_call *c);

#endif
