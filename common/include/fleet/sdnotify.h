/* Service-manager notifications: systemd's documented NOTIFY_SOCKET datagram
 * protocol (sd_notify(3)), in a few lines instead of a link to libsystemd.
 * A program started by systemd with Type=notify says READY=1 when it serves,
 * WATCHDOG=1 at least every half WatchdogSec, STOPPING=1 when it stops.
 * Outside systemd (no NOTIFY_SOCKET) every call does nothing. */
#ifndef FLEET_SDNOTIFY_H
#define FLEET_SDNOTIFY_H

#include <stdint.h>

/* Sends state ("READY=1", "WATCHDOG=1", "STATUS=text", several separated by
 * newlines) as one datagram to $NOTIFY_SOCKET (a path, or an abstract socket
 * when it starts with '@'). Returns 1 when it was sent, 0 when there is no
 * NOTIFY_SOCKET, or a negative fl_err (FL_ERR_IO, FL_ERR_INVALID for a socket
 * path too long). Thread-safe; opens and closes its own socket each time. */
int fl_sd_notify(const char *state);

/* Returns how often the watchdog must be fed, in microseconds: half of
 * $WATCHDOG_USEC when that is set for this process ($WATCHDOG_PID absent or
 * equal to getpid()), else 0 (no watchdog). */
int64_t fl_sd_watchdog_interval_us(void);

#endif
