/* Clocks. Wall time for the wire (device time, due times), monotonic time for
 * timeouts and latencies. */
#ifndef FLEET_CLOCK_H
#define FLEET_CLOCK_H

#include <stdint.h>

/* Returns wall-clock milliseconds since the Unix epoch, plus the skew set
 * with fl_clock_set_skew_ms() (used by the simulator to fake a wrong clock). */
int64_t fl_now_ms(void);
/* Returns monotonic microseconds (CLOCK_MONOTONIC); never goes back. */
int64_t fl_mono_us(void);
/* Adds skew_ms to every later fl_now_ms() of this process. */
void fl_clock_set_skew_ms(int64_t skew_ms);
/* Sleeps for ms milliseconds (restarting on EINTR). */
void fl_sleep_ms(int64_t ms);

#endif
