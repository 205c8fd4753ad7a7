/* Agent life cycle, configuration, status and the outbox entry point. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "agent_internal.h"
#include "decisions.h"
#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/partition.h"

int64_t agent__mono_ms(void) { return fl_mono_us() / 1000; }

int64_t agent__hub_now_ms(const fl_agent *a) {
  return a->hub_clock_known ? a->hub_clock_base_ms + agent__mono_ms() : agent_now_ms(a);
}

int64_t agent_now_ms(const fl_agent *a) { return fl_now_ms() + atomic_load(&a->clock_skew_ms); }

void agent_set_clock_skew(fl_agent *a, int64_t skew_ms) { atomic_store(&a->clock_skew_ms, skew_ms); }

void agent__envelope_unsequenced(fl_agent *a, fl_msg *m) {
  m->env.v = FL_PROTO_VERSION;
  m->env.seq = 0;
  m->env.boot = outbox__boot(a->ob);
  m->env.time_ms = agent_now_ms(a);
  snprintf(m->env.dev, sizeof m->env.dev, "%s", a->id);
  if (snprintf(m->env.mid, sizeof m->env.mid, "%s:b%" PRIu64 ".%" PRIu64, a->id,
               outbox__boot(a->ob), ++a->unseq_count) >= (int)sizeof m->env.mid)
    m->env.mid[0] = '\0'; /* cannot happen with ids <= AGENT_ID_MAX; fails encoding */
}

/* paho's callbacks below run on its threads with its mutex held. They may
 * take a->lock (whose holders never wait for paho, see agent_internal.h) but
 * must not block otherwise. */
static void on_connected(void *ctx) {
  fl_agent *a = ctx;
  pthread_mutex_lock(&a->lock);
  a->connected = true;
  a->synced = false;
  a->gen++;
  a->inflight = 0;
  fl_info("%s connected", a->id);
  a->hello_wait_ms = a->hello_base_ms = a->hello_retry_ms; /* a new link: no back-off yet */
  uplink__hello(a, agent__mono_ms(), "connect");
  agent_callbacks cb = a->cb;
  uplink__unlock_publish(a);
  if (cb.on_connection) cb.on_connection(cb.ctx, true);
}

/* synced is reset again by the next on_connected. */
static void on_lost(void *ctx, const char *cause) {
  fl_agent *a = ctx;
  pthread_mutex_lock(&a->lock);
  a->connected = false;
  a->synced = false;
  fl_info("%s disconnected: %s", a->id, cause);
  agent_callbacks cb = a->cb;
  pthread_mutex_unlock(&a->lock);
  if (cb.on_connection) cb.on_connection(cb.ctx, false);
}

/* Lock-free: it only counts the window down (atomics), on every PUBACK. */
static void on_published(void *ctx, uint64_t tag, fl_err rc) { uplink__published(ctx, tag, rc); }

