/* Unit test of the hub's rules, driven as the engine drives them but with no
 * broker and no process: an in-memory SQLite store, a transaction context per
 * step, and a recording sink that receives what a committed batch lets out
 * (publishes decoded, payment calls). Events go in as CBOR through the uplink
 * (hub/uplink.h), so the device protocol (dedup, gaps, bad input) is under
 * test too. Each scenario is what a kiosk, a vehicle, the provider or the
 * operator does, and what they would see. */
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/topic.h"
#include "hub_config.h"
#include "saga.h"
#include "store.h"
#include "txn.h"
#include "unit.h"
#include "uplink.h"

#define MAX_RECS 256

typedef struct rec {
  char topic[FL_TOPIC_MAX];
  bool retain;
  uint32_t expiry_s;
  fl_msg m;
} rec;

typedef struct fixture {
  hub_config cfg;
  hub_store *st;
  hub_effects *fx;
  strmap tele;
  hub_txn t;
  int64_t now;
  bool breaker_open;
  /* what the last committed step let out */
  rec *recs; /* MAX_RECS */
  size_t n_recs;
  pay_job jobs[32];
  size_t n_jobs;
  uplink_result last;
  char devs[8][FL_ID_MAX + 1]; /* devices seen, and their last event seq */
  uint64_t seq[8];
} fixture;

static int sink_publish(void *ctx, const char *topic, const uint8_t *payload, size_t len,
                        bool retain, const uint8_t *corr, size_t corr_len, uint64_t tag,
                        uint32_t expiry_s) {
  fixture *f = ctx;
  if (f->n_recs == MAX_RECS) return FL_ERR_FULL;
  rec *r = &f->recs[f->n_recs];
  snprintf(r->topic, sizeof r->topic, "%s", topic);
  r->retain = retain;
  r->expiry_s = expiry_s;
  if (fl_msg_decode(payload, len, &r->m, NULL) != FL_OK) {
    fprintf(stderr, "the hub published an undecodable message on %s\n", topic);
    unit_failed++;
    return FL_ERR_MALFORMED;
  }
  f->n_recs++;
  return FL_OK;
}

static void sink_pay(void *ctx, const pay_job *job) {
  fixture *f = ctx;
  if (f->n_jobs < 32) f->jobs[f->n_jobs++] = *job;
}

static bool admit(void *ctx, uint32_t *retry_after_s) {
  fixture *f = ctx;
  if (f->breaker_open) *retry_after_s = 7;
  return !f->breaker_open;
}

/* Opens a transaction for the next step (what was recorded is forgotten). */
static void begin(fixture *f) {
  f->n_recs = f->n_jobs = 0;
  strmap *stations = f->t.stations_changed;
  f->t = (hub_txn){.store = f->st, .fx = f->fx, .cfg = &f->cfg, .now_ms = f->now,
                   .pay_admit = admit, .pay_ctx = f, .telemetry_published = &f->tele,
                   .stations_changed = stations};
  CHECK(hub_store_begin(f->st) == FL_OK);
}

/* Commits the step (as the engine does: what is published once per batch,
 * the outbox written) and records what it let out. */
static void commit(fixture *f) {
  CHECK(domain_batch_end(&f->t) == FL_OK);
  CHECK(hub_store_commit(f->st) == FL_OK);
  hub_effects_sink sink = {.ctx = f, .publish = sink_publish, .pay = sink_pay};
  effects_flush(f->fx, &sink);
}

static void setup(fixture *f) {
  memset(f, 0, sizeof *f);
  f->recs = calloc(MAX_RECS, sizeof *f->recs); /* a decoded message is large: not on the stack */
  if (!f->recs) exit(1);
  char err[256];
  if (hub_config_load(NULL, &f->cfg, err, sizeof err) != FL_OK) {
    fprintf(stderr, "config: %s\n", err);
    exit(1);
  }
  f->cfg.minute_ms = 1000; /* a rental minute lasts 1 s */
  f->cfg.payment_max_attempts = 2;
  f->cfg.booking_deposit_cents = 2000;
  f->now = 1700000000000;
  hub_store_opts o = {.backend = "sqlite", .state_dir = ":memory:"};
  if (hub_store_open(&o, &f->st) != FL_OK || effects_create(1, &f->fx) != FL_OK) {
    fprintf(stderr, "cannot open an in-memory store\n");
    exit(1);
  }
}

static void teardown(fixture *f) {
  free(f->recs);
  effects_destroy(f->fx);
  hub_store_close(f->st);
  strmap_free(&f->tele);
}

/* ---- what devices, the provider and the operator do ------------------------- */

/* The slot of dev in f->devs (taken on first use). */
static int slot_of(fixture *f, const char *dev) {
  int i = 0;
  while (i < 7 && f->devs[i][0] && strcmp(f->devs[i], dev) != 0) i++;
  snprintf(f->devs[i], sizeof f->devs[i], "%s", dev);
  return i;
}

/* Publishes m from dev on channel ch through the uplink, in one step. */
static int send_on(fixture *f, const char *dev, fl_channel ch, fl_msg *m) {
  snprintf(m->env.dev, sizeof m->env.dev, "%s", dev);
  snprintf(m->env.mid, sizeof m->env.mid, "%s-m%llu", dev, (unsigned long long)m->env.seq);
  m->env.boot = 1;
  m->env.time_ms = f->now;
  uint8_t buf[FL_MAX_MSG_BYTES];
  size_t len;
  CHECK(fl_msg_encode(m, buf, sizeof buf, &len) == FL_OK);
  char topic[FL_TOPIC_MAX];
  fl_topic_device(topic, sizeof topic, dev, ch);
  uplink_msg in = {topic, NULL, buf, len};
  begin(f);
  CHECK(hub_store_savepoint(f->st) == FL_OK);
  int rc = uplink_apply(&f->t, &in, &f->last);
  CHECK(hub_store_release(f->st) == FL_OK);
  if (f->last.ack_dev[0]) effects_ack(f->fx, f->last.ack_dev, f->last.ack_seq);
  commit(f);
  return rc;
}

/* Sends the device's next event (seq counted per device). */
static int event(fixture *f, const char *dev, fl_msg *m) {
  m->env.seq = ++f->seq[slot_of(f, dev)];
  return send_on(f, dev, FL_CH_UP_EVT, m);
}

