/* fl_mqtt: the adapter between the project and paho's MQTTAsync (MQTT 5).
 *
 * Everything that speaks to paho is here: connect options, the QoS 1 send
 * window, received messages, and the translation of paho's return codes
 * into fl_err (err_from_paho) before any of them reaches a caller or a
 * callback. When to (re)connect is decided by the reconnect scheduler
 * (mqtt_reconnect.c); each client owns its entry in it. */
#include "fleet/mqtt.h"

#include <MQTTAsync.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "mqtt_reconnect.h"

struct fl_mqtt {
  /* paho's handle. Replaced (and the old one abandoned, never freed) when
   * paho has poisoned it: see "paho's poisoned handle". Read with handle();
   * replaced under out_lock. */
  _Atomic(MQTTAsync) client;
  atomic_bool poisoned;       /* the handle holds a QoS 1 copy built on freed memory */
  atomic_uint abandoned;      /* handles given up so far */
  fl_mqtt_callbacks cb;
  char *uri, *client_id, *username, *password, *will_topic;
  char *ca_file, *cert_file, *key_file; /* TLS, see fl_mqtt_opts */
  bool tls;
  uint8_t *will_payload;
  size_t will_len;
  bool will_retained, clean_start;
  uint32_t session_expiry_s;
  int keepalive_s, max_inflight;
  pthread_mutex_t subs_lock; /* subs: renewed on connect, changed by fl_mqtt_subscribe */
  char **subs;
  int n_subs, cap_subs;
  reconnect__entry reconnect; /* when to connect: mqtt_reconnect.h */
  atomic_int failures; /* connect attempts failed in a row (for the log) */
  /* connections lost within QUICK_LOSS_US of being made, in a row: see do_connect */
  _Atomic int64_t connected_us;
  atomic_int quick_losses;
  atomic_bool connected;
  atomic_uint_fast64_t connects;
  /* QoS 1 flow control: the broker's Receive Maximum (MQTT 5 CONNACK) bounds
   * what may be in flight to it; paho 1.3 stalls when asked for more, so the
   * excess waits here and goes out as PUBACKs come back. */
  pthread_mutex_t out_lock;
  int send_quota;
  int out_inflight;
  struct pub_ctx *out_head, *out_tail;
  size_t out_queued;
  struct pub_ctx *fly_head; /* handed to paho, not yet reported (doubly linked) */
  /* One thread at a time hands queued publishes to paho, so that they leave
   * in queue order; another that finds one at it asks it to look again. */
  bool draining, drain_again;
};

/* One QoS 1 publish: waiting in our queue (with a copy of everything), then
 * in flight until its PUBACK. */
struct pub_ctx {
  fl_mqtt *m;
  uint64_t tag;
  struct pub_ctx *next, *prev; /* our queue (next), then the in-flight list */
  bool flying;                 /* on the in-flight list (out_lock) */
  bool sending;                /* out_drain is handing it to paho (out_lock) */
  bool orphan;                 /* its handle was left behind while sending (out_lock) */
  bool finished;               /* paho reported it while sending: done_rc (out_lock) */
  fl_err done_rc;
  MQTTAsync h;                 /* the handle it was handed to */
  char *topic, *response_topic;
  uint8_t *payload, *corr;
  size_t len, corr_len;
  bool retain;
  uint32_t expiry_s; /* MQTT 5 Message Expiry Interval, 0: none */
};

static void out_drain(fl_mqtt *m);

/* The current paho handle of m. */
static MQTTAsync handle(const fl_mqtt *m) { return atomic_load(&((fl_mqtt *)m)->client); }

/* Translates a return code of paho (MQTTASYNC_*) into fl_err. */
static fl_err err_from_paho(int rc) {
  switch (rc) {
  case MQTTASYNC_SUCCESS:
    return FL_OK;
  case MQTTASYNC_DISCONNECTED:
  case MQTTASYNC_OPERATION_INCOMPLETE: /* dropped by a disconnect before it completed */
    return FL_ERR_UNAVAILABLE;
  case MQTTASYNC_MAX_MESSAGES_INFLIGHT:
  case MQTTASYNC_NO_MORE_MSGIDS:
  case MQTTASYNC_MAX_BUFFERED_MESSAGES:
  case MQTTASYNC_MAX_BUFFERED:
    return FL_ERR_FULL;
  case MQTTASYNC_BAD_UTF8_STRING:
  case MQTTASYNC_NULL_PARAMETER:
  case MQTTASYNC_TOPICNAME_TRUNCATED:
  case MQTTASYNC_BAD_STRUCTURE:
  case MQTTASYNC_BAD_QOS:
  case MQTTASYNC_BAD_MQTT_OPTION:
  case MQTTASYNC_WRONG_MQTT_VERSION:
  case MQTTASYNC_0_LEN_WILL_TOPIC:
    return FL_ERR_INVALID;
  case MQTTASYNC_PERSISTENCE_ERROR:
    return FL_ERR_IO;
  case MQTTASYNC_SSL_NOT_SUPPORTED:
  case MQTTASYNC_BAD_PROTOCOL:
    return FL_ERR_CONFIG;
  default:
    return FL_ERR_MQTT;
  }
}

