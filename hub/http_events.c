/* The console's live feed (http_events.h): an MQTT subscriber filling a ring
 * of JSON lines, and one Server-Sent Events stream per open console, each
 * served by its libmicrohttpd connection thread, which may block in the
 * content reader (MHD_USE_THREAD_PER_CONNECTION). */
#include "http_events.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/mqtt.h"
#include "fleet/proto.h"
#include "fleet/topic.h"
#include "http_internal.h"

#define EVENTS_LINE_MAX 2048
#define EVENTS_KEEPALIVE_S 15
#define STATE_PREFIX FL_TOPIC_ROOT "/state/"
#define NOTIFY_PREFIX FL_TOPIC_ROOT "/notify/"
#define NOTICES_PREFIX FL_TOPIC_ROOT "/notices/"

struct http_events {
  pthread_mutex_t mu;
  pthread_cond_t news; /* broadcast when a line is added or the feed closes */
  bool closing;
  uint64_t head;                   /* seq of the next line; the first is 1 */
  char *ring[HTTP_EVENTS_RING];    /* line of seq s at s % HTTP_EVENTS_RING */
  fl_mqtt *mqtt;
};

/* One open stream: what it sent, and the bytes of its current piece. */
typedef struct events_stream {
  http_events *ev;
  uint64_t next; /* seq of the next line to send */
  char piece[EVENTS_LINE_MAX + 64];
  size_t len, off;
} events_stream;

/* ---- messages to JSON --------------------------------------------------- */

static void add_text(cJSON *o, const char *key, const char *value) {
  if (value[0]) cJSON_AddStringToObject(o, key, value);
}

/* Fills o with what the console needs of a retained state message m. */
static void state_fields(cJSON *o, const fl_msg *m) {
  switch (m->env.type) {
  case FL_MSG_VEHICLE_STATE:
    cJSON_AddStringToObject(o, "state", m->body.vehicle_state.state);
    cJSON_AddBoolToObject(o, "online", m->body.vehicle_state.online);
    cJSON_AddNumberToObject(o, "energy_pct", m->body.vehicle_state.energy_pct);
    break;
  case FL_MSG_RENTAL_STATE: cJSON_AddStringToObject(o, "state", m->body.rental_state.state); break;
  case FL_MSG_REPAIR_STATE: cJSON_AddStringToObject(o, "state", m->body.repair_state.state); break;
  case FL_MSG_BOOKING_STATE:
    cJSON_AddStringToObject(o, "state", m->body.booking_state.state);
    break;
  default: break;
  }
}

/* Fills o with one change, as the console's "notify" line. */
static void notify_fields(cJSON *o, const char *kind, const char *id, const char *from,
                          const char *to, const char *text, const char *customer) {
  cJSON_AddStringToObject(o, "type", "notify");
  cJSON_AddStringToObject(o, "kind", kind);
  cJSON_AddStringToObject(o, "id", id);
  add_text(o, "from", from);
  cJSON_AddStringToObject(o, "to", to);
  add_text(o, "text", text);
  add_text(o, "customer", customer);
}

size_t http__event_json(const char *topic, const unsigned char *payload, size_t len, char *buf,
                        size_t cap) {
  fl_msg *m = malloc(sizeof *m); /* a few KB: not on a paho thread's stack */
  cJSON *o = NULL;
  size_t n = 0;
  if (!m || fl_msg_decode(payload, len, m, NULL) != FL_OK) goto out;
  o = cJSON_CreateObject();
  if (!o) goto out;
  if (m->env.type == FL_MSG_NOTIFY && strncmp(topic, NOTIFY_PREFIX, strlen(NOTIFY_PREFIX)) == 0) {
    const fl_notify *nt = &m->body.notify;
    notify_fields(o, nt->kind, nt->id, nt->from, nt->to, nt->text, nt->customer);
  } else if (strncmp(topic, STATE_PREFIX, strlen(STATE_PREFIX)) == 0) {
    /* fleet/v1/state/{kind}/{id} */
    const char *kind = topic + strlen(STATE_PREFIX), *slash = strchr(kind, '/');
    char k[16];
    if (!slash || (size_t)(slash - kind) >= sizeof k || !fl_id_valid(slash + 1)) goto out;
    memcpy(k, kind, (size_t)(slash - kind));
    k[slash - kind] = '\0';
    cJSON_AddStringToObject(o, "type", "state");
    cJSON_AddStringToObject(o, "kind", k);
    cJSON_AddStringToObject(o, "id", slash + 1);
    state_fields(o, m);
  } else {
    goto out;
  }
  cJSON_AddNumberToObject(o, "at_ms", (double)m->env.time_ms);
  if (cJSON_PrintPreallocated(o, buf, (int)cap, false)) n = strlen(buf);
out:
  cJSON_Delete(o);
  free(m);
  return n;
}