static int rent(fixture *f, const char *kiosk, const char *id, const char *vehicle,
                const char *customer, uint32_t minutes) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_RENTAL_REQUEST);
  snprintf(m.env.corr, sizeof m.env.corr, "%s", id);
  snprintf(m.body.rental_request.vehicle, sizeof m.body.rental_request.vehicle, "%s", vehicle);
  snprintf(m.body.rental_request.customer, sizeof m.body.rental_request.customer, "%s", customer);
  m.body.rental_request.minutes = minutes;
  return event(f, kiosk, &m);
}

static int about(fixture *f, const char *kiosk, fl_msg_type type, const char *id) {
  fl_msg m;
  fl_msg_init(&m, type);
  snprintf(m.env.corr, sizeof m.env.corr, "%s", id);
  return event(f, kiosk, &m);
}

static int book(fixture *f, const char *kiosk, const char *id, const char *vehicle,
                const char *customer, int64_t start, int64_t end) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_BOOKING_REQUEST);
  snprintf(m.env.corr, sizeof m.env.corr, "%s", id);
  fl_booking_request *q = &m.body.booking_request;
  snprintf(q->vehicle, sizeof q->vehicle, "%s", vehicle);
  snprintf(q->customer, sizeof q->customer, "%s", customer);
  q->start_ms = start;
  q->end_ms = end;
  return event(f, kiosk, &m);
}

static int op_with(fixture *f, hub_op *o, hub_op_result *res);

static int op(fixture *f, hub_op_kind kind, const char *id, hub_op_result *res) {
  hub_op o = {.kind = kind, .rate_cents = 600};
  snprintf(o.vehicle, sizeof o.vehicle, "%s", id);
  snprintf(o.repair, sizeof o.repair, "%s", id);
  snprintf(o.rental, sizeof o.rental, "%s", id);
  snprintf(o.booking, sizeof o.booking, "%s", id);
  snprintf(o.name, sizeof o.name, "car %s", id);
  snprintf(o.station, sizeof o.station, "S1");
  snprintf(o.text, sizeof o.text, "scratched door");
  return op_with(f, &o, res);
}

/* Runs operator command o in its own step, as the engine does. */
static int op_with(fixture *f, hub_op *o, hub_op_result *res) {
  begin(f);
  CHECK(hub_store_savepoint(f->st) == FL_OK);
  int rc = domain_op(&f->t, o, res);
  CHECK((rc == FL_OK ? hub_store_release(f->st) : hub_store_rollback_to(f->st)) == FL_OK);
  if (rc != FL_OK) effects_undo(f->fx, (effects_mark){0, 0, 0});
  commit(f);
  return rc;
}

/* The provider answers the step call of owner held from the last step. */
static void provider(fixture *f, const char *owner, const char *step, pay_outcome outcome) {
  pay_result res = {.outcome = outcome};
  bool found = false;
  for (size_t i = 0; i < f->n_jobs; i++)
    if (strcmp(f->jobs[i].owner, owner) == 0 && strcmp(f->jobs[i].step, step) == 0) {
      res.job = f->jobs[i];
      found = true;
    }
  if (!found) {
    fprintf(stderr, "no %s call for %s was made\n", step, owner);
    unit_failed++;
    return;
  }
  res.amount_cents = outcome == PAY_OK ? res.job.amount_cents : 0;
  snprintf(res.ref, sizeof res.ref, "P-%s", res.job.idem_key);
  snprintf(res.reason, sizeof res.reason, "%s", outcome == PAY_DECLINED ? "card declined" : "timeout");
  begin(f);
  CHECK(domain_on_payment(&f->t, &res) == FL_OK);
  commit(f);
}

/* ---- what they see ------------------------------------------------------------------- */

static const fl_msg *published(const fixture *f, fl_msg_type type, const char *corr) {
  for (size_t i = 0; i < f->n_recs; i++)
    if (f->recs[i].m.env.type == type && (!corr || strcmp(f->recs[i].m.env.corr, corr) == 0))
      return &f->recs[i].m;
  return NULL;
}

/* The notification of kind ("rental", "alert", ...) in the last step, or NULL. */
/* The first change of kind the last step published: a notify ([mqtt]
 * notify = each) or, by default, the first change of kind in a batch's
 * notices (rev 1.2), returned as a notify (a slot of a small ring). */
static const fl_notify *notice(const fixture *f, const char *kind) {
  static fl_notify ring[8];
  static size_t next;
  for (size_t i = 0; i < f->n_recs; i++) {
    const fl_msg *m = &f->recs[i].m;
    if (m->env.type == FL_MSG_NOTIFY && strcmp(m->body.notify.kind, kind) == 0)
      return &m->body.notify;
    if (m->env.type == FL_MSG_NOTICES && strcmp(m->body.notices.kind, kind) == 0 &&
        m->body.notices.n_changes > 0) {
      fl_notify *n = &ring[next++ % 8];
      const fl_notice *c = &m->body.notices.changes[0];
      memset(n, 0, sizeof *n);
      snprintf(n->kind, sizeof n->kind, "%s", kind);
      snprintf(n->id, sizeof n->id, "%s", c->id);
      snprintf(n->from, sizeof n->from, "%s", c->from);
      snprintf(n->to, sizeof n->to, "%s", c->to);
      snprintf(n->text, sizeof n->text, "%s", c->text);
      snprintf(n->customer, sizeof n->customer, "%s", c->customer);
      return n;
    }
  }
  return NULL;
}

/* The decision the kiosk got on corr in the last step, or NULL. */
static const fl_decision *decision(const fixture *f, const char *corr) {
  const fl_msg *m = published(f, FL_MSG_DECISION, corr);
  return m ? &m->body.decision : NULL;
}

static bool called(const fixture *f, const char *owner, const char *step) {
  for (size_t i = 0; i < f->n_jobs; i++)
    if (strcmp(f->jobs[i].owner, owner) == 0 && strcmp(f->jobs[i].step, step) == 0) return true;
  return false;
}

static vehicle_state vehicle_now(fixture *f, const char *id) {
  hub_vehicle v;
  return hub_store_vehicle_get(f->st, id, &v) == FL_OK ? v.state : VEHICLE_NEW;
}

