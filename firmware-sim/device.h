/* One simulated device: a real agent (fl_agent) with its SQLite file in the
 * simulator's state dir, and the faults the simulator can inflict on it. The
 * scenario engine and the script executor share it.
 *
 * Not thread-safe: every function is called by the one thread that drives
 * the devices (the tick thread); the agent's own callbacks run on paho's
 * threads and receive cb.ctx, which must outlive the device. */
#ifndef SIM_DEVICE_H
#define SIM_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "fleet/agent.h"

typedef enum sim_power {
  SIM_UP,        /* running and connecting */
  SIM_CUT,       /* network cut: the agent works offline (outbox), no MQTT */
  SIM_POWER_OFF, /* power cut: no agent at all until restored */
} sim_power;

typedef struct sim_device {
  char id[FL_ID_MAX + 1];
  bool vehicle;
  char db_path[512];
  const char *broker_uri; /* borrowed: lives as long as the simulator's options */
  agent_callbacks cb;
  fl_agent *agent;        /* NULL while powered off */
  sim_power power;
  int64_t restore_us;     /* fl_mono_us() when a cut or power cut ends by itself; 0: never */
  int64_t skew_ms;        /* its clock's error, kept across power cuts */
  agent_topic_family topic_family; /* the agent library's default unless set */
  int partitions;         /* 0: the agent library's default */
} sim_device;

/* Fills d for device id (its file is <state_dir>/<id>.db) without starting
 * it. Returns FL_OK or FL_ERR_INVALID (bad id, path too long). */
int sim_device_init(sim_device *d, const char *id, bool vehicle, const char *state_dir,
                    const char *broker_uri, agent_callbacks cb);

/* Makes the device's agent use topic family `family` with `partitions`
 * partitions (0: the default) from its next start: fleet-sim --topic-family,
 * --partitions. Devices otherwise take the agent library's defaults. */
void sim_device_topics(sim_device *d, agent_topic_family family, int partitions);

/* Creates the agent from its state file and starts connecting. Returns FL_OK
 * or the error of agent_create / agent_start (then d stays powered off). */
int sim_device_start(sim_device *d);

/* Cuts the device's network as a broken link would (agent_kill: no
 * DISCONNECT, the broker publishes the will). The agent keeps taking events
 * into its outbox. seconds > 0 restores it by itself after that long (at a
 * sim_device_tick()); 0 waits for sim_device_restore(). Returns FL_OK, or
 * FL_ERR_STATE when the device is not up. */
int sim_device_cut(sim_device *d, double seconds);

/* Cuts the power: agent_kill, then agent_destroy without a clean stop, so
 * nothing is flushed or said goodbye. seconds as for sim_device_cut().
 * Returns FL_OK, or FL_ERR_STATE when the device is powered off already. */
int sim_device_power_cut(sim_device *d, double seconds);

/* Ends a cut or a power cut: the agent is re-created from the same state
 * file (a new boot) and reconnects, resending what the hub has not acked.
 * Returns FL_OK (also when the device was up), or the start error. */
int sim_device_restore(sim_device *d);

/* Makes the device's clock skew_ms off (ahead when positive), now and after
 * every restart; only this device's, not the process's. */
void sim_device_skew(sim_device *d, int64_t skew_ms);

/* Ticks the agent (when there is one) and ends a timed cut that is due. */
void sim_device_tick(sim_device *d, int64_t now_us);

/* The agent, or NULL while powered off. */
static inline fl_agent *sim_device_agent(const sim_device *d) { return d->agent; }

/* Destroys the agent (cleanly: stop, then close). NULL is accepted. */
void sim_device_close(sim_device *d);

#endif
