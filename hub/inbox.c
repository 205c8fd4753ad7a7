#include "inbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fleet/error.h"
#include "fleet/log.h"

struct hub_inbox {
  pthread_mutex_t lock;
  pthread_cond_t notempty, notfull;
  hub_input **ring;
  size_t cap, head, len;
  bool stopping;
  bool woken; /* inbox_wake: the next inbox_take does not wait */
};

int inbox_create(size_t cap, hub_inbox **out) {
  hub_inbox *q = calloc(1, sizeof *q);
  if (!q || !(q->ring = calloc(cap ? cap : 1, sizeof *q->ring))) {
    free(q);
    return FL_ERR_NOMEM;
  }
  q->cap = cap ? cap : 1;
  pthread_mutex_init(&q->lock, NULL);
  pthread_cond_init(&q->notempty, NULL);
  pthread_cond_init(&q->notfull, NULL);
  *out = q;
  return FL_OK;
}

static void call_release(hub_op_call *c) {
  pthread_mutex_lock(&c->lock);
  bool last = --c->refs == 0;
  pthread_mutex_unlock(&c->lock);
  if (!last) return;
  pthread_mutex_destroy(&c->lock);
  pthread_cond_destroy(&c->cond);
  free(c);
}

void inbox_call_finish(hub_op_call *c) {
  pthread_mutex_lock(&c->lock);
  c->done = true;
  pthread_cond_signal(&c->cond);
  pthread_mutex_unlock(&c->lock);
  call_release(c);
}

void inbox_destroy(hub_inbox *q) {
  if (!q) return;
  /* inputs still queued were not acked: their senders resend them */
  for (size_t i = 0; i < q->len; i++) {
    hub_input *in = q->ring[(q->head + i) % q->cap];
    if (in->kind == IN_OP) {
      in->call->res.code = FL_ERR_SHUTDOWN;
      inbox_call_finish(in->call);
    }
    free(in);
  }
  free(q->ring);
  pthread_mutex_destroy(&q->lock);
  pthread_cond_destroy(&q->notempty);
  pthread_cond_destroy(&q->notfull);
  free(q);
}

hub_input *inbox_mqtt_input(const fl_mqtt_msg *msg) {
  size_t tlen = strlen(msg->topic) + 1;
  size_t rlen = msg->response_topic ? strlen(msg->response_topic) + 1 : 0;
  hub_input *in = calloc(1, sizeof *in + tlen + rlen + msg->len + 1);
  if (!in) return NULL;
  in->kind = IN_MQTT;
  char *p = in->data;
  in->topic = memcpy(p, msg->topic, tlen);
  p += tlen;
  if (rlen) {
    in->response_topic = memcpy(p, msg->response_topic, rlen);
    p += rlen;
  }
  in->payload = (uint8_t *)p;
  if (msg->len) memcpy(p, msg->payload, msg->len);
  in->len = msg->len;
  return in;
}

hub_input *inbox_payment_input(const pay_result *res) {
  hub_input *in = calloc(1, sizeof *in);
  if (in) {
    in->kind = IN_PAYMENT;
    in->pay = *res;
  }
  return in;
}

hub_input *inbox_connected_input(void) {
  hub_input *in = calloc(1, sizeof *in);
  if (in) in->kind = IN_CONNECTED;
  return in;
}

int inbox_push(hub_inbox *q, hub_input *in, bool wait) {
  pthread_mutex_lock(&q->lock);
  while (wait && q->len == q->cap && !q->stopping) pthread_cond_wait(&q->notfull, &q->lock);
  int rc = q->stopping ? FL_ERR_SHUTDOWN : q->len == q->cap ? FL_ERR_FULL : FL_OK;
  if (rc == FL_OK) {
    q->ring[(q->head + q->len) % q->cap] = in;
    q->len++;
    pthread_cond_signal(&q->notempty);
  }
  pthread_mutex_unlock(&q->lock);
  if (rc != FL_OK) free(in);
  return rc;
}

void inbox_wake(hub_inbox *q) {
  pthread_mutex_lock(&q->lock);
  q->woken = true;
  pthread_cond_signal(&q->notempty);
  pthread_mutex_unlock(&q->lock);
}

/* Fills ts with the time wait_ms from now on CLOCK_REALTIME. */
static void deadline(struct timespec *ts, int wait_ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += wait_ms / 1000;
  ts->tv_nsec += (long)(wait_ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

size_t inbox_take(hub_inbox *q, hub_input **out, size_t max, int wait_ms) {
  pthread_mutex_lock(&q->lock);
  if (q->len == 0 && !q->stopping && !q->woken && wait_ms > 0) {
    struct timespec ts;
    deadline(&ts, wait_ms);
    pthread_cond_timedwait(&q->notempty, &q->lock, &ts);
  }
  q->woken = false;
  size_t n = 0;
  while (n < max && q->len > 0) {
    out[n++] = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
  }
  if (n) pthread_cond_broadcast(&q->notfull);
  pthread_mutex_unlock(&q->lock);
  return n;
}

size_t inbox_depth(hub_inbox *q) {
  pthread_mutex_lock(&q->lock);
  size_t n = q->len;
  pthread_mutex_unlock(&q->lock);
  return n;
}

size_t inbox_cap(const hub_inbox *q) { return q->cap; }

void inbox_stop(hub_inbox *q) {
  pthread_mutex_lock(&q->lock);
  q->stopping = true;
  pthread_cond_broadcast(&q->notempty);
  pthread_cond_broadcast(&q->notfull);
  pthread_mutex_unlock(&q->lock);
}

bool inbox_stopping(hub_inbox *q) {
  pthread_mutex_lock(&q->lock);
  bool s = q->stopping;
  pthread_mutex_unlock(&q->lock);
  return s;
}

int inbox_call(hub_inbox *q, const hub_op *op, hub_op_result *res, int timeout_ms) {
  hub_op_call *c = calloc(1, sizeof *c);
  hub_input *in = calloc(1, sizeof *in);
  if (!c || !in) {
    free(c);
    free(in);
    res->code = FL_ERR_NOMEM;
    snprintf(res->message, sizeof res->message, "out of memory");
    return res->code;
  }
  c->op = *op;
  c->refs = 2;
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->cond, NULL);
  in->kind = IN_OP;
  in->call = c;
  if (inbox_push(q, in, true) != FL_OK) {
    c->refs = 1;
    call_release(c);
    res->code = FL_ERR_SHUTDOWN;
    snprintf(res->message, sizeof res->message, "the hub is shutting down");
    return res->code;
  }
  struct timespec ts;
  deadline(&ts, timeout_ms);
  pthread_mutex_lock(&c->lock);
  while (!c->done)
    if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) != 0) break;
  if (c->done) {
    *res = c->res;
  } else {
    res->code = FL_ERR_TIMEOUT;
    snprintf(res->message, sizeof res->message, "the hub did not answer within %d ms", timeout_ms);
  }
  pthread_mutex_unlock(&c->lock);
  call_release(c);
  return res->code;
}
