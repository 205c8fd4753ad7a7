/* Unit tests of the fleet/v1 CBOR codec (common/src/proto_codec.c).
 *
 * Usage: test_codec <schemas/vectors directory>
 * Prints one line per failure (file:line) and a final "N passed, M failed";
 * exits non-zero on any failure. Comments name the rule of docs/protocol.md
 * that a check enforces (P-...).
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/partition.h"
#include "fleet/proto.h"
#include "fleet/topic.h"

static int n_pass, n_fail;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (cond) {                                                                \
      n_pass++;                                                                \
    } else {                                                                   \
      n_fail++;                                                                \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

#define CHECK_MSG(cond, ...)                                                   \
  do {                                                                         \
    if (cond) {                                                                \
      n_pass++;                                                                \
    } else {                                                                   \
      n_fail++;                                                                \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
    }                                                                          \
  } while (0)

#define T0 1767225600000LL

static const char *vec_dir;

/* ------------------------------------------------------------ helpers */

/* Reads a .hex file into buf (cap). Returns the byte count or -1. */
static long read_hex(const char *path, uint8_t *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long n = 0;
  int hi = -1, c;
  while ((c = fgetc(f)) != EOF) {
    int v;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else
      continue;
    if (hi < 0) {
      hi = v;
    } else {
      if ((size_t)n >= cap) {
        n = -1;
        break;
      }
      buf[n++] = (uint8_t)(hi << 4 | v);
      hi = -1;
    }
  }
  fclose(f);
  return n;
}

static long read_vector(const char *sub, const char *name, uint8_t *buf, size_t cap) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s%s%s", vec_dir, sub, *sub ? "/" : "", name);
  return read_hex(path, buf, cap);
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Decodes into a zeroed message so that whole messages compare with memcmp. */
static int decode(const uint8_t *b, size_t n, fl_msg *m, fl_decode_error *e) {
  memset(m, 0, sizeof *m);
  return fl_msg_decode(b, n, m, e);
}

/* First occurrence of needle[0..k) in hay[0..n), or NULL. */
static uint8_t *find_bytes(uint8_t *hay, size_t n, const void *needle, size_t k) {
  for (size_t i = 0; i + k <= n; i++)
    if (memcmp(hay + i, needle, k) == 0) return hay + i;
  return NULL;
}

static void set(char *dst, size_t cap, const char *s) { snprintf(dst, cap, "%s", s); }
#define SET(dst, s) set(dst, sizeof dst, s)

