/* fleet-agent: the device agent daemon (`run`) and its control client (`ctl`). */
#include <MQTTAsync.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "settings.h"

#define TICK_MS 50

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static int usage(void) {
  fprintf(stderr, "usage: fleet-agent run [--config FILE]\n"
                  "       fleet-agent ctl [--socket PATH | --config FILE] COMMAND [ARGS...]\n"
                  "Settings come from FILE and FLEET_AGENT_<SECTION>_<KEY> (docs/agent.md).\n");
  return 2;
}

static void install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* paho's TLS build initialises OpenSSL when the first client is created
 * (error strings, algorithm tables): 1.5 MB of resident memory that a
 * device talking plain MQTT never uses (bench/run footprint). Skip it unless
 * the broker URI asks for TLS; OpenSSL 3 initialises itself on first use
 * anyway. Must run before agent_create(). */
static void paho_init(const char *uri) {
  bool tls = strncmp(uri, "ssl://", 6) == 0 || strncmp(uri, "mqtts://", 8) == 0 ||
             strncmp(uri, "wss://", 6) == 0;
  MQTTAsync_init_options io = MQTTAsync_init_options_initializer;
  io.do_openssl_init = tls;
  MQTTAsync_global_init(&io);
}

/* Runs the agent until SIGINT or SIGTERM. Returns the exit code. */
static int run(const char *config_path) {
  agent_settings s;
  char err[512];
  if (agent_settings_load(config_path, &s, err, sizeof err) != FL_OK) {
    fprintf(stderr, "fleet-agent: %s\n", err);
    return 2;
  }
  int level = fl_log_level_from_name(s.log_level);
  if (level >= 0) fl_log_set_level((fl_log_level)level);
  install_signals();
  paho_init(s.mqtt_uri);
  fl_agent *a = NULL;
  ctl_server *ctl = NULL;
  int rc = 1;
  int e = agent_create(&s.agent, &a);
  if (e != FL_OK) {
    fprintf(stderr, "fleet-agent: cannot open agent %s (%s): %s\n", s.id, s.db_path,
            fl_strerror(e));
    goto out;
  }
  if (ctl_server_start(s.socket_path, a, &ctl) != FL_OK) goto out;
  if (agent_start(a) != FL_OK) {
    fprintf(stderr, "fleet-agent: cannot start MQTT client for %s\n", s.mqtt_uri);
    goto out;
  }
  fl_info("running: id=%s mqtt=%s db=%s ctl=%s", s.id, s.mqtt_uri, s.db_path, s.socket_path);
  while (!stop_requested) {
    agent_tick(a, fl_mono_us() / 1000);
    fl_sleep_ms(TICK_MS);
  }
  fl_info("stopping");
  rc = 0;
out:
  ctl_server_stop(ctl);
  agent_stop(a, 2000);
  agent_destroy(a);
  if (rc == 0) fl_info("stopped");
  return rc;
}

int main(int argc, char **argv) {
  fl_log_set_component("agent");
  if (argc >= 2 && strcmp(argv[1], "run") == 0) {
    if (argc == 2) return run(NULL);
    if (argc == 4 && strcmp(argv[2], "--config") == 0) return run(argv[3]);
    return usage();
  }
  if (argc >= 2 && strcmp(argv[1], "ctl") == 0) return ctl_client_main(argc - 2, argv + 2);
  return usage();
}
