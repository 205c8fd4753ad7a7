/* fleet-hub: the hub process. Reads its config, opens its store, connects to
 * the broker, serves the operator API, and runs until SIGINT or SIGTERM. */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "fleet/cli.h"
#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/sdnotify.h"
#include "http.h"
#include "hub_config.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

/* systemd (Type=notify, WatchdogSec; dist/systemd/fleet-hub.service):
 * READY=1 once the engine has recovered and MQTT is connected; WATCHDOG=1
 * every half WatchdogSec while the engine thread makes progress (its batch
 * count advances: it runs a batch at least every 0.5 s, idle or not) or has
 * nothing queued. An engine stuck with work queued stops the pings, and
 * systemd restarts the hub. Nothing is sent outside systemd. */
typedef struct service_state {
  bool ready;
  int64_t interval_us, next_us;
  uint64_t batches;
} service_state;

static void service_notify(hub_engine *e, service_state *s) {
  hub_health h;
  hub_engine_health(e, &h);
  if (!s->ready && h.ready) {
    s->ready = true;
    fl_sd_notify("READY=1\nSTATUS=ready");
  }
  int64_t now = fl_mono_us();
  if (s->interval_us <= 0 || now < s->next_us) return;
  if (h.batches != s->batches || h.queue_depth == 0) fl_sd_notify("WATCHDOG=1");
  s->batches = h.batches;
  s->next_us = now + s->interval_us;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: fleet-hub [--config FILE] [--check-config]\n"
          "  Runs the fleet hub. Settings come from FILE (INI) and from\n"
          "  FLEET_HUB_<SECTION>_<KEY> environment variables (see docs/operations.md).\n"
          "  --config FILE   the INI file (default: none, built-in defaults)\n"
          "  --check-config  load the configuration, print every setting and exit\n"
          "  --help          this text\n"
          "  --version       the version of fleet-hub\n");
}

int main(int argc, char **argv) {
  enum { OPT_CHECK = 256, OPT_VERSION };
  static const struct option long_opts[] = {{"config", required_argument, NULL, 'c'},
                                            {"check-config", no_argument, NULL, OPT_CHECK},
                                            {"help", no_argument, NULL, 'h'},
                                            {"version", no_argument, NULL, OPT_VERSION},
                                            {NULL, 0, NULL, 0}};
  const char *config_path = NULL;
  bool check_only = false;
  opterr = 0;
  for (int opt; (opt = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1;) {
    switch (opt) {
    case 'c':
      config_path = optarg;
      break;
    case OPT_CHECK:
      check_only = true;
      break;
    case 'h':
      usage(stdout);
      return 0;
    case OPT_VERSION:
      return fl_cli_version("fleet-hub");
    default:
      return fl_cli_bad_option("fleet-hub", opt, argv);
    }
  }
  if (optind < argc) return fl_cli_usage_error("fleet-hub", "unexpected argument '%s'", argv[optind]);
  fl_log_set_component("hub");
  hub_config cfg;
  char err[512];
  if (hub_config_check(config_path, &cfg, check_only ? stdout : NULL, err, sizeof err) != FL_OK) {
    fprintf(stderr, "fleet-hub: %s\n", err);
    return 2;
  }
  if (check_only) return 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  hub_engine *engine = NULL;
  hub_http *http = NULL;
  int rc = hub_engine_create(&cfg, &engine);
  if (rc != FL_OK) {
    /* the store has said why, in one line naming the database; an
     * unreachable or refusing database, a newer schema or a bad setting is
     * the operator's to fix (exit 2), anything else a failure (exit 1) */
    bool setup = rc == FL_ERR_UNAVAILABLE || rc == FL_ERR_CONFIG;
    if (!setup)
      fprintf(stderr, "fleet-hub: cannot open the hub's store (%s): %s\n", cfg.store_backend,
              fl_strerror(rc));
    return setup ? 2 : 1;
  }
  rc = hub_engine_start(engine);
  if (rc == FL_OK && cfg.http_port > 0) rc = hub_http_start(&cfg, engine, &http);
  if (rc != FL_OK) {
    fprintf(stderr, "fleet-hub: cannot start: %s\n", fl_strerror(rc));
    hub_engine_destroy(engine);
    return 1;
  }
  fl_info("ready mqtt=%s http=%s:%d", cfg.mqtt_uri, cfg.http_bind, cfg.http_port);
  service_state svc = {.interval_us = fl_sd_watchdog_interval_us(), .batches = UINT64_MAX};
  while (!stop_requested) {
    service_notify(engine, &svc);
    fl_sleep_ms(100);
  }
  fl_sd_notify("STOPPING=1");
  fl_info("stopping");
  hub_http_stop(http);
  hub_engine_destroy(engine);
  fl_info("stopped");
  return 0;
}