/* A filled-in message of type t, with every optional field set. */
static void sample(fl_msg *m, fl_msg_type t) {
  fl_msg_init(m, t);
  SET(m->env.mid, "mid-1");
  SET(m->env.dev, "veh-0042");
  m->env.boot = 7;
  m->env.seq = 12345678901ULL;
  m->env.time_ms = T0;
  switch (t) {
    case FL_MSG_RENTAL_REQUEST:
      SET(m->env.corr, "R-1");
      SET(m->body.rental_request.vehicle, "veh-0042");
      SET(m->body.rental_request.customer, "cust-7");
      m->body.rental_request.minutes = 43200;
      break;
    case FL_MSG_RENTAL_CANCEL:
      SET(m->env.corr, "R-1");
      SET(m->body.rental_cancel.reason, "changed plans \xc3\xa9"); /* UTF-8 e-acute */
      break;
    case FL_MSG_RENTAL_RETURN:
      SET(m->env.corr, "R-1");
      SET(m->body.rental_return.station, "st-1");
      m->body.rental_return.odometer_m = UINT64_MAX;
      break;
    case FL_MSG_BOOKING_REQUEST:
      SET(m->env.corr, "B-1");
      SET(m->body.booking_request.vehicle, "veh-0042");
      SET(m->body.booking_request.customer, "cust-7");
      m->body.booking_request.start_ms = INT64_MIN;
      m->body.booking_request.end_ms = INT64_MAX;
      break;
    case FL_MSG_BOOKING_CANCEL:
      SET(m->env.corr, "B-1");
      SET(m->body.booking_cancel.reason, "x");
      break;
    case FL_MSG_FAULT:
      m->body.fault.n_dtcs = FL_MAX_DTCS;
      for (int i = 0; i < FL_MAX_DTCS; i++)
        snprintf(m->body.fault.dtcs[i], FL_DTC_MAX + 1, "P%015d", i);
      m->body.fault.severity = FL_SEV_CRITICAL;
      SET(m->body.fault.text, "misfire");
      break;
    case FL_MSG_LOCK:
      SET(m->env.corr, "B-1");
      m->body.lock.locked = true;
      SET(m->body.lock.customer, "cust-7");
      m->body.lock.offline = true;
      SET(m->body.lock.reason, "r");
      m->body.lock.refused = true;
      break;
    case FL_MSG_TELEMETRY:
      m->body.telemetry.odometer_m = 1;
      m->body.telemetry.energy_pct = 100;
      m->body.telemetry.lat = -90.0;
      m->body.telemetry.lon = 179.999999;
      m->body.telemetry.speed_kmh = UINT32_MAX;
      break;
    case FL_MSG_COMMAND_RESULT:
      m->body.command_result.cmd_seq = 9;
      m->body.command_result.status = FL_CMD_REFUSED;
      SET(m->body.command_result.reason, "busy");
      break;
    case FL_MSG_HELLO:
      m->body.hello.role = FL_ROLE_KIOSK;
      m->body.hello.last_seq = 0; /* required zeros are still sent */
      m->body.hello.last_ack = 0;
      m->body.hello.applied = 3;
      SET(m->body.hello.sw, "1.2.3");
      break;
    case FL_MSG_OFFLINE:
      SET(m->body.offline.reason, "lost");
      break;
    case FL_MSG_DEVICE_ACK:
      m->body.device_ack.upto = 4;
      break;
    case FL_MSG_ACK:
      m->body.ack.upto = 5;
      break;
    case FL_MSG_SYNC:
      m->body.sync.acked = 1;
      m->body.sync.next_seq = 2;
      m->body.sync.down_seq = 3;
      break;
    case FL_MSG_DECISION:
      SET(m->env.corr, "R-1");
      m->body.decision.subject = FL_SUBJ_BOOKING;
      SET(m->body.decision.state, "CONFIRMED");
      m->body.decision.ok = false;
      SET(m->body.decision.reason, "no");
      m->body.decision.retry_after_s = 30;
      m->body.decision.charged_cents = 1;
      m->body.decision.refunded_cents = -2;
      m->body.decision.fee_cents = 3;
      m->body.decision.due_ms = -4;
      m->body.decision.upto = UINT64_MAX; /* rev 1.2 */
      break;
    case FL_MSG_COMMAND:
      m->body.command.action = FL_ACT_BOOKINGS;
      m->body.command.expires_ms = T0;
      SET(m->body.command.customer, "cust-7");
      m->body.command.n_bookings = FL_MAX_BOOKINGS;
      for (int i = 0; i < FL_MAX_BOOKINGS; i++) {
        fl_booking *b = &m->body.command.bookings[i];
        snprintf(b->booking, sizeof b->booking, "B-%d", i);
        SET(b->customer, "cust-7");
        b->start_ms = T0 + i * 1000;
        b->end_ms = T0 + i * 1000 + 1;
      }
      break;
    case FL_MSG_HUB_STATUS:
      m->body.hub_status.online = true;
      break;
    case FL_MSG_VEHICLE_STATE:
      SET(m->body.vehicle_state.vehicle, "veh-0042");
      SET(m->body.vehicle_state.name, "Blue Golf");
      SET(m->body.vehicle_state.station, "st-1");
      m->body.vehicle_state.rate_cents = 1200;
      SET(m->body.vehicle_state.state, "REPAIR_REQUESTED");
      SET(m->body.vehicle_state.rental, "R-1");
      m->body.vehicle_state.energy_pct = 5;
      m->body.vehicle_state.lat = 1.5;
      m->body.vehicle_state.lon = -2.5;
      m->body.vehicle_state.online = true;
      break;
    case FL_MSG_RENTAL_STATE:
      SET(m->body.rental_state.rental, "R-1");
      SET(m->body.rental_state.vehicle, "veh-0042");
      SET(m->body.rental_state.customer, "cust-7");
      SET(m->body.rental_state.state, "CANCEL_REQUESTED");
      SET(m->body.rental_state.reason, "r");
      m->body.rental_state.charged_cents = 1;
      m->body.rental_state.refunded_cents = 2;
      m->body.rental_state.fee_cents = 3;
      m->body.rental_state.due_ms = 4;
      break;
    case FL_MSG_REPAIR_STATE:
      SET(m->body.repair_state.repair, "REP-1");
      SET(m->body.repair_state.vehicle, "veh-0042");
      SET(m->body.repair_state.state, "IN_PROGRESS");
      SET(m->body.repair_state.text, "t");
      break;
    case FL_MSG_NOTIFY:
      SET(m->body.notify.kind, "alert");
      SET(m->body.notify.id, "veh-0042");
      SET(m->body.notify.from, "A");
      SET(m->body.notify.to, "PAYMENT_DOWN");
      SET(m->body.notify.text, "t");
      SET(m->body.notify.customer, "cust-7");
      break;
    case FL_MSG_QUERY:
      SET(m->env.corr, "kiosk-01-3-5");
      m->body.query.what = FL_QUERY_AVAILABLE;
      SET(m->body.query.station, "st-1");
      m->body.query.start_ms = INT64_MIN;
      m->body.query.end_ms = INT64_MAX;
      break;
    case FL_MSG_ANSWER: /* "customer", both lists full */
      SET(m->env.corr, "kiosk-01-3-5");
      m->body.answer.what = FL_QUERY_CUSTOMER;
      m->body.answer.ok = true;
      SET(m->body.answer.reason, "r");
      m->body.answer.more = true;
      m->body.answer.n_rentals = FL_MAX_ANSWER_RENTALS;
      for (int i = 0; i < FL_MAX_ANSWER_RENTALS; i++) {
        fl_answer_rental *r = &m->body.answer.rentals[i];
        snprintf(r->rental, sizeof r->rental, "R-%d", i);
        SET(r->vehicle, "veh-0042");
        SET(r->state, i % 2 ? "ACTIVE" : "CANCELLED");
        r->due_ms = T0 + i;
        r->charged_cents = i + 1;
        r->fee_cents = -i - 1;
        r->running_fee_cents = INT64_MAX;
      }
      m->body.answer.n_bookings = FL_MAX_ANSWER_BOOKINGS;
      for (int i = 0; i < FL_MAX_ANSWER_BOOKINGS; i++) {
        fl_answer_booking *b = &m->body.answer.bookings[i];
        snprintf(b->booking, sizeof b->booking, "B-%d", i);
        SET(b->vehicle, "veh-0042");
        SET(b->state, "HELD");
        b->start_ms = T0 + i * 1000;
        b->end_ms = T0 + i * 1000 + 1;
        b->deposit_cents = 2000;
      }
      m->body.answer.charged_cents = 1;
      m->body.answer.refunded_cents = 2;
      m->body.answer.fees_paid_cents = 3;
      m->body.answer.fees_owed_cents = INT64_MIN;
      break;
    case FL_MSG_BOOKING_STATE:
      SET(m->env.corr, "B-1");
      SET(m->body.booking_state.booking, "B-1");
      SET(m->body.booking_state.vehicle, "veh-0042");
      SET(m->body.booking_state.customer, "cust-7");
      SET(m->body.booking_state.state, "PAYMENT_PENDING");
      m->body.booking_state.start_ms = -1;
      m->body.booking_state.end_ms = 0;
      m->body.booking_state.charged_cents = 2000;
      m->body.booking_state.refunded_cents = 2000;
      SET(m->body.booking_state.reason, "r");
      break;
    case FL_MSG_STATION_STATE:
      SET(m->body.station_state.station, "st-1");
      m->body.station_state.available = 0; /* required zeros are still sent */
      m->body.station_state.rented = 1;
      m->body.station_state.in_repair = 2;
      m->body.station_state.booked = UINT32_MAX;
      break;
    case FL_MSG_PARTITION_STATUS:
      memset(m->env.dev, 0, sizeof m->env.dev);
      SET(m->env.dev, "hub");
      m->env.seq = 0;
      m->body.partition_status.partition = FL_PARTITION_MAX;
      m->body.partition_status.epoch = UINT64_MAX;
      SET(m->body.partition_status.hub, "hub a \xc3\xa9"); /* text, not an id */
      m->body.partition_status.online = false;           /* required: false is sent */
      break;
    case FL_MSG_NOTICES:
      memset(m->env.dev, 0, sizeof m->env.dev);
      SET(m->env.dev, "hub");
      m->env.seq = 0;
      SET(m->body.notices.kind, "rental");
      m->body.notices.n_changes = FL_MAX_NOTICES;
      for (int i = 0; i < FL_MAX_NOTICES; i++) {
        fl_notice *c = &m->body.notices.changes[i];
        snprintf(c->id, sizeof c->id, "R-%d", i);
        SET(c->from, i % 2 ? "ACTIVE" : ""); /* required, may be empty */
        SET(c->to, "COMPLETED");
        if (i % 3 == 0) SET(c->text, "t");
        if (i % 4 == 0) SET(c->customer, "cust-7");
      }
      break;
    default:
      break;
  }
}

/* encode -> decode -> equal, and decode(encode) re-encodes to the same bytes. */
static void check_round_trip(const fl_msg *m, const char *what) {
  static uint8_t buf[FL_MAX_MSG_BYTES], buf2[FL_MAX_MSG_BYTES];
  size_t n = 0, n2 = 0;
  fl_msg back;
  fl_decode_error e;
  int rc = fl_msg_encode(m, buf, sizeof buf, &n);
  CHECK_MSG(rc == FL_OK, "%s: encode %s", what, fl_errname(rc));
  if (rc) return;
  rc = decode(buf, n, &back, &e);
  CHECK_MSG(rc == FL_OK, "%s: decode %s (%s)", what, fl_errname(rc), e.detail);
  CHECK_MSG(memcmp(m, &back, sizeof back) == 0, "%s: fields differ after round trip", what);
  if (memcmp(m, &back, sizeof back) != 0) {
    for (size_t i = 0; i < sizeof back; i++)
      if (((const uint8_t *)m)[i] != ((const uint8_t *)&back)[i]) {
        fprintf(stderr, "  first difference at byte %zu of %zu\n", i, sizeof back);
        break;
      }
  }
  CHECK(fl_msg_encode(&back, buf2, sizeof buf2, &n2) == FL_OK && n2 == n &&
        memcmp(buf, buf2, n) == 0);
  /* FL_ERR_BUFFER for every capacity below the size, never a write past it */
  for (size_t cap = 0; cap < n; cap += 1 + cap / 8) {
    size_t k = 12345;
    CHECK(fl_msg_encode(m, buf2, cap, &k) == FL_ERR_BUFFER && k == 12345);
  }
}

