/* fleet-loadgen: load for the benchmarks, speaking the wire protocol directly
 * (not through the agent, so that the figures are the hub's and the broker's).
 *
 *   fleet-loadgen baseline --broker URI [--count N] [--window W] [--size B]
 *       the raw broker rate: one QoS 1 publisher, one subscriber, B-byte
 *       payloads, at most W publishes in flight; prints msgs_per_s.
 *   fleet-loadgen saga --broker URI --lanes L [--seconds S] [--rate R]
 *       L kiosks, each renting its own vehicle B-V<i> and returning it, one
 *       request in flight per kiosk; --rate R spreads R rental requests per
 *       second over the lanes (0: as fast as answers come). Prints rentals
 *       completed per second and kiosk-observed latency (request -> decision).
 *   fleet-loadgen ingest --broker URI --devices D [--seconds S] [--window W]
 *       D vehicles sending telemetry and faults as sequenced events, at most
 *       W unacked per device; prints events acknowledged per second.
 *
 * Every figure is printed as key=value, the headline last. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fleet/cli.h"
#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/mqtt.h"
#include "fleet/partition.h"
#include "fleet/proto.h"
#include "fleet/topic.h"

#define MAX_INFLIGHT 400 /* paho's QoS 1 rate collapses above ~500 in flight */

typedef struct options {
  const char *mode, *broker;
  const char *prefix; /* device and vehicle ids: <prefix>K<i>, <prefix>V<i> (saga), <prefix>T<i> (ingest) */
  long count, window, size, lanes, devices;
  double seconds, rate;
  bool legacy;       /* --family legacy: the topics of revision 1.1, else 1.2's partitioned ones */
  bool count_broker; /* --count-broker: the broker's $SYS publish counters around the run */
} options;

/* The topic of dev's channel ch in the options' family. */
static void dev_topic(const options *o, char *buf, size_t cap, const char *dev, fl_channel ch) {
  int part = o->legacy ? -1 : (int)fl_partition_of(dev, FL_PARTITIONS_DEFAULT);
  fl_topic_device_p(buf, cap, dev, ch, part);
}

/* A downlink filter of every device in the options' family ("down/ack"...). */
static const char *down_filter(const options *o, const char *channel, char *buf, size_t cap) {
  snprintf(buf, cap, o->legacy ? "fleet/v1/dev/+/down/%s" : "fleet/v1/p/+/dev/+/down/%s", channel);
  return buf;
}

/* ---- the broker's own count of publishes ($SYS, mosquitto) --------------- */

#define SYS_RECEIVED "$SYS/broker/publish/messages/received"
static _Atomic uint64_t sys_received; /* its latest value */
static atomic_long sys_updates;       /* how many values came */

/* A $SYS message: returns true if it was one (and keeps its value). */
static bool sys_message(const fl_mqtt_msg *msg) {
  if (strcmp(msg->topic, SYS_RECEIVED) != 0) return false;
  char num[32];
  size_t n = msg->len < sizeof num - 1 ? msg->len : sizeof num - 1;
  memcpy(num, msg->payload, n);
  num[n] = '\0';
  atomic_store(&sys_received, strtoull(num, NULL, 10));
  atomic_fetch_add(&sys_updates, 1);
  return true;
}

/* Waits until the counter has stood still for 2.2 s (mosquitto publishes a
 * $SYS value every sys_interval seconds, 1 here, and only when it changed)
 * and returns it; after 20 s, the latest value. */
static uint64_t sys_settled(void) {
  long seen = atomic_load(&sys_updates);
  int64_t still_since = fl_mono_us(), give_up = still_since + 20000000;
  while (fl_mono_us() - still_since < 2200000 && fl_mono_us() < give_up) {
    fl_sleep_ms(50);
    long now = atomic_load(&sys_updates);
    if (now != seen) {
      seen = now;
      still_since = fl_mono_us();
    }
  }
  return atomic_load(&sys_received);
}

/* Yields the core for 50 us: the broker and the hub share this machine. */
static void nap(void) {
  struct timespec ts = {0, 50000};
  nanosleep(&ts, NULL);
}

/* ---- a connection that counts PUBACKs ------------------------------------- */