static hub_rental rental_now(fixture *f, const char *id) {
  hub_rental r;
  memset(&r, 0, sizeof r);
  CHECK(hub_store_rental_get(f->st, id, &r) == FL_OK);
  return r;
}

static booking_state booking_now(fixture *f, const char *id) {
  hub_booking b;
  return hub_store_booking_get(f->st, id, &b) == FL_OK ? b.state : BOOKING_NEW;
}

/* The device comes online (its hello): decisions and commands reach it. */
static void hello(fixture *f, const char *dev, fl_role role) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_HELLO);
  m.body.hello.role = role;
  m.body.hello.last_seq = f->seq[slot_of(f, dev)];
  CHECK(send_on(f, dev, FL_CH_UP_HELLO, &m) == FL_OK);
}

static void register_vehicle(fixture *f, const char *id) {
  hub_op_result res;
  CHECK(op(f, HUB_OP_VEHICLE_REGISTER, id, &res) == FL_OK);
  CHECK(vehicle_now(f, id) == VEHICLE_AVAILABLE);
  hello(f, id, FL_ROLE_VEHICLE);
  hello(f, "K1", FL_ROLE_KIOSK);
  hello(f, "K2", FL_ROLE_KIOSK);
}

/* ---- scenarios ------------------------------------------------------------------------ */

static void rent_pay_ride_return(void) {
  fixture f;
  setup(&f);
  register_vehicle(&f, "V1");
  CHECK(rent(&f, "K1", "R1", "V1", "C1", 60) == FL_OK);
  CHECK(rental_now(&f, "R1").state == RENTAL_PAYMENT_PENDING);
  CHECK(vehicle_now(&f, "V1") == VEHICLE_RESERVED);
  CHECK(called(&f, "R1", "charge"));
  CHECK(f.jobs[0].amount_cents == 600);           /* 60 minutes at 600 cents an hour */
  CHECK(decision(&f, "R1") == NULL);              /* nothing is promised before the money */
  CHECK(published(&f, FL_MSG_ACK, NULL) != NULL); /* the event itself is acked */
  provider(&f, "R1", "charge", PAY_OK);
  const fl_decision *d = decision(&f, "R1");
  CHECK(d && d->ok && strcmp(d->state, "ACTIVE") == 0 && d->charged_cents == 600);
  CHECK(published(&f, FL_MSG_COMMAND, "R1") != NULL); /* the unlock */
  CHECK(vehicle_now(&f, "V1") == VEHICLE_RENTED);
  CHECK(about(&f, "K1", FL_MSG_RENTAL_RETURN, "R1") == FL_OK);
  d = decision(&f, "R1");
  CHECK(d && d->ok && strcmp(d->state, "COMPLETED") == 0 && d->fee_cents == 0);
  CHECK(vehicle_now(&f, "V1") == VEHICLE_AVAILABLE);
  /* the retained state of an ended rental expires at the broker; a vehicle's does not */
  for (size_t i = 0; i < f.n_recs; i++) {
    if (f.recs[i].m.env.type == FL_MSG_RENTAL_STATE) CHECK(f.recs[i].expiry_s == 86400);
    if (f.recs[i].m.env.type == FL_MSG_VEHICLE_STATE) CHECK(f.recs[i].expiry_s == 0);
  }
  /* the kiosk asks again: the same answer, nothing changes */
  CHECK(about(&f, "K1", FL_MSG_RENTAL_RETURN, "R1") == FL_OK);
  d = decision(&f, "R1");
  CHECK(d && strcmp(d->state, "COMPLETED") == 0);
  teardown(&f);
}

static void refusals_at_request(void) {
  fixture f;
  setup(&f);
  register_vehicle(&f, "V1");
  rent(&f, "K1", "R0", "V9", "C1", 10); /* unknown vehicle */
  const fl_decision *d = decision(&f, "R0");
  CHECK(d && !d->ok && strcmp(d->state, "REJECTED") == 0 && strstr(d->reason, "no vehicle V9"));
  f.breaker_open = true;
  rent(&f, "K1", "R1", "V1", "C1", 10);
  d = decision(&f, "R1");
  CHECK(d && !d->ok && d->retry_after_s == 7 && strstr(d->reason, "payment unavailable"));
  CHECK(vehicle_now(&f, "V1") == VEHICLE_AVAILABLE);
  f.breaker_open = false;
  rent(&f, "K1", "R2", "V1", "C1", 10);
  rent(&f, "K2", "R3", "V1", "C2", 10); /* V1 is reserved for R2 */
  d = decision(&f, "R3");
  CHECK(d && !d->ok && strstr(d->reason, "not available (RESERVED)"));
  CHECK(rental_now(&f, "R2").state == RENTAL_PAYMENT_PENDING);
  teardown(&f);
}

static void declined_and_failed_charges(void) {
  fixture f;
  setup(&f);
  register_vehicle(&f, "V1");
  rent(&f, "K1", "R1", "V1", "C1", 30);
  provider(&f, "R1", "charge", PAY_DECLINED);
  const fl_decision *d = decision(&f, "R1");
  CHECK(d && !d->ok && strcmp(d->state, "REJECTED") == 0 && strstr(d->reason, "declined"));
  CHECK(vehicle_now(&f, "V1") == VEHICLE_AVAILABLE);
  CHECK(f.n_jobs == 0); /* nothing to void after a decline */

  rent(&f, "K1", "R2", "V1", "C1", 30);
  provider(&f, "R2", "charge", PAY_FAILED); /* attempt 1 of 2: retried later */
  hub_step s;
  CHECK(hub_store_step_get(f.st, "R2", STEP_CHARGE, &s) == FL_OK && s.status == STEP_RETRY);
  CHECK(rental_now(&f, "R2").state == RENTAL_PAYMENT_PENDING);
  f.now = s.next_try_ms; /* its time comes */
  begin(&f);
  CHECK(domain_resume(&f.t, STEP_RETRY) == FL_OK);
  commit(&f);
  CHECK(called(&f, "R2", "charge"));
  CHECK(strcmp(f.jobs[0].idem_key, "R2:charge") == 0); /* the same key: the provider dedups */
  provider(&f, "R2", "charge", PAY_FAILED); /* attempt 2 of 2: given up */
  d = decision(&f, "R2");
  CHECK(d && !d->ok && strstr(d->reason, "payment failed"));
  CHECK(called(&f, "R2", "refund")); /* a failed call may have moved money: voided */
  CHECK(vehicle_now(&f, "V1") == VEHICLE_AVAILABLE);
  /* a late duplicate of the first answer changes nothing */
  pay_result late = {.outcome = PAY_OK, .amount_cents = 500};
  snprintf(late.job.owner, sizeof late.job.owner, "R2");
  snprintf(late.job.step, sizeof late.job.step, "charge");
  begin(&f);
  CHECK(domain_on_payment(&f.t, &late) == FL_OK);
  commit(&f);
  CHECK(f.n_recs == 0 && rental_now(&f, "R2").state == RENTAL_REJECTED);
  teardown(&f);
}