static void test_round_trip_all_types(void) {
  fl_msg m;
  for (int t = FL_MSG_NONE + 1; t < FL_MSG__COUNT; t++) {
    sample(&m, (fl_msg_type)t);
    check_round_trip(&m, fl_msg_type_name((fl_msg_type)t));
  }
  /* optional fields absent */
  fl_msg_init(&m, FL_MSG_LOCK);
  SET(m.env.mid, "m");
  SET(m.env.dev, "d");
  check_round_trip(&m, "lock, all optional fields absent");
  /* P-MSG-3: an empty "bookings" list is sent and accepted */
  sample(&m, FL_MSG_COMMAND);
  m.body.command.n_bookings = 0;
  memset(m.body.command.bookings, 0, sizeof m.body.command.bookings);
  check_round_trip(&m, "command with no bookings");
  /* P-ENV-2: time before 1970 */
  sample(&m, FL_MSG_ACK);
  m.env.time_ms = -1;
  check_round_trip(&m, "negative time");
  m.env.time_ms = INT64_MIN;
  check_round_trip(&m, "time INT64_MIN");
  m.env.seq = UINT64_MAX;
  m.env.boot = UINT64_MAX;
  check_round_trip(&m, "seq and boot UINT64_MAX");
  /* revision 1.1: the other shapes of query and answer */
  sample(&m, FL_MSG_QUERY);
  memset(m.body.query.station, 0, sizeof m.body.query.station);
  m.body.query.start_ms = m.body.query.end_ms = 0;
  check_round_trip(&m, "query available, every station, now");
  sample(&m, FL_MSG_QUERY);
  memset(&m.body.query, 0, sizeof m.body.query);
  m.body.query.what = FL_QUERY_CUSTOMER;
  SET(m.body.query.customer, "cust-7");
  check_round_trip(&m, "query customer");
  sample(&m, FL_MSG_ANSWER);
  memset(&m.body.answer, 0, sizeof m.body.answer);
  m.body.answer.what = FL_QUERY_AVAILABLE;
  m.body.answer.ok = true;
  m.body.answer.n_vehicles = FL_MAX_ANSWER_VEHICLES;
  for (int i = 0; i < FL_MAX_ANSWER_VEHICLES; i++) {
    fl_answer_vehicle *v = &m.body.answer.vehicles[i];
    snprintf(v->vehicle, sizeof v->vehicle, "veh-%04d", i);
    SET(v->name, "Blue \xc3\xa9");
    SET(v->station, "st-1");
    v->rate_cents = 1200;
    v->energy_pct = (uint32_t)(i * 3);
  }
  check_round_trip(&m, "answer available, 32 vehicles");
  memset(&m.body.answer, 0, sizeof m.body.answer);
  m.body.answer.what = FL_QUERY_AVAILABLE; /* ok false is sent */
  check_round_trip(&m, "answer available refused, no fields");
}

/* P-QRY-5: an answer with every list full of the longest values does not fit
 * in FL_MAX_MSG_BYTES; the encoder says so (FL_ERR_BUFFER), and the hub
 * leaves entries out and sets "more". */
static void test_answer_size(void) {
  static uint8_t buf[FL_MAX_MSG_BYTES];
  static fl_msg m;
  size_t n = 0;
  sample(&m, FL_MSG_ANSWER);
  memset(&m.body.answer, 0, sizeof m.body.answer);
  m.body.answer.what = FL_QUERY_AVAILABLE;
  m.body.answer.ok = true;
  m.body.answer.n_vehicles = FL_MAX_ANSWER_VEHICLES;
  for (int i = 0; i < FL_MAX_ANSWER_VEHICLES; i++) {
    fl_answer_vehicle *v = &m.body.answer.vehicles[i];
    memset(v->vehicle, 'v', FL_ID_MAX);
    memset(v->name, 'n', FL_TEXT_MAX);
    memset(v->station, 's', FL_ID_MAX);
    v->rate_cents = INT64_MAX;
    v->energy_pct = 100;
  }
  CHECK(fl_msg_encode(&m, buf, sizeof buf, &n) == FL_ERR_BUFFER);
  m.body.answer.n_vehicles = 24; /* 24 of the longest fit */
  m.body.answer.more = true;
  CHECK(fl_msg_encode(&m, buf, sizeof buf, &n) == FL_OK && n <= FL_MAX_MSG_BYTES);
}

/* P-NOT-2: FL_MAX_NOTICES changes with every field at its longest, in an
 * envelope with the longest ids, fit in FL_MAX_MSG_BYTES with room to spare
 * for optional fields of later revisions. */
static void test_notices_size(void) {
  static uint8_t buf[FL_MAX_MSG_BYTES];
  static fl_msg m;
  size_t n = 0;
  fl_msg_init(&m, FL_MSG_NOTICES);
  memset(m.env.mid, 'm', FL_ID_MAX);
  memset(m.env.dev, 'd', FL_ID_MAX);
  memset(m.env.corr, 'c', FL_ID_MAX);
  m.env.boot = m.env.seq = UINT64_MAX;
  m.env.time_ms = INT64_MIN;
  SET(m.body.notices.kind, "payment");
  m.body.notices.n_changes = FL_MAX_NOTICES;
  for (int i = 0; i < FL_MAX_NOTICES; i++) {
    fl_notice *c = &m.body.notices.changes[i];
    memset(c->id, 'i', FL_ID_MAX);
    memset(c->from, 'F', sizeof c->from - 1);
    memset(c->to, 'T', sizeof c->to - 1);
    memset(c->text, 't', FL_TEXT_MAX);
    memset(c->customer, 'c', FL_ID_MAX);
  }
  CHECK(fl_msg_encode(&m, buf, sizeof buf, &n) == FL_OK);
  CHECK_MSG(n <= 6000, "a full notices message takes %zu bytes", n);
  fl_msg back;
  fl_decode_error e;
  CHECK(decode(buf, n, &back, &e) == FL_OK && memcmp(&m, &back, sizeof m) == 0);
}

/* Revision 1.2: the partition of a device (FNV-1a 32 of its id, mod P) and
 * the partitioned topic family; the values are those of docs/protocol.md. */