typedef struct conn {
  fl_mqtt *mqtt;
  atomic_long inflight;
  atomic_long received;
  atomic_bool up;
  void (*on_message)(void *ctx, const fl_mqtt_msg *msg);
  void *ctx;
} conn;

static void conn_published(void *ctx, uint64_t tag, fl_err rc) {
  conn *c = ctx;
  (void)tag;
  (void)rc;
  atomic_fetch_sub(&c->inflight, 1);
}

static void conn_connected(void *ctx) { atomic_store(&((conn *)ctx)->up, true); }

static void conn_message(void *ctx, const fl_mqtt_msg *msg) {
  conn *c = ctx;
  atomic_fetch_add(&c->received, 1);
  if (c->on_message) c->on_message(c->ctx, msg);
}

/* Connects c as client id with optional subscriptions; waits up to 10 s. */
static int conn_open(conn *c, const char *broker, const char *id, const char *const *subs,
                     int n_subs) {
  fl_mqtt_opts o = {.uri = broker, .client_id = id, .clean_start = true,
                    .max_inflight = MAX_INFLIGHT + 100, .subscriptions = subs,
                    .n_subscriptions = n_subs};
  fl_mqtt_callbacks cb = {.ctx = c, .on_message = conn_message, .on_connected = conn_connected,
                          .on_published = conn_published};
  int rc = fl_mqtt_create(&o, &cb, &c->mqtt);
  if (rc == FL_OK) rc = fl_mqtt_start(c->mqtt);
  for (int i = 0; rc == FL_OK && i < 1000 && !atomic_load(&c->up); i++) fl_sleep_ms(10);
  if (rc == FL_OK && !atomic_load(&c->up)) rc = FL_ERR_TIMEOUT;
  if (rc == FL_OK) fl_sleep_ms(200); /* let the SUBACKs come back */
  return rc;
}

/* Publishes with a PUBACK count, waiting while window publishes are in flight. */
static int conn_publish(conn *c, const char *topic, const uint8_t *p, size_t len, long window,
                        const char *response_topic, const char *corr) {
  while (atomic_load(&c->inflight) >= window) nap();
  atomic_fetch_add(&c->inflight, 1);
  int rc = fl_mqtt_publish(c->mqtt, topic, p, len, 1, false, response_topic, corr,
                           corr ? strlen(corr) : 0, 1);
  if (rc != FL_OK) atomic_fetch_sub(&c->inflight, 1);
  return rc;
}

/* ---- latency samples ------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct_ms(int64_t *us, size_t n, double p) {
  if (!n) return 0;
  size_t i = (size_t)ceil(p / 100.0 * (double)n);
  return (double)us[i ? i - 1 : 0] / 1000.0;
}

/* ---- baseline ---------------------------------------------------------------- */

static int run_baseline(const options *o) {
  conn pub = {0}, sub = {0};
  const char *subs[] = {"bench/baseline"};
  if (conn_open(&sub, o->broker, "bench-sub", subs, 1) != FL_OK ||
      conn_open(&pub, o->broker, "bench-pub", NULL, 0) != FL_OK) {
    fprintf(stderr, "fleet-loadgen: cannot connect to %s\n", o->broker);
    return 2;
  }
  uint8_t *payload = calloc(1, (size_t)o->size);
  int64_t t0 = fl_mono_us();
  for (long i = 0; i < o->count; i++)
    if (conn_publish(&pub, "bench/baseline", payload, (size_t)o->size, o->window, NULL, NULL) != FL_OK) i--;
  while (atomic_load(&sub.received) < o->count && fl_mono_us() - t0 < 120000000) fl_sleep_ms(1);
  double s = (double)(fl_mono_us() - t0) / 1e6;
  long got = atomic_load(&sub.received);
  printf("baseline_messages=%ld\nbaseline_payload_bytes=%ld\nbaseline_window=%ld\n", got, o->size,
         o->window);
  printf("baseline_seconds=%.3f\nbaseline_qos1_msgs_per_s=%.0f\n", s, got / s);
  fl_mqtt_destroy(pub.mqtt);
  fl_mqtt_destroy(sub.mqtt);
  free(payload);
  return got == o->count ? 0 : 1;
}

/* ---- saga ------------------------------------------------------------------------ */

enum lane_state { LANE_IDLE, LANE_RENTING, LANE_RETURNING };

