/* `fleet-agent ctl`: one request to the daemon's control socket. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "fleet/error.h"
#include "settings.h"

#define CTL_ANSWER_MAX (256 * 1024)

static int client_usage(const char *why) {
  fprintf(stderr,
          "fleet-agent ctl: %s\n"
          "usage: fleet-agent ctl [--socket PATH | --config FILE] COMMAND [ARGS...]\n"
          "commands: status | rent VEHICLE CUSTOMER MINUTES [RENTAL_ID] [--wait S] |\n"
          "  cancel RENTAL [--wait S] | return RENTAL [--wait S] |\n"
          "  book VEHICLE CUSTOMER START_MS END_MS [BOOKING_ID] [--wait S] |\n"
          "  decision RENTAL | fault DTC[,DTC] SEVERITY [TEXT] | telemetry ODO_M ENERGY LAT LON |\n"
          "  unlock CUSTOMER | lock | bookings\n",
          why);
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
  int i = 0;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
    if (i + 1 >= argc) return client_usage("option without a value");
    if (strcmp(argv[i], "--socket") == 0) {
      socket_path = argv[i + 1];
    } else if (strcmp(argv[i], "--config") == 0) {
      char err[256];
      if (agent_settings_load(argv[i + 1], &settings, err, sizeof err) != FL_OK) {
        fprintf(stderr, "fleet-agent ctl: %s\n", err);
        return CTL_USAGE;
      }
      socket_path = settings.socket_path;
    } else {
      return client_usage("unknown option");
    }
  }
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
