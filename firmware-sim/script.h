/* Scenario scripts for fleet-sim --script FILE: a small line-based language
 * (docs/sim.md) parsed into steps, then run by sim_script_run() against a
 * broker and a hub. */
#ifndef SIM_SCRIPT_H
#define SIM_SCRIPT_H

#include <stddef.h>

#include "sim.h"

#define SIM_SCRIPT_MAX_ARGS 8
#define SIM_SCRIPT_MAX_OPTS 8

typedef enum sim_op {
  SIM_OP_VEHICLES, SIM_OP_KIOSKS, SIM_OP_REGISTER, SIM_OP_REGISTER_NO, SIM_OP_TIMEOUT,
  SIM_OP_RENT, SIM_OP_CANCEL, SIM_OP_RETURN, SIM_OP_BOOK, SIM_OP_CANCEL_BOOKING,
  SIM_OP_UNLOCK, SIM_OP_LOCK, SIM_OP_FAULT, SIM_OP_TELEMETRY,
  SIM_OP_REPAIR_START, SIM_OP_REPAIR_COMPLETE,
  SIM_OP_EXPECT_DECISION, SIM_OP_EXPECT_RENTAL, SIM_OP_EXPECT_VEHICLE, SIM_OP_EXPECT_REPAIR,
  SIM_OP_EXPECT_CUSTOMER, SIM_OP_EXPECT_NOTIFY, SIM_OP_EXPECT_STATE, SIM_OP_EXPECT_BOOKINGS,
  SIM_OP_EXPECT_CLOCK_FLAG,
  SIM_OP_WAIT, SIM_OP_OFFLINE, SIM_OP_ONLINE, SIM_OP_POWERCUT, SIM_OP_POWERON, SIM_OP_SKEW,
  SIM_OP_RESTART, SIM_OP_INVARIANTS,
} sim_op;

/* A key=value (or key~text: "contains") option of a step. */
typedef struct sim_step_opt {
  const char *key;
  char match;        /* '=' or '~' */
  const char *value;
} sim_step_opt;

/* One line of a script. Strings point into the script's own storage. */
typedef struct sim_step {
  int line;
  sim_op op;
  const char *text;                       /* the line as written, for messages */
  const char *arg[SIM_SCRIPT_MAX_ARGS];   /* positional words after the keyword(s) */
  int n_args;
  sim_step_opt opt[SIM_SCRIPT_MAX_OPTS];
  int n_opts;
} sim_step;

typedef struct sim_script {
  const char *path;
  sim_step *steps;
  size_t n_steps;
  char *storage; /* every string of the steps */
} sim_script;

/* Parses the script at path. Returns FL_OK and fills *s (free with
 * sim_script_free), or an error after writing "PATH:LINE: message" into err
 * (cap bytes): FL_ERR_IO when the file cannot be read, FL_ERR_INVALID for a
 * syntax error. */
int sim_script_parse(const char *path, sim_script *s, char *err, size_t cap);

/* Returns the value of option key of step, or NULL when it is not given. */
const sim_step_opt *sim_step_opt_get(const sim_step *step, const char *key);

void sim_script_free(sim_script *s);

/* Runs a parsed script with o's broker, hub, state dirs and restart
 * commands. Prints one line per step, and for a failing expect the line and
 * what was seen instead. Returns the exit status: 0 when every expect and
 * the final invariant check held, 1 when one did not, 2 when the run could
 * not start. */
int sim_script_run(const sim_script *s, const sim_options *o);

#endif