/* Builds topics and the MQTT client of a. */
static int agent_mqtt_create(fl_agent *a, const agent_config *cfg) {
  char sub_down[FL_TOPIC_MAX], will_topic[FL_TOPIC_MAX];
  int p = a->partition; /* -1: the legacy family */
  int n = p < 0 ? snprintf(sub_down, sizeof sub_down, FL_TOPIC_ROOT "/dev/%s/down/#", a->id)
                : snprintf(sub_down, sizeof sub_down, FL_TOPIC_ROOT "/p/%d/dev/%s/down/#", p, a->id);
  if (n < 0 || (size_t)n >= sizeof sub_down) return FL_ERR_INVALID;
  if (fl_topic_device_p(a->topic_evt, FL_TOPIC_MAX, a->id, FL_CH_UP_EVT, p) < 0 ||
      fl_topic_device_p(a->topic_hello, FL_TOPIC_MAX, a->id, FL_CH_UP_HELLO, p) < 0 ||
      fl_topic_device_p(a->topic_up_ack, FL_TOPIC_MAX, a->id, FL_CH_UP_ACK, p) < 0 ||
      fl_topic_device_p(a->topic_reply, FL_TOPIC_MAX, a->id, FL_CH_DOWN_REPLY, p) < 0 ||
      fl_topic_device_p(will_topic, sizeof will_topic, a->id, FL_CH_UP_WILL, p) < 0 ||
      (p >= 0 && fl_topic_partition_status(a->topic_part_status, FL_TOPIC_MAX, (unsigned)p) < 0))
    return FL_ERR_INVALID;
  fl_msg will;
  fl_msg_init(&will, FL_MSG_OFFLINE);
  agent__envelope_unsequenced(a, &will);
  if (snprintf(will.env.mid, sizeof will.env.mid, "%s:will.%" PRIu64, a->id,
               outbox__boot(a->ob)) >= (int)sizeof will.env.mid)
    return FL_ERR_INVALID;
  uint8_t will_buf[256];
  size_t will_len = 0;
  int err = fl_msg_encode(&will, will_buf, sizeof will_buf, &will_len);
  if (err != FL_OK) return err;
  /* rev 1.2: also the own partition's status (P-PART-6) */
  const char *subs[] = {sub_down, FL_TOPIC_HUB_STATUS, a->topic_part_status};
  fl_mqtt_opts o = {
      .uri = a->mqtt_uri,
      .client_id = a->id,
      .username = a->username ? a->username : a->id,
      .password = a->password,
      .keepalive_s = cfg->keepalive_s,
      .clean_start = false,
      .max_inflight = a->window + 32,
      .reconnect_min_ms = cfg->reconnect_min_ms,
      .reconnect_max_ms = cfg->reconnect_max_ms,
      .will_topic = will_topic,
      .will_payload = will_buf,
      .will_len = will_len,
      .subscriptions = subs,
      .n_subscriptions = p < 0 ? 2 : 3,
      .ca_file = a->ca_file,
      .cert_file = a->cert_file,
      .key_file = a->key_file,
  };
  fl_mqtt_callbacks cb = {.ctx = a,
                          .on_message = downlink__on_message,
                          .on_connected = on_connected,
                          .on_lost = on_lost,
                          .on_published = on_published};
  return fl_mqtt_create(&o, &cb, &a->mqtt);
}

/* Opens the store and its tables. */
static int agent_store_open(fl_agent *a, const agent_config *cfg) {
  outbox_opts oo = {.path = cfg->db_path,
                    .dev = a->id,
                    .durability = cfg->durability,
                    .max_events = cfg->max_events,
                    .telemetry_max = cfg->telemetry_max};
  int err = outbox__open(&oo, &a->ob);
  if (err == FL_OK) err = decisions__init(outbox__db(a->ob));
  if (err == FL_OK) err = access__init(outbox__db(a->ob));
  return err;
}

static char *dup_or_null(const char *s) { return s && s[0] ? strdup(s) : NULL; }