/* ---- the feed ----------------------------------------------------------- */

/* Adds line (copied) to the ring and wakes the streams. */
static void push_line(http_events *ev, const char *line) {
  char *copy = strdup(line);
  if (!copy) return;
  pthread_mutex_lock(&ev->mu);
  char **slot = &ev->ring[ev->head % HTTP_EVENTS_RING];
  free(*slot);
  *slot = copy;
  ev->head++;
  pthread_cond_broadcast(&ev->news);
  pthread_mutex_unlock(&ev->mu);
}

/* A batch's notices (rev 1.2): one line per change, as a notify. */
static void push_notices(http_events *ev, const fl_mqtt_msg *msg) {
  fl_msg *m = malloc(sizeof *m); /* a few KB: not on a paho thread's stack */
  if (!m || fl_msg_decode(msg->payload, msg->len, m, NULL) != FL_OK ||
      m->env.type != FL_MSG_NOTICES) {
    free(m);
    return;
  }
  const fl_notices *ns = &m->body.notices;
  for (uint32_t i = 0; i < ns->n_changes; i++) {
    const fl_notice *c = &ns->changes[i];
    cJSON *o = cJSON_CreateObject();
    char line[EVENTS_LINE_MAX];
    if (!o) break;
    notify_fields(o, ns->kind, c->id, c->from, c->to, c->text, c->customer);
    cJSON_AddNumberToObject(o, "at_ms", (double)m->env.time_ms);
    if (cJSON_PrintPreallocated(o, line, (int)sizeof line, false)) push_line(ev, line);
    cJSON_Delete(o);
  }
  free(m);
}

/* paho's thread, paho's lock held: decode, copy into the ring, wake streams. */
static void on_message(void *ctx, const fl_mqtt_msg *msg) {
  http_events *ev = ctx;
  char line[EVENTS_LINE_MAX];
  if (msg->retained) return; /* the snapshot a subscription brings: the console reads the API */
  if (strncmp(msg->topic, NOTICES_PREFIX, strlen(NOTICES_PREFIX)) == 0) {
    push_notices(ev, msg);
    return;
  }
  size_t n = http__event_json(msg->topic, msg->payload, msg->len, line, sizeof line);
  if (n) push_line(ev, line);
}

static void on_lost(void *ctx, const char *cause) { fl_warn("http events: mqtt lost: %s", cause); }

int http_events_start(const hub_config *cfg, http_events **out) {
  *out = NULL;
  if (cfg->mqtt_username[0]) {
    /* A broker with logins may name a session after its login
     * (use_username_as_clientid, docs/operations.md): a second session as the
     * hub would take the hub's own over. Without a login of its own, no feed. */
    fl_info("http events: no live feed with [mqtt] username set (the console polls)");
    return FL_ERR_CONFIG;
  }
  http_events *ev = calloc(1, sizeof *ev);
  if (!ev) return FL_ERR_NOMEM;
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_mutex_init(&ev->mu, NULL);
  pthread_cond_init(&ev->news, &attr);
  pthread_condattr_destroy(&attr);
  ev->head = 1;
  char client_id[sizeof cfg->mqtt_client_id + 16];
  snprintf(client_id, sizeof client_id, "%s-console", cfg->mqtt_client_id);
  static const char *const filters[] = {STATE_PREFIX "#", NOTIFY_PREFIX "#", NOTICES_PREFIX "#"};
  fl_mqtt_opts o = {
      .uri = cfg->mqtt_uri,
      .client_id = client_id,
      .clean_start = true,
      .subscriptions = filters,
      .n_subscriptions = 3,
      .ca_file = cfg->mqtt_ca_file[0] ? cfg->mqtt_ca_file : NULL,
      .cert_file = cfg->mqtt_cert_file[0] ? cfg->mqtt_cert_file : NULL,
      .key_file = cfg->mqtt_key_file[0] ? cfg->mqtt_key_file : NULL,
  };
  fl_mqtt_callbacks cb = {.ctx = ev, .on_message = on_message, .on_lost = on_lost};
  int rc = fl_mqtt_create(&o, &cb, &ev->mqtt);
  if (rc == FL_OK) rc = fl_mqtt_start(ev->mqtt);
  if (rc != FL_OK) {
    fl_error("http events: cannot start the MQTT feed: %s", fl_strerror(rc));
    http_events_free(ev);
    return rc;
  }
  *out = ev;
  return FL_OK;
}

