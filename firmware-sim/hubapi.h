/* The simulator's client of the hub's operator HTTP API (the same API that
 * fleetctl uses): register vehicles, play the mechanic, read the views for
 * the final invariant check. */
#ifndef SIM_HUBAPI_H
#define SIM_HUBAPI_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

/* Sends method to base_url + path with an optional JSON body (and, when
 * $FLEET_TOKEN is set, "Authorization: Bearer $FLEET_TOKEN"). Returns the
 * HTTP status (0 when the hub could not be reached); *out gets the parsed
 * JSON answer (caller frees with cJSON_Delete) or NULL. out may be NULL. A
 * list the hub answers in pages (X-Next-Cursor) is read to its end: *out is
 * every page's rows in one array. */
int sim_hub_call(const char *base_url, const char *method, const char *path, const char *body,
                 cJSON **out);

/* POSTs a vehicle to /v1/vehicles (the body built with cJSON, so that any
 * text is escaped). Returns the HTTP status, 0 when the hub could not be
 * reached or the body could not be built (out of memory). */
int sim_hub_post_vehicle(const char *base_url, const char *vehicle, const char *name,
                         const char *station, int64_t rate_cents);

/* Registers a vehicle; returns FL_OK, or FL_OK too when it exists already
 * (a rerun of the simulator), else FL_ERR_UNAVAILABLE. */
int sim_hub_register(const char *base_url, const char *vehicle, const char *name,
                     const char *station, int64_t rate_cents);

/* Returns the string member key of o, or "" when absent or not a string. */
const char *sim_json_str(const cJSON *o, const char *key);

/* Returns the number member key of o, or 0 when absent or not a number. */
double sim_json_num(const cJSON *o, const char *key);

/* Waits up to timeout_s for GET /v1/health to answer 200. Returns true if it did. */
bool sim_hub_wait_healthy(const char *base_url, double timeout_s);

#endif
