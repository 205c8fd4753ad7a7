/* The hub's operator HTTP API (libmicrohttpd, JSON with cJSON).
 *
 * Reads never go through the engine: each request reads the store over its
 * own read-only connection: SQLite's <state_dir>/hub.db (WAL, so a reader
 * never blocks the engine's writer) or, with [store] backend = postgresql,
 * a pooled libpq connection to [store] url. Writes are operator commands run
 * by hub_engine_op().
 *
 *   GET  /                              the operator console (hub/console/index.html)
 *   GET  /console/{file}                its CSS and script (http_page.c)
 *   GET  /v1/events                     live feed, text/event-stream (http_events.h)
 *   GET  /v1/health                     200 when ready, else 503
 *   GET  /v1/vehicles[?state=S]         array, by id
 *   GET  /v1/vehicles/{id}
 *   POST /v1/vehicles                   {"id","name","station","rate_cents"} -> 201
 *   POST /v1/vehicles/{id}/retire
 *   GET  /v1/vehicles/{id}/history[?limit=]  its change log entries, newest first
 *   GET  /v1/rentals[?state=&customer=&vehicle=&limit=]   newest first, limit 100
 *   GET  /v1/rentals/{id}               with "saga_steps"
 *   POST /v1/rentals/{id}/retry | /compensate
 *   GET  /v1/customers/{id}             open rentals, held bookings, fees owed
 *   GET  /v1/bookings[?state=&customer=&vehicle=&limit=]  latest start first, limit 100
 *   GET  /v1/bookings/{id}              with "saga_steps" (deposit, refund)
 *   GET  /v1/repairs[?state=S]          newest first
 *   POST /v1/repairs/{id}/start | /complete
 *   GET  /v1/dead-letters[?limit=]      newest first, payload in hex
 *   GET  /v1/devices
 *   GET  /v1/counters                   {"name": value, ...}
 *
 * Lists are JSON arrays of objects whose keys are the column names of
 * hub/schema.sql. A successful POST answers with the entity it changed, in the
 * shape its GET has. Errors are {"error": sentence, "code": fl_errname token}
 * with 400 (bad input), 404, 405, 409 (conflict or state), 413 (body over
 * 16 KB), 415 (POST without Content-Type: application/json), 503 (store not
 * readable yet, engine shutting down), 504 (engine did not answer in time).
 * There is no authentication: bind the API to loopback (the default) or put
 * it behind a proxy that authenticates. */
#ifndef HUB_HTTP_H
#define HUB_HTTP_H

#include "engine.h"
#include "hub_config.h"

typedef struct hub_http hub_http;

/* Starts serving on cfg->http_bind:cfg->http_port (a numeric IPv4 or IPv6
 * address) with its own threads. engine must outlive the server. With
 * http_port 0 the API is disabled: returns FL_OK and sets *out to NULL.
 * Returns FL_OK and *out (stop with hub_http_stop), FL_ERR_CONFIG for a bad
 * bind address, or FL_ERR_IO when the socket cannot be bound (logged). */
int hub_http_start(const hub_config *cfg, hub_engine *engine, hub_http **out);

/* Returns the port being served, or 0 for NULL (API disabled). */
int hub_http_port(const hub_http *h);

/* Stops serving (waits for requests in progress) and frees h. NULL is accepted. */
void hub_http_stop(hub_http *h);

#endif