static void test_partitions(void) {
  static const struct {
    const char *dev;
    uint32_t hash, part256;
  } v[] = {
      {"a", 0xe40c292cu, 44},         {"veh-0042", 0x8fdcf0a5u, 165},
      {"kiosk-01", 0x65da8dd4u, 212}, {"veh-0001", 0x14d334a8u, 168},
      {"V1", 0x93fa9488u, 136},       {"kiosk-02", 0x68da928du, 141},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    CHECK_MSG(fl_fnv1a32(v[i].dev) == v[i].hash, "fnv1a32(%s) = %08x", v[i].dev,
              (unsigned)fl_fnv1a32(v[i].dev));
    CHECK_MSG(fl_partition_of(v[i].dev, FL_PARTITIONS_DEFAULT) == v[i].part256, "partition of %s",
              v[i].dev);
  }
  CHECK(fl_fnv1a32("") == 2166136261u);
  CHECK(fl_partition_of("veh-0042", 1) == 0);
  CHECK(fl_partition_of("kiosk-01", FL_PARTITIONS_MAX) == 0x65da8dd4u % 4096);

  char t[FL_TOPIC_MAX], dev[FL_ID_MAX + 1];
  fl_channel ch = FL_CH_NONE;
  int part = 7;
  CHECK(fl_topic_device_p(t, sizeof t, "veh-0042", FL_CH_UP_EVT, 165) > 0 &&
        strcmp(t, "fleet/v1/p/165/dev/veh-0042/up/evt") == 0);
  CHECK(fl_topic_device_p(t, sizeof t, "veh-0042", FL_CH_DOWN_REPLY, 0) > 0 &&
        strcmp(t, "fleet/v1/p/0/dev/veh-0042/down/reply") == 0);
  CHECK(fl_topic_device_p(t, sizeof t, "veh-0042", FL_CH_UP_EVT, -1) > 0 &&
        strcmp(t, "fleet/v1/dev/veh-0042/up/evt") == 0);
  CHECK(fl_topic_device_p(t, sizeof t, "veh-0042", FL_CH_UP_EVT, 4096) == FL_ERR_INVALID);
  CHECK(fl_topic_device_p(t, sizeof t, "veh 42", FL_CH_UP_EVT, 1) == FL_ERR_INVALID);
  CHECK(fl_topic_device_p(t, 10, "veh-0042", FL_CH_UP_EVT, 1) == FL_ERR_BUFFER);
  CHECK(fl_topic_parse_device_p("fleet/v1/p/165/dev/veh-0042/up/evt", dev, sizeof dev, &ch,
                                &part) == FL_OK &&
        part == 165 && ch == FL_CH_UP_EVT && strcmp(dev, "veh-0042") == 0);
  CHECK(fl_topic_parse_device_p("fleet/v1/p/4095/dev/kiosk-01/down/sync", dev, sizeof dev, &ch,
                                &part) == FL_OK &&
        part == 4095 && ch == FL_CH_DOWN_SYNC);
  CHECK(fl_topic_parse_device_p("fleet/v1/p/0/dev/V1/up/hello", dev, sizeof dev, &ch, &part) ==
            FL_OK &&
        part == 0);
  CHECK(fl_topic_parse_device_p("fleet/v1/dev/V1/up/hello", dev, sizeof dev, &ch, &part) ==
            FL_OK &&
        part == -1);
  static const char *const bad[] = {
      "fleet/v1/p/0165/dev/veh-0042/up/evt", /* leading zero */
      "fleet/v1/p/00/dev/veh-0042/up/evt",
      "fleet/v1/p/4096/dev/veh-0042/up/evt", /* >= 4096 */
      "fleet/v1/p/99999999999/dev/veh-0042/up/evt",
      "fleet/v1/p/1a/dev/veh-0042/up/evt", /* non-digits */
      "fleet/v1/p/-1/dev/veh-0042/up/evt",
      "fleet/v1/p/+/dev/veh-0042/up/evt",
      "fleet/v1/p//dev/veh-0042/up/evt",
      "fleet/v1/p/ 1/dev/veh-0042/up/evt",
      "fleet/v1/p/1/veh-0042/up/evt", /* no dev/ */
      "fleet/v1/p/1/dev/veh-0042/up/nope",
      "fleet/v1/p/1/dev//up/evt",
      "fleet/v1/p/1/dev/veh 42/up/evt",
      "fleet/v1/p/1",
      "fleet/v1/p/",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    part = 7;
    CHECK_MSG(fl_topic_parse_device_p(bad[i], dev, sizeof dev, &ch, &part) == FL_ERR_TOPIC,
              "%s accepted", bad[i]);
  }
  CHECK(fl_topic_partition_status(t, sizeof t, 165) > 0 &&
        strcmp(t, "fleet/v1/p/165/status") == 0);
  CHECK(fl_topic_partition_status(t, sizeof t, 4096) == FL_ERR_INVALID);
}

static void test_names(void) {
  for (int t = FL_MSG_NONE + 1; t < FL_MSG__COUNT; t++) {
    const char *n = fl_msg_type_name((fl_msg_type)t);
    CHECK(n != NULL && fl_msg_type_from_name(n) == (fl_msg_type)t);
  }
  CHECK(fl_msg_type_name(FL_MSG_NONE) == NULL);
  CHECK(fl_msg_type_name(FL_MSG__COUNT) == NULL);
  CHECK(fl_msg_type_from_name("nope") == FL_MSG_NONE);
  CHECK(fl_msg_type_from_name(NULL) == FL_MSG_NONE);
  CHECK(strcmp(fl_severity_name(FL_SEV_WARNING), "warning") == 0);
  CHECK(fl_severity_from_name("critical") == FL_SEV_CRITICAL);
  CHECK(fl_severity_name(FL_SEV_NONE) == NULL);
  CHECK(fl_role_from_name("kiosk") == FL_ROLE_KIOSK && fl_role_from_name("x") == FL_ROLE_NONE);
  CHECK(strcmp(fl_role_name(FL_ROLE_VEHICLE), "vehicle") == 0);
  CHECK(fl_action_from_name("bookings") == FL_ACT_BOOKINGS);
  CHECK(strcmp(fl_action_name(FL_ACT_UNLOCK), "unlock") == 0);
  CHECK(fl_cmd_status_from_name("expired") == FL_CMD_EXPIRED);
  CHECK(strcmp(fl_cmd_status_name(FL_CMD_APPLIED), "applied") == 0);
  CHECK(fl_subject_from_name("booking") == FL_SUBJ_BOOKING);
  CHECK(fl_subject_name((fl_subject)99) == NULL);
  CHECK(fl_query_what_from_name("customer") == FL_QUERY_CUSTOMER);
  CHECK(strcmp(fl_query_what_name(FL_QUERY_AVAILABLE), "available") == 0);
  CHECK(fl_query_what_name(FL_QUERY_NONE) == NULL && fl_query_what_from_name("x") == FL_QUERY_NONE);
}

/* P-ENV-3: ids are 1..64 bytes of [A-Za-z0-9._:-]. */
static void test_ids(void) {
  char id[80];
  memset(id, 'a', 64);
  id[64] = '\0';
  CHECK(fl_id_valid(id));
  CHECK(fl_id_valid("A-z_0.9:x"));
  CHECK(!fl_id_valid(""));
  CHECK(!fl_id_valid(NULL));
  CHECK(!fl_id_valid("a b"));
  CHECK(!fl_id_valid("a/b"));
  CHECK(!fl_id_valid("a+b"));
  CHECK(!fl_id_valid("\xc3\xa9"));
  id[64] = 'a';
  id[65] = '\0';
  CHECK(!fl_id_valid(id));

  /* a 64-byte device id round-trips; 65 bytes is refused by both sides */
  fl_msg m, back;
  uint8_t buf[512];
  size_t n;
  fl_decode_error e;
  sample(&m, FL_MSG_ACK);
  memset(m.env.dev, 'd', 64);
  m.env.dev[64] = '\0';
  check_round_trip(&m, "64-byte id");
  CHECK(fl_msg_encode(&m, buf, sizeof buf, &n) == FL_OK);
  /* patch the encoded 64-byte dev into 65 bytes: re-encode by hand */
  uint8_t big[600];
  uint8_t *p = find_bytes(buf, n,
                          "\x78\x40"
                          "dddd",
                          6);
  CHECK(p != NULL);
  if (p) {
    size_t at = (size_t)(p - buf);
    memcpy(big, buf, at);
    big[at] = 0x78;
    big[at + 1] = 65;
    memset(big + at + 2, 'd', 65);
    memcpy(big + at + 2 + 65, p + 2 + 64, n - at - 2 - 64);
    CHECK(decode(big, n + 1, &back, &e) == FL_ERR_BAD_VALUE);
    CHECK_MSG(strncmp(e.detail, "dev:", 4) == 0, "detail '%s'", e.detail);
  }
}

