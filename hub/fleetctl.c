/* fleetctl: the operator command line, a small client of the hub's HTTP API
 * (hub/http.h). Every command is one HTTP request described by a row of the
 * command table; the answer is printed as aligned text, or as the hub's raw
 * JSON with --json. Exit status: 0 on success, 2 on a usage error, 1 on any
 * other error; with --json every error is a JSON object on stdout,
 * {"error": message, "code": token}: the hub's own, or one of fleetctl's
 * (code "usage", "unreachable", "bad_answer").
 *
 * With tokens configured on the hub, --token TOKEN (or $FLEET_TOKEN) is sent
 * as "Authorization: Bearer TOKEN"; `fleetctl token new ROLE NAME` makes a
 * token without asking the hub. A list prints one page; when more rows
 * follow, the cursor of the next page goes to stderr (--cursor takes it). */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fleet/cli.h"
#include "fleetctl_cluster.h"
#include "fleetctl_creds.h"
#include "fleetctl_watch.h"
#include "token.h"

#define CTL_DEFAULT_HUB "http://127.0.0.1:8080"
#define CTL_MAX_ARGS 4
#define CTL_MAX_RESPONSE (16u << 20)

/* The --options a command may take; each takes a value. */
static const char *const option_names[] = {"state",   "customer", "vehicle", "name",  "station",
                                           "rate",    "limit",    "status",  "cursor"};
#define N_OPTIONS (sizeof option_names / sizeof option_names[0])

typedef struct ctl {
  const char *hub; /* base URL, without a trailing slash */
  const char *token;  /* --token or $FLEET_TOKEN: the bearer token, or NULL */
  const char *cacert; /* --cacert: the CA that signed an https hub's certificate */
  char next_cursor[512]; /* the answer's X-Next-Cursor */
  bool json;
  const char *options[N_OPTIONS]; /* values, NULL when not given */
  bool help;                      /* --help: print the commands */
  const char *args[CTL_MAX_ARGS]; /* positional: args[0] is the command */
  int nargs;
  CURL *curl;
} ctl;

static bool json_errors; /* --json: errors go to stdout as JSON */

/* Reports an error: "fleetctl: message" on stderr, or with --json
 * {"error": message, "code": code} on stdout. Returns status. */
__attribute__((format(printf, 3, 4))) static int fail(int status, const char *code,
                                                      const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (!json_errors) {
    fprintf(stderr, "fleetctl: %s\n", msg);
    if (status == FL_CLI_USAGE)
      fprintf(stderr, "Try 'fleetctl --help' for more information.\n");
    return status;
  }
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "error", msg);
  cJSON_AddStringToObject(j, "code", code);
  char *text = cJSON_PrintUnformatted(j);
  printf("%s\n", text ? text : "{\"error\":\"out of memory\",\"code\":\"nomem\"}");
  cJSON_free(text);
  cJSON_Delete(j);
  return status;
}

/* ---- printing ----------------------------------------------------------- */

/* Tables name their columns by JSON key; the title is the key in capitals
 * without its unit suffix, and the unit decides the format: *_cents as
 * money, *_ms as UTC time (charged_cents -> CHARGED 12.00). */
static const char *const vehicle_cols[] = {"id",     "name",       "station", "state",
                                           "rental", "rate_cents", NULL};
static const char *const rental_cols[] = {
    "id",        "vehicle",    "customer", "state", "charged_cents", "refunded_cents",
    "fee_cents", "created_ms", "reason",   NULL};
static const char *const repair_cols[] = {"id",   "vehicle",   "state", "severity",
                                          "dtcs", "opened_ms", "text",  NULL};
static const char *const saga_list_cols[] = {"rental",   "step",       "status",     "amount_cents",
                                             "attempts", "last_error", "updated_ms", NULL};
static const char *const dead_letter_cols[] = {"id",    "received_ms", "topic",
                                               "error", "detail",      NULL};