typedef struct lane {
  char dev[40], vehicle[40];
  char topic_evt[FL_TOPIC_MAX], topic_reply[FL_TOPIC_MAX];
  uint64_t seq, n;
  enum lane_state state;
  char rental[FL_ID_MAX + 1];
  int64_t sent_us;
  atomic_bool answered; /* set by paho's thread, taken by the main loop */
  atomic_bool answer_ok;
} lane;

typedef struct saga {
  const options *o;
  lane *lanes;
  conn c;
  atomic_long synced; /* lanes whose hello was answered */
} saga;

/* Decisions: find the lane by device id in the topic and flag it. */
static void saga_message(void *ctx, const fl_mqtt_msg *msg) {
  saga *s = ctx;
  if (sys_message(msg)) return;
  char dev[FL_ID_MAX + 1];
  fl_channel ch;
  if (fl_topic_parse_device(msg->topic, dev, sizeof dev, &ch) != FL_OK) return;
  if (ch == FL_CH_DOWN_SYNC) {
    atomic_fetch_add(&s->synced, 1);
    return;
  }
  if (ch != FL_CH_DOWN_REPLY) return;
  size_t plen = strlen(s->o->prefix);
  if (strncmp(dev, s->o->prefix, plen) != 0 || dev[plen] != 'K') return;
  long i = strtol(dev + plen + 1, NULL, 10); /* "<prefix>K<i>" */
  if (i < 0 || i >= s->o->lanes) return;
  fl_msg m;
  if (fl_msg_decode(msg->payload, msg->len, &m, NULL) != FL_OK) return;
  lane *l = &s->lanes[i];
  if (strcmp(m.env.corr, l->rental) != 0) return;
  atomic_store(&l->answer_ok, m.body.decision.ok);
  atomic_store(&l->answered, true);
}

/* Publishes the lane's next request: a rental, or the return of the current one. */
static int lane_send(saga *s, lane *l, fl_msg_type type) {
  fl_msg m;
  uint8_t buf[512];
  size_t len;
  fl_msg_init(&m, type);
  if (type == FL_MSG_RENTAL_REQUEST) {
    snprintf(l->rental, sizeof l->rental, "%s-%" PRIu64, l->dev, ++l->n);
    snprintf(m.body.rental_request.vehicle, sizeof m.body.rental_request.vehicle, "%s", l->vehicle);
    snprintf(m.body.rental_request.customer, sizeof m.body.rental_request.customer, "C%s", l->dev);
    m.body.rental_request.minutes = 60;
  }
  snprintf(m.env.corr, sizeof m.env.corr, "%s", l->rental);
  snprintf(m.env.dev, sizeof m.env.dev, "%s", l->dev);
  snprintf(m.env.mid, sizeof m.env.mid, "%s:%" PRIu64, l->dev, l->seq + 1);
  m.env.boot = 1;
  m.env.seq = ++l->seq;
  m.env.time_ms = fl_now_ms();
  if (fl_msg_encode(&m, buf, sizeof buf, &len) != FL_OK) return FL_ERR_INVALID;
  atomic_store(&l->answered, false);
  l->sent_us = fl_mono_us();
  l->state = type == FL_MSG_RENTAL_REQUEST ? LANE_RENTING : LANE_RETURNING;
  return conn_publish(&s->c, l->topic_evt, buf, len, s->o->window, l->topic_reply, l->rental);
}

