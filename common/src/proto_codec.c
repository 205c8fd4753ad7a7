/* The CBOR codec of fleet/v1 (proto.h; normative text: docs/protocol.md).
 *
 * Everything is driven by descriptor tables: one `struct record` per map
 * (envelope, every message body, one booking), listing its fields with wire
 * key, kind, required flag, offset into the C struct and limits. The encoder
 * and the decoder walk the same tables and share the value checks, so what
 * one writes the other accepts.
 *
 * Encoding writes definite-length CBOR straight into the caller's buffer
 * with libcbor's low-level encoders; no allocation.
 *
 * Decoding runs libcbor's streaming decoder (cbor_stream_decode) one item
 * head at a time and keeps its own explicit stack of at most FL_MAX_DEPTH
 * open containers: no allocation, no recursion, no tree. Every structural
 * rule (definite lengths, depth, duplicate keys, text keys, UTF-8, no tags,
 * trailing bytes) is checked on the way, and known fields are stored into the
 * output struct as they pass. Unknown keys are walked with the same checks
 * and their values dropped. If "body" comes before "type" (the encoder never
 * does that, but the order of map keys is free), the body is first walked as
 * unknown and decoded in a second walk over its bytes once the type is known.
 */
#include <cbor.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/partition.h"
#include "fleet/proto.h"

_Static_assert(FL_PARTITION_MAX + 1 == FL_PARTITIONS_MAX, "partition numbers 0..count-1");

/* ---------------------------------------------------------------- names */

struct nameset {
  const char *const *names; /* index = value; NULL entries are not names */
  int count;
};

#define NAMESET(arr) \
  { arr, (int)(sizeof arr / sizeof arr[0]) }

static const char *const msg_type_names[FL_MSG__COUNT] = {
    [FL_MSG_RENTAL_REQUEST] = "rental_request",
    [FL_MSG_RENTAL_CANCEL] = "rental_cancel",
    [FL_MSG_RENTAL_RETURN] = "rental_return",
    [FL_MSG_BOOKING_REQUEST] = "booking_request",
    [FL_MSG_BOOKING_CANCEL] = "booking_cancel",
    [FL_MSG_FAULT] = "fault",
    [FL_MSG_LOCK] = "lock",
    [FL_MSG_TELEMETRY] = "telemetry",
    [FL_MSG_COMMAND_RESULT] = "command_result",
    [FL_MSG_HELLO] = "hello",
    [FL_MSG_OFFLINE] = "offline",
    [FL_MSG_DEVICE_ACK] = "device_ack",
    [FL_MSG_ACK] = "ack",
    [FL_MSG_SYNC] = "sync",
    [FL_MSG_DECISION] = "decision",
    [FL_MSG_COMMAND] = "command",
    [FL_MSG_HUB_STATUS] = "hub_status",
    [FL_MSG_VEHICLE_STATE] = "vehicle_state",
    [FL_MSG_RENTAL_STATE] = "rental_state",
    [FL_MSG_REPAIR_STATE] = "repair_state",
    [FL_MSG_NOTIFY] = "notify",
    [FL_MSG_QUERY] = "query",
    [FL_MSG_ANSWER] = "answer",
    [FL_MSG_BOOKING_STATE] = "booking_state",
    [FL_MSG_STATION_STATE] = "station_state",
    [FL_MSG_PARTITION_STATUS] = "partition_status",
    [FL_MSG_NOTICES] = "notices",
};
static const char *const severity_names[] = {NULL, "info", "warning", "critical"};
static const char *const role_names[] = {NULL, "vehicle", "kiosk"};
static const char *const action_names[] = {NULL, "unlock", "lock", "bookings"};
static const char *const cmd_status_names[] = {NULL, "applied", "expired", "refused"};
static const char *const subject_names[] = {NULL, "rental", "booking"};
static const char *const query_what_names[] = {NULL, "available", "customer"};
/* Closed sets of text values (not C enums): read-model states, notify kinds. */
static const char *const vehicle_state_names[] = {"AVAILABLE",        "RESERVED",  "RENTED",
                                                  "REPAIR_REQUESTED", "IN_REPAIR", "RETIRED"};
static const char *const rental_state_names[] = {"REQUESTED",        "PAYMENT_PENDING", "ACTIVE",
                                                 "RETURNED",         "COMPLETED",       "REJECTED",
                                                 "CANCEL_REQUESTED", "CANCELLED"};
static const char *const repair_state_names[] = {"REQUESTED", "IN_PROGRESS", "COMPLETED"};
static const char *const booking_state_names[] = {"PAYMENT_PENDING", "HELD", "USED", "CANCELLED", "EXPIRED",
                                                  "REJECTED"};
static const char *const notify_kind_names[] = {"vehicle", "rental",  "repair",
                                                "booking", "alert",   "payment"};

static const struct nameset msg_types = NAMESET(msg_type_names);
static const struct nameset severities = NAMESET(severity_names);
static const struct nameset roles = NAMESET(role_names);
static const struct nameset actions = NAMESET(action_names);
static const struct nameset cmd_statuses = NAMESET(cmd_status_names);
static const struct nameset subjects = NAMESET(subject_names);
static const struct nameset vehicle_states = NAMESET(vehicle_state_names);
static const struct nameset rental_states = NAMESET(rental_state_names);
static const struct nameset repair_states = NAMESET(repair_state_names);
static const struct nameset notify_kinds = NAMESET(notify_kind_names);
static const struct nameset query_whats = NAMESET(query_what_names);
static const struct nameset booking_states = NAMESET(booking_state_names);

/* Returns the index of the name p[0..n) in s, or -1. */
static int nameset_find(const struct nameset *s, const uint8_t *p, size_t n) {
  for (int i = 0; i < s->count; i++) {
    const char *name = s->names[i];
    if (name && strlen(name) == n && memcmp(name, p, n) == 0) return i;
  }
  return -1;
}

static const char *nameset_name(const struct nameset *s, int v) {
  return v >= 0 && v < s->count ? s->names[v] : NULL;
}

static int nameset_value(const struct nameset *s, const char *name) {
  int i = name ? nameset_find(s, (const uint8_t *)name, strlen(name)) : -1;
  return i < 0 ? 0 : i;
}

const char *fl_msg_type_name(fl_msg_type t) { return nameset_name(&msg_types, (int)t); }
fl_msg_type fl_msg_type_from_name(const char *n) {
  return (fl_msg_type)nameset_value(&msg_types, n);
}
const char *fl_severity_name(fl_severity s) { return nameset_name(&severities, (int)s); }
fl_severity fl_severity_from_name(const char *n) {
  return (fl_severity)nameset_value(&severities, n);
}
const char *fl_role_name(fl_role r) { return nameset_name(&roles, (int)r); }
fl_role fl_role_from_name(const char *n) { return (fl_role)nameset_value(&roles, n); }
const char *fl_action_name(fl_action a) { return nameset_name(&actions, (int)a); }
fl_action fl_action_from_name(const char *n) { return (fl_action)nameset_value(&actions, n); }
const char *fl_cmd_status_name(fl_cmd_status s) { return nameset_name(&cmd_statuses, (int)s); }
fl_cmd_status fl_cmd_status_from_name(const char *n) {
  return (fl_cmd_status)nameset_value(&cmd_statuses, n);
}
const char *fl_subject_name(fl_subject s) { return nameset_name(&subjects, (int)s); }
fl_subject fl_subject_from_name(const char *n) { return (fl_subject)nameset_value(&subjects, n); }
const char *fl_query_what_name(fl_query_what w) { return nameset_name(&query_whats, (int)w); }
fl_query_what fl_query_what_from_name(const char *n) {
  return (fl_query_what)nameset_value(&query_whats, n);
}

/* ------------------------------------------------------- value checks */

static bool id_char(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

static bool id_bytes_valid(const uint8_t *p, size_t n, size_t max) {
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++)
    if (!id_char(p[i])) return false;
  return true;
}

/* strnlen without needing POSIX: length of s, at most max. */
static size_t bounded_len(const char *s, size_t max) {
  const char *end = memchr(s, '\0', max);
  return end ? (size_t)(end - s) : max;
}

bool fl_id_valid(const char *s) {
  return s && id_bytes_valid((const uint8_t *)s, bounded_len(s, FL_ID_MAX + 1), FL_ID_MAX);
}

/* True if p[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF) without U+0000. */
static bool utf8_valid(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = p[i];
    if (c >= 0x01 && c < 0x80) {
      i++;
      continue;
    }
    size_t more;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
      more = 1, cp = c & 0x1fu, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      more = 2, cp = c & 0x0fu, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      more = 3, cp = c & 0x07u, min = 0x10000;
    } else {
      return false; /* NUL, continuation byte, 0xc0/0xc1, 0xf5.. */
    }
    if (n - i <= more) return false;
    for (size_t k = 1; k <= more; k++) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += more + 1;
  }
  return true;
}

