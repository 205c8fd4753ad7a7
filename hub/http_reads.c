/* The operator API's reads: a view of the store by the path's {id} and the
 * query string (checked, limits, paging cursors), one entity or one page of a
 * list; a rental or booking with its saga steps; a customer; the counters.
 * The views' SQL and the readers are http_query.c and http_reader_*.c. */
#include <ctype.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/proto.h"
#include "http_internal.h"

#define HTTP_LIMIT_DEFAULT 100
#define HTTP_LIMIT_MAX 1000

/* ---- reads -------------------------------------------------------------- */

static unsigned open_store(http_request *r, http_read *db, cJSON **out) {
  if (http_read_open(&r->server->reader, db))
    return MHD_HTTP_OK;
  return http__fail(out, MHD_HTTP_SERVICE_UNAVAILABLE, FL_ERR_UNAVAILABLE,
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
        return http__fail(out, MHD_HTTP_BAD_REQUEST, FL_ERR_INVALID,
                          "limit must be a number from 1 to %d", HTTP_LIMIT_MAX);
      a->limit = n;
      snprintf(a->limit_text, sizeof a->limit_text, "%ld", n + 1); /* one more: is there a next page? */
      a->values[i] = a->limit_text;
    } else if (!v) {
      a->values[i] = NULL;
    } else if (strcmp(name, "state") == 0 ? !state_name_valid(v) : !fl_id_valid(v)) {
      return http__fail(out, MHD_HTTP_BAD_REQUEST, FL_ERR_INVALID, "bad value for %s", name);
    } else {
      a->values[i] = v;
    }
  }
  const char *cursor = a->limit ? arg(ctx, "cursor") : NULL;
  if (cursor && !cursor_decode(view, cursor, a))
    return http__fail(out, MHD_HTTP_BAD_REQUEST, FL_ERR_INVALID,
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
    return http__fail(out, MHD_HTTP_INTERNAL_SERVER_ERROR, FL_ERR_DB, "reading the store failed");
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
  return http__fail(out, MHD_HTTP_NOT_FOUND, FL_ERR_NOT_FOUND, "no %s %s", view->noun, r->id);
}

unsigned http__read_view(http_request *r, const http_view *view, bool single, cJSON **out) {
  http_read db = {0};
  unsigned status = open_store(r, &db, out);
  if (status == MHD_HTTP_OK)
    status = query_view(r, &db, view, single, out);
  http_read_close(&db);
  return status;
}

unsigned http__get_list(http_request *r, const void *view, cJSON **out) {
  return http__read_view(r, view, false, out);
}

unsigned http__get_one(http_request *r, const void *view, cJSON **out) {
  return http__read_view(r, view, true, out);
}

/* A rental or a booking (arg: its view), with its saga steps. */
unsigned http__get_with_steps(http_request *r, const void *view, cJSON **out) {
  http_read db = {0};
  unsigned status = open_store(r, &db, out);
  if (status == MHD_HTTP_OK)
    status = query_view(r, &db, view, true, out);
  if (status == MHD_HTTP_OK &&
      !http_query_attach(*out, "saga_steps", &db, &http_view_saga_steps, r->id)) {
    cJSON_Delete(*out);
    status = http__fail(out, MHD_HTTP_INTERNAL_SERVER_ERROR, FL_ERR_DB, "reading the store failed");
  }
  http_read_close(&db);
  return status;
}

unsigned http__get_customer(http_request *r, const void *arg, cJSON **out) {
  http_read db = {0};
  unsigned status = open_store(r, &db, out);
  if (status == MHD_HTTP_OK) {
    int err;
    *out = http_query_customer(&db, r->id, &r->server->cfg, fl_now_ms(), &err);
    if (err == FL_ERR_NOT_FOUND)
      status = http__fail(out, MHD_HTTP_NOT_FOUND, err, "no customer %s", r->id);
    else if (err != FL_OK)
      status = http__fail(out, MHD_HTTP_INTERNAL_SERVER_ERROR, err, "reading the store failed");
  }
  http_read_close(&db);
  return status;
}

/* The counters table as one object: {"name": value, ...}. */
unsigned http__get_counters(http_request *r, const void *arg, cJSON **out) {
  cJSON *rows = NULL;
  unsigned status = http__read_view(r, &http_view_counters, false, &rows);
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
