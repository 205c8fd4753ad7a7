/* fleet-backlog: fills an agent's store with events while it is offline, for
 * bench/run resync (bench/bench_resync.py).
 *
 *   fleet-backlog --db PATH --id DEV --count N [--durability off|normal|full]
 *
 * Opens the agent's SQLite file through the agent library (agent_create,
 * never agent_start: nothing connects) and submits N fault events with
 * agent_fault(), each through the same code path as `fleet-agent ctl fault`.
 * The i-th event (seq i on a fresh store) carries the single DTC "B<i>", so
 * that the hub's copy can be checked for loss, duplicates and order. Prints
 * key=value lines: backlog_events, backlog_next_seq, backlog_fill_seconds. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/agent.h"
#include "fleet/cli.h"
#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"

static void usage(FILE *f) {
  fprintf(f, "usage: fleet-backlog --db PATH --id DEV --count N [--durability off|normal|full]\n"
             "  Fills an offline agent's store with N fault events (bench/run resync).\n"
             "  --help, --version\n");
}

int main(int argc, char **argv) {
  enum { OPT_VERSION = 256 };
  static const struct option long_opts[] = {
      {"db", required_argument, NULL, 'd'},         {"id", required_argument, NULL, 'i'},
      {"count", required_argument, NULL, 'n'},      {"durability", required_argument, NULL, 's'},
      {"help", no_argument, NULL, 'h'},             {"version", no_argument, NULL, OPT_VERSION},
      {NULL, 0, NULL, 0}};
  const char *db = NULL, *id = NULL, *durability = "off";
  long count = 0;
  char *end = NULL;
  opterr = 0;
  for (int opt; (opt = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1;) {
    switch (opt) {
    case 'd': db = optarg; break;
    case 'i': id = optarg; break;
    case 'n': count = strtol(optarg, &end, 10); break;
    case 's': durability = optarg; break;
    case 'h': usage(stdout); return 0;
    case OPT_VERSION: return fl_cli_version("fleet-backlog");
    default: return fl_cli_bad_option("fleet-backlog", opt, argv);
    }
  }
  if (optind < argc)
    return fl_cli_usage_error("fleet-backlog", "unexpected argument '%s'", argv[optind]);
  int sync = fl_db_sync_from_name(durability);
  if (!db || !id) return fl_cli_usage_error("fleet-backlog", "--db PATH and --id DEV are required");
  if ((end && *end) || count <= 0 || count > 10000000)
    return fl_cli_usage_error("fleet-backlog", "--count takes 1..10000000");
  if (sync < 0) return fl_cli_usage_error("fleet-backlog", "--durability takes off, normal or full");
  fl_log_set_component("backlog");
  fl_log_set_level(FL_LOG_WARN); /* the agent logs one line per event at info */
  agent_config cfg = {.id = id,
                      .role = FL_ROLE_VEHICLE,
                      .db_path = db,
                      .mqtt_uri = "tcp://127.0.0.1:1", /* never connected */
                      .durability = (fl_db_sync)sync,
                      .max_events = (int)count + 1};
  fl_agent *a = NULL;
  int err = agent_create(&cfg, &a);
  if (err != FL_OK) {
    fprintf(stderr, "fleet-backlog: cannot open %s: %s\n", db, fl_strerror(err));
    return 1;
  }
  int64_t t0 = fl_mono_us();
  long done = 0;
  for (; done < count; done++) {
    char dtc[16];
    snprintf(dtc, sizeof dtc, "B%ld", done + 1);
    const char *dtcs[] = {dtc};
    err = agent_fault(a, dtcs, 1, FL_SEV_INFO, "backlog", NULL);
    if (err != FL_OK) {
      fprintf(stderr, "fleet-backlog: event %ld: %s\n", done + 1, fl_strerror(err));
      break;
    }
  }
  double seconds = (double)(fl_mono_us() - t0) / 1e6;
  agent_status st;
  agent_get_status(a, &st);
  agent_destroy(a);
  printf("backlog_events=%ld\nbacklog_next_seq=%" PRIu64 "\nbacklog_fill_seconds=%.3f\n", done,
         st.next_seq, seconds);
  return err == FL_OK ? 0 : 1;
}
