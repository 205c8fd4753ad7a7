/* The daemon's settings: [agent], [mqtt], [outbox], [control] from an INI
 * file with FLEET_AGENT_<SECTION>_<KEY> environment overrides (docs/agent.md
 * lists every key). */
#ifndef AGENT_SETTINGS_H
#define AGENT_SETTINGS_H

#include <stddef.h>
#include <stdio.h>

#include "fleet/agent.h"

typedef struct agent_settings {
  agent_config agent;  /* string fields point into the buffers below */
  char id[FL_ID_MAX + 1];
  char state_dir[256];
  char db_path[512];
  char mqtt_uri[256];
  char username[FL_ID_MAX + 1];
  char password[256];
  char ca_file[512], cert_file[512], key_file[512];
  char socket_path[108];
  char log_level[16];
} agent_settings;

/* Loads path (NULL: environment and defaults only) into *s. Returns FL_OK,
 * or FL_ERR_CONFIG with one sentence in err naming the key: a bad value, or a
 * key, section or FLEET_AGENT_* variable the agent does not know. */
int agent_settings_load(const char *path, agent_settings *s, char *err, size_t errcap);

/* agent_settings_load(), and when it succeeds and out is not NULL, prints
 * every effective setting to out, one "section.key = value" a line
 * (passwords masked): fleet-agent run --check-config. */
int agent_settings_check(const char *path, agent_settings *s, FILE *out, char *err,
                         size_t errcap);

#endif
