/* Internals of the operator HTTP API, shared by http.c (server, routes,
 * dispatch), http_auth.c (tokens, TLS, each request's Authorization),
 * http_reads.c (the read routes), http_ops.c (operator commands),
 * http_metrics.c (GET /metrics), http_query.c (the views' SQL), the readers
 * (http_reader_*.c) and http_page.c (the page). */
#ifndef HUB_HTTP_INTERNAL_H
#define HUB_HTTP_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "http_events.h"
#include "fleet/proto.h"
#include "hub_config.h"
#include "ops.h"
#include "token.h"

/* How many parameters a view may have, and sort-key columns a list has. */
#define HTTP_VIEW_PARAMS 8
#define HTTP_VIEW_KEYS 3

/* A read of the store: sql's parameters ?1..?N are bound, in order, from the
 * request values named in params ("id" is the {id} of the path, "limit" a
 * number, "state" a state name, "after0".."after2" the values of the page
 * cursor, anything else an id from the query string); an absent value binds
 * NULL, so the SQL says what a missing filter means. "limit" is bound as an
 * integer, everything else as text (the SQL casts a cursor value that is a
 * number). The SQL is written once for both stores: SQL that SQLite and
 * PostgreSQL read alike (a PostgreSQL reader turns ?N into $N).
 *
 * A list (a view with a "limit") is paged by its sort key: keys names the
 * columns of its ORDER BY ('#' before a number column), and the SQL keeps
 * only the rows after "after0".."after2" in that order; the server asks for
 * limit + 1 rows to know whether a next page exists. */
typedef struct http_view {
  const char *noun; /* "vehicle": for messages such as "no vehicle V9" */
  const char *sql;
  const char *params[HTTP_VIEW_PARAMS];
  const char *keys[HTTP_VIEW_KEYS];
} http_view;

/* The longest cursor text (hex of the sort-key values, '\n' between them). */
#define HTTP_CURSOR_MAX (2 * HTTP_VIEW_KEYS * (FL_ID_MAX + 2))

/* The parameter values of one request to a view. */
typedef struct http_view_args {
  const char *values[HTTP_VIEW_PARAMS]; /* values[i] belongs to view->params[i]; NULL: absent */
  long limit;                           /* rows per page (the view's "limit"), 0: not a list */
  char limit_text[24];                  /* limit + 1, what the SQL is given */
  char after[HTTP_CURSOR_MAX / 2 + 1];  /* the decoded cursor, its values split at NULs */
} http_view_args;

extern const http_view http_view_stations, http_view_vehicles, http_view_vehicle, http_view_rentals, http_view_rental,
    http_view_saga_steps, http_view_sagas, http_view_repairs, http_view_repair, http_view_dead_letters,
    http_view_devices, http_view_counters, http_view_bookings, http_view_booking,
    http_view_vehicle_history;

/* ---- readers: where the API reads from (one per server) ----------------------- */

/* What a reader provides: a connection per request and views run on it. */
typedef struct http_reader_ops {
  /* Returns a read-only connection for one request, or NULL when the store
   * is not readable (yet). */
  void *(*acquire)(void *src);
  /* Gives back a connection acquire() returned (NULL accepted). */
  void (*release)(void *src, void *conn);
  /* As http_query_rows. */
  cJSON *(*rows)(void *conn, const http_view *view, const char *const values[HTTP_VIEW_PARAMS]);
  /* Frees src. */
  void (*close)(void *src);
} http_reader_ops;

typedef struct http_reader {
  const http_reader_ops *ops;
  void *src;
} http_reader;

/* One request's connection to the store. */
typedef struct http_read {
  const http_reader *reader;
  void *conn;
} http_read;

/* Readers of the two stores: SQLite's <state_dir>/hub.db, opened read-only
 * per request (WAL: a reader never blocks the engine); PostgreSQL's database
 * at url ("": the PG* environment), through a small pool of connections.
 * Return FL_OK and fill *out (free with http_reader_close), FL_ERR_NOMEM, or
 * FL_ERR_CONFIG for postgresql in a build without libpq. */
int http_reader_sqlite(const char *db_path, http_reader *out);
int http_reader_pg(const char *url, http_reader *out);
void http_reader_close(http_reader *rd);

/* Opens a connection for one request: true and *out (close it with
 * http_read_close), or false when the store is not readable. */
bool http_read_open(const http_reader *rd, http_read *out);
void http_read_close(http_read *r);

/* Hex of n bytes as a new JSON string (blobs and bytea in the API). */
cJSON *http_json_hex(const unsigned char *b, size_t n);

/* ---- queries ---------------------------------------------------------------------- */

/* Runs view with the given values (values[i] belongs to view->params[i]; NULL
 * when absent) and returns a new JSON array of row objects: column names as
 * keys; integers and reals as numbers, text as strings, blobs as lowercase
 * hex, NULL as null (the same on both stores). Returns NULL on a store error
 * or out of memory (logged). The caller frees the array with cJSON_Delete. */
