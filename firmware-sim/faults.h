/* Fault injection: the faults a run inflicts at random (seeded) moments, and
 * the external commands that restart the broker or the hub. */
#ifndef SIM_FAULTS_H
#define SIM_FAULTS_H

#include <stdbool.h>
#include <stddef.h>

#include "device.h"

/* ---- external commands --------------------------------------------------- */

typedef struct sim_command sim_command;

/* Runs "CMD ARG" through /bin/sh on a thread of its own, so that the caller
 * keeps ticking its agents. Returns the running command, or NULL when no
 * thread could be started. */
sim_command *sim_command_start(const char *cmd, const char *arg);

/* Returns true once the command has exited. */
bool sim_command_done(sim_command *c);

/* Waits for the command, frees c and returns its exit status (-1 when it
 * could not run). */
int sim_command_finish(sim_command *c);

/* ---- the random plan of a scenario run ------------------------------------ */

typedef struct sim_fault_opts {
  double cut_share, cut_s;     /* --cut SHARE:SECONDS: that share of devices, once each */
  int power_cuts;              /* --power-cut N: N power cuts of random devices */
  double power_off_s;          /* how long a power cut lasts */
  double skew_s, skew_share;   /* --skew SECONDS[:SHARE]: that share of devices' clocks */
  int hub_restarts;            /* --restart-hub N */
  int broker_restarts;         /* --restart-broker N */
  const char *restart_hub_cmd; /* run as "CMD term" */
  const char *restart_broker_cmd;
} sim_fault_opts;

typedef enum sim_fault_kind {
  SIM_FAULT_CUT, SIM_FAULT_POWER, SIM_FAULT_RESTART_HUB, SIM_FAULT_RESTART_BROKER
} sim_fault_kind;

typedef struct sim_fault {
  double at_s;     /* since the start of the run */
  sim_fault_kind kind;
  size_t device;   /* cuts and power cuts */
  double seconds;  /* how long the device stays cut or off */
} sim_fault;

typedef struct sim_fault_plan {
  sim_fault *faults; /* by time */
  size_t n, next;
  sim_command *running; /* a restart in progress */
  unsigned cuts, power_cuts, restarts, failed;
  size_t *skewed;   /* devices whose clock is off by skew_s */
  size_t n_skewed;
} sim_fault_plan;

/* Draws the plan with rng for n_devices over duration_s seconds. Returns
 * FL_OK, FL_ERR_INVALID when restarts are asked without their command, or
 * FL_ERR_NOMEM. The devices to skew are drawn too (sim_fault_plan_skew). */
int sim_fault_plan_make(sim_fault_plan *p, const sim_fault_opts *o, size_t n_devices,
                        double duration_s, unsigned *rng);

/* Sets the drawn devices' clocks off by o->skew_s (before they start). */
void sim_fault_plan_skew(const sim_fault_plan *p, const sim_fault_opts *o, sim_device *const *devs);

/* Injects the faults that are due at t seconds; devs has n_devices entries.
 * A restart runs in the background; one at a time. Returns the number of
 * faults injected now. */
unsigned sim_fault_plan_step(sim_fault_plan *p, const sim_fault_opts *o, double t,
                             sim_device *const *devs);

/* Faults injected so far. */
unsigned sim_fault_plan_injected(const sim_fault_plan *p);

/* Waits for a restart in progress and frees the plan. */
void sim_fault_plan_free(sim_fault_plan *p);

#endif
