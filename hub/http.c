/* The operator HTTP API's server: libmicrohttpd with a thread per
 * connection, the route table and the dispatch of a request to its handler:
 * reads of the store through a reader (http_reads.c; http_internal.h: SQLite
 * or PostgreSQL, a read-only connection per request), writes as operator
 * commands through hub_engine_op() (http_ops.c), GET /metrics
 * (http_metrics.c); who may ask is http_auth.c. See http.h for the endpoints. */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/proto.h"
#include "http_cluster.h"
#include "http_internal.h"

#define HTTP_BODY_MAX (16 * 1024)

typedef struct http_route {
  const char *method;
  const char *pattern; /* "*" matches one path segment: the {id} */
  http_handler handler;
  const void *arg;
  http_access access;
} http_route;

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

unsigned http__fail(cJSON **out, unsigned status, int code, const char *fmt, ...) {
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

/* ---- the contract -------------------------------------------------------- */

/* GET /v1/openapi.yaml: the API's contract (docs/openapi.yaml). */
static unsigned get_openapi(http_request *r, const void *arg, cJSON **out) {
  r->text = strdup(hub_openapi_yaml);
  r->text_type = "application/yaml; charset=utf-8";
  if (!r->text)
    return http__fail(out, MHD_HTTP_INTERNAL_SERVER_ERROR, FL_ERR_NOMEM, "out of memory");
  return MHD_HTTP_OK;
}

/* ---- routing ------------------------------------------------------------ */

static const hub_op_kind op_readmodel_check = HUB_OP_READMODEL_CHECK;
static const hub_op_kind op_readmodel_rebuild = HUB_OP_READMODEL_REBUILD;

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
    {"GET", "/metrics", http__get_metrics, NULL, HTTP_METRICS},
    {"GET", "/v1/vehicles", http__get_list, &http_view_vehicles, HTTP_VIEWER},
    {"POST", "/v1/vehicles", http__post_vehicle, NULL, HTTP_OPERATOR},
    {"GET", "/v1/vehicles/*", http__get_one, &http_view_vehicle, HTTP_VIEWER},
    {"PATCH", "/v1/vehicles/*", http__patch_vehicle, NULL, HTTP_OPERATOR},
    {"POST", "/v1/vehicles/*/retire", http__post_op, &op_retire, HTTP_OPERATOR},
    {"POST", "/v1/vehicles/*/repairs", http__post_repair, NULL, HTTP_MECHANIC},
    {"GET", "/v1/vehicles/*/history", http__get_list, &http_view_vehicle_history, HTTP_VIEWER},
    {"GET", "/v1/stations", http__get_list, &http_view_stations, HTTP_VIEWER},
    {"GET", "/v1/rentals", http__get_list, &http_view_rentals, HTTP_VIEWER},
    {"GET", "/v1/rentals/*", http__get_with_steps, &http_view_rental, HTTP_VIEWER},
    {"POST", "/v1/rentals/*/retry", http__post_op, &op_retry, HTTP_OPERATOR},
    {"POST", "/v1/rentals/*/compensate", http__post_op, &op_compensate, HTTP_OPERATOR},
    {"GET", "/v1/customers/*", http__get_customer, NULL, HTTP_VIEWER},
    {"GET", "/v1/bookings", http__get_list, &http_view_bookings, HTTP_VIEWER},
    {"GET", "/v1/bookings/*", http__get_with_steps, &http_view_booking, HTTP_VIEWER},
    {"POST", "/v1/bookings/*/cancel", http__post_op, &op_booking_cancel, HTTP_OPERATOR},
    {"GET", "/v1/sagas", http__get_list, &http_view_sagas, HTTP_VIEWER},
    {"GET", "/v1/repairs", http__get_list, &http_view_repairs, HTTP_VIEWER},
    {"GET", "/v1/repairs/*", http__get_one, &http_view_repair, HTTP_VIEWER},
    {"POST", "/v1/repairs/*/start", http__post_op, &op_repair_start, HTTP_MECHANIC},
    {"POST", "/v1/repairs/*/complete", http__post_op, &op_repair_complete, HTTP_MECHANIC},
    {"GET", "/v1/dead-letters", http__get_list, &http_view_dead_letters, HTTP_VIEWER},
    {"GET", "/v1/devices", http__get_list, &http_view_devices, HTTP_VIEWER},
    {"GET", "/v1/counters", http__get_counters, NULL, HTTP_VIEWER},
    {"POST", "/v1/read-models/check", http__post_readmodel, &op_readmodel_check, HTTP_OPERATOR},
    {"POST", "/v1/read-models/rebuild", http__post_readmodel, &op_readmodel_rebuild, HTTP_OPERATOR},
    {"GET", "/v1/cluster/partitions", http__get_cluster_partitions, NULL, HTTP_VIEWER},
    {"GET", "/v1/cluster/hubs", http__get_cluster_hubs, NULL, HTTP_VIEWER},
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

static enum MHD_Result dispatch(http_request *r, const char *method, const char *url) {
  cJSON *out = NULL;
  unsigned status;
  const http_route *route = route_find(method, url, r, &status);
  if (!route)
    http__fail(&out, status, status == MHD_HTTP_NOT_FOUND ? FL_ERR_NOT_FOUND : FL_ERR_INVALID,
               status == MHD_HTTP_NOT_FOUND ? "no such endpoint: %s" : "method not allowed on %s", url);
  else if ((status = http__authorize(r, route->access, &out)) != MHD_HTTP_OK)
    ; /* 401 or 403 */
  else if (!route->handler)
    return ((const http_raw_route *)route->arg)->serve(r->conn, url, r->server->events);
  else if (r->id && !fl_id_valid(r->id))
    status = http__fail(&out, MHD_HTTP_BAD_REQUEST, FL_ERR_INVALID, "bad id in the path");
  else if (strcmp(method, "GET") != 0 && !content_is_json(r->conn))
    status = http__fail(&out, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, FL_ERR_INVALID,
                        "%s needs Content-Type: application/json", method);
  else if (r->body_too_large)
    status = http__fail(&out, MHD_HTTP_CONTENT_TOO_LARGE, FL_ERR_TOO_LARGE,
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
      http__fail(&out, MHD_HTTP_CONTENT_TOO_LARGE, FL_ERR_TOO_LARGE, "the body is larger than %d bytes",
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
  int rc = http__security_load(h, cfg);
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