/* P-ENC-2: the encoder refuses messages that break the contract (FL_ERR_INVALID). */
static void test_encode_invalid(void) {
  fl_msg m;
  uint8_t buf[FL_MAX_MSG_BYTES];
  size_t n;
#define EXPECT_INVALID(type, stmt)                                                    \
  do {                                                                                \
    sample(&m, type);                                                                 \
    stmt;                                                                             \
    CHECK_MSG(fl_msg_encode(&m, buf, sizeof buf, &n) == FL_ERR_INVALID, "%s", #stmt); \
  } while (0)
  EXPECT_INVALID(FL_MSG_ACK, m.env.type = FL_MSG_NONE);
  EXPECT_INVALID(FL_MSG_ACK, m.env.type = FL_MSG__COUNT);
  EXPECT_INVALID(FL_MSG_ACK, m.env.v = 2);
  EXPECT_INVALID(FL_MSG_ACK, m.env.mid[0] = '\0');
  EXPECT_INVALID(FL_MSG_ACK, SET(m.env.dev, "bad id"));
  EXPECT_INVALID(FL_MSG_ACK, SET(m.env.corr, "bad/corr"));
  EXPECT_INVALID(FL_MSG_RENTAL_REQUEST, m.body.rental_request.vehicle[0] = '\0');
  EXPECT_INVALID(FL_MSG_RENTAL_REQUEST, m.env.corr[0] = '\0'); /* P-ENV-4 */
  EXPECT_INVALID(FL_MSG_RENTAL_REQUEST, m.body.rental_request.minutes = 0);
  EXPECT_INVALID(FL_MSG_RENTAL_REQUEST, m.body.rental_request.minutes = 43201);
  EXPECT_INVALID(FL_MSG_FAULT, m.body.fault.n_dtcs = 0);
  EXPECT_INVALID(FL_MSG_FAULT, m.body.fault.n_dtcs = FL_MAX_DTCS + 1);
  EXPECT_INVALID(FL_MSG_FAULT, m.body.fault.severity = FL_SEV_NONE);
  EXPECT_INVALID(FL_MSG_FAULT, m.body.fault.severity = (fl_severity)42);
  EXPECT_INVALID(FL_MSG_FAULT, memset(m.body.fault.dtcs[3], 'P', FL_DTC_MAX + 1)); /* no NUL */
  EXPECT_INVALID(FL_MSG_TELEMETRY, m.body.telemetry.lat = NAN);
  EXPECT_INVALID(FL_MSG_TELEMETRY, m.body.telemetry.lon = 180.5);
  EXPECT_INVALID(FL_MSG_TELEMETRY, m.body.telemetry.energy_pct = 101);
  EXPECT_INVALID(FL_MSG_BOOKING_REQUEST, m.body.booking_request.end_ms = INT64_MIN);
  EXPECT_INVALID(FL_MSG_COMMAND, m.body.command.n_bookings = FL_MAX_BOOKINGS + 1);
  EXPECT_INVALID(FL_MSG_COMMAND, m.body.command.bookings[5].end_ms = 0);
  EXPECT_INVALID(FL_MSG_VEHICLE_STATE, SET(m.body.vehicle_state.state, "PARKED"));
  EXPECT_INVALID(FL_MSG_NOTIFY, SET(m.body.notify.kind, "weather"));
  EXPECT_INVALID(FL_MSG_RENTAL_CANCEL, SET(m.body.rental_cancel.reason, "bad \xff utf8"));
  /* revision 1.1 */
  EXPECT_INVALID(FL_MSG_QUERY, m.env.corr[0] = '\0'); /* P-ENV-4 */
  EXPECT_INVALID(FL_MSG_QUERY, m.body.query.what = FL_QUERY_NONE);
  EXPECT_INVALID(FL_MSG_QUERY, m.body.query.end_ms = 0);            /* P-MSG-4 */
  EXPECT_INVALID(FL_MSG_QUERY, m.body.query.end_ms = m.body.query.start_ms); /* P-MSG-2 */
  EXPECT_INVALID(FL_MSG_QUERY, SET(m.body.query.customer, "cust-7"));      /* P-MSG-4 */
  EXPECT_INVALID(FL_MSG_QUERY, m.body.query.what = FL_QUERY_CUSTOMER);     /* no customer */
  EXPECT_INVALID(FL_MSG_QUERY, SET(m.body.query.station, "st 1"));
  EXPECT_INVALID(FL_MSG_ANSWER, m.body.answer.n_rentals = FL_MAX_ANSWER_RENTALS + 1);
  EXPECT_INVALID(FL_MSG_ANSWER, m.body.answer.n_bookings = FL_MAX_ANSWER_BOOKINGS + 1);
  EXPECT_INVALID(FL_MSG_ANSWER, m.body.answer.n_vehicles = FL_MAX_ANSWER_VEHICLES + 1);
  EXPECT_INVALID(FL_MSG_ANSWER, m.body.answer.n_vehicles = 1);             /* P-MSG-5 */
  EXPECT_INVALID(FL_MSG_ANSWER, m.body.answer.what = FL_QUERY_AVAILABLE);  /* P-MSG-5 */
  EXPECT_INVALID(FL_MSG_ANSWER, SET(m.body.answer.rentals[3].state, "HELD"));
  EXPECT_INVALID(FL_MSG_ANSWER, SET(m.body.answer.bookings[3].state, "ACTIVE"));
  EXPECT_INVALID(FL_MSG_ANSWER, m.body.answer.bookings[2].end_ms = 0);
  EXPECT_INVALID(FL_MSG_ANSWER, m.body.answer.rentals[0].vehicle[0] = '\0');
  EXPECT_INVALID(FL_MSG_BOOKING_STATE, SET(m.body.booking_state.state, "ACTIVE"));
  EXPECT_INVALID(FL_MSG_BOOKING_STATE, m.body.booking_state.end_ms = -1);
  EXPECT_INVALID(FL_MSG_BOOKING_STATE, m.body.booking_state.customer[0] = '\0');
  EXPECT_INVALID(FL_MSG_STATION_STATE, m.body.station_state.station[0] = '\0');
  EXPECT_INVALID(FL_MSG_NOTIFY, SET(m.body.notify.customer, "cust 7"));
  /* revision 1.2 */
  EXPECT_INVALID(FL_MSG_PARTITION_STATUS, m.body.partition_status.partition = FL_PARTITION_MAX + 1);
  EXPECT_INVALID(FL_MSG_PARTITION_STATUS, memset(m.body.partition_status.hub, 'h', FL_ID_MAX + 1));
  EXPECT_INVALID(FL_MSG_NOTICES, m.body.notices.n_changes = 0);
  EXPECT_INVALID(FL_MSG_NOTICES, m.body.notices.n_changes = FL_MAX_NOTICES + 1);
  EXPECT_INVALID(FL_MSG_NOTICES, SET(m.body.notices.kind, "weather"));
  EXPECT_INVALID(FL_MSG_NOTICES, m.body.notices.changes[3].to[0] = '\0');
  EXPECT_INVALID(FL_MSG_NOTICES, m.body.notices.changes[0].id[0] = '\0');
  EXPECT_INVALID(FL_MSG_NOTICES, SET(m.body.notices.changes[1].from, "NOT A STATE"));
  EXPECT_INVALID(FL_MSG_NOTICES, SET(m.body.notices.changes[2].customer, "cust 7"));
#undef EXPECT_INVALID
  CHECK(fl_msg_encode(NULL, buf, sizeof buf, &n) == FL_ERR_INVALID);
}

/* P-ENC-1: every canonical vector decodes, and re-encodes to the very same bytes. */
static void test_valid_vectors(void) {
  DIR *dir = opendir(vec_dir);
  CHECK_MSG(dir != NULL, "cannot open %s", vec_dir);
  if (!dir) return;
  int count = 0;
  bool seen[FL_MSG__COUNT] = {false};
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    if (!ends_with(de->d_name, ".hex")) continue;
    static uint8_t buf[FL_MAX_MSG_BYTES], out[FL_MAX_MSG_BYTES];
    long n = read_vector("", de->d_name, buf, sizeof buf);
    CHECK_MSG(n > 0, "%s: unreadable", de->d_name);
    if (n <= 0) continue;
    fl_msg m;
    fl_decode_error e;
    int rc = decode(buf, (size_t)n, &m, &e);
    CHECK_MSG(rc == FL_OK, "%s: %s (%s)", de->d_name, fl_errname(rc), e.detail);
    if (rc) continue;
    seen[m.env.type] = true;
    size_t k = 0;
    rc = fl_msg_encode(&m, out, sizeof out, &k);
    CHECK_MSG(rc == FL_OK && k == (size_t)n && memcmp(out, buf, k) == 0,
              "%s: re-encoding differs (rc %s, %zu vs %ld bytes)", de->d_name, fl_errname(rc), k,
              n);
    count++;
  }
  closedir(dir);
  CHECK(count >= FL_MSG__COUNT - 1);
  for (int t = FL_MSG_NONE + 1; t < FL_MSG__COUNT; t++)
    CHECK_MSG(seen[t], "no valid vector of type %s", fl_msg_type_name((fl_msg_type)t));
}