static const char *const device_cols[] = {
    "id", "role", "online", "boot", "up_seq", "down_seq", "down_applied", "last_seen_ms", NULL};
static const char *const saga_cols[] = {
    "step", "status", "amount_cents", "attempts", "provider_ref", "last_error", NULL};
static const char *const booking_cols[] = {"id", "vehicle", "start_ms", "end_ms", NULL};
static const char *const booking_list_cols[] = {
    "id", "vehicle", "customer", "state", "start_ms", "end_ms", "charged_cents",
    "refunded_cents", "reason", NULL};

/* Nested lists of an entity and the columns they are shown with. */
static const struct {
  const char *key;
  const char *const *cols;
} nested_tables[] = {
    {"saga_steps", saga_cols}, {"open_rentals", rental_cols}, {"held_bookings", booking_cols}};

static bool has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n > k && strcmp(s + n - k, suffix) == 0;
}

/* Writes key without its unit suffix into buf, in capitals when upper:
 * the value is shown in the unit's format (cell()), so the suffix would
 * name a unit the text no longer has ("rate_cents" -> "rate" or "RATE"). */
static const char *label(const char *key, bool upper, char *buf, size_t cap) {
  size_t n = strlen(key);
  if (has_suffix(key, "_cents"))
    n -= 6;
  if (has_suffix(key, "_ms"))
    n -= 3;
  size_t i = 0;
  for (; i < n && i + 1 < cap; i++)
    buf[i] = upper ? (char)toupper((unsigned char)key[i]) : key[i];
  buf[i] = '\0';
  return buf;
}

/* Writes the column title of key into buf: "charged_cents" -> "CHARGED". */
static const char *title(const char *key, char *buf, size_t cap) {
  return label(key, true, buf, cap);
}

/* Formats member key of obj into buf (cap bytes) as its unit says; a missing
 * or null value is "-". */
static const char *cell(const cJSON *obj, const char *key, char *buf, size_t cap) {
  const cJSON *v = cJSON_GetObjectItem(obj, key);
  if (cJSON_IsString(v))
    return v->valuestring;
  if (cJSON_IsBool(v))
    return cJSON_IsTrue(v) ? "true" : "false";
  if (!cJSON_IsNumber(v))
    return "-";
  double d = v->valuedouble;
  time_t t = (time_t)(d / 1000);
  struct tm tm;
  if (has_suffix(key, "_cents"))
    snprintf(buf, cap, "%s%.2f", d < 0 ? "-" : "", (d < 0 ? -d : d) / 100);
  else if (has_suffix(key, "_ms") && gmtime_r(&t, &tm))
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
  else if (d == (double)(long long)d)
    snprintf(buf, cap, "%lld", (long long)d);
  else
    snprintf(buf, cap, "%g", d);
  return buf;
}

/* Prints one line of a table: texts[c] padded to width[c], two spaces
 * between columns, no padding after the last. */
static void print_line(const char *const *texts, const int *width, int ncols) {
  for (int c = 0; c < ncols; c++)
    printf("%-*s%s", c + 1 < ncols ? width[c] : 0, texts[c], c + 1 < ncols ? "  " : "\n");
}

#define MAX_COLS 12
#define CELL_MAX 64

/* Prints rows (an array of objects) as a table of the columns cols (a
 * NULL-terminated list of keys), each as wide as its widest cell. */
static void print_table(const cJSON *rows, const char *const *cols) {
  char bufs[MAX_COLS][CELL_MAX], scratch[CELL_MAX];
  const char *texts[MAX_COLS];
  int width[MAX_COLS], n = 0;
  for (; n < MAX_COLS && cols[n]; n++) {
    texts[n] = title(cols[n], bufs[n], CELL_MAX);
    width[n] = (int)strlen(texts[n]);
  }
  const cJSON *row;
  cJSON_ArrayForEach(row, rows) {
    for (int c = 0; c < n; c++) {
      int len = (int)strlen(cell(row, cols[c], scratch, sizeof scratch));
      if (len > width[c])
        width[c] = len;
    }
  }
  print_line(texts, width, n);
  cJSON_ArrayForEach(row, rows) {
    for (int c = 0; c < n; c++)
      texts[c] = cell(row, cols[c], bufs[c], CELL_MAX);
    print_line(texts, width, n);
  }
}