cJSON *http_query_rows(http_read *r, const http_view *view,
                       const char *const values[HTTP_VIEW_PARAMS]);

/* Adds the rows of view for the single value id to obj under key. Returns
 * false on a store error or out of memory (obj is then unchanged). */
bool http_query_attach(cJSON *obj, const char *key, http_read *r, const http_view *view,
                       const char *id);

/* Returns a new JSON object for customer id: "customer", "rentals" (count of
 * all), "fees_owed_cents" (late fees whose "fee" saga step is not done),
 * "fees_paid_cents" (those whose step is done), "open_rentals" (each ACTIVE
 * one past its due time with "running_fee_cents": the late fee a return at
 * now_ms would cost, by cfg's tiers as hub/rental.c charges it) and
 * "held_bookings" (arrays), or NULL when the customer has neither rentals nor
 * bookings (*err = FL_ERR_NOT_FOUND) or on a store error (*err = FL_ERR_DB). */
cJSON *http_query_customer(http_read *r, const char *id, const hub_config *cfg, int64_t now_ms,
                           int *err);

/* Returns the figures of the store that GET /metrics shows, as a new JSON
 * object: "vehicles" {state: n}, "devices_online", "devices", "sagas"
 * {status: n}, "downlink_queued", "rejected" {reason: n}; NULL on a store
 * error (logged). */
cJSON *http_query_metrics(http_read *r);

/* ---- the request parsers, exposed for tests/fuzz (not an API) ----------- */

/* Looks up the query string argument name of the request ctx: its value
 * (unescaped, owned by the request), or NULL when absent. */
typedef const char *(*http_arg_fn)(void *ctx, const char *name);

/* Fills a->values for view's params: "id" from id (the path's {id}, already
 * checked), "after0".. from the query string's "cursor" (a cursor of this
 * view's answers), the others from the query string through arg(ctx, name).
 * A missing "limit" is the default (100); a present one is a number from 1
 * to 1000, a "state" is a state name (A-Z and _), anything else an id.
 * Returns MHD_HTTP_OK (200), or 400 with *out set (a new error object, the
 * caller frees it) when a value or the cursor is malformed. a->values point
 * into id, arg's strings, a or static text. */
unsigned http__view_values(const http_view *view, const char *id, http_arg_fn arg, void *ctx,
                           http_view_args *a, cJSON **out);

/* Writes the cursor of the page that follows row (the last row of a page of
 * view) into out (HTTP_CURSOR_MAX + 1 bytes). Returns false when row lacks a
 * sort-key value. */
bool http__cursor_of(const http_view *view, const cJSON *row, char *out);

/* Turns json, the body of POST /v1/vehicles (len bytes; NULL is an empty
 * body) into a HUB_OP_VEHICLE_REGISTER op. Returns MHD_HTTP_OK (200) with
 * *op filled, or 400 with *out set (a new error object, the caller frees it)
 * when the body is not an object with a valid id, name, station and
 * rate_cents. */
unsigned http__vehicle_op(const char *json, size_t len, hub_op *op, cJSON **out);

/* ---- routes that answer by themselves (not JSON) ------------------------ */

/* Answers c for url: a file, a stream. events is the server's live feed
 * (NULL when it is not running). */
typedef struct http_raw_route {
  enum MHD_Result (*serve)(struct MHD_Connection *c, const char *url, http_events *events);
} http_raw_route;

/* The operator console (hub/console/, embedded at build time): GET / and
 * GET /console/{file}. */
extern const http_raw_route http_page_route;
/* The live feed, GET /v1/events (http_events.h). */
extern const http_raw_route http_events_route;

/* Turns json, the body of PATCH /v1/vehicles/{id} (id: vehicle), into a
 * HUB_OP_VEHICLE_EDIT op: any of "name", "station", "rate_cents" (at least
 * one, nothing else), each checked as for a registration; fields says which.
 * Returns MHD_HTTP_OK with *op filled, or 400 with *out set. */
unsigned http__vehicle_edit_op(const char *json, size_t len, const char *vehicle, hub_op *op,
                               cJSON **out);

/* Turns json, the body of POST /v1/vehicles/{id}/repairs ({"text": ...}),
 * into a HUB_OP_REPAIR_OPEN op. Returns MHD_HTTP_OK or 400 with *out set. */
unsigned http__repair_open_op(const char *json, size_t len, const char *vehicle, hub_op *op,
                              cJSON **out);

/* ---- the server and its requests (http.c and the route handlers) -------- */

struct hub_http {
  struct MHD_Daemon *daemon;
  hub_engine *engine;
  http_reader reader;
  http_events *events; /* the console's live feed; NULL when it did not start */
  int port;
  hub_config cfg;     /* fee tiers (the customer view), metrics_open */
  hub_token *tokens;  /* [http] tokens_file; none: the API is open */
  size_t n_tokens;
  char *tls_cert, *tls_key; /* PEM texts for MHD, or NULL */
};

