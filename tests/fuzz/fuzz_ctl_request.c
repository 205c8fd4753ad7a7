/* Fuzz target: one request on the agent's control socket, as ctl_server.c
 * handles it: read up to the LF (ctl__read_request, from a socket pair the
 * input is written into), split on TAB (ctl__split_request), run it with
 * ctl_execute against a real agent (its SQLite outbox in a temporary
 * directory, never connected). The first input byte picks a kiosk or a
 * vehicle agent; the rest is what a client sends. --wait returns at once
 * (the agent is "stopping"), so no input can hold the target up. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

#include "ctl.h"
#include "ctl_internal.h"
#include "fleet/error.h"
#include "fleet/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fl_agent *agents[2]; /* kiosk, vehicle */
static char state_dir[64];
static int devnull = -1;

static void cleanup(void) {
  for (int i = 0; i < 2; i++) agent_destroy(agents[i]);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", state_dir);
  if (system(cmd) != 0) fprintf(stderr, "fuzz_ctl_request: could not remove %s\n", state_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fl_log_set_level(FL_LOG_ERROR);
  snprintf(state_dir, sizeof state_dir, "/tmp/fleet-fuzz-ctl-XXXXXX");
  devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (!mkdtemp(state_dir) || devnull < 0) {
    perror("fuzz_ctl_request: setup");
    exit(1);
  }
  static const char *const ids[2] = {"K1", "V1"};
  static const fl_role roles[2] = {FL_ROLE_KIOSK, FL_ROLE_VEHICLE};
  for (int i = 0; i < 2; i++) {
    char db[128];
    snprintf(db, sizeof db, "%s/%s.db", state_dir, ids[i]);
    agent_config cfg = {.id = ids[i], .role = roles[i], .db_path = db,
                        .mqtt_uri = "tcp://127.0.0.1:1", .durability = FL_DB_SYNC_OFF,
                        .max_events = 2000};
    int rc = agent_create(&cfg, &agents[i]);
    if (rc != FL_OK) {
      fprintf(stderr, "fuzz_ctl_request: agent_create: %s\n", fl_strerror(rc));
      exit(1);
    }
  }
  atexit(cleanup);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 4 * CTL_LINE_MAX) return 0;
  fl_agent *a = agents[data[0] & 1];
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) abort();
  /* 4 KB fits a socket pair's buffer: one write, then the end of input. */
  if (write(sv[1], data + 1, size - 1) != (ssize_t)(size - 1)) abort();
  shutdown(sv[1], SHUT_WR);
  char line[CTL_LINE_MAX + 1];
  char *argv[CTL_ARGS_MAX];
  char err[CTL_LINE_MAX] = "";
  const char *why = NULL;
  int argc = ctl__read_request(sv[0], line, sizeof line, &why);
  if (argc >= 0) {
    if (strlen(line) != (size_t)argc || argc > CTL_LINE_MAX) abort(); /* the line is whole */
    argc = ctl__split_request(line, argv, &why);
  }
  if (argc < 0) {
    if (!why || !why[0]) abort(); /* a refusal says why */
  } else {
    static atomic_bool stopping = true;
    ctl_status st = ctl_execute(a, argc, argv, devnull, &stopping, err, sizeof err);
    if (st != CTL_OK && (!ctl_status_token(st) || !memchr(err, '\0', sizeof err))) abort();
  }
  close(sv[0]);
  close(sv[1]);
  return 0;
}
