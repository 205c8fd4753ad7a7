/* One line per significant event, to stderr:
 *   2026-11-20T23:10:01.123Z INFO  hub rental=R1 vehicle=V1 state=ACTIVE
 * Thread-safe. The level comes from fl_log_set_level() or FLEET_LOG_LEVEL. */
#ifndef FLEET_LOG_H
#define FLEET_LOG_H

typedef enum fl_log_level { FL_LOG_DEBUG, FL_LOG_INFO, FL_LOG_WARN, FL_LOG_ERROR } fl_log_level;

/* Sets the component name printed in each line (static string, not copied). */
void fl_log_set_component(const char *component);
void fl_log_set_level(fl_log_level level);
/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int fl_log_level_from_name(const char *name);

void fl_log(fl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define fl_debug(...) fl_log(FL_LOG_DEBUG, __VA_ARGS__)
#define fl_info(...) fl_log(FL_LOG_INFO, __VA_ARGS__)
#define fl_warn(...) fl_log(FL_LOG_WARN, __VA_ARGS__)
#define fl_error(...) fl_log(FL_LOG_ERROR, __VA_ARGS__)

#endif