/* Prints an object's scalar members as "key  value" lines, then its known
 * nested lists as tables. */
static void print_fields(const cJSON *obj) {
  char buf[CELL_MAX], name[CELL_MAX];
  int width = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, obj) {
    int n = (int)strlen(label(m->string, false, name, sizeof name));
    if (n > width)
      width = n;
  }
  cJSON_ArrayForEach(m, obj) {
    if (!cJSON_IsArray(m) && !cJSON_IsObject(m))
      printf("%-*s  %s\n", width, label(m->string, false, name, sizeof name),
             cell(obj, m->string, buf, sizeof buf));
  }
  for (size_t i = 0; i < sizeof nested_tables / sizeof nested_tables[0]; i++) {
    const cJSON *rows = cJSON_GetObjectItem(obj, nested_tables[i].key);
    if (!cJSON_IsArray(rows))
      continue;
    printf("\n%s:\n", nested_tables[i].key);
    print_table(rows, nested_tables[i].cols);
  }
}

/* ---- the hub's API ------------------------------------------------------ */

typedef struct response {
  char *data;
  size_t len;
} response;

static size_t on_data(char *ptr, size_t size, size_t n, void *user) {
  response *r = user;
  size_t add = size * n;
  if (r->len + add > CTL_MAX_RESPONSE)
    return 0;
  char *grown = realloc(r->data, r->len + add + 1);
  if (!grown)
    return 0;
  memcpy(grown + r->len, ptr, add);
  r->data = grown;
  r->len += add;
  r->data[r->len] = '\0';
  return add;
}

/* Keeps the X-Next-Cursor header of an answer in the ctl (user). */
static size_t on_header(char *line, size_t size, size_t n, void *user) {
  ctl *c = user;
  size_t len = size * n;
  static const char name[] = "x-next-cursor:";
  if (len > sizeof name - 1 && strncasecmp(line, name, sizeof name - 1) == 0) {
    const char *v = line + sizeof name - 1;
    size_t vlen = len - (sizeof name - 1);
    while (vlen && (*v == ' ' || *v == '\t')) {
      v++;
      vlen--;
    }
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
      vlen--;
    if (vlen < sizeof c->next_cursor)
      snprintf(c->next_cursor, sizeof c->next_cursor, "%.*s", (int)vlen, v);
  }
  return len;
}

/* Sends method path (body: JSON or NULL) to the hub. On an answer returns its
 * HTTP status and sets *json (the parsed body, NULL if it is not JSON; free
 * with cJSON_Delete) and *raw (the body; free it). When the hub cannot be
 * reached, prints why and returns -1. */
static long hub_request(ctl *c, const char *method, const char *path, const char *body,
                        cJSON **json, char **raw) {
  char url[1024];
  response resp = {NULL, 0};
  struct curl_slist *headers = NULL;
  char auth[HUB_TOKEN_LEN + 64];
  if (body)
    headers = curl_slist_append(headers, "Content-Type: application/json");
  if (c->token) {
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token);
    headers = curl_slist_append(headers, auth);
  }
  long status = -1;
  c->next_cursor[0] = '\0';
  snprintf(url, sizeof url, "%s%s", c->hub, path);
  curl_easy_reset(c->curl);
  curl_easy_setopt(c->curl, CURLOPT_URL, url);
  curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 5L);
  curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &resp);
  curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, c);
  if (c->cacert)
    curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->cacert);
  if (headers)
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
  if (body)
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
  CURLcode rc = curl_easy_perform(c->curl);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    *json = resp.data ? cJSON_ParseWithLength(resp.data, resp.len) : NULL;
    *raw = resp.data;
  } else {
    fail(1, "unreachable", "cannot reach the hub at %s: %s", c->hub, curl_easy_strerror(rc));
    free(resp.data);
  }
  curl_slist_free_all(headers);
  return status;
}