/* Lines of "<file> <token> ..." from expected.txt; calls fn for each. */
static void each_expected(const char *sub, void (*fn)(const char *file, const char *token)) {
  char path[512], line[512];
  snprintf(path, sizeof path, "%s/%s/expected.txt", vec_dir, sub);
  FILE *f = fopen(path, "r");
  CHECK_MSG(f != NULL, "cannot open %s", path);
  if (!f) return;
  int count = 0;
  while (fgets(line, sizeof line, f)) {
    char file[256], token[64];
    if (line[0] == '#' || sscanf(line, "%255s %63s", file, token) != 2) continue;
    fn(file, token);
    count++;
  }
  fclose(f);
  CHECK(count > 0);
}

/* P-DEC-1..9: each bad vector fails with exactly the listed error. */
static void check_bad(const char *file, const char *token) {
  static uint8_t buf[FL_MAX_MSG_BYTES + 16];
  long n = read_vector("bad", file, buf, sizeof buf);
  CHECK_MSG(n >= 0, "%s: unreadable", file);
  if (n < 0) return;
  fl_msg m;
  fl_decode_error e;
  int rc = decode(buf, (size_t)n, &m, &e);
  CHECK_MSG(strcmp(fl_errname(rc), token) == 0, "%s: got %s (%s), expected %s", file,
            fl_errname(rc), e.detail, token);
  CHECK(e.code == rc && e.detail[0] != '\0');
}

/* P-DEC-11, P-VER-1: non-canonical but valid vectors (unknown keys, any key
 * order, float widths, long integer heads) decode to their canonical
 * counterpart. */
static void check_noncanonical(const char *file, const char *canonical) {
  static uint8_t a[FL_MAX_MSG_BYTES], b[FL_MAX_MSG_BYTES], out[FL_MAX_MSG_BYTES];
  long na = read_vector("noncanonical", file, a, sizeof a);
  long nb = read_vector("", canonical, b, sizeof b);
  CHECK_MSG(na > 0 && nb > 0, "%s / %s unreadable", file, canonical);
  if (na <= 0 || nb <= 0) return;
  fl_msg ma, mb;
  fl_decode_error e;
  int rc = decode(a, (size_t)na, &ma, &e);
  CHECK_MSG(rc == FL_OK, "%s: %s (%s)", file, fl_errname(rc), e.detail);
  CHECK(decode(b, (size_t)nb, &mb, &e) == FL_OK);
  CHECK_MSG(memcmp(&ma, &mb, sizeof ma) == 0, "%s: fields differ from %s", file, canonical);
  size_t k = 0;
  CHECK(fl_msg_encode(&ma, out, sizeof out, &k) == FL_OK && k == (size_t)nb &&
        memcmp(out, b, k) == 0);
}

static void test_vector_files(void) {
  each_expected("bad", check_bad);
  each_expected("noncanonical", check_noncanonical);
}

/* Error details name the field (P-DEC-10). */
static void test_details(void) {
  uint8_t buf[FL_MAX_MSG_BYTES];
  fl_msg m;
  fl_decode_error e;
  long n = read_vector("bad", "dtc-too-long.hex", buf, sizeof buf);
  CHECK(n > 0 && decode(buf, (size_t)n, &m, &e) == FL_ERR_BAD_VALUE);
  CHECK_MSG(strcmp(e.detail, "body.dtcs[2]: longer than 16 bytes") == 0, "'%s'", e.detail);
  n = read_vector("bad", "missing-customer.hex", buf, sizeof buf);
  CHECK(n > 0 && decode(buf, (size_t)n, &m, &e) == FL_ERR_MISSING);
  CHECK_MSG(strncmp(e.detail, "body.customer:", 14) == 0, "'%s'", e.detail);
  n = read_vector("bad", "duplicate-key.hex", buf, sizeof buf);
  CHECK(n > 0 && decode(buf, (size_t)n, &m, &e) == FL_ERR_DUP_KEY);
  CHECK_MSG(strncmp(e.detail, "seq:", 4) == 0, "'%s'", e.detail);
  n = read_vector("bad", "too-deep-booking.hex", buf, sizeof buf);
  CHECK(n > 0 && decode(buf, (size_t)n, &m, &e) == FL_ERR_TOO_DEEP);
  CHECK_MSG(strncmp(e.detail, "body.bookings[0].x:", 19) == 0, "'%s'", e.detail);
  CHECK(fl_msg_decode(buf, (size_t)n, &m, NULL) == FL_ERR_TOO_DEEP); /* err may be NULL */
  n = read_vector("bad", "query-half-window.hex", buf, sizeof buf);
  CHECK(n > 0 && decode(buf, (size_t)n, &m, &e) == FL_ERR_MISSING);
  CHECK_MSG(strncmp(e.detail, "body.end_ms:", 12) == 0, "'%s'", e.detail);
  n = read_vector("bad", "answer-rental-bad-state.hex", buf, sizeof buf);
  CHECK(n > 0 && decode(buf, (size_t)n, &m, &e) == FL_ERR_BAD_VALUE);
  CHECK_MSG(strncmp(e.detail, "body.rentals[0].state:", 22) == 0, "'%s'", e.detail);
  n = read_vector("bad", "answer-vehicles-for-customer.hex", buf, sizeof buf);
  CHECK(n > 0 && decode(buf, (size_t)n, &m, &e) == FL_ERR_BAD_VALUE);
  CHECK_MSG(strncmp(e.detail, "body.vehicles:", 14) == 0, "'%s'", e.detail);
}

