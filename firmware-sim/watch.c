#include "watch.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/mqtt.h"
#include "fleet/proto.h"
#include "fleet/topic.h"

/* One notification, or the last state of one thing. */
struct seen {
  char kind[16];
  char id[FL_ID_MAX + 1];
  char state[24];
};

struct seen_list {
  struct seen *v;
  size_t n, cap;
};

struct sim_watch {
  fl_mqtt *mqtt;
  pthread_mutex_t lock;
  struct seen_list notes;  /* every notification, in arrival order */
  struct seen_list states; /* last retained state per kind and id */
};

/* Returns a new slot at the end of l, or NULL when out of memory. */
static struct seen *seen_add(struct seen_list *l) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    struct seen *grown = realloc(l->v, cap * sizeof *grown);
    if (!grown) return NULL;
    l->v = grown;
    l->cap = cap;
  }
  return memset(&l->v[l->n++], 0, sizeof *l->v);
}

static struct seen *seen_find(struct seen_list *l, const char *kind, const char *id) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i].kind, kind) == 0 && strcmp(l->v[i].id, id) == 0) return &l->v[i];
  return NULL;
}

/* The state field of a retained state message, or NULL for other types. */
static const char *state_of(const fl_msg *m) {
  switch (m->env.type) {
  case FL_MSG_VEHICLE_STATE: return m->body.vehicle_state.state;
  case FL_MSG_RENTAL_STATE: return m->body.rental_state.state;
  case FL_MSG_REPAIR_STATE: return m->body.repair_state.state;
  default: return NULL;
  }
}

/* Sets the last state of kind/id (w->lock held). */
static void state_set(sim_watch *w, const char *kind, const char *id, const char *state) {
  struct seen *s = seen_find(&w->states, kind, id);
  if (!s && (s = seen_add(&w->states))) {
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    snprintf(s->id, sizeof s->id, "%s", id);
  }
  if (s) snprintf(s->state, sizeof s->state, "%s", state);
}

/* One change, from a notify or from a notices message (w->lock held). A
 * hub of rev 1.2 publishes no retained rental state by default (P-LEAN-1):
 * a rental's last state is then the one its notices name. */
static void note_add(sim_watch *w, const char *kind, const char *id, const char *to) {
  struct seen *s = seen_add(&w->notes);
  if (s) {
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    snprintf(s->id, sizeof s->id, "%s", id);
    snprintf(s->state, sizeof s->state, "%s", to);
  }
  if (strcmp(kind, "rental") == 0) state_set(w, kind, id, to);
}

/* paho's thread, paho's lock held: decode, copy under our own lock, return. */
static void on_message(void *ctx, const fl_mqtt_msg *msg) {
  sim_watch *w = ctx;
  fl_msg *m = malloc(sizeof *m); /* ~15 KB: not on paho's thread's stack */
  if (!m) return;
  if (fl_msg_decode(msg->payload, msg->len, m, NULL) != FL_OK) {
    free(m);
    return;
  }
  pthread_mutex_lock(&w->lock);
  if (m->env.type == FL_MSG_NOTIFY) {
    note_add(w, m->body.notify.kind, m->body.notify.id, m->body.notify.to);
  } else if (m->env.type == FL_MSG_NOTICES) { /* rev 1.2: many at once, in order */
    for (uint32_t i = 0; i < m->body.notices.n_changes; i++)
      note_add(w, m->body.notices.kind, m->body.notices.changes[i].id,
               m->body.notices.changes[i].to);
  } else if (state_of(m)) {
    /* fleet/v1/state/{kind}/{id} */
    char kind[16], id[FL_ID_MAX + 1];
    if (sscanf(msg->topic, FL_TOPIC_ROOT "/state/%15[^/]/%64s", kind, id) == 2)
      state_set(w, kind, id, state_of(m));
  }
  pthread_mutex_unlock(&w->lock);
  free(m);
}

int sim_watch_open(const char *broker_uri, int timeout_ms, sim_watch **out) {
  sim_watch *w = calloc(1, sizeof *w);
  if (!w) return FL_ERR_NOMEM;
  pthread_mutex_init(&w->lock, NULL);
  char client_id[64];
  snprintf(client_id, sizeof client_id, "fleet-sim-watch-%ld", (long)getpid());
  const char *subs[] = {FL_TOPIC_ROOT "/notify/#", FL_TOPIC_ROOT "/state/#",
                        FL_TOPIC_ROOT "/notices/#"}; /* rev 1.2 */
  /* a persistent session: a broker restart does not lose notifications */
  fl_mqtt_opts o = {.uri = broker_uri, .client_id = client_id, .session_expiry_s = 600,
                    .reconnect_min_ms = 200, .reconnect_max_ms = 2000,
                    .subscriptions = subs, .n_subscriptions = 3};
  fl_mqtt_callbacks cb = {.ctx = w, .on_message = on_message};
  int rc = fl_mqtt_create(&o, &cb, &w->mqtt);
  if (rc == FL_OK) rc = fl_mqtt_start(w->mqtt);
  int64_t end = fl_mono_us() + (int64_t)timeout_ms * 1000;
  while (rc == FL_OK && !fl_mqtt_connected(w->mqtt))
    if (fl_mono_us() > end) rc = FL_ERR_TIMEOUT;
    else fl_sleep_ms(20);
  if (rc != FL_OK) {
    sim_watch_close(w);
    return rc;
  }
  fl_sleep_ms(200); /* the SUBSCRIBE was sent on connect; let the broker take it */
  *out = w;
  return FL_OK;
}

bool sim_watch_notified(sim_watch *w, const char *kind, const char *id, const char *state) {
  pthread_mutex_lock(&w->lock);
  bool found = false;
  for (size_t i = 0; i < w->notes.n && !found; i++) {
    const struct seen *s = &w->notes.v[i];
    found = strcmp(s->kind, kind) == 0 && strcmp(s->id, id) == 0 && strcmp(s->state, state) == 0;
  }
  pthread_mutex_unlock(&w->lock);
  return found;
}

void sim_watch_state(sim_watch *w, const char *kind, const char *id, char *out, size_t cap) {
  pthread_mutex_lock(&w->lock);
  const struct seen *s = seen_find(&w->states, kind, id);
  snprintf(out, cap, "%s", s ? s->state : "");
  pthread_mutex_unlock(&w->lock);
}

unsigned sim_watch_count(sim_watch *w) {
  pthread_mutex_lock(&w->lock);
  unsigned n = (unsigned)w->notes.n;
  pthread_mutex_unlock(&w->lock);
  return n;
}

void sim_watch_close(sim_watch *w) {
  if (!w) return;
  fl_mqtt_destroy(w->mqtt); /* no callback runs after this */
  free(w->notes.v);
  free(w->states.v);
  pthread_mutex_destroy(&w->lock);
  free(w);
}
