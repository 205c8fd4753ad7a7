/* A dashboard subscriber inside the simulator: one extra MQTT client that
 * follows the hub's notifications (fleet/v1/notify/#, and rev 1.2's batched
 * fleet/v1/notices/#) and retained state (fleet/v1/state/#), so that scripts
 * can expect what a dashboard would see. A rental's state is also taken from
 * its notices: a hub of 1.2 publishes no retained rental state by default.
 * Thread-safe: messages arrive on paho's threads, queries come from the
 * script executor; both take only the watcher's own lock. */
#ifndef SIM_WATCH_H
#define SIM_WATCH_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sim_watch sim_watch;

/* Connects a subscriber to broker_uri and waits up to timeout_ms for the
 * connection. Returns FL_OK and *out (free with sim_watch_close),
 * FL_ERR_TIMEOUT, or an fl_mqtt error. */
int sim_watch_open(const char *broker_uri, int timeout_ms, sim_watch **out);

/* Returns true if a notification of kind about id with "to" == state has
 * arrived since the watcher connected. */
bool sim_watch_notified(sim_watch *w, const char *kind, const char *id, const char *state);

/* Copies the last retained state of {kind}/{id} into out (cap bytes; "" when
 * none arrived). */
void sim_watch_state(sim_watch *w, const char *kind, const char *id, char *out, size_t cap);

/* Returns the number of notifications received so far. */
unsigned sim_watch_count(sim_watch *w);

/* Disconnects and frees w. NULL is accepted. */
void sim_watch_close(sim_watch *w);

#endif
