/* fleet-sim: a simulated fleet of vehicles and kiosks, each a real agent
 * (fl_agent: its own SQLite outbox, its own MQTT session), driven by a
 * scenario of customers who rent, ride, cancel and return, vehicles that send
 * telemetry and faults, and a mechanic who works the repair tickets through
 * the hub's operator API. */
#ifndef SIM_H
#define SIM_H

#include <stdbool.h>

#include "faults.h"
#include "fleet/agent.h"

typedef struct sim_options {
  const char *broker_uri;  /* tcp://127.0.0.1:1883 */
  const char *hub_url;     /* operator API, http://127.0.0.1:8080 */
  const char *state_dir;   /* one SQLite file per simulated device */
  const char *hub_state_dir; /* the hub's state dir, for the invariant check (may be NULL) */
  const char *id_prefix;   /* put before every device id ("" by default) */
  const char *latency_file; /* every decision latency (ms), one a line (may be NULL) */
  int vehicles;            /* vehicles V01.. */
  int kiosks;              /* kiosks K01.. */
  double duration_s;       /* customers arrive for this long */
  double rate;             /* customers per second, all kiosks together */
  double cancel_share;     /* share of customers who cancel before driving */
  double late_share;       /* share who rent for a minute or two and return late */
  double book_share;       /* share who book ahead, then rent in the window (or cancel) */
  double minute_ms;        /* the hub's [engine] minute_ms: how long a rental minute lasts */
  double fault_per_min;    /* faults per vehicle per minute */
  double ride_min_s, ride_max_s;
  double telemetry_s;      /* telemetry period per vehicle */
  unsigned seed;           /* same seed, same scenario */
  bool register_vehicles;  /* register the vehicles through the API first */
  bool mechanic;           /* work repair tickets through the API */
  bool quiet;              /* no line per happening, progress and report only */
  double connect_per_s;    /* devices started per second (0: all at once) */
  sim_fault_opts faults;   /* injected at random (seeded) moments; restart commands */
  agent_topic_family topic_family; /* the devices' topics (default: partitioned, rev 1.2) */
  int partitions;          /* the fleet's partition count (0: the agent's default, 256) */
} sim_options;

/* Runs the scenario and prints the report. Returns the process exit status:
 * 0 when every invariant held, 1 when one did not, 2 when the run could not
 * start (broker or hub unreachable, bad state dir). */
int sim_run(const sim_options *o);

#endif
