#include "device.h"

#include <stdio.h>
#include <string.h>

#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"

int sim_device_init(sim_device *d, const char *id, bool vehicle, const char *state_dir,
                    const char *broker_uri, agent_callbacks cb) {
  memset(d, 0, sizeof *d);
  if (!fl_id_valid(id) || strlen(id) >= sizeof d->id) return FL_ERR_INVALID;
  snprintf(d->id, sizeof d->id, "%s", id);
  int n = snprintf(d->db_path, sizeof d->db_path, "%s/%s.db", state_dir, id);
  if (n < 0 || (size_t)n >= sizeof d->db_path) return FL_ERR_INVALID;
  d->vehicle = vehicle;
  d->broker_uri = broker_uri;
  d->cb = cb;
  d->power = SIM_POWER_OFF;
  return FL_OK;
}

void sim_device_topics(sim_device *d, agent_topic_family family, int partitions) {
  d->topic_family = family;
  d->partitions = partitions;
}

int sim_device_start(sim_device *d) {
  agent_config c = {
      .id = d->id,
      .role = d->vehicle ? FL_ROLE_VEHICLE : FL_ROLE_KIOSK,
      .db_path = d->db_path,
      .mqtt_uri = d->broker_uri,
      .durability = FL_DB_SYNC_NORMAL,
      /* come back quickly after a cut or a broker restart */
      .reconnect_min_ms = 200,
      .reconnect_max_ms = 5000,
      .clock_skew_ms = d->skew_ms,
      .topic_family = d->topic_family,
      .partitions = d->partitions,
      .cb = d->cb,
  };
  int rc = agent_create(&c, &d->agent);
  if (rc == FL_OK) rc = agent_start(d->agent);
  if (rc != FL_OK) {
    agent_destroy(d->agent);
    d->agent = NULL;
    d->power = SIM_POWER_OFF;
    return rc;
  }
  d->power = SIM_UP;
  d->restore_us = 0;
  return FL_OK;
}

static int64_t restore_at(double seconds) {
  return seconds > 0 ? fl_mono_us() + (int64_t)(seconds * 1e6) : 0;
}

int sim_device_cut(sim_device *d, double seconds) {
  if (d->power != SIM_UP) return FL_ERR_STATE;
  agent_kill(d->agent);
  d->power = SIM_CUT;
  d->restore_us = restore_at(seconds);
  fl_info("%s network cut", d->id);
  return FL_OK;
}

int sim_device_power_cut(sim_device *d, double seconds) {
  if (d->power == SIM_POWER_OFF) return FL_ERR_STATE;
  agent_kill(d->agent);    /* the socket drops without DISCONNECT */
  agent_destroy(d->agent); /* already killed: no clean stop, nothing sent */
  d->agent = NULL;
  d->power = SIM_POWER_OFF;
  d->restore_us = restore_at(seconds);
  fl_info("%s power cut", d->id);
  return FL_OK;
}

int sim_device_restore(sim_device *d) {
  if (d->power == SIM_UP) return FL_OK;
  /* A killed MQTT client cannot reconnect: the agent is re-created from its
   * store, as the device's firmware would after the link came back. */
  agent_destroy(d->agent);
  d->agent = NULL;
  return sim_device_start(d);
}

void sim_device_skew(sim_device *d, int64_t skew_ms) {
  d->skew_ms = skew_ms;
  if (d->agent) agent_set_clock_skew(d->agent, skew_ms);
}

void sim_device_tick(sim_device *d, int64_t now_us) {
  if (d->restore_us && now_us >= d->restore_us && sim_device_restore(d) != FL_OK)
    d->restore_us = now_us + 1000000; /* try again in a second */
  if (d->agent) agent_tick(d->agent, now_us / 1000);
}

void sim_device_close(sim_device *d) {
  if (!d) return;
  /* a short clean stop: agent_destroy alone would wait up to 1.5 s for
   * every agent with publishes in flight, hours for a large fleet */
  if (d->power == SIM_UP) agent_stop(d->agent, 50);
  agent_destroy(d->agent);
  d->agent = NULL;
  d->power = SIM_POWER_OFF;
}