/* The outcome of a failed request as paho reports it: an MQTT 5 reason code
 * of the broker (PUBACK, CONNACK) when it sent one, else paho's own code. */
static fl_err err_from_failure(const MQTTAsync_failureData5 *resp) {
  if (!resp) return FL_ERR_MQTT;
  if (resp->reasonCode >= 0x80)
    return resp->reasonCode == MQTTREASONCODE_QUOTA_EXCEEDED ? FL_ERR_FULL : FL_ERR_MQTT;
  fl_err err = err_from_paho(resp->code);
  return err == FL_OK ? FL_ERR_MQTT : err;
}

static char *dup_or_null(const char *s) { return s && s[0] ? strdup(s) : NULL; }

bool fl_mqtt_uri_tls(const char *uri) {
  return uri && (strncmp(uri, "ssl://", 6) == 0 || strncmp(uri, "mqtts://", 8) == 0 ||
                 strncmp(uri, "wss://", 6) == 0);
}

static void on_connect_ok(void *ctx, MQTTAsync_successData5 *resp) {
  fl_mqtt *m = ctx;
  int failed = atomic_exchange(&m->failures, 0);
  if (failed) fl_info("mqtt %s: connected to %s after %d failed attempts", m->client_id, m->uri, failed);
  int quota = 65535; /* MQTT 5: absent means 65535 */
  if (resp && MQTTProperties_hasProperty(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM))
    quota = MQTTProperties_getNumericValue(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
  if (quota > m->max_inflight) quota = m->max_inflight;
  fl_debug("mqtt %s: connected, send quota %d (receive maximum %s)", m->client_id, quota,
           resp && MQTTProperties_hasProperty(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM)
               ? "from the broker" : "not sent: 65535");
  pthread_mutex_lock(&m->out_lock);
  m->send_quota = quota > 0 ? quota : 1;
  pthread_mutex_unlock(&m->out_lock);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData5 *resp) {
  fl_mqtt *m = ctx;
  const char *why = resp && resp->message ? resp->message : "no answer";
  /* a refusing CONNACK's MQTT 5 reason code: paho 1.3 passes it in code */
  int rc = !resp ? 0 : resp->reasonCode ? (int)resp->reasonCode : resp->code;
  const char *reason = rc >= 0x80 ? MQTTReasonCode_toString((enum MQTTReasonCodes)rc) : NULL;
  /* the first failure of a streak, then every 10th: a wrong address, login
   * or certificate shows in the log without flooding it */
  int n = atomic_fetch_add(&m->failures, 1);
  if (n % 10 == 0)
    fl_warn("mqtt %s: cannot connect to %s (attempt %d): %s%s%s", m->client_id, m->uri, n + 1, why,
            reason ? ", broker says: " : "", reason ? reason : "");
  else
    fl_debug("mqtt %s: connect failed: %s", m->client_id, why);
  reconnect__failed(&m->reconnect);
}

/* OpenSSL's reasons for a failed handshake (paho thread): logged, since
 * paho's own failure message only says that TLS failed. */
static int on_tls_error(const char *str, size_t len, void *ctx) {
  fl_mqtt *m = ctx;
  if (atomic_load(&m->failures) % 10 == 0)
    fl_warn("mqtt %s: TLS: %.*s", m->client_id, (int)len, str);
  return 0;
}

/* A connection that the broker drops this soon after it was made, three
 * times in a row, is taken as a session that cannot be resumed (the broker
 * refuses something the session resends); the next connect starts clean.
 * The one such cause known, paho's poisoned handle, is handled on its own
 * (handle_replace); this stays as the guard for any other. */
#define QUICK_LOSS_US 3000000
#define QUICK_LOSSES_CLEAN 3

/* The Session Expiry Interval a clean_start client sends. Not 0 on purpose:
 * paho empties the session of a client whose expiry is 0 when its
 * connection drops, and emptying a poisoned handle's session would free the
 * poisoned copy's topic and payload a second time. */
#define CLEAN_SESSION_EXPIRY_S 10

/* ---- paho's poisoned handle ------------------------------------------------
 * paho 1.3.12 (MQTTAsync_processCommand, the SOCKET_ERROR branch): when the
 * write of a new QoS 1 PUBLISH fails with a socket error (the connection
 * died under it), paho has already stored the message for resending
 * (MQTTProtocol_startPublish moved the command's topic and payload pointers
 * into outboundMsgs), and then frees the command with its topic and payload
 * without clearing them, as it does everywhere else
 * (MQTTAsync_NULLPublishResponses). The stored copy now points at freed
 * memory: paho resends it after a reconnect that finds the session present
 * (mosquitto: "disconnected due to malformed packet", every reconnect, as
 * the copy is never acknowledged), and frees it again whenever it empties the
 * session (clean start, a session not present, a session expiry of 0,
 * MQTTAsync_destroy). That failure reaches us as on_pub_fail with paho's
 * code -1 and no reason code. From then on the handle is never connected,
 * emptied or destroyed again: the next connect is made on a new handle, and
 * the old one is left as it is (a few hundred bytes, reachable from paho's
 * own list of handles). Its in-flight publishes are reported as
 * FL_ERR_UNAVAILABLE. tests/fault/test_mqtt_resend.py is the reproducer. */

/* A callback for an abandoned handle: paho wants one for arrivals. */
static int on_arrived_abandoned(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg) {
  (void)ctx;
  (void)topic_len;
  MQTTAsync_freeMessage(&msg);
  MQTTAsync_free(topic);
  return 1;
}

static void on_lost(void *ctx, char *cause);
static int on_arrived(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg);
static void on_connected(void *ctx, char *cause);

/* Makes a paho handle for m with its callbacks. Returns FL_OK and *out, or
 * FL_ERR_MQTT. */
static fl_err handle_new(fl_mqtt *m, MQTTAsync *out) {
  MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer5;
  cro.sendWhileDisconnected = 0;
  MQTTAsync h = NULL;
  if (MQTTAsync_createWithOptions(&h, m->uri, m->client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL,
                                  &cro) != MQTTASYNC_SUCCESS)
    return FL_ERR_MQTT;
  MQTTAsync_setCallbacks(h, m, on_lost, on_arrived, NULL);
  MQTTAsync_setConnected(h, m, on_connected);
  *out = h;
  return FL_OK;
}

/* Adds pc to m's in-flight list (out_lock held). */
static void fly_add(fl_mqtt *m, struct pub_ctx *pc) {
  pc->prev = NULL;
  pc->next = m->fly_head;
  if (m->fly_head) m->fly_head->prev = pc;
  m->fly_head = pc;
  pc->flying = true;
  m->out_inflight++;
}

/* Takes pc off m's in-flight list (out_lock held). Returns false when it was
 * not on it (reported already, as its handle was abandoned). */
static bool fly_remove(fl_mqtt *m, struct pub_ctx *pc) {
  if (!pc->flying) return false;
  if (pc->prev)
    pc->prev->next = pc->next;
  else
    m->fly_head = pc->next;
  if (pc->next) pc->next->prev = pc->prev;
  pc->next = pc->prev = NULL;
  pc->flying = false;
  if (m->out_inflight > 0) m->out_inflight--;
  return true;
}

static void pub_free(struct pub_ctx *pc);

/* Leaves m's handle as it is, never to be used again, and reports what was
 * in flight on it. Returns false when no new handle could be made (the old
 * one is kept, unconnected, and the next attempt tries again). */
static bool handle_replace(fl_mqtt *m) {
  MQTTAsync old = handle(m), fresh = NULL;
  if (handle_new(m, &fresh) != FL_OK) return false;
  /* paho calls nothing on a handle that is never connected again; these
   * make sure that nothing it might call reaches m */
  MQTTAsync_setCallbacks(old, NULL, NULL, on_arrived_abandoned, NULL);
  MQTTAsync_setConnected(old, NULL, NULL);
  unsigned n = atomic_fetch_add(&m->abandoned, 1) + 1;
  pthread_mutex_lock(&m->out_lock);
  atomic_store(&m->client, fresh);
  atomic_store(&m->poisoned, false);
  /* what was handed to the old handle is lost; one that out_drain is
   * handing over right now is reported by out_drain when paho returns */
  struct pub_ctx *lost = NULL;
  for (struct pub_ctx *pc = m->fly_head, *next; pc; pc = next) {
    next = pc->next;
    if (pc->h != old) continue;
    if (pc->sending) {
      pc->orphan = true;
      continue;
    }
    fly_remove(m, pc);
    pc->next = lost;
    lost = pc;
  }
  pthread_mutex_unlock(&m->out_lock);
  size_t count = 0;
  for (struct pub_ctx *pc = lost, *next; pc; pc = next, count++) {
    next = pc->next;
    if (pc->tag && m->cb.on_published) m->cb.on_published(m->cb.ctx, pc->tag, FL_ERR_UNAVAILABLE);
    pub_free(pc);
  }
  fl_warn("mqtt %s: paho's handle left behind (%u so far): it kept a QoS 1 message built on freed"
          " memory; %zu publishes in flight reported as lost, connecting on a new handle",
          m->client_id, n, count);
  return true;
}

/* One connect attempt (the reconnect scheduler's thread). Its outcome
 * comes back in on_connected, on_connect_ok or on_connect_fail. */
static void do_connect(void *ctx) {
  fl_mqtt *m = ctx;
  if (atomic_load(&m->poisoned) && !handle_replace(m)) {
    reconnect__failed(&m->reconnect);
    return;
  }
  MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer5;
  MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
  if (m->tls) {
    ssl.trustStore = m->ca_file;
    ssl.keyStore = m->cert_file;
    ssl.privateKey = m->key_file;
    ssl.enableServerCertAuth = 1;
    ssl.verify = 1; /* the certificate must name the host of the URI */
    ssl.ssl_error_cb = on_tls_error;
    ssl.ssl_error_context = m;
    co.ssl = &ssl;
  }
  MQTTProperties props = MQTTProperties_initializer;
  MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
  co.keepAliveInterval = m->keepalive_s;
  co.cleanstart = m->clean_start;
  if (!m->clean_start && atomic_load(&m->quick_losses) >= QUICK_LOSSES_CLEAN) {
    /* Start over with a clean session: paho drops what it kept to resend,
     * the broker what it queued for us. The fleet protocol resends both
     * ways after the next hello (docs/protocol.md section 5). */
    fl_warn("mqtt %s: the broker dropped %d connections in a row right after they were made:"
            " connecting with a clean session", m->client_id, atomic_load(&m->quick_losses));
    co.cleanstart = 1;
    atomic_store(&m->quick_losses, 0);
  }
  co.maxInflight = m->max_inflight;
  co.username = m->username;
  co.password = m->password;
  co.connectTimeout = 10;
  co.automaticReconnect = 0;
  co.onSuccess5 = on_connect_ok;
  co.onFailure5 = on_connect_fail;
  co.context = m;
  {
    MQTTProperty p = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL};
    p.value.integer4 = m->clean_start ? CLEAN_SESSION_EXPIRY_S : m->session_expiry_s;
    MQTTProperties_add(&props, &p);
    co.connectProperties = &props;
  }
  if (m->will_topic) {
    will.topicName = m->will_topic;
    will.payload.data = m->will_payload;
    will.payload.len = (int)m->will_len;
    will.qos = 1;
    will.retained = m->will_retained;
    co.will = &will;
  }
  int rc = MQTTAsync_connect(handle(m), &co);
  MQTTProperties_free(&props);
  if (rc != MQTTASYNC_SUCCESS) {
    fl_debug("mqtt %s: connect refused locally: %s", m->client_id,
             fl_strerror(err_from_paho(rc)));
    reconnect__failed(&m->reconnect);
  }
}