/* ---------------------------------------------------- descriptor tables */

enum kind {
  K_ID,      /* tstr, id charset, 1..size-1 bytes, optionally one of `names` */
  K_TEXT,    /* tstr, 0..size-1 bytes of UTF-8 */
  K_UINT,    /* uint in umin..umax, stored in 4 or 8 bytes */
  K_INT,     /* int (uint or nint), int64_t */
  K_BOOL,    /* true / false */
  K_NUM,     /* int or float of any width, dmin..dmax, double */
  K_ENUM,    /* tstr, one of `names`, stored as the C enum */
  K_ARRAY,   /* array of `elem`, count umin..umax stored at off2 */
  K_MAP,     /* map with the fields of `rec` (a booking, the envelope) */
  K_VERSION, /* envelope "v" */
  K_TYPE,    /* envelope "type" */
  K_BODY,    /* envelope "body": map with the fields of the message type */
};

struct record;

struct field {
  const char *key;
  uint8_t klen;
  uint8_t kind;
  bool req;
  bool empty_ok;   /* K_ID: "" is allowed too (a required field that may be empty) */
  uint16_t size;   /* bytes of the C member (text: buffer incl. NUL) */
  uint16_t off;    /* offset of the member in its record */
  uint16_t off2;   /* K_ARRAY: offset of the count member */
  uint16_t stride; /* K_ARRAY: bytes between elements */
  const struct nameset *names;
  const struct field *elem; /* K_ARRAY: the element */
  const struct record *rec; /* K_MAP */
  uint64_t umin, umax;
  double dmin, dmax;
};

/* Why a value or a record breaks the contract. */
struct verr {
  int code;
  const char *field; /* key within the record, or NULL for the value itself */
  char msg[80];
};

typedef void (*record_check_fn)(const uint8_t *base, uint32_t seen, const struct record *r,
                                struct verr *e);

struct record {
  const struct field *fields;
  uint8_t n;
  uint16_t size;         /* sizeof the C struct */
  bool corr_required;    /* message types only */
  record_check_fn check; /* cross-field rules, or NULL */
};

#define MSIZE(T, m) sizeof(((T *)0)->m)
#define UMAX_OF(T, m) (MSIZE(T, m) == 4 ? (uint64_t)UINT32_MAX : UINT64_MAX)
#define FIELD(T, k, kd, rq, m, ...)                                              \
  {                                                                              \
    .key = k, .klen = sizeof(k) - 1, .kind = kd, .req = rq, .size = MSIZE(T, m), \
    .off = offsetof(T, m), __VA_ARGS__                                           \
  }
#define REQ true
#define OPT false
#define F_ID(T, k, m, rq) FIELD(T, k, K_ID, rq, m, .names = NULL)
#define F_ID0(T, k, m, rq) FIELD(T, k, K_ID, rq, m, .empty_ok = true)
#define F_NAME(T, k, m, rq, set) FIELD(T, k, K_ID, rq, m, .names = &set)
#define F_TEXT(T, k, m, rq) FIELD(T, k, K_TEXT, rq, m, .names = NULL)
#define F_UINT(T, k, m, rq, lo, hi) FIELD(T, k, K_UINT, rq, m, .umin = lo, .umax = hi)
#define F_U(T, k, m, rq) F_UINT(T, k, m, rq, 0, UMAX_OF(T, m))
#define F_INT(T, k, m, rq) FIELD(T, k, K_INT, rq, m, .names = NULL)
#define F_BOOL(T, k, m, rq) FIELD(T, k, K_BOOL, rq, m, .names = NULL)
#define F_NUM(T, k, m, rq, lo, hi) FIELD(T, k, K_NUM, rq, m, .dmin = lo, .dmax = hi)
#define F_ENUM(T, k, m, rq, set) FIELD(T, k, K_ENUM, rq, m, .names = &set)
#define F_ARRAY(T, k, m, cnt, rq, el, lo, hi)                                             \
  FIELD(T, k, K_ARRAY, rq, m, .off2 = offsetof(T, cnt), .stride = sizeof(((T *)0)->m[0]), \
        .elem = &el, .umin = lo, .umax = hi)
#define RECORD(T, arr, corr, fn) \
  { arr, (uint8_t)(sizeof arr / sizeof arr[0]), sizeof(T), corr, fn }

_Static_assert(sizeof(fl_msg_type) == sizeof(int) && sizeof(fl_severity) == sizeof(int) &&
                   sizeof(fl_role) == sizeof(int) && sizeof(fl_action) == sizeof(int) &&
                   sizeof(fl_cmd_status) == sizeof(int) && sizeof(fl_subject) == sizeof(int) &&
                   sizeof(fl_query_what) == sizeof(int),
               "enums are stored as int");
_Static_assert(FL_MAX_MSG_BYTES <= 0xffff, "key offsets are packed in 16 bits");

static void span_check(const uint8_t *base, uint32_t seen, const struct record *r, struct verr *e);
static void command_check(const uint8_t *base, uint32_t seen, const struct record *r,
                          struct verr *e);
static void envelope_check(const uint8_t *base, uint32_t seen, const struct record *r,
                           struct verr *e);
static void query_check(const uint8_t *base, uint32_t seen, const struct record *r,
                        struct verr *e);
static void answer_check(const uint8_t *base, uint32_t seen, const struct record *r,
                         struct verr *e);

/* Bodies. Field order is the canonical wire order. */
static const struct field rental_request_f[] = {
    F_ID(fl_rental_request, "vehicle", vehicle, REQ),
    F_ID(fl_rental_request, "customer", customer, REQ),
    F_UINT(fl_rental_request, "minutes", minutes, REQ, 1, 43200),
};
static const struct field rental_cancel_f[] = {F_TEXT(fl_rental_cancel, "reason", reason, OPT)};
static const struct field rental_return_f[] = {
    F_ID(fl_rental_return, "station", station, OPT),
    F_U(fl_rental_return, "odometer_m", odometer_m, OPT),
};
static const struct field booking_request_f[] = {
    F_ID(fl_booking_request, "vehicle", vehicle, REQ),
    F_ID(fl_booking_request, "customer", customer, REQ),
    F_INT(fl_booking_request, "start_ms", start_ms, REQ),
    F_INT(fl_booking_request, "end_ms", end_ms, REQ),
};
static const struct field booking_cancel_f[] = {F_TEXT(fl_booking_cancel, "reason", reason, OPT)};
static const struct field dtc_elem = {
    .key = "dtcs", .klen = 4, .kind = K_TEXT, .size = FL_DTC_MAX + 1};
static const struct field fault_f[] = {
    F_ARRAY(fl_fault, "dtcs", dtcs, n_dtcs, REQ, dtc_elem, 1, FL_MAX_DTCS),
    F_ENUM(fl_fault, "severity", severity, REQ, severities),
    F_TEXT(fl_fault, "text", text, OPT),
};
static const struct field lock_f[] = {
    F_BOOL(fl_lock, "locked", locked, REQ),   F_ID(fl_lock, "customer", customer, OPT),
    F_BOOL(fl_lock, "offline", offline, OPT), F_TEXT(fl_lock, "reason", reason, OPT),
    F_BOOL(fl_lock, "refused", refused, OPT),
};
static const struct field telemetry_f[] = {
    F_U(fl_telemetry, "odometer_m", odometer_m, REQ),
    F_UINT(fl_telemetry, "energy_pct", energy_pct, REQ, 0, 100),
    F_NUM(fl_telemetry, "lat", lat, REQ, -90.0, 90.0),
    F_NUM(fl_telemetry, "lon", lon, REQ, -180.0, 180.0),
    F_U(fl_telemetry, "speed_kmh", speed_kmh, OPT),
};
static const struct field command_result_f[] = {
    F_U(fl_command_result, "cmd_seq", cmd_seq, REQ),
    F_ENUM(fl_command_result, "status", status, REQ, cmd_statuses),
    F_TEXT(fl_command_result, "reason", reason, OPT),
};
static const struct field hello_f[] = {
    F_ENUM(fl_hello, "role", role, REQ, roles),
    F_U(fl_hello, "last_seq", last_seq, REQ),
    F_U(fl_hello, "last_ack", last_ack, REQ),
    F_U(fl_hello, "applied", applied, REQ),
    F_ID(fl_hello, "sw", sw, OPT),
};
static const struct field offline_f[] = {F_TEXT(fl_offline, "reason", reason, OPT)};
static const struct field device_ack_f[] = {F_U(fl_device_ack, "upto", upto, REQ)};
static const struct field ack_f[] = {F_U(fl_ack, "upto", upto, REQ)};
static const struct field sync_f[] = {
    F_U(fl_sync, "acked", acked, REQ),
    F_U(fl_sync, "next_seq", next_seq, REQ),
    F_U(fl_sync, "down_seq", down_seq, REQ),
};
static const struct field decision_f[] = {
    F_ENUM(fl_decision, "subject", subject, REQ, subjects),
    F_ID(fl_decision, "state", state, REQ),
    F_BOOL(fl_decision, "ok", ok, REQ),
    F_TEXT(fl_decision, "reason", reason, OPT),
    F_U(fl_decision, "retry_after_s", retry_after_s, OPT),
    F_INT(fl_decision, "charged_cents", charged_cents, OPT),
    F_INT(fl_decision, "refunded_cents", refunded_cents, OPT),
    F_INT(fl_decision, "fee_cents", fee_cents, OPT),
    F_INT(fl_decision, "due_ms", due_ms, OPT),
    F_U(fl_decision, "upto", upto, OPT), /* rev 1.2 */
};
static const struct field booking_f[] = {
    F_ID(fl_booking, "booking", booking, REQ),
    F_ID(fl_booking, "customer", customer, REQ),
    F_INT(fl_booking, "start_ms", start_ms, REQ),
    F_INT(fl_booking, "end_ms", end_ms, REQ),
};
static const struct record booking_rec = RECORD(fl_booking, booking_f, false, span_check);
static const struct field booking_elem = {
    .key = "bookings", .klen = 8, .kind = K_MAP, .size = sizeof(fl_booking), .rec = &booking_rec};
