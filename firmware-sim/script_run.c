/* The script executor: runs the steps of a parsed script one after the
 * other on this thread, which also ticks every agent (while it waits, too).
 * Requests return at once; expect lines poll their view until it shows the
 * expected value or their timeout passes. */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "faults.h"
#include "fleet/clock.h"
#include "fleet/db.h"
#include "fleet/error.h"
#include "hubapi.h"
#include "invariants.h"
#include "script.h"
#include "watch.h"

#define POLL_MS 50
#define DEFAULT_TIMEOUT_S 10.0
#define DEFAULT_RATE_CENTS 600

/* A rental or booking the script named with "as NAME". */
struct named {
  const char *name;
  char id[FL_ID_MAX + 1]; /* the id the kiosk chose, the hub's id */
  sim_device *kiosk;      /* the kiosk that asked last: its answer is awaited */
  uint64_t base_rev;      /* the kiosk's decision revision before that request */
};

struct run {
  const sim_script *s;
  const sim_options *o;
  sim_device *devs;
  size_t n_devs;
  struct named *names;
  size_t n_names;
  double timeout_s;
  sim_watch *watch;
  const sim_step *step; /* the step being run, for messages */
  char seen[512];       /* what an expect saw last */
  int64_t t0_us;
};

/* Outcome of a step. */
enum { STEP_OK = 0, STEP_FAILED = 1, STEP_ERROR = 2 };

static double since(const struct run *r) { return (double)(fl_mono_us() - r->t0_us) / 1e6; }

/* Records what a probe saw, for the failure message. */
__attribute__((format(printf, 2, 3))) static void saw(struct run *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->seen, sizeof r->seen, fmt, ap);
  va_end(ap);
}

/* Prints why the current step did not work and returns status. */
__attribute__((format(printf, 3, 4))) static int step_fail(struct run *r, int status,
                                                           const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("FAIL %s:%d: %s\n     ", r->s->path, r->step->line, r->step->text);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  return status;
}

static sim_device *device(struct run *r, const char *id) {
  for (size_t i = 0; i < r->n_devs; i++)
    if (strcmp(r->devs[i].id, id) == 0) return &r->devs[i];
  return NULL;
}

static struct named *named(struct run *r, const char *name) {
  for (size_t i = 0; i < r->n_names; i++)
    if (strcmp(r->names[i].name, name) == 0) return &r->names[i];
  return NULL;
}

/* The hub's id for a script name, or the word itself. */
static const char *resolve(struct run *r, const char *word) {
  struct named *n = named(r, word);
  return n ? n->id : word;
}

/* Ticks every device for ms milliseconds (at least once). */
static void pump(struct run *r, int64_t ms) {
  int64_t end = fl_mono_us() + ms * 1000;
  do {
    int64_t now = fl_mono_us();
    for (size_t i = 0; i < r->n_devs; i++) sim_device_tick(&r->devs[i], now);
    int64_t left = (end - fl_mono_us()) / 1000;
    if (left > 0) fl_sleep_ms(left < POLL_MS ? left : POLL_MS);
  } while (fl_mono_us() < end);
}

static double opt_num(const sim_step *st, const char *key, double fallback) {
  const sim_step_opt *o = sim_step_opt_get(st, key);
  return o ? strtod(o->value, NULL) : fallback;
}

static const char *opt_text(const sim_step *st, const char *key, const char *fallback) {
  const sim_step_opt *o = sim_step_opt_get(st, key);
  return o ? o->value : fallback;
}

/* True when the numeric option key is absent or equals actual. */
static bool num_ok(const sim_step *st, const char *key, double actual) {
  const sim_step_opt *o = sim_step_opt_get(st, key);
  return !o || strtod(o->value, NULL) == actual;
}

/* True when reason=TEXT / reason~TEXT is absent or matches. */
static bool reason_ok(const sim_step *st, const char *reason) {
  const sim_step_opt *o = sim_step_opt_get(st, "reason");
  if (!o) return true;
  return o->match == '~' ? strstr(reason, o->value) != NULL : strcmp(reason, o->value) == 0;
}

/* ---- expectations: each probe returns true when its view shows it ------- */

typedef bool (*probe_fn)(struct run *r, const sim_step *st);