static int run_saga(const options *o) {
  saga s = {.o = o};
  s.lanes = calloc((size_t)o->lanes, sizeof *s.lanes);
  size_t cap = (size_t)(o->seconds * 20000) + 1000;
  int64_t *lat = calloc(cap, sizeof *lat);
  size_t n_lat = 0;
  s.c.on_message = saga_message;
  s.c.ctx = &s;
  char f_reply[64], f_sync[64];
  const char *subs[] = {down_filter(o, "reply", f_reply, sizeof f_reply),
                        down_filter(o, "sync", f_sync, sizeof f_sync), SYS_RECEIVED};
  if (conn_open(&s.c, o->broker, "bench-kiosks", subs, o->count_broker ? 3 : 2) != FL_OK) {
    fprintf(stderr, "fleet-loadgen: cannot connect to %s\n", o->broker);
    return 2;
  }
  for (long i = 0; i < o->lanes; i++) {
    lane *l = &s.lanes[i];
    snprintf(l->dev, sizeof l->dev, "%sK%ld", o->prefix, i);
    snprintf(l->vehicle, sizeof l->vehicle, "%sV%ld", o->prefix, i);
    dev_topic(o, l->topic_evt, sizeof l->topic_evt, l->dev, FL_CH_UP_EVT);
    dev_topic(o, l->topic_reply, sizeof l->topic_reply, l->dev, FL_CH_DOWN_REPLY);
  }
  /* P-SEQ-6: every kiosk says hello and waits for its sync first */
  for (long i = 0; i < o->lanes; i++) {
    fl_msg m;
    uint8_t buf[256];
    size_t len;
    char topic[FL_TOPIC_MAX];
    fl_msg_init(&m, FL_MSG_HELLO);
    m.body.hello.role = FL_ROLE_KIOSK;
    snprintf(m.env.dev, sizeof m.env.dev, "%s", s.lanes[i].dev);
    snprintf(m.env.mid, sizeof m.env.mid, "%s:hello", s.lanes[i].dev);
    m.env.boot = 1;
    m.env.time_ms = fl_now_ms();
    dev_topic(o, topic, sizeof topic, s.lanes[i].dev, FL_CH_UP_HELLO);
    if (fl_msg_encode(&m, buf, sizeof buf, &len) == FL_OK)
      conn_publish(&s.c, topic, buf, len, o->window, NULL, NULL);
  }
  for (int k = 0; k < 2000 && atomic_load(&s.synced) < o->lanes; k++) fl_sleep_ms(5);
  uint64_t sys0 = 0;
  if (o->count_broker) {
    sys0 = sys_settled(); /* what the hellos caused is counted before the start */
  }
  long completed = 0, rejected = 0, issued = 0, timeouts = 0;
  int64_t t0 = fl_mono_us(), end = t0 + (int64_t)(o->seconds * 1e6);
  /* completed rentals in each second of the run, for the bench's plots */
  long n_sec = (long)o->seconds + 2, *per_sec = calloc((size_t)n_sec, sizeof *per_sec);
  double credit = 0;
  int64_t last = t0;
  long drained = 0; /* completed after the run's time, while draining */
  bool draining = false;
  int64_t drain_end = 0;
  for (;;) {
    int64_t now = fl_mono_us();
    if (!draining && now >= end) {
      if (!o->count_broker) break;
      /* counting the broker's messages: the rentals under way finish (no new
       * ones), so that every message counted belongs to a counted rental */
      draining = true;
      drain_end = now + 10000000;
      credit = 0;
    }
    if (draining) {
      bool any = false;
      for (long i = 0; i < o->lanes; i++) any = any || s.lanes[i].state != LANE_IDLE;
      if (!any || now > drain_end) break;
    }
    credit += draining ? 0 : o->rate > 0 ? o->rate * (double)(now - last) / 1e6 : 1e9;
    last = now;
    if (credit > o->lanes) credit = (double)o->lanes;
    bool busy = false;
    for (long i = 0; i < o->lanes; i++) {
      lane *l = &s.lanes[i];
      if (l->state != LANE_IDLE && atomic_load(&l->answered)) {
        int64_t us = fl_mono_us() - l->sent_us;
        bool ok = atomic_load(&l->answer_ok);
        if (l->state == LANE_RENTING) {
          if (n_lat < cap) lat[n_lat++] = us;
          if (ok) {
            lane_send(&s, l, FL_MSG_RENTAL_RETURN);
          } else {
            rejected++;
            l->state = LANE_IDLE;
          }
        } else if (draining) {
          drained++;
          l->state = LANE_IDLE;
        } else {
          completed++;
          long sec = (long)((now - t0) / 1000000);
          if (per_sec && sec < n_sec) per_sec[sec]++;
          l->state = LANE_IDLE;
        }
        busy = true;
      } else if (l->state != LANE_IDLE && now - l->sent_us > 10000000) {
        timeouts++; /* no answer in 10 s: give the lane back */
        l->state = LANE_IDLE;
      }
      if (l->state == LANE_IDLE && credit >= 1.0) {
        credit -= 1.0;
        issued++;
        lane_send(&s, l, FL_MSG_RENTAL_REQUEST);
        busy = true;
      }
    }
    if (!busy) nap();
  }
  double secs = (double)((draining ? end : fl_mono_us()) - t0) / 1e6;
  if (o->count_broker) {
    uint64_t sys1 = sys_settled(); /* held states and acks have gone out by then */
    long rentals = completed + drained;
    printf("saga_broker_publishes=%" PRIu64 "\nsaga_rentals_counted=%ld\n", sys1 - sys0, rentals);
    if (sys1 > sys0 && rentals)
      printf("saga_msgs_per_rental=%.2f\n", (double)(sys1 - sys0) / (double)rentals);
  }
  qsort(lat, n_lat, sizeof *lat, cmp_i64);
  printf("saga_lanes=%ld\nsaga_target_rate=%.0f\nsaga_seconds=%.1f\nsaga_requests=%ld\n",
         o->lanes, o->rate, secs, issued);
  printf("saga_rejected=%ld\nsaga_timeouts=%ld\n", rejected, timeouts);
  printf("saga_decision_p50_ms=%.2f\nsaga_decision_p99_ms=%.2f\n", pct_ms(lat, n_lat, 50),
         pct_ms(lat, n_lat, 99));
  printf("saga_completed_rentals_per_s=%.0f\n", completed / secs);
  /* the series: completed per second, and the decisions' latency distribution */
  for (long i = 0; per_sec && i < (long)secs && i < n_sec; i++)
    printf("series.completed_per_s.%ld=%ld\n", i, per_sec[i]);
  static const int edges_ms[] = {5, 10, 20, 50, 100, 200, 300, 500, 750, 1000, 2000, 5000, 10000};
  for (size_t e = 0, i = 0; e < sizeof edges_ms / sizeof edges_ms[0]; e++) {
    while (i < n_lat && lat[i] <= (int64_t)edges_ms[e] * 1000) i++;
    printf("series.decisions_le_ms.%d=%zu\n", edges_ms[e], i);
  }
  free(per_sec);
  fl_mqtt_destroy(s.c.mqtt);
  free(s.lanes);
  free(lat);
  return 0;
}

