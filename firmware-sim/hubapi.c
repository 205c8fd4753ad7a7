#include "hubapi.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/clock.h"
#include "fleet/error.h"

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

int sim_hub_call(const char *base_url, const char *method, const char *path, const char *body,
                 cJSON **out) {
  if (out) *out = NULL;
  CURL *c = curl_easy_init();
  if (!c) return 0;
  char url[512];
  snprintf(url, sizeof url, "%s%s", base_url, path);
  struct body_buf b = {0};
  struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  long status = 0;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (out && b.data) *out = cJSON_Parse(b.data);
  free(b.data);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  return (int)status;
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
