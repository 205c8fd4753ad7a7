/* `fleet-agent ctl`: one request to the daemon's control socket. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "fleet/cli.h"
#include "fleet/error.h"
#include "settings.h"

#define CTL_ANSWER_MAX (256 * 1024)

#define CTL_PROG "fleet-agent ctl"

static void client_help(void) {
  printf("usage: fleet-agent ctl [--socket PATH | --config FILE] COMMAND [ARGS...]\n"
         "  Sends one command to a running agent's control socket (docs/agent.md).\n"
         "  --socket PATH  the socket (default: $FLEET_AGENT_CONTROL_SOCKET)\n"
         "  --config FILE  the agent's INI file: its [control] socket\n"
         "commands: status | rent VEHICLE CUSTOMER MINUTES [RENTAL_ID] [--wait S] |\n"
         "  cancel RENTAL [--wait S] | return RENTAL [--wait S] |\n"
         "  book VEHICLE CUSTOMER START_MS END_MS [BOOKING_ID] [--wait S] |\n"
         "  decision RENTAL | fault DTC[,DTC] SEVERITY [TEXT] | telemetry ODO_M ENERGY LAT LON |\n"
         "  unlock CUSTOMER | lock | bookings\n");
}

/* Prints why as a usage error; returns CTL_USAGE (2, like FL_CLI_USAGE). */
static int client_usage(const char *why) {
  fl_cli_usage_error(CTL_PROG, "%s", why);
  return CTL_USAGE;
}

/* Joins args with TAB into buf. Returns false if an argument cannot be sent. */
static bool build_request(int argc, char **argv, char *buf, size_t cap) {
  size_t len = 0;
  for (int i = 0; i < argc; i++) {
    size_t n = strlen(argv[i]);
    if (n == 0 || strpbrk(argv[i], "\t\n\r") || len + n + 2 > cap) return false;
    if (i) buf[len++] = '\t';
    memcpy(buf + len, argv[i], n);
    len += n;
  }
  buf[len++] = '\n';
  buf[len] = '\0';
  return true;
}

/* Connects to path; returns the socket or -1 after printing why. */
static int client_connect(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) {
    fprintf(stderr, "fleet-agent ctl: socket path too long: %s\n", path);
    return -1;
  }
  memcpy(addr.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    fprintf(stderr, "fleet-agent ctl: cannot connect to %s: %s (is the agent running?)\n", path,
            strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

/* Prints the answer in buf[0..len): result lines to stdout, the final line
 * decides the exit code. */
static int print_answer(char *buf, size_t len) {
  buf[len] = '\0';
  char *final = NULL;
  for (char *line = buf, *nl; line && *line; line = nl ? nl + 1 : NULL) {
    nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    if (final) puts(final);
    final = line;
  }
  if (!final) {
    fprintf(stderr, "fleet-agent ctl: the agent closed the connection without an answer\n");
    return CTL_FAILED;
  }
  if (strcmp(final, "ok") == 0) return CTL_OK;
  if (strncmp(final, "error ", 6) == 0) {
    char *token = final + 6, *msg = strchr(token, ' ');
    if (msg) *msg++ = '\0';
    fprintf(stderr, "fleet-agent ctl: %s\n", msg ? msg : token);
    return ctl_status_from_token(token);
  }
  puts(final);
  fprintf(stderr, "fleet-agent ctl: answer without a final line\n");
  return CTL_FAILED;
}

int ctl_client_main(int argc, char **argv) {
  const char *socket_path = getenv("FLEET_AGENT_CONTROL_SOCKET");
  agent_settings settings;
  static const struct option long_opts[] = {{"socket", required_argument, NULL, 's'},
                                            {"config", required_argument, NULL, 'c'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
  /* argv[0] is the first word after "ctl" and argv[-1] is "ctl" itself
   * (agent/main.c): getopt_long starts at its argv[1], so it gets the words
   * from "ctl" on. Options come before the command only ('+'): a "--wait S"
   * after the command goes to the agent. */
  argc++;
  argv--;
  optind = 1;
  opterr = 0;
  for (int opt; (opt = getopt_long(argc, argv, "+:h", long_opts, NULL)) != -1;) {
    if (opt == 's') {
      socket_path = optarg;
    } else if (opt == 'c') {
      char err[256];
      if (agent_settings_load(optarg, &settings, err, sizeof err) != FL_OK) {
        fprintf(stderr, "fleet-agent ctl: %s\n", err);
        return CTL_USAGE;
      }
      socket_path = settings.socket_path;
    } else if (opt == 'h') {
      client_help();
      return CTL_OK;
    } else {
      fl_cli_bad_option(CTL_PROG, opt, argv);
      return CTL_USAGE;
    }
  }
  int i = optind;
  if (!socket_path || !socket_path[0]) return client_usage("no --socket PATH");
  if (i >= argc) return client_usage("no command");
  char request[CTL_LINE_MAX + 1];
  if (!build_request(argc - i, argv + i, request, sizeof request))
    return client_usage("arguments must be non-empty, without tabs or newlines, and short");
  int fd = client_connect(socket_path);
  if (fd < 0) return CTL_FAILED;
  char *answer = malloc(CTL_ANSWER_MAX + 1);
  size_t len = 0;
  int rc = CTL_FAILED;
  if (!answer || write(fd, request, strlen(request)) != (ssize_t)strlen(request)) {
    fprintf(stderr, "fleet-agent ctl: cannot send the request\n");
    goto out;
  }
  for (ssize_t r; len < CTL_ANSWER_MAX; len += (size_t)r) {
    r = read(fd, answer + len, CTL_ANSWER_MAX - len);
    if (r < 0 && errno == EINTR) r = 0;
    else if (r <= 0) break;
  }
  rc = print_answer(answer, len);
out:
  free(answer);
  close(fd);
  return rc;
}