static void cancel_before_and_after_start(void) {
  fixture f;
  setup(&f);
  register_vehicle(&f, "V1");
  register_vehicle(&f, "V2");
  rent(&f, "K1", "R1", "V1", "C1", 30);
  provider(&f, "R1", "charge", PAY_OK);
  about(&f, "K1", FL_MSG_RENTAL_CANCEL, "R1");
  CHECK(rental_now(&f, "R1").state == RENTAL_CANCEL_REQUESTED);
  CHECK(called(&f, "R1", "refund"));
  CHECK(published(&f, FL_MSG_COMMAND, "R1") != NULL); /* the lock */
  /* the kiosk is answered at once and the car is free, before the money is back */
  const fl_decision *pending = decision(&f, "R1");
  CHECK(pending && pending->ok && strcmp(pending->state, "CANCEL_REQUESTED") == 0 &&
        strstr(pending->reason, "refund pending"));
  CHECK(vehicle_now(&f, "V1") == VEHICLE_AVAILABLE);
  /* payments are down: the refund waits for its retry; the next customer rents V1 meanwhile */
  provider(&f, "R1", "refund", PAY_FAILED);
  CHECK(rental_now(&f, "R1").state == RENTAL_CANCEL_REQUESTED);
  rent(&f, "K2", "R9", "V1", "C9", 30);
  CHECK(rental_now(&f, "R9").state == RENTAL_PAYMENT_PENDING && vehicle_now(&f, "V1") == VEHICLE_RESERVED);
  hub_op_result res;
  CHECK(op(&f, HUB_OP_SAGA_RETRY, "R1", &res) == FL_OK); /* payments are back */
  provider(&f, "R1", "refund", PAY_OK);
  const fl_decision *d = decision(&f, "R1");
  CHECK(d && d->ok && strcmp(d->state, "CANCELLED") == 0 && d->refunded_cents == 300);
  CHECK(vehicle_now(&f, "V1") == VEHICLE_RESERVED); /* still R9's */

  rent(&f, "K1", "R2", "V2", "C2", 30);
  provider(&f, "R2", "charge", PAY_OK);
  fl_msg m;
  fl_msg_init(&m, FL_MSG_LOCK); /* the customer unlocked V2: the rental has started */
  m.body.lock.locked = false;
  snprintf(m.env.corr, sizeof m.env.corr, "R2");
  CHECK(event(&f, "V2", &m) == FL_OK);
  about(&f, "K1", FL_MSG_RENTAL_CANCEL, "R2");
  d = decision(&f, "R2");
  CHECK(d && !d->ok && strstr(d->reason, "return the vehicle instead"));
  CHECK(rental_now(&f, "R2").state == RENTAL_ACTIVE);
  teardown(&f);
}

static void late_return_pays_a_fee(void) {
  fixture f;
  setup(&f);
  f.cfg.fee_tier_hours[0] = 1;
  f.cfg.fee_tier_cents[0] = 1500;
  f.cfg.n_fee_tiers = 1;
  register_vehicle(&f, "V1");
  rent(&f, "K1", "R1", "V1", "C1", 2);
  provider(&f, "R1", "charge", PAY_OK);
  f.now += 10 * 1000; /* due after 2 s, back after 10 */
  about(&f, "K1", FL_MSG_RENTAL_RETURN, "R1");
  hub_rental r = rental_now(&f, "R1");
  CHECK(r.state == RENTAL_RETURNED && r.fee_cents == 1500);
  CHECK(vehicle_now(&f, "V1") == VEHICLE_AVAILABLE); /* the car is free while the fee is charged */
  CHECK(called(&f, "R1", "fee"));
  provider(&f, "R1", "fee", PAY_OK);
  const fl_decision *d = decision(&f, "R1");
  CHECK(d && strcmp(d->state, "COMPLETED") == 0 && d->fee_cents == 1500 && d->charged_cents == 1500 + 20);
  teardown(&f);
}

static void bookings(void) {
  fixture f;
  setup(&f);
  register_vehicle(&f, "V1");
  int64_t h = 3600 * 1000;
  book(&f, "K1", "B1", "V1", "C1", f.now + h, f.now + 2 * h);
  CHECK(booking_now(&f, "B1") == BOOKING_PAYMENT_PENDING && called(&f, "B1", "deposit"));
  provider(&f, "B1", "deposit", PAY_OK);
  const fl_decision *d = decision(&f, "B1");
  CHECK(d && d->ok && strcmp(d->state, "HELD") == 0 && d->charged_cents == 2000);
  const fl_msg *list = published(&f, FL_MSG_COMMAND, NULL);
  CHECK(list && list->body.command.action == FL_ACT_BOOKINGS && list->body.command.n_bookings == 1);
  /* another customer's overlapping window is refused at once */
  book(&f, "K2", "B2", "V1", "C2", f.now + h + h / 2, f.now + 3 * h);
  d = decision(&f, "B2");
  CHECK(d && !d->ok && strstr(d->reason, "is booked from"));
  CHECK(booking_now(&f, "B2") == BOOKING_REJECTED);
  /* a rental by someone else that would run into the booking is refused */
  rent(&f, "K2", "R1", "V1", "C2", 90 * 60);
  d = decision(&f, "R1");
  CHECK(d && !d->ok && strstr(d->reason, "booked"));
  /* the booked customer cancels: refunded */
  about(&f, "K1", FL_MSG_BOOKING_CANCEL, "B1");
  CHECK(booking_now(&f, "B1") == BOOKING_CANCELLED && called(&f, "B1", "refund"));
  provider(&f, "B1", "refund", PAY_OK);
  d = decision(&f, "B1");
  CHECK(d && d->ok && strcmp(d->state, "CANCELLED") == 0 && d->refunded_cents == 2000);
  /* a cancelled booking cannot be cancelled into anything else */
  about(&f, "K1", FL_MSG_BOOKING_CANCEL, "B9");
  d = decision(&f, "B9");
  CHECK(d && !d->ok && strcmp(d->state, "UNKNOWN") == 0);
  teardown(&f);
}