static const struct field command_f[] = {
    F_ENUM(fl_command, "action", action, REQ, actions),
    F_INT(fl_command, "expires_ms", expires_ms, REQ),
    F_ID(fl_command, "customer", customer, OPT),
    /* optional in the table; required for action "bookings" (command_check) */
    F_ARRAY(fl_command, "bookings", bookings, n_bookings, OPT, booking_elem, 0, FL_MAX_BOOKINGS),
};
static const struct field hub_status_f[] = {F_BOOL(fl_hub_status, "online", online, REQ)};
static const struct field vehicle_state_f[] = {
    F_ID(fl_vehicle_state, "vehicle", vehicle, REQ),
    F_TEXT(fl_vehicle_state, "name", name, OPT),
    F_ID(fl_vehicle_state, "station", station, OPT),
    F_INT(fl_vehicle_state, "rate_cents", rate_cents, OPT),
    F_NAME(fl_vehicle_state, "state", state, REQ, vehicle_states),
    F_ID(fl_vehicle_state, "rental", rental, OPT),
    F_UINT(fl_vehicle_state, "energy_pct", energy_pct, OPT, 0, 100),
    F_NUM(fl_vehicle_state, "lat", lat, OPT, -90.0, 90.0),
    F_NUM(fl_vehicle_state, "lon", lon, OPT, -180.0, 180.0),
    F_BOOL(fl_vehicle_state, "online", online, OPT),
};
static const struct field rental_state_f[] = {
    F_ID(fl_rental_state, "rental", rental, REQ),
    F_ID(fl_rental_state, "vehicle", vehicle, REQ),
    F_ID(fl_rental_state, "customer", customer, REQ),
    F_NAME(fl_rental_state, "state", state, REQ, rental_states),
    F_TEXT(fl_rental_state, "reason", reason, OPT),
    F_INT(fl_rental_state, "charged_cents", charged_cents, OPT),
    F_INT(fl_rental_state, "refunded_cents", refunded_cents, OPT),
    F_INT(fl_rental_state, "fee_cents", fee_cents, OPT),
    F_INT(fl_rental_state, "due_ms", due_ms, OPT),
};
static const struct field repair_state_f[] = {
    F_ID(fl_repair_state, "repair", repair, REQ),
    F_ID(fl_repair_state, "vehicle", vehicle, REQ),
    F_NAME(fl_repair_state, "state", state, REQ, repair_states),
    F_TEXT(fl_repair_state, "text", text, OPT),
};
static const struct field notify_f[] = {
    F_NAME(fl_notify, "kind", kind, REQ, notify_kinds),
    F_ID(fl_notify, "id", id, REQ),
    F_ID(fl_notify, "from", from, OPT),
    F_ID(fl_notify, "to", to, REQ),
    F_TEXT(fl_notify, "text", text, OPT),
    F_ID(fl_notify, "customer", customer, OPT),
};
static const struct field query_f[] = {
    F_ENUM(fl_query, "what", what, REQ, query_whats),
    F_ID(fl_query, "station", station, OPT),
    F_INT(fl_query, "start_ms", start_ms, OPT),
    F_INT(fl_query, "end_ms", end_ms, OPT),
    F_ID(fl_query, "customer", customer, OPT),
};
static const struct field answer_vehicle_f[] = {
    F_ID(fl_answer_vehicle, "vehicle", vehicle, REQ),
    F_TEXT(fl_answer_vehicle, "name", name, OPT),
    F_ID(fl_answer_vehicle, "station", station, OPT),
    F_INT(fl_answer_vehicle, "rate_cents", rate_cents, OPT),
    F_UINT(fl_answer_vehicle, "energy_pct", energy_pct, OPT, 0, 100),
};
static const struct record answer_vehicle_rec =
    RECORD(fl_answer_vehicle, answer_vehicle_f, false, NULL);
static const struct field answer_vehicle_elem = {.key = "vehicles",
                                                 .klen = 8,
                                                 .kind = K_MAP,
                                                 .size = sizeof(fl_answer_vehicle),
                                                 .rec = &answer_vehicle_rec};
static const struct field answer_rental_f[] = {
    F_ID(fl_answer_rental, "rental", rental, REQ),
    F_ID(fl_answer_rental, "vehicle", vehicle, REQ),
    F_NAME(fl_answer_rental, "state", state, REQ, rental_states),
    F_INT(fl_answer_rental, "due_ms", due_ms, OPT),
    F_INT(fl_answer_rental, "charged_cents", charged_cents, OPT),
    F_INT(fl_answer_rental, "fee_cents", fee_cents, OPT),
    F_INT(fl_answer_rental, "running_fee_cents", running_fee_cents, OPT),
};
static const struct record answer_rental_rec =
    RECORD(fl_answer_rental, answer_rental_f, false, NULL);
static const struct field answer_rental_elem = {.key = "rentals",
                                                .klen = 7,
                                                .kind = K_MAP,
                                                .size = sizeof(fl_answer_rental),
                                                .rec = &answer_rental_rec};
static const struct field answer_booking_f[] = {
    F_ID(fl_answer_booking, "booking", booking, REQ),
    F_ID(fl_answer_booking, "vehicle", vehicle, REQ),
    F_NAME(fl_answer_booking, "state", state, REQ, booking_states),
    F_INT(fl_answer_booking, "start_ms", start_ms, REQ),
    F_INT(fl_answer_booking, "end_ms", end_ms, REQ),
    F_INT(fl_answer_booking, "deposit_cents", deposit_cents, OPT),
};
static const struct record answer_booking_rec =
    RECORD(fl_answer_booking, answer_booking_f, false, span_check);
static const struct field answer_booking_elem = {.key = "bookings",
                                                 .klen = 8,
                                                 .kind = K_MAP,
                                                 .size = sizeof(fl_answer_booking),
                                                 .rec = &answer_booking_rec};
