/* One error enum for the whole project. 0 is success; every failure is negative
 * so that functions can return a count or an error in one int.
 * Codes of paho, SQLite and libcbor are translated at the edge of the module
 * that calls them. */
#ifndef FLEET_ERROR_H
#define FLEET_ERROR_H

typedef enum fl_err {
  FL_OK = 0,
  /* decoding: each rejection of a message has its own code */
  FL_ERR_TOO_LARGE = -1,     /* payload over FL_MAX_MSG_BYTES */
  FL_ERR_MALFORMED = -2,     /* not well-formed CBOR, or truncated */
  FL_ERR_TRAILING = -3,      /* bytes after the first CBOR item */
  FL_ERR_INDEFINITE = -4,    /* indefinite-length string, array or map */
  FL_ERR_TOO_DEEP = -5,      /* nesting over FL_MAX_DEPTH */
  FL_ERR_DUP_KEY = -6,       /* a map key appears twice */
  FL_ERR_WRONG_TYPE = -7,    /* a field or the top item has the wrong CBOR type */
  FL_ERR_MISSING = -8,       /* a required field is absent */
  FL_ERR_UNKNOWN_TYPE = -9,  /* "type" names no message type of this version */
  FL_ERR_BAD_VALUE = -10,    /* right type, value out of range (id charset, length, enum) */
  FL_ERR_VERSION = -11,      /* "v" is not a protocol version this build speaks */
  FL_ERR_TOPIC = -12,        /* topic not in the tree, or its device id differs from "dev" */
  /* everything else */
  FL_ERR_NOMEM = -20,
  FL_ERR_BUFFER = -21,       /* output buffer too small */
  FL_ERR_IO = -22,
  FL_ERR_DB = -23,           /* SQLite failed */
  FL_ERR_MQTT = -24,         /* paho failed */
  FL_ERR_CONFIG = -25,
  FL_ERR_NOT_FOUND = -26,
  FL_ERR_CONFLICT = -27,     /* already exists / already taken */
  FL_ERR_STATE = -28,        /* transition not allowed from the current state */
  FL_ERR_FULL = -29,         /* a bounded store or queue is full */
  FL_ERR_TIMEOUT = -30,
  FL_ERR_UNAVAILABLE = -31,  /* a dependency is down (payment provider, broker) */
  FL_ERR_INVALID = -32,      /* bad argument from a caller */
  FL_ERR_SHUTDOWN = -33,
} fl_err;

/* Returns a static, human-readable description of err; never NULL. */
const char *fl_strerror(int err);

/* Returns a static short token for err ("dup_key", "too_deep", ...) used in
 * logs, dead-letter rows and test assertions; never NULL. */
const char *fl_errname(int err);

#endif