/* Polls probe until it holds or the step's timeout passes. */
static int expect(struct run *r, probe_fn probe) {
  const sim_step *st = r->step;
  int64_t end = fl_mono_us() + (int64_t)(opt_num(st, "within", r->timeout_s) * 1e6);
  r->seen[0] = '\0';
  for (;;) {
    if (probe(r, st)) return STEP_OK;
    if (fl_mono_us() > end) break;
    pump(r, 100);
  }
  return step_fail(r, STEP_FAILED, "not seen within %.1f s; last seen: %s",
                   opt_num(st, "within", r->timeout_s), r->seen[0] ? r->seen : "nothing");
}

static bool probe_decision(struct run *r, const sim_step *st) {
  struct named *n = named(r, st->arg[0]);
  fl_agent *k = sim_device_agent(n->kiosk);
  agent_decision d;
  if (!k) {
    saw(r, "kiosk %s is powered off", n->kiosk->id);
    return false;
  }
  if (agent_decision_get(k, n->id, &d) != FL_OK || !d.decided || d.rev <= n->base_rev) {
    saw(r, "no answer yet from the hub to %s's last request on %s", n->kiosk->id, n->id);
    return false;
  }
  saw(r, "%s ok=%d charged=%" PRId64 " refunded=%" PRId64 " fee=%" PRId64 " reason=\"%s\"",
      d.state, d.ok, d.charged_cents, d.refunded_cents, d.fee_cents, d.reason);
  return strcmp(d.state, st->arg[1]) == 0 && num_ok(st, "ok", d.ok) &&
         num_ok(st, "charged", (double)d.charged_cents) &&
         num_ok(st, "refunded", (double)d.refunded_cents) && num_ok(st, "fee", (double)d.fee_cents) &&
         reason_ok(st, d.reason);
}

/* GETs path into *out; records the failure in seen. */
static bool api_get(struct run *r, const char *path, cJSON **out) {
  int status = sim_hub_call(r->o->hub_url, "GET", path, NULL, out);
  if (status == 200) return true;
  saw(r, "GET %s answered HTTP %d", path, status);
  cJSON_Delete(*out);
  *out = NULL;
  return false;
}

/* GETs the entity at prefix + id; NULL (recorded in seen) when it cannot. */
static cJSON *api_get_entity(struct run *r, const char *prefix, const char *id) {
  char path[200];
  cJSON *j = NULL;
  snprintf(path, sizeof path, "%s%s", prefix, id);
  return api_get(r, path, &j) ? j : NULL;
}

static bool probe_rental(struct run *r, const sim_step *st) {
  cJSON *j = api_get_entity(r, "/v1/rentals/", resolve(r, st->arg[0]));
  if (!j) return false;
  const char *state = sim_json_str(j, "state"), *reason = sim_json_str(j, "reason");
  double charged = sim_json_num(j, "charged_cents"), refunded = sim_json_num(j, "refunded_cents");
  double fee = sim_json_num(j, "fee_cents"), started = sim_json_num(j, "started");
  saw(r, "%s charged=%.0f refunded=%.0f fee=%.0f started=%.0f reason=\"%s\"", state, charged,
      refunded, fee, started, reason);
  bool ok = strcmp(state, st->arg[1]) == 0 && num_ok(st, "charged", charged) &&
            num_ok(st, "refunded", refunded) && num_ok(st, "fee", fee) &&
            num_ok(st, "started", started) && reason_ok(st, reason);
  cJSON_Delete(j);
  return ok;
}

static bool probe_vehicle(struct run *r, const sim_step *st) {
  cJSON *j = api_get_entity(r, "/v1/vehicles/", st->arg[0]);
  if (!j) return false;
  saw(r, "%s (rental \"%s\")", sim_json_str(j, "state"), sim_json_str(j, "rental"));
  bool ok = strcmp(sim_json_str(j, "state"), st->arg[1]) == 0;
  cJSON_Delete(j);
  return ok;
}

/* Returns the newest repair row of vehicle in rows (newest first), or NULL;
 * with state, the newest in that state. */