/* ---- ingest -------------------------------------------------------------------------- */

typedef struct device {
  char dev[40], topic_evt[FL_TOPIC_MAX];
  uint64_t seq;
  _Atomic uint64_t acked;
} device;

typedef struct ingest {
  const options *o;
  device *devs;
  conn c;
} ingest;

static void ingest_message(void *ctx, const fl_mqtt_msg *msg) {
  ingest *g = ctx;
  char dev[FL_ID_MAX + 1];
  fl_channel ch;
  if (fl_topic_parse_device(msg->topic, dev, sizeof dev, &ch) != FL_OK || ch != FL_CH_DOWN_ACK) return;
  size_t plen = strlen(g->o->prefix);
  if (strncmp(dev, g->o->prefix, plen) != 0 || dev[plen] != 'T') return;
  long i = strtol(dev + plen + 1, NULL, 10); /* "<prefix>T<i>" */
  fl_msg m;
  if (i < 0 || i >= g->o->devices || fl_msg_decode(msg->payload, msg->len, &m, NULL) != FL_OK) return;
  device *d = &g->devs[i];
  uint64_t prev = atomic_load(&d->acked);
  while (m.body.ack.upto > prev && !atomic_compare_exchange_weak(&d->acked, &prev, m.body.ack.upto)) {
  }
}

/* Publishes device d's next event: telemetry, and every 50th a fault. */
static int device_send(ingest *g, device *d) {
  fl_msg m;
  uint8_t buf[512];
  size_t len;
  bool fault = (d->seq + 1) % 50 == 0;
  fl_msg_init(&m, fault ? FL_MSG_FAULT : FL_MSG_TELEMETRY);
  if (fault) {
    m.body.fault.n_dtcs = 1;
    snprintf(m.body.fault.dtcs[0], sizeof m.body.fault.dtcs[0], "P0301");
    m.body.fault.severity = FL_SEV_WARNING;
  } else {
    m.body.telemetry.odometer_m = 1000 + d->seq;
    m.body.telemetry.energy_pct = 80;
    m.body.telemetry.lat = 48.85;
    m.body.telemetry.lon = 2.35;
  }
  snprintf(m.env.dev, sizeof m.env.dev, "%s", d->dev);
  snprintf(m.env.mid, sizeof m.env.mid, "%s:%" PRIu64, d->dev, d->seq + 1);
  m.env.boot = 1;
  m.env.seq = ++d->seq;
  m.env.time_ms = fl_now_ms();
  if (fl_msg_encode(&m, buf, sizeof buf, &len) != FL_OK) return FL_ERR_INVALID;
  return conn_publish(&g->c, d->topic_evt, buf, len, MAX_INFLIGHT, NULL, NULL);
}

