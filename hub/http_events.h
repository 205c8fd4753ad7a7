/* The console's live feed: GET /v1/events, Server-Sent Events.
 *
 * A small MQTT client of its own subscribes to what the hub publishes for
 * dashboards (fleet/v1/state/# and fleet/v1/notify/#, live messages only, not
 * the retained ones a subscription brings), decodes each message with
 * fl_msg_decode and keeps it as one line of JSON in a ring of the latest
 * HTTP_EVENTS_RING; every open stream sends the lines it has not sent yet:
 *
 *   id: 42
 *   data: {"type":"notify","kind":"rental","id":"K1-1-1","from":"PAYMENT_PENDING",
 *          "to":"ACTIVE","text":"","at_ms":1718000000000}
 *
 * "type" is "notify" (kind, id, from, to, text, customer when set) or "state"
 * (kind and id from the topic; a vehicle's state, online and energy_pct, a
 * rental's, repair's or booking's state). A stream that fell behind by more
 * than the ring gets "event: lost" (the console then reads its lists again);
 * one that has nothing to send gets a comment line every 15 s. */
#ifndef HUB_HTTP_EVENTS_H
#define HUB_HTTP_EVENTS_H

#include <microhttpd.h>

#include "hub_config.h"

#define HTTP_EVENTS_RING 512

typedef struct http_events http_events;

/* Starts the feed: connects to cfg's broker as "<client_id>-console" (TLS as
 * the hub's), in the background (it reconnects by itself). Only without
 * [mqtt] username: a broker with logins may turn the client id into the login
 * (use_username_as_clientid), and a second session as the hub would take the
 * hub's own over; then FL_ERR_CONFIG. Returns FL_OK and *out, or FL_ERR_CONFIG
 * / FL_ERR_NOMEM / FL_ERR_INVALID / FL_ERR_MQTT (*out NULL: the API then
 * answers GET /v1/events with 503 and the console polls). Free with
 * http_events_free. */
int http_events_start(const hub_config *cfg, http_events **out);

/* Ends every open stream (their next read returns end of stream) and stops
 * the MQTT client. Call before MHD_stop_daemon; NULL is accepted. */
void http_events_close(http_events *ev);

/* Frees ev once no stream uses it any more (after MHD_stop_daemon). NULL is
 * accepted. */
void http_events_free(http_events *ev);

/* Answers c with a new event stream of ev (NULL: 503). For the route table. */
enum MHD_Result http_events_serve(struct MHD_Connection *c, const char *url, http_events *ev);

/* Turns one message the hub published on topic (payload of len bytes) into
 * a line of JSON for the stream, written into buf (cap bytes). Returns its
 * length, or 0 when the message is not for the console (undecodable, another
 * type, too long). Exposed for tests. */
size_t http__event_json(const char *topic, const unsigned char *payload, size_t len, char *buf,
                        size_t cap);

#endif
