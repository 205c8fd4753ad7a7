/* The operator HTTP API: libmicrohttpd with a thread per connection, a route
 * table, reads from the store through a reader (http_internal.h: SQLite or
 * PostgreSQL, a read-only connection per request), writes as operator
 * commands through hub_engine_op(). See http.h for the endpoints. */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/proto.h"
#include "http_internal.h"
#include "metrics.h"
#include "token.h"

#define HTTP_BODY_MAX (16 * 1024)
#define HTTP_LIMIT_DEFAULT 100
#define HTTP_LIMIT_MAX 1000
#define HTTP_OP_TIMEOUT_MS 10000
#define HTTP_RATE_MAX 100000000 /* cents per hour */

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

typedef struct http_route {
  const char *method;
  const char *pattern; /* "*" matches one path segment: the {id} */
  http_handler handler;
  const void *arg;
  http_access access;
} http_route;

/* An operator command route: which op, and what to show once it is done. */
typedef struct http_op_route {
  hub_op_kind kind;
  const char *name; /* for the log */
  size_t target;    /* offsetof the hub_op field that gets the {id} */
  const http_view *result;
} http_op_route;

/* ---- responses ---------------------------------------------------------- */

/* Queues status with body (freed here) of type on c, with the headers the
 * request r (NULL accepted) asks for. */
static enum MHD_Result send_body(struct MHD_Connection *c, const http_request *r, unsigned status,
                                 char *body, const char *type) {
  struct MHD_Response *resp =
      body ? MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE) : NULL;
  if (!resp) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  if (r && r->next_cursor[0])
    MHD_add_response_header(resp, "X-Next-Cursor", r->next_cursor);
  if (r && r->challenge)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"fleet\"");
  enum MHD_Result ret = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, const http_request *r, unsigned status,
                                 cJSON *json) {
  char *text = json ? cJSON_PrintUnformatted(json) : NULL;
  cJSON_Delete(json);
  return send_body(c, r, status, text, "application/json");
}

/* Sets *out to {"error": message, "code": token} and returns status. */
static unsigned fail(cJSON **out, unsigned status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static unsigned fail(cJSON **out, unsigned status, int code, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  *out = cJSON_CreateObject();
  cJSON_AddStringToObject(*out, "error", msg);
  cJSON_AddStringToObject(*out, "code", fl_errname(code));
  return status;
}

static unsigned status_of(int code) {
  switch (code) {
  case FL_OK: return MHD_HTTP_OK;
  case FL_ERR_NOT_FOUND: return MHD_HTTP_NOT_FOUND;
  case FL_ERR_CONFLICT:
  case FL_ERR_STATE: return MHD_HTTP_CONFLICT;
  case FL_ERR_INVALID:
  case FL_ERR_BAD_VALUE: return MHD_HTTP_BAD_REQUEST;
  case FL_ERR_TIMEOUT: return MHD_HTTP_GATEWAY_TIMEOUT;
  case FL_ERR_UNAVAILABLE:
  case FL_ERR_SHUTDOWN:
  case FL_ERR_FULL: return MHD_HTTP_SERVICE_UNAVAILABLE;
  default: return MHD_HTTP_INTERNAL_SERVER_ERROR;
  }
}

/* ---- reads -------------------------------------------------------------- */

static unsigned open_store(http_request *r, http_read *db, cJSON **out) {
  if (http_read_open(&r->server->reader, db))
    return MHD_HTTP_OK;
  return fail(out, MHD_HTTP_SERVICE_UNAVAILABLE, FL_ERR_UNAVAILABLE,
              "the hub's store is not readable yet");
}

static bool state_name_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 23)
    return false;
  for (; *s; s++)
    if (!isupper((unsigned char)*s) && *s != '_')
      return false;
  return true;
}

static int hex_value(char ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  return -1;
}

/* A whole number as the store keeps one: an optional '-' and 1 to 19 digits. */
static bool number_text(const char *s) {
  if (*s == '-')
    s++;
  size_t n = strspn(s, "0123456789");
  return n >= 1 && n <= 19 && s[n] == '\0';
}

/* Decodes cursor (lowercase hex of the sort-key values with '\n' between
 * them) into a->after and points values after0.. of view at its parts.
 * Returns false when it is not a cursor of this view. */