static void booking_used_by_its_rental(void) {
  fixture f;
  setup(&f);
  register_vehicle(&f, "V1");
  book(&f, "K1", "B1", "V1", "C1", f.now - 1000, f.now + 3600 * 1000);
  provider(&f, "B1", "deposit", PAY_OK);
  rent(&f, "K1", "R1", "V1", "C1", 30); /* the booked customer, inside the window */
  provider(&f, "R1", "charge", PAY_OK);
  CHECK(rental_now(&f, "R1").state == RENTAL_ACTIVE);
  CHECK(booking_now(&f, "B1") == BOOKING_USED);
  teardown(&f);
}

static void repairs(void) {
  fixture f;
  setup(&f);
  register_vehicle(&f, "V1");
  fl_msg m;
  fl_msg_init(&m, FL_MSG_FAULT);
  m.body.fault.n_dtcs = 1;
  snprintf(m.body.fault.dtcs[0], sizeof m.body.fault.dtcs[0], "P0300");
  m.body.fault.severity = FL_SEV_CRITICAL;
  CHECK(event(&f, "V1", &m) == FL_OK);
  CHECK(vehicle_now(&f, "V1") == VEHICLE_REPAIR_REQUESTED);
  hub_repair r;
  CHECK(hub_store_repair_open_for(f.st, "V1", &r) == FL_OK && r.state == REPAIR_REQUESTED);
  rent(&f, "K1", "R1", "V1", "C1", 10);
  CHECK(decision(&f, "R1") && !decision(&f, "R1")->ok); /* not while it waits for repair */
  hub_op_result res;
  CHECK(op(&f, HUB_OP_REPAIR_COMPLETE, r.id, &res) == FL_ERR_STATE); /* not started yet */
  CHECK(strstr(res.message, "not IN_PROGRESS") != NULL);
  CHECK(op(&f, HUB_OP_REPAIR_START, r.id, &res) == FL_OK);
  CHECK(vehicle_now(&f, "V1") == VEHICLE_IN_REPAIR);
  CHECK(op(&f, HUB_OP_REPAIR_START, r.id, &res) == FL_ERR_STATE); /* started once */
  CHECK(op(&f, HUB_OP_REPAIR_COMPLETE, r.id, &res) == FL_OK);
  CHECK(vehicle_now(&f, "V1") == VEHICLE_AVAILABLE);
  CHECK(op(&f, HUB_OP_REPAIR_START, "RP-404", &res) == FL_ERR_NOT_FOUND);
  /* a fault while rented: an alert, and the repair waits for the return */
  rent(&f, "K1", "R2", "V1", "C1", 10);
  provider(&f, "R2", "charge", PAY_OK);
  CHECK(event(&f, "V1", &m) == FL_OK);
  const fl_notify *alert = notice(&f, "alert");
  CHECK(alert && strcmp(alert->to, "fault_while_rented") == 0);
  CHECK(notice(&f, "repair") && strcmp(notice(&f, "repair")->to, "REQUESTED") == 0);
  CHECK(vehicle_now(&f, "V1") == VEHICLE_RENTED);
  CHECK(op(&f, HUB_OP_VEHICLE_RETIRE, "V1", &res) == FL_ERR_STATE); /* not while rented */
  about(&f, "K1", FL_MSG_RENTAL_RETURN, "R2");
  CHECK(vehicle_now(&f, "V1") == VEHICLE_REPAIR_REQUESTED);
  CHECK(op(&f, HUB_OP_VEHICLE_RETIRE, "V1", &res) == FL_OK);
  CHECK(vehicle_now(&f, "V1") == VEHICLE_RETIRED);
  teardown(&f);
}

static void operator_saga_commands(void) {
  fixture f;
  setup(&f);
  f.cfg.payment_max_attempts = 1;
  register_vehicle(&f, "V1");
  hub_op_result res;
  rent(&f, "K1", "R1", "V1", "C1", 30);
  provider(&f, "R1", "charge", PAY_OK);
  CHECK(op(&f, HUB_OP_SAGA_RETRY, "R1", &res) == FL_ERR_STATE); /* nothing waits */
  CHECK(op(&f, HUB_OP_SAGA_RETRY, "NOPE", &res) == FL_ERR_NOT_FOUND);
  CHECK(op(&f, HUB_OP_SAGA_COMPENSATE, "R1", &res) == FL_OK);
  CHECK(rental_now(&f, "R1").state == RENTAL_CANCEL_REQUESTED && called(&f, "R1", "refund"));
  provider(&f, "R1", "refund", PAY_FAILED); /* a refund never gives up */
  hub_step s;
  CHECK(hub_store_step_get(f.st, "R1", STEP_REFUND, &s) == FL_OK && s.status == STEP_RETRY);
  CHECK(op(&f, HUB_OP_SAGA_RETRY, "R1", &res) == FL_OK && called(&f, "R1", "refund"));
  provider(&f, "R1", "refund", PAY_OK);
  CHECK(rental_now(&f, "R1").state == RENTAL_CANCELLED);
  CHECK(op(&f, HUB_OP_SAGA_COMPENSATE, "R1", &res) == FL_ERR_STATE);
  /* after a restart every step left "calling" is called again */
  rent(&f, "K1", "R2", "V1", "C1", 30);
  CHECK(called(&f, "R2", "charge"));
  begin(&f);
  CHECK(domain_resume(&f.t, STEP_CALLING) == FL_OK);
  commit(&f);
  CHECK(f.n_jobs == 1 && called(&f, "R2", "charge"));
  teardown(&f);
}

