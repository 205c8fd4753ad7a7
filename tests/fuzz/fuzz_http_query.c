/* Fuzz target: the query string of the HTTP API's GET views through
 * http__view_values, the function of hub/http_reads.c that turns it into the SQL
 * parameters of a view. Input: one byte choosing the view, then the query
 * string (what follows '?'). The harness splits it into arguments and
 * unescapes them with libmicrohttpd's MHD_http_unescape, as the server does
 * before the handler looks them up. Either a 400 with an error object, or
 * every value is what the view's SQL may be given: a limit of 1..1000 (bound
 * as one more), a state name, an id, or a cursor's sort-key values. */
#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/proto.h"
#include "http_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ARGS_MAX 64

typedef struct query {
  int n;
  const char *key[ARGS_MAX];
  const char *value[ARGS_MAX]; /* NULL: "key" without '=' */
} query;

/* The first argument named name, as libmicrohttpd's lookup answers. */
static const char *query_lookup(void *ctx, const char *name) {
  const query *q = ctx;
  for (int i = 0; i < q->n; i++)
    if (strcmp(q->key[i], name) == 0) return q->value[i];
  return NULL;
}

/* Splits s (changed) at '&' and '=' and unescapes keys and values. */
static void query_parse(char *s, query *q) {
  q->n = 0;
  for (char *save = NULL, *arg = strtok_r(s, "&", &save); arg && q->n < ARGS_MAX;
       arg = strtok_r(NULL, "&", &save)) {
    char *eq = strchr(arg, '=');
    if (eq) *eq++ = '\0';
    MHD_http_unescape(arg);
    if (eq) MHD_http_unescape(eq);
    q->key[q->n] = arg;
    q->value[q->n++] = eq;
  }
}

static void expect(int cond, const char *what) {
  if (cond) return;
  fprintf(stderr, "fuzz_http_query: broken promise: %s\n", what);
  abort();
}

static int state_like(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 23) return 0;
  for (; *s; s++)
    if (!((*s >= 'A' && *s <= 'Z') || *s == '_')) return 0;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const http_view *const views[] = {
      &http_view_vehicles, &http_view_vehicle, &http_view_rentals,      &http_view_rental,
      &http_view_saga_steps, &http_view_sagas, &http_view_repairs,      &http_view_repair,
      &http_view_dead_letters, &http_view_devices, &http_view_counters, &http_view_bookings,
      &http_view_booking};
  if (size < 1) return 0;
  const http_view *view = views[data[0] % (sizeof views / sizeof views[0])];
  char *text = malloc(size);
  if (!text) return 0;
  memcpy(text, data + 1, size - 1);
  text[size - 1] = '\0';
  query q;
  query_parse(text, &q);
  http_view_args a;
  cJSON *out = NULL;
  unsigned status = http__view_values(view, "V1", query_lookup, &q, &a, &out);
  if (status == 200) {
    expect(out == NULL, "no error object on success");
    for (int i = 0; i < HTTP_VIEW_PARAMS; i++) {
      const char *name = view->params[i], *v = a.values[i];
      if (!name || !v) continue;
      if (strcmp(name, "limit") == 0) {
        char *end = NULL;
        long n = strtol(v, &end, 10);
        expect(*end == '\0' && n >= 2 && n <= 1001, "limit + 1 is 2..1001");
      } else if (strncmp(name, "after", 5) == 0) {
        size_t k = (size_t)(name[5] - '0');
        expect(view->keys[k] != NULL, "a cursor value belongs to a sort key");
        if (view->keys[k][0] == '#') {
          char *end = NULL;
          (void)strtoll(v, &end, 10);
          expect(*end == '\0' && end != v, "a number key of the cursor is a number");
        } else {
          expect(fl_id_valid(v), "an id key of the cursor is an id");
        }
      } else if (strcmp(name, "state") == 0) {
        expect(state_like(v), "state is a state name");
      } else {
        expect(fl_id_valid(v), "an id parameter is a valid id");
      }
    }
  } else {
    expect(status == 400, "a refusal is a 400");
    expect(cJSON_IsString(cJSON_GetObjectItem(out, "error")), "a refusal carries error");
  }
  cJSON_Delete(out);
  free(text);
  return 0;
}
