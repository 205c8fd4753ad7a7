#include "fleet/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *log_component = "fleet";
static int log_level = -1; /* -1: not read from the environment yet */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void fl_log_set_component(const char *component) { log_component = component; }

void fl_log_set_level(fl_log_level level) { log_level = (int)level; }

int fl_log_level_from_name(const char *name) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; i++)
    if (name && strcmp(name, names[i]) == 0) return i;
  return -1;
}

void fl_log(fl_log_level level, const char *fmt, ...) {
  static const char *const tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
  if (log_level < 0) {
    int l = fl_log_level_from_name(getenv("FLEET_LOG_LEVEL"));
    log_level = l < 0 ? FL_LOG_INFO : l;
  }
  if ((int)level < log_level) return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char line[1024];
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                   tm.tm_sec, ts.tv_nsec / 1000000, tags[level], log_component);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&log_lock);
  fprintf(stderr, "%s\n", line);
  pthread_mutex_unlock(&log_lock);
}