static const cJSON *repair_of(const cJSON *rows, const char *vehicle, const char *state) {
  const cJSON *row;
  cJSON_ArrayForEach(row, rows)
    if (strcmp(sim_json_str(row, "vehicle"), vehicle) == 0 &&
        (!state || strcmp(sim_json_str(row, "state"), state) == 0))
      return row;
  return NULL;
}

static bool probe_repair(struct run *r, const sim_step *st) {
  cJSON *rows = NULL;
  if (!api_get(r, "/v1/repairs", &rows)) return false;
  const cJSON *row = repair_of(rows, st->arg[0], NULL);
  saw(r, "%s", row ? sim_json_str(row, "state") : "no repair of this vehicle");
  bool ok = row && strcmp(sim_json_str(row, "state"), st->arg[1]) == 0;
  cJSON_Delete(rows);
  return ok;
}

static bool probe_customer(struct run *r, const sim_step *st) {
  cJSON *j = api_get_entity(r, "/v1/customers/", st->arg[0]);
  if (!j) return false;
  double open = cJSON_GetArraySize(cJSON_GetObjectItem(j, "open_rentals"));
  double held = cJSON_GetArraySize(cJSON_GetObjectItem(j, "held_bookings"));
  double fees = sim_json_num(j, "fees_owed_cents");
  saw(r, "open=%.0f bookings=%.0f fees=%.0f", open, held, fees);
  cJSON_Delete(j);
  return num_ok(st, "open", open) && num_ok(st, "bookings", held) && num_ok(st, "fees", fees);
}

static bool probe_notify(struct run *r, const sim_step *st) {
  saw(r, "%u notifications, none %s %s -> %s", sim_watch_count(r->watch), st->arg[0],
      resolve(r, st->arg[1]), st->arg[2]);
  return sim_watch_notified(r->watch, st->arg[0], resolve(r, st->arg[1]), st->arg[2]);
}

static bool probe_state(struct run *r, const sim_step *st) {
  char state[32];
  sim_watch_state(r->watch, st->arg[0], resolve(r, st->arg[1]), state, sizeof state);
  saw(r, "retained state \"%s\"", state);
  return strcmp(state, st->arg[2]) == 0;
}

static bool probe_bookings(struct run *r, const sim_step *st) {
  fl_agent *v = sim_device_agent(device(r, st->arg[0]));
  int n = v ? agent_bookings(v, NULL, 0) : -1;
  saw(r, "%d bookings stored on the vehicle", n);
  return n == atoi(st->arg[1]);
}

static bool probe_clock_flag(struct run *r, const sim_step *st) {
  char path[600];
  snprintf(path, sizeof path, "%s/hub.db", r->o->hub_state_dir);
  sqlite3 *db = NULL;
  sqlite3_stmt *q = NULL;
  long long n = -1;
  if (fl_db_open(path, FL_DB_SYNC_NORMAL, true, &db) == FL_OK &&
      sqlite3_prepare_v2(db, "SELECT count(*) FROM events WHERE device = ?1 AND clock_flag IS NOT NULL",
                         -1, &q, NULL) == SQLITE_OK &&
      sqlite3_bind_text(q, 1, st->arg[0], -1, SQLITE_STATIC) == SQLITE_OK &&
      sqlite3_step(q) == SQLITE_ROW)
    n = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  fl_db_close(db);
  saw(r, "%lld events of %s flagged in %s", n, st->arg[0], path);
  return strcmp(st->arg[1], "none") == 0 ? n == 0 : n > 0;
}

/* ---- requests and actions --------------------------------------------- */

/* The running agent of a device named in the script, or NULL after a message. */
static fl_agent *agent_of(struct run *r, const char *id) {
  sim_device *d = device(r, id);
  fl_agent *a = d ? sim_device_agent(d) : NULL;
  if (!a) step_fail(r, STEP_ERROR, "%s is powered off", id);
  return a;
}

static int agent_result(struct run *r, int rc) {
  return rc == FL_OK ? STEP_OK : step_fail(r, STEP_ERROR, "the agent refused: %s", fl_strerror(rc));
}

/* Remembers NAME for a new request whose id the kiosk chose. */
static void name_request(struct run *r, const char *name, sim_device *kiosk, const char *id) {
  struct named *n = &r->names[r->n_names++];
  n->name = name;
  n->kiosk = kiosk;
  n->base_rev = 0;
  snprintf(n->id, sizeof n->id, "%s", id);
  printf("         %s is %s\n", name, id);
}

