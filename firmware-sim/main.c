/* fleet-sim: runs a simulated fleet against a broker and a hub. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "fleet/log.h"
#include "fleet/error.h"
#include "script.h"
#include "sim.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: fleet-sim --broker URI [options]\n"
          "       fleet-sim --broker URI --hub URL --script FILE [options]\n"
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
          "  --late-share X      share who rent for 1-2 minutes and return late (default 0.1)\n"
          "  --book-share X      share who book ahead, then rent in the window or, as often\n"
          "                      as --cancel-share, cancel the booking (default 0.1)\n"
          "  --minute-ms MS      the hub's [engine] minute_ms, so that late riders are late\n"
          "                      (default 60000)\n"
          "  --faults-per-min X  faults per vehicle per minute (default 0.5)\n"
          "  --ride S..S         ride time in seconds (default 3..10)\n"
          "  --telemetry S       telemetry period per vehicle (default 2)\n"
          "  --seed N            scenario seed (default 1)\n"
          "  --register          register the vehicles through the hub's API first\n"
          "  --no-mechanic       do not work repair tickets\n"
          "  --quiet             progress and report only\n"
          "  --latency-file F    write every kiosk-observed decision latency (ms) to F\n"
          "  --connect-rate N    start N devices a second (default: all at once)\n"
          "  --prefix P          put P before every device and customer id (several\n"
          "                      fleet-sim processes on one hub)\n"
          "  --script FILE       run a scenario script instead (docs/sim.md); exit 0 when\n"
          "                      every expect held, 1 with the failing line, 2 on errors\n"
          "  --hub-state DIR     the hub's state dir: the invariant check then reads its\n"
          "                      events table and the simulated provider's ledger\n"
          "fault injection (at random moments of the run, drawn from --seed):\n"
          "  --cut SHARE:SECONDS     cut the network of that share of the devices, once\n"
          "                          each, for SECONDS (they keep working offline)\n"
          "  --power-cut N[:SECONDS] N power cuts of random devices (no clean stop),\n"
          "                          back after SECONDS (default 2) from their state\n"
          "  --skew SECONDS[:SHARE]  clocks off by SECONDS: every device's, or that share's\n"
          "  --restart-hub N         N hub restarts, each by running --restart-hub-cmd\n"
          "  --restart-broker N      N broker restarts, each by --restart-broker-cmd\n"
          "  --restart-hub-cmd CMD   shell command run as 'CMD term' or 'CMD kill'\n"
          "  --restart-broker-cmd CMD\n");
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

/* Parses and runs a scenario script; returns the exit status. */
static int run_script(const char *path, const sim_options *o) {
  sim_script s;
  char err[512];
  if (sim_script_parse(path, &s, err, sizeof err) != FL_OK) {
    fprintf(stderr, "fleet-sim: %s\n", err);
    return 2;
  }
  if (mkdir(o->state_dir, 0750) != 0 && errno != EEXIST) {
    fprintf(stderr, "fleet-sim: cannot create %s: %s\n", o->state_dir, strerror(errno));
    sim_script_free(&s);
    return 2;
  }
  int status = sim_script_run(&s, o);
  sim_script_free(&s);
  return status;
}

