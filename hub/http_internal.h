/* Internals of the operator HTTP API, shared by http.c (server, routes,
 * operator commands), http_query.c (read side) and http_page.c (the page). */
#ifndef HUB_HTTP_INTERNAL_H
#define HUB_HTTP_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_events.h"
#include "fleet/proto.h"
#include "hub_config.h"
#include "ops.h"

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

extern const http_view http_view_vehicles, http_view_vehicle, http_view_rentals, http_view_rental,
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


/* The API's contract, docs/openapi.yaml, NUL-terminated (embedded at build). */
extern const char hub_openapi_yaml[];

#endif