/* ---- commands ----------------------------------------------------------- */

typedef struct command {
  const char *name;
  const char *usage;   /* arguments, for the help text */
  int nargs;           /* positional arguments after the name */
  const char *options; /* allowed --options, space-separated */
  const char *method;
  const char *path;        /* "{id}" stands for the positional argument */
  const char *const *cols; /* list: print as a table; NULL: print the fields */
  bool query;              /* pass the options as the query string */
} command;

/* The commands that are not a request to the hub: see main(). */
#define CTL_TOKEN_USAGE "new ROLE NAME (a new API token for viewer|mechanic|operator NAME; no hub needed)"

static const command commands[] = {
    {"status", "(the hub's health: broker connection, engine, payment breaker)", 0, "", "GET",
     "/v1/health", NULL, false},
    {"vehicles", "[--state S] [--limit N] [--cursor C]", 0, "state limit cursor", "GET",
     "/v1/vehicles", vehicle_cols, true},
    {"vehicle", "ID", 1, "", "GET", "/v1/vehicles/{id}", NULL, false},
    {"register", "ID --name N --station S --rate CENTS_PER_HOUR", 1, "name station rate", "POST",
     "/v1/vehicles", NULL, false},
    {"edit", "ID [--name N] [--station S] [--rate 9.00 (per hour)]", 1, "name station rate",
     "PATCH", "/v1/vehicles/{id}", NULL, false},
    {"retire", "ID", 1, "", "POST", "/v1/vehicles/{id}/retire", NULL, false},
    {"damage", "VEHICLE TEXT (open a repair: damage reported)", 2, "", "POST",
     "/v1/vehicles/{id}/repairs", NULL, false},
    {"rentals", "[--state S] [--customer C] [--vehicle V] [--limit N] [--cursor C]", 0,
     "state customer vehicle limit cursor", "GET", "/v1/rentals", rental_cols, true},
    {"rental", "ID", 1, "", "GET", "/v1/rentals/{id}", NULL, false},
    {"customer", "ID", 1, "", "GET", "/v1/customers/{id}", NULL, false},
    {"bookings", "[--state S] [--customer C] [--vehicle V] [--limit N] [--cursor C]", 0,
     "state customer vehicle limit cursor", "GET", "/v1/bookings", booking_list_cols, true},
    {"booking", "ID", 1, "", "GET", "/v1/bookings/{id}", NULL, false},
    {"unbook", "BOOKING (cancel it: the deposit is refunded)", 1, "", "POST",
     "/v1/bookings/{id}/cancel", NULL, false},
    {"repairs", "[--state S] [--limit N] [--cursor C]", 0, "state limit cursor", "GET",
     "/v1/repairs", repair_cols, true},
    {"repair-start", "ID", 1, "", "POST", "/v1/repairs/{id}/start", NULL, false},
    {"repair-complete", "ID", 1, "", "POST", "/v1/repairs/{id}/complete", NULL, false},
    {"retry", "RENTAL", 1, "", "POST", "/v1/rentals/{id}/retry", NULL, false},
    {"compensate", "RENTAL", 1, "", "POST", "/v1/rentals/{id}/compensate", NULL, false},
    {"sagas", "[--status calling|retry|failed|done|declined] [--limit N] [--cursor C]", 0,
     "status limit cursor", "GET", "/v1/sagas", saga_list_cols, true},
    {"check", "(read models against a rebuild from the change log)", 0, "", "POST",
     "/v1/read-models/check", NULL, false},
    {"rebuild", "(replace the read models with a rebuild from the change log)", 0, "", "POST",
     "/v1/read-models/rebuild", NULL, false},
    {"dead-letters", "[--limit N] [--cursor C]", 0, "limit cursor", "GET", "/v1/dead-letters",
     dead_letter_cols, true},
    {"devices", "[--limit N] [--cursor C] (role, online, sequence numbers, last seen)", 0,
     "limit cursor", "GET", "/v1/devices", device_cols, true},
    {"counters", "(the hub's counters: events, batches, publishes, dead letters, ...)", 0, "",
     "GET", "/v1/counters", NULL, false},
    /* cluster mode (fleetctl_cluster.h) */
    {"partitions", "(cluster mode: each partition's owner, epoch, lease age and lag)", 0, "",
     "GET", "/v1/cluster/partitions", fleetctl_partition_cols, false},
    {"hubs", "(cluster mode: the hubs, live or not, what they hold, their queues)", 0, "", "GET",
     "/v1/cluster/hubs", fleetctl_hub_cols, false},
};