int agent_create(const agent_config *cfg, fl_agent **out) {
  if (!cfg || !out || !cfg->id || !fl_id_valid(cfg->id) || strlen(cfg->id) > AGENT_ID_MAX ||
      !cfg->db_path || !cfg->mqtt_uri ||
      (cfg->role != FL_ROLE_VEHICLE && cfg->role != FL_ROLE_KIOSK) ||
      cfg->durability < FL_DB_SYNC_OFF || cfg->durability > FL_DB_SYNC_FULL ||
      (cfg->topic_family != AGENT_TOPICS_PARTITIONED && cfg->topic_family != AGENT_TOPICS_LEGACY) ||
      cfg->partitions < 0 || cfg->partitions > (int)FL_PARTITIONS_MAX)
    return FL_ERR_INVALID;
  fl_agent *a = calloc(1, sizeof *a);
  if (!a) return FL_ERR_NOMEM;
  pthread_mutex_init(&a->lock, NULL);
  snprintf(a->id, sizeof a->id, "%s", cfg->id);
  a->role = cfg->role;
  a->cb = cfg->cb;
  a->window = cfg->window > 0 ? cfg->window : 128;
  a->hello_retry_ms = cfg->hello_retry_ms > 0 ? cfg->hello_retry_ms : 3000;
  a->ack_stall_ms = cfg->ack_stall_ms > 0 ? cfg->ack_stall_ms : 10000;
  a->hello_retry_max_ms = cfg->hello_retry_max_ms > 0 ? cfg->hello_retry_max_ms : 60000;
  a->ack_stall_max_ms = cfg->ack_stall_max_ms > 0 ? cfg->ack_stall_max_ms : 120000;
  if (a->hello_retry_max_ms < a->hello_retry_ms) a->hello_retry_max_ms = a->hello_retry_ms;
  if (a->ack_stall_max_ms < a->ack_stall_ms) a->ack_stall_max_ms = a->ack_stall_ms;
  a->hello_wait_ms = a->hello_base_ms = a->hello_retry_ms;
  a->stall_wait_ms = a->stall_base_ms = a->ack_stall_ms;
  /* jitter seed: differs per device and per start, so a fleet that lost the
   * hub together does not retry together */
  a->jitter_state = (uint64_t)fl_mono_us() ^ ((uint64_t)fl_now_ms() << 20);
  for (const char *p = cfg->id; *p; p++) a->jitter_state = a->jitter_state * 131 + (uint8_t)*p;
  a->locked = true;
  a->partition = cfg->topic_family == AGENT_TOPICS_LEGACY
                     ? -1
                     : (int)fl_partition_of(cfg->id, cfg->partitions > 0 ? (uint32_t)cfg->partitions
                                                                         : FL_PARTITIONS_DEFAULT);
  a->clock_skew_ms = cfg->clock_skew_ms;
  a->telemetry_period_ms = cfg->role == FL_ROLE_VEHICLE && cfg->telemetry_period_ms > 0
                               ? cfg->telemetry_period_ms
                               : 0;
  a->mqtt_uri = strdup(cfg->mqtt_uri);
  a->username = dup_or_null(cfg->username);
  a->password = dup_or_null(cfg->password);
  a->ca_file = dup_or_null(cfg->ca_file);
  a->cert_file = dup_or_null(cfg->cert_file);
  a->key_file = dup_or_null(cfg->key_file);
  int err = a->mqtt_uri ? FL_OK : FL_ERR_NOMEM;
  if (err == FL_OK) err = agent_store_open(a, cfg);
  if (err == FL_OK) err = agent_mqtt_create(a, cfg);
  if (err != FL_OK) {
    agent_destroy(a);
    return err;
  }
  if (a->partition >= 0)
    fl_info("agent %s: partition %d of %d (topics %s)", a->id, a->partition,
            cfg->partitions > 0 ? cfg->partitions : (int)FL_PARTITIONS_DEFAULT, a->topic_evt);
  else
    fl_info("agent %s: legacy topic family (topics %s)", a->id, a->topic_evt);
  fl_info("agent %s (%s) boot=%" PRIu64 " next_seq=%" PRIu64 " last_ack=%" PRIu64
          " applied=%" PRIu64 " backlog=%" PRIu64,
          a->id, fl_role_name(a->role), outbox__boot(a->ob), outbox__next_seq(a->ob),
          outbox__last_ack(a->ob), outbox__applied(a->ob), outbox__backlog(a->ob));
  *out = a;
  return FL_OK;
}

int agent_start(fl_agent *a) { return fl_mqtt_start(a->mqtt); }

void agent_stop(fl_agent *a, int timeout_ms) {
  if (!a || !a->mqtt) return;
  fl_mqtt_stop(a->mqtt, timeout_ms); /* without a->lock: callbacks may be waiting for it */
  pthread_mutex_lock(&a->lock);
  a->connected = a->synced = false;
  pthread_mutex_unlock(&a->lock);
}

void agent_kill(fl_agent *a) {
  if (!a || !a->mqtt) return;
  fl_mqtt_kill(a->mqtt);
  pthread_mutex_lock(&a->lock);
  a->connected = a->synced = false;
  pthread_mutex_unlock(&a->lock);
}

void agent_destroy(fl_agent *a) {
  if (!a) return;
  fl_mqtt_destroy(a->mqtt);
  outbox__close(a->ob);
  free(a->mqtt_uri);
  free(a->username);
  free(a->password);
  free(a->ca_file);
  free(a->cert_file);
  free(a->key_file);
  query__free(a);
  pthread_mutex_destroy(&a->lock);
  free(a);
}

void agent_tick(fl_agent *a, int64_t now_ms) {
  pthread_mutex_lock(&a->lock);
  uplink__timers(a, now_ms);
  vehicle__telemetry_timer(a, now_ms);
  uplink__unlock_publish(a);
}

