/* fleetctl: the operator command line, a small client of the hub's HTTP API
 * (hub/http.h). Every command is one HTTP request described by a row of the
 * command table; the answer is printed as aligned text, or as the hub's raw
 * JSON with --json. Exit status: 0 on success, 1 on any error. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CTL_DEFAULT_HUB "http://127.0.0.1:8080"
#define CTL_MAX_ARGS 4
#define CTL_MAX_RESPONSE (16u << 20)

/* The --options a command may take; each takes a value. */
static const char *const option_names[] = {"state",   "customer", "vehicle", "name",
                                           "station", "rate",     "limit",   "status"};
#define N_OPTIONS (sizeof option_names / sizeof option_names[0])

typedef struct ctl {
  const char *hub; /* base URL, without a trailing slash */
  bool json;
  const char *options[N_OPTIONS]; /* values, NULL when not given */
  bool help;                      /* --help: print the commands */
  const char *args[CTL_MAX_ARGS]; /* positional: args[0] is the command */
  int nargs;
  CURL *curl;
} ctl;

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

/* Writes the column title of key into buf: "charged_cents" -> "CHARGED". */
static const char *title(const char *key, char *buf, size_t cap) {
  size_t n = strlen(key);
  if (has_suffix(key, "_cents"))
    n -= 6;
  if (has_suffix(key, "_ms"))
    n -= 3;
  size_t i = 0;
  for (; i < n && i + 1 < cap; i++)
    buf[i] = (char)toupper((unsigned char)key[i]);
  buf[i] = '\0';
  return buf;
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
  char buf[CELL_MAX];
  int width = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, obj) {
    if ((int)strlen(m->string) > width)
      width = (int)strlen(m->string);
  }
  cJSON_ArrayForEach(m, obj) {
    if (!cJSON_IsArray(m) && !cJSON_IsObject(m))
      printf("%-*s  %s\n", width, m->string, cell(obj, m->string, buf, sizeof buf));
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

/* Sends method path (body: JSON or NULL) to the hub. On an answer returns its
 * HTTP status and sets *json (the parsed body, NULL if it is not JSON; free
 * with cJSON_Delete) and *raw (the body; free it). When the hub cannot be
 * reached, prints why and returns -1. */
static long hub_request(ctl *c, const char *method, const char *path, const char *body,
                        cJSON **json, char **raw) {
  char url[1024];
  response resp = {NULL, 0};
  struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
  long status = -1;
  snprintf(url, sizeof url, "%s%s", c->hub, path);
  curl_easy_reset(c->curl);
  curl_easy_setopt(c->curl, CURLOPT_URL, url);
  curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 5L);
  curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &resp);
  if (body) {
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
  }
  CURLcode rc = curl_easy_perform(c->curl);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    *json = resp.data ? cJSON_ParseWithLength(resp.data, resp.len) : NULL;
    *raw = resp.data;
  } else {
    fprintf(stderr, "fleetctl: cannot reach the hub at %s: %s\n", c->hub, curl_easy_strerror(rc));
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

static const command commands[] = {
    {"status", "", 0, "", "GET", "/v1/health", NULL, false},
    {"vehicles", "[--state S]", 0, "state", "GET", "/v1/vehicles", vehicle_cols, true},
    {"vehicle", "ID", 1, "", "GET", "/v1/vehicles/{id}", NULL, false},
    {"register", "ID --name N --station S --rate CENTS_PER_HOUR", 1, "name station rate", "POST",
     "/v1/vehicles", NULL, false},
    {"retire", "ID", 1, "", "POST", "/v1/vehicles/{id}/retire", NULL, false},
    {"rentals", "[--state S] [--customer C] [--vehicle V] [--limit N]", 0,
     "state customer vehicle limit", "GET", "/v1/rentals", rental_cols, true},
    {"rental", "ID", 1, "", "GET", "/v1/rentals/{id}", NULL, false},
    {"customer", "ID", 1, "", "GET", "/v1/customers/{id}", NULL, false},
    {"bookings", "[--state S] [--customer C] [--vehicle V] [--limit N]", 0,
     "state customer vehicle limit", "GET", "/v1/bookings", booking_list_cols, true},
    {"booking", "ID", 1, "", "GET", "/v1/bookings/{id}", NULL, false},
    {"repairs", "[--state S]", 0, "state", "GET", "/v1/repairs", repair_cols, true},
    {"repair-start", "ID", 1, "", "POST", "/v1/repairs/{id}/start", NULL, false},
    {"repair-complete", "ID", 1, "", "POST", "/v1/repairs/{id}/complete", NULL, false},
    {"retry", "RENTAL", 1, "", "POST", "/v1/rentals/{id}/retry", NULL, false},
    {"compensate", "RENTAL", 1, "", "POST", "/v1/rentals/{id}/compensate", NULL, false},
    {"sagas", "[--status calling|retry|failed|done|declined] [--limit N]", 0, "status limit", "GET",
     "/v1/sagas", saga_list_cols, true},
    {"check", "(read models against a rebuild from the change log)", 0, "", "POST",
     "/v1/read-models/check", NULL, false},
    {"rebuild", "(replace the read models with a rebuild from the change log)", 0, "", "POST",
     "/v1/read-models/rebuild", NULL, false},
    {"dead-letters", "[--limit N]", 0, "limit", "GET", "/v1/dead-letters", dead_letter_cols, true},
    {"devices", "", 0, "", "GET", "/v1/devices", device_cols, false},
    {"counters", "", 0, "", "GET", "/v1/counters", NULL, false},
};

static int usage(FILE *to) {
  fprintf(to, "usage: fleetctl [--hub URL] [--json] COMMAND [ARGS]\n"
              "The hub's URL defaults to $FLEETCTL_HUB, else " CTL_DEFAULT_HUB ".\n"
              "Commands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(to, "  %-16s %s\n", commands[i].name, commands[i].usage);
  return to == stdout ? 0 : 1;
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

/* The body of "register": returns a JSON text to free, or NULL after
 * printing what is missing. */
static char *register_body(ctl *c) {
  const char *name = option(c, "name"), *station = option(c, "station"), *rate = option(c, "rate");
  char *end = NULL;
  long long cents = rate ? strtoll(rate, &end, 10) : 0;
  if (!name || !station || !rate || *end || cents <= 0) {
    fprintf(stderr, "fleetctl: register needs --name N --station S --rate CENTS_PER_HOUR "
                    "(a positive whole number)\n");
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
  if (strcmp(cmd->method, "POST") == 0) {
    body = strcmp(cmd->name, "register") == 0 ? register_body(c) : strdup("{}");
    if (!body)
      return 1;
  }
  cJSON *json = NULL;
  char *raw = NULL;
  long status = hub_request(c, cmd->method, path, body, &json, &raw);
  int rc = 1;
  const char *error = cJSON_GetStringValue(cJSON_GetObjectItem(json, "error"));
  if (status < 0) {
    /* hub_request said why */
  } else if (status / 100 != 2 && error) {
    fprintf(stderr, "fleetctl: %s\n", error);
  } else if (!json) {
    fprintf(stderr, "fleetctl: the hub answered HTTP %ld without JSON\n", status);
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
  }
  cJSON_Delete(json);
  free(raw);
  free(body);
  return rc;
}

/* Parses argv into c; returns false after printing a usage error. */
static bool parse_args(ctl *c, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--json") == 0) {
      c->json = true;
      continue;
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      c->help = true;
      continue;
    }
    if (strncmp(a, "--", 2) != 0) {
      if (c->nargs == CTL_MAX_ARGS) {
        fprintf(stderr, "fleetctl: too many arguments\n");
        return false;
      }
      c->args[c->nargs++] = a;
      continue;
    }
    if (i + 1 == argc) {
      fprintf(stderr, "fleetctl: %s needs a value\n", a);
      return false;
    }
    const char *value = argv[++i];
    if (strcmp(a, "--hub") == 0) {
      c->hub = value;
      continue;
    }
    size_t k = 0;
    while (k < N_OPTIONS && strcmp(a + 2, option_names[k]) != 0)
      k++;
    if (k == N_OPTIONS) {
      fprintf(stderr, "fleetctl: unknown option %s\n", a);
      return false;
    }
    c->options[k] = value;
  }
  return true;
}

/* Returns the command named by c->args[0] after checking its arguments and
 * options, or NULL after printing what is wrong. */
static const command *find_command(const ctl *c) {
  const command *cmd = NULL;
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(commands[i].name, c->args[0]) == 0)
      cmd = &commands[i];
  if (!cmd) {
    fprintf(stderr, "fleetctl: unknown command %s (fleetctl help lists them)\n", c->args[0]);
    return NULL;
  }
  if (c->nargs - 1 != cmd->nargs) {
    fprintf(stderr, "fleetctl: usage: fleetctl %s %s\n", cmd->name, cmd->usage);
    return NULL;
  }
  for (size_t k = 0; k < N_OPTIONS; k++) {
    if (c->options[k] && !option_allowed(cmd, option_names[k])) {
      fprintf(stderr, "fleetctl: %s does not take --%s\n", cmd->name, option_names[k]);
      return NULL;
    }
  }
  return cmd;
}

int main(int argc, char **argv) {
  ctl c;
  memset(&c, 0, sizeof c);
  c.hub = getenv("FLEETCTL_HUB") ? getenv("FLEETCTL_HUB") : CTL_DEFAULT_HUB;
  if (!parse_args(&c, argc, argv))
    return 1;
  if (c.help)
    return usage(stdout);
  if (c.nargs == 0)
    return usage(stderr);
  if (strcmp(c.args[0], "help") == 0)
    return usage(stdout);
  const command *cmd = find_command(&c);
  if (!cmd)
    return 1;
  static char hub[512];
  snprintf(hub, sizeof hub, "%s", c.hub);
  for (size_t n = strlen(hub); n > 0 && hub[n - 1] == '/'; n--)
    hub[n - 1] = '\0';
  c.hub = hub;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(c.curl = curl_easy_init())) {
    fprintf(stderr, "fleetctl: cannot initialise libcurl\n");
    return 1;
  }
  int rc = run(&c, cmd);
  curl_easy_cleanup(c.curl);
  curl_global_cleanup();
  return rc;
}
