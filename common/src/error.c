#include "fleet/error.h"

#include <stddef.h>

struct err_row {
  int code;
  const char *name;
  const char *text;
};

static const struct err_row err_rows[] = {
    {FL_OK, "ok", "success"},
    {FL_ERR_TOO_LARGE, "too_large", "message larger than the size cap"},
    {FL_ERR_MALFORMED, "malformed", "not well-formed CBOR or truncated"},
    {FL_ERR_TRAILING, "trailing", "trailing bytes after the message"},
    {FL_ERR_INDEFINITE, "indefinite", "indefinite-length item (only definite lengths allowed)"},
    {FL_ERR_TOO_DEEP, "too_deep", "nesting deeper than allowed"},
    {FL_ERR_DUP_KEY, "dup_key", "duplicate map key"},
    {FL_ERR_WRONG_TYPE, "wrong_type", "field has the wrong type"},
    {FL_ERR_MISSING, "missing", "required field missing"},
    {FL_ERR_UNKNOWN_TYPE, "unknown_type", "unknown message type"},
    {FL_ERR_BAD_VALUE, "bad_value", "field value out of range"},
    {FL_ERR_VERSION, "version", "unsupported protocol version"},
    {FL_ERR_TOPIC, "topic", "topic not in the tree or device id mismatch"},
    {FL_ERR_NOMEM, "nomem", "out of memory"},
    {FL_ERR_BUFFER, "buffer", "buffer too small"},
    {FL_ERR_IO, "io", "input/output error"},
    {FL_ERR_DB, "db", "database error"},
    {FL_ERR_MQTT, "mqtt", "MQTT client error"},
    {FL_ERR_CONFIG, "config", "bad configuration"},
    {FL_ERR_NOT_FOUND, "not_found", "not found"},
    {FL_ERR_CONFLICT, "conflict", "conflict with existing state"},
    {FL_ERR_STATE, "state", "transition not allowed in the current state"},
    {FL_ERR_FULL, "full", "store or queue full"},
    {FL_ERR_TIMEOUT, "timeout", "timed out"},
    {FL_ERR_UNAVAILABLE, "unavailable", "dependency unavailable"},
    {FL_ERR_INVALID, "invalid", "invalid argument"},
    {FL_ERR_SHUTDOWN, "shutdown", "shutting down"},
};

static const struct err_row *err_find(int err) {
  for (size_t i = 0; i < sizeof err_rows / sizeof err_rows[0]; i++)
    if (err_rows[i].code == err) return &err_rows[i];
  return NULL;
}

const char *fl_strerror(int err) {
  const struct err_row *r = err_find(err);
  return r ? r->text : "unknown error";
}

const char *fl_errname(int err) {
  const struct err_row *r = err_find(err);
  return r ? r->name : "unknown";
}