/* Points NAME's awaited answer at kiosk's next decision. */
static struct named *follow_request(struct run *r, const char *name, sim_device *kiosk) {
  struct named *n = named(r, name);
  agent_decision d;
  n->kiosk = kiosk;
  n->base_rev = agent_decision_get(sim_device_agent(kiosk), n->id, &d) == FL_OK ? d.rev : 0;
  return n;
}

static int do_rent(struct run *r, const sim_step *st) {
  fl_agent *k = agent_of(r, st->arg[0]);
  if (!k) return STEP_ERROR;
  char id[FL_ID_MAX + 1];
  int rc = agent_rent(k, st->arg[1], st->arg[2], (uint32_t)atoi(st->arg[3]), NULL, id, sizeof id);
  if (rc == FL_OK) name_request(r, st->arg[5], device(r, st->arg[0]), id);
  return agent_result(r, rc);
}

/* skew SECONDS [DEVICE...]: those devices' clocks (all declared ones
 * without a name) off by SECONDS from now on. */
static int do_skew(struct run *r, const sim_step *st) {
  int64_t ms = (int64_t)(strtod(st->arg[0], NULL) * 1000);
  for (size_t i = 0; i < r->n_devs; i++) {
    bool named = st->n_args == 1;
    for (int j = 1; j < st->n_args && !named; j++) named = strcmp(r->devs[i].id, st->arg[j]) == 0;
    if (named) sim_device_skew(&r->devs[i], ms);
  }
  printf("         %s clock%s now off by %s s\n", st->n_args == 1 ? "every device's" : "the named",
         st->n_args == 2 ? " is" : "s are", st->arg[0]);
  return STEP_OK;
}

static int do_book(struct run *r, const sim_step *st) {
  fl_agent *k = agent_of(r, st->arg[0]);
  if (!k) return STEP_ERROR;
  char id[FL_ID_MAX + 1];
  int64_t now = agent_now_ms(k); /* the kiosk's idea of now */
  int rc = agent_book(k, st->arg[1], st->arg[2], now + (int64_t)(strtod(st->arg[3], NULL) * 1000),
                      now + (int64_t)(strtod(st->arg[4], NULL) * 1000), NULL, id, sizeof id);
  if (rc == FL_OK) name_request(r, st->arg[6], device(r, st->arg[0]), id);
  return agent_result(r, rc);
}

/* cancel, return and cancel-booking: a request about a named rental or booking. */
static int do_followup(struct run *r, const sim_step *st) {
  fl_agent *k = agent_of(r, st->arg[0]);
  if (!k) return STEP_ERROR;
  struct named *n = follow_request(r, st->arg[1], device(r, st->arg[0]));
  if (st->op == SIM_OP_CANCEL) return agent_result(r, agent_cancel(k, n->id, "cancelled by the script"));
  if (st->op == SIM_OP_RETURN)
    return agent_result(r, agent_return(k, n->id, st->arg[0], (uint64_t)opt_num(st, "odometer", 0)));
  return agent_result(r, agent_unbook(k, n->id, "cancelled by the script"));
}

static int do_unlock(struct run *r, const sim_step *st) {
  fl_agent *v = agent_of(r, st->arg[0]);
  if (!v) return STEP_ERROR;
  agent_unlock_result res;
  int rc = agent_unlock(v, st->arg[1], agent_now_ms(v), &res);
  if (rc != FL_OK) return agent_result(r, rc);
  printf("         unlock %s (%s)\n", res.allowed ? "allowed" : "refused", res.reason);
  if (st->n_args > 2 && res.allowed != (strcmp(st->arg[2], "allowed") == 0))
    return step_fail(r, STEP_FAILED, "the vehicle %s the unlock: %s",
                     res.allowed ? "allowed" : "refused", res.reason);
  return STEP_OK;
}

