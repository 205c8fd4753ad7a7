/* The control socket: an accept thread and one short-lived thread per
 * connection (at most CTL_CONN_MAX), so that a `rent --wait` does not hold
 * up the daemon's tick loop or another request. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "ctl_internal.h"
#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"

#define CTL_CONN_MAX 16
#define CTL_READ_TIMEOUT_S 5

struct ctl_server {
  fl_agent *a;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  int listen_fd;
  pthread_t accept_thread;
  atomic_bool stopping;
  pthread_mutex_t lock;
  pthread_cond_t idle;
  int active; /* connection threads running */
};

typedef struct ctl_conn {
  ctl_server *s;
  int fd;
} ctl_conn;

/* Writes the final line for status st with message msg. */
static void write_final(int fd, ctl_status st, const char *msg) {
  char line[CTL_LINE_MAX + 32];
  int n = st == CTL_OK ? snprintf(line, sizeof line, "ok\n")
                       : snprintf(line, sizeof line, "error %s %s\n", ctl_status_token(st), msg);
  if (n > 0 && (size_t)n >= sizeof line) n = (int)sizeof line - 1;
  if (n > 0 && write(fd, line, (size_t)n) < 0) fl_debug("ctl: client went away");
}

int ctl__read_request(int fd, char *buf, size_t cap, const char **why) {
  size_t len = 0;
  for (;;) {
    if (len == cap - 1) {
      *why = "request line too long";
      return -1;
    }
    ssize_t r = read(fd, buf + len, cap - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      *why = r == 0 ? "request without end of line" : "read timed out";
      return -1;
    }
    char *nl = memchr(buf + len, '\n', (size_t)r);
    len += (size_t)r;
    if (nl) {
      if (memchr(buf, '\0', (size_t)(nl - buf))) {
        *why = "control character in request"; /* a NUL would cut the request short */
        return -1;
      }
      *nl = '\0';
      return (int)(nl - buf);
    }
  }
}

int ctl__split_request(char *line, char **argv, const char **why) {
  int argc = 0;
  for (char *p = line; *p; p++) {
    if (*p != '\t' && (unsigned char)*p < 0x20) {
      *why = "control character in request";
      return -1;
    }
  }
  char *save = NULL;
  for (char *t = strtok_r(line, "\t", &save); t; t = strtok_r(NULL, "\t", &save)) {
    if (argc == CTL_ARGS_MAX) {
      *why = "too many arguments";
      return -1;
    }
    argv[argc++] = t;
  }
  return argc;
}

/* Reads and discards what the client still sends, for a short while. */
static void drain(int fd) {
  char buf[4096];
  struct timeval tv = {.tv_usec = 200000};
  shutdown(fd, SHUT_WR);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (int i = 0; i < 64 && read(fd, buf, sizeof buf) > 0; i++) {
  }
}

static void *conn_main(void *arg) {
  ctl_conn *c = arg;
  ctl_server *s = c->s;
  char line[CTL_LINE_MAX + 1];
  char *argv[CTL_ARGS_MAX];
  char err[CTL_LINE_MAX] = "";
  const char *why = NULL;
  struct timeval tv = {.tv_sec = CTL_READ_TIMEOUT_S};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int argc = ctl__read_request(c->fd, line, sizeof line, &why);
  if (argc >= 0) argc = ctl__split_request(line, argv, &why);
  if (argc < 0) {
    fl_warn("ctl: bad request: %s", why);
    write_final(c->fd, CTL_USAGE, why);
    drain(c->fd); /* closing with unread input would reset the answer away */
  } else {
    ctl_status st = ctl_execute(s->a, argc, argv, c->fd, &s->stopping, err, sizeof err);
    fl_info("ctl %s: %s", argc > 0 ? argv[0] : "(empty)",
            st == CTL_OK ? "ok" : ctl_status_token(st));
    write_final(c->fd, st, err);
  }
  close(c->fd);
  free(c);
  pthread_mutex_lock(&s->lock);
  if (--s->active == 0) pthread_cond_broadcast(&s->idle);
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

/* Starts a thread for connection fd, or answers busy. */
static void conn_start(ctl_server *s, int fd) {
  pthread_mutex_lock(&s->lock);
  bool room = s->active < CTL_CONN_MAX;
  if (room) s->active++;
  pthread_mutex_unlock(&s->lock);
  ctl_conn *c = room ? malloc(sizeof *c) : NULL;
  pthread_t t;
  if (c) {
    c->s = s;
    c->fd = fd;
    if (pthread_create(&t, NULL, conn_main, c) == 0) {
      pthread_detach(t);
      return;
    }
    free(c);
  }
  if (room) {
    pthread_mutex_lock(&s->lock);
    s->active--;
    pthread_mutex_unlock(&s->lock);
  }
  write_final(fd, CTL_BUSY, "too many control connections, try again");
  close(fd);
}

static void *accept_main(void *arg) {
  ctl_server *s = arg;
  while (!atomic_load(&s->stopping)) {
    struct pollfd p = {.fd = s->listen_fd, .events = POLLIN};
    if (poll(&p, 1, 200) <= 0) continue;
    int fd = accept(s->listen_fd, NULL, NULL);
    if (fd >= 0) conn_start(s, fd);
  }
  return NULL;
}

int ctl_server_start(const char *path, fl_agent *a, ctl_server **out) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (!path || strlen(path) >= sizeof addr.sun_path) {
    fl_error("ctl: socket path missing or longer than %zu bytes", sizeof addr.sun_path - 1);
    return FL_ERR_INVALID;
  }
  ctl_server *s = calloc(1, sizeof *s);
  if (!s) return FL_ERR_NOMEM;
  s->a = a;
  snprintf(s->path, sizeof s->path, "%s", path);
  memcpy(addr.sun_path, path, strlen(path) + 1);
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->idle, NULL);
  struct stat sb;
  if (lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode)) unlink(path); /* stale */
  s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
      listen(s->listen_fd, 16) != 0 ||
      pthread_create(&s->accept_thread, NULL, accept_main, s) != 0) {
    fl_error("ctl: cannot listen on %s: %s", path, strerror(errno));
    if (s->listen_fd >= 0) close(s->listen_fd);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return FL_ERR_IO;
  }
  fl_info("ctl listening on %s", path);
  *out = s;
  return FL_OK;
}

void ctl_server_stop(ctl_server *s) {
  if (!s) return;
  atomic_store(&s->stopping, true);
  pthread_join(s->accept_thread, NULL);
  close(s->listen_fd);
  pthread_mutex_lock(&s->lock);
  while (s->active > 0) pthread_cond_wait(&s->idle, &s->lock);
  pthread_mutex_unlock(&s->lock);
  unlink(s->path);
  pthread_cond_destroy(&s->idle);
  pthread_mutex_destroy(&s->lock);
  free(s);
}