static bool cursor_decode(const http_view *view, const char *cursor, http_view_args *a) {
  size_t len = strlen(cursor), nkeys = 0;
  while (nkeys < HTTP_VIEW_KEYS && view->keys[nkeys])
    nkeys++;
  if (nkeys == 0 || len == 0 || len % 2 || len / 2 >= sizeof a->after)
    return false;
  for (size_t i = 0; i < len / 2; i++) {
    int hi = hex_value(cursor[2 * i]), lo = hex_value(cursor[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    char ch = (char)(hi * 16 + lo);
    a->after[i] = ch == '\n' ? '\0' : ch;
    if (ch == '\0')
      return false;
  }
  a->after[len / 2] = '\0';
  const char *part = a->after, *end = a->after + len / 2;
  for (size_t k = 0; k < nkeys; k++) {
    if (part > end)
      return false;
    bool number = view->keys[k][0] == '#';
    if (number ? !number_text(part) : !fl_id_valid(part))
      return false;
    char name[8];
    snprintf(name, sizeof name, "after%zu", k);
    for (int i = 0; i < HTTP_VIEW_PARAMS; i++)
      if (view->params[i] && strcmp(view->params[i], name) == 0)
        a->values[i] = part;
    part += strlen(part) + 1;
  }
  return part == end + 1; /* every part used, none left over */
}

bool http__cursor_of(const http_view *view, const cJSON *row, char *out) {
  char *p = out;
  for (size_t k = 0; k < HTTP_VIEW_KEYS && view->keys[k]; k++) {
    bool number = view->keys[k][0] == '#';
    const cJSON *v = cJSON_GetObjectItem(row, view->keys[k] + (number ? 1 : 0));
    char text[FL_ID_MAX + 2];
    if (number && cJSON_IsNumber(v))
      snprintf(text, sizeof text, "%lld", (long long)v->valuedouble);
    else if (!number && cJSON_IsString(v) && strlen(v->valuestring) <= FL_ID_MAX)
      snprintf(text, sizeof text, "%s", v->valuestring);
    else
      return false;
    if (k > 0)
      p += sprintf(p, "0a");
    for (const char *c = text; *c; c++)
      p += sprintf(p, "%02x", (unsigned char)*c);
  }
  *p = '\0';
  return p != out;
}

unsigned http__view_values(const http_view *view, const char *id, http_arg_fn arg, void *ctx,
                           http_view_args *a, cJSON **out) {
  memset(a, 0, sizeof *a);
  for (int i = 0; i < HTTP_VIEW_PARAMS; i++) {
    const char *name = view->params[i];
    if (!name || strncmp(name, "after", 5) == 0)
      continue;
    if (strcmp(name, "id") == 0) {
      a->values[i] = id;
      continue;
    }
    const char *v = arg(ctx, name);
    if (strcmp(name, "limit") == 0) {
      char *end = NULL;
      long n = v ? strtol(v, &end, 10) : HTTP_LIMIT_DEFAULT;
      if (v && (*end || end == v || n < 1 || n > HTTP_LIMIT_MAX))
        return fail(out, MHD_HTTP_BAD_REQUEST, FL_ERR_INVALID,
                    "limit must be a number from 1 to %d", HTTP_LIMIT_MAX);
      a->limit = n;
      snprintf(a->limit_text, sizeof a->limit_text, "%ld", n + 1); /* one more: is there a next page? */
      a->values[i] = a->limit_text;
    } else if (!v) {
      a->values[i] = NULL;
    } else if (strcmp(name, "state") == 0 ? !state_name_valid(v) : !fl_id_valid(v)) {
      return fail(out, MHD_HTTP_BAD_REQUEST, FL_ERR_INVALID, "bad value for %s", name);
    } else {
      a->values[i] = v;
    }
  }
  const char *cursor = a->limit ? arg(ctx, "cursor") : NULL;
  if (cursor && !cursor_decode(view, cursor, a))
    return fail(out, MHD_HTTP_BAD_REQUEST, FL_ERR_INVALID,
                "bad cursor: pass the X-Next-Cursor of this list's previous page as it is");
  return MHD_HTTP_OK;
}

/* The query string argument name of the request (ctx), or NULL. */
static const char *query_arg(void *ctx, const char *name) {
  return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, name);
}

/* Fills a for view's params from the path id and the query string.
 * Returns MHD_HTTP_OK, or 400 with *out set when a value is malformed. */
static unsigned view_values(http_request *r, const http_view *view, http_view_args *a,
                            cJSON **out) {
  return http__view_values(view, r->id, query_arg, r->conn, a, out);
}

/* Runs view; with single, answers its first row or 404 "no <noun> <id>".
 * A list answers one page and sets r->next_cursor when more rows follow. */
static unsigned query_view(http_request *r, http_read *db, const http_view *view, bool single,
                           cJSON **out) {
  http_view_args a;
  unsigned status = view_values(r, view, &a, out);
  if (status != MHD_HTTP_OK)
    return status;
  cJSON *rows = http_query_rows(db, view, a.values);
  if (!rows)
    return fail(out, MHD_HTTP_INTERNAL_SERVER_ERROR, FL_ERR_DB, "reading the store failed");
  if (!single) {
    if (a.limit > 0 && cJSON_GetArraySize(rows) > a.limit) {
      cJSON_DeleteItemFromArray(rows, (int)a.limit); /* the extra row: a next page exists */
      if (!http__cursor_of(view, cJSON_GetArrayItem(rows, (int)a.limit - 1), r->next_cursor))
        fl_warn("http %s list: a row without its sort key; no next page offered", view->noun);
    }
    *out = rows;
    return MHD_HTTP_OK;
  }
  *out = cJSON_DetachItemFromArray(rows, 0);
  cJSON_Delete(rows);
  if (*out)
    return MHD_HTTP_OK;
  return fail(out, MHD_HTTP_NOT_FOUND, FL_ERR_NOT_FOUND, "no %s %s", view->noun, r->id);
}

static unsigned read_view(http_request *r, const http_view *view, bool single, cJSON **out) {
  http_read db = {0};
  unsigned status = open_store(r, &db, out);
  if (status == MHD_HTTP_OK)
    status = query_view(r, &db, view, single, out);
  http_read_close(&db);
  return status;
}

static unsigned get_list(http_request *r, const void *view, cJSON **out) {
  return read_view(r, view, false, out);
}

static unsigned get_one(http_request *r, const void *view, cJSON **out) {
  return read_view(r, view, true, out);
}

/* A rental or a booking (arg: its view), with its saga steps. */
static unsigned get_with_steps(http_request *r, const void *view, cJSON **out) {
  http_read db = {0};
  unsigned status = open_store(r, &db, out);
  if (status == MHD_HTTP_OK)
    status = query_view(r, &db, view, true, out);
  if (status == MHD_HTTP_OK &&
      !http_query_attach(*out, "saga_steps", &db, &http_view_saga_steps, r->id)) {
    cJSON_Delete(*out);
    status = fail(out, MHD_HTTP_INTERNAL_SERVER_ERROR, FL_ERR_DB, "reading the store failed");
  }
  http_read_close(&db);
  return status;
}

static unsigned get_customer(http_request *r, const void *arg, cJSON **out) {
  http_read db = {0};
  unsigned status = open_store(r, &db, out);
  if (status == MHD_HTTP_OK) {
    int err;
    *out = http_query_customer(&db, r->id, &r->server->cfg, fl_now_ms(), &err);
    if (err == FL_ERR_NOT_FOUND)
      status = fail(out, MHD_HTTP_NOT_FOUND, err, "no customer %s", r->id);
    else if (err != FL_OK)
      status = fail(out, MHD_HTTP_INTERNAL_SERVER_ERROR, err, "reading the store failed");
  }
  http_read_close(&db);
  return status;
}

/* The counters table as one object: {"name": value, ...}. */
static unsigned get_counters(http_request *r, const void *arg, cJSON **out) {
  cJSON *rows = NULL;
  unsigned status = read_view(r, &http_view_counters, false, &rows);
  if (status != MHD_HTTP_OK) {
    *out = rows;
    return status;
  }
  *out = cJSON_CreateObject();
  const cJSON *row;
  cJSON_ArrayForEach(row, rows) {
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(row, "name"));
    const cJSON *value = cJSON_GetObjectItem(row, "value");
    if (name && cJSON_IsNumber(value))
      cJSON_AddNumberToObject(*out, name, value->valuedouble);
  }
  cJSON_Delete(rows);
  return status;
}