static int do_fault(struct run *r, const sim_step *st) {
  fl_agent *v = agent_of(r, st->arg[0]);
  if (!v) return STEP_ERROR;
  char codes[FL_MAX_DTCS * (FL_DTC_MAX + 1)];
  const char *dtc[FL_MAX_DTCS];
  size_t n = 0;
  snprintf(codes, sizeof codes, "%s", st->arg[1]);
  for (char *save = NULL, *c = strtok_r(codes, ",", &save); c && n < FL_MAX_DTCS;
       c = strtok_r(NULL, ",", &save))
    dtc[n++] = c;
  fl_severity sev = fl_severity_from_name(st->n_args > 2 ? st->arg[2] : "warning");
  return agent_result(r, agent_fault(v, dtc, n, sev, "injected by the script", NULL));
}

/* repair-start / repair-complete VEHICLE: waits for the vehicle's ticket in
 * the state the action starts from, then posts the action. */
static int do_repair(struct run *r, const sim_step *st) {
  bool start = st->op == SIM_OP_REPAIR_START;
  const char *from = start ? "REQUESTED" : "IN_PROGRESS";
  int64_t end = fl_mono_us() + (int64_t)(r->timeout_s * 1e6);
  for (;;) {
    cJSON *rows = NULL;
    const cJSON *row = api_get(r, "/v1/repairs", &rows) ? repair_of(rows, st->arg[0], from) : NULL;
    if (row) {
      char path[200];
      cJSON *answer = NULL;
      snprintf(path, sizeof path, "/v1/repairs/%s/%s", sim_json_str(row, "id"),
               start ? "start" : "complete");
      int status = sim_hub_call(r->o->hub_url, "POST", path, "{}", &answer);
      char *text = answer ? cJSON_PrintUnformatted(answer) : NULL;
      cJSON_Delete(answer);
      cJSON_Delete(rows);
      int rc = status == 200 ? STEP_OK
                             : step_fail(r, STEP_FAILED, "POST %s answered %d %s", path, status,
                                         text ? text : "");
      free(text);
      return rc;
    }
    cJSON_Delete(rows);
    if (fl_mono_us() > end)
      return step_fail(r, STEP_FAILED, "no %s repair of %s within %.1f s", from, st->arg[0], r->timeout_s);
    pump(r, 100);
  }
}

static int do_register(struct run *r, const char *vehicle, const sim_step *st) {
  double rate = st ? opt_num(st, "rate", DEFAULT_RATE_CENTS) : DEFAULT_RATE_CENTS;
  int status = sim_hub_post_vehicle(r->o->hub_url, vehicle, st ? opt_text(st, "name", vehicle) : vehicle,
                                    st ? opt_text(st, "station", "main") : "main",
                                    (int64_t)llround(rate));
  int want = st ? (int)opt_num(st, "status", 201) : 201;
  return status == want ? STEP_OK
                        : step_fail(r, STEP_FAILED, "registering %s answered HTTP %d, not %d",
                                    vehicle, status, want);
}

/* True when vehicle id is to be registered by its "vehicles" line: no
 * "register no" and no "register ID" line of its own in the script. */
static bool auto_register(const sim_script *s, const char *id) {
  for (size_t i = 0; i < s->n_steps; i++)
    if (s->steps[i].op == SIM_OP_REGISTER_NO ||
        (s->steps[i].op == SIM_OP_REGISTER && strcmp(s->steps[i].arg[0], id) == 0))
      return false;
  return true;
}

/* Starts the devices of a vehicles or kiosks line and waits until the hub
 * answered their hello. */
static int do_devices(struct run *r, const sim_step *st) {
  bool vehicle = st->op == SIM_OP_VEHICLES;
  size_t first = r->n_devs;
  for (int i = 0; i < st->n_args; i++) {
    sim_device *d = &r->devs[r->n_devs];
    int rc = sim_device_init(d, st->arg[i], vehicle, r->o->state_dir, r->o->broker_uri,
                             (agent_callbacks){0});
    sim_device_topics(d, r->o->topic_family, r->o->partitions);
    if (rc == FL_OK) rc = sim_device_start(d);
    if (rc != FL_OK) return step_fail(r, STEP_ERROR, "%s cannot start: %s", st->arg[i], fl_strerror(rc));
    r->n_devs++;
    if (vehicle && auto_register(r->s, st->arg[i]) && do_register(r, st->arg[i], NULL) != STEP_OK)
      return STEP_ERROR;
  }
  int64_t end = fl_mono_us() + (int64_t)(r->timeout_s * 1e6);
  for (size_t i = first; i < r->n_devs; i++) {
    agent_status s;
    for (agent_get_status(r->devs[i].agent, &s); !s.synced; agent_get_status(r->devs[i].agent, &s)) {
      if (fl_mono_us() > end) return step_fail(r, STEP_ERROR, "%s got no sync from the hub", r->devs[i].id);
      pump(r, POLL_MS);
    }
  }
  return STEP_OK;
}

