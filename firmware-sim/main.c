/* fleet-sim: runs a simulated fleet against a broker and a hub. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "fleet/cli.h"
#include "fleet/log.h"
#include "fleet/error.h"
#include "fleet/partition.h"
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
          "  --topic-family F    partitioned (rev 1.2, the default) or legacy (the topics\n"
          "                      of 1.0/1.1, for a hub that does not serve partitions)\n"
          "  --partitions N      the fleet's partition count (default 256)\n"
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
          "  --restart-broker-cmd CMD\n"
          "  --help                  this text\n"
          "  --version               the version of fleet-sim\n");
}

/* Parses the value of option opt as a number in [min, max], or exits with
 * a usage error. */
static double number(const char *opt, const char *v, double min, double max) {
  char *end;
  double x = v ? strtod(v, &end) : 0;
  if (!v || !*v || *end || x < min || x > max)
    exit(fl_cli_usage_error("fleet-sim", "--%s needs a number between %g and %g", opt, min, max));
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
  enum {
    OPT_BROKER = 256, OPT_HUB, OPT_STATE_DIR, OPT_VEHICLES, OPT_KIOSKS, OPT_DURATION, OPT_RATE,
    OPT_LATE_SHARE, OPT_BOOK_SHARE, OPT_MINUTE_MS, OPT_CANCEL_SHARE, OPT_FAULTS_PER_MIN,
    OPT_TELEMETRY, OPT_SEED, OPT_RIDE, OPT_CUT, OPT_POWER_CUT, OPT_SKEW, OPT_RESTART_HUB,
    OPT_RESTART_BROKER, OPT_RESTART_HUB_CMD, OPT_RESTART_BROKER_CMD, OPT_CONNECT_RATE,
    OPT_SCRIPT, OPT_PREFIX, OPT_HUB_STATE, OPT_REGISTER, OPT_NO_MECHANIC, OPT_QUIET,
    OPT_LATENCY_FILE, OPT_VERSION, OPT_TOPIC_FAMILY, OPT_PARTITIONS
  };
  static const struct option long_opts[] = {
      {"broker", required_argument, NULL, OPT_BROKER},
      {"hub", required_argument, NULL, OPT_HUB},
      {"state-dir", required_argument, NULL, OPT_STATE_DIR},
      {"vehicles", required_argument, NULL, OPT_VEHICLES},
      {"kiosks", required_argument, NULL, OPT_KIOSKS},
      {"duration", required_argument, NULL, OPT_DURATION},
      {"rate", required_argument, NULL, OPT_RATE},
      {"late-share", required_argument, NULL, OPT_LATE_SHARE},
      {"book-share", required_argument, NULL, OPT_BOOK_SHARE},
      {"minute-ms", required_argument, NULL, OPT_MINUTE_MS},
      {"cancel-share", required_argument, NULL, OPT_CANCEL_SHARE},
      {"faults-per-min", required_argument, NULL, OPT_FAULTS_PER_MIN},
      {"telemetry", required_argument, NULL, OPT_TELEMETRY},
      {"seed", required_argument, NULL, OPT_SEED},
      {"ride", required_argument, NULL, OPT_RIDE},
      {"cut", required_argument, NULL, OPT_CUT},
      {"power-cut", required_argument, NULL, OPT_POWER_CUT},
      {"skew", required_argument, NULL, OPT_SKEW},
      {"restart-hub", required_argument, NULL, OPT_RESTART_HUB},
      {"restart-broker", required_argument, NULL, OPT_RESTART_BROKER},
      {"restart-hub-cmd", required_argument, NULL, OPT_RESTART_HUB_CMD},
      {"restart-broker-cmd", required_argument, NULL, OPT_RESTART_BROKER_CMD},
      {"connect-rate", required_argument, NULL, OPT_CONNECT_RATE},
      {"script", required_argument, NULL, OPT_SCRIPT},
      {"prefix", required_argument, NULL, OPT_PREFIX},
      {"topic-family", required_argument, NULL, OPT_TOPIC_FAMILY},
      {"partitions", required_argument, NULL, OPT_PARTITIONS},
      {"hub-state", required_argument, NULL, OPT_HUB_STATE},
      {"register", no_argument, NULL, OPT_REGISTER},
      {"no-mechanic", no_argument, NULL, OPT_NO_MECHANIC},
      {"quiet", no_argument, NULL, OPT_QUIET},
      {"latency-file", required_argument, NULL, OPT_LATENCY_FILE},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, OPT_VERSION},
      {NULL, 0, NULL, 0}};
  opterr = 0;
  for (int opt, idx = -1; (opt = getopt_long(argc, argv, ":h", long_opts, &idx)) != -1; idx = -1) {
    const char *name = idx >= 0 ? long_opts[idx].name : "";
    switch (opt) {
    case OPT_BROKER: o.broker_uri = optarg; break;
    case OPT_HUB: o.hub_url = optarg; break;
    case OPT_STATE_DIR: o.state_dir = optarg; break;
    case OPT_VEHICLES: o.vehicles = (int)number(name, optarg, 1, 100000); break;
    case OPT_KIOSKS: o.kiosks = (int)number(name, optarg, 1, 100000); break;
    case OPT_DURATION: o.duration_s = number(name, optarg, 0, 1e7); break;
    case OPT_RATE: o.rate = number(name, optarg, 0, 1e6); break;
    case OPT_LATE_SHARE: o.late_share = number(name, optarg, 0, 1); break;
    case OPT_BOOK_SHARE: o.book_share = number(name, optarg, 0, 1); break;
    case OPT_MINUTE_MS: o.minute_ms = number(name, optarg, 1, 3600000); break;
    case OPT_CANCEL_SHARE: o.cancel_share = number(name, optarg, 0, 1); break;
    case OPT_FAULTS_PER_MIN: o.fault_per_min = number(name, optarg, 0, 1e4); break;
    case OPT_TELEMETRY: o.telemetry_s = number(name, optarg, 0.05, 1e5); break;
    case OPT_SEED: o.seed = (unsigned)number(name, optarg, 0, 4294967295.0); break;
    case OPT_RIDE:
      if (sscanf(optarg, "%lf%*[.]%lf", &o.ride_min_s, &o.ride_max_s) != 2 || o.ride_min_s < 0 ||
          o.ride_max_s < o.ride_min_s)
        return fl_cli_usage_error("fleet-sim", "--ride takes MIN..MAX seconds, e.g. 3..10");
      break;
    case OPT_CUT:
      if (sscanf(optarg, "%lf:%lf", &o.faults.cut_share, &o.faults.cut_s) != 2 ||
          o.faults.cut_share < 0 || o.faults.cut_share > 1 || o.faults.cut_s <= 0)
        return fl_cli_usage_error("fleet-sim", "--cut takes SHARE:SECONDS, e.g. 0.2:5");
      break;
    case OPT_POWER_CUT:
      if (sscanf(optarg, "%d:%lf", &o.faults.power_cuts, &o.faults.power_off_s) < 1 ||
          o.faults.power_cuts < 0 || o.faults.power_off_s < 0)
        return fl_cli_usage_error("fleet-sim", "--power-cut takes N or N:SECONDS, e.g. 3:2");
      break;
    case OPT_SKEW:
      o.faults.skew_share = 1;
      if (sscanf(optarg, "%lf:%lf", &o.faults.skew_s, &o.faults.skew_share) < 1 ||
          o.faults.skew_s < -1e7 || o.faults.skew_s > 1e7 || o.faults.skew_share < 0 ||
          o.faults.skew_share > 1)
        return fl_cli_usage_error("fleet-sim",
                                  "--skew takes SECONDS or SECONDS:SHARE, e.g. -600:0.5");
      break;
    case OPT_RESTART_HUB: o.faults.hub_restarts = (int)number(name, optarg, 0, 100); break;
    case OPT_RESTART_BROKER: o.faults.broker_restarts = (int)number(name, optarg, 0, 100); break;
    case OPT_RESTART_HUB_CMD: o.faults.restart_hub_cmd = optarg; break;
    case OPT_RESTART_BROKER_CMD: o.faults.restart_broker_cmd = optarg; break;
    case OPT_CONNECT_RATE: o.connect_per_s = number(name, optarg, 0, 1e6); break;
    case OPT_SCRIPT: script = optarg; break;
    case OPT_PREFIX: o.id_prefix = optarg; break;
    case OPT_TOPIC_FAMILY:
      if (strcmp(optarg, "partitioned") == 0)
        o.topic_family = AGENT_TOPICS_PARTITIONED;
      else if (strcmp(optarg, "legacy") == 0)
        o.topic_family = AGENT_TOPICS_LEGACY;
      else
        return fl_cli_usage_error("fleet-sim", "--topic-family is partitioned or legacy, not '%s'",
                                  optarg);
      break;
    case OPT_PARTITIONS: o.partitions = (int)number(name, optarg, 1, FL_PARTITIONS_MAX); break;
    case OPT_HUB_STATE: o.hub_state_dir = optarg; break;
    case OPT_REGISTER: o.register_vehicles = true; break;
    case OPT_NO_MECHANIC: o.mechanic = false; break;
    case OPT_QUIET: o.quiet = true; break;
    case OPT_LATENCY_FILE: o.latency_file = optarg; break;
    case 'h': usage(stdout); return 0;
    case OPT_VERSION: return fl_cli_version("fleet-sim");
    default: return fl_cli_bad_option("fleet-sim", opt, argv);
    }
  }
  if (optind < argc)
    return fl_cli_usage_error("fleet-sim", "unexpected argument '%s'", argv[optind]);
  if (!o.broker_uri) return fl_cli_usage_error("fleet-sim", "--broker URI is required");
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
