/* The payment circuit breaker (breaker.h). */
#include "breaker.h"

#include <string.h>

#include "fleet/log.h"

/* Forgets the calls of the window. */
static void window_clear(hub_breaker *b) {
  b->window_len = b->window_pos = b->window_slow = 0;
  memset(b->window_is_slow, 0, sizeof b->window_is_slow);
}

/* Adds one call to the window, dropping the oldest when it is full. */
static void window_push(hub_breaker *b, bool slow) {
  if (b->window_len == b->cfg.window) {
    if (b->window_is_slow[b->window_pos]) b->window_slow--;
  } else {
    b->window_len++;
  }
  b->window_is_slow[b->window_pos] = slow;
  if (slow) b->window_slow++;
  b->window_pos = (b->window_pos + 1) % b->cfg.window;
}

void hub_breaker_init(hub_breaker *b, const hub_breaker_cfg *cfg) {
  memset(b, 0, sizeof *b);
  b->cfg = *cfg;
  if (b->cfg.window < 1) b->cfg.window = 1;
  if (b->cfg.window > HUB_BREAKER_WINDOW_MAX) b->cfg.window = HUB_BREAKER_WINDOW_MAX;
  /* the share is of the whole window: 0.5 of 20 opens at the 10th slow call
   * among the last 20, also before 20 calls were made */
  double needed = b->cfg.slow_share * b->cfg.window;
  b->slow_needed = (int)needed;
  if (b->slow_needed < needed - 1e-9) b->slow_needed++; /* rounded up */
  if (b->slow_needed < 1) b->slow_needed = 1;
  b->state = BREAKER_CLOSED;
}

/* Moves an open breaker to half-open when its time is up. */
static void tick(hub_breaker *b, int64_t now_us) {
  if (b->state == BREAKER_OPEN && now_us >= b->open_until_us) {
    b->state = BREAKER_HALF_OPEN;
    b->trial_out = false;
    fl_info("payment breaker=half_open");
  }
}

static void open_now(hub_breaker *b, int64_t now_us, const char *why) {
  b->state = BREAKER_OPEN;
  b->open_until_us = now_us + (int64_t)b->cfg.open_s * 1000000;
  b->trial_out = false;
  fl_warn("payment breaker=open cause=%s failures=%d slow=%d/%d open_s=%d", why, b->failures,
          b->window_slow, b->window_len, b->cfg.open_s);
  window_clear(b);
}

void hub_breaker_record(hub_breaker *b, bool failed, int64_t duration_us, int64_t now_us) {
  tick(b, now_us);
  if (b->state == BREAKER_OPEN) return;
  bool slow = b->cfg.slow_ms > 0 && duration_us >= (int64_t)b->cfg.slow_ms * 1000;
  if (failed) b->failures++;
  if (b->state == BREAKER_HALF_OPEN) {
    if (failed || slow) {
      open_now(b, now_us, failed ? "failed_trial" : "slow_trial");
    } else {
      fl_info("payment breaker=closed");
      b->state = BREAKER_CLOSED;
      b->failures = 0;
      b->trial_out = false;
      window_clear(b);
    }
    return;
  }
  if (!failed) b->failures = 0;
  window_push(b, slow);
  if (failed && b->failures >= b->cfg.failures)
    open_now(b, now_us, "failures");
  else if (b->window_slow >= b->slow_needed)
    open_now(b, now_us, "slow_calls");
}

bool hub_breaker_admit(hub_breaker *b, int64_t now_us, uint32_t *retry_after_s) {
  tick(b, now_us);
  if (b->state == BREAKER_OPEN) {
    *retry_after_s = (uint32_t)((b->open_until_us - now_us) / 1000000 + 1);
    return false;
  }
  if (b->state == BREAKER_HALF_OPEN) {
    if (b->trial_out && now_us < b->trial_end_us) {
      *retry_after_s = 1;
      return false;
    }
    b->trial_out = true;
    b->trial_end_us = now_us + b->cfg.trial_lease_us;
  }
  return true;
}

hub_breaker_state hub_breaker_state_at(hub_breaker *b, int64_t now_us) {
  tick(b, now_us);
  return b->state;
}

const char *hub_breaker_state_name(hub_breaker_state s) {
  static const char *const names[] = {"closed", "open", "half_open"};
  return names[s];
}