static void device_protocol(void) {
  fixture f;
  setup(&f);
  register_vehicle(&f, "V1");
  fl_msg m;
  fl_msg_init(&m, FL_MSG_TELEMETRY);
  m.body.telemetry.energy_pct = 80;
  CHECK(event(&f, "V1", &m) == FL_OK);
  CHECK(f.last.outcome == UPLINK_APPLIED);
  CHECK(published(&f, FL_MSG_ACK, NULL)->body.ack.upto == 1);
  /* the same seq again: acked again, applied once */
  CHECK(send_on(&f, "V1", FL_CH_UP_EVT, &m) == FL_OK);
  CHECK(f.last.outcome == UPLINK_DUPLICATE);
  CHECK(published(&f, FL_MSG_ACK, NULL)->body.ack.upto == 1);
  /* seq 3 before 2: a gap, answered with one sync, nothing applied */
  m.env.seq = 3;
  CHECK(send_on(&f, "V1", FL_CH_UP_EVT, &m) == FL_OK);
  CHECK(f.last.outcome == UPLINK_GAP);
  const fl_msg *sync = published(&f, FL_MSG_SYNC, NULL);
  CHECK(sync && sync->body.sync.acked == 1 && sync->body.sync.next_seq == 2);
  CHECK(published(&f, FL_MSG_ACK, NULL) == NULL);
  /* a hello is answered with a sync */
  fl_msg hello;
  fl_msg_init(&hello, FL_MSG_HELLO);
  hello.body.hello.role = FL_ROLE_VEHICLE;
  CHECK(send_on(&f, "V1", FL_CH_UP_HELLO, &hello) == FL_OK);
  CHECK(published(&f, FL_MSG_SYNC, NULL) != NULL);
  /* a hello on the event channel, and an envelope naming another device:
   * rejected and kept for the operator */
  hello.env.seq = 2;
  CHECK(send_on(&f, "V1", FL_CH_UP_EVT, &hello) == FL_OK);
  CHECK(f.last.outcome == UPLINK_REJECTED);
  uint8_t junk[] = {0xa1, 0x61, 0x76};
  uplink_msg bad = {"fleet/v1/dev/V1/up/evt", NULL, junk, sizeof junk};
  begin(&f);
  CHECK(uplink_apply(&f.t, &bad, &f.last) == FL_OK && f.last.outcome == UPLINK_REJECTED);
  commit(&f);
  uint64_t n = 0;
  char where[200];
  CHECK(hub_store_readmodel_check(f.st, &n, where, sizeof where) == FL_OK && n == 0);
  /* presence: the vehicle's retained state says whether its agent is connected */
  fl_msg will;
  fl_msg_init(&will, FL_MSG_OFFLINE);
  CHECK(send_on(&f, "V1", FL_CH_UP_WILL, &will) == FL_OK);
  const fl_msg *vs = published(&f, FL_MSG_VEHICLE_STATE, NULL);
  CHECK(vs && !vs->body.vehicle_state.online && strcmp(vs->body.vehicle_state.state, "AVAILABLE") == 0);
  CHECK(notice(&f, "vehicle") == NULL); /* not a change of the vehicle's state */
  hello.env.seq = 0;
  CHECK(send_on(&f, "V1", FL_CH_UP_HELLO, &hello) == FL_OK);
  vs = published(&f, FL_MSG_VEHICLE_STATE, NULL);
  CHECK(vs && vs->body.vehicle_state.online);
  teardown(&f);
}

static void state_published_once_per_batch(void) {
  fixture f;
  setup(&f);
  register_vehicle(&f, "V1");
  /* one batch: the vehicle is reserved and then rented: one retained state, the last */
  begin(&f);
  hub_vehicle v;
  CHECK(hub_store_vehicle_get(f.st, "V1", &v) == FL_OK);
  v.state = VEHICLE_RESERVED;
  CHECK(hub_store_vehicle_put(f.st, &v) == FL_OK);
  fl_msg m;
  for (int i = 0; i < 2; i++) {
    fl_msg_init(&m, FL_MSG_VEHICLE_STATE);
    snprintf(m.body.vehicle_state.vehicle, sizeof m.body.vehicle_state.vehicle, "V1");
    snprintf(m.body.vehicle_state.state, sizeof m.body.vehicle_state.state, "%s",
             i ? "RENTED" : "RESERVED");
    CHECK(effects_state(f.fx, "fleet/v1/state/vehicle/V1", &m, 0) == FL_OK);
  }
  effects_mark mark = effects_mark_now(f.fx);
  CHECK(effects_publish(f.fx, "fleet/v1/notify/x", (const uint8_t *)"x", 1, false, NULL, 0) == FL_OK);
  effects_undo(f.fx, mark); /* an input rolled back takes its publishes with it */
  commit(&f);
  size_t states = 0;
  for (size_t i = 0; i < f.n_recs; i++)
    if (f.recs[i].retain) {
      states++;
      CHECK(strcmp(f.recs[i].m.body.vehicle_state.state, "RENTED") == 0);
    }
  CHECK(states == 1 && f.n_recs == 1);
  teardown(&f);
}

/* Runs what time brings at f->now (the engine does it every half second). */
static void tick(fixture *f) {
  begin(f);
  CHECK(domain_tick(&f->t) == FL_OK);
  commit(f);
}