static int run_ingest(const options *o) {
  ingest g = {.o = o};
  g.devs = calloc((size_t)o->devices, sizeof *g.devs);
  g.c.on_message = ingest_message;
  g.c.ctx = &g;
  char f_ack[64];
  const char *subs[] = {down_filter(o, "ack", f_ack, sizeof f_ack)};
  if (conn_open(&g.c, o->broker, "bench-vehicles", subs, 1) != FL_OK) {
    fprintf(stderr, "fleet-loadgen: cannot connect to %s\n", o->broker);
    return 2;
  }
  for (long i = 0; i < o->devices; i++) {
    snprintf(g.devs[i].dev, sizeof g.devs[i].dev, "%sT%ld", o->prefix, i);
    dev_topic(o, g.devs[i].topic_evt, sizeof g.devs[i].topic_evt, g.devs[i].dev, FL_CH_UP_EVT);
  }
  int64_t t0 = fl_mono_us(), end = t0 + (int64_t)(o->seconds * 1e6);
  long n_sec = (long)o->seconds + 2, sec_done = 0;
  uint64_t *acked_at = calloc((size_t)n_sec, sizeof *acked_at); /* acked by the end of second i */
  while (fl_mono_us() < end) {
    long sec = (long)((fl_mono_us() - t0) / 1000000);
    while (acked_at && sec_done < sec && sec_done < n_sec) { /* a second has passed: sample */
      uint64_t acked = 0;
      for (long i = 0; i < o->devices; i++) acked += atomic_load(&g.devs[i].acked);
      acked_at[sec_done++] = acked;
    }
    bool sent = false;
    for (long i = 0; i < o->devices; i++) {
      device *d = &g.devs[i];
      if (d->seq - atomic_load(&d->acked) < (uint64_t)o->window) {
        device_send(&g, d);
        sent = true;
      }
    }
    if (!sent) nap();
  }
  /* wait for the last acks */
  uint64_t sent_total = 0, acked_total = 0;
  for (int k = 0; k < 500; k++) {
    sent_total = acked_total = 0;
    for (long i = 0; i < o->devices; i++) {
      sent_total += g.devs[i].seq;
      acked_total += atomic_load(&g.devs[i].acked);
    }
    if (acked_total == sent_total) break;
    fl_sleep_ms(10);
  }
  double secs = (double)(fl_mono_us() - t0) / 1e6;
  printf("ingest_devices=%ld\ningest_window=%ld\ningest_seconds=%.1f\n", o->devices, o->window, secs);
  printf("ingest_events_sent=%" PRIu64 "\ningest_events_acked=%" PRIu64 "\n", sent_total, acked_total);
  printf("ingest_events_per_s=%.0f\n", acked_total / secs);
  for (long i = 0; acked_at && i < sec_done; i++)
    printf("series.events_per_s.%ld=%" PRIu64 "\n", i, acked_at[i] - (i ? acked_at[i - 1] : 0));
  free(acked_at);
  fl_mqtt_destroy(g.c.mqtt);
  free(g.devs);
  return acked_total == sent_total ? 0 : 1;
}

static void usage(FILE *f) {
  fprintf(f, "usage: fleet-loadgen baseline|saga|ingest --broker URI [options]\n"
             "  --broker URI    the broker (required)\n"
             "  --count N       baseline: messages (default 100000)\n"
             "  --window N      publishes in flight (default 256)\n"
             "  --size N        baseline: payload bytes (default 200)\n"
             "  --lanes N       saga: kiosks, one request in flight each (default 100)\n"
             "  --devices N     ingest: vehicles (default 100)\n"
             "  --seconds S     saga, ingest: duration (default 10)\n"
             "  --rate R        saga: requests per second, 0 as fast as answers come (default 0)\n"
             "  --prefix P      device id prefix (default B-)\n"
             "  --family F      partitioned (revision 1.2, default) or legacy topics\n"
             "  --count-broker  saga: count the broker's publishes ($SYS) per rental\n"
             "  --help, --version\n"
             "Prints key=value lines (bench/README.md).\n");
}