static unsigned get_health(http_request *r, const void *arg, cJSON **out) {
  hub_health h;
  memset(&h, 0, sizeof h);
  hub_engine_health(r->server->engine, &h);
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "status", h.ready ? "ok" : "not_ready");
  cJSON_AddBoolToObject(j, "ready", h.ready);
  cJSON_AddBoolToObject(j, "mqtt_connected", h.mqtt_connected);
  cJSON_AddNumberToObject(j, "uptime_s", (double)h.uptime_s);
  cJSON_AddNumberToObject(j, "queue_depth", (double)h.queue_depth);
  cJSON_AddNumberToObject(j, "events_applied", (double)h.events_applied);
  cJSON_AddNumberToObject(j, "duplicates", (double)h.duplicates);
  cJSON_AddNumberToObject(j, "rejected", (double)h.rejected);
  cJSON_AddNumberToObject(j, "batches", (double)h.batches);
  cJSON_AddNumberToObject(j, "shed", (double)h.shed);
  cJSON_AddNumberToObject(j, "payments_pending", (double)h.payments_pending);
  cJSON_AddStringToObject(j, "breaker", h.breaker ? h.breaker : "unknown");
  *out = j;
  return h.ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
}

/* ---- metrics and the contract -------------------------------------------- */

/* Writes value as a Prometheus label value (backslash, quote, newline escaped). */
static void label_value(FILE *f, const char *value) {
  for (const char *p = value; *p; p++) {
    if (*p == '\\' || *p == '"')
      fprintf(f, "\\%c", *p);
    else if (*p == '\n')
      fputs("\\n", f);
    else
      fputc(*p, f);
  }
}