/* restart hub|broker [term|kill]: runs the command given on the command
 * line while the agents keep ticking, then waits for the hub to answer. */
static int do_restart(struct run *r, const sim_step *st) {
  bool hub = strcmp(st->arg[0], "hub") == 0;
  const char *cmd = hub ? r->o->faults.restart_hub_cmd : r->o->faults.restart_broker_cmd;
  if (!cmd)
    return step_fail(r, STEP_ERROR, "give --restart-%s-cmd to restart the %s", st->arg[0], st->arg[0]);
  sim_command *c = sim_command_start(cmd, st->n_args > 1 ? st->arg[1] : "term");
  if (!c) return step_fail(r, STEP_ERROR, "cannot run %s", cmd);
  while (!sim_command_done(c)) pump(r, POLL_MS);
  int status = sim_command_finish(c);
  if (status != 0) return step_fail(r, STEP_ERROR, "'%s' exited with %d", cmd, status);
  return sim_hub_wait_healthy(r->o->hub_url, 30) ? STEP_OK
                                                 : step_fail(r, STEP_ERROR, "the hub is not healthy again");
}

static int do_invariants(struct run *r) {
  sim_device **devs = calloc(r->n_devs + 1, sizeof *devs);
  if (!devs) return step_fail(r, STEP_ERROR, "out of memory");
  for (size_t i = 0; i < r->n_devs; i++) devs[i] = &r->devs[i];
  sim_check c = {.hub_url = r->o->hub_url, .hub_state_dir = r->o->hub_state_dir,
                 .devices = devs, .n_devices = r->n_devs, .settle_s = 20};
  int bad = sim_check_invariants(&c);
  free(devs);
  return bad ? step_fail(r, STEP_FAILED, "%d invariants violated", bad) : STEP_OK;
}

static int do_device_fault(struct run *r, const sim_step *st) {
  sim_device *d = device(r, st->arg[0]);
  double seconds = st->n_args > 1 ? strtod(st->arg[1], NULL) : 0;
  int rc = FL_OK;
  switch (st->op) {
  case SIM_OP_OFFLINE: rc = sim_device_cut(d, seconds); break;
  case SIM_OP_POWERCUT: rc = sim_device_power_cut(d, seconds); break;
  default: rc = sim_device_restore(d); break;
  }
  return rc == FL_OK ? STEP_OK : step_fail(r, STEP_ERROR, "%s: %s", d->id, fl_strerror(rc));
}