static const struct field answer_f[] = {
    F_ENUM(fl_answer, "what", what, REQ, query_whats),
    F_BOOL(fl_answer, "ok", ok, REQ),
    F_TEXT(fl_answer, "reason", reason, OPT),
    F_ARRAY(fl_answer, "vehicles", vehicles, n_vehicles, OPT, answer_vehicle_elem, 0,
            FL_MAX_ANSWER_VEHICLES),
    F_ARRAY(fl_answer, "rentals", rentals, n_rentals, OPT, answer_rental_elem, 0,
            FL_MAX_ANSWER_RENTALS),
    F_ARRAY(fl_answer, "bookings", bookings, n_bookings, OPT, answer_booking_elem, 0,
            FL_MAX_ANSWER_BOOKINGS),
    F_INT(fl_answer, "charged_cents", charged_cents, OPT),
    F_INT(fl_answer, "refunded_cents", refunded_cents, OPT),
    F_INT(fl_answer, "fees_paid_cents", fees_paid_cents, OPT),
    F_INT(fl_answer, "fees_owed_cents", fees_owed_cents, OPT),
    F_BOOL(fl_answer, "more", more, OPT),
};
static const struct field booking_state_f[] = {
    F_ID(fl_booking_state, "booking", booking, REQ),
    F_ID(fl_booking_state, "vehicle", vehicle, REQ),
    F_ID(fl_booking_state, "customer", customer, REQ),
    F_NAME(fl_booking_state, "state", state, REQ, booking_states),
    F_INT(fl_booking_state, "start_ms", start_ms, REQ),
    F_INT(fl_booking_state, "end_ms", end_ms, REQ),
    F_INT(fl_booking_state, "charged_cents", charged_cents, OPT),
    F_INT(fl_booking_state, "refunded_cents", refunded_cents, OPT),
    F_TEXT(fl_booking_state, "reason", reason, OPT),
};
static const struct field station_state_f[] = {
    F_ID(fl_station_state, "station", station, REQ),
    F_U(fl_station_state, "available", available, REQ),
    F_U(fl_station_state, "rented", rented, REQ),
    F_U(fl_station_state, "in_repair", in_repair, REQ),
    F_U(fl_station_state, "booked", booked, REQ),
};
/* revision 1.2 */
static const struct field partition_status_f[] = {
    F_UINT(fl_partition_status, "partition", partition, REQ, 0, FL_PARTITION_MAX),
    F_U(fl_partition_status, "epoch", epoch, REQ),
    F_TEXT(fl_partition_status, "hub", hub, REQ),
    F_BOOL(fl_partition_status, "online", online, REQ),
};
static const struct field notice_f[] = {
    F_ID(fl_notice, "id", id, REQ),
    F_ID0(fl_notice, "from", from, REQ), /* "" when there was none */
    F_ID(fl_notice, "to", to, REQ),
    F_TEXT(fl_notice, "text", text, OPT),
    F_ID(fl_notice, "customer", customer, OPT),
};
static const struct record notice_rec = RECORD(fl_notice, notice_f, false, NULL);
static const struct field notice_elem = {
    .key = "changes", .klen = 7, .kind = K_MAP, .size = sizeof(fl_notice), .rec = &notice_rec};
static const struct field notices_f[] = {
    F_NAME(fl_notices, "kind", kind, REQ, notify_kinds),
    F_ARRAY(fl_notices, "changes", changes, n_changes, REQ, notice_elem, 1, FL_MAX_NOTICES),
};

static const struct record bodies[FL_MSG__COUNT] = {
    [FL_MSG_RENTAL_REQUEST] = RECORD(fl_rental_request, rental_request_f, true, NULL),
    [FL_MSG_RENTAL_CANCEL] = RECORD(fl_rental_cancel, rental_cancel_f, true, NULL),
    [FL_MSG_RENTAL_RETURN] = RECORD(fl_rental_return, rental_return_f, true, NULL),
    [FL_MSG_BOOKING_REQUEST] = RECORD(fl_booking_request, booking_request_f, true, span_check),
    [FL_MSG_BOOKING_CANCEL] = RECORD(fl_booking_cancel, booking_cancel_f, true, NULL),
    [FL_MSG_FAULT] = RECORD(fl_fault, fault_f, false, NULL),
    [FL_MSG_LOCK] = RECORD(fl_lock, lock_f, false, NULL),
    [FL_MSG_TELEMETRY] = RECORD(fl_telemetry, telemetry_f, false, NULL),
    [FL_MSG_COMMAND_RESULT] = RECORD(fl_command_result, command_result_f, false, NULL),
    [FL_MSG_HELLO] = RECORD(fl_hello, hello_f, false, NULL),
    [FL_MSG_OFFLINE] = RECORD(fl_offline, offline_f, false, NULL),
    [FL_MSG_DEVICE_ACK] = RECORD(fl_device_ack, device_ack_f, false, NULL),
    [FL_MSG_ACK] = RECORD(fl_ack, ack_f, false, NULL),
    [FL_MSG_SYNC] = RECORD(fl_sync, sync_f, false, NULL),
    [FL_MSG_DECISION] = RECORD(fl_decision, decision_f, true, NULL),
    [FL_MSG_COMMAND] = RECORD(fl_command, command_f, false, command_check),
    [FL_MSG_HUB_STATUS] = RECORD(fl_hub_status, hub_status_f, false, NULL),
    [FL_MSG_VEHICLE_STATE] = RECORD(fl_vehicle_state, vehicle_state_f, false, NULL),
    [FL_MSG_RENTAL_STATE] = RECORD(fl_rental_state, rental_state_f, false, NULL),
    [FL_MSG_REPAIR_STATE] = RECORD(fl_repair_state, repair_state_f, false, NULL),
    [FL_MSG_NOTIFY] = RECORD(fl_notify, notify_f, false, NULL),
    [FL_MSG_QUERY] = RECORD(fl_query, query_f, true, query_check),
    [FL_MSG_ANSWER] = RECORD(fl_answer, answer_f, true, answer_check),
    [FL_MSG_BOOKING_STATE] = RECORD(fl_booking_state, booking_state_f, false, span_check),
    [FL_MSG_STATION_STATE] = RECORD(fl_station_state, station_state_f, false, NULL),
    [FL_MSG_PARTITION_STATUS] = RECORD(fl_partition_status, partition_status_f, false, NULL),
    [FL_MSG_NOTICES] = RECORD(fl_notices, notices_f, false, NULL),
};

/* The envelope; offsets are into fl_msg. */
static const struct field envelope_f[] = {
    FIELD(fl_msg, "v", K_VERSION, REQ, env.v, .names = NULL),
    FIELD(fl_msg, "type", K_TYPE, REQ, env.type, .names = &msg_types),
    F_ID(fl_msg, "mid", env.mid, REQ),
    F_ID(fl_msg, "dev", env.dev, REQ),
    F_U(fl_msg, "boot", env.boot, REQ),
    F_U(fl_msg, "seq", env.seq, REQ),
    F_INT(fl_msg, "time", env.time_ms, REQ),
    F_ID(fl_msg, "corr", env.corr, OPT),
    FIELD(fl_msg, "body", K_BODY, REQ, body, .names = NULL),
};
/* size: decoding zeroes only the envelope part; each body zeroes its own. */
static const struct record envelope_rec = {envelope_f, sizeof envelope_f / sizeof envelope_f[0],
                                           sizeof(fl_envelope), false, envelope_check};
_Static_assert(offsetof(fl_msg, env) == 0, "the envelope record starts at fl_msg");
static const struct field message_root = {
    .key = "message", .klen = 7, .kind = K_MAP, .size = sizeof(fl_msg), .rec = &envelope_rec};
static const struct field body_root = {.key = "body",
                                       .klen = 4,
                                       .kind = K_BODY,
                                       .size = MSIZE(fl_msg, body),
                                       .off = offsetof(fl_msg, body)};

static const struct record *body_record(int t) {
  return t > FL_MSG_NONE && t < FL_MSG__COUNT ? &bodies[t] : NULL;
}

/* Returns the field of r with key p[0..n) and its index in *idx, or NULL. */
static const struct field *record_field(const struct record *r, const uint8_t *p, size_t n,
                                        unsigned *idx) {
  for (unsigned i = 0; i < r->n; i++) {
    const struct field *f = &r->fields[i];
    if (f->klen == n && memcmp(f->key, p, n) == 0) {
      *idx = i;
      return f;
    }
  }
  return NULL;
}

static bool record_has(const struct record *r, uint32_t seen, const char *key) {
  unsigned i;
  const struct field *f = record_field(r, (const uint8_t *)key, strlen(key), &i);
  return f && (seen & (1u << i));
}

