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
  bool has_from, has_to; /* --from MS, --to MS (available) */
  int64_t from_ms, to_ms;
} ctl_ctx;

typedef struct ctl_command {
  const char *name;
  int min_args, max_args; /* after the command name */
  bool waits;             /* accepts --wait */
  ctl_status (*run)(ctl_ctx *c, char **args, int n);
  const char *usage;
  bool window; /* accepts --from MS --to MS */
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
  if (st.partition >= 0)
    reply(c, "partition %d", st.partition);
  else
    reply(c, "partition legacy");
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

/* ---- kiosk queries: ask, wait for the answer, print it ---------------------- */

#define QUERY_WAIT_S 5       /* --wait default for queries */
#define QUERY_RESEND_MS 2000 /* ask again after this long without an answer */

/* Writes cents as "9.00" / "-0.50" into buf. Returns buf. */
static const char *money(char *buf, size_t cap, int64_t cents) {
  uint64_t u = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
  snprintf(buf, cap, "%s%" PRIu64 ".%02" PRIu64, cents < 0 ? "-" : "", u / 100, u % 100);
  return buf;
}
#define MONEY(cents) money((char[32]){0}, 32, (cents))

static void print_answer(ctl_ctx *c, const fl_answer *ans) {
  for (uint32_t i = 0; i < ans->n_vehicles && i < FL_MAX_ANSWER_VEHICLES; i++) {
    const fl_answer_vehicle *v = &ans->vehicles[i];
    char energy[16] = "";
    if (v->energy_pct) snprintf(energy, sizeof energy, " energy=%" PRIu32 "%%", v->energy_pct);
    reply(c, "vehicle %s%s%s%s station=%s rate=%s/h%s", v->vehicle, v->name[0] ? " \"" : "",
          v->name, v->name[0] ? "\"" : "", v->station[0] ? v->station : "-",
          MONEY(v->rate_cents), energy);
  }
  for (uint32_t i = 0; i < ans->n_rentals && i < FL_MAX_ANSWER_RENTALS; i++) {
    const fl_answer_rental *r = &ans->rentals[i];
    reply(c, "rental %s vehicle=%s %s due_ms=%" PRId64 " charged=%s fee=%s running_fee=%s",
          r->rental, r->vehicle, r->state, r->due_ms, MONEY(r->charged_cents),
          MONEY(r->fee_cents), MONEY(r->running_fee_cents));
  }
  for (uint32_t i = 0; i < ans->n_bookings && i < FL_MAX_ANSWER_BOOKINGS; i++) {
    const fl_answer_booking *b = &ans->bookings[i];
    reply(c, "booking %s vehicle=%s %s start_ms=%" PRId64 " end_ms=%" PRId64 " deposit=%s",
          b->booking, b->vehicle, b->state, b->start_ms, b->end_ms, MONEY(b->deposit_cents));
  }
  if (ans->what == FL_QUERY_CUSTOMER)
    reply(c, "totals charged=%s refunded=%s fees_paid=%s fees_owed=%s",
          MONEY(ans->charged_cents), MONEY(ans->refunded_cents), MONEY(ans->fees_paid_cents),
          MONEY(ans->fees_owed_cents));
  if (ans->what == FL_QUERY_AVAILABLE && ans->n_vehicles == 0) reply(c, "no vehicle available");
  if (ans->more) reply(c, "more not shown");
}

/* Asks q, asking again every QUERY_RESEND_MS, until an answer comes or the
 * wait (--wait, default QUERY_WAIT_S) ends; prints it. */
static ctl_status run_query(ctl_ctx *c, const fl_query *q) {
  char id[FL_ID_MAX + 1];
  int err = agent_query(c->a, q, NULL, id, sizeof id);
  if (err == FL_ERR_UNAVAILABLE)
    return fail(c, CTL_FAILED, "not connected to the broker: ask again later");
  if (err != FL_OK) return agent_failed(c, err, "query (kiosk only)");
  agent_answer *ans = malloc(sizeof *ans);
  if (!ans) return fail(c, CTL_FAILED, "out of memory");
  int wait_s = c->wait_s > 0 ? c->wait_s : QUERY_WAIT_S;
  int64_t now = fl_mono_us(), deadline = now + (int64_t)wait_s * 1000000;
  int64_t resend = now + QUERY_RESEND_MS * 1000;
  ctl_status st;
  for (;;) {
    if (agent_answer_get(c->a, id, ans) == FL_OK) {
      if (!ans->answer.ok) {
        st = fail(c, CTL_REFUSED, "query %s refused: %s", id,
                  ans->answer.reason[0] ? ans->answer.reason : "no reason given");
        break;
      }
      print_answer(c, &ans->answer);
      st = CTL_OK;
      break;
    }
    if (atomic_load(c->stopping)) {
      st = fail(c, CTL_FAILED, "agent is stopping");
      break;
    }
    now = fl_mono_us();
    if (now >= deadline) {
      st = fail(c, CTL_TIMEOUT, "no answer to query %s within %d s", id, wait_s);
      break;
    }
    if (now >= resend) { /* P-QRY-1: no answer, ask again (same id) */
      (void)agent_query(c->a, q, id, NULL, 0);
      resend = now + QUERY_RESEND_MS * 1000;
    }
    fl_sleep_ms(50);
  }
  free(ans);
  return st;
}

static ctl_status cmd_available(ctl_ctx *c, char **args, int n) {
  fl_query q = {.what = FL_QUERY_AVAILABLE};
  if (n > 0 && (!fl_id_valid(args[0]) || strlen(args[0]) >= sizeof q.station))
    return fail(c, CTL_USAGE, "STATION must be an id");
  if (n > 0) snprintf(q.station, sizeof q.station, "%s", args[0]);
  if (c->has_from != c->has_to || (c->has_from && c->to_ms <= c->from_ms))
    return fail(c, CTL_USAGE, "--from MS and --to MS go together, with FROM < TO");
  q.start_ms = c->from_ms;
  q.end_ms = c->to_ms;
  return run_query(c, &q);
}

static ctl_status cmd_customer(ctl_ctx *c, char **args, int n) {
  fl_query q = {.what = FL_QUERY_CUSTOMER};
  if (!fl_id_valid(args[0])) return fail(c, CTL_USAGE, "CUSTOMER must be an id");
  snprintf(q.customer, sizeof q.customer, "%s", args[0]);
  return run_query(c, &q);
}

static const ctl_command commands[] = {
    {"status", 0, 0, false, cmd_status, "status", false},
    {"rent", 3, 4, true, cmd_rent, "rent VEHICLE CUSTOMER MINUTES [RENTAL_ID] [--wait S]", false},
    {"cancel", 1, 1, true, cmd_cancel, "cancel RENTAL [--wait S]", false},
    {"return", 1, 1, true, cmd_return, "return RENTAL [--wait S]", false},
    {"book", 4, 5, true, cmd_book, "book VEHICLE CUSTOMER START_MS END_MS [BOOKING_ID] [--wait S]", false},
    {"unbook", 1, 1, true, cmd_unbook, "unbook BOOKING [--wait S]", false},
    {"decision", 1, 1, false, cmd_decision, "decision RENTAL", false},
    {"fault", 2, 3, false, cmd_fault, "fault DTC[,DTC] SEVERITY [TEXT]", false},
    {"telemetry", 4, 4, false, cmd_telemetry, "telemetry ODO_M ENERGY LAT LON", false},
    {"unlock", 1, 1, false, cmd_unlock, "unlock CUSTOMER", false},
    {"lock", 0, 0, false, cmd_lock, "lock", false},
    {"bookings", 0, 0, false, cmd_bookings, "bookings", false},
    {"available", 0, 1, true, cmd_available, "available [STATION] [--from MS --to MS] [--wait S]",
     true},
    {"customer", 1, 1, true, cmd_customer, "customer CUSTOMER [--wait S]", false},
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

/* Removes "--from MS" and "--to MS" from args; returns false on a bad value. */
static bool take_window(char **args, int *n, ctl_ctx *c) {
  for (int i = 0; i < *n;) {
    bool from = strcmp(args[i], "--from") == 0, to = strcmp(args[i], "--to") == 0;
    if (!from && !to) {
      i++;
      continue;
    }
    int64_t ms;
    if (i + 1 >= *n || !parse_i64(args[i + 1], 1, INT64_MAX, &ms)) return false;
    if (from) c->has_from = true, c->from_ms = ms;
    else c->has_to = true, c->to_ms = ms;
    memmove(&args[i], &args[i + 2], (size_t)(*n - i - 2) * sizeof *args);
    *n -= 2;
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
    if (!take_wait(args, &n, &c.wait_s) || (c.wait_s && !cmd->waits) ||
        (cmd->window && !take_window(args, &n, &c)) || n < cmd->min_args || n > cmd->max_args)
      return fail(&c, CTL_USAGE, "usage: %s", cmd->usage);
    return cmd->run(&c, args, n);
  }
  return fail(&c, CTL_USAGE, "unknown command '%.40s' (status, rent, cancel, return, book, "
                             "decision, fault, telemetry, unlock, lock, bookings, available, customer)",
              argv[0]);
}