int main(int argc, char **argv) {
  const char *script = NULL;
  sim_options o = {.hub_url = "http://127.0.0.1:8080", .state_dir = "./sim-state", .vehicles = 6,
                   .kiosks = 2, .duration_s = 30, .rate = 1, .cancel_share = 0.2, .late_share = 0.1, .book_share = 0.1, .minute_ms = 60000,
                   .fault_per_min = 0.5, .ride_min_s = 3, .ride_max_s = 10, .telemetry_s = 2,
                   .seed = 1, .mechanic = true, .faults = {.power_off_s = 2}};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--broker") && v) o.broker_uri = argv[++i];
    else if (!strcmp(a, "--hub") && v) o.hub_url = argv[++i];
    else if (!strcmp(a, "--state-dir") && v) o.state_dir = argv[++i];
    else if (!strcmp(a, "--vehicles")) o.vehicles = (int)number(a, argv[++i], 1, 100000);
    else if (!strcmp(a, "--kiosks")) o.kiosks = (int)number(a, argv[++i], 1, 100000);
    else if (!strcmp(a, "--duration")) o.duration_s = number(a, argv[++i], 0, 1e7);
    else if (!strcmp(a, "--rate")) o.rate = number(a, argv[++i], 0, 1e6);
    else if (!strcmp(a, "--late-share")) o.late_share = number(a, argv[++i], 0, 1);
    else if (!strcmp(a, "--book-share")) o.book_share = number(a, argv[++i], 0, 1);
    else if (!strcmp(a, "--minute-ms")) o.minute_ms = number(a, argv[++i], 1, 3600000);
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
    } else if (!strcmp(a, "--cut") && v) {
      if (sscanf(argv[++i], "%lf:%lf", &o.faults.cut_share, &o.faults.cut_s) != 2 ||
          o.faults.cut_share < 0 || o.faults.cut_share > 1 || o.faults.cut_s <= 0) {
        fprintf(stderr, "fleet-sim: --cut takes SHARE:SECONDS, e.g. 0.2:5\n");
        return 2;
      }
    } else if (!strcmp(a, "--power-cut") && v) {
      if (sscanf(argv[++i], "%d:%lf", &o.faults.power_cuts, &o.faults.power_off_s) < 1 ||
          o.faults.power_cuts < 0 || o.faults.power_off_s < 0) {
        fprintf(stderr, "fleet-sim: --power-cut takes N or N:SECONDS, e.g. 3:2\n");
        return 2;
      }
    } else if (!strcmp(a, "--skew") && v) {
      o.faults.skew_share = 1;
      if (sscanf(argv[++i], "%lf:%lf", &o.faults.skew_s, &o.faults.skew_share) < 1 ||
          o.faults.skew_s < -1e7 || o.faults.skew_s > 1e7 || o.faults.skew_share < 0 ||
          o.faults.skew_share > 1) {
        fprintf(stderr, "fleet-sim: --skew takes SECONDS or SECONDS:SHARE, e.g. -600:0.5\n");
        return 2;
      }
    } else if (!strcmp(a, "--restart-hub")) o.faults.hub_restarts = (int)number(a, argv[++i], 0, 100);
    else if (!strcmp(a, "--restart-broker")) o.faults.broker_restarts = (int)number(a, argv[++i], 0, 100);
    else if (!strcmp(a, "--restart-hub-cmd") && v) o.faults.restart_hub_cmd = argv[++i];
    else if (!strcmp(a, "--restart-broker-cmd") && v) o.faults.restart_broker_cmd = argv[++i];
    else if (!strcmp(a, "--connect-rate")) o.connect_per_s = number(a, argv[++i], 0, 1e6);
    else if (!strcmp(a, "--script") && v) script = argv[++i];
    else if (!strcmp(a, "--prefix") && v) o.id_prefix = argv[++i];
    else if (!strcmp(a, "--hub-state") && v) o.hub_state_dir = argv[++i];
    else if (!strcmp(a, "--register")) o.register_vehicles = true;
    else if (!strcmp(a, "--no-mechanic")) o.mechanic = false;
    else if (!strcmp(a, "--quiet")) o.quiet = true;
    else if (!strcmp(a, "--latency-file") && v) o.latency_file = argv[++i];
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
  /* each device holds a socket and its SQLite file, WAL and shm: take every
   * descriptor the hard limit allows */
  struct rlimit files;
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  fl_log_set_component("sim");
  if (!getenv("FLEET_LOG_LEVEL")) fl_log_set_level(FL_LOG_WARN);
  if (script) return run_script(script, &o);
  return sim_run(&o);
}