static void metric_head(FILE *f, const char *name, const char *type, const char *help) {
  fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric(FILE *f, const char *name, const char *type, const char *help, double v) {
  metric_head(f, name, type, help);
  fprintf(f, "%s %.17g\n", name, v);
}

/* One sample per name in names (a NULL-terminated list), the value from the
 * object group (0 when it lacks the name), then every other member of group. */
static void metric_by(FILE *f, const char *name, const char *type, const char *help,
                      const char *label, const char *const *names, const cJSON *group) {
  metric_head(f, name, type, help);
  for (const char *const *n = names; n && *n; n++) {
    const cJSON *v = cJSON_GetObjectItem(group, *n);
    fprintf(f, "%s{%s=\"", name, label);
    label_value(f, *n);
    fprintf(f, "\"} %.17g\n", cJSON_IsNumber(v) ? v->valuedouble : 0.0);
  }
  const cJSON *m;
  cJSON_ArrayForEach(m, group) {
    bool listed = false;
    for (const char *const *n = names; n && *n && !listed; n++)
      listed = strcmp(*n, m->string) == 0;
    if (listed || !cJSON_IsNumber(m))
      continue;
    fprintf(f, "%s{%s=\"", name, label);
    label_value(f, m->string);
    fprintf(f, "\"} %.17g\n", m->valuedouble);
  }
}

static double figure(const cJSON *store, const char *name) {
  const cJSON *v = cJSON_GetObjectItem(store, name);
  return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

/* GET /metrics: the engine's figures, the store's, and the latency
 * histograms, in the Prometheus text format (version 0.0.4). */
static unsigned get_metrics(http_request *r, const void *arg, cJSON **out) {
  static const char *const vehicle_states[] = {"AVAILABLE", "RESERVED",  "RENTED", "REPAIR_REQUESTED",
                                               "IN_REPAIR", "RETIRED",   NULL};
  static const char *const step_states[] = {"calling", "retry", "failed", NULL};
  static const char *const breaker_states[] = {"closed", "open", "half_open", NULL};
  hub_health h;
  memset(&h, 0, sizeof h);
  hub_engine_health(r->server->engine, &h);
  http_read db = {0};
  cJSON *store = http_read_open(&r->server->reader, &db) ? http_query_metrics(&db) : NULL;
  http_read_close(&db);
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) {
    cJSON_Delete(store);
    return fail(out, MHD_HTTP_INTERNAL_SERVER_ERROR, FL_ERR_NOMEM, "out of memory");
  }
  metric(f, "fleet_hub_ready", "gauge", "1 when the store is open, recovery done and MQTT connected.",
         h.ready);
  metric(f, "fleet_hub_mqtt_connected", "gauge", "1 while the hub is connected to the broker.",
         h.mqtt_connected);
  metric(f, "fleet_hub_uptime_seconds", "gauge", "Seconds since the engine started.",
         (double)h.uptime_s);
  metric(f, "fleet_hub_events_applied_total", "counter",
         "Uplink events accepted and applied since the hub started.", (double)h.events_applied);
  metric(f, "fleet_hub_duplicates_total", "counter",
         "Re-delivered uplink events acknowledged again since the hub started.",
         (double)h.duplicates);
  metric(f, "fleet_hub_batches_total", "counter",
         "Engine batches (one store transaction each) since the hub started.", (double)h.batches);
  metric(f, "fleet_hub_shed_total", "counter",
         "Messages dropped because the engine queue was full (devices resend them).",
         (double)h.shed);
  metric(f, "fleet_hub_queue_depth", "gauge", "Inputs waiting in the engine's queue.",
         (double)h.queue_depth);
  metric(f, "fleet_hub_payments_pending", "gauge", "Payment calls queued or in progress.",
         (double)h.payments_pending);
  cJSON *breaker = cJSON_CreateObject();
  cJSON_AddNumberToObject(breaker, h.breaker ? h.breaker : "closed", 1);
  metric_by(f, "fleet_hub_breaker_state", "gauge",
            "The payment circuit breaker: 1 for its current state.", "state", breaker_states,
            breaker);
  cJSON_Delete(breaker);
  hub_histogram_write(&hub_metrics_payment_call, f);
  hub_histogram_write(&hub_metrics_batch, f);
  metric(f, "fleet_hub_batch_inputs_total", "counter",
         "Inputs applied in engine batches since the hub started (divided by "
         "fleet_hub_batches_total: the mean batch size).",
         (double)atomic_load(&hub_metrics_batch_inputs));
  metric(f, "fleet_hub_store_readable", "gauge",
         "1 when the figures below could be read from the store.", store != NULL);
  if (store) {
    metric_by(f, "fleet_hub_rejected_total", "counter",
              "Messages rejected (dead-lettered) by reason, over the store's life.", "reason",
              NULL, cJSON_GetObjectItem(store, "rejected"));
    metric_by(f, "fleet_hub_vehicles", "gauge", "Vehicles per state.", "state", vehicle_states,
              cJSON_GetObjectItem(store, "vehicles"));
    metric_by(f, "fleet_hub_saga_steps", "gauge",
              "Saga steps not finished, per status (calling, retry: waiting; failed).", "status",
              step_states, cJSON_GetObjectItem(store, "sagas"));
    const cJSON *sagas = cJSON_GetObjectItem(store, "sagas");
    metric(f, "fleet_hub_sagas_waiting", "gauge",
           "Saga steps waiting for the payment provider (calling or retry).",
           figure(sagas, "calling") + figure(sagas, "retry"));
    metric(f, "fleet_hub_devices_online", "gauge", "Devices whose presence is online.",
           figure(store, "devices_online"));
    metric(f, "fleet_hub_devices", "gauge", "Devices the hub knows.", figure(store, "devices"));
    metric(f, "fleet_hub_downlink_queued", "gauge",
           "Publishes to devices (decisions, commands) kept until the device acknowledges them.",
           figure(store, "downlink_queued"));
  }
  cJSON_Delete(store);
  if (fclose(f) != 0 || !text) {
    free(text);
    return fail(out, MHD_HTTP_INTERNAL_SERVER_ERROR, FL_ERR_NOMEM, "out of memory");
  }
  r->text = text;
  r->text_type = "text/plain; version=0.0.4; charset=utf-8";
  return MHD_HTTP_OK;
}

/* GET /v1/openapi.yaml: the API's contract (docs/openapi.yaml). */
static unsigned get_openapi(http_request *r, const void *arg, cJSON **out) {
  r->text = strdup(hub_openapi_yaml);
  r->text_type = "application/yaml; charset=utf-8";
  if (!r->text)
    return fail(out, MHD_HTTP_INTERNAL_SERVER_ERROR, FL_ERR_NOMEM, "out of memory");
  return MHD_HTTP_OK;
}

/* ---- operator commands -------------------------------------------------- */

/* Runs op on the engine; on success answers with the entity of view (whose
 * {id} is r->id) and status ok_status. */
static unsigned run_op(http_request *r, const hub_op *op, const char *name, const http_view *view,
                       unsigned ok_status, cJSON **out) {
  hub_op_result res;
  memset(&res, 0, sizeof res);
  int code = hub_engine_op(r->server->engine, op, &res, HTTP_OP_TIMEOUT_MS);
  fl_info("http op=%s id=%s result=%s%s%s%s", name, r->id, fl_errname(code),
          res.message[0] ? " message=\"" : "", res.message, res.message[0] ? "\"" : "");
  if (code != FL_OK && res.message[0])
    return fail(out, status_of(code), code, "%s", res.message);
  if (code != FL_OK)
    return fail(out, status_of(code), code, "%s %s: %s", view->noun, r->id, fl_strerror(code));
  unsigned status = view == &http_view_rental || view == &http_view_booking
                        ? get_with_steps(r, view, out)
                        : read_view(r, view, true, out);
  return status == MHD_HTTP_OK ? ok_status : status;
}

/* Who asks, for the engine's event log: the token's name, or "http". */
static void op_actor(const http_request *r, hub_op *op) {
  snprintf(op->actor, sizeof op->actor, "%s", r->who ? r->who->name : "http");
}

static unsigned post_op(http_request *r, const void *arg, cJSON **out) {
  const http_op_route *route = arg;
  hub_op op;
  memset(&op, 0, sizeof op);
  op.kind = route->kind;
  op_actor(r, &op);
  memcpy((char *)&op + route->target, r->id, strlen(r->id) + 1); /* valid id: fits */
  return run_op(r, &op, route->name, route->result, MHD_HTTP_OK, out);
}

/* Copies the string member key of body into dst (cap bytes); false when it is
 * missing, not a string, too long, or holds a control character. */
static bool body_text(const cJSON *body, const char *key, char *dst, size_t cap) {
  const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, key));
  if (!s || strlen(s) >= cap)
    return false;
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      return false;
  memcpy(dst, s, strlen(s) + 1);
  return true;
}

unsigned http__vehicle_op(const char *json, size_t len, hub_op *op, cJSON **out) {
  memset(op, 0, sizeof *op);
  op->kind = HUB_OP_VEHICLE_REGISTER;
  snprintf(op->actor, sizeof op->actor, "http");
  cJSON *body = cJSON_ParseWithLength(json ? json : "", len);
  const cJSON *rate = cJSON_GetObjectItemCaseSensitive(body, "rate_cents");
  unsigned status = MHD_HTTP_BAD_REQUEST;
  if (!cJSON_IsObject(body))
    fail(out, status, FL_ERR_INVALID, "the body must be a JSON object");
  else if (!body_text(body, "id", op->vehicle, sizeof op->vehicle) || !fl_id_valid(op->vehicle))
    fail(out, status, FL_ERR_INVALID, "id must be 1 to %d characters of A-Z a-z 0-9 . _ : -",
         FL_ID_MAX);
  else if (!body_text(body, "name", op->name, sizeof op->name))
    fail(out, status, FL_ERR_INVALID, "name must be a text of at most %d bytes", FL_TEXT_MAX);
  else if (!body_text(body, "station", op->station, sizeof op->station) ||
           !fl_id_valid(op->station))
    fail(out, status, FL_ERR_INVALID, "station must be an id (A-Z a-z 0-9 . _ : -)");
  else if (!cJSON_IsNumber(rate) || rate->valuedouble < 1 || rate->valuedouble > HTTP_RATE_MAX ||
           rate->valuedouble != (double)(int64_t)rate->valuedouble)
    fail(out, status, FL_ERR_INVALID, "rate_cents must be a whole number from 1 to %d",
         HTTP_RATE_MAX);
  else {
    op->rate_cents = (int64_t)rate->valuedouble;
    status = MHD_HTTP_OK;
  }
  cJSON_Delete(body);
  return status;
}