static void verr_set(struct verr *e, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void verr_set(struct verr *e, int code, const char *field, const char *fmt, ...) {
  va_list ap;
  e->code = code;
  e->field = field;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
}

/* A record with a window: its fields "start_ms" and "end_ms" come together
 * (when optional: both or neither) and end_ms > start_ms. */
static void span_check(const uint8_t *base, uint32_t seen, const struct record *r, struct verr *e) {
  unsigned i_start, i_end;
  const struct field *fs = record_field(r, (const uint8_t *)"start_ms", 8, &i_start);
  const struct field *fe = record_field(r, (const uint8_t *)"end_ms", 6, &i_end);
  int64_t start = 0, end = 0;
  if (fs) memcpy(&start, base + fs->off, sizeof start);
  if (fe) memcpy(&end, base + fe->off, sizeof end);
  /* an optional time of 0 is absent: the encoder leaves it out (P-ENC-1) */
  bool has_start = fs && (seen & (1u << i_start)) && (fs->req || start != 0);
  bool has_end = fe && (seen & (1u << i_end)) && (fe->req || end != 0);
  if (has_start != has_end) {
    verr_set(e, FL_ERR_MISSING, has_start ? "end_ms" : "start_ms",
             "start_ms and end_ms go together");
    return;
  }
  if (!has_start) return;
  if (end <= start) verr_set(e, FL_ERR_BAD_VALUE, "end_ms", "not after start_ms");
}

/* query: "customer" needs a customer and nothing else; "available" takes a
 * station and a window, no customer. */
static void query_check(const uint8_t *base, uint32_t seen, const struct record *r,
                        struct verr *e) {
  const fl_query *q = (const fl_query *)(const void *)base;
  static const char *const available_only[] = {"station", "start_ms", "end_ms"};
  if (q->what == FL_QUERY_CUSTOMER) {
    if (!record_has(r, seen, "customer")) {
      verr_set(e, FL_ERR_MISSING, "customer", "required for what \"customer\"");
      return;
    }
    for (size_t i = 0; i < sizeof available_only / sizeof available_only[0]; i++) {
      if (record_has(r, seen, available_only[i])) {
        verr_set(e, FL_ERR_BAD_VALUE, available_only[i], "only for what \"available\"");
        return;
      }
    }
  } else if (record_has(r, seen, "customer")) {
    verr_set(e, FL_ERR_BAD_VALUE, "customer", "only for what \"customer\"");
    return;
  }
  span_check(base, seen, r, e);
}

/* answer: vehicles belong to "available", rentals, bookings and totals to
 * "customer". */
static void answer_check(const uint8_t *base, uint32_t seen, const struct record *r,
                         struct verr *e) {
  const fl_answer *a = (const fl_answer *)(const void *)base;
  static const char *const customer_only[] = {"rentals",         "bookings",
                                              "charged_cents",   "refunded_cents",
                                              "fees_paid_cents", "fees_owed_cents"};
  if (a->what == FL_QUERY_CUSTOMER) {
    if (record_has(r, seen, "vehicles"))
      verr_set(e, FL_ERR_BAD_VALUE, "vehicles", "only for what \"available\"");
    return;
  }
  for (size_t i = 0; i < sizeof customer_only / sizeof customer_only[0]; i++) {
    if (record_has(r, seen, customer_only[i])) {
      verr_set(e, FL_ERR_BAD_VALUE, customer_only[i], "only for what \"customer\"");
      return;
    }
  }
}

static void command_check(const uint8_t *base, uint32_t seen, const struct record *r,
                          struct verr *e) {
  const fl_command *c = (const fl_command *)(const void *)base;
  if (c->action == FL_ACT_BOOKINGS && !record_has(r, seen, "bookings"))
    verr_set(e, FL_ERR_MISSING, "bookings", "required for action \"bookings\"");
}

static void envelope_check(const uint8_t *base, uint32_t seen, const struct record *r,
                           struct verr *e) {
  const fl_msg *m = (const fl_msg *)(const void *)base;
  const struct record *b = body_record((int)m->env.type);
  if (b && b->corr_required && !record_has(r, seen, "corr"))
    verr_set(e, FL_ERR_MISSING, "corr", "required for type %s", fl_msg_type_name(m->env.type));
}

/* Checks a text value p[0..n) against f. Returns true if it fits. */
static bool check_text(const struct field *f, const uint8_t *p, size_t n, struct verr *e) {
  size_t max = (size_t)f->size - 1;
  if (n > max) {
    verr_set(e, FL_ERR_BAD_VALUE, NULL, "longer than %zu bytes", max);
    return false;
  }
  if (f->kind == K_ID) {
    if (n == 0 && f->empty_ok) return true;
    if (!id_bytes_valid(p, n, max)) {
      verr_set(e, FL_ERR_BAD_VALUE, NULL, "not an id (1..%zu of [A-Za-z0-9._:-])", max);
      return false;
    }
    if (f->names && nameset_find(f->names, p, n) < 0) {
      verr_set(e, FL_ERR_BAD_VALUE, NULL, "not a known name");
      return false;
    }
  } else if (!utf8_valid(p, n)) {
    verr_set(e, FL_ERR_BAD_VALUE, NULL, "not UTF-8 text without NUL");
    return false;
  }
  return true;
}

static bool check_uint(const struct field *f, uint64_t v, struct verr *e) {
  if (v < f->umin || v > f->umax) {
    verr_set(e, FL_ERR_BAD_VALUE, NULL, "%llu not in %llu..%llu", (unsigned long long)v,
             (unsigned long long)f->umin, (unsigned long long)f->umax);
    return false;
  }
  return true;
}

static bool check_num(const struct field *f, double v, struct verr *e) {
  if (!(v >= f->dmin && v <= f->dmax)) { /* also rejects NaN */
    verr_set(e, FL_ERR_BAD_VALUE, NULL, "not a number in %g..%g", f->dmin, f->dmax);
    return false;
  }
  return true;
}

/* Scalar access to a member of `size` bytes. */
static uint64_t load_uint(const uint8_t *p, size_t size) {
  if (size == sizeof(uint32_t)) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
  }
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

static void store_uint(uint8_t *p, size_t size, uint64_t v) {
  if (size == sizeof(uint32_t)) {
    uint32_t w = (uint32_t)v;
    memcpy(p, &w, sizeof w);
  } else {
    memcpy(p, &v, sizeof v);
  }
}

static int load_int(const uint8_t *p) {
  int v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* ------------------------------------------------------------- encoder */

struct writer {
  uint8_t *buf;
  size_t cap, len;
  int err;
};

static void w_put(struct writer *w, size_t n) {
  if (n == 0 && !w->err) w->err = FL_ERR_BUFFER;
  w->len += n;
}
#define W_AT(w) ((w)->buf + (w)->len), ((w)->cap - (w)->len)

static void w_text(struct writer *w, const void *p, size_t n) {
  w_put(w, cbor_encode_string_start(n, W_AT(w)));
  if (w->err) return;
  if (w->cap - w->len < n) {
    w->err = FL_ERR_BUFFER;
    return;
  }
  memcpy(w->buf + w->len, p, n);
  w->len += n;
}

static void w_int(struct writer *w, int64_t v) {
  if (v >= 0)
    w_put(w, cbor_encode_uint((uint64_t)v, W_AT(w)));
  else
    w_put(w, cbor_encode_negint((uint64_t)(-1 - v), W_AT(w)));
}

static bool field_present(const struct field *f, const uint8_t *base);
static void enc_record(struct writer *w, const struct record *r, const uint8_t *base);

static void enc_value(struct writer *w, const struct field *f, const uint8_t *base) {
  const uint8_t *p = base + f->off;
  struct verr e = {0};
  switch (f->kind) {
    case K_ID:
    case K_TEXT: {
      size_t n = bounded_len((const char *)p, f->size);
      if (check_text(f, p, n, &e)) w_text(w, p, n);
      break;
    }
    case K_UINT: {
      uint64_t v = load_uint(p, f->size);
      if (check_uint(f, v, &e)) w_put(w, cbor_encode_uint(v, W_AT(w)));
      break;
    }
    case K_INT: {
      int64_t v;
      memcpy(&v, p, sizeof v);
      w_int(w, v);
      break;
    }
    case K_BOOL: {
      bool v;
      memcpy(&v, p, sizeof v);
      w_put(w, cbor_encode_bool(v, W_AT(w)));
      break;
    }
    case K_NUM: {
      double v;
      memcpy(&v, p, sizeof v);
      if (check_num(f, v, &e)) w_put(w, cbor_encode_double(v, W_AT(w)));
      break;
    }
    case K_ENUM:
    case K_TYPE: {
      const char *name = nameset_name(f->names, load_int(p));
      if (name)
        w_text(w, name, strlen(name));
      else
        e.code = FL_ERR_INVALID;
      break;
    }
    case K_VERSION:
      if (load_uint(p, f->size) == FL_PROTO_VERSION)
        w_put(w, cbor_encode_uint(FL_PROTO_VERSION, W_AT(w)));
      else
        e.code = FL_ERR_INVALID;
      break;
    case K_ARRAY: {
      uint64_t n = load_uint(base + f->off2, sizeof(uint32_t));
      if (!check_uint(f, n, &e)) break;
      w_put(w, cbor_encode_array_start((size_t)n, W_AT(w)));
      for (size_t i = 0; i < n && !w->err; i++) enc_value(w, f->elem, p + i * f->stride);
      break;
    }
    case K_MAP:
      enc_record(w, f->rec, p);
      break;
    case K_BODY: {
      const fl_msg *m = (const fl_msg *)(const void *)base;
      const struct record *r = body_record((int)m->env.type);
      if (r)
        enc_record(w, r, p);
      else
        e.code = FL_ERR_INVALID;
      break;
    }
  }
  if (e.code && !w->err) w->err = FL_ERR_INVALID;
}

/* Optional fields are on the wire only when they are not zero/empty/false.
 * Exception: "bookings" of a command is sent whenever the action is
 * "bookings", even empty (an empty list is an answer). */
static bool field_present(const struct field *f, const uint8_t *base) {
  const uint8_t *p = base + f->off;
  if (f->req) return true;
  switch (f->kind) {
    case K_ID:
    case K_TEXT:
      return p[0] != '\0';
    case K_UINT:
      return load_uint(p, f->size) != 0;
    case K_INT: {
      int64_t v;
      memcpy(&v, p, sizeof v);
      return v != 0;
    }
    case K_BOOL: {
      bool v;
      memcpy(&v, p, sizeof v);
      return v;
    }
    case K_NUM: {
      double v;
      memcpy(&v, p, sizeof v);
      return v != 0.0;
    }
    case K_ARRAY:
      return load_uint(base + f->off2, sizeof(uint32_t)) != 0 ||
             (f->elem == &booking_elem &&
              ((const fl_command *)(const void *)base)->action == FL_ACT_BOOKINGS);
    default:
      return load_int(p) != 0;
  }
}

static void enc_record(struct writer *w, const struct record *r, const uint8_t *base) {
  uint32_t seen = 0;
  size_t n = 0;
  for (unsigned i = 0; i < r->n; i++) {
    if (field_present(&r->fields[i], base)) {
      seen |= 1u << i;
      n++;
    }
  }
  if (r->check) {
    struct verr e = {0};
    r->check(base, seen, r, &e);
    if (e.code) {
      w->err = FL_ERR_INVALID;
      return;
    }
  }
  w_put(w, cbor_encode_map_start(n, W_AT(w)));
  for (unsigned i = 0; i < r->n && !w->err; i++) {
    if (!(seen & (1u << i))) continue;
    w_text(w, r->fields[i].key, r->fields[i].klen);
    enc_value(w, &r->fields[i], base);
  }
}

void fl_msg_init(fl_msg *m, fl_msg_type t) {
  memset(m, 0, sizeof *m);
  m->env.v = FL_PROTO_VERSION;
  m->env.type = t;
}

int fl_msg_encode(const fl_msg *m, uint8_t *buf, size_t cap, size_t *len) {
  struct writer w = {buf, cap, 0, 0};
  if (!m || !buf || !len) return FL_ERR_INVALID;
  enc_record(&w, &envelope_rec, (const uint8_t *)m);
  if (w.err) return w.err;
  *len = w.len;
  return FL_OK;
}

/* ------------------------------------------------------------- decoder */

#define LINEAR_KEYS 16 /* maps with more unknown keys are checked by sorting */
#define MAX_KEYS (FL_MAX_MSG_BYTES / 2)

struct frame {
  const struct record *rec; /* map with known fields, or NULL (skipped) */
  const struct field *arr;  /* array of known elements, or NULL (skipped) */
  uint8_t *base;            /* record, or owner of the array */
  uint64_t left;            /* entries (map) or elements (array) to come */
  uint32_t idx;             /* entries / elements done */
  uint32_t seen;            /* known fields present, bit = index in rec */
  const struct field *cur;  /* map: field of the current key, NULL if unknown */
  const uint8_t *key;       /* map: current key, for error paths */
  uint32_t klen;
  uint32_t key0; /* map: its first unknown key in dec.keys */
  bool is_map, want_key;
};

struct dec {
  const uint8_t *buf;
  const struct field *root;
  uint8_t *root_base;
  int depth0; /* depth of the root item's parent */
  fl_msg *out;
  fl_decode_error *err;
  int code;
  bool complete;
  bool defer_body; /* "body" came before "type" */
  size_t body_off; /* where the deferred body starts */
  size_t pos;      /* offset of the item being decoded */
  int sp;
  struct frame st[FL_MAX_DEPTH];
  uint32_t nkeys;
  uint32_t keys[MAX_KEYS]; /* unknown keys of open maps: offset << 16 | length */
};

static void dec_fail(struct dec *d, int code, const char *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends p[0..n) to s (cap), replacing bytes that are not printable ASCII. */
static size_t path_add(char *s, size_t at, size_t cap, const char *p, size_t n) {
  for (size_t i = 0; i < n && at + 1 < cap; i++, at++) {
    unsigned char c = (unsigned char)p[i];
    s[at] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
  }
  s[at < cap ? at : cap - 1] = '\0';
  return at;
}

/* Records the first error: code and "path: message". The path names the
 * item being decoded, then `extra` (a key of the innermost map) if given. */
static void dec_fail(struct dec *d, int code, const char *extra, const char *fmt, ...) {
  char path[96];
  size_t at = 0;
  if (d->code) return;
  d->code = code;
  if (!d->err) return;
  path[0] = '\0';
  if (d->root == &body_root) at = path_add(path, at, sizeof path, "body", 4);
  for (int i = 0; i < d->sp; i++) {
    const struct frame *fr = &d->st[i];
    if (fr->left == 0 || (fr->is_map && fr->want_key)) continue; /* no current child */
    if (fr->is_map) {
      if (at) at = path_add(path, at, sizeof path, ".", 1);
      at = path_add(path, at, sizeof path, (const char *)fr->key, fr->klen > 32 ? 32 : fr->klen);
    } else {
      char ix[16];
      int k = snprintf(ix, sizeof ix, "[%u]", (unsigned)fr->idx);
      at = path_add(path, at, sizeof path, ix, (size_t)k);
    }
  }
  if (extra) {
    if (at) at = path_add(path, at, sizeof path, ".", 1);
    at = path_add(path, at, sizeof path, extra, strlen(extra));
  }
  if (!at) path_add(path, 0, sizeof path, "message", 7);
  _Static_assert(sizeof path + 2 < sizeof d->err->detail, "path fits in detail");
  int k = snprintf(d->err->detail, sizeof d->err->detail, "%s: ", path);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->err->detail + k, sizeof d->err->detail - (size_t)k, fmt, ap);
  va_end(ap);
  d->err->code = code;
}

static void dec_verr(struct dec *d, const struct verr *e, const char *extra) {
  dec_fail(d, e->code, e->field ? e->field : extra, "%s", e->msg);
}

/* The field (NULL: skip) and record base that receive the next value. */
static const struct field *dec_slot(struct dec *d, uint8_t **base) {
  *base = NULL;
  if (d->sp == 0) {
    *base = d->root_base;
    return d->root;
  }
  struct frame *fr = &d->st[d->sp - 1];
  if (fr->is_map) {
    *base = fr->base;
    return fr->cur;
  }
  if (!fr->arr) return NULL;
  *base = fr->base + fr->arr->off + (size_t)fr->idx * fr->arr->stride;
  return fr->arr->elem;
}

static int key_cmp(const uint8_t *buf, uint32_t a, uint32_t b) {
  uint32_t la = a & 0xffff, lb = b & 0xffff;
  int c = memcmp(buf + (a >> 16), buf + (b >> 16), la < lb ? la : lb);
  return c ? c : (la > lb) - (la < lb);
}

static void sift_down(const uint8_t *buf, uint32_t *k, size_t i, size_t n) {
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) return;
    if (c + 1 < n && key_cmp(buf, k[c + 1], k[c]) > 0) c++;
    if (key_cmp(buf, k[i], k[c]) >= 0) return;
    uint32_t t = k[i];
    k[i] = k[c];
    k[c] = t;
    i = c;
  }
}

