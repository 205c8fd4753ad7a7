/* The commands of the control interface: parse the arguments, call the
 * agent, print the result lines. Every argument is checked; nothing here
 * trusts the socket. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "fleet/clock.h"
#include "fleet/error.h"

typedef struct ctl_ctx {
  fl_agent *a;
  int fd;
  const atomic_bool *stopping;
  char *err;
  size_t errcap;
  int wait_s; /* --wait SECONDS, 0 without */
} ctl_ctx;

typedef struct ctl_command {
  const char *name;
  int min_args, max_args; /* after the command name */
  bool waits;             /* accepts --wait */
  ctl_status (*run)(ctl_ctx *c, char **args, int n);
  const char *usage;
} ctl_command;

static const char *const status_tokens[] = {
    [CTL_OK] = NULL,          [CTL_FAILED] = "failed",   [CTL_USAGE] = "usage",
    [CTL_TIMEOUT] = "timeout", [CTL_REFUSED] = "refused", [CTL_BUSY] = "busy",
};

const char *ctl_status_token(ctl_status s) {
  return s > CTL_OK && s <= CTL_BUSY ? status_tokens[s] : NULL;
}

ctl_status ctl_status_from_token(const char *token) {
  for (int s = CTL_FAILED; s <= CTL_BUSY; s++)
    if (token && strcmp(token, status_tokens[s]) == 0) return (ctl_status)s;
  return CTL_FAILED;
}

__attribute__((format(printf, 2, 3))) static void reply(ctl_ctx *c, const char *fmt, ...) {
  char line[CTL_LINE_MAX];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2;
  line[n++] = '\n';
  for (ssize_t off = 0, w; off < n; off += w) {
    w = write(c->fd, line + off, (size_t)(n - off));
    if (w <= 0) return;
  }
}

__attribute__((format(printf, 3, 4))) static ctl_status fail(ctl_ctx *c, ctl_status s,
                                                             const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, c->errcap, fmt, ap);
  va_end(ap);
  return s;
}

/* Parses a whole number in [min, max]. */
static bool parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < min || v > max) return false;
  *out = v;
  return true;
}

static bool parse_double(const char *s, double min, double max, double *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v) || v < min || v > max) return false;
  *out = v;
  return true;
}

/* Maps an agent error to the final line. */
static ctl_status agent_failed(ctl_ctx *c, int err, const char *what) {
  if (err == FL_ERR_FULL)
    return fail(c, CTL_FAILED, "%s refused: outbox full (the hub has not acked for a while) or disk full",
                what);
  if (err == FL_ERR_INVALID) return fail(c, CTL_USAGE, "%s: invalid arguments", what);
  return fail(c, CTL_FAILED, "%s: %s", what, fl_strerror(err));
}

static void print_decision(ctl_ctx *c, const agent_decision *d) {
  char extra[512] = "";
  size_t n = 0;
#define EXTRA(cond, ...)                                                              \
  if ((cond) && n < sizeof extra) n += (size_t)snprintf(extra + n, sizeof extra - n, __VA_ARGS__)
  EXTRA(d->charged_cents, " charged=%" PRId64, d->charged_cents);
  EXTRA(d->refunded_cents, " refunded=%" PRId64, d->refunded_cents);
  EXTRA(d->fee_cents, " fee=%" PRId64, d->fee_cents);
  EXTRA(d->due_ms, " due_ms=%" PRId64, d->due_ms);
  EXTRA(d->retry_after_s, " retry_after=%" PRIu32, d->retry_after_s);
  EXTRA(d->reason[0], " reason=%s", d->reason);
#undef EXTRA
  const char *subject = fl_subject_name(d->subject);
  reply(c, "%s %s %s%s", subject ? subject : "request", d->corr, d->state, extra);
}

/* Revision of corr's decision now (0 when unknown). */
static uint64_t decision_rev(ctl_ctx *c, const char *corr) {
  agent_decision d;
  return agent_decision_get(c->a, corr, &d) == FL_OK ? d.rev : 0;
}

/* With --wait: polls until a decision newer than since_rev arrives. */
static ctl_status wait_decision(ctl_ctx *c, const char *corr, uint64_t since_rev) {
  if (c->wait_s <= 0) return CTL_OK;
  int64_t deadline = fl_mono_us() + (int64_t)c->wait_s * 1000000;
  for (;;) {
    agent_decision d;
    if (agent_decision_get(c->a, corr, &d) == FL_OK && d.rev > since_rev) {
      print_decision(c, &d);
      return CTL_OK;
    }
    if (atomic_load(c->stopping)) return fail(c, CTL_FAILED, "agent is stopping");
    if (fl_mono_us() >= deadline)
      return fail(c, CTL_TIMEOUT, "no decision for %s within %d s (still queued)", corr,
                  c->wait_s);
    fl_sleep_ms(100);
  }
}

