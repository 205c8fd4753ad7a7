/* The reconnect scheduler of fl_mqtt (mqtt_reconnect.h): one thread that
 * calls each waiting entry's attempt() when it is due. */
#include "mqtt_reconnect.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "fleet/clock.h"
#include "fleet/error.h"

/* The scheduler: its entries, its thread, and the random numbers of their
 * jitter. Everything is guarded by lock. */
struct reconnect__sched {
  pthread_mutex_t lock;
  pthread_cond_t cond; /* an entry was planned or left an attempt; or quit */
  reconnect__entry *entries;
  int refs;      /* entries started and not yet released */
  bool quit;     /* the last reference is gone: the thread ends */
  uint64_t rng;  /* xorshift64 state, never 0 */
  pthread_t thread;
};

/* The scheduler shared by the process's clients, NULL while none is
 * started; shared_lock guards the pointer and the reference count, and is
 * held while the last reference stops the thread. */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct reconnect__sched *shared;

int64_t reconnect__delay_ms(int min_ms, int max_ms, int tries, uint64_t rnd) {
  int64_t base = min_ms > 0 ? min_ms : 1;
  for (int i = 0; i < tries && base < max_ms; i++) base *= 2;
  if (base > max_ms) base = max_ms > 0 ? max_ms : 1;
  return base / 2 + (int64_t)(rnd % (uint64_t)(base / 2 + 1));
}

/* Returns the next random number of s (lock held). */
static uint64_t sched_random(struct reconnect__sched *s) {
  uint64_t x = s->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  s->rng = x;
  return x;
}

/* Plans r's next attempt: at once when first, else after the back-off.
 * Called with the scheduler's lock held. */
static void plan(reconnect__entry *r, bool first) {
  struct reconnect__sched *s = r->sched;
  if (r->state == RECONNECT_STOPPED) return;
  int64_t delay_ms = 0;
  if (!first) {
    delay_ms = reconnect__delay_ms(r->min_ms, r->max_ms, r->tries, sched_random(s));
    if (r->tries < 30) r->tries++;
  }
  r->state = RECONNECT_WAITING;
  r->due_us = fl_mono_us() + delay_ms * 1000;
  pthread_cond_broadcast(&s->cond);
}

/* The scheduler's thread: runs the attempt of the first entry that is due,
 * else sleeps until the earliest one is (at most 1 s). */
static void *sched_main(void *arg) {
  struct reconnect__sched *s = arg;
  pthread_mutex_lock(&s->lock);
  while (!s->quit) {
    int64_t now = fl_mono_us(), next = now + 1000000;
    reconnect__entry *due = NULL;
    for (reconnect__entry *r = s->entries; r; r = r->next) {
      if (r->state != RECONNECT_WAITING) continue;
      if (r->due_us <= now) {
        due = r;
        break;
      }
      if (r->due_us < next) next = r->due_us;
    }
    if (due) {
      due->state = RECONNECT_CONNECTING;
      due->in_attempt = true;
      pthread_mutex_unlock(&s->lock);
      due->attempt(due->ctx);
      pthread_mutex_lock(&s->lock);
      due->in_attempt = false;
      pthread_cond_broadcast(&s->cond);
      continue;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wait_us = next - now;
    ts.tv_sec += wait_us / 1000000;
    ts.tv_nsec += (wait_us % 1000000) * 1000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&s->cond, &s->lock, &ts);
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

/* Returns the shared scheduler with one more reference, creating it and
 * its thread if needed; NULL when out of memory or threads. */
static struct reconnect__sched *sched_acquire(void) {
  pthread_mutex_lock(&shared_lock);
  struct reconnect__sched *s = shared;
  if (!s) {
    s = calloc(1, sizeof *s);
    if (s) {
      pthread_mutex_init(&s->lock, NULL);
      pthread_cond_init(&s->cond, NULL);
      s->rng = ((uint64_t)fl_mono_us() << 16) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)s;
      if (!s->rng) s->rng = 1;
      if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
        s = NULL;
      }
    }
    shared = s;
  }
  if (s) {
    pthread_mutex_lock(&s->lock);
    s->refs++;
    pthread_mutex_unlock(&s->lock);
  }
  pthread_mutex_unlock(&shared_lock);
  return s;
}

/* Drops one reference to s; the last one ends its thread and frees it. */
static void sched_release(struct reconnect__sched *s) {
  pthread_mutex_lock(&shared_lock);
  pthread_mutex_lock(&s->lock);
  bool last = --s->refs == 0;
  if (last) {
    s->quit = true;
    pthread_cond_broadcast(&s->cond);
  }
  pthread_mutex_unlock(&s->lock);
  if (last) {
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
    shared = NULL;
  }
  pthread_mutex_unlock(&shared_lock);
}

void reconnect__init(reconnect__entry *r, int min_ms, int max_ms, void (*attempt)(void *ctx),
                     void *ctx) {
  *r = (reconnect__entry){.min_ms = min_ms, .max_ms = max_ms < min_ms ? min_ms : max_ms,
                          .attempt = attempt, .ctx = ctx, .state = RECONNECT_IDLE};
}

int reconnect__start(reconnect__entry *r) {
  if (r->sched) return FL_OK; /* started before (and maybe stopped since) */
  struct reconnect__sched *s = sched_acquire();
  if (!s) return FL_ERR_NOMEM;
  pthread_mutex_lock(&s->lock);
  r->sched = s;
  if (r->state == RECONNECT_IDLE) {
    r->next = s->entries;
    s->entries = r;
    plan(r, true);
  }
  pthread_mutex_unlock(&s->lock);
  return FL_OK;
}

bool reconnect__connected(reconnect__entry *r) {
  struct reconnect__sched *s = r->sched;
  if (!s) return false;
  pthread_mutex_lock(&s->lock);
  bool stopped = r->state == RECONNECT_STOPPED;
  if (!stopped) {
    r->state = RECONNECT_UP;
    r->tries = 0;
  }
  pthread_mutex_unlock(&s->lock);
  return !stopped;
}

void reconnect__failed(reconnect__entry *r) {
  struct reconnect__sched *s = r->sched;
  if (!s) return;
  pthread_mutex_lock(&s->lock);
  if (r->state == RECONNECT_CONNECTING) plan(r, false);
  pthread_mutex_unlock(&s->lock);
}

bool reconnect__lost(reconnect__entry *r) {
  struct reconnect__sched *s = r->sched;
  if (!s) return false;
  pthread_mutex_lock(&s->lock);
  bool stopped = r->state == RECONNECT_STOPPED;
  if (!stopped) plan(r, false);
  pthread_mutex_unlock(&s->lock);
  return !stopped;
}

void reconnect__stop(reconnect__entry *r) {
  struct reconnect__sched *s = r->sched;
  if (!s) {
    r->state = RECONNECT_STOPPED;
    return;
  }
  pthread_mutex_lock(&s->lock);
  r->state = RECONNECT_STOPPED;
  for (reconnect__entry **pp = &s->entries; *pp; pp = &(*pp)->next) {
    if (*pp == r) {
      *pp = r->next;
      break;
    }
  }
  while (r->in_attempt) pthread_cond_wait(&s->cond, &s->lock);
  pthread_mutex_unlock(&s->lock);
}

void reconnect__release(reconnect__entry *r) {
  if (!r) return;
  reconnect__stop(r);
  if (r->sched) sched_release(r->sched);
  r->sched = NULL;
}