/* One request in progress: its body, collected across MHD's calls. */
typedef struct http_request {
  hub_http *server;
  struct MHD_Connection *conn;
  const char *id; /* the {id} segment of the path, or NULL */
  char id_buf[FL_ID_MAX + 2];
  char *body;
  size_t body_len;
  bool body_too_large;
  const hub_token *who;                 /* the caller's token, NULL when the API is open */
  char next_cursor[HTTP_CURSOR_MAX + 1]; /* a list's X-Next-Cursor, "" when it is the last page */
  bool challenge;                       /* 401: add WWW-Authenticate */
  char *text;                           /* a handler's answer that is not JSON (freed after) */
  const char *text_type;
} http_request;

/* A handler answers with a status and a JSON body (owned by the caller). */
typedef unsigned (*http_handler)(http_request *r, const void *arg, cJSON **out);

/* What a route needs from its caller when tokens are configured. */
typedef enum http_access {
  HTTP_OPEN,     /* nothing: health, the contract, the page */
  HTTP_METRICS,  /* nothing with [http] metrics_open = true (default), else viewer */
  HTTP_VIEWER,   /* every read */
  HTTP_MECHANIC, /* repairs: open, start, complete */
  HTTP_OPERATOR, /* every other change */
} http_access;

/* An operator command route: which op, and what to show once it is done. */
typedef struct http_op_route {
  hub_op_kind kind;
  const char *name; /* for the log */
  size_t target;    /* offsetof the hub_op field that gets the {id} */
  const http_view *result;
} http_op_route;

/* Sets *out to a new {"error": message, "code": fl_errname(code)} (the
 * caller frees it) and returns status (http.c). */
unsigned http__fail(cJSON **out, unsigned status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Checks the request's "Authorization: Bearer TOKEN" against the server's
 * tokens when it has any, for a route of access. Returns MHD_HTTP_OK
 * (r->who set when a known token was given), 401 (no token, or one the hub
 * does not know; r->challenge set) or 403 (its role is below what the route
 * needs), with *out set (a new error object, the caller frees it)
 * (http_auth.c). */
unsigned http__authorize(http_request *r, http_access access, cJSON **out);

/* Loads the tokens and the TLS certificate and key that cfg names into h
 * (h->tokens, h->tls_cert, h->tls_key, freed with h). Returns FL_OK, or
 * FL_ERR_CONFIG (logged) (http_auth.c). */
int http__security_load(hub_http *h, const hub_config *cfg);

/* Runs view for r (values from r->id and the query string); with single it
 * answers the first row (or 404 "no <noun> <id>"), else one page of the list
 * (r->next_cursor set when more rows follow). Returns the status with *out
 * set to the answer or an error object, which the caller frees
 * (http_reads.c). */
unsigned http__read_view(http_request *r, const http_view *view, bool single, cJSON **out);

/* The read routes (http_reads.c), as http_handler: a page of the list view
 * arg; the entity of view arg with the path's {id}; a rental or booking
 * (arg: its view) with its "saga_steps"; GET /v1/customers/{id}; the
 * counters as one object {"name": value}. */
unsigned http__get_list(http_request *r, const void *view, cJSON **out);
unsigned http__get_one(http_request *r, const void *view, cJSON **out);
unsigned http__get_with_steps(http_request *r, const void *view, cJSON **out);
unsigned http__get_customer(http_request *r, const void *arg, cJSON **out);
unsigned http__get_counters(http_request *r, const void *arg, cJSON **out);

/* GET /metrics (http_metrics.c): answers 200 with r->text, the Prometheus
 * text (freed after the request), or 500 with *out set. */
unsigned http__get_metrics(http_request *r, const void *arg, cJSON **out);

/* The operator command routes (http_ops.c), as http_handler: an op on the
 * path's {id} (arg: an http_op_route); POST /v1/vehicles (201); PATCH
 * /v1/vehicles/{id}; POST /v1/vehicles/{id}/repairs (201 with the repair);
 * POST /v1/read-models/check | /rebuild (arg: the hub_op_kind; 200 when
 * equal or rebuilt, 409 when they differ). Each answers the changed entity
 * as its GET shows it, or an error object; the caller frees *out. */
unsigned http__post_op(http_request *r, const void *arg, cJSON **out);
unsigned http__post_vehicle(http_request *r, const void *arg, cJSON **out);
unsigned http__patch_vehicle(http_request *r, const void *arg, cJSON **out);
unsigned http__post_repair(http_request *r, const void *arg, cJSON **out);
unsigned http__post_readmodel(http_request *r, const void *arg, cJSON **out);

/* The API's contract, docs/openapi.yaml, NUL-terminated (embedded at build). */
extern const char hub_openapi_yaml[];

#endif