/* Prints the help text on stdout; returns 0, the exit status. */
static int usage(void) {
  printf("usage: fleetctl [--hub URL] [--token TOKEN] [--cacert FILE] [--json] COMMAND [ARGS]\n"
         "       fleetctl --help | --version\n"
         "The hub's URL defaults to $FLEETCTL_HUB, else " CTL_DEFAULT_HUB ".\n"
         "The token (when the hub has tokens) defaults to $FLEET_TOKEN; --cacert is the CA of\n"
         "an https:// hub's certificate. A list shows one page (--limit, default 100); when\n"
         "more follow, the --cursor of the next page is printed on stderr.\n"
         "--json prints the hub's JSON as it is, and errors as {\"error\": ..., \"code\": ...}.\n"
         "Exit status: 0 done, 1 failed (the hub said no, or cannot be reached), 2 usage error.\n"
         "Commands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    printf("  %-16s %s\n", commands[i].name, commands[i].usage);
  printf("  %-16s %s\n", "creds", FLEETCTL_CREDS_HELP);
  printf("  %-16s %s\n", "token", CTL_TOKEN_USAGE);
  return 0;
}

static bool option_allowed(const command *cmd, const char *name) {
  size_t n = strlen(name);
  for (const char *p = strstr(cmd->options, name); p; p = strstr(p + 1, name))
    if ((p == cmd->options || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
      return true;
  return false;
}

/* Appends "sep key=escaped value" to buf for every option given. */
static void append_query(ctl *c, char *buf, size_t cap) {
  char sep = '?';
  for (size_t i = 0; i < N_OPTIONS; i++) {
    if (!c->options[i])
      continue;
    char *v = curl_easy_escape(c->curl, c->options[i], 0);
    size_t len = strlen(buf);
    snprintf(buf + len, cap - len, "%c%s=%s", sep, option_names[i], v ? v : "");
    curl_free(v);
    sep = '&';
  }
}

/* Returns the value of --name, or NULL when it was not given. */
static const char *option(const ctl *c, const char *name) {
  for (size_t k = 0; k < N_OPTIONS; k++)
    if (strcmp(option_names[k], name) == 0)
      return c->options[k];
  return NULL;
}

/* Parses a rate: "9.00" (money per hour, two decimals) or, when cents_ok, a
 * whole number of cents ("900"). Returns the cents, or -1 when malformed. */
static long long parse_rate(const char *text, bool cents_ok) {
  char *end = NULL;
  long long whole = strtoll(text, &end, 10);
  if (end == text || whole < 0 || whole > 1000000)
    return -1;
  if (*end == '\0')
    return cents_ok && whole > 0 ? whole : -1;
  if (end[0] != '.' || !isdigit((unsigned char)end[1]) || !isdigit((unsigned char)end[2]) ||
      end[3] != '\0')
    return -1;
  long long cents = whole * 100 + (end[1] - '0') * 10 + (end[2] - '0');
  return cents > 0 ? cents : -1;
}

/* The body of "edit": returns a JSON text to free, or NULL after printing
 * what is wrong. */
static char *edit_body(ctl *c) {
  const char *name = option(c, "name"), *station = option(c, "station"), *rate = option(c, "rate");
  long long cents = rate ? parse_rate(rate, false) : 0;
  if ((!name && !station && !rate) || cents < 0) {
    fail(FL_CLI_USAGE, "usage",
         "edit needs at least one of --name N, --station S, --rate 9.00 (money per hour, two "
         "decimals)");
    return NULL;
  }
  cJSON *j = cJSON_CreateObject();
  if (name)
    cJSON_AddStringToObject(j, "name", name);
  if (station)
    cJSON_AddStringToObject(j, "station", station);
  if (rate)
    cJSON_AddNumberToObject(j, "rate_cents", (double)cents);
  char *text = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  return text;
}

/* The body of "damage": {"text": TEXT}; returns a JSON text to free. */
static char *damage_body(ctl *c) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "text", c->args[2]);
  char *text = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  return text;
}

/* The body of "register": returns a JSON text to free, or NULL after
 * printing what is missing. */
static char *register_body(ctl *c) {
  const char *name = option(c, "name"), *station = option(c, "station"), *rate = option(c, "rate");
  long long cents = rate ? parse_rate(rate, true) : -1;
  if (!name || !station || !rate || cents <= 0) {
    fail(FL_CLI_USAGE, "usage",
         "register needs --name N --station S --rate CENTS_PER_HOUR (a positive whole number, "
         "or money per hour as 9.00)");
    return NULL;
  }
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "id", c->args[1]);
  cJSON_AddStringToObject(j, "name", name);
  cJSON_AddStringToObject(j, "station", station);
  cJSON_AddNumberToObject(j, "rate_cents", (double)cents);
  char *text = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  return text;
}

