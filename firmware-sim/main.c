/* fleet-sim: runs a simulated fleet against a broker and a hub. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/log.h"
#include "sim.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: fleet-sim --broker URI [options]\n"
          "  Runs simulated vehicles and kiosks (real agents, one MQTT session and one\n"
          "  SQLite outbox each) against a broker and a hub, prints what happens and ends\n"
          "  with a report and an invariant check (exit 0 when every invariant held).\n"
          "options:\n"
          "  --broker URI        broker, e.g. tcp://127.0.0.1:1883 (required)\n"
          "  --hub URL           hub operator API (default http://127.0.0.1:8080)\n"
          "  --state-dir DIR     agents' SQLite files (default ./sim-state)\n"
          "  --vehicles N        vehicles V01.. (default 6)\n"
          "  --kiosks N          kiosks K01.. (default 2)\n"
          "  --duration S        seconds during which customers arrive (default 30)\n"
          "  --rate R            customers per second (default 1)\n"
          "  --cancel-share X    share of customers who cancel before driving (default 0.2)\n"
          "  --faults-per-min X  faults per vehicle per minute (default 0.5)\n"
          "  --ride S..S         ride time in seconds (default 3..10)\n"
          "  --telemetry S       telemetry period per vehicle (default 2)\n"
          "  --seed N            scenario seed (default 1)\n"
          "  --register          register the vehicles through the hub's API first\n"
          "  --no-mechanic       do not work repair tickets\n"
          "  --quiet             progress and report only\n");
}

/* Parses a number option or exits with a message. */
static double number(const char *opt, const char *v, double min, double max) {
  char *end;
  double x = v ? strtod(v, &end) : 0;
  if (!v || *end || x < min || x > max) {
    fprintf(stderr, "fleet-sim: %s needs a number between %g and %g\n", opt, min, max);
    exit(2);
  }
  return x;
}

int main(int argc, char **argv) {
  sim_options o = {.hub_url = "http://127.0.0.1:8080", .state_dir = "./sim-state", .vehicles = 6,
                   .kiosks = 2, .duration_s = 30, .rate = 1, .cancel_share = 0.2,
                   .fault_per_min = 0.5, .ride_min_s = 3, .ride_max_s = 10, .telemetry_s = 2,
                   .seed = 1, .mechanic = true};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--broker") && v) o.broker_uri = argv[++i];
    else if (!strcmp(a, "--hub") && v) o.hub_url = argv[++i];
    else if (!strcmp(a, "--state-dir") && v) o.state_dir = argv[++i];
    else if (!strcmp(a, "--vehicles")) o.vehicles = (int)number(a, argv[++i], 1, 100000);
    else if (!strcmp(a, "--kiosks")) o.kiosks = (int)number(a, argv[++i], 1, 100000);
    else if (!strcmp(a, "--duration")) o.duration_s = number(a, argv[++i], 0, 1e7);
    else if (!strcmp(a, "--rate")) o.rate = number(a, argv[++i], 0, 1e6);
    else if (!strcmp(a, "--cancel-share")) o.cancel_share = number(a, argv[++i], 0, 1);
    else if (!strcmp(a, "--faults-per-min")) o.fault_per_min = number(a, argv[++i], 0, 1e4);
    else if (!strcmp(a, "--telemetry")) o.telemetry_s = number(a, argv[++i], 0.05, 1e5);
    else if (!strcmp(a, "--seed")) o.seed = (unsigned)number(a, argv[++i], 0, 4294967295.0);
    else if (!strcmp(a, "--ride") && v) {
      if (sscanf(argv[++i], "%lf%*[.]%lf", &o.ride_min_s, &o.ride_max_s) != 2 ||
          o.ride_min_s < 0 || o.ride_max_s < o.ride_min_s) {
        fprintf(stderr, "fleet-sim: --ride takes MIN..MAX seconds, e.g. 3..10\n");
        return 2;
      }
    } else if (!strcmp(a, "--register")) o.register_vehicles = true;
    else if (!strcmp(a, "--no-mechanic")) o.mechanic = false;
    else if (!strcmp(a, "--quiet")) o.quiet = true;
    else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "fleet-sim: unknown or incomplete option '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (!o.broker_uri) {
    usage(stderr);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  fl_log_set_component("sim");
  if (!getenv("FLEET_LOG_LEVEL")) fl_log_set_level(FL_LOG_WARN);
  return sim_run(&o);
}
