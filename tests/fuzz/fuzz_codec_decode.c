/* Fuzz target: fl_msg_decode() on any bytes (an MQTT payload from anyone
 * who may publish). Whatever the input, the decoder must return without a
 * memory error or undefined behaviour; when it accepts a message, the message
 * must keep the codec's promises (a known type, NUL-terminated texts, valid
 * ids in the envelope); when it refuses, the error must say why. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void expect(int cond, const char *what) {
  if (cond) return;
  fprintf(stderr, "fuzz_codec_decode: broken promise: %s\n", what);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fl_msg m;
  fl_decode_error err;
  memset(&m, 0xa5, sizeof m); /* the decoder must not rely on a zeroed output */
  int rc = fl_msg_decode(data, size, &m, &err);
  expect(err.code == rc, "err.code is the returned code");
  expect(memchr(err.detail, '\0', sizeof err.detail) != NULL, "error detail NUL-terminated");
  if (rc != FL_OK) {
    expect(fl_errname(rc) != NULL && err.detail[0] != '\0', "a refusal says why");
    return 0;
  }
  expect(fl_msg_type_name(m.env.type) != NULL, "accepted message has a known type");
  expect(m.env.v == FL_PROTO_VERSION, "accepted message has version 1");
  expect(memchr(m.env.mid, '\0', sizeof m.env.mid) && memchr(m.env.dev, '\0', sizeof m.env.dev) &&
             memchr(m.env.corr, '\0', sizeof m.env.corr),
         "envelope texts NUL-terminated");
  expect(fl_id_valid(m.env.mid) && fl_id_valid(m.env.dev), "mid and dev are valid ids");
  expect(!m.env.corr[0] || fl_id_valid(m.env.corr), "corr is empty or a valid id");
  return 0;
}
