/* The hub's publishing connections ([mqtt] publish_connections).
 *
 * Every QoS 1 publish waits for one of the broker's in-flight slots (its
 * Receive Maximum, 20 by default) on the connection that carries it; one
 * connection is one window. The outlets are N publish-only fl_mqtt clients
 * (client ids "<hub client id>-out<k>", k = 0..N-1; no subscriptions, no will,
 * clean sessions: the engine republishes what they owed after each connect),
 * so the hub has N windows for the devices' topics. The hub's main
 * connection keeps the subscriptions, the will and hub/status, and carries
 * every topic that is not a device's.
 *
 * A topic always goes out on the same connection, so that MQTT's per-topic
 * order holds: a device's topics (fleet/v1/dev/{dev}/... and
 * fleet/v1/p/{p}/dev/{dev}/...) on the outlet of the FNV-1a hash of the
 * device id, so a device's acks, syncs, decisions and commands keep their
 * order; state, notification and mirror topics on the main connection.
 * Why not those by the hash of the topic too: the few notification topics
 * (one per kind) carry a third of the hub's publishes, and the devices that
 * shared an outlet with one waited behind its queue (bench/README.md,
 * "Several publishing connections": decision p99 2.2 s against 0.75 s). */
#ifndef HUB_OUTLETS_H
#define HUB_OUTLETS_H

#include <stdbool.h>
#include <stdint.h>

#include "fleet/mqtt.h"

#define HUB_OUTLETS_MAX 16

typedef struct hub_outlets hub_outlets;

typedef struct hub_outlets_callbacks {
  void *ctx;
  /* Outlet k connected (first time or again): what it owed is to be
   * published again. paho's thread, paho's lock held (fleet/mqtt.h). */
  void (*on_connected)(void *ctx, int k);
  /* Outlet k lost its connection; it reconnects by itself. */
  void (*on_lost)(void *ctx, int k, const char *cause);
  /* A tagged QoS 1 publish completed, as fl_mqtt_callbacks.on_published. */
  void (*on_published)(void *ctx, uint64_t tag, fl_err rc);
} hub_outlets_callbacks;

/* Returns the outlet (0..n-1) of a device topic among n (n >= 1), by the
 * device id; -1 for any other topic (the main connection's). */
int hub_outlets_pick(const char *topic, int n);

/* Creates n (1..HUB_OUTLETS_MAX) outlets from base: its uri, login, TLS
 * files, max_inflight and reconnect bounds are used; client_id is the
 * prefix of theirs; its subscriptions, will and session settings are not.
 * Strings are copied. Returns FL_OK and *out (free with
 * hub_outlets_destroy), FL_ERR_INVALID, FL_ERR_NOMEM or FL_ERR_MQTT. */
int hub_outlets_create(const fl_mqtt_opts *base, int n, const hub_outlets_callbacks *cb,
                       hub_outlets **out);

/* Starts connecting every outlet. Returns FL_OK or FL_ERR_NOMEM. */
int hub_outlets_start(hub_outlets *o);

/* The number of outlets. */
int hub_outlets_count(const hub_outlets *o);

/* Returns the outlet that carries a device topic (owned by o: valid until
 * hub_outlets_destroy; publish on it with fl_mqtt_publish*), or NULL for
 * any other topic: the main connection carries those. */
fl_mqtt *hub_outlets_for(hub_outlets *o, const char *topic);

/* Returns true when every outlet is connected. */
bool hub_outlets_connected(const hub_outlets *o);

/* Stops every outlet, waiting at most timeout_ms for each one's in-flight
 * publishes. NULL is accepted. */
void hub_outlets_stop(hub_outlets *o, int timeout_ms);

/* Stops (if needed) and frees the outlets. NULL is accepted. */
void hub_outlets_destroy(hub_outlets *o);

#endif
