/* The HTTP payment provider: a client of the small provider protocol of
 * docs/payments.md (POST {url}/v1/charges and {url}/v1/refunds, JSON bodies,
 * an Idempotency-Key header, 200 succeeded / 402 declined / anything else a
 * failure), over libcurl.
 *
 * call() runs on several payment worker threads at once. Each call takes an
 * easy handle of its own from a small pool (created when the pool is empty,
 * given back afterwards), so that calls never share a handle while the
 * connections kept in the idle handles are reused. */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "fleet/error.h"
#include "fleet/log.h"
#include "hub_config.h"
#include "payment.h"

#define HTTP_ANSWER_MAX 16384 /* bytes of a provider's answer we read */

struct pay_http {
  char charges_url[300];
  char refunds_url[300];
  long timeout_ms;
  pthread_mutex_t lock;
  CURL **idle; /* handles not in a call; their connections stay open */
  size_t n_idle, cap_idle;
};

/* A provider's answer, read into a bounded buffer. */
struct answer {
  char body[HTTP_ANSWER_MAX + 1];
  size_t len;
  bool too_large;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx) {
  struct answer *a = ctx;
  size_t n = size * nmemb;
  if (n > HTTP_ANSWER_MAX - a->len) {
    a->too_large = true;
    return 0; /* makes curl stop with CURLE_WRITE_ERROR */
  }
  memcpy(a->body + a->len, data, n);
  a->len += n;
  a->body[a->len] = '\0';
  return n;
}

/* Copies text from the provider into dst (cap bytes), keeping printable
 * ASCII only: it ends up in decisions, whose text must be valid UTF-8 and
 * fit FL_TEXT_MAX, and in logs. */
static void copy_text(char *dst, size_t cap, const char *src) {
  size_t n = 0;
  for (; src && *src && n + 1 < cap; src++, n++)
    dst[n] = isprint((unsigned char)*src) ? *src : '?';
  dst[n] = '\0';
}

/* Returns a handle for one call: an idle one, or a new one (NULL: no memory). */
static CURL *handle_take(struct pay_http *h) {
  CURL *c = NULL;
  pthread_mutex_lock(&h->lock);
  if (h->n_idle > 0) c = h->idle[--h->n_idle];
  pthread_mutex_unlock(&h->lock);
  if (c) {
    curl_easy_reset(c); /* options go; open connections stay */
    return c;
  }
  return curl_easy_init();
}

/* Gives a handle back to the pool (or frees it when the pool is full). */
static void handle_give(struct pay_http *h, CURL *c) {
  pthread_mutex_lock(&h->lock);
  if (h->n_idle < h->cap_idle) {
    h->idle[h->n_idle++] = c;
    c = NULL;
  }
  pthread_mutex_unlock(&h->lock);
  curl_easy_cleanup(c);
}

/* Returns the request body for job (malloc'd JSON text), or NULL. */
static char *request_body(const pay_job *job) {
  cJSON *j = cJSON_CreateObject();
  if (!j) return NULL;
  char *text = NULL;
  if (cJSON_AddStringToObject(j, "rental", job->owner) &&
      cJSON_AddStringToObject(j, "customer", job->customer) &&
      cJSON_AddNumberToObject(j, "amount_cents", (double)job->amount_cents) &&
      (job->kind != PAY_REFUND || cJSON_AddStringToObject(j, "refund_of", job->refund_of)))
    text = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  return text;
}

/* Reads a 200 answer: {"status":"succeeded","id":"...","amount_cents":N}.
 * A provider that claims to have moved more than asked is not believed. */
static void read_success(const cJSON *j, const pay_job *job, pay_result *res) {
  const cJSON *status = cJSON_GetObjectItemCaseSensitive(j, "status");
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
  const cJSON *amount = cJSON_GetObjectItemCaseSensitive(j, "amount_cents");
  double v = cJSON_IsNumber(amount) ? amount->valuedouble : -1;
  bool whole = v >= 0 && v <= 9007199254740992.0 && v == (double)(int64_t)v; /* 2^53 */
  if (!cJSON_IsString(status) || strcmp(status->valuestring, "succeeded") != 0 ||
      !cJSON_IsString(id) || !whole) {
    res->outcome = PAY_FAILED;
    copy_text(res->reason, sizeof res->reason, "payment provider: malformed success answer");
    return;
  }
  if ((int64_t)v > job->amount_cents) {
    res->outcome = PAY_FAILED;
    snprintf(res->reason, sizeof res->reason,
             "payment provider: answered amount_cents %lld for %lld asked", (long long)v,
             (long long)job->amount_cents);
    return;
  }
  res->outcome = PAY_OK;
  res->amount_cents = (int64_t)v;
  copy_text(res->ref, sizeof res->ref, id->valuestring);
}