/* Runs cmd: one request, then prints the answer. Returns the exit status. */
static int run(ctl *c, const command *cmd) {
  char path[768];
  const char *slot = strstr(cmd->path, "{id}");
  char *id = slot ? curl_easy_escape(c->curl, c->args[1], 0) : NULL;
  if (slot)
    snprintf(path, sizeof path, "%.*s%s%s", (int)(slot - cmd->path), cmd->path, id ? id : "",
             slot + 4);
  else
    snprintf(path, sizeof path, "%s", cmd->path);
  curl_free(id);
  if (cmd->query)
    append_query(c, path, sizeof path);
  char *body = NULL;
  if (strcmp(cmd->method, "GET") != 0) {
    if (strcmp(cmd->name, "register") == 0)
      body = register_body(c);
    else if (strcmp(cmd->name, "edit") == 0)
      body = edit_body(c);
    else if (strcmp(cmd->name, "damage") == 0)
      body = damage_body(c);
    else
      body = strdup("{}");
    if (!body)
      return FL_CLI_USAGE; /* the body's maker said why */
  }
  cJSON *json = NULL;
  char *raw = NULL;
  long status = hub_request(c, cmd->method, path, body, &json, &raw);
  int rc = 1;
  const char *error = cJSON_GetStringValue(cJSON_GetObjectItem(json, "error"));
  if (status < 0) {
    /* hub_request said why */
  } else if (status == 401 && error && !c->token) {
    if (c->json)
      printf("%s\n", raw);
    else
      fprintf(stderr, "fleetctl: %s (give --token TOKEN or set FLEET_TOKEN)\n", error);
  } else if (status / 100 != 2 && error) {
    /* the hub's answer as given (e.g. its 409 to retry): with --json its
     * body, which is already {"error": ..., "code": ...} */
    if (c->json)
      printf("%s\n", raw);
    else
      fprintf(stderr, "fleetctl: %s\n", error);
  } else if (!json) {
    fail(1, "bad_answer", "the hub answered HTTP %ld without JSON", status);
  } else if (c->json && status / 100 != 2) {
    fail(1, "bad_answer", "the hub answered HTTP %ld: %s", status, raw);
  } else {
    if (c->json)
      printf("%s\n", raw);
    else if (cmd->cols)
      print_table(json, cmd->cols);
    else
      print_fields(json);
    rc = status / 100 == 2 ? 0 : 1;
    if (rc)
      fprintf(stderr, "fleetctl: the hub answered HTTP %ld\n", status);
    else if (c->next_cursor[0])
      fprintf(stderr, "fleetctl: more rows follow: add --cursor %s\n", c->next_cursor);
  }
  cJSON_Delete(json);
  free(raw);
  free(body);
  return rc;
}

