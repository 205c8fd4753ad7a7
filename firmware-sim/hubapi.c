#include "hubapi.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fleet/clock.h"
#include "fleet/error.h"

#define SIM_CURSOR_MAX 512

struct body_buf {
  char *data;
  size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx) {
  struct body_buf *b = ctx;
  size_t add = size * n;
  char *grown = realloc(b->data, b->len + add + 1);
  if (!grown) return 0;
  memcpy(grown + b->len, p, add);
  b->len += add;
  grown[b->len] = '\0';
  b->data = grown;
  return add;
}

/* Keeps an answer's X-Next-Cursor (a list with more pages) in ctx. */
static size_t on_header(char *line, size_t size, size_t n, void *ctx) {
  char *cursor = ctx;
  size_t len = size * n;
  static const char name[] = "x-next-cursor:";
  if (len > sizeof name - 1 && strncasecmp(line, name, sizeof name - 1) == 0) {
    const char *v = line + sizeof name - 1;
    size_t vlen = len - (sizeof name - 1);
    while (vlen && *v == ' ') v++, vlen--;
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ')) vlen--;
    if (vlen < SIM_CURSOR_MAX) snprintf(cursor, SIM_CURSOR_MAX, "%.*s", (int)vlen, v);
  }
  return len;
}

/* One request; cursor (SIM_CURSOR_MAX bytes) gets the answer's X-Next-Cursor or "". */
static int hub_call_once(const char *url, const char *method, const char *body, cJSON **out,
                         char *cursor) {
  if (out) *out = NULL;
  cursor[0] = '\0';
  CURL *c = curl_easy_init();
  if (!c) return 0;
  struct body_buf b = {0};
  struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
  const char *token = getenv("FLEET_TOKEN"); /* a hub with [http] tokens_file */
  if (token && *token) {
    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    headers = curl_slist_append(headers, auth);
  }
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, cursor);
  if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  long status = 0;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (out && b.data) *out = cJSON_Parse(b.data);
  free(b.data);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  return (int)status;
}

int sim_hub_call(const char *base_url, const char *method, const char *path, const char *body,
                 cJSON **out) {
  char url[1024], cursor[SIM_CURSOR_MAX];
  snprintf(url, sizeof url, "%s%s", base_url, path);
  int status = hub_call_once(url, method, body, out, cursor);
  /* A list answers one page: the sim reads whole lists, so it follows the
   * cursor and appends the pages' rows to the first page's array. */
  while (status == 200 && out && cJSON_IsArray(*out) && cursor[0]) {
    snprintf(url, sizeof url, "%s%s%ccursor=%s", base_url, path, strchr(path, '?') ? '&' : '?',
             cursor);
    cJSON *page = NULL;
    status = hub_call_once(url, method, body, &page, cursor);
    if (status != 200 || !cJSON_IsArray(page)) {
      cJSON_Delete(page);
      cJSON_Delete(*out);
      *out = NULL;
      return status == 200 ? 0 : status;
    }
    for (cJSON *row; (row = cJSON_DetachItemFromArray(page, 0));) cJSON_AddItemToArray(*out, row);
    cJSON_Delete(page);
  }
  return status;
}

int sim_hub_post_vehicle(const char *base_url, const char *vehicle, const char *name,
                         const char *station, int64_t rate_cents) {
  cJSON *j = cJSON_CreateObject();
  char *body = NULL;
  if (j && cJSON_AddStringToObject(j, "id", vehicle) && cJSON_AddStringToObject(j, "name", name) &&
      cJSON_AddStringToObject(j, "station", station) &&
      cJSON_AddNumberToObject(j, "rate_cents", (double)rate_cents))
    body = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  int status = body ? sim_hub_call(base_url, "POST", "/v1/vehicles", body, NULL) : 0;
  cJSON_free(body);
  return status;
}

int sim_hub_register(const char *base_url, const char *vehicle, const char *name,
                     const char *station, int64_t rate_cents) {
  int status = sim_hub_post_vehicle(base_url, vehicle, name, station, rate_cents);
  return status == 201 || status == 409 ? FL_OK : FL_ERR_UNAVAILABLE;
}

const char *sim_json_str(const cJSON *o, const char *key) {
  const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
  return v ? v : "";
}

double sim_json_num(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItem(o, key);
  return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

bool sim_hub_wait_healthy(const char *base_url, double timeout_s) {
  int64_t end = fl_mono_us() + (int64_t)(timeout_s * 1e6);
  while (sim_hub_call(base_url, "GET", "/v1/health", NULL, NULL) != 200) {
    if (fl_mono_us() > end) return false;
    fl_sleep_ms(100);
  }
  return true;
}