static ctl_status cmd_status(ctl_ctx *c, char **args, int n) {
  agent_status st;
  agent_get_status(c->a, &st);
  reply(c, "id %s", agent_id(c->a));
  reply(c, "connected %s", st.connected ? "yes" : "no");
  reply(c, "synced %s", st.synced ? "yes" : "no");
  reply(c, "boot %" PRIu64, st.boot);
  reply(c, "next_seq %" PRIu64, st.next_seq);
  reply(c, "last_ack %" PRIu64, st.last_ack);
  reply(c, "backlog %" PRIu64, st.backlog);
  reply(c, "applied %" PRIu64, st.applied);
  reply(c, "inflight %" PRIu64, st.inflight);
  reply(c, "telemetry_queued %" PRIu64, st.telemetry_queued);
  reply(c, "telemetry_dropped %" PRIu64, st.telemetry_dropped);
  reply(c, "locked %s", st.locked ? "yes" : "no");
  return CTL_OK;
}

static ctl_status cmd_rent(ctl_ctx *c, char **args, int n) {
  int64_t minutes;
  if (!parse_i64(args[2], 1, 43200, &minutes))
    return fail(c, CTL_USAGE, "MINUTES must be 1..43200");
  const char *given = n > 3 ? args[3] : NULL;
  uint64_t rev = given ? decision_rev(c, given) : 0;
  char id[FL_ID_MAX + 1];
  int err = agent_rent(c->a, args[0], args[1], (uint32_t)minutes, given, id, sizeof id);
  if (err != FL_OK) return agent_failed(c, err, "rent");
  reply(c, "rental %s queued", id);
  return wait_decision(c, id, rev);
}

/* cancel and return: one rental id, an optional --wait. */
static ctl_status rental_followup(ctl_ctx *c, const char *rental, bool cancel) {
  uint64_t rev = decision_rev(c, rental);
  int err = cancel ? agent_cancel(c->a, rental, NULL) : agent_return(c->a, rental, NULL, 0);
  if (err != FL_OK) return agent_failed(c, err, cancel ? "cancel" : "return");
  reply(c, "%s %s queued", cancel ? "cancel" : "return", rental);
  return wait_decision(c, rental, rev);
}

static ctl_status cmd_cancel(ctl_ctx *c, char **args, int n) {
  return rental_followup(c, args[0], true);
}

static ctl_status cmd_return(ctl_ctx *c, char **args, int n) {
  return rental_followup(c, args[0], false);
}

static ctl_status cmd_book(ctl_ctx *c, char **args, int n) {
  int64_t start, end;
  if (!parse_i64(args[2], 0, INT64_MAX, &start) || !parse_i64(args[3], 0, INT64_MAX, &end) ||
      end <= start)
    return fail(c, CTL_USAGE, "START_MS and END_MS must be times in ms with START < END");
  const char *given = n > 4 ? args[4] : NULL;
  uint64_t rev = given ? decision_rev(c, given) : 0;
  char id[FL_ID_MAX + 1];
  int err = agent_book(c->a, args[0], args[1], start, end, given, id, sizeof id);
  if (err != FL_OK) return agent_failed(c, err, "book");
  reply(c, "booking %s queued", id);
  return wait_decision(c, id, rev);
}

static ctl_status cmd_unbook(ctl_ctx *c, char **args, int n) {
  uint64_t rev = decision_rev(c, args[0]);
  int err = agent_unbook(c->a, args[0], NULL);
  if (err != FL_OK) return agent_failed(c, err, "unbook");
  reply(c, "unbook %s queued", args[0]);
  return wait_decision(c, args[0], rev);
}

static ctl_status cmd_decision(ctl_ctx *c, char **args, int n) {
  agent_decision d;
  int err = agent_decision_get(c->a, args[0], &d);
  if (err == FL_ERR_NOT_FOUND) return fail(c, CTL_FAILED, "no request %s known here", args[0]);
  if (err != FL_OK) return agent_failed(c, err, "decision");
  print_decision(c, &d);
  return CTL_OK;
}