/* Sorts k[0..n) (heapsort: no recursion, no allocation) and returns the
 * index of a key equal to its neighbour, or -1. */
static long keys_find_dup(const uint8_t *buf, uint32_t *k, size_t n) {
  for (size_t i = n / 2; i-- > 0;) sift_down(buf, k, i, n);
  for (size_t end = n; end-- > 1;) {
    uint32_t t = k[0];
    k[0] = k[end];
    k[end] = t;
    sift_down(buf, k, 0, end);
  }
  for (size_t i = 1; i < n; i++)
    if (key_cmp(buf, k[i - 1], k[i]) == 0) return (long)i;
  return -1;
}

/* A map or array ends: checks what can only be checked at the end. */
static void close_frame(struct dec *d) {
  struct frame *fr = &d->st[d->sp - 1];
  uint32_t nk = d->nkeys - fr->key0;
  if (fr->is_map && nk > LINEAR_KEYS) {
    long i = keys_find_dup(d->buf, d->keys + fr->key0, nk);
    if (i >= 0) {
      uint32_t k = d->keys[fr->key0 + (uint32_t)i];
      char key[33];
      path_add(key, 0, sizeof key, (const char *)d->buf + (k >> 16),
               (k & 0xffff) > 32 ? 32 : (k & 0xffff));
      dec_fail(d, FL_ERR_DUP_KEY, key, "duplicate key");
      return;
    }
  }
  d->nkeys = fr->key0;
  if (fr->rec) {
    for (unsigned i = 0; i < fr->rec->n; i++) {
      if (fr->rec->fields[i].req && !(fr->seen & (1u << i))) {
        dec_fail(d, FL_ERR_MISSING, fr->rec->fields[i].key, "required field missing");
        return;
      }
    }
    if (fr->rec->check) {
      struct verr e = {0};
      fr->rec->check(fr->base, fr->seen, fr->rec, &e);
      if (e.code) {
        dec_verr(d, &e, NULL);
        return;
      }
    }
  }
  d->sp--;
}