static unsigned post_vehicle(http_request *r, const void *arg, cJSON **out) {
  hub_op op;
  unsigned status = http__vehicle_op(r->body, r->body_len, &op, out);
  if (status != MHD_HTTP_OK)
    return status;
  op_actor(r, &op);
  memcpy(r->id_buf, op.vehicle, sizeof op.vehicle);
  r->id = r->id_buf;
  return run_op(r, &op, "register", &http_view_vehicle, MHD_HTTP_CREATED, out);
}

unsigned http__vehicle_edit_op(const char *json, size_t len, const char *vehicle, hub_op *op,
                               cJSON **out) {
  memset(op, 0, sizeof *op);
  op->kind = HUB_OP_VEHICLE_EDIT;
  snprintf(op->actor, sizeof op->actor, "http");
  snprintf(op->vehicle, sizeof op->vehicle, "%s", vehicle);
  cJSON *body = cJSON_ParseWithLength(json ? json : "", len);
  unsigned status = MHD_HTTP_BAD_REQUEST;
  const cJSON *m;
  if (!cJSON_IsObject(body)) {
    fail(out, status, FL_ERR_INVALID, "the body must be a JSON object");
    goto out;
  }
  cJSON_ArrayForEach(m, body) {
    if (strcmp(m->string, "name") == 0) {
      op->fields |= HUB_OP_FIELD_NAME;
      if (!body_text(body, "name", op->name, sizeof op->name) || !op->name[0]) {
        fail(out, status, FL_ERR_INVALID, "name must be a text of 1 to %d bytes", FL_TEXT_MAX);
        goto out;
      }
    } else if (strcmp(m->string, "station") == 0) {
      op->fields |= HUB_OP_FIELD_STATION;
      if (!body_text(body, "station", op->station, sizeof op->station) ||
          !fl_id_valid(op->station)) {
        fail(out, status, FL_ERR_INVALID, "station must be an id (A-Z a-z 0-9 . _ : -)");
        goto out;
      }
    } else if (strcmp(m->string, "rate_cents") == 0) {
      op->fields |= HUB_OP_FIELD_RATE;
      if (!cJSON_IsNumber(m) || m->valuedouble < 1 || m->valuedouble > HTTP_RATE_MAX ||
          m->valuedouble != (double)(int64_t)m->valuedouble) {
        fail(out, status, FL_ERR_INVALID, "rate_cents must be a whole number from 1 to %d",
             HTTP_RATE_MAX);
        goto out;
      }
      op->rate_cents = (int64_t)m->valuedouble;
    } else {
      fail(out, status, FL_ERR_INVALID, "unknown member %.64s: a vehicle's name, station and "
           "rate_cents may be changed", m->string);
      goto out;
    }
  }
  if (op->fields == 0)
    fail(out, status, FL_ERR_INVALID, "nothing to change: give name, station or rate_cents");
  else
    status = MHD_HTTP_OK;
out:
  cJSON_Delete(body);
  return status;
}

static unsigned patch_vehicle(http_request *r, const void *arg, cJSON **out) {
  hub_op op;
  unsigned status = http__vehicle_edit_op(r->body, r->body_len, r->id, &op, out);
  if (status != MHD_HTTP_OK)
    return status;
  op_actor(r, &op);
  return run_op(r, &op, "edit", &http_view_vehicle, MHD_HTTP_OK, out);
}

unsigned http__repair_open_op(const char *json, size_t len, const char *vehicle, hub_op *op,
                              cJSON **out) {
  memset(op, 0, sizeof *op);
  op->kind = HUB_OP_REPAIR_OPEN;
  snprintf(op->actor, sizeof op->actor, "http");
  snprintf(op->vehicle, sizeof op->vehicle, "%s", vehicle);
  cJSON *body = cJSON_ParseWithLength(json ? json : "", len);
  unsigned status = MHD_HTTP_BAD_REQUEST;
  if (!cJSON_IsObject(body))
    fail(out, status, FL_ERR_INVALID, "the body must be a JSON object");
  else if (cJSON_GetArraySize(body) != 1 || !body_text(body, "text", op->text, sizeof op->text) ||
           !op->text[0])
    fail(out, status, FL_ERR_INVALID,
         "the body must be {\"text\": the damage, 1 to %d bytes without control characters}",
         FL_TEXT_MAX);
  else
    status = MHD_HTTP_OK;
  cJSON_Delete(body);
  return status;
}

/* POST /v1/vehicles/{id}/repairs: answers 201 with the repair the engine
 * opened (its id is the second word of the engine's message). */
static unsigned post_repair(http_request *r, const void *arg, cJSON **out) {
  hub_op op;
  unsigned status = http__repair_open_op(r->body, r->body_len, r->id, &op, out);
  if (status != MHD_HTTP_OK)
    return status;
  op_actor(r, &op);
  hub_op_result res;
  memset(&res, 0, sizeof res);
  int code = hub_engine_op(r->server->engine, &op, &res, HTTP_OP_TIMEOUT_MS);
  fl_info("http op=repair-open id=%s result=%s message=\"%s\"", r->id, fl_errname(code),
          res.message);
  if (code != FL_OK)
    return fail(out, status_of(code), code, "%s", res.message[0] ? res.message : fl_strerror(code));
  char repair[FL_ID_MAX + 1] = "";
  if (sscanf(res.message, "repair %64s", repair) != 1 || !fl_id_valid(repair)) {
    *out = cJSON_CreateObject();
    cJSON_AddStringToObject(*out, "message", res.message);
    return MHD_HTTP_CREATED;
  }
  memcpy(r->id_buf, repair, sizeof repair);
  r->id = r->id_buf;
  status = read_view(r, &http_view_repair, true, out);
  return status == MHD_HTTP_OK ? MHD_HTTP_CREATED : status;
}