/* Turns an HTTP answer into res (see docs/payments.md). */
static void read_answer(long status, const struct answer *a, const pay_job *job,
                        pay_result *res) {
  cJSON *j = cJSON_ParseWithLength(a->body, a->len);
  const cJSON *reason = cJSON_GetObjectItemCaseSensitive(j, "reason");
  const char *why = cJSON_IsString(reason) ? reason->valuestring : NULL;
  if (status == 200 && cJSON_IsObject(j)) {
    read_success(j, job, res);
  } else if (status == 200) {
    res->outcome = PAY_FAILED;
    copy_text(res->reason, sizeof res->reason, "payment provider: answer is not JSON");
  } else if (status == 402) { /* a decline is final even without a readable body */
    res->outcome = PAY_DECLINED;
    copy_text(res->reason, sizeof res->reason, why ? why : "declined by the payment provider");
  } else {
    char text[FL_TEXT_MAX + 1];
    snprintf(text, sizeof text, "payment provider: HTTP %ld%s%s", status, why ? ": " : "",
             why ? why : "");
    res->outcome = PAY_FAILED;
    copy_text(res->reason, sizeof res->reason, text);
  }
  cJSON_Delete(j);
}

/* Makes the call on handle c and reads its outcome into res. */
static void perform(struct pay_http *h, CURL *c, const pay_job *job, struct curl_slist *headers,
                    const char *body, struct answer *a, pay_result *res) {
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c, CURLOPT_URL, job->kind == PAY_REFUND ? h->refunds_url : h->charges_url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* required with threads */
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->timeout_ms);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "fleet-hub");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode rc = curl_easy_perform(c);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL); /* errbuf goes out of scope */
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  char text[FL_TEXT_MAX + 1];
  if (rc == CURLE_OPERATION_TIMEDOUT)
    snprintf(text, sizeof text, "payment provider: no answer within %ld ms", h->timeout_ms);
  else if (rc == CURLE_WRITE_ERROR && a->too_large)
    snprintf(text, sizeof text, "payment provider: answer over %d bytes", HTTP_ANSWER_MAX);
  else if (rc != CURLE_OK)
    snprintf(text, sizeof text, "payment provider unreachable: %s",
             errbuf[0] ? errbuf : curl_easy_strerror(rc));
  if (rc == CURLE_OK) {
    read_answer(status, a, job, res);
  } else {
    res->outcome = PAY_FAILED;
    copy_text(res->reason, sizeof res->reason, text);
  }
  fl_debug("payment http step=%s rental=%s key=%s status=%ld outcome=%d", job->step,
           job->owner, job->idem_key, status, (int)res->outcome);
}

static void http_call(void *impl, const pay_job *job, pay_result *res) {
  struct pay_http *h = impl;
  char key_header[sizeof job->idem_key + 32];
  snprintf(key_header, sizeof key_header, "Idempotency-Key: %s", job->idem_key);
  const char *lines[] = {"Content-Type: application/json", "Accept: application/json",
                         key_header};
  struct curl_slist *headers = NULL;
  struct answer *a = calloc(1, sizeof *a);
  char *body = request_body(job);
  CURL *c = handle_take(h);
  bool ready = a && body && c;
  for (size_t i = 0; ready && i < sizeof lines / sizeof lines[0]; i++) {
    struct curl_slist *l = curl_slist_append(headers, lines[i]);
    if (l) headers = l;
    ready = l != NULL;
  }
  if (ready) {
    perform(h, c, job, headers, body, a, res);
  } else {
    res->outcome = PAY_FAILED;
    copy_text(res->reason, sizeof res->reason, "payment call not made: out of memory");
  }
  curl_slist_free_all(headers);
  if (c) handle_give(h, c);
  free(body);
  free(a);
}

static void http_destroy(void *impl) {
  struct pay_http *h = impl;
  if (!h) return;
  for (size_t i = 0; i < h->n_idle; i++) curl_easy_cleanup(h->idle[i]);
  free(h->idle);
  pthread_mutex_destroy(&h->lock);
  free(h);
  curl_global_cleanup();
}

int pay_http_create(const hub_config *cfg, pay_provider *out) {
  const char *url = cfg->payment_url;
  size_t len = strlen(url);
  while (len > 0 && url[len - 1] == '/') len--; /* "http://host/" and "http://host" alike */
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
    fl_error("config [payment] url = '%s': must start with http:// or https://", url);
    return FL_ERR_CONFIG;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return FL_ERR_NOMEM;
  struct pay_http *h = calloc(1, sizeof *h);
  if (!h) {
    curl_global_cleanup();
    return FL_ERR_NOMEM;
  }
  pthread_mutex_init(&h->lock, NULL);
  h->timeout_ms = cfg->payment_timeout_ms;
  h->cap_idle = (size_t)cfg->payment_workers;
  h->idle = calloc(h->cap_idle, sizeof *h->idle);
  snprintf(h->charges_url, sizeof h->charges_url, "%.*s/v1/charges", (int)len, url);
  snprintf(h->refunds_url, sizeof h->refunds_url, "%.*s/v1/refunds", (int)len, url);
  if (!h->idle) {
    http_destroy(h);
    return FL_ERR_NOMEM;
  }
  fl_info("payment provider=http url=%.*s timeout_ms=%ld", (int)len, url, h->timeout_ms);
  *out = (pay_provider){.name = "http", .impl = h, .call = http_call, .destroy = http_destroy};
  return FL_OK;
}