void http_events_close(http_events *ev) {
  if (!ev) return;
  pthread_mutex_lock(&ev->mu);
  ev->closing = true;
  pthread_cond_broadcast(&ev->news);
  pthread_mutex_unlock(&ev->mu);
  fl_mqtt_stop(ev->mqtt, 1000);
}

void http_events_free(http_events *ev) {
  if (!ev) return;
  fl_mqtt_destroy(ev->mqtt);
  for (size_t i = 0; i < HTTP_EVENTS_RING; i++) free(ev->ring[i]);
  pthread_cond_destroy(&ev->news);
  pthread_mutex_destroy(&ev->mu);
  free(ev);
}

/* ---- streams ------------------------------------------------------------ */

/* Waits (ev->mu held) until there is a line for s, the keep-alive is due or
 * the feed closes, and puts the next piece in s->piece. Returns false at the
 * end of the stream. */
static bool next_piece(events_stream *s) {
  http_events *ev = s->ev;
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += EVENTS_KEEPALIVE_S;
  while (!ev->closing && s->next == ev->head)
    if (pthread_cond_timedwait(&ev->news, &ev->mu, &until) != 0) break;
  if (ev->closing) return false;
  int n;
  if (s->next == ev->head) {
    n = snprintf(s->piece, sizeof s->piece, ": keep-alive\n\n");
  } else if (ev->head - s->next > HTTP_EVENTS_RING) {
    s->next = ev->head; /* fell behind: the console reads everything again */
    n = snprintf(s->piece, sizeof s->piece, "event: lost\ndata: {}\n\n");
  } else {
    n = snprintf(s->piece, sizeof s->piece, "id: %llu\ndata: %s\n\n",
                 (unsigned long long)s->next, ev->ring[s->next % HTTP_EVENTS_RING]);
    s->next++;
  }
  s->len = n > 0 && (size_t)n < sizeof s->piece ? (size_t)n : 0;
  s->off = 0;
  return true;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  events_stream *s = cls;
  if (s->off == s->len) {
    pthread_mutex_lock(&s->ev->mu);
    bool more = next_piece(s);
    pthread_mutex_unlock(&s->ev->mu);
    if (!more) return MHD_CONTENT_READER_END_OF_STREAM;
  }
  size_t n = s->len - s->off < max ? s->len - s->off : max;
  memcpy(buf, s->piece + s->off, n);
  s->off += n;
  return (ssize_t)n;
}

enum MHD_Result http_events_serve(struct MHD_Connection *c, const char *url, http_events *ev) {
  static const char unavailable[] =
      "{\"error\":\"the live feed is not running\",\"code\":\"unavailable\"}";
  struct MHD_Response *resp;
  unsigned status = MHD_HTTP_OK;
  events_stream *s = ev ? calloc(1, sizeof *s) : NULL;
  if (s) {
    s->ev = ev;
    pthread_mutex_lock(&ev->mu);
    s->next = ev->head; /* from now on: the console has just read its lists */
    pthread_mutex_unlock(&ev->mu);
    /* the first piece: how long a browser waits before it reconnects */
    s->len = (size_t)snprintf(s->piece, sizeof s->piece, "retry: 2000\n: hello\n\n");
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, free);
    if (!resp) free(s);
  } else {
    status = MHD_HTTP_SERVICE_UNAVAILABLE;
    resp = MHD_create_response_from_buffer(strlen(unavailable), (void *)unavailable,
                                           MHD_RESPMEM_PERSISTENT);
  }
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                          s ? "text/event-stream" : "application/json");
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  enum MHD_Result ret = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

const http_raw_route http_events_route = {http_events_serve};
