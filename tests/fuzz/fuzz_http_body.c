/* Fuzz target: the body of POST /v1/vehicles (any bytes, as an operator's
 * client may send them) through http__vehicle_op, the function of
 * hub/http_ops.c that turns it into the engine's register op. Either it refuses
 * with a 400 and an error object, or the op holds a valid id and station, a
 * name without control characters and a rate within 1..100,000,000 cents. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void expect(int cond, const char *what) {
  if (cond) return;
  fprintf(stderr, "fuzz_http_body: broken promise: %s\n", what);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* MHD hands the handler a NUL-terminated copy of the body (http.c). */
  char *body = malloc(size + 1);
  if (!body) return 0;
  memcpy(body, data, size);
  body[size] = '\0';
  hub_op op;
  cJSON *out = NULL;
  unsigned status = http__vehicle_op(body, size, &op, &out);
  if (status == 200) {
    expect(out == NULL, "no error object on success");
    expect(op.kind == HUB_OP_VEHICLE_REGISTER, "a register op");
    expect(fl_id_valid(op.vehicle) && fl_id_valid(op.station), "valid vehicle and station ids");
    expect(memchr(op.name, '\0', sizeof op.name) != NULL, "name NUL-terminated");
    for (const char *p = op.name; *p; p++)
      expect((unsigned char)*p >= 0x20 && *p != 0x7f, "no control character in name");
    expect(op.rate_cents >= 1 && op.rate_cents <= 100000000, "rate in range");
  } else {
    expect(status == 400, "a refusal is a 400");
    expect(cJSON_IsString(cJSON_GetObjectItem(out, "error")) &&
               cJSON_IsString(cJSON_GetObjectItem(out, "code")),
           "a refusal carries error and code");
  }
  cJSON_Delete(out);
  free(body);
  return 0;
}