/* The current item is complete: advance the enclosing containers. */
static void item_done(struct dec *d) {
  while (!d->code) {
    if (d->sp == 0) {
      d->complete = true;
      return;
    }
    struct frame *fr = &d->st[d->sp - 1];
    fr->want_key = fr->is_map;
    fr->cur = NULL;
    fr->idx++;
    if (--fr->left > 0) return;
    close_frame(d);
  }
}

/* A text string at a key position of the innermost map. */
static void dec_key(struct dec *d, const uint8_t *p, size_t n) {
  struct frame *fr = &d->st[d->sp - 1];
  unsigned i;
  fr->key = p;
  fr->klen = (uint32_t)n;
  fr->want_key = false;
  fr->cur = fr->rec ? record_field(fr->rec, p, n, &i) : NULL;
  if (fr->cur) {
    if (fr->seen & (1u << i)) {
      dec_fail(d, FL_ERR_DUP_KEY, NULL, "duplicate key");
      return;
    }
    fr->seen |= 1u << i;
    return;
  }
  /* unknown key: remember it for the duplicate check */
  uint32_t nk = d->nkeys - fr->key0;
  uint32_t packed = (uint32_t)(p - d->buf) << 16 | (uint32_t)n;
  if (nk <= LINEAR_KEYS) {
    for (uint32_t k = fr->key0; k < d->nkeys; k++) {
      if (key_cmp(d->buf, d->keys[k], packed) == 0) {
        dec_fail(d, FL_ERR_DUP_KEY, NULL, "duplicate key");
        return;
      }
    }
  }
  if (d->nkeys >= MAX_KEYS) { /* cannot happen within FL_MAX_MSG_BYTES */
    dec_fail(d, FL_ERR_MALFORMED, NULL, "too many keys");
    return;
  }
  d->keys[d->nkeys++] = packed;
}

static void wrong_type(struct dec *d, const struct field *f, const char *got) {
  static const char *const want[] = {[K_ID] = "text",
                                     [K_TEXT] = "text",
                                     [K_UINT] = "unsigned integer",
                                     [K_INT] = "integer",
                                     [K_BOOL] = "boolean",
                                     [K_NUM] = "number",
                                     [K_ENUM] = "text",
                                     [K_ARRAY] = "array",
                                     [K_MAP] = "map",
                                     [K_VERSION] = "unsigned integer",
                                     [K_TYPE] = "text",
                                     [K_BODY] = "map"};
  dec_fail(d, FL_ERR_WRONG_TYPE, NULL, "%s where %s expected", got, want[f->kind]);
}

/* Common entry of every non-text item (`what` names it for errors). Returns
 * the field that receives it, or NULL when the caller has nothing more to do:
 * the item sits at a key position (error), or it is skipped (done). */
static bool at_key(const struct dec *d) {
  return d->sp > 0 && d->st[d->sp - 1].is_map && d->st[d->sp - 1].want_key;
}

static const struct field *dec_value(struct dec *d, uint8_t **base, const char *what) {
  if (at_key(d)) {
    dec_fail(d, FL_ERR_WRONG_TYPE, NULL, "map key is %s, not text", what);
    return NULL;
  }
  const struct field *f = dec_slot(d, base);
  if (!f) item_done(d);
  return f;
}

/* Scalars that only unknown fields may hold. */
static void dec_other(struct dec *d, const char *what) {
  uint8_t *base;
  const struct field *f = dec_value(d, &base, what);
  if (f) wrong_type(d, f, what);
}

static bool put_uint(struct dec *d, const struct field *f, uint8_t *base, uint64_t v) {
  struct verr e = {0};
  switch (f->kind) {
    case K_UINT:
      if (!check_uint(f, v, &e)) break;
      store_uint(base + f->off, f->size, v);
      return true;
    case K_INT: {
      if (v > INT64_MAX) {
        verr_set(&e, FL_ERR_BAD_VALUE, NULL, "above the int64 range");
        break;
      }
      int64_t i = (int64_t)v;
      memcpy(base + f->off, &i, sizeof i);
      return true;
    }
    case K_NUM: {
      double x = (double)v;
      if (!check_num(f, x, &e)) break;
      memcpy(base + f->off, &x, sizeof x);
      return true;
    }
    case K_VERSION:
      if (v != FL_PROTO_VERSION) {
        verr_set(&e, FL_ERR_VERSION, NULL, "version %llu not supported", (unsigned long long)v);
        break;
      }
      store_uint(base + f->off, f->size, v);
      return true;
    default:
      wrong_type(d, f, "unsigned integer");
      return false;
  }
  dec_verr(d, &e, NULL);
  return false;
}

/* The negative integer -1 - n. */
static bool put_negint(struct dec *d, const struct field *f, uint8_t *base, uint64_t n) {
  struct verr e = {0};
  if (f->kind == K_INT) {
    if (n <= INT64_MAX) {
      int64_t i = -1 - (int64_t)n;
      memcpy(base + f->off, &i, sizeof i);
      return true;
    }
    verr_set(&e, FL_ERR_BAD_VALUE, NULL, "below the int64 range");
  } else if (f->kind == K_NUM) {
    double x = -1.0 - (double)n;
    if (check_num(f, x, &e)) {
      memcpy(base + f->off, &x, sizeof x);
      return true;
    }
  } else {
    wrong_type(d, f, "negative integer");
    return false;
  }
  dec_verr(d, &e, NULL);
  return false;
}

static bool put_float(struct dec *d, const struct field *f, uint8_t *base, double x) {
  struct verr e = {0};
  if (f->kind != K_NUM) {
    wrong_type(d, f, "float");
    return false;
  }
  if (!check_num(f, x, &e)) {
    dec_verr(d, &e, NULL);
    return false;
  }
  /* -0.0 is read as 0.0: the encoder omits an optional 0 (of either sign),
   * which decodes as 0.0, so a decoded -0.0 would not survive a round trip
   * (found by tests/fuzz, regressions/codec_roundtrip/negative-zero-lon). */
  if (x == 0.0) x = 0.0;
  memcpy(base + f->off, &x, sizeof x);
  return true;
}

static bool put_bool(struct dec *d, const struct field *f, uint8_t *base, bool v) {
  if (f->kind != K_BOOL) {
    wrong_type(d, f, "boolean");
    return false;
  }
  memcpy(base + f->off, &v, sizeof v);
  return true;
}

static bool put_text(struct dec *d, const struct field *f, uint8_t *base, const uint8_t *p,
                     size_t n) {
  struct verr e = {0};
  int i;
  switch (f->kind) {
    case K_ID:
    case K_TEXT:
      if (!check_text(f, p, n, &e)) {
        dec_verr(d, &e, NULL);
        return false;
      }
      memcpy(base + f->off, p, n);
      base[f->off + n] = '\0';
      return true;
    case K_ENUM:
    case K_TYPE:
      i = nameset_find(f->names, p, n);
      if (i <= 0) {
        dec_fail(d, f->kind == K_TYPE ? FL_ERR_UNKNOWN_TYPE : FL_ERR_BAD_VALUE, NULL,
                 "unknown name \"%.*s\"", n > 24 ? 24 : (int)n, (const char *)p);
        return false;
      }
      memcpy(base + f->off, &i, sizeof i);
      return true;
    default:
      wrong_type(d, f, "text");
      return false;
  }
}

static void dec_uint(struct dec *d, uint64_t v) {
  uint8_t *base;
  const struct field *f = dec_value(d, &base, "an integer");
  if (f && put_uint(d, f, base, v)) item_done(d);
}

static void dec_negint(struct dec *d, uint64_t n) {
  uint8_t *base;
  const struct field *f = dec_value(d, &base, "an integer");
  if (f && put_negint(d, f, base, n)) item_done(d);
}

static void dec_float(struct dec *d, double x) {
  uint8_t *base;
  const struct field *f = dec_value(d, &base, "a float");
  if (f && put_float(d, f, base, x)) item_done(d);
}

static void dec_bool(struct dec *d, bool v) {
  uint8_t *base;
  const struct field *f = dec_value(d, &base, "a boolean");
  if (f && put_bool(d, f, base, v)) item_done(d);
}