static ctl_status cmd_fault(ctl_ctx *c, char **args, int n) {
  char codes[CTL_LINE_MAX];
  const char *dtcs[FL_MAX_DTCS];
  size_t n_dtcs = 0;
  snprintf(codes, sizeof codes, "%s", args[0]);
  char *save = NULL;
  for (char *t = strtok_r(codes, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (n_dtcs == FL_MAX_DTCS) return fail(c, CTL_USAGE, "at most %d codes", FL_MAX_DTCS);
    dtcs[n_dtcs++] = t;
  }
  fl_severity sev = fl_severity_from_name(args[1]);
  if (sev == FL_SEV_NONE) return fail(c, CTL_USAGE, "SEVERITY must be info, warning or critical");
  uint64_t seq = 0;
  int err = agent_fault(c->a, dtcs, n_dtcs, sev, n > 2 ? args[2] : NULL, &seq);
  if (err != FL_OK) return agent_failed(c, err, "fault");
  reply(c, "fault queued seq=%" PRIu64, seq);
  return CTL_OK;
}

static ctl_status cmd_telemetry(ctl_ctx *c, char **args, int n) {
  int64_t odo, energy;
  double lat, lon;
  if (!parse_i64(args[0], 0, INT64_MAX, &odo) || !parse_i64(args[1], 0, 100, &energy) ||
      !parse_double(args[2], -90, 90, &lat) || !parse_double(args[3], -180, 180, &lon))
    return fail(c, CTL_USAGE, "telemetry ODO_M ENERGY(0-100) LAT LON");
  int err = agent_telemetry(c->a, (uint64_t)odo, (uint32_t)energy, lat, lon);
  if (err != FL_OK) return agent_failed(c, err, "telemetry");
  reply(c, "telemetry queued");
  return CTL_OK;
}

static ctl_status cmd_unlock(ctl_ctx *c, char **args, int n) {
  agent_unlock_result res;
  int err = agent_unlock(c->a, args[0], agent_now_ms(c->a), &res);
  if (err != FL_OK) return agent_failed(c, err, "unlock (vehicle only)");
  if (!res.allowed)
    return fail(c, CTL_REFUSED, "unlock refused for %s: %s (recorded seq=%" PRIu64 ")", args[0],
                res.reason, res.seq);
  reply(c, "unlocked customer=%s by=%s seq=%" PRIu64, args[0], res.reason, res.seq);
  return CTL_OK;
}

static ctl_status cmd_lock(ctl_ctx *c, char **args, int n) {
  int err = agent_lock(c->a);
  if (err != FL_OK) return agent_failed(c, err, "lock (vehicle only)");
  reply(c, "locked");
  return CTL_OK;
}

static ctl_status cmd_bookings(ctl_ctx *c, char **args, int n) {
  fl_booking list[FL_MAX_BOOKINGS];
  int count = agent_bookings(c->a, list, FL_MAX_BOOKINGS);
  if (count < 0) return agent_failed(c, count, "bookings");
  for (int i = 0; i < count && i < FL_MAX_BOOKINGS; i++)
    reply(c, "booking %s customer=%s start_ms=%" PRId64 " end_ms=%" PRId64, list[i].booking,
          list[i].customer, list[i].start_ms, list[i].end_ms);
  return CTL_OK;
}

static const ctl_command commands[] = {
    {"status", 0, 0, false, cmd_status, "status"},
    {"rent", 3, 4, true, cmd_rent, "rent VEHICLE CUSTOMER MINUTES [RENTAL_ID] [--wait S]"},
    {"cancel", 1, 1, true, cmd_cancel, "cancel RENTAL [--wait S]"},
    {"return", 1, 1, true, cmd_return, "return RENTAL [--wait S]"},
    {"book", 4, 5, true, cmd_book, "book VEHICLE CUSTOMER START_MS END_MS [BOOKING_ID] [--wait S]"},
    {"unbook", 1, 1, true, cmd_unbook, "unbook BOOKING [--wait S]"},
    {"decision", 1, 1, false, cmd_decision, "decision RENTAL"},
    {"fault", 2, 3, false, cmd_fault, "fault DTC[,DTC] SEVERITY [TEXT]"},
    {"telemetry", 4, 4, false, cmd_telemetry, "telemetry ODO_M ENERGY LAT LON"},
    {"unlock", 1, 1, false, cmd_unlock, "unlock CUSTOMER"},
    {"lock", 0, 0, false, cmd_lock, "lock"},
    {"bookings", 0, 0, false, cmd_bookings, "bookings"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* Removes "--wait S" from args; returns false on a bad value. */
static bool take_wait(char **args, int *n, int *wait_s) {
  for (int i = 0; i < *n; i++) {
    if (strcmp(args[i], "--wait") != 0) continue;
    int64_t s;
    if (i + 1 >= *n || !parse_i64(args[i + 1], 1, 3600, &s)) return false;
    *wait_s = (int)s;
    memmove(&args[i], &args[i + 2], (size_t)(*n - i - 2) * sizeof *args);
    *n -= 2;
    return true;
  }
  return true;
}

ctl_status ctl_execute(fl_agent *a, int argc, char **argv, int fd, const atomic_bool *stopping,
                       char *err, size_t errcap) {
  ctl_ctx c = {.a = a, .fd = fd, .stopping = stopping, .err = err, .errcap = errcap};
  if (argc < 1) return fail(&c, CTL_USAGE, "empty request");
  for (size_t i = 0; i < N_COMMANDS; i++) {
    const ctl_command *cmd = &commands[i];
    if (strcmp(argv[0], cmd->name) != 0) continue;
    char **args = argv + 1;
    int n = argc - 1;
    if (!take_wait(args, &n, &c.wait_s) || (c.wait_s && !cmd->waits) || n < cmd->min_args ||
        n > cmd->max_args)
      return fail(&c, CTL_USAGE, "usage: %s", cmd->usage);
    return cmd->run(&c, args, n);
  }
  return fail(&c, CTL_USAGE, "unknown command '%.40s' (status, rent, cancel, return, book, "
                             "decision, fault, telemetry, unlock, lock, bookings)",
              argv[0]);
}