/* POST /v1/read-models/check | /rebuild; arg points at the op kind. Answers
 * {"message": ...}: 200 when equal (or rebuilt), 409 when the read models
 * differ from a rebuild. */
static unsigned post_readmodel(http_request *r, const void *arg, cJSON **out) {
  hub_op op;
  memset(&op, 0, sizeof op);
  op.kind = *(const hub_op_kind *)arg;
  op_actor(r, &op);
  hub_op_result res;
  int code = hub_engine_op(r->server->engine, &op, &res, HTTP_OP_TIMEOUT_MS);
  if (code != FL_OK && code != FL_ERR_CONFLICT)
    return fail(out, status_of(code), code, "%s", res.message);
  *out = cJSON_CreateObject();
  cJSON_AddStringToObject(*out, "message", res.message);
  cJSON_AddBoolToObject(*out, "equal", code == FL_OK);
  return code == FL_OK ? MHD_HTTP_OK : MHD_HTTP_CONFLICT;
}

static const hub_op_kind op_readmodel_check = HUB_OP_READMODEL_CHECK;
static const hub_op_kind op_readmodel_rebuild = HUB_OP_READMODEL_REBUILD;

/* ---- routing ------------------------------------------------------------ */

#define OP_ROUTE(kind, name, field, view)                                                          \
  { kind, name, offsetof(hub_op, field), &view }
static const http_op_route op_retire =
    OP_ROUTE(HUB_OP_VEHICLE_RETIRE, "retire", vehicle, http_view_vehicle);
static const http_op_route op_repair_start =
    OP_ROUTE(HUB_OP_REPAIR_START, "repair-start", repair, http_view_repair);
static const http_op_route op_repair_complete =
    OP_ROUTE(HUB_OP_REPAIR_COMPLETE, "repair-complete", repair, http_view_repair);
static const http_op_route op_retry =
    OP_ROUTE(HUB_OP_SAGA_RETRY, "retry", rental, http_view_rental);
static const http_op_route op_compensate =
    OP_ROUTE(HUB_OP_SAGA_COMPENSATE, "compensate", rental, http_view_rental);
static const http_op_route op_booking_cancel =
    OP_ROUTE(HUB_OP_BOOKING_CANCEL, "booking-cancel", booking, http_view_booking);

/* A NULL handler answers by itself (arg: an http_raw_route): page, files, stream. */

static const http_route routes[] = {
    {"GET", "/", NULL, &http_page_route, HTTP_OPEN},
    {"GET", "/console/*", NULL, &http_page_route, HTTP_OPEN},
    {"GET", "/v1/events", NULL, &http_events_route, HTTP_VIEWER},
    {"GET", "/v1/health", get_health, NULL, HTTP_OPEN},
    {"GET", "/v1/openapi.yaml", get_openapi, NULL, HTTP_OPEN},
    {"GET", "/metrics", get_metrics, NULL, HTTP_METRICS},
    {"GET", "/v1/vehicles", get_list, &http_view_vehicles, HTTP_VIEWER},
    {"POST", "/v1/vehicles", post_vehicle, NULL, HTTP_OPERATOR},
    {"GET", "/v1/vehicles/*", get_one, &http_view_vehicle, HTTP_VIEWER},
    {"PATCH", "/v1/vehicles/*", patch_vehicle, NULL, HTTP_OPERATOR},
    {"POST", "/v1/vehicles/*/retire", post_op, &op_retire, HTTP_OPERATOR},
    {"POST", "/v1/vehicles/*/repairs", post_repair, NULL, HTTP_MECHANIC},
    {"GET", "/v1/vehicles/*/history", get_list, &http_view_vehicle_history, HTTP_VIEWER},
    {"GET", "/v1/rentals", get_list, &http_view_rentals, HTTP_VIEWER},
    {"GET", "/v1/rentals/*", get_with_steps, &http_view_rental, HTTP_VIEWER},
    {"POST", "/v1/rentals/*/retry", post_op, &op_retry, HTTP_OPERATOR},
    {"POST", "/v1/rentals/*/compensate", post_op, &op_compensate, HTTP_OPERATOR},
    {"GET", "/v1/customers/*", get_customer, NULL, HTTP_VIEWER},
    {"GET", "/v1/bookings", get_list, &http_view_bookings, HTTP_VIEWER},
    {"GET", "/v1/bookings/*", get_with_steps, &http_view_booking, HTTP_VIEWER},
    {"POST", "/v1/bookings/*/cancel", post_op, &op_booking_cancel, HTTP_OPERATOR},
    {"GET", "/v1/sagas", get_list, &http_view_sagas, HTTP_VIEWER},
    {"GET", "/v1/repairs", get_list, &http_view_repairs, HTTP_VIEWER},
    {"GET", "/v1/repairs/*", get_one, &http_view_repair, HTTP_VIEWER},
    {"POST", "/v1/repairs/*/start", post_op, &op_repair_start, HTTP_MECHANIC},
    {"POST", "/v1/repairs/*/complete", post_op, &op_repair_complete, HTTP_MECHANIC},
    {"GET", "/v1/dead-letters", get_list, &http_view_dead_letters, HTTP_VIEWER},
    {"GET", "/v1/devices", get_list, &http_view_devices, HTTP_VIEWER},
    {"GET", "/v1/counters", get_counters, NULL, HTTP_VIEWER},
    {"POST", "/v1/read-models/check", post_readmodel, &op_readmodel_check, HTTP_OPERATOR},
    {"POST", "/v1/read-models/rebuild", post_readmodel, &op_readmodel_rebuild, HTTP_OPERATOR},
};

/* Matches url against pattern; a "*" segment is copied into id (cap bytes),
 * or id is left empty when the segment is too long for it. */
static bool path_match(const char *pattern, const char *url, char *id, size_t cap) {
  while (*pattern && *url) {
    if (*pattern == '*') {
      size_t n = strcspn(url, "/");
      if (n == 0)
        return false;
      size_t kept = n < cap ? n : 0; /* too long: an empty id, refused as a bad id */
      memcpy(id, url, kept);
      id[kept] = '\0';
      url += n;
      pattern++;
    } else if (*pattern++ != *url++) {
      return false;
    }
  }
  return *pattern == '\0' && *url == '\0';
}