/* Revision 1.1 topics: up/query parses, state/booking and state/station build. */
static void test_topics(void) {
  char t[FL_TOPIC_MAX], dev[FL_ID_MAX + 1];
  fl_channel ch = FL_CH_NONE;
  CHECK(fl_topic_device(t, sizeof t, "kiosk-01", FL_CH_UP_QUERY) > 0 &&
        strcmp(t, "fleet/v1/dev/kiosk-01/up/query") == 0);
  CHECK(fl_topic_parse_device("fleet/v1/dev/kiosk-01/up/query", dev, sizeof dev, &ch) == FL_OK &&
        ch == FL_CH_UP_QUERY && strcmp(dev, "kiosk-01") == 0);
  CHECK(fl_topic_parse_device("fleet/v1/dev/kiosk-01/up/query/x", dev, sizeof dev, &ch) ==
        FL_ERR_TOPIC);
  CHECK(fl_topic_parse_device("fleet/v1/dev/kiosk-01/down/query", dev, sizeof dev, &ch) ==
        FL_ERR_TOPIC);
  CHECK(fl_topic_parse_device("fleet/v1/dev/kiosk-01/down/reply", dev, sizeof dev, &ch) ==
        FL_OK && ch == FL_CH_DOWN_REPLY);
  CHECK(fl_topic_state(t, sizeof t, "booking", "B-1") > 0 &&
        strcmp(t, "fleet/v1/state/booking/B-1") == 0);
  CHECK(fl_topic_state(t, sizeof t, "station", "st-central") > 0 &&
        strcmp(t, "fleet/v1/state/station/st-central") == 0);
  CHECK(fl_topic_notify(t, sizeof t, "payment") > 0 && strcmp(t, "fleet/v1/notify/payment") == 0);
}

/* Appends an unknown envelope key "pad" holding a byte string so that the
 * message is exactly `total` bytes. Returns the size or 0. */
static size_t pad_message(const uint8_t *msg, size_t n, uint8_t *out, size_t total) {
  /* msg starts with a map head 0xa8/0xa9 (8 or 9 entries < 24) */
  if (n < 1 || (msg[0] & 0xe0) != 0xa0 || (msg[0] & 0x1f) >= 23) return 0;
  size_t fixed = n + 4 + 3; /* "pad" key, byte string head 0x59 xx xx */
  if (total < fixed + 256) return 0;
  size_t blen = total - fixed;
  out[0] = (uint8_t)(msg[0] + 1);
  memcpy(out + 1, msg + 1, n - 1);
  size_t at = n;
  memcpy(out + at, "\x63pad\x59", 5);
  out[at + 5] = (uint8_t)(blen >> 8);
  out[at + 6] = (uint8_t)blen;
  memset(out + at + 7, 0xab, blen);
  return total;
}

/* P-DEC-1: more than FL_MAX_MSG_BYTES is refused before anything else. */
static void test_oversize(void) {
  static uint8_t msg[FL_MAX_MSG_BYTES], big[FL_MAX_MSG_BYTES + 2];
  fl_msg m;
  fl_decode_error e;
  long n = read_vector("", "ack.hex", msg, sizeof msg);
  CHECK(n > 0);
  if (n <= 0) return;
  CHECK(pad_message(msg, (size_t)n, big, FL_MAX_MSG_BYTES) == FL_MAX_MSG_BYTES);
  CHECK_MSG(decode(big, FL_MAX_MSG_BYTES, &m, &e) == FL_OK, "8192 bytes: %s", e.detail);
  CHECK(pad_message(msg, (size_t)n, big, FL_MAX_MSG_BYTES + 1) == FL_MAX_MSG_BYTES + 1);
  CHECK(decode(big, FL_MAX_MSG_BYTES + 1, &m, &e) == FL_ERR_TOO_LARGE);
  /* even garbage: the size is checked first */
  memset(big, 0xff, sizeof big);
  CHECK(decode(big, sizeof big, &m, &e) == FL_ERR_TOO_LARGE);
}

/* P-DEC-7/P-MSG-2: any float width and integers are numbers. */
static void test_numbers(void) {
  static const uint8_t pre[] = {
      0xa8, 0x61, 'v', 0x01, 0x64, 't',  'y',  'p',  'e', 0x69, 't', 'e',
      'l',  'e',  'm', 'e',  't',  'r',  'y',  0x63, 'm', 'i',  'd', 0x61,
      'm',  0x63, 'd', 'e',  'v',  0x61, 'd',  0x64, 'b', 'o',  'o', 't',
      0x00, 0x63, 's', 'e',  'q',  0x01, 0x64, 't',  'i', 'm',  'e', 0x20, /* time -1 */
      0x64, 'b',  'o', 'd',  'y',  0xa4, 0x6a, 'o',  'd', 'o',  'm', 'e',
      't',  'e',  'r', '_',  'm',  0x00, 0x6a, 'e',  'n', 'e',  'r', 'g',
      'y',  '_',  'p', 'c',  't',  0x00, 0x63, 'l',  'a', 't'};
  struct {
    uint8_t lat[9];
    size_t n;
    int rc;
    double want;
  } cases[] = {
      {{0xf9, 0x52, 0x90}, 3, FL_OK, 52.5},                      /* float16 */
      {{0xfa, 0x42, 0x52, 0x00, 0x00}, 5, FL_OK, 52.5},          /* float32 */
      {{0xfb, 0x40, 0x4a, 0x40, 0, 0, 0, 0, 0}, 9, FL_OK, 52.5}, /* float64 */
      {{0x18, 0x5a}, 2, FL_OK, 90.0},                            /* uint */
      {{0x38, 0x59}, 2, FL_OK, -90.0},                           /* nint */
      {{0x38, 0x5a}, 2, FL_ERR_BAD_VALUE, 0},                    /* -91 */
      {{0xf9, 0x7e, 0x00}, 3, FL_ERR_BAD_VALUE, 0},              /* float16 NaN */
      {{0xf9, 0x7c, 0x00}, 3, FL_ERR_BAD_VALUE, 0},              /* float16 +inf */
      {{0xf5}, 1, FL_ERR_WRONG_TYPE, 0},                         /* true */
      {{0xf6}, 1, FL_ERR_WRONG_TYPE, 0},                         /* null */
      {{0xf0}, 1, FL_ERR_WRONG_TYPE, 0},                         /* simple(16) */
      {{0xf8, 0x20}, 2, FL_ERR_WRONG_TYPE, 0},                   /* simple(32) */
      {{0xf8, 0x10}, 2, FL_ERR_MALFORMED, 0},                    /* simple < 32 in 2 bytes */
      {{0xc1, 0x00}, 2, FL_ERR_WRONG_TYPE, 0},                   /* tag 1 */
      {{0xd9, 0xd9, 0xf7, 0x00}, 4, FL_ERR_WRONG_TYPE, 0},       /* tag 55799 */
      {{0x40}, 1, FL_ERR_WRONG_TYPE, 0},                         /* bytes */
  };
  static const uint8_t post[] = {0x63, 'l', 'o', 'n', 0x00};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t buf[256];
    size_t n = 0;
    memcpy(buf, pre, sizeof pre);
    n += sizeof pre;
    memcpy(buf + n, cases[i].lat, cases[i].n);
    n += cases[i].n;
    memcpy(buf + n, post, sizeof post);
    n += sizeof post;
    fl_msg m;
    fl_decode_error e;
    int rc = decode(buf, n, &m, &e);
    CHECK_MSG(rc == cases[i].rc, "case %zu: %s (%s)", i, fl_errname(rc), e.detail);
    if (rc == FL_OK) {
      CHECK(m.body.telemetry.lat == cases[i].want);
      CHECK(m.env.time_ms == -1);
    }
  }
}