static void dec_text(struct dec *d, const uint8_t *p, size_t n) {
  uint8_t *base;
  if (!utf8_valid(p, n)) {
    dec_fail(d, FL_ERR_BAD_VALUE, NULL, "text is not UTF-8 without NUL");
    return;
  }
  if (at_key(d)) {
    dec_key(d, p, n);
    return;
  }
  const struct field *f = dec_slot(d, &base);
  if (!f || put_text(d, f, base, p, n)) item_done(d);
}

static void dec_push(struct dec *d, bool is_map, size_t n, const struct record *rec,
                     const struct field *arr, uint8_t *base) {
  if (d->sp + d->depth0 >= FL_MAX_DEPTH) {
    dec_fail(d, FL_ERR_TOO_DEEP, NULL, "nested deeper than %d", FL_MAX_DEPTH);
    return;
  }
  struct frame *fr = &d->st[d->sp++];
  *fr = (struct frame){.rec = rec,
                       .arr = arr,
                       .base = base,
                       .left = n,
                       .key0 = d->nkeys,
                       .is_map = is_map,
                       .want_key = is_map};
  if (rec) memset(base, 0, rec->size);
  if (n == 0) {
    close_frame(d);
    if (!d->code) item_done(d);
  }
}

static void dec_container(struct dec *d, bool is_map, size_t n) {
  uint8_t *base;
  const struct record *rec = NULL;
  if (at_key(d)) {
    dec_fail(d, FL_ERR_WRONG_TYPE, NULL, "map key is %s, not text", is_map ? "a map" : "an array");
    return;
  }
  const struct field *f = dec_slot(d, &base);
  if (!f) { /* unknown: walked with the same checks, values dropped */
    dec_push(d, is_map, n, NULL, NULL, NULL);
    return;
  }
  if (is_map && f->kind == K_MAP) {
    rec = f->rec;
  } else if (is_map && f->kind == K_BODY) {
    rec = body_record((int)d->out->env.type);
    if (!rec) { /* type not seen yet: walk the body now, decode it afterwards */
      d->defer_body = true;
      d->body_off = d->pos;
    }
  } else if (!is_map && f->kind == K_ARRAY) {
    if (n < f->umin || n > f->umax) {
      dec_fail(d, FL_ERR_BAD_VALUE, NULL, "%zu elements, allowed %llu..%llu", n,
               (unsigned long long)f->umin, (unsigned long long)f->umax);
      return;
    }
    store_uint(base + f->off2, sizeof(uint32_t), n);
    dec_push(d, false, n, NULL, f, base);
    return;
  } else {
    wrong_type(d, f, is_map ? "map" : "array");
    return;
  }
  dec_push(d, true, n, rec, NULL, rec ? base + f->off : NULL);
}

/* libcbor callbacks: each casts the context and forwards. */
#define CB_CTX(ctx) ((struct dec *)(ctx))
static void cb_u8(void *c, uint8_t v) { dec_uint(CB_CTX(c), v); }
static void cb_u16(void *c, uint16_t v) { dec_uint(CB_CTX(c), v); }
static void cb_u32(void *c, uint32_t v) { dec_uint(CB_CTX(c), v); }
static void cb_u64(void *c, uint64_t v) { dec_uint(CB_CTX(c), v); }
static void cb_n8(void *c, uint8_t v) { dec_negint(CB_CTX(c), v); }
static void cb_n16(void *c, uint16_t v) { dec_negint(CB_CTX(c), v); }
static void cb_n32(void *c, uint32_t v) { dec_negint(CB_CTX(c), v); }
static void cb_n64(void *c, uint64_t v) { dec_negint(CB_CTX(c), v); }
static void cb_text(void *c, cbor_data p, size_t n) { dec_text(CB_CTX(c), p, n); }
static void cb_bytes(void *c, cbor_data p, size_t n) {
  (void)p, (void)n;
  dec_other(CB_CTX(c), "a byte string");
}
static void cb_array(void *c, size_t n) { dec_container(CB_CTX(c), false, n); }
static void cb_map(void *c, size_t n) { dec_container(CB_CTX(c), true, n); }
static void cb_f4(void *c, float x) { dec_float(CB_CTX(c), x); }
static void cb_f8(void *c, double x) { dec_float(CB_CTX(c), x); }
static void cb_bool(void *c, bool v) { dec_bool(CB_CTX(c), v); }
static void cb_null(void *c) { dec_other(CB_CTX(c), "null"); }
static void cb_indef(void *c) { dec_fail(CB_CTX(c), FL_ERR_INDEFINITE, NULL, "indefinite length"); }
static void cb_break(void *c) { dec_fail(CB_CTX(c), FL_ERR_MALFORMED, NULL, "stray break"); }
static void cb_tag(void *c, uint64_t t) {
  (void)t; /* unreachable: dec_walk rejects tags before libcbor sees them */
  dec_fail(CB_CTX(c), FL_ERR_WRONG_TYPE, NULL, "tags are not allowed");
}

static const struct cbor_callbacks callbacks = {
    .uint8 = cb_u8,
    .uint16 = cb_u16,
    .uint32 = cb_u32,
    .uint64 = cb_u64,
    .negint8 = cb_n8,
    .negint16 = cb_n16,
    .negint32 = cb_n32,
    .negint64 = cb_n64,
    .byte_string_start = cb_indef,
    .byte_string = cb_bytes,
    .string = cb_text,
    .string_start = cb_indef,
    .indef_array_start = cb_indef,
    .array_start = cb_array,
    .indef_map_start = cb_indef,
    .map_start = cb_map,
    .tag = cb_tag,
    .float2 = cb_f4,
    .float4 = cb_f4,
    .float8 = cb_f8,
    .undefined = cb_null,
    .null = cb_null,
    .boolean = cb_bool,
    .indef_break = cb_break,
};

/* Walks one item from buf[from..len). Returns the offset after it. */
static size_t dec_walk(struct dec *d, size_t from, size_t len) {
  size_t pos = from;
  while (!d->code && !d->complete) {
    if (pos >= len) {
      dec_fail(d, FL_ERR_MALFORMED, NULL, "truncated");
      break;
    }
    uint8_t ib = d->buf[pos];
    /* Well-formed items libcbor 0.8 reports as errors (some tags, simple values). */
    if (ib >= 0xc0 && ib <= 0xdb) {
      dec_fail(d, FL_ERR_WRONG_TYPE, NULL, "tags are not allowed");
      break;
    }
    if ((ib >= 0xe0 && ib <= 0xf3) || (ib == 0xf8 && pos + 1 < len && d->buf[pos + 1] >= 32)) {
      dec_other(d, "a simple value");
      if (d->code) break;
      pos += ib == 0xf8 ? 2 : 1;
      continue;
    }
    d->pos = pos;
    struct cbor_decoder_result r = cbor_stream_decode(d->buf + pos, len - pos, &callbacks, d);
    if (d->code) break;
    if (r.status == CBOR_DECODER_NEDATA) {
      dec_fail(d, FL_ERR_MALFORMED, NULL, "truncated");
      break;
    }
    if (r.status != CBOR_DECODER_FINISHED || r.read == 0) {
      dec_fail(d, FL_ERR_MALFORMED, NULL, "not well-formed CBOR at byte %zu", pos);
      break;
    }
    pos += r.read;
  }
  return pos;
}

int fl_msg_decode(const uint8_t *buf, size_t len, fl_msg *out, fl_decode_error *err) {
  struct dec d;
  if (err) {
    err->code = FL_OK;
    err->detail[0] = '\0';
  }
  /* Only the header of d needs initialising; keys[] is written before read. */
  memset(&d, 0, offsetof(struct dec, keys));
  d.buf = buf;
  d.err = err;
  d.out = out;
  d.root = &message_root;
  d.root_base = (uint8_t *)out;
  if (!out || (!buf && len)) {
    dec_fail(&d, FL_ERR_INVALID, NULL, "no buffer");
    return d.code;
  }
  if (len > FL_MAX_MSG_BYTES) {
    dec_fail(&d, FL_ERR_TOO_LARGE, NULL, "%zu bytes, limit %d", len, FL_MAX_MSG_BYTES);
    return d.code;
  }
  size_t end = dec_walk(&d, 0, len);
  if (!d.code && end != len)
    dec_fail(&d, FL_ERR_TRAILING, NULL, "%zu bytes after the message", len - end);
  if (!d.code && d.defer_body) {
    /* second walk over the body, now that the type is known */
    d.root = &body_root;
    d.root_base = (uint8_t *)out;
    d.depth0 = 1;
    d.complete = false;
    d.sp = 0;
    d.nkeys = 0;
    dec_walk(&d, d.body_off, len);
  }
  return d.code;
}