enum { OPT_HUB = 256, OPT_JSON, OPT_VERSION, OPT_TOKEN, OPT_CACERT, OPT_FIRST_COMMAND_OPTION };

/* Parses argv into c. Returns -1 when the command line is good, else the
 * exit status after printing help, the version, or a usage error. Options
 * may come before or after the command; "--opt VALUE" and "--opt=VALUE". */
static int parse_args(ctl *c, int argc, char **argv) {
  struct option long_opts[N_OPTIONS + 7];
  size_t n = 0;
  long_opts[n++] = (struct option){"hub", required_argument, NULL, OPT_HUB};
  long_opts[n++] = (struct option){"json", no_argument, NULL, OPT_JSON};
  long_opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
  long_opts[n++] = (struct option){"version", no_argument, NULL, OPT_VERSION};
  long_opts[n++] = (struct option){"token", required_argument, NULL, OPT_TOKEN};
  long_opts[n++] = (struct option){"cacert", required_argument, NULL, OPT_CACERT};
  for (size_t k = 0; k < N_OPTIONS; k++)
    long_opts[n++] =
        (struct option){option_names[k], required_argument, NULL, OPT_FIRST_COMMAND_OPTION + (int)k};
  long_opts[n] = (struct option){NULL, 0, NULL, 0};
  /* errors found before --json is reached are JSON too */
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
    if (strcmp(argv[i], "--json") == 0)
      c->json = json_errors = true;
  opterr = 0;
  for (int opt; (opt = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1;) {
    if (opt == OPT_HUB) {
      c->hub = optarg;
    } else if (opt == OPT_TOKEN) {
      c->token = optarg;
    } else if (opt == OPT_CACERT) {
      c->cacert = optarg;
    } else if (opt == OPT_JSON) {
      c->json = json_errors = true;
    } else if (opt == 'h') {
      c->help = true;
    } else if (opt == OPT_VERSION) {
      return fl_cli_version("fleetctl");
    } else if (opt >= OPT_FIRST_COMMAND_OPTION && opt < OPT_FIRST_COMMAND_OPTION + (int)N_OPTIONS) {
      c->options[opt - OPT_FIRST_COMMAND_OPTION] = optarg;
    } else {
      const char *word = optind > 0 ? argv[optind - 1] : "";
      int len = (int)strcspn(word, "=");
      return opt == ':' ? fail(FL_CLI_USAGE, "usage", "%.*s needs a value", len, word)
                        : fail(FL_CLI_USAGE, "usage", "unknown option %.*s", len, word);
    }
  }
  for (int i = optind; i < argc; i++) {
    if (c->nargs == CTL_MAX_ARGS)
      return fail(FL_CLI_USAGE, "usage", "too many arguments");
    c->args[c->nargs++] = argv[i];
  }
  return -1;
}

/* fleetctl token new ROLE NAME: prints a new token (line 1) and the line
 * for the hub's tokens file (line 2). Returns the exit status. */
static int token_new(const ctl *c) {
  if (c->nargs != 4 || strcmp(c->args[1], "new") != 0)
    return fail(FL_CLI_USAGE, "usage", "usage: fleetctl token %s", CTL_TOKEN_USAGE);
  if (hub_role_from_name(c->args[2]) == HUB_ROLE_NONE)
    return fail(FL_CLI_USAGE, "usage", "the role must be viewer, mechanic or operator");
  if (!hub_token_name_valid(c->args[3]))
    return fail(FL_CLI_USAGE, "usage", "the name must be 1 to %d of A-Z a-z 0-9 . _ : -",
                FL_ID_MAX);
  char token[HUB_TOKEN_LEN + 1], hash[HUB_TOKEN_HASH_HEX + 1];
  if (hub_token_new(token) != 0)
    return fail(1, "nomem", "no randomness for a token");
  hub_token_hash_hex(token, hash);
  if (c->json) {
    cJSON *j = cJSON_CreateObject();
    char line[256];
    snprintf(line, sizeof line, "%s %s %s", c->args[2], hash, c->args[3]);
    cJSON_AddStringToObject(j, "token", token);
    cJSON_AddStringToObject(j, "line", line);
    char *text = cJSON_PrintUnformatted(j);
    printf("%s\n", text ? text : "{}");
    cJSON_free(text);
    cJSON_Delete(j);
  } else {
    printf("%s\n%s %s %s\n", token, c->args[2], hash, c->args[3]);
    fprintf(stderr, "fleetctl: line 1 is the token: give it to %s (fleetctl --token, or "
                    "FLEET_TOKEN); the hub keeps no copy.\n"
                    "fleetctl: line 2 goes into the hub's [http] tokens_file; restart the hub.\n",
            c->args[3]);
  }
  return 0;
}

/* Returns the command named by c->args[0] after checking its arguments and
 * options, or NULL after printing what is wrong. */
static const command *find_command(const ctl *c) {
  const command *cmd = NULL;
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(commands[i].name, c->args[0]) == 0)
      cmd = &commands[i];
  if (!cmd) {
    fail(FL_CLI_USAGE, "usage", "unknown command %s (fleetctl help lists them)", c->args[0]);
    return NULL;
  }
  if (c->nargs - 1 != cmd->nargs) {
    fail(FL_CLI_USAGE, "usage", "usage: fleetctl %s %s", cmd->name, cmd->usage);
    return NULL;
  }
  for (size_t k = 0; k < N_OPTIONS; k++) {
    if (c->options[k] && !option_allowed(cmd, option_names[k])) {
      fail(FL_CLI_USAGE, "usage", "%s does not take --%s", cmd->name, option_names[k]);
      return NULL;
    }
  }
  return cmd;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "watch") == 0) /* a client of the broker, not of the API */
    return fleetctl_watch(argc - 1, argv + 1);
  int creds = fleetctl_creds_main(argc, argv); /* fleetctl creds ...: fleetctl_creds.c */
  if (creds >= 0)
    return creds;
  ctl c;
  memset(&c, 0, sizeof c);
  c.hub = getenv("FLEETCTL_HUB") ? getenv("FLEETCTL_HUB") : CTL_DEFAULT_HUB;
  c.token = getenv("FLEET_TOKEN") && *getenv("FLEET_TOKEN") ? getenv("FLEET_TOKEN") : NULL;
  int status = parse_args(&c, argc, argv);
  if (status >= 0)
    return status;
  if (c.help)
    return usage();
  if (c.nargs == 0)
    return fail(FL_CLI_USAGE, "usage", "no command (fleetctl help lists them)");
  if (strcmp(c.args[0], "help") == 0)
    return usage();
  if (strcmp(c.args[0], "token") == 0)
    return token_new(&c);
  const command *cmd = find_command(&c);
  if (!cmd)
    return FL_CLI_USAGE;
  static char hub[512];
  snprintf(hub, sizeof hub, "%s", c.hub);
  for (size_t n = strlen(hub); n > 0 && hub[n - 1] == '/'; n--)
    hub[n - 1] = '\0';
  c.hub = hub;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(c.curl = curl_easy_init())) {
    return fail(1, "nomem", "cannot initialise libcurl");
  }
  int rc = run(&c, cmd);
  curl_easy_cleanup(c.curl);
  curl_global_cleanup();
  return rc;
}
