/* Fuzz target: the configuration loaders on any file. The input is written
 * to a temporary file and loaded as the hub's config (hub_config_load) and
 * as the agent's (agent_settings_load), through fl_config_load and inih as
 * the programs do. Either a loader refuses with a sentence, or every value it
 * returns is within the range it documents. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleet/error.h"
#include "hub_config.h"
#include "settings.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char config_path[64];

static void remove_config(void) { unlink(config_path); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  snprintf(config_path, sizeof config_path, "/tmp/fleet-fuzz-config-XXXXXX");
  int fd = mkstemp(config_path);
  if (fd < 0) {
    perror("fuzz_config: mkstemp");
    exit(1);
  }
  close(fd);
  atexit(remove_config);
  /* Only the file is under test: no FLEET_HUB_* / FLEET_AGENT_* overrides. */
  extern char **environ;
  for (char **e = environ; *e; e++)
    if (strncmp(*e, "FLEET_HUB_", 10) == 0 || strncmp(*e, "FLEET_AGENT_", 12) == 0) {
      fprintf(stderr, "fuzz_config: unset %s first\n", *e);
      exit(1);
    }
  return 0;
}

static void expect(int cond, const char *what) {
  if (cond) return;
  fprintf(stderr, "fuzz_config: broken promise: %s\n", what);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FILE *f = fopen(config_path, "wb");
  if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
    perror("fuzz_config: writing the config");
    exit(1);
  }
  static hub_config hub;
  static agent_settings agent;
  char err[512];
  err[0] = '\0';
  int rc = hub_config_load(config_path, &hub, err, sizeof err);
  if (rc != FL_OK) {
    expect(rc == FL_ERR_CONFIG && err[0], "hub: a refusal names the problem");
  } else {
    expect(hub.http_port >= 0 && hub.http_port <= 65535, "hub: http port in range");
    expect(hub.batch_max >= 1 && hub.queue_max >= 16, "hub: engine sizes in range");
    expect(hub.minute_ms >= 1 && hub.minute_ms <= 60000, "hub: minute_ms in range");
    expect(hub.sim_decline_rate >= 0 && hub.sim_decline_rate <= 1, "hub: decline rate in range");
    expect(hub.n_fee_tiers >= 0 && hub.n_fee_tiers <= HUB_FEE_TIERS, "hub: fee tiers");
    expect(memchr(hub.state_dir, '\0', sizeof hub.state_dir) &&
               memchr(hub.store_url, '\0', sizeof hub.store_url),
           "hub: texts NUL-terminated");
  }
  err[0] = '\0';
  rc = agent_settings_load(config_path, &agent, err, sizeof err);
  if (rc != FL_OK) {
    expect(rc == FL_ERR_CONFIG && err[0], "agent: a refusal names the problem");
  } else {
    expect(agent.agent.id && fl_id_valid(agent.agent.id), "agent: a valid id");
    expect(agent.agent.role == FL_ROLE_VEHICLE || agent.agent.role == FL_ROLE_KIOSK,
           "agent: a role");
  }
  return 0;
}