const char *agent_id(const fl_agent *a) { return a->id; }

void agent_get_status(fl_agent *a, agent_status *st) {
  pthread_mutex_lock(&a->lock);
  *st = (agent_status){
      .connected = a->connected,
      .synced = a->connected && a->synced,
      .boot = outbox__boot(a->ob),
      .next_seq = outbox__next_seq(a->ob),
      .last_ack = outbox__last_ack(a->ob),
      .applied = outbox__applied(a->ob),
      .backlog = outbox__backlog(a->ob),
      .telemetry_queued = outbox__telemetry_queued(a->ob),
      .telemetry_dropped = outbox__telemetry_dropped(a->ob),
      .inflight = (uint64_t)a->inflight,
      .locked = a->locked,
      .partition = a->partition,
  };
  pthread_mutex_unlock(&a->lock);
}

/* The subject of a kiosk request type, FL_SUBJ_NONE for other events. */
static fl_subject request_subject(fl_msg_type t) {
  switch (t) {
  case FL_MSG_RENTAL_REQUEST:
  case FL_MSG_RENTAL_CANCEL:
  case FL_MSG_RENTAL_RETURN:
    return FL_SUBJ_RENTAL;
  case FL_MSG_BOOKING_REQUEST:
  case FL_MSG_BOOKING_CANCEL:
    return FL_SUBJ_BOOKING;
  default:
    return FL_SUBJ_NONE;
  }
}

int agent__submit(fl_agent *a, fl_msg *m, uint64_t *seq) {
  if (m->env.type < FL_MSG_RENTAL_REQUEST || m->env.type > FL_MSG_COMMAND_RESULT)
    return FL_ERR_INVALID;
  m->env.time_ms = agent_now_ms(a);
  if (seq) *seq = 0;
  if (m->env.type == FL_MSG_TELEMETRY) return outbox__telemetry_add(a->ob, m);
  fl_subject subject = request_subject(m->env.type);
  if (subject != FL_SUBJ_NONE && !fl_id_valid(m->env.corr)) return FL_ERR_INVALID;
  int err = outbox__begin(a->ob);
  if (err != FL_OK) return err;
  uint64_t s = 0;
  err = outbox__append(a->ob, m, &s);
  if (err == FL_OK && subject != FL_SUBJ_NONE)
    err = decisions__queue(outbox__db(a->ob), m->env.corr, subject);
  if (err == FL_OK) err = outbox__commit(a->ob);
  else outbox__rollback(a->ob);
  if (err != FL_OK) return err;
  fl_info("%s event seq=%" PRIu64 " %s%s%s queued", a->id, s, fl_msg_type_name(m->env.type),
          m->env.corr[0] ? " corr=" : "", m->env.corr);
  if (seq) *seq = s;
  return FL_OK;
}

int agent_submit(fl_agent *a, fl_msg *m, uint64_t *seq) {
  if (!a || !m) return FL_ERR_INVALID;
  pthread_mutex_lock(&a->lock);
  int err = agent__submit(a, m, seq);
  if (err == FL_OK) uplink__unlock_publish(a);
  else pthread_mutex_unlock(&a->lock);
  return err;
}

int agent_new_request_id(fl_agent *a, char *buf, size_t cap) {
  pthread_mutex_lock(&a->lock);
  int n = snprintf(buf, cap, "%s-%" PRIu64 "-%" PRIu64, a->id, outbox__boot(a->ob),
                   ++a->request_count);
  pthread_mutex_unlock(&a->lock);
  if (n < 0 || (size_t)n >= cap || !fl_id_valid(buf)) return FL_ERR_BUFFER;
  return FL_OK;
}

int agent_decision_get(fl_agent *a, const char *corr, agent_decision *out) {
  if (!corr || !fl_id_valid(corr)) return FL_ERR_INVALID;
  pthread_mutex_lock(&a->lock);
  int err = decisions__get(outbox__db(a->ob), corr, out);
  pthread_mutex_unlock(&a->lock);
  return err;
}

int agent_bookings(fl_agent *a, fl_booking *out, size_t cap) {
  pthread_mutex_lock(&a->lock);
  int n = access__bookings(outbox__db(a->ob), out, cap);
  pthread_mutex_unlock(&a->lock);
  return n;
}