/* Subscribes (QoS 1) to filters[0..n): paho is called without subs_lock. */
static void subscribe_now(fl_mqtt *m, char *const *filters, int n) {
  if (n <= 0) return;
  int *qos = calloc((size_t)n, sizeof *qos);
  if (!qos) return;
  for (int i = 0; i < n; i++) qos[i] = 1;
  MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
  int rc = MQTTAsync_subscribeMany(handle(m), n, filters, qos, &ro);
  if (rc != MQTTASYNC_SUCCESS)
    fl_warn("mqtt %s: subscribe failed: %s", m->client_id, fl_strerror(err_from_paho(rc)));
  free(qos);
}

/* Renews every subscription (after a connect). */
static void subscribe_all(fl_mqtt *m) {
  pthread_mutex_lock(&m->subs_lock);
  int n = m->n_subs;
  char **copy = n ? calloc((size_t)n, sizeof *copy) : NULL;
  for (int i = 0; copy && i < n; i++) copy[i] = strdup(m->subs[i]);
  pthread_mutex_unlock(&m->subs_lock);
  if (!copy) return;
  bool whole = true;
  for (int i = 0; i < n; i++) whole = whole && copy[i];
  if (whole) subscribe_now(m, copy, n);
  for (int i = 0; i < n; i++) free(copy[i]);
  free(copy);
}