/* Finds the route for method and url; sets *status to 404 or 405 if none. */
static const http_route *route_find(const char *method, const char *url, http_request *r,
                                    unsigned *status) {
  *status = MHD_HTTP_NOT_FOUND;
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    if (!path_match(routes[i].pattern, url, r->id_buf, sizeof r->id_buf))
      continue;
    if (strcmp(routes[i].method, method) == 0) {
      r->id = strchr(routes[i].pattern, '*') ? r->id_buf : NULL;
      return &routes[i];
    }
    *status = MHD_HTTP_METHOD_NOT_ALLOWED;
  }
  return NULL;
}

static bool content_is_json(struct MHD_Connection *c) {
  const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  return type && strncasecmp(type, "application/json", 16) == 0 &&
         (type[16] == '\0' || type[16] == ';');
}

/* The role a route needs from the caller, HUB_ROLE_NONE when it is open. */
static hub_role route_role(const hub_http *h, const http_route *route) {
  switch (route->access) {
  case HTTP_OPEN: return HUB_ROLE_NONE;
  case HTTP_METRICS: return h->cfg.http_metrics_open ? HUB_ROLE_NONE : HUB_ROLE_VIEWER;
  case HTTP_VIEWER: return HUB_ROLE_VIEWER;
  case HTTP_MECHANIC: return HUB_ROLE_MECHANIC;
  default: return HUB_ROLE_OPERATOR;
  }
}

/* Checks the request's "Authorization: Bearer TOKEN" against the tokens
 * file when there is one. Returns MHD_HTTP_OK (r->who set when a token was
 * given), 401 (no token, or one the hub does not know) or 403 (its role is
 * below what the route needs), with *out set. */
static unsigned authorize(http_request *r, const http_route *route, cJSON **out) {
  const hub_http *h = r->server;
  if (h->n_tokens == 0)
    return MHD_HTTP_OK;
  hub_role need = route_role(h, route);
  const char *auth =
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
    const char *token = auth + 7;
    while (*token == ' ')
      token++;
    r->who = hub_tokens_find(h->tokens, h->n_tokens, token);
  }
  if (need == HUB_ROLE_NONE)
    return MHD_HTTP_OK;
  if (!r->who) {
    r->challenge = true;
    fail(out, MHD_HTTP_UNAUTHORIZED, FL_ERR_INVALID, "%s",
         auth ? "the token is not one the hub knows" : "this needs Authorization: Bearer TOKEN");
    cJSON_ReplaceItemInObject(*out, "code", cJSON_CreateString("unauthorized"));
    return MHD_HTTP_UNAUTHORIZED;
  }
  if (r->who->role < need) {
    fail(out, MHD_HTTP_FORBIDDEN, FL_ERR_INVALID, "%s (%s) may not do this: it needs the %s role",
         r->who->name, hub_role_name(r->who->role), hub_role_name(need));
    cJSON_ReplaceItemInObject(*out, "code", cJSON_CreateString("forbidden"));
    return MHD_HTTP_FORBIDDEN;
  }
  return MHD_HTTP_OK;
}

static enum MHD_Result dispatch(http_request *r, const char *method, const char *url) {
  cJSON *out = NULL;
  unsigned status;
  const http_route *route = route_find(method, url, r, &status);
  if (!route)
    fail(&out, status, status == MHD_HTTP_NOT_FOUND ? FL_ERR_NOT_FOUND : FL_ERR_INVALID,
         status == MHD_HTTP_NOT_FOUND ? "no such endpoint: %s" : "method not allowed on %s", url);
  else if ((status = authorize(r, route, &out)) != MHD_HTTP_OK)
    ; /* 401 or 403 */
  else if (!route->handler)
    return ((const http_raw_route *)route->arg)->serve(r->conn, url, r->server->events);
  else if (r->id && !fl_id_valid(r->id))
    status = fail(&out, MHD_HTTP_BAD_REQUEST, FL_ERR_INVALID, "bad id in the path");
  else if (strcmp(method, "GET") != 0 && !content_is_json(r->conn))
    status = fail(&out, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, FL_ERR_INVALID,
                  "%s needs Content-Type: application/json", method);
  else if (r->body_too_large)
    status = fail(&out, MHD_HTTP_CONTENT_TOO_LARGE, FL_ERR_TOO_LARGE,
                  "the body is larger than %d bytes", HTTP_BODY_MAX);
  else
    status = route->handler(r, route->arg, &out);
  if (r->text) {
    char *text = r->text;
    r->text = NULL;
    return send_body(r->conn, r, status, text, r->text_type);
  }
  return send_json(r->conn, r, status, out);
}

/* MHD calls this first with the headers, then once per piece of the body,
 * then once more with *upload_size 0: that last call answers. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  http_request *r = *con_cls;
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r)
      return MHD_NO;
    r->server = cls;
    r->conn = conn;
    *con_cls = r;
    const char *len =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (len && strtoull(len, NULL, 10) > HTTP_BODY_MAX) {
      cJSON *out = NULL;
      fail(&out, MHD_HTTP_CONTENT_TOO_LARGE, FL_ERR_TOO_LARGE, "the body is larger than %d bytes",
           HTTP_BODY_MAX);
      return send_json(conn, NULL, MHD_HTTP_CONTENT_TOO_LARGE, out);
    }
    return MHD_YES;
  }
  if (*upload_size > 0) {
    if (r->body_too_large || r->body_len + *upload_size > HTTP_BODY_MAX) {
      r->body_too_large = true; /* drain the rest, answer 413 at the end */
    } else {
      char *grown = realloc(r->body, r->body_len + *upload_size + 1);
      if (!grown)
        return MHD_NO;
      memcpy(grown + r->body_len, upload, *upload_size);
      r->body = grown;
      r->body_len += *upload_size;
      r->body[r->body_len] = '\0';
    }
    *upload_size = 0;
    return MHD_YES;
  }
  return dispatch(r, method, url);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
  http_request *r = *con_cls;
  if (r) {
    free(r->body);
    free(r->text);
  }
  free(r);
  *con_cls = NULL;
}

