/* mqtt_resend_stress: publishes QoS 1 messages with MQTT 5 properties
 * (response topic, correlation data, message expiry) through fl_mqtt as fast
 * as the window allows, on a persistent session, while the test
 * (tests/fault/test_mqtt_resend.py) stops, kills and restarts the broker
 * under it. A second client (clean session) reads everything back and checks
 * every message it gets: topic and payload must be one this program sent.
 *
 *   mqtt_resend_stress URI SECONDS CLIENT_ID
 *
 * Prints `stress: key=value` lines; exits 0 when every tagged publish was
 * reported (on_published) and no corrupt message came back, 1 otherwise.
 * This is the reproducer of the "malformed packet" of docs/architecture.md:
 * with the old fl_mqtt, paho resent a QoS 1 message whose topic and payload
 * it had freed, and mosquitto dropped the client for it after every
 * reconnect. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/clock.h"
#include "fleet/log.h"
#include "fleet/mqtt.h"

#define TOPICS 8
#define MAX_OUTSTANDING 4000 /* handed to fl_mqtt, not yet reported */

static atomic_uint_fast64_t reported, reported_ok, reported_failed;
static atomic_uint_fast64_t received, corrupt;

static void on_published(void *ctx, uint64_t tag, fl_err rc) {
  (void)ctx;
  (void)tag;
  atomic_fetch_add(&reported, 1);
  atomic_fetch_add(rc == FL_OK ? &reported_ok : &reported_failed, 1);
}

/* The payload of message n: "n:<n>:" and filler whose bytes follow from n,
 * so that the reader can check every byte. */
static size_t payload_for(uint64_t n, char *buf, size_t cap) {
  int head = snprintf(buf, cap, "n:%" PRIu64 ":", n);
  size_t len = (size_t)head + 40 + (size_t)(n % 80);
  if (len > cap) len = cap;
  for (size_t i = (size_t)head; i < len; i++) buf[i] = (char)('a' + (n + i) % 26);
  return len;
}

/* The reader: counts a message that is not exactly one we sent. */
static void on_message(void *ctx, const fl_mqtt_msg *msg) {
  (void)ctx;
  atomic_fetch_add(&received, 1);
  char expect[256], head[32];
  uint64_t n = 0;
  size_t hl = msg->len < sizeof head - 1 ? msg->len : sizeof head - 1;
  memcpy(head, msg->payload, hl); /* the payload is not NUL-terminated */
  head[hl] = '\0';
  bool ok = strncmp(msg->topic, "stress/", 7) == 0 && sscanf(head, "n:%" SCNu64 ":", &n) == 1;
  if (ok) {
    char topic[32];
    snprintf(topic, sizeof topic, "stress/%d", (int)(n % TOPICS));
    size_t len = payload_for(n, expect, sizeof expect);
    ok = strcmp(topic, msg->topic) == 0 && len == msg->len && memcmp(expect, msg->payload, len) == 0;
  }
  if (!ok && atomic_fetch_add(&corrupt, 1) < 5)
    printf("stress: corrupt message topic=%.60s len=%zu\n", msg->topic, msg->len);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s URI SECONDS CLIENT_ID\n", argv[0]);
    return 2;
  }
  fl_log_set_level(FL_LOG_WARN);
  const char *uri = argv[1], *id = argv[3];
  int64_t seconds = atoll(argv[2]);
  char reader_id[128];
  snprintf(reader_id, sizeof reader_id, "%s-reader", id);
  const char *subs[] = {"stress/#"};
  fl_mqtt_opts ro = {.uri = uri, .client_id = reader_id, .clean_start = true,
                     .reconnect_min_ms = 100, .reconnect_max_ms = 500,
                     .subscriptions = subs, .n_subscriptions = 1};
  fl_mqtt_callbacks rcb = {.on_message = on_message};
  fl_mqtt_opts po = {.uri = uri, .client_id = id, .clean_start = false,
                     .reconnect_min_ms = 100, .reconnect_max_ms = 500};
  fl_mqtt_callbacks pcb = {.on_published = on_published};
  fl_mqtt *reader = NULL, *pub = NULL;
  if (fl_mqtt_create(&ro, &rcb, &reader) != FL_OK || fl_mqtt_create(&po, &pcb, &pub) != FL_OK ||
      fl_mqtt_start(reader) != FL_OK || fl_mqtt_start(pub) != FL_OK) {
    fprintf(stderr, "stress: cannot create the clients\n");
    return 2;
  }
  uint64_t published = 0, refused = 0;
  int64_t end = fl_mono_us() + seconds * 1000000;
  char payload[256];
  while (fl_mono_us() < end) {
    if (published - atomic_load(&reported) >= MAX_OUTSTANDING || !fl_mqtt_connected(pub)) {
      fl_sleep_ms(1);
      continue;
    }
    uint64_t n = published + 1;
    char topic[32];
    snprintf(topic, sizeof topic, "stress/%d", (int)(n % TOPICS));
    size_t len = payload_for(n, payload, sizeof payload);
    char corr[16];
    int corr_len = snprintf(corr, sizeof corr, "c%" PRIu64, n % 100000);
    int rc = fl_mqtt_publish_expiring(pub, topic, payload, len, 1, false, "stress/reply", corr,
                                      (size_t)corr_len, n, 3600);
    if (rc == FL_OK)
      published = n;
    else
      refused++;
  }
  /* everything handed over must be reported, once the broker stays up */
  int64_t wait_end = fl_mono_us() + 20 * 1000000;
  while (atomic_load(&reported) < published && fl_mono_us() < wait_end) fl_sleep_ms(10);
  fl_sleep_ms(500); /* the reader's last messages */
  uint64_t n_reported = atomic_load(&reported);
  printf("stress: published=%" PRIu64 " refused=%" PRIu64 " reported=%" PRIu64 " ok=%" PRIu64
         " failed=%" PRIu64 " received=%" PRIu64 " corrupt=%" PRIu64 " connects=%" PRIu64 "\n",
         published, refused, n_reported, (uint64_t)atomic_load(&reported_ok),
         (uint64_t)atomic_load(&reported_failed), (uint64_t)atomic_load(&received),
         (uint64_t)atomic_load(&corrupt), fl_mqtt_connects(pub));
  fflush(stdout);
  fl_mqtt_destroy(pub);
  fl_mqtt_destroy(reader);
  return n_reported == published && atomic_load(&corrupt) == 0 ? 0 : 1;
}