static void bookings_follow_the_fleet(void) {
  fixture f;
  setup(&f);
  register_vehicle(&f, "V1"); /* all at S1, 600 an hour */
  register_vehicle(&f, "V2");
  register_vehicle(&f, "V3");
  hub_op_result res;
  hub_op edit = {.kind = HUB_OP_VEHICLE_EDIT, .fields = HUB_OP_FIELD_STATION | HUB_OP_FIELD_RATE,
                 .rate_cents = 900};
  snprintf(edit.vehicle, sizeof edit.vehicle, "V3");
  snprintf(edit.station, sizeof edit.station, "S2");
  CHECK(op_with(&f, &edit, &res) == FL_OK); /* V3 moves to S2 and costs 9.00 */
  hub_vehicle v3;
  CHECK(hub_store_vehicle_get(f.st, "V3", &v3) == FL_OK && strcmp(v3.station, "S2") == 0 &&
        v3.rate_cents == 900 && strcmp(v3.name, "car V3") == 0);
  int64_t h = 3600 * 1000;
  book(&f, "K1", "B1", "V1", "C1", f.now + h, f.now + 2 * h);
  provider(&f, "B1", "deposit", PAY_OK);
  book(&f, "K1", "B2", "V2", "C2", f.now + h, f.now + 2 * h);
  provider(&f, "B2", "deposit", PAY_OK);
  /* the operator reports damage on V1: a ticket, V1 out of service, B1 moves to a free car of S1 */
  CHECK(op(&f, HUB_OP_REPAIR_OPEN, "V1", &res) == FL_OK);
  CHECK(vehicle_now(&f, "V1") == VEHICLE_REPAIR_REQUESTED);
  hub_repair r;
  CHECK(hub_store_repair_open_for(f.st, "V1", &r) == FL_OK && strstr(r.text, "scratched door"));
  hub_booking b;
  /* V2 is booked for the window and V3 is at S2: nothing free at S1, so B1 is cancelled */
  CHECK(hub_store_booking_get(f.st, "B1", &b) == FL_OK && b.state == BOOKING_CANCELLED);
  CHECK(called(&f, "B1", "refund") && notice(&f, "booking") != NULL);
  provider(&f, "B1", "refund", PAY_OK);
  const fl_decision *d = decision(&f, "B1");
  CHECK(d && strcmp(d->state, "CANCELLED") == 0 && d->refunded_cents == 2000);
  /* V3 comes back to S1; V2 breaks down: B2 moves to V3 */
  snprintf(edit.station, sizeof edit.station, "S1");
  edit.fields = HUB_OP_FIELD_STATION;
  CHECK(op_with(&f, &edit, &res) == FL_OK);
  fl_msg m;
  fl_msg_init(&m, FL_MSG_FAULT);
  m.body.fault.n_dtcs = 1;
  snprintf(m.body.fault.dtcs[0], sizeof m.body.fault.dtcs[0], "P0171");
  m.body.fault.severity = FL_SEV_WARNING;
  CHECK(event(&f, "V2", &m) == FL_OK);
  CHECK(hub_store_booking_get(f.st, "B2", &b) == FL_OK && b.state == BOOKING_HELD &&
        strcmp(b.vehicle, "V3") == 0);
  d = decision(&f, "B2");
  CHECK(d && d->ok && strcmp(d->state, "HELD") == 0 && strstr(d->reason, "to V3"));
  size_t lists = 0; /* both vehicles get their new lists */
  for (size_t i = 0; i < f.n_recs; i++)
    if (f.recs[i].m.env.type == FL_MSG_COMMAND && f.recs[i].m.body.command.action == FL_ACT_BOOKINGS)
      lists++;
  CHECK(lists == 2);
  /* the operator cancels B2 */
  CHECK(op(&f, HUB_OP_BOOKING_CANCEL, "B2", &res) == FL_OK);
  CHECK(booking_now(&f, "B2") == BOOKING_CANCELLED && called(&f, "B2", "refund"));
  CHECK(op(&f, HUB_OP_BOOKING_CANCEL, "B2", &res) == FL_ERR_STATE);
  CHECK(op(&f, HUB_OP_BOOKING_CANCEL, "B404", &res) == FL_ERR_NOT_FOUND);
  teardown(&f);
}

static void no_shows_and_overdue(void) {
  fixture f;
  setup(&f);
  f.cfg.booking_grace_s = 60;
  f.cfg.fee_tier_hours[0] = 1;
  f.cfg.fee_tier_cents[0] = 1500;
  f.cfg.n_fee_tiers = 1;
  register_vehicle(&f, "V1");
  register_vehicle(&f, "V2");
  book(&f, "K1", "B1", "V1", "C1", f.now + 1000, f.now + 3600 * 1000);
  provider(&f, "B1", "deposit", PAY_OK);
  tick(&f);
  CHECK(booking_now(&f, "B1") == BOOKING_HELD); /* its window has not started */
  f.now += 62 * 1000;
  tick(&f);
  CHECK(booking_now(&f, "B1") == BOOKING_EXPIRED); /* a no-show: the deposit is kept */
  CHECK(f.n_jobs == 0 && decision(&f, "B1") && !decision(&f, "B1")->ok);
  f.cfg.booking_no_show_refund = true;
  book(&f, "K1", "B2", "V1", "C1", f.now + 1000, f.now + 3600 * 1000);
  provider(&f, "B2", "deposit", PAY_OK);
  f.now += 62 * 1000;
  tick(&f);
  CHECK(booking_now(&f, "B2") == BOOKING_EXPIRED && called(&f, "B2", "refund"));
  /* overdue: one alert, with the fee it runs into */
  rent(&f, "K1", "R1", "V2", "C3", 1);
  provider(&f, "R1", "charge", PAY_OK);
  tick(&f);
  CHECK(notice(&f, "alert") == NULL);
  f.now += 5 * 1000; /* due after 1 s */
  tick(&f);
  const fl_notify *n = notice(&f, "alert");
  CHECK(n && strcmp(n->to, "rental_overdue") == 0 && strcmp(n->id, "R1") == 0 && strstr(n->text, "15.00"));
  f.now += 5 * 1000;
  tick(&f);
  CHECK(notice(&f, "alert") == NULL); /* once */
  /* a one-way return: the vehicle's station follows */
  fl_msg m;
  fl_msg_init(&m, FL_MSG_RENTAL_RETURN);
  snprintf(m.env.corr, sizeof m.env.corr, "R1");
  snprintf(m.body.rental_return.station, sizeof m.body.rental_return.station, "S9");
  m.body.rental_return.odometer_m = 12345;
  CHECK(event(&f, "K1", &m) == FL_OK);
  hub_vehicle v;
  CHECK(hub_store_vehicle_get(f.st, "V2", &v) == FL_OK && strcmp(v.station, "S9") == 0 &&
        v.odometer_m == 12345 && v.state == VEHICLE_AVAILABLE);
  CHECK(rental_now(&f, "R1").state == RENTAL_RETURNED); /* the late fee is being charged */
  teardown(&f);
}

static int count_row(void *ctx, uint64_t seq, const char *topic, const uint8_t *payload,
                     size_t len, bool retain, uint32_t expiry_s) {
  (*(size_t *)ctx)++;
  return FL_OK;
}