static void on_connected(void *ctx, char *cause) {
  fl_mqtt *m = ctx;
  (void)cause;
  if (!reconnect__connected(&m->reconnect)) return; /* stopped meanwhile */
  atomic_store(&m->connected, true);
  atomic_store(&m->connected_us, fl_mono_us());
  atomic_fetch_add(&m->connects, 1);
  subscribe_all(m);
  if (m->cb.on_connected) m->cb.on_connected(m->cb.ctx);
  out_drain(m);
}

static void on_lost(void *ctx, char *cause) {
  fl_mqtt *m = ctx;
  atomic_store(&m->connected, false);
  if (fl_mono_us() - atomic_load(&m->connected_us) < QUICK_LOSS_US)
    atomic_fetch_add(&m->quick_losses, 1);
  else
    atomic_store(&m->quick_losses, 0);
  bool stopped = !reconnect__lost(&m->reconnect);
  if (!stopped && m->cb.on_lost) m->cb.on_lost(m->cb.ctx, cause ? cause : "connection lost");
}

static int on_arrived(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg) {
  fl_mqtt *m = ctx;
  char *t = topic;
  char stack_topic[256];
  if (topic_len > 0) { /* not NUL-terminated when it contains NULs */
    if ((size_t)topic_len < sizeof stack_topic) {
      memcpy(stack_topic, topic, (size_t)topic_len);
      stack_topic[topic_len] = '\0';
      t = stack_topic;
    } else {
      t = NULL;
    }
  }
  if (t && m->cb.on_message) {
    fl_mqtt_msg fm = {.topic = t, .payload = msg->payload, .len = (size_t)msg->payloadlen,
                      .retained = msg->retained != 0};
    char rt[256];
    MQTTProperty *p = MQTTProperties_getProperty(&msg->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC);
    if (p && p->value.data.len > 0 && (size_t)p->value.data.len < sizeof rt) {
      memcpy(rt, p->value.data.data, (size_t)p->value.data.len);
      rt[p->value.data.len] = '\0';
      fm.response_topic = rt;
    }
    p = MQTTProperties_getProperty(&msg->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
    if (p && p->value.data.len > 0) {
      fm.corr = (const uint8_t *)p->value.data.data;
      fm.corr_len = (size_t)p->value.data.len;
    }
    m->cb.on_message(m->cb.ctx, &fm);
  }
  MQTTAsync_freeMessage(&msg);
  MQTTAsync_free(topic);
  return 1;
}

int fl_mqtt_create(const fl_mqtt_opts *o, const fl_mqtt_callbacks *cb, fl_mqtt **out) {
  if (!o || !o->uri || !o->client_id || !out) return FL_ERR_INVALID;
  fl_mqtt *m = calloc(1, sizeof *m);
  if (!m) return FL_ERR_NOMEM;
  pthread_mutex_init(&m->out_lock, NULL);
  pthread_mutex_init(&m->subs_lock, NULL);
  m->send_quota = 20; /* until the CONNACK says more: mosquitto's default */
  if (cb) m->cb = *cb;
  m->uri = strdup(o->uri);
  m->client_id = strdup(o->client_id);
  m->username = dup_or_null(o->username);
  m->password = dup_or_null(o->password);
  m->will_topic = dup_or_null(o->will_topic);
  m->tls = fl_mqtt_uri_tls(o->uri);
  m->ca_file = dup_or_null(o->ca_file);
  m->cert_file = dup_or_null(o->cert_file);
  m->key_file = dup_or_null(o->key_file);
  if (o->will_topic && o->will_len) {
    m->will_payload = malloc(o->will_len);
    if (m->will_payload) memcpy(m->will_payload, o->will_payload, o->will_len);
    m->will_len = o->will_len;
  }
  m->will_retained = o->will_retained;
  m->clean_start = o->clean_start;
  m->session_expiry_s = o->session_expiry_s ? o->session_expiry_s : 7 * 24 * 3600;
  m->keepalive_s = o->keepalive_s ? o->keepalive_s : 30;
  m->max_inflight = o->max_inflight ? o->max_inflight : 256;
  reconnect__init(&m->reconnect, o->reconnect_min_ms > 0 ? o->reconnect_min_ms : 500,
                  o->reconnect_max_ms > 0 ? o->reconnect_max_ms : 30000, do_connect, m);
  if (o->n_subscriptions > 0) {
    m->subs = calloc((size_t)o->n_subscriptions, sizeof *m->subs);
    if (m->subs)
      for (int i = 0; i < o->n_subscriptions; i++) m->subs[i] = strdup(o->subscriptions[i]);
    m->n_subs = m->cap_subs = o->n_subscriptions;
  }
  if (!m->uri || !m->client_id || (o->n_subscriptions > 0 && !m->subs) ||
      (o->will_topic && o->will_len && !m->will_payload)) {
    fl_mqtt_destroy(m);
    return FL_ERR_NOMEM;
  }
  MQTTAsync h = NULL;
  if (handle_new(m, &h) != FL_OK) {
    fl_mqtt_destroy(m);
    return FL_ERR_MQTT;
  }
  atomic_store(&m->client, h);
  *out = m;
  return FL_OK;
}

int fl_mqtt_start(fl_mqtt *m) { return reconnect__start(&m->reconnect); }

bool fl_mqtt_connected(const fl_mqtt *m) { return atomic_load(&m->connected); }

uint64_t fl_mqtt_connects(const fl_mqtt *m) { return atomic_load(&m->connects); }

static void pub_free(struct pub_ctx *pc) {
  if (!pc) return;
  free(pc->topic);
  free(pc->response_topic);
  free(pc->payload);
  free(pc->corr);
  free(pc);
}

static void on_pub_ok(void *ctx, MQTTAsync_successData5 *resp);
static void on_pub_fail(void *ctx, MQTTAsync_failureData5 *resp);

/* Hands one publish to paho. pc (may be NULL for QoS 0) gets the PUBACK. */
static fl_err pub_send(MQTTAsync h, const char *topic, const void *payload, size_t len, int qos,
                    bool retain, const char *response_topic, const void *corr, size_t corr_len,
                    uint32_t expiry_s, struct pub_ctx *pc) {
  MQTTAsync_message msg = MQTTAsync_message_initializer;
  MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
  MQTTProperties props = MQTTProperties_initializer;
  msg.payload = (void *)payload;
  msg.payloadlen = (int)len;
  msg.qos = qos;
  msg.retained = retain;
  if (response_topic) {
    MQTTProperty p = {.identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC};
    p.value.data.data = (char *)response_topic;
    p.value.data.len = (int)strlen(response_topic);
    MQTTProperties_add(&props, &p);
  }
  if (corr && corr_len) {
    MQTTProperty p = {.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA};
    p.value.data.data = (char *)corr;
    p.value.data.len = (int)corr_len;
    MQTTProperties_add(&props, &p);
  }
  if (expiry_s) {
    MQTTProperty p = {.identifier = MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL};
    p.value.integer4 = expiry_s;
    MQTTProperties_add(&props, &p);
  }
  msg.properties = props;
  if (pc) {
    ro.onSuccess5 = on_pub_ok;
    ro.onFailure5 = on_pub_fail;
    ro.context = pc;
  }
  int rc = MQTTAsync_sendMessage(h, topic, &msg, &ro);
  MQTTProperties_free(&props);
  return err_from_paho(rc);
}

/* Sends queued publishes while the quota allows. Never holds out_lock while
 * calling paho (paho's lock comes first in this program). */
/* Hands queued publishes to paho while the window has room. Two threads
 * doing this at once (a publisher, and paho's thread after a PUBACK) could
 * each take one and pass them to paho in the wrong order: a device would see
 * a downlink seq before the one below it and drop the lower one as a
 * duplicate. So one thread drains; another one that comes meanwhile only
 * asks it to look again, and returns at once (it may hold paho's lock, which
 * the draining thread needs to send). */
static void out_drain(fl_mqtt *m) {
  pthread_mutex_lock(&m->out_lock);
  if (m->draining) {
    m->drain_again = true;
    pthread_mutex_unlock(&m->out_lock);
    return;
  }
  m->draining = true;
  for (;;) {
    struct pub_ctx *pc = m->out_head;
    if (!pc || m->out_inflight >= m->send_quota || !atomic_load(&m->connected)) {
      if (m->drain_again) { /* something changed while we sent: look again */
        m->drain_again = false;
        continue;
      }
      m->draining = false;
      pthread_mutex_unlock(&m->out_lock);
      return;
    }
    m->out_head = pc->next;
    if (!m->out_head) m->out_tail = NULL;
    m->out_queued--;
    fly_add(m, pc);
    pc->h = handle(m);
    pc->sending = true;
    pthread_mutex_unlock(&m->out_lock);
    fl_err rc = pub_send(pc->h, pc->topic, pc->payload, pc->len, 1, pc->retain,
                         pc->response_topic, pc->corr, pc->corr_len, pc->expiry_s, pc);
    pthread_mutex_lock(&m->out_lock);
    pc->sending = false;
    /* paho already reported it (its PUBACK can beat our return from paho);
     * or disconnected meanwhile, or handed to a handle left behind since,
     * which will never call back: lost, the caller's protocol resends */
    fl_err report = pc->finished ? pc->done_rc : rc != FL_OK ? rc : FL_ERR_UNAVAILABLE;
    bool done = (pc->finished || rc != FL_OK || pc->orphan) && fly_remove(m, pc);
    pthread_mutex_unlock(&m->out_lock);
    if (done) {
      if (pc->tag && m->cb.on_published) m->cb.on_published(m->cb.ctx, pc->tag, report);
      pub_free(pc);
    }
    pthread_mutex_lock(&m->out_lock);
  }
}

/* A QoS 1 publish finished (FL_OK: PUBACK): frees its slot and sends the next. */
static void pub_done(struct pub_ctx *pc, fl_err rc) {
  fl_mqtt *m = pc->m;
  pthread_mutex_lock(&m->out_lock);
  if (pc->sending) { /* out_drain has not returned from paho yet: it reports */
    pc->finished = true;
    pc->done_rc = rc;
    pthread_mutex_unlock(&m->out_lock);
    return;
  }
  bool mine = fly_remove(m, pc);
  pthread_mutex_unlock(&m->out_lock);
  if (mine) {
    if (pc->tag && m->cb.on_published) m->cb.on_published(m->cb.ctx, pc->tag, rc);
    pub_free(pc);
  }
  out_drain(m);
}

static void on_pub_ok(void *ctx, MQTTAsync_successData5 *resp) {
  (void)resp;
  pub_done(ctx, FL_OK);
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData5 *resp) {
  struct pub_ctx *pc = ctx;
  /* paho's failed write of a new publish (its SOCKET_ERROR branch): see
   * "paho's poisoned handle" above */
  if (resp && resp->reasonCode < 0x80 &&
      (resp->code == MQTTASYNC_FAILURE || resp->code == MQTTASYNC_PERSISTENCE_ERROR) &&
      !atomic_exchange(&pc->m->poisoned, true))
    fl_warn("mqtt %s: a publish failed as the connection dropped; paho keeps a broken copy of it:"
            " the next connect uses a new handle", pc->m->client_id);
  pub_done(pc, err_from_failure(resp));
}

/* Copies a publish into a queue entry. Returns NULL when out of memory. */
static struct pub_ctx *pub_copy(fl_mqtt *m, const char *topic, const void *payload, size_t len,
                                bool retain, const char *response_topic, const void *corr,
                                size_t corr_len, uint64_t tag) {
  struct pub_ctx *pc = calloc(1, sizeof *pc);
  if (!pc) return NULL;
  pc->m = m;
  pc->tag = tag;
  pc->retain = retain;
  pc->topic = strdup(topic);
  pc->payload = malloc(len ? len : 1);
  pc->len = len;
  if (pc->payload && len) memcpy(pc->payload, payload, len);
  if (response_topic) pc->response_topic = strdup(response_topic);
  if (corr && corr_len) {
    pc->corr = malloc(corr_len);
    if (pc->corr) memcpy(pc->corr, corr, corr_len);
    pc->corr_len = corr_len;
  }
  if (!pc->topic || !pc->payload || (response_topic && !pc->response_topic) ||
      (corr && corr_len && !pc->corr)) {
    pub_free(pc);
    return NULL;
  }
  return pc;
}

int fl_mqtt_publish(fl_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                    bool retain, const char *response_topic, const void *corr, size_t corr_len,
                    uint64_t tag) {
  return fl_mqtt_publish_expiring(m, topic, payload, len, qos, retain, response_topic, corr,
                                  corr_len, tag, 0);
}

int fl_mqtt_publish_expiring(fl_mqtt *m, const char *topic, const void *payload, size_t len,
                             int qos, bool retain, const char *response_topic, const void *corr,
                             size_t corr_len, uint64_t tag, uint32_t expiry_s) {
  if (!atomic_load(&m->connected)) return FL_ERR_UNAVAILABLE;
  if (qos == 0)
    return pub_send(handle(m), topic, payload, len, 0, retain, response_topic, corr, corr_len,
                    expiry_s,
                    NULL);
  struct pub_ctx *pc = pub_copy(m, topic, payload, len, retain, response_topic, corr, corr_len, tag);
  if (!pc) return FL_ERR_NOMEM;
  pc->expiry_s = expiry_s;
  pthread_mutex_lock(&m->out_lock);
  if (m->out_tail)
    m->out_tail->next = pc;
  else
    m->out_head = pc;
  m->out_tail = pc;
  m->out_queued++;
  pthread_mutex_unlock(&m->out_lock);
  out_drain(m);
  return FL_OK;
}

int fl_mqtt_subscribe(fl_mqtt *m, const char *filter) {
  if (!m || !filter || !filter[0]) return FL_ERR_INVALID;
  pthread_mutex_lock(&m->subs_lock);
  for (int i = 0; i < m->n_subs; i++)
    if (strcmp(m->subs[i], filter) == 0) {
      pthread_mutex_unlock(&m->subs_lock);
      return FL_OK;
    }
  if (m->n_subs == m->cap_subs) {
    int cap = m->cap_subs ? m->cap_subs * 2 : 8;
    char **grown = realloc(m->subs, (size_t)cap * sizeof *grown);
    if (!grown) {
      pthread_mutex_unlock(&m->subs_lock);
      return FL_ERR_NOMEM;
    }
    m->subs = grown;
    m->cap_subs = cap;
  }
  char *copy = strdup(filter);
  if (!copy) {
    pthread_mutex_unlock(&m->subs_lock);
    return FL_ERR_NOMEM;
  }
  m->subs[m->n_subs++] = copy;
  pthread_mutex_unlock(&m->subs_lock);
  if (atomic_load(&m->connected)) subscribe_now(m, &copy, 1);
  return FL_OK;
}

int fl_mqtt_unsubscribe(fl_mqtt *m, const char *filter) {
  if (!m || !filter) return FL_ERR_INVALID;
  bool found = false;
  pthread_mutex_lock(&m->subs_lock);
  for (int i = 0; i < m->n_subs; i++)
    if (strcmp(m->subs[i], filter) == 0) {
      free(m->subs[i]);
      m->subs[i] = m->subs[--m->n_subs];
      found = true;
      break;
    }
  pthread_mutex_unlock(&m->subs_lock);
  if (!found) return FL_ERR_NOT_FOUND;
  if (!atomic_load(&m->connected)) return FL_OK;
  MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
  int rc = MQTTAsync_unsubscribe(handle(m), filter, &ro);
  return err_from_paho(rc);
}

/* Returns true while paho still has QoS 1 publishes waiting for a PUBACK. */
static bool deliveries_pending(fl_mqtt *m) {
  pthread_mutex_lock(&m->out_lock);
  bool queued = m->out_queued > 0;
  pthread_mutex_unlock(&m->out_lock);
  if (queued) return true;
  MQTTAsync_token *tokens = NULL;
  if (MQTTAsync_getPendingTokens(handle(m), &tokens) != MQTTASYNC_SUCCESS) return false;
  bool pending = tokens && tokens[0] != -1;
  MQTTAsync_free(tokens);
  return pending;
}

void fl_mqtt_stop(fl_mqtt *m, int timeout_ms) {
  if (!m || !handle(m)) return;
  reconnect__stop(&m->reconnect);
  MQTTAsync h = handle(m);
  if (!atomic_load(&m->poisoned) && MQTTAsync_isConnected(h)) {
    /* Wait for in-flight publishes ourselves and then disconnect at once:
     * paho's own disconnect timeout tends to be waited out in full even when
     * nothing is in flight (paho.mqtt.c issue 889). */
    int64_t end = fl_mono_us() + (int64_t)timeout_ms * 1000;
    while (deliveries_pending(m) && fl_mono_us() < end) fl_sleep_ms(2);
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
    d.timeout = 0;
    /* A client that stops is going away: the broker publishes its will
     * (MQTT 5 reason 0x04), so that a clean stop shows as offline just as a
     * lost connection does (a plain DISCONNECT would suppress the will). */
    d.reasonCode = MQTTREASONCODE_DISCONNECT_WITH_WILL_MESSAGE;
    MQTTAsync_disconnect(h, &d);
    end = fl_mono_us() + 500000;
    while (MQTTAsync_isConnected(h) && fl_mono_us() < end) fl_sleep_ms(2);
  }
  atomic_store(&m->connected, false);
}

/* Destroys m's handle (which closes its socket without DISCONNECT), or,
 * when paho has poisoned it, leaves it as it is: destroying it would free
 * the poisoned copy a second time (its connection is gone already). */
static void handle_release(fl_mqtt *m) {
  MQTTAsync h = atomic_exchange(&m->client, NULL);
  if (!h) return;
  if (atomic_load(&m->poisoned)) {
    MQTTAsync_setCallbacks(h, NULL, NULL, on_arrived_abandoned, NULL);
    MQTTAsync_setConnected(h, NULL, NULL);
    atomic_fetch_add(&m->abandoned, 1);
    return;
  }
  MQTTAsync_destroy(&h);
}

void fl_mqtt_kill(fl_mqtt *m) {
  if (!m || !handle(m)) return;
  reconnect__stop(&m->reconnect);
  atomic_store(&m->connected, false);
  handle_release(m);
}

void fl_mqtt_destroy(fl_mqtt *m) {
  if (!m) return;
  if (handle(m)) {
    fl_mqtt_stop(m, 1000);
    handle_release(m);
  }
  /* paho's threads no longer call us for m: leave the scheduler */
  reconnect__release(&m->reconnect);
  for (int i = 0; i < m->n_subs; i++) free(m->subs[i]);
  free(m->subs);
  free(m->uri);
  free(m->client_id);
  free(m->username);
  free(m->password);
  free(m->will_topic);
  free(m->will_payload);
  free(m->ca_file);
  free(m->cert_file);
  free(m->key_file);
  for (struct pub_ctx *pc = m->out_head, *n; pc; pc = n) {
    n = pc->next;
    pub_free(pc);
  }
  /* in flight on a handle left behind: paho will never call back for them */
  for (struct pub_ctx *pc = m->fly_head, *n; pc; pc = n) {
    n = pc->next;
    pub_free(pc);
  }
  pthread_mutex_destroy(&m->out_lock);
  pthread_mutex_destroy(&m->subs_lock);
  free(m);
}
