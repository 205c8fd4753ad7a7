/* Fuzz target: decode, encode, decode again. Whatever fl_msg_decode()
 * accepts, fl_msg_encode() must encode, the encoding must decode to the same
 * message (field for field), and encoding that again must give the same
 * bytes (the canonical form is stable). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void broken(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_codec_roundtrip: %s%s%s\n", what, detail ? ": " : "",
          detail ? detail : "");
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static fl_msg first, second; /* fl_msg is large: keep it off the stack */
  static uint8_t wire[2 * FL_MAX_MSG_BYTES], again[2 * FL_MAX_MSG_BYTES];
  fl_decode_error err;
  memset(&first, 0, sizeof first);
  memset(&second, 0, sizeof second);
  if (fl_msg_decode(data, size, &first, NULL) != FL_OK) return 0;
  size_t n = 0, n2 = 0;
  int rc = fl_msg_encode(&first, wire, sizeof wire, &n);
  if (rc != FL_OK) broken("a decoded message does not encode", fl_errname(rc));
  rc = fl_msg_decode(wire, n, &second, &err);
  if (rc != FL_OK) broken("the encoding of a decoded message does not decode", err.detail);
  if (memcmp(&first, &second, sizeof first) != 0) {
    size_t at = 0;
    while (((const uint8_t *)&first)[at] == ((const uint8_t *)&second)[at]) at++;
    char where[96];
    snprintf(where, sizeof where, "type %s, first difference at byte %zu of fl_msg",
             fl_msg_type_name(first.env.type), at);
    broken("decode(encode(m)) differs from m", where);
  }
  rc = fl_msg_encode(&second, again, sizeof again, &n2);
  if (rc != FL_OK || n2 != n || memcmp(wire, again, n) != 0)
    broken("encoding is not stable", fl_msg_type_name(first.env.type));
  return 0;
}
