/* A small MQTT 5 client over paho's MQTTAsync: persistent sessions, a last
 * will, subscriptions renewed on every connect, reconnect with exponential
 * back-off and jitter (each client keeps its own back-off; one scheduler
 * thread serves every started client of the process, so a simulator can run
 * thousands: common/src/mqtt_reconnect.h), and QoS 1 publishes whose
 * completion is reported with a caller tag. Every rc this API returns or
 * passes to a callback is an fl_err (fleet/error.h), never a paho code.
 *
 * TCP_NODELAY: paho never sets it; a program that wants it links the CMake
 * target fleet_tcp_nodelay (common/src/tcp_nodelay.c).
 *
 * Callbacks run on paho's threads WITH PAHO'S INTERNAL LOCK HELD: copy what you
 * keep and return. Never block in a callback, and never wait there for a lock
 * that another thread may hold while it calls fl_mqtt_publish(): that thread
 * needs paho's lock to publish, and the two would wait for each other. */
#ifndef FLEET_MQTT_H
#define FLEET_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet/error.h"

typedef struct fl_mqtt fl_mqtt;

/* A received message; every pointer is valid only during the callback. */
typedef struct fl_mqtt_msg {
  const char *topic;
  const uint8_t *payload;
  size_t len;
  const char *response_topic; /* MQTT 5 Response Topic, NULL if absent */
  const uint8_t *corr;        /* MQTT 5 Correlation Data, NULL if absent */
  size_t corr_len;
  bool retained;
} fl_mqtt_msg;

typedef struct fl_mqtt_callbacks {
  void *ctx;
  void (*on_message)(void *ctx, const fl_mqtt_msg *msg);
  /* Connected (first time or again); subscriptions are already requested. */
  void (*on_connected)(void *ctx);
  /* The connection is gone; a reconnect is scheduled. */
  void (*on_lost)(void *ctx, const char *cause);
  /* A QoS 1 publish made with a non-zero tag completed. rc: FL_OK (PUBACK
   * received), FL_ERR_UNAVAILABLE (the connection went before it completed,
   * or it was in flight on a paho handle given up after paho corrupted its
   * copy: docs/architecture.md; not resent), FL_ERR_FULL (the broker's
   * quota), FL_ERR_INVALID (refused as malformed), or FL_ERR_MQTT (the
   * broker refused it, or paho failed otherwise). */
  void (*on_published)(void *ctx, uint64_t tag, fl_err rc);
} fl_mqtt_callbacks;

typedef struct fl_mqtt_opts {
  const char *uri;       /* "tcp://127.0.0.1:1883" */
  const char *client_id; /* stable per device: the session is keyed on it */
  const char *username;  /* optional */
  const char *password;  /* optional */
  int keepalive_s;       /* 0: 30 */
  bool clean_start;      /* false keeps the session across disconnects */
  uint32_t session_expiry_s; /* 0: one week (with clean_start: 10 s, see mqtt.c) */
  int max_inflight;      /* 0: 256 */
  int reconnect_min_ms;  /* 0: 500 */
  int reconnect_max_ms;  /* 0: 30000 */
  const char *will_topic;      /* optional last will, QoS 1 */
  const uint8_t *will_payload;
  size_t will_len;
  bool will_retained;
  const char *const *subscriptions; /* QoS 1 filters, renewed on every connect */
  int n_subscriptions;
  /* TLS, used when uri is ssl://, mqtts:// or wss:// (the program must link
   * paho's TLS build). The broker's certificate is always checked, host name
   * included. */
  const char *ca_file;   /* PEM CAs to trust; NULL: the system's trust store */
  const char *cert_file; /* optional client certificate (PEM) for mutual TLS */
  const char *key_file;  /* its private key, if not in cert_file */
} fl_mqtt_opts;

/* True when uri asks for TLS (ssl://, mqtts://, wss://). */
bool fl_mqtt_uri_tls(const char *uri);

/* Creates a client (not yet connecting). Strings in o are copied. Returns
 * FL_OK and *out, or FL_ERR_INVALID / FL_ERR_MQTT / FL_ERR_NOMEM. Free with
 * fl_mqtt_destroy(). */
int fl_mqtt_create(const fl_mqtt_opts *o, const fl_mqtt_callbacks *cb, fl_mqtt **out);

/* As fl_mqtt_publish, with an MQTT 5 Message Expiry Interval of expiry_s
 * seconds (0: none): the broker drops the message (a retained one too) once
 * it is that old. */
int fl_mqtt_publish_expiring(fl_mqtt *m, const char *topic, const void *payload, size_t len,
                             int qos, bool retain, const char *response_topic, const void *corr,
                             size_t corr_len, uint64_t tag, uint32_t expiry_s);

/* Starts connecting in the background; reconnects until fl_mqtt_stop().
 * The first call of a process starts the reconnect scheduler's thread; the
 * fl_mqtt_destroy() of the last started client ends it. Returns FL_OK, or
 * FL_ERR_NOMEM when that thread cannot be made. */
int fl_mqtt_start(fl_mqtt *m);

/* Returns true while connected. */
bool fl_mqtt_connected(const fl_mqtt *m);

/* Publishes payload on topic. response_topic and corr may be NULL. QoS 1
 * publishes are copied and handed to paho in the order of the calls. A
 * non-zero tag asks for on_published(tag, rc) when a QoS 1 publish
 * completes; it is not called if this function fails. Returns FL_OK,
 * FL_ERR_UNAVAILABLE when not connected, FL_ERR_NOMEM, or (QoS 0) another
 * fl_err translated from paho: FL_ERR_INVALID, FL_ERR_FULL, FL_ERR_MQTT. */
int fl_mqtt_publish(fl_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                    bool retain, const char *response_topic, const void *corr, size_t corr_len,
                    uint64_t tag);

/* Adds filter (QoS 1) to the subscriptions renewed on every connect, and
 * subscribes at once when connected. Returns FL_OK (also when already
 * subscribed), FL_ERR_INVALID or FL_ERR_NOMEM. Not from a callback. */
int fl_mqtt_subscribe(fl_mqtt *m, const char *filter);

/* Removes filter from the subscriptions and unsubscribes when connected.
 * Returns FL_OK, FL_ERR_NOT_FOUND (not subscribed), or an fl_err of paho. */
int fl_mqtt_unsubscribe(fl_mqtt *m, const char *filter);

/* Disconnects cleanly, waiting at most timeout_ms for in-flight publishes,
 * with MQTT 5 reason "disconnect with will message": the broker publishes
 * the client's will, so that a client that stops shows as gone. No
 * reconnect after this. */
void fl_mqtt_stop(fl_mqtt *m, int timeout_ms);

/* Drops the connection as a power cut would: no DISCONNECT, so the broker
 * publishes the will. No reconnect after this. */
void fl_mqtt_kill(fl_mqtt *m);

/* Stops (if needed) and frees the client. NULL is accepted. */
void fl_mqtt_destroy(fl_mqtt *m);

/* Count of completed (re)connects since create. */
uint64_t fl_mqtt_connects(const fl_mqtt *m);

#endif