static int run_step(struct run *r, const sim_step *st) {
  switch (st->op) {
  case SIM_OP_VEHICLES:
  case SIM_OP_KIOSKS: return do_devices(r, st);
  case SIM_OP_REGISTER: return do_register(r, st->arg[0], st);
  case SIM_OP_REGISTER_NO: return STEP_OK;
  case SIM_OP_TIMEOUT: r->timeout_s = strtod(st->arg[0], NULL); return STEP_OK;
  case SIM_OP_RENT: return do_rent(r, st);
  case SIM_OP_BOOK: return do_book(r, st);
  case SIM_OP_CANCEL:
  case SIM_OP_RETURN:
  case SIM_OP_CANCEL_BOOKING: return do_followup(r, st);
  case SIM_OP_UNLOCK: return do_unlock(r, st);
  case SIM_OP_LOCK: {
    fl_agent *v = agent_of(r, st->arg[0]);
    return v ? agent_result(r, agent_lock(v)) : STEP_ERROR;
  }
  case SIM_OP_FAULT: return do_fault(r, st);
  case SIM_OP_TELEMETRY: {
    fl_agent *v = agent_of(r, st->arg[0]);
    return v ? agent_result(r, agent_telemetry(v, (uint64_t)opt_num(st, "odometer", 1000),
                                               (uint32_t)opt_num(st, "energy", 80), 48.85, 2.35))
             : STEP_ERROR;
  }
  case SIM_OP_REPAIR_START:
  case SIM_OP_REPAIR_COMPLETE: return do_repair(r, st);
  case SIM_OP_EXPECT_DECISION: return expect(r, probe_decision);
  case SIM_OP_EXPECT_RENTAL: return expect(r, probe_rental);
  case SIM_OP_EXPECT_VEHICLE: return expect(r, probe_vehicle);
  case SIM_OP_EXPECT_REPAIR: return expect(r, probe_repair);
  case SIM_OP_EXPECT_CUSTOMER: return expect(r, probe_customer);
  case SIM_OP_EXPECT_NOTIFY: return expect(r, probe_notify);
  case SIM_OP_EXPECT_STATE: return expect(r, probe_state);
  case SIM_OP_EXPECT_BOOKINGS: return expect(r, probe_bookings);
  case SIM_OP_EXPECT_CLOCK_FLAG:
    return r->o->hub_state_dir ? expect(r, probe_clock_flag)
                               : step_fail(r, STEP_ERROR, "expect clock-flag needs --hub-state DIR");
  case SIM_OP_WAIT: pump(r, (int64_t)(strtod(st->arg[0], NULL) * 1000)); return STEP_OK;
  case SIM_OP_OFFLINE:
  case SIM_OP_ONLINE:
  case SIM_OP_POWERCUT:
  case SIM_OP_POWERON: return do_device_fault(r, st);
  case SIM_OP_SKEW: return do_skew(r, st);
  case SIM_OP_RESTART: return do_restart(r, st);
  case SIM_OP_INVARIANTS: return do_invariants(r);
  }
  return STEP_ERROR;
}

/* Counts the devices the script declares. */
static size_t declared_devices(const sim_script *s) {
  size_t n = 0;
  for (size_t i = 0; i < s->n_steps; i++)
    if (s->steps[i].op == SIM_OP_VEHICLES || s->steps[i].op == SIM_OP_KIOSKS) n += (size_t)s->steps[i].n_args;
  return n;
}

int sim_script_run(const sim_script *s, const sim_options *o) {
  struct run r = {.s = s, .o = o, .timeout_s = DEFAULT_TIMEOUT_S, .t0_us = fl_mono_us()};
  r.devs = calloc(declared_devices(s) + 1, sizeof *r.devs);
  r.names = calloc(s->n_steps + 1, sizeof *r.names);
  int status = STEP_ERROR;
  if (!r.devs || !r.names) {
    fprintf(stderr, "fleet-sim: out of memory\n");
    goto out;
  }
  if (!sim_hub_wait_healthy(o->hub_url, 10)) {
    fprintf(stderr, "fleet-sim: the hub at %s does not answer\n", o->hub_url);
    goto out;
  }
  int rc = sim_watch_open(o->broker_uri, 10000, &r.watch);
  if (rc != FL_OK) {
    fprintf(stderr, "fleet-sim: cannot subscribe at %s: %s\n", o->broker_uri, fl_strerror(rc));
    goto out;
  }
  status = STEP_OK;
  for (size_t i = 0; i < s->n_steps && status == STEP_OK; i++) {
    r.step = &s->steps[i];
    printf("[%6.1fs] %d: %s\n", since(&r), r.step->line, r.step->text);
    fflush(stdout);
    status = run_step(&r, r.step);
  }
  if (status == STEP_OK) {
    static const sim_step final = {.line = 0, .op = SIM_OP_INVARIANTS, .text = "(end) invariants"};
    r.step = &final;
    printf("[%6.1fs] end of script: invariants\n", since(&r));
    status = do_invariants(&r);
  }
  printf("==== %s: %s\n", s->path,
         status == STEP_OK ? "every expectation held" : status == STEP_FAILED ? "FAILED" : "ERROR");
out:
  sim_watch_close(r.watch);
  for (size_t i = 0; r.devs && i < r.n_devs; i++) sim_device_close(&r.devs[i]);
  free(r.devs);
  free(r.names);
  fflush(stdout);
  return status;
}