/* Parses the value of --name as a number, or exits with a usage error. */
static double number(const char *name, const char *v) {
  char *end;
  double x = strtod(v, &end);
  if (!*v || *end) exit(fl_cli_usage_error("fleet-loadgen", "--%s needs a number", name));
  return x;
}

int main(int argc, char **argv) {
  enum { OPT_VERSION = 256 };
  static const struct option long_opts[] = {
      {"broker", required_argument, NULL, 'b'}, {"count", required_argument, NULL, 'n'},
      {"window", required_argument, NULL, 'w'}, {"size", required_argument, NULL, 's'},
      {"lanes", required_argument, NULL, 'l'},  {"devices", required_argument, NULL, 'd'},
      {"seconds", required_argument, NULL, 't'}, {"rate", required_argument, NULL, 'r'},
      {"prefix", required_argument, NULL, 'p'}, {"help", no_argument, NULL, 'h'},
      {"family", required_argument, NULL, 'f'}, {"count-broker", no_argument, NULL, 'c'},
      {"version", no_argument, NULL, OPT_VERSION}, {NULL, 0, NULL, 0}};
  options o = {.prefix = "B-", .count = 100000, .window = 256, .size = 200, .lanes = 100, .devices = 100,
               .seconds = 10, .rate = 0};
  opterr = 0;
  for (int opt, idx = -1; (opt = getopt_long(argc, argv, ":h", long_opts, &idx)) != -1; idx = -1) {
    const char *name = idx >= 0 ? long_opts[idx].name : "";
    switch (opt) {
    case 'b': o.broker = optarg; break;
    case 'n': o.count = (long)number(name, optarg); break;
    case 'w': o.window = (long)number(name, optarg); break;
    case 's': o.size = (long)number(name, optarg); break;
    case 'l': o.lanes = (long)number(name, optarg); break;
    case 'd': o.devices = (long)number(name, optarg); break;
    case 't': o.seconds = number(name, optarg); break;
    case 'r': o.rate = number(name, optarg); break;
    case 'p': o.prefix = optarg; break;
    case 'f':
      if (strcmp(optarg, "legacy") != 0 && strcmp(optarg, "partitioned") != 0)
        return fl_cli_usage_error("fleet-loadgen", "--family: partitioned or legacy");
      o.legacy = strcmp(optarg, "legacy") == 0;
      break;
    case 'c': o.count_broker = true; break;
    case 'h': usage(stdout); return 0;
    case OPT_VERSION: return fl_cli_version("fleet-loadgen");
    default: return fl_cli_bad_option("fleet-loadgen", opt, argv);
    }
  }
  if (optind >= argc) return fl_cli_usage_error("fleet-loadgen", "no mode (baseline, saga or ingest)");
  if (optind + 1 < argc)
    return fl_cli_usage_error("fleet-loadgen", "unexpected argument '%s'", argv[optind + 1]);
  o.mode = argv[optind];
  if (!o.broker) return fl_cli_usage_error("fleet-loadgen", "--broker URI is required");
  if (o.window < 1 || o.window > MAX_INFLIGHT || o.size < 1 || o.lanes < 1 || o.devices < 1 ||
      o.count < 1)
    return fl_cli_usage_error("fleet-loadgen", "--window must be 1..%d, --size, --lanes, --devices"
                              " and --count at least 1", MAX_INFLIGHT);
  fl_log_set_component("loadgen");
  if (!getenv("FLEET_LOG_LEVEL")) fl_log_set_level(FL_LOG_WARN);
  if (!strcmp(o.mode, "baseline")) return run_baseline(&o);
  if (!strcmp(o.mode, "saga")) return run_saga(&o);
  if (!strcmp(o.mode, "ingest")) return run_ingest(&o);
  return fl_cli_usage_error("fleet-loadgen", "unknown mode '%s' (baseline, saga or ingest)", o.mode);
}
