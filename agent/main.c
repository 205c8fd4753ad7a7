/* fleet-agent: the device agent daemon (`run`) and its control client (`ctl`).
 * Built twice (agent/CMakeLists.txt): fleet-agent without OpenSSL, and with
 * FLEET_AGENT_TLS defined, fleet-agent-tls, which fleet-agent becomes when
 * the broker URI asks for TLS. */
#include <MQTTAsync.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "fleet/cli.h"
#include "fleet/clock.h"
#include "fleet/db.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/sdnotify.h"
#include "settings.h"

#define TICK_MS 50

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

#ifdef FLEET_AGENT_TLS
#define PROG "fleet-agent-tls"
#else
#define PROG "fleet-agent"
#endif

static void usage(FILE *f) {
  fprintf(f, "usage: fleet-agent run [--config FILE] [--check-config]\n"
             "       fleet-agent ctl [--socket PATH | --config FILE] COMMAND [ARGS...]\n"
             "       fleet-agent --help | --version\n"
             "  run   runs the device agent until SIGINT or SIGTERM; with --check-config\n"
             "        loads the settings, prints every one of them and exits\n"
             "  ctl   sends one command to a running agent (fleet-agent ctl --help)\n"
             "Settings come from FILE and FLEET_AGENT_<SECTION>_<KEY> (docs/agent.md).\n");
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

static bool uri_wants_tls(const char *uri) {
  return strncmp(uri, "ssl://", 6) == 0 || strncmp(uri, "mqtts://", 8) == 0 ||
         strncmp(uri, "wss://", 6) == 0;
}

#ifndef FLEET_AGENT_TLS
/* Replaces this process by fleet-agent-tls from this program's directory,
 * with the same arguments and environment. Returns only on failure (logged). */
static int exec_tls_agent(char **argv) {
  char self[PATH_MAX], path[PATH_MAX + 32];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    fprintf(stderr, "fleet-agent: /proc/self/exe: %s\n", strerror(errno));
    return 2;
  }
  self[n] = '\0';
  snprintf(path, sizeof path, "%s/fleet-agent-tls", dirname(self));
  argv[0] = path;
  execv(path, argv);
  fprintf(stderr, "fleet-agent: the broker URI asks for TLS, which needs %s: %s\n", path,
          strerror(errno));
  return 2;
}
#endif

/* Sets the process-wide allocators before any thread or database exists.
 * glibc gives each thread that allocates its own arena (paho's send and
 * receive threads, the control threads), each keeping its own free pages:
 * one arena is enough for an agent's few allocations a second. SQLite's
 * page cache starts without its up-front block of 20 pages: the outbox
 * caches the handful of pages it uses (bench/run footprint). */
static void memory_init(void) {
  mallopt(M_ARENA_MAX, 1);
  fl_db_init_small();
}

/* paho's TLS build initialises OpenSSL when the first client is created
 * (error strings, algorithm tables): 1.5 MB of resident memory that a
 * device talking plain MQTT never uses (bench/run footprint). Skip it unless
 * the broker URI asks for TLS; OpenSSL 3 initialises itself on first use
 * anyway. Must run before agent_create(). */
static void paho_init(const char *uri) {
  MQTTAsync_init_options io = MQTTAsync_init_options_initializer;
  io.do_openssl_init = uri_wants_tls(uri);
  MQTTAsync_global_init(&io);
}

/* Runs the agent until SIGINT or SIGTERM; argv is the command line, passed
 * on to fleet-agent-tls when the broker URI asks for TLS. Returns the exit
 * code. */
static int run(const char *config_path, bool check_only, char **argv) {
  agent_settings s;
  char err[512];
  if (agent_settings_check(config_path, &s, check_only ? stdout : NULL, err, sizeof err) !=
      FL_OK) {
    fprintf(stderr, "fleet-agent: %s\n", err);
    return 2;
  }
  if (check_only) return 0;
#ifndef FLEET_AGENT_TLS
  if (uri_wants_tls(s.mqtt_uri)) return exec_tls_agent(argv);
#else
  (void)argv;
#endif
  memory_init();
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
  /* systemd (dist/systemd/fleet-agent@.service): ready once the control
   * socket serves (an agent works offline, so not waiting for the broker);
   * the watchdog is fed by this loop, which drives the agent */
  fl_sd_notify("READY=1");
  int64_t watchdog_us = fl_sd_watchdog_interval_us(), next_watchdog_us = 0;
  while (!stop_requested) {
    agent_tick(a, fl_mono_us() / 1000);
    if (watchdog_us > 0 && fl_mono_us() >= next_watchdog_us) {
      fl_sd_notify("WATCHDOG=1");
      next_watchdog_us = fl_mono_us() + watchdog_us;
    }
    fl_sleep_ms(TICK_MS);
  }
  fl_sd_notify("STOPPING=1");
  fl_info("stopping");
  rc = 0;
out:
  ctl_server_stop(ctl);
  agent_stop(a, 2000);
  agent_destroy(a);
  if (rc == 0) fl_info("stopped");
  return rc;
}

enum { OPT_VERSION = 256, OPT_CHECK };

/* `fleet-agent run [--config FILE] [--check-config]`: argv[0] is "run".
 * Returns the exit status; full_argv goes on to fleet-agent-tls unchanged. */
static int run_main(int argc, char **argv, char **full_argv) {
  static const struct option long_opts[] = {{"config", required_argument, NULL, 'c'},
                                            {"check-config", no_argument, NULL, OPT_CHECK},
                                            {"help", no_argument, NULL, 'h'},
                                            {"version", no_argument, NULL, OPT_VERSION},
                                            {NULL, 0, NULL, 0}};
  const char *config_path = NULL;
  bool check_only = false;
  optind = 1;
  for (int opt; (opt = getopt_long(argc, argv, "+:h", long_opts, NULL)) != -1;) {
    switch (opt) {
    case 'c':
      config_path = optarg;
      break;
    case OPT_CHECK:
      check_only = true;
      break;
    case 'h':
      usage(stdout);
      return 0;
    case OPT_VERSION:
      return fl_cli_version(PROG);
    default:
      return fl_cli_bad_option(PROG " run", opt, argv);
    }
  }
  if (optind < argc) return fl_cli_usage_error(PROG " run", "unexpected argument '%s'", argv[optind]);
  return run(config_path, check_only, full_argv);
}

int main(int argc, char **argv) {
  static const struct option long_opts[] = {{"help", no_argument, NULL, 'h'},
                                            {"version", no_argument, NULL, OPT_VERSION},
                                            {NULL, 0, NULL, 0}};
  fl_log_set_component("agent");
  opterr = 0;
  /* options before the command only: '+' stops at the first word */
  for (int opt; (opt = getopt_long(argc, argv, "+:h", long_opts, NULL)) != -1;) {
    switch (opt) {
    case 'h':
      usage(stdout);
      return 0;
    case OPT_VERSION:
      return fl_cli_version(PROG);
    default:
      return fl_cli_bad_option(PROG, opt, argv);
    }
  }
  if (optind >= argc) return fl_cli_usage_error(PROG, "no command (run or ctl)");
  const char *command = argv[optind];
  if (strcmp(command, "run") == 0) return run_main(argc - optind, argv + optind, argv);
  if (strcmp(command, "ctl") == 0) return ctl_client_main(argc - optind - 1, argv + optind + 1);
  return fl_cli_usage_error(PROG, "unknown command '%s' (run or ctl)", command);
}
