/* The circuit breaker around the payment provider: a state machine fed with
 * every call's outcome and duration, asked before a new payment starts.
 * No threads and no clock of its own: the caller (payment.c) holds its lock
 * and passes the time, so that unit tests can drive it step by step.
 *
 *   closed ──(failures in a row, or slow calls in the window)──▶ open
 *   open ──(open_s)──▶ half_open: one trial admitted
 *   half_open ──(a fast success)──▶ closed;  ──(a failure or a slow call)──▶ open
 *
 * docs/payments.md describes it for operators. */
#ifndef HUB_BREAKER_H
#define HUB_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#define HUB_BREAKER_WINDOW_MAX 1000

typedef enum hub_breaker_state {
  BREAKER_CLOSED,
  BREAKER_OPEN,
  BREAKER_HALF_OPEN
} hub_breaker_state;

typedef struct hub_breaker_cfg {
  int failures;           /* failed calls in a row that open it */
  int open_s;             /* how long it stays open */
  int slow_ms;            /* a call that takes this long is slow; 0: no call is */
  double slow_share;      /* slow calls among the last `window` that open it: share of window */
  int window;             /* calls looked at for slowness, 1..HUB_BREAKER_WINDOW_MAX */
  int64_t trial_lease_us; /* a half-open trial that has not reported by then is replaced */
} hub_breaker_cfg;

typedef struct hub_breaker {
  hub_breaker_cfg cfg;
  hub_breaker_state state;
  int failures;           /* failed calls in a row */
  int64_t open_until_us;
  bool trial_out;         /* half-open: the trial was admitted... */
  int64_t trial_end_us;   /* ...and is due by then, or another is admitted */
  int slow_needed;        /* slow calls in the window that open it */
  int window_len, window_pos, window_slow;
  bool window_is_slow[HUB_BREAKER_WINDOW_MAX]; /* the last calls, a ring */
} hub_breaker;

/* Sets b up closed with cfg (window clamped to 1..HUB_BREAKER_WINDOW_MAX). */
void hub_breaker_init(hub_breaker *b, const hub_breaker_cfg *cfg);

/* Records one call that ended at now_us after duration_us; failed: no valid
 * answer (a decline is an answer, not a failure). While open it changes
 * nothing: an open breaker stays open for open_s whatever finishes meanwhile
 * (calls that were in flight when it opened, saga retries). */
void hub_breaker_record(hub_breaker *b, bool failed, int64_t duration_us, int64_t now_us);

/* Asks whether a new payment may start at now_us. Returns true when closed,
 * or half-open and this caller gets the trial; false with *retry_after_s
 * (>= 1) when open (the seconds left) or while the trial is out (1). */
bool hub_breaker_admit(hub_breaker *b, int64_t now_us, uint32_t *retry_after_s);

/* Returns the state at now_us (an open breaker whose time is up is half-open). */
hub_breaker_state hub_breaker_state_at(hub_breaker *b, int64_t now_us);

/* Returns "closed", "open" or "half_open". */
const char *hub_breaker_state_name(hub_breaker_state s);

#endif