/* The kiosk asks; returns the answer it got (NULL: none). */
static const fl_answer *ask(fixture *f, const char *kiosk, const char *id, fl_query_what what,
                            const char *station, const char *customer, int64_t start, int64_t end) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_QUERY);
  snprintf(m.env.corr, sizeof m.env.corr, "%s", id);
  m.body.query.what = what;
  snprintf(m.body.query.station, sizeof m.body.query.station, "%s", station ? station : "");
  snprintf(m.body.query.customer, sizeof m.body.query.customer, "%s", customer ? customer : "");
  m.body.query.start_ms = start;
  m.body.query.end_ms = end;
  CHECK(send_on(f, kiosk, FL_CH_UP_QUERY, &m) == FL_OK);
  const fl_msg *a = published(f, FL_MSG_ANSWER, id);
  return a ? &a->body.answer : NULL;
}

static bool has_vehicle(const fl_answer *a, const char *id) {
  for (uint32_t i = 0; a && i < a->n_vehicles; i++)
    if (strcmp(a->vehicles[i].vehicle, id) == 0) return true;
  return false;
}

static void kiosk_self_service(void) {
  fixture f;
  setup(&f);
  strmap stations = {0};
  f.t.stations_changed = &stations;
  f.cfg.fee_tier_hours[0] = 1;
  f.cfg.fee_tier_cents[0] = 1500;
  f.cfg.n_fee_tiers = 1;
  register_vehicle(&f, "V1");
  register_vehicle(&f, "V2");
  register_vehicle(&f, "V3");
  hub_op_result res;
  hub_op edit = {.kind = HUB_OP_VEHICLE_EDIT, .fields = HUB_OP_FIELD_STATION};
  snprintf(edit.vehicle, sizeof edit.vehicle, "V3");
  snprintf(edit.station, sizeof edit.station, "S2");
  CHECK(op_with(&f, &edit, &res) == FL_OK);
  rent(&f, "K1", "R1", "V1", "C1", 1);
  provider(&f, "R1", "charge", PAY_OK);
  const fl_notify *paid = notice(&f, "payment");
  CHECK(paid && strcmp(paid->to, "charged") == 0 && strcmp(paid->customer, "C1") == 0 &&
        strcmp(paid->id, "R1") == 0);
  CHECK(notice(&f, "rental") && strcmp(notice(&f, "rental")->customer, "C1") == 0);
  /* available now at S1: V2 only (V1 is rented, V3 is at S2) */
  const fl_answer *a = ask(&f, "K1", "Q1", FL_QUERY_AVAILABLE, "S1", NULL, 0, 0);
  CHECK(a && a->ok && a->n_vehicles == 1 && has_vehicle(a, "V2") && !a->more);
  a = ask(&f, "K1", "Q2", FL_QUERY_AVAILABLE, NULL, NULL, 0, 0);
  CHECK(a && a->n_vehicles == 2 && has_vehicle(a, "V2") && has_vehicle(a, "V3"));
  /* for a window in two hours: V1 is free again then (due in a minute), V2 is booked */
  int64_t h = 3600 * 1000;
  book(&f, "K2", "B1", "V2", "C2", f.now + 2 * h, f.now + 3 * h);
  provider(&f, "B1", "deposit", PAY_OK);
  const fl_msg *bs = published(&f, FL_MSG_BOOKING_STATE, NULL);
  CHECK(bs && strcmp(bs->body.booking_state.state, "HELD") == 0 &&
        strcmp(bs->body.booking_state.customer, "C2") == 0);
  const fl_msg *st = published(&f, FL_MSG_STATION_STATE, NULL); /* S1 now has a booked car */
  CHECK(st && strcmp(st->body.station_state.station, "S1") == 0 && st->body.station_state.booked == 1 &&
        st->body.station_state.rented == 1 && st->body.station_state.available == 1);
  a = ask(&f, "K1", "Q3", FL_QUERY_AVAILABLE, "S1", NULL, f.now + 2 * h, f.now + 3 * h);
  CHECK(a && a->n_vehicles == 1 && has_vehicle(a, "V1"));
  /* the customer's own view: the rental running late, its fee, the money */
  f.now += 5000;
  a = ask(&f, "K1", "Q4", FL_QUERY_CUSTOMER, NULL, "C1", 0, 0);
  CHECK(a && a->ok && a->n_rentals == 1 && strcmp(a->rentals[0].rental, "R1") == 0 &&
        strcmp(a->rentals[0].state, "ACTIVE") == 0 && a->rentals[0].running_fee_cents == 1500 &&
        a->charged_cents == 10 && a->fees_owed_cents == 0);
  a = ask(&f, "K2", "Q5", FL_QUERY_CUSTOMER, NULL, "C2", 0, 0);
  CHECK(a && a->n_bookings == 1 && strcmp(a->bookings[0].state, "HELD") == 0 &&
        a->bookings[0].deposit_cents == 2000 && a->charged_cents == 2000);
  a = ask(&f, "K1", "Q6", FL_QUERY_CUSTOMER, NULL, "NOBODY", 0, 0);
  CHECK(a && a->ok && a->n_rentals == 0 && a->n_bookings == 0); /* P-QRY-4 */
  /* only a kiosk may ask */
  a = ask(&f, "V1", "Q7", FL_QUERY_AVAILABLE, NULL, NULL, 0, 0);
  CHECK(a && !a->ok && strstr(a->reason, "only a kiosk"));
  /* every state and notice of a batch is in the outbox until the broker has it */
  size_t kept = 0;
  CHECK(hub_store_outbox_each(f.st, count_row, &kept) == FL_OK && kept > 10);
  strmap_free(&stations);
  teardown(&f);
}

int main(void) {
  fl_log_set_level(FL_LOG_ERROR);
  rent_pay_ride_return();
  refusals_at_request();
  declined_and_failed_charges();
  cancel_before_and_after_start();
  late_return_pays_a_fee();
  bookings();
  booking_used_by_its_rental();
  repairs();
  operator_saga_commands();
  device_protocol();
  state_published_once_per_batch();
  bookings_follow_the_fleet();
  no_shows_and_overdue();
  kiosk_self_service();
  return unit_report("hub_domain");
}
