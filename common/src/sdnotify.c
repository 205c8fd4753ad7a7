/* fl_sd_notify: one datagram to $NOTIFY_SOCKET (sd_notify(3), "NOTIFY_SOCKET"
 * in systemd.exec(5)). The socket is AF_UNIX/SOCK_DGRAM; a leading '@'
 * names an abstract socket (a NUL byte on the wire). */
#include "fleet/sdnotify.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fleet/error.h"

int fl_sd_notify(const char *state) {
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || !*path) return 0;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t len = strlen(path);
  if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path) return FL_ERR_INVALID;
  memcpy(sa.sun_path, path, len);
  if (path[0] == '@') sa.sun_path[0] = '\0';
  socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                                (path[0] == '@' ? 0 : 1));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return FL_ERR_IO;
  ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
  close(fd);
  return n == (ssize_t)strlen(state) ? 1 : FL_ERR_IO;
}

int64_t fl_sd_watchdog_interval_us(void) {
  const char *usec = getenv("WATCHDOG_USEC");
  const char *pid = getenv("WATCHDOG_PID");
  if (!usec || !*usec) return 0;
  if (pid && *pid && strtol(pid, NULL, 10) != (long)getpid()) return 0;
  char *end = NULL;
  long long v = strtoll(usec, &end, 10);
  if (*end || v <= 0) return 0;
  return (int64_t)(v / 2);
}