/* P-DEC-4/5: hostile nesting fails fast, without recursion or allocation. */
static void test_nesting(void) {
  static uint8_t buf[FL_MAX_MSG_BYTES];
  fl_msg m;
  fl_decode_error e;
  memset(buf, 0x81, sizeof buf);                               /* [[[[...]]]] */
  CHECK(decode(buf, sizeof buf, &m, &e) == FL_ERR_WRONG_TYPE); /* top is not a map */
  buf[0] = 0xa1;                                               /* {"": [[[[...*/
  buf[1] = 0x60;
  CHECK(decode(buf, sizeof buf, &m, &e) == FL_ERR_TOO_DEEP);
  memset(buf, 0xbf, sizeof buf);
  CHECK(decode(buf, sizeof buf, &m, &e) == FL_ERR_INDEFINITE);
  /* a map claiming 2^64-1 entries */
  static const uint8_t huge[] = {0xbb, 0xff, 0xff, 0xff, 0xff, 0xff,
                                 0xff, 0xff, 0xff, 0x61, 'v',  0x01};
  CHECK(decode(huge, sizeof huge, &m, &e) == FL_ERR_MALFORMED);
  /* a text string claiming 2^64-1 bytes */
  static const uint8_t hugestr[] = {0xa1, 0x7b, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 'v'};
  CHECK(decode(hugestr, sizeof hugestr, &m, &e) == FL_ERR_MALFORMED);
  /* many distinct unknown keys, then a duplicate: found by the sorted check */
  size_t n = 0;
  buf[n++] = 0xb9; /* map, 2-byte count */
  buf[n++] = 0x02;
  buf[n++] = 0x58; /* 600 entries */
  for (int i = 0; i < 599; i++) {
    buf[n++] = 0x62;
    buf[n++] = (uint8_t)('A' + i / 26 % 26);
    buf[n++] = (uint8_t)('a' + i % 26);
    buf[n++] = 0x00;
  }
  buf[n++] = 0x62; /* "Bc" again: i = 28 */
  buf[n++] = 'B';
  buf[n++] = 'c';
  buf[n++] = 0x00;
  CHECK(decode(buf, n, &m, &e) == FL_ERR_DUP_KEY);
  CHECK_MSG(strcmp(e.detail, "Bc: duplicate key") == 0, "'%s'", e.detail);
  buf[n - 2] = 'z'; /* distinct again: then only the envelope is incomplete */
  buf[n - 3] = 'z';
  CHECK(decode(buf, n, &m, &e) == FL_ERR_MISSING);
}

/* Fuzz-ish: mutated vectors and random bytes never crash, never leak (ASan),
 * and whatever is accepted re-encodes and decodes to the same message. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 11);
}

static int fuzz_runs, fuzz_accepted, fuzz_bad_accept;

static void fuzz_one(const uint8_t *b, size_t n) {
  static uint8_t out[FL_MAX_MSG_BYTES];
  fl_msg m, again;
  fl_decode_error e;
  fuzz_runs++;
  int rc = decode(b, n, &m, &e);
  if (rc != FL_OK) {
    if (e.code != rc || e.detail[0] == '\0') fuzz_bad_accept++;
    return;
  }
  fuzz_accepted++;
  size_t k = 0;
  if (fl_msg_encode(&m, out, sizeof out, &k) != FL_OK || decode(out, k, &again, &e) != FL_OK ||
      memcmp(&m, &again, sizeof m) != 0)
    fuzz_bad_accept++;
}

static void test_fuzz(void) {
  DIR *dir = opendir(vec_dir);
  if (!dir) return;
  static uint8_t buf[FL_MAX_MSG_BYTES], mut[FL_MAX_MSG_BYTES];
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    if (!ends_with(de->d_name, ".hex")) continue;
    long n = read_vector("", de->d_name, buf, sizeof buf);
    if (n <= 0) continue;
    size_t len = (size_t)n;
    for (size_t cut = 0; cut < len; cut++) fuzz_one(buf, cut); /* truncations */
    for (size_t bit = 0; bit < len * 8; bit++) {               /* single bit flips */
      memcpy(mut, buf, len);
      mut[bit / 8] ^= (uint8_t)(1u << (bit % 8));
      fuzz_one(mut, len);
    }
    for (int r = 0; r < 300; r++) { /* random byte replacements, insertions */
      memcpy(mut, buf, len);
      size_t mlen = len;
      int edits = 1 + (int)(rng() % 4);
      for (int k = 0; k < edits; k++) {
        size_t at = rng() % mlen;
        if (rng() % 3 == 0 && mlen < sizeof mut) {
          memmove(mut + at + 1, mut + at, mlen - at);
          mlen++;
        }
        mut[at] = (uint8_t)rng();
      }
      fuzz_one(mut, mlen);
    }
  }
  closedir(dir);
  for (int r = 0; r < 2000; r++) { /* random buffers, biased to map/array heads */
    size_t len = 1 + rng() % 64;
    for (size_t i = 0; i < len; i++) {
      uint32_t x = rng();
      mut[i] = (x & 0x100) ? (uint8_t)(0xa0 | (x & 0x1f)) : (uint8_t)x;
    }
    fuzz_one(mut, len);
  }
  CHECK_MSG(fuzz_bad_accept == 0, "%d of %d fuzz inputs broke a property", fuzz_bad_accept,
            fuzz_runs);
  CHECK(fuzz_runs > 10000);
  printf("fuzz: %d inputs, %d accepted\n", fuzz_runs, fuzz_accepted);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s <schemas/vectors directory>\n", argv[0]);
    return 2;
  }
  vec_dir = argv[1];
  test_names();
  test_ids();
  test_round_trip_all_types();
  test_encode_invalid();
  test_valid_vectors();
  test_vector_files();
  test_details();
  test_topics();
  test_answer_size();
  test_notices_size();
  test_partitions();
  test_oversize();
  test_numbers();
  test_nesting();
  test_fuzz();
  printf("%d passed, %d failed\n", n_pass, n_fail);
  return n_fail ? 1 : 0;
}