/* ---- server ------------------------------------------------------------- */

/* Reads the whole file at path into a new NUL-terminated text (free it), or NULL. */
static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *text = NULL;
  size_t len = 0, cap = 0, n;
  char buf[4096];
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    if (len + n + 1 > cap) {
      cap = (len + n + 1) * 2;
      char *grown = realloc(text, cap);
      if (!grown) {
        free(text);
        fclose(f);
        return NULL;
      }
      text = grown;
    }
    memcpy(text + len, buf, n);
    len += n;
  }
  fclose(f);
  if (!text)
    text = calloc(1, 1);
  else
    text[len] = '\0';
  return text;
}

/* Frees what h holds besides the daemon. */
static void server_free(hub_http *h) {
  http_events_free(h->events);
  http_reader_close(&h->reader);
  free(h->tokens);
  free(h->tls_cert);
  if (h->tls_key)
    memset(h->tls_key, 0, strlen(h->tls_key));
  free(h->tls_key);
  free(h);
}

/* Loads the tokens and the TLS certificate the configuration names into h.
 * Returns FL_OK, or FL_ERR_CONFIG (logged). */
static int server_security(hub_http *h, const hub_config *cfg) {
  char err[512];
  if (cfg->http_tokens_file[0]) {
    int rc = hub_tokens_load(cfg->http_tokens_file, &h->tokens, &h->n_tokens, err, sizeof err);
    if (rc != FL_OK) {
      fl_error("http: %s", err);
      return FL_ERR_CONFIG;
    }
    if (h->n_tokens == 0) {
      fl_error("http: tokens file %s holds no token: add one (fleetctl token new ROLE NAME) or "
               "leave [http] tokens_file unset",
               cfg->http_tokens_file);
      return FL_ERR_CONFIG;
    }
    fl_info("http: %zu tokens from %s; requests need Authorization: Bearer TOKEN", h->n_tokens,
            cfg->http_tokens_file);
  } else {
    fl_warn("http: no [http] tokens_file: the operator API on %s is open to anyone who can reach "
            "it (keep it on loopback; docs/operations.md, Operator API access)",
            cfg->http_bind);
  }
  if (!cfg->http_cert_file[0])
    return FL_OK;
  if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
    fl_error("http: [http] cert_file is set but this libmicrohttpd has no TLS");
    return FL_ERR_CONFIG;
  }
  h->tls_cert = read_text(cfg->http_cert_file);
  h->tls_key = read_text(cfg->http_key_file);
  if (!h->tls_cert || !h->tls_key) {
    fl_error("http: cannot read [http] %s %s", h->tls_cert ? "key_file" : "cert_file",
             h->tls_cert ? cfg->http_key_file : cfg->http_cert_file);
    return FL_ERR_CONFIG;
  }
  return FL_OK;
}

int hub_http_start(const hub_config *cfg, hub_engine *engine, hub_http **out) {
  *out = NULL;
  if (cfg->http_port == 0)
    return FL_OK;
  struct sockaddr_in in4;
  struct sockaddr_in6 in6;
  memset(&in4, 0, sizeof in4);
  memset(&in6, 0, sizeof in6);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
  const struct sockaddr *addr = (const struct sockaddr *)&in4;
  if (inet_pton(AF_INET, cfg->http_bind, &in4.sin_addr) == 1) {
    in4.sin_family = AF_INET;
    in4.sin_port = htons((uint16_t)cfg->http_port);
  } else if (inet_pton(AF_INET6, cfg->http_bind, &in6.sin6_addr) == 1) {
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons((uint16_t)cfg->http_port);
    addr = (const struct sockaddr *)&in6;
    flags |= MHD_USE_IPv6;
  } else {
    fl_error("http bind '%s': not a numeric IPv4 or IPv6 address", cfg->http_bind);
    return FL_ERR_CONFIG;
  }
  hub_http *h = calloc(1, sizeof *h);
  if (!h)
    return FL_ERR_NOMEM;
  h->engine = engine;
  h->cfg = *cfg;
  int rc = server_security(h, cfg);
  if (rc != FL_OK) {
    server_free(h);
    return rc;
  }
  if (strcmp(cfg->store_backend, "postgresql") == 0) {
    rc = http_reader_pg(cfg->store_url, &h->reader);
  } else {
    char path[300];
    snprintf(path, sizeof path, "%s/hub.db", cfg->state_dir);
    rc = http_reader_sqlite(path, &h->reader);
  }
  if (rc != FL_OK) {
    h->reader.ops = NULL;
    server_free(h);
    return rc;
  }
  if (http_events_start(cfg, &h->events) != FL_OK)
    fl_warn("http: no live feed for the console (GET /v1/events answers 503)");
  if (h->tls_cert)
    h->daemon = MHD_start_daemon(
        flags | MHD_USE_TLS, (uint16_t)cfg->http_port, NULL, NULL, on_request, h,
        MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_HTTPS_MEM_CERT, h->tls_cert, MHD_OPTION_HTTPS_MEM_KEY, h->tls_key,
        MHD_OPTION_END);
  else
    h->daemon = MHD_start_daemon(flags, (uint16_t)cfg->http_port, NULL, NULL, on_request, h,
                                 MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_NOTIFY_COMPLETED,
                                 on_completed, h, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
  if (!h->daemon) {
    fl_error("http: cannot serve on %s port %d%s", cfg->http_bind, cfg->http_port,
             h->tls_cert ? " (or the certificate and key are not a PEM pair)" : "");
    http_events_close(h->events);
    server_free(h);
    return FL_ERR_IO;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
  h->port = info && info->port ? info->port : cfg->http_port;
  fl_info("http operator API on %s://%s port %d", h->tls_cert ? "https" : "http", cfg->http_bind,
          h->port);
  *out = h;
  return FL_OK;
}

int hub_http_port(const hub_http *h) { return h ? h->port : 0; }

void hub_http_stop(hub_http *h) {
  if (!h)
    return;
  http_events_close(h->events); /* ends the streams, or MHD_stop_daemon would wait for them */
  MHD_stop_daemon(h->daemon);
  server_free(h);
}
