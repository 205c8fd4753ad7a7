/* The hub's operator HTTP API (libmicrohttpd, JSON with cJSON). Its contract,
 * every route with parameters, bodies and errors, is docs/openapi.yaml
 * (served at GET /v1/openapi.yaml; tests/integration/test_api_contract.py
 * checks the hub against it).
 *
 * Reads never go through the engine: each request reads the store over its
 * own read-only connection: SQLite's <state_dir>/hub.db (WAL, so a reader
 * never blocks the engine's writer) or, with [store] backend = postgresql,
 * a pooled libpq connection to [store] url. Writes are operator commands run
 * by hub_engine_op().                                     role (with tokens)
 *
 *   GET  /                              the operator console (hub/console/index.html)   open
 *   GET  /console/{file}                its CSS and script (http_page.c)   open
 *   GET  /v1/events                     live feed, text/event-stream (http_events.h)   viewer
 *   GET  /v1/health                     200 when ready, else 503   open
 *   GET  /v1/openapi.yaml               the contract               open
 *   GET  /metrics                       Prometheus text format     open, or viewer
 *   GET  /v1/vehicles[?state=S]         by id                      viewer
 *   GET  /v1/vehicles/{id}                                         viewer
 *   POST /v1/vehicles                   {"id","name","station","rate_cents"} -> 201   operator
 *   PATCH /v1/vehicles/{id}             {"name"?, "station"?, "rate_cents"?}          operator
 *   POST /v1/vehicles/{id}/retire                                  operator
 *   POST /v1/vehicles/{id}/repairs      {"text"} -> 201 the repair mechanic
 *   GET  /v1/vehicles/{id}/history      its change log entries, newest first   viewer
 *   GET  /v1/stations                   vehicles per station by state, booked   viewer
 *   GET  /v1/rentals[?state=&customer=&vehicle=]   newest first    viewer
 *   GET  /v1/rentals/{id}               with "saga_steps"          viewer
 *   POST /v1/rentals/{id}/retry | /compensate                      operator
 *   GET  /v1/customers/{id}             open rentals (running late fees), held
 *                                       bookings, fees owed and paid   viewer
 *   GET  /v1/bookings[?state=&customer=&vehicle=]  latest start first   viewer
 *   GET  /v1/bookings/{id}              with "saga_steps" (deposit, refund)   viewer
 *   POST /v1/bookings/{id}/cancel                                  operator
 *   GET  /v1/sagas[?status=]            latest change first        viewer
 *   GET  /v1/repairs[?state=S]          newest first               viewer
 *   GET  /v1/repairs/{id}                                          viewer
 *   POST /v1/repairs/{id}/start | /complete                        mechanic
 *   GET  /v1/dead-letters               newest first, payload in hex   viewer
 *   GET  /v1/devices                    by id                      viewer
 *   GET  /v1/counters                   {"name": value, ...}       viewer
 *   POST /v1/read-models/check | /rebuild                          operator
 *
 * Lists are JSON arrays of objects whose keys are the column names of
 * hub/schema.sql, one page each: ?limit= rows (default 100, 1..1000) and,
 * when more follow, the header X-Next-Cursor whose value as ?cursor= gives
 * the next page (keyset paging on the list's sort key). A successful POST or
 * PATCH answers with the entity it changed, in the shape its GET has. Errors
 * are {"error": sentence, "code": fl_errname token} with 400 (bad input),
 * 401 (code "unauthorized": no or unknown token), 403 ("forbidden": role too
 * low), 404, 405, 409 (conflict or state), 413 (body over 16 KB), 415 (POST
 * or PATCH without Content-Type: application/json), 503 (store not readable
 * yet, engine shutting down), 504 (engine did not answer in time).
 *
 * Access: with [http] tokens_file (hub/token.h: "ROLE SHA256 NAME" lines),
 * every route but the open ones needs "Authorization: Bearer TOKEN" of a
 * role at least the one above (viewer < mechanic < operator); without it the
 * API is open and the hub logs a warning: keep it on loopback. With [http]
 * cert_file and key_file it is served over HTTPS only. */
#ifndef HUB_HTTP_H
#define HUB_HTTP_H

#include "engine.h"
#include "hub_config.h"

typedef struct hub_http hub_http;

/* Starts serving on cfg->http_bind:cfg->http_port (a numeric IPv4 or IPv6
 * address) with its own threads; cfg is copied. engine must outlive the
 * server. With http_port 0 the API is disabled: returns FL_OK and sets *out
 * to NULL. Returns FL_OK and *out (stop with hub_http_stop), FL_ERR_CONFIG
 * for a bad bind address, an unreadable or malformed tokens file, or a
 * certificate that cannot be read or TLS this libmicrohttpd lacks, or
 * FL_ERR_IO when the socket cannot be bound (all logged). */
int hub_http_start(const hub_config *cfg, hub_engine *engine, hub_http **out);

/* Returns the port being served, or 0 for NULL (API disabled). */
int hub_http_port(const hub_http *h);

/* Stops serving (waits for requests in progress) and frees h. NULL is accepted. */
void hub_http_stop(hub_http *h);

#endif
