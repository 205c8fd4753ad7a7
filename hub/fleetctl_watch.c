/* fleetctl watch: subscribes to the fleet's topics on the broker and prints
 * each message decoded, one line each ("TOPIC JSON"), like mosquitto_sub -v
 * for people (docs/dashboards.md). */
#include "fleetctl_watch.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbor_json.h"
#include "fleet/clock.h"
#include "fleet/cli.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/mqtt.h"

static atomic_int printed;
static atomic_bool stop_requested;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int sig) {
  (void)sig;
  atomic_store(&stop_requested, true);
}

static void on_message(void *ctx, const fl_mqtt_msg *msg) {
  char *json = NULL;
  int rc = msg->len ? cbor_to_json(msg->payload, msg->len, &json) : FL_OK;
  pthread_mutex_lock(&out_lock);
  if (!msg->len)
    printf("%s (cleared)\n", msg->topic);
  else if (rc == FL_OK)
    printf("%s %s\n", msg->topic, json);
  else /* not CBOR: the JSON mirror, or something else; shown as it is when printable */
    printf("%s %.*s\n", msg->topic, (int)msg->len, (const char *)msg->payload);
  fflush(stdout);
  pthread_mutex_unlock(&out_lock);
  free(json);
  atomic_fetch_add(&printed, 1);
}

static int watch_usage(FILE *to) {
  fprintf(to,
          "usage: fleetctl watch [--broker URI] [--username U] [--password P] [--count N]\n"
          "                      [--seconds S] [TOPIC-FILTER...]\n"
          "Prints every message on the filters (default fleet/v1/state/#, fleet/v1/notify/#\n"
          "and fleet/v1/notices/#) decoded from CBOR, one line each: TOPIC JSON. Every type\n"
          "decodes, rev 1.2's notices and partition_status (fleet/v1/p/+/status) too.\n"
          "--count/--seconds stop after N messages or S seconds. The broker: --broker or\n"
          "FLEET_BROKER (default tcp://127.0.0.1:1883).\n");
  return to == stdout ? 0 : FL_CLI_USAGE;
}

int fleetctl_watch(int argc, char **argv) {
  static const struct option opts[] = {
      {"broker", required_argument, NULL, 'b'}, {"username", required_argument, NULL, 'u'},
      {"password", required_argument, NULL, 'p'}, {"count", required_argument, NULL, 'n'},
      {"seconds", required_argument, NULL, 's'}, {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *broker = getenv("FLEET_BROKER") ? getenv("FLEET_BROKER") : "tcp://127.0.0.1:1883";
  const char *user = NULL, *pass = NULL;
  long count = 0, seconds = 0;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "+b:u:p:n:s:h", opts, NULL)) != -1) {
    char *end = NULL;
    switch (c) {
    case 'b': broker = optarg; break;
    case 'u': user = optarg; break;
    case 'p': pass = optarg; break;
    case 'n':
    case 's': {
      long v = strtol(optarg, &end, 10);
      if (!*optarg || *end || v < 0) {
        fprintf(stderr, "fleetctl watch: --%s needs a whole number, not '%s'\n",
                c == 'n' ? "count" : "seconds", optarg);
        return FL_CLI_USAGE;
      }
      *(c == 'n' ? &count : &seconds) = v;
      break;
    }
    case 'h': return watch_usage(stdout);
    default: return watch_usage(stderr);
    }
  }
  /* rev 1.2: batched notices have their own tree (docs/protocol.md, P-NOT-1) */
  static const char *const defaults[] = {"fleet/v1/state/#", "fleet/v1/notify/#",
                                         "fleet/v1/notices/#"};
  const char *const *subs = optind < argc ? (const char *const *)argv + optind : defaults;
  size_t n_subs = optind < argc ? (size_t)(argc - optind) : sizeof defaults / sizeof defaults[0];
  char client_id[64];
  snprintf(client_id, sizeof client_id, "fleetctl-watch-%ld", (long)getpid());
  fl_log_set_level(FL_LOG_ERROR);
  fl_mqtt_opts o = {.uri = broker, .client_id = client_id, .username = user, .password = pass,
                    .clean_start = true, .max_inflight = 64, .reconnect_max_ms = 5000,
                    .subscriptions = subs, .n_subscriptions = (int)n_subs};
  fl_mqtt_callbacks cb = {.on_message = on_message};
  fl_mqtt *m = NULL;
  if (fl_mqtt_create(&o, &cb, &m) != FL_OK || fl_mqtt_start(m) != FL_OK) {
    fprintf(stderr, "fleetctl watch: cannot connect to %s\n", broker);
    fl_mqtt_destroy(m);
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  int64_t end_ms = seconds ? fl_now_ms() + seconds * 1000 : 0;
  while (!atomic_load(&stop_requested) && (!count || atomic_load(&printed) < count) &&
         (!end_ms || fl_now_ms() < end_ms))
    fl_sleep_ms(50);
  fl_mqtt_destroy(m);
  return 0;
}
