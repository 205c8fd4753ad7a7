/* The scenario engine of fleet-sim. One thread ticks every agent and moves
 * the customers' trips along; decisions arrive on paho's threads through the
 * agents' callbacks; a second thread plays the mechanic. */
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "device.h"
#include "faults.h"
#include "fleet/agent.h"
#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "hubapi.h"
#include "invariants.h"

#define TICK_MS 50
#define DRAIN_S 20.0 /* after the last arrival, time for trips to finish */
#define BOOK_LEAD_S 4.0 /* a booking's window starts 2..6 s after it is asked for */

/* A customer's trip. One who books ahead starts in TRIP_BOOKING, waits in
 * TRIP_BOOKED for the window, then rents (TRIP_REQUESTED ...) or cancels the
 * booking (TRIP_UNBOOKING). */
enum trip_state {
  TRIP_REQUESTED, TRIP_ACTIVE, TRIP_RIDING, TRIP_RETURNING, TRIP_CANCELLING, TRIP_DONE,
  TRIP_BOOKING, TRIP_BOOKED, TRIP_UNBOOKING
};

struct trip {
  char rental[FL_ID_MAX + 1];  /* "" until the customer asks to rent */
  char booking[FL_ID_MAX + 1]; /* booked ahead: the booking id */
  char customer[32];
  int vehicle, kiosk;
  enum trip_state state;
  char outcome[24];         /* the hub's last state for the rental */
  char booking_outcome[24]; /* what the hub must show for the booking ("": not checked) */
  bool will_cancel, late;
  uint32_t minutes;
  int unlock_tries;
  int64_t requested_us, next_us;
};

/* A simulated vehicle or kiosk and what the scenario keeps about it. */
struct actor {
  sim_device dev;   /* the agent, and its faults */
  struct sim *sim;
  bool busy;        /* vehicle: in a trip of ours */
  int64_t next_telemetry_us;
  uint64_t odometer_m;
  uint32_t energy;
  double lat, lon;
};

/* A decision as received, waiting for the tick thread. */
struct inbox_item {
  struct actor *kiosk;
  char corr[FL_ID_MAX + 1];
  char state[24];
  char reason[FL_TEXT_MAX + 1];
  bool ok;
  int64_t charged_cents, refunded_cents, fee_cents;
  int64_t at_us;
};

struct sim {
  sim_options o;
  pthread_mutex_t lock;
  /* decisions arrive on paho's threads, which hold paho's lock: they only
   * touch the inbox (its own lock, never held while publishing) */
  pthread_mutex_t inbox_lock;
  struct inbox_item *inbox;
  size_t n_inbox, cap_inbox;
  unsigned rng;
  struct actor *vehicles, *kiosks;
  sim_device **devices; /* every device: vehicles, then kiosks */
  size_t n_devices, n_started;
  sim_fault_plan plan;
  struct trip *trips;
  size_t n_trips, cap_trips;
  double *latencies_ms;
  size_t n_lat;
  int64_t t0_us;
  atomic_bool mechanic_stop;
  /* outcome counters */
  unsigned requested, active, rejected, cancelled, completed, refused_cancel, faults, unlocks,
      repairs_started, repairs_completed, submit_errors, gave_up, late_returns, late_fees;
  unsigned bookings, bookings_held, bookings_refused, bookings_used, bookings_cancelled,
      bookings_rent_refused;
};

static double rnd(struct sim *s) { return (double)rand_r(&s->rng) / ((double)RAND_MAX + 1.0); }

static double elapsed_s(const struct sim *s) { return (double)(fl_mono_us() - s->t0_us) / 1e6; }

/* Prints one happening, prefixed with the time since start. */
__attribute__((format(printf, 3, 4))) static void say(struct sim *s, const char *who,
                                                      const char *fmt, ...) {
  if (s->o.quiet) return;
  char line[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  printf("[%6.1fs] %-4s %s\n", elapsed_s(s), who, line);
  fflush(stdout);
}

/* The trip whose rental or booking id is corr, or NULL. */
static struct trip *trip_find(struct sim *s, const char *corr) {
  for (size_t i = s->n_trips; i-- > 0;)
    if (strcmp(s->trips[i].rental, corr) == 0 || strcmp(s->trips[i].booking, corr) == 0)
      return &s->trips[i];
  return NULL;
}

static void trip_done(struct sim *s, struct trip *t, const char *outcome) {
  t->state = TRIP_DONE;
  snprintf(t->outcome, sizeof t->outcome, "%s", outcome);
  s->vehicles[t->vehicle].busy = false;
}

/* The running agent of an actor, or NULL while it is powered off. */
static fl_agent *agent(const struct actor *x) { return sim_device_agent(&x->dev); }

/* A kiosk got the hub's answer to one of its requests (paho thread): queue
 * it for the tick thread. */
static void on_decision(void *ctx, const fl_msg *m) {
  struct actor *k = ctx;
  struct sim *s = k->sim;
  const fl_decision *d = &m->body.decision;
  pthread_mutex_lock(&s->inbox_lock);
  if (s->n_inbox == s->cap_inbox) {
    size_t cap = s->cap_inbox ? s->cap_inbox * 2 : 64;
    struct inbox_item *grown = realloc(s->inbox, cap * sizeof *grown);
    if (!grown) {
      pthread_mutex_unlock(&s->inbox_lock);
      return; /* the decision stays in the agent's store; the trip times out */
    }
    s->inbox = grown;
    s->cap_inbox = cap;
  }
  struct inbox_item *it = &s->inbox[s->n_inbox++];
  it->kiosk = k;
  snprintf(it->corr, sizeof it->corr, "%s", m->env.corr);
  snprintf(it->state, sizeof it->state, "%s", d->state);
  snprintf(it->reason, sizeof it->reason, "%s", d->reason);
  it->ok = d->ok;
  it->charged_cents = d->charged_cents;
  it->refunded_cents = d->refunded_cents;
  it->fee_cents = d->fee_cents;
  it->at_us = fl_mono_us();
  pthread_mutex_unlock(&s->inbox_lock);
}

/* Applies one decision to its trip. Called with s->lock held. */
static void apply_decision(struct sim *s, const struct inbox_item *d) {
  struct trip *t = trip_find(s, d->corr);
  if (!t) return;
  struct actor *k = d->kiosk;
  int64_t now = d->at_us;
  const char *who = s->vehicles[t->vehicle].dev.id;
  bool about_booking = strcmp(d->corr, t->booking) == 0;
  if (about_booking && t->state == TRIP_BOOKING) {
    double ms = (double)(now - t->requested_us) / 1000.0;
    if (s->n_lat < s->cap_trips) s->latencies_ms[s->n_lat++] = ms;
    if (d->ok && strcmp(d->state, "HELD") == 0) {
      s->bookings_held++;
      t->state = TRIP_BOOKED; /* next_us: the window's start */
      say(s, k->dev.id, "%s booked %s as %s: HELD, deposit %.2f (%.0f ms)", t->customer, who,
          t->booking, (double)d->charged_cents / 100.0, ms);
    } else {
      s->bookings_refused++;
      snprintf(t->booking_outcome, sizeof t->booking_outcome, "%s", d->state);
      trip_done(s, t, d->state);
      say(s, k->dev.id, "%s could not book %s: %s (%s)", t->customer, who, d->state, d->reason);
    }
    return;
  }
  if (about_booking && t->state == TRIP_UNBOOKING) {
    /* the trip's outcome stays its rental's (REJECTED) when it had one */
    char outcome[sizeof t->outcome];
    snprintf(outcome, sizeof outcome, "%s", t->rental[0] ? t->outcome : d->state);
    snprintf(t->booking_outcome, sizeof t->booking_outcome, "%s", d->state);
    trip_done(s, t, outcome);
    if (strcmp(d->state, "CANCELLED") == 0) {
      s->bookings_cancelled++;
      say(s, k->dev.id, "%s cancelled booking %s: deposit refunded %.2f", t->customer, t->booking,
          (double)d->refunded_cents / 100.0);
    } else {
      say(s, k->dev.id, "cancel of booking %s answered %s (%s)", t->booking, d->state, d->reason);
    }
    return;
  }
  if (about_booking) return; /* a booking's later news (USED) */
  if (t->state == TRIP_REQUESTED) {
    double ms = (double)(now - t->requested_us) / 1000.0;
    if (s->n_lat < s->cap_trips) s->latencies_ms[s->n_lat++] = ms;
    if (d->ok && strcmp(d->state, "ACTIVE") == 0) {
      s->active++;
      if (t->booking[0]) {
        s->bookings_used++;
        snprintf(t->booking_outcome, sizeof t->booking_outcome, "USED");
      }
      t->state = TRIP_ACTIVE;
      snprintf(t->outcome, sizeof t->outcome, "ACTIVE");
      t->next_us = now + (int64_t)((0.4 + rnd(s)) * 1e6);
      say(s, k->dev.id, "%s rented %s: ACTIVE, charged %.2f (%.0f ms)", t->customer, who,
          (double)d->charged_cents / 100.0, ms);
    } else {
      s->rejected++;
      snprintf(t->outcome, sizeof t->outcome, "%s", d->state);
      say(s, k->dev.id, "%s could not rent %s: %s (%s)", t->customer, who, d->state, d->reason);
      if (t->booking[0] && agent_unbook(agent(k), t->booking, "vehicle not available") == FL_OK) {
        /* booked, and the car cannot be had (a fault, say): the deposit back */
        s->bookings_rent_refused++;
        t->state = TRIP_UNBOOKING;
        say(s, k->dev.id, "%s cancels booking %s", t->customer, t->booking);
      } else {
        trip_done(s, t, d->state);
      }
    }
  } else if (t->state == TRIP_CANCELLING) {
    if (d->ok && strcmp(d->state, "CANCEL_REQUESTED") == 0) { /* accepted; the refund follows */
      say(s, k->dev.id, "%s cancelled %s: accepted, %s free, %s", t->customer, t->rental, who,
          d->reason);
    } else if (d->ok && strcmp(d->state, "CANCELLED") == 0) {
      s->cancelled++;
      trip_done(s, t, "CANCELLED");
      say(s, k->dev.id, "%s cancelled %s: refunded %.2f, %s AVAILABLE again", t->customer, t->rental,
          (double)d->refunded_cents / 100.0, who);
    } else { /* refused (already started): ride and return instead */
      s->refused_cancel++;
      t->state = TRIP_RIDING;
      t->next_us = now + 1000000;
      say(s, k->dev.id, "cancel of %s refused: %s", t->rental, d->reason);
    }
  } else if (t->state == TRIP_RETURNING && strcmp(d->state, "COMPLETED") == 0) {
    s->completed++;
    s->late_fees += d->fee_cents > 0;
    trip_done(s, t, "COMPLETED");
    say(s, k->dev.id, "%s returned %s: COMPLETED%s", t->customer, who,
        d->fee_cents ? ", late fee charged" : "");
  }
}

/* Moves the received decisions to their trips. Called with s->lock held. */
static void drain_inbox(struct sim *s) {
  pthread_mutex_lock(&s->inbox_lock);
  for (size_t i = 0; i < s->n_inbox; i++) apply_decision(s, &s->inbox[i]);
  s->n_inbox = 0;
  pthread_mutex_unlock(&s->inbox_lock);
}

/* Prepares actor x (device prefix+n) without starting it. */
static int actor_init(struct sim *s, struct actor *x, const char *prefix, int n, bool vehicle) {
  x->sim = s;
  char id[FL_ID_MAX + 1];
  snprintf(id, sizeof id, "%.40s%s%02d", s->o.id_prefix ? s->o.id_prefix : "", prefix, n);
  agent_callbacks cb = {.ctx = x, .on_decision = vehicle ? NULL : on_decision};
  int rc = sim_device_init(&x->dev, id, vehicle, s->o.state_dir, s->o.broker_uri, cb);
  sim_device_topics(&x->dev, s->o.topic_family, s->o.partitions);
  x->energy = 60 + (uint32_t)(rnd(s) * 40);
  x->lat = 48.85 + rnd(s) * 0.05;
  x->lon = 2.30 + rnd(s) * 0.08;
  x->next_telemetry_us = fl_mono_us() + (int64_t)(rnd(s) * s->o.telemetry_s * 1e6);
  return rc;
}

static void customer_books(struct sim *s, struct trip *t, int64_t now);

/* A new customer walks up to a random kiosk and asks for a free vehicle. */
static void customer_arrives(struct sim *s, int64_t now) {
  int free_count = 0;
  for (int i = 0; i < s->o.vehicles; i++) free_count += !s->vehicles[i].busy;
  if (free_count == 0 || s->n_trips == s->cap_trips) return;
  int pick = (int)(rnd(s) * free_count), v = 0;
  for (v = 0; v < s->o.vehicles; v++)
    if (!s->vehicles[v].busy && pick-- == 0) break;
  int kiosk = (int)(rnd(s) * s->o.kiosks);
  if (!agent(&s->kiosks[kiosk])) return; /* the kiosk is dark: the customer walks away */
  struct trip *t = &s->trips[s->n_trips];
  memset(t, 0, sizeof *t);
  t->vehicle = v;
  t->kiosk = kiosk;
  t->will_cancel = rnd(s) < s->o.cancel_share;
  snprintf(t->customer, sizeof t->customer, "%.20sC%04zu", s->o.id_prefix ? s->o.id_prefix : "",
           s->n_trips + 1);
  /* a late customer rents for a minute or two of the hub's time and rides
   * past it (a ride is a few seconds: late by the ride when minute_ms is
   * short, by the hub's minutes when --minute-ms says so) */
  t->late = !t->will_cancel && rnd(s) < s->o.late_share;
  t->minutes = t->late ? 1 + (uint32_t)(rnd(s) * 2) : 30 + (uint32_t)(rnd(s) * 150);
  struct actor *k = &s->kiosks[t->kiosk];
  t->requested_us = now;
  if (rnd(s) < s->o.book_share) { /* books ahead instead */
    customer_books(s, t, now);
    return;
  }
  int rc = agent_rent(agent(k), s->vehicles[v].dev.id, t->customer, t->minutes, NULL, t->rental,
                      sizeof t->rental);
  if (rc != FL_OK) {
    s->submit_errors++;
    say(s, k->dev.id, "rental request refused by the agent: %s", fl_strerror(rc));
    return;
  }
  s->n_trips++;
  s->requested++;
  s->vehicles[v].busy = true;
  say(s, k->dev.id, "%s asks for %s (%u min%s) as %s", t->customer, s->vehicles[v].dev.id,
      t->minutes, t->late ? ", will be late" : "", t->rental);
}

/* The customer of t books t's vehicle at t's kiosk for a window that starts
 * BOOK_LEAD_S from now; at its start they rent it (or, as often as others
 * cancel, cancel the booking). The vehicle is ours until the trip ends. */
static void customer_books(struct sim *s, struct trip *t, int64_t now) {
  struct actor *k = &s->kiosks[t->kiosk], *v = &s->vehicles[t->vehicle];
  double lead_s = BOOK_LEAD_S * (0.5 + rnd(s));
  int64_t start = agent_now_ms(agent(k)) + (int64_t)(lead_s * 1000);
  int64_t end = start + (int64_t)((s->o.ride_max_s + 120) * 1000);
  int rc = agent_book(agent(k), v->dev.id, t->customer, start, end, NULL, t->booking,
                      sizeof t->booking);
  if (rc != FL_OK) {
    s->submit_errors++;
    say(s, k->dev.id, "booking refused by the agent: %s", fl_strerror(rc));
    return;
  }
  t->state = TRIP_BOOKING;
  /* half a second into the window: the kiosk's and the hub's clocks may
   * differ by a few ms, and a rental just before the window is not the
   * booking's */
  t->next_us = now + (int64_t)((lead_s + 0.5) * 1e6);
  s->n_trips++;
  s->bookings++;
  v->busy = true;
  say(s, k->dev.id, "%s books %s from in %.1f s as %s", t->customer, v->dev.id, lead_s, t->booking);
}

/* Moves one trip along when its time has come. A powered-off kiosk or
 * vehicle holds its trips until it is back. */
static void trip_step(struct sim *s, struct trip *t, int64_t now, bool draining) {
  struct actor *v = &s->vehicles[t->vehicle];
  struct actor *k = &s->kiosks[t->kiosk];
  if (t->state == TRIP_BOOKED && (now >= t->next_us || draining) && agent(k)) {
    if (t->will_cancel || draining) { /* plans changed: the deposit comes back */
      if (agent_unbook(agent(k), t->booking, "plans changed") == FL_OK) {
        t->state = TRIP_UNBOOKING;
        say(s, k->dev.id, "%s cancels booking %s", t->customer, t->booking);
      }
      return;
    }
    t->requested_us = now; /* the window is open: the booked customer rents */
    if (agent_rent(agent(k), v->dev.id, t->customer, t->minutes, NULL, t->rental,
                   sizeof t->rental) == FL_OK) {
      t->state = TRIP_REQUESTED;
      s->requested++;
      say(s, k->dev.id, "%s rents booked %s as %s", t->customer, v->dev.id, t->rental);
    }
    return;
  }
  if (t->state == TRIP_ACTIVE && now >= t->next_us && agent(k) && agent(v)) {
    if ((t->will_cancel && !t->booking[0]) || t->unlock_tries >= 10) { /* changed their mind, or gave up */
      if (agent_cancel(agent(k), t->rental, t->will_cancel ? "changed my mind" : "car would not open") == FL_OK) {
        t->state = TRIP_CANCELLING;
        s->gave_up += !t->will_cancel;
        say(s, k->dev.id, "%s cancels %s before driving", t->customer, t->rental);
      }
      return;
    }
    agent_unlock_result r;
    if (agent_unlock(agent(v), t->customer, agent_now_ms(agent(v)), &r) != FL_OK) return;
    if (r.allowed) {
      s->unlocks++;
      t->state = TRIP_RIDING;
      double ride = s->o.ride_min_s + rnd(s) * (s->o.ride_max_s - s->o.ride_min_s);
      if (t->late) ride += (double)t->minutes * s->o.minute_ms / 1000.0; /* past the due time */
      t->next_us = now + (int64_t)(ride * 1e6);
      say(s, v->dev.id, "unlocked by %s, driving", t->customer);
    } else {
      t->unlock_tries++;
      t->next_us = now + 500000; /* the unlock command may still be on its way */
    }
    return;
  }
  if (t->state == TRIP_RIDING && (now >= t->next_us || draining) && agent(v)) {
    int kiosk = (int)(rnd(s) * s->o.kiosks); /* returned at any station that is up */
    k = &s->kiosks[kiosk];
    if (agent(k) && agent_return(agent(k), t->rental, k->dev.id, v->odometer_m) == FL_OK) {
      t->kiosk = kiosk;
      agent_lock(agent(v));
      t->state = TRIP_RETURNING;
      s->late_returns += t->late;
      say(s, k->dev.id, "%s returns %s%s", t->customer, v->dev.id, t->late ? " late" : "");
    }
  }
}

static void vehicle_step(struct sim *s, struct actor *v, int64_t now, double dt, bool arriving) {
  if (!agent(v)) return;
  if (now >= v->next_telemetry_us) {
    v->next_telemetry_us = now + (int64_t)(s->o.telemetry_s * 1e6);
    if (v->busy) {
      v->odometer_m += 200 + (uint64_t)(rnd(s) * 400);
      v->lat += (rnd(s) - 0.5) * 0.002;
      v->lon += (rnd(s) - 0.5) * 0.002;
      if (v->energy > 5) v->energy--;
    }
    agent_telemetry(agent(v), v->odometer_m, v->energy, v->lat, v->lon);
  }
  if (arriving && rnd(s) < s->o.fault_per_min * dt / 60.0) {
    static const char *const codes[] = {"P0301", "P0420", "C0035", "B1342", "U0100", "P0171"};
    const char *dtc[1] = {codes[(int)(rnd(s) * 6)]};
    fl_severity sev = rnd(s) < 0.3 ? FL_SEV_CRITICAL : FL_SEV_WARNING;
    if (agent_fault(agent(v), dtc, 1, sev, "reported by the simulator", NULL) == FL_OK) {
      s->faults++;
      say(s, v->dev.id, "fault %s (%s)", dtc[0], fl_severity_name(sev));
    }
  }
}

/* Sums up what the agents still hold. */
static void backlog(struct sim *s, int *connected, uint64_t *queued) {
  *connected = 0;
  *queued = 0;
  for (size_t i = 0; i < s->n_devices; i++) {
    fl_agent *a = sim_device_agent(s->devices[i]);
    agent_status st;
    if (!a) continue;
    agent_get_status(a, &st);
    *connected += st.connected;
    *queued += st.backlog;
  }
}

static void progress(struct sim *s) {
  int connected;
  uint64_t queued;
  backlog(s, &connected, &queued);
  double t = elapsed_s(s);
  printf("[%6.1fs] ---- devices %d/%d connected | rentals %u asked, %u active, %u completed, "
         "%u cancelled, %u refused | %.2f rentals/s | outbox backlog %llu | vehicle faults %u | "
         "faults injected %u\n",
         t, connected, s->o.vehicles + s->o.kiosks, s->requested, s->active, s->completed,
         s->cancelled, s->rejected, t > 0 ? s->active / t : 0.0, (unsigned long long)queued,
         s->faults, sim_fault_plan_injected(&s->plan));
  fflush(stdout);
}

/* The mechanic: starts every requested repair, completes it a round later. */
static void *mechanic_main(void *arg) {
  struct sim *s = arg;
  while (!atomic_load(&s->mechanic_stop)) {
    for (int i = 0; i < 20 && !atomic_load(&s->mechanic_stop); i++) fl_sleep_ms(100);
    cJSON *rows = NULL;
    if (sim_hub_call(s->o.hub_url, "GET", "/v1/repairs", NULL, &rows) != 200) {
      cJSON_Delete(rows);
      continue;
    }
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
      if (atomic_load(&s->mechanic_stop)) break; /* each call may take long on a busy hub */
      const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(row, "id"));
      const char *state = cJSON_GetStringValue(cJSON_GetObjectItem(row, "state"));
      const char *vehicle = cJSON_GetStringValue(cJSON_GetObjectItem(row, "vehicle"));
      if (!id || !state || !vehicle) continue;
      const char *action = strcmp(state, "REQUESTED") == 0     ? "start"
                           : strcmp(state, "IN_PROGRESS") == 0 ? "complete"
                                                               : NULL;
      if (!action) continue;
      char path[160];
      snprintf(path, sizeof path, "/v1/repairs/%s/%s", id, action);
      if (sim_hub_call(s->o.hub_url, "POST", path, NULL, NULL) != 200) continue;
      pthread_mutex_lock(&s->lock);
      if (action[0] == 's') s->repairs_started++; else s->repairs_completed++;
      say(s, "mech", "repair %s of %s %s", id, vehicle, action[0] == 's' ? "started" : "completed: AVAILABLE");
      pthread_mutex_unlock(&s->lock);
    }
    cJSON_Delete(rows);
  }
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double percentile(double *v, size_t n, double p) {
  if (n == 0) return 0;
  size_t i = (size_t)ceil(p / 100.0 * (double)n);
  return v[i ? i - 1 : 0];
}

/* True when the hub shows t's booking as the customer was told (USED after
 * renting, CANCELLED after cancelling, REJECTED), or when nothing final was
 * told. Prints the difference otherwise. */
static bool booking_as_told(struct sim *s, const struct trip *t) {
  if (!t->booking_outcome[0]) return true;
  char path[128];
  snprintf(path, sizeof path, "/v1/bookings/%s", t->booking);
  cJSON *row = NULL;
  int status = sim_hub_call(s->o.hub_url, "GET", path, NULL, &row);
  bool ok = status == 200 && strcmp(sim_json_str(row, "state"), t->booking_outcome) == 0;
  if (!ok)
    printf("  booking %s: the customer was told %s, the hub shows %s (HTTP %d)\n", t->booking,
           t->booking_outcome, status == 200 ? sim_json_str(row, "state") : "nothing", status);
  cJSON_Delete(row);
  return ok;
}

/* Checks the hub's views: first the invariants of every run (which bring
 * every device back and let the outboxes drain), then against what the
 * simulated customers were told. Returns the number of violations. */
static int check_invariants(struct sim *s) {
  sim_check c = {.hub_url = s->o.hub_url, .hub_state_dir = s->o.hub_state_dir,
                 .devices = s->devices, .n_devices = s->n_started, .settle_s = DRAIN_S};
  int bad = sim_check_invariants(&c);
  pthread_mutex_lock(&s->lock);
  drain_inbox(s); /* answers that came while settling */
  pthread_mutex_unlock(&s->lock);
  cJSON *rows = sim_hub_rentals(s->o.hub_url, s->o.hub_state_dir);
  if (!rows) {
    printf("  [FAIL] the hub's rentals could not be read\n");
    return bad + 1;
  }
  int missing = 0, mismatched = 0, unanswered = 0, booking_bad = 0;
  for (size_t i = 0; i < s->n_trips; i++) {
    struct trip *t = &s->trips[i];
    if (t->booking[0]) booking_bad += !booking_as_told(s, t);
    if (!t->rental[0]) { /* booked and never rented */
      unanswered += t->state != TRIP_DONE && t->state != TRIP_BOOKED;
      continue;
    }
    const cJSON *row = NULL, *r;
    cJSON_ArrayForEach(r, rows)
      if (strcmp(sim_json_str(r, "id"), t->rental) == 0) row = r;
    if (!row) {
      missing++;
      continue;
    }
    if (t->state != TRIP_DONE && t->state != TRIP_RIDING && t->state != TRIP_ACTIVE) unanswered++;
    else if (strcmp(sim_json_str(row, "state"), t->outcome) != 0) mismatched++;
  }
  cJSON_Delete(rows);
  printf("  [%s] every rental asked for is known to the hub (%d missing)\n", missing ? "FAIL" : " ok ", missing);
  printf("  [%s] every request was answered (%d unanswered)\n", unanswered ? "FAIL" : " ok ", unanswered);
  printf("  [%s] the hub's state equals what the customer was told (%d differ)\n", mismatched ? "FAIL" : " ok ", mismatched);
  if (s->bookings)
    printf("  [%s] every booking is at the hub as the customer was told (%d differ)\n",
           booking_bad ? "FAIL" : " ok ", booking_bad);
  return bad + missing + unanswered + mismatched + booking_bad;
}

static void report(struct sim *s) {
  qsort(s->latencies_ms, s->n_lat, sizeof *s->latencies_ms, cmp_double);
  printf("\n==== fleet-sim report (seed %u, %.0f s, %d vehicles, %d kiosks)\n", s->o.seed,
         elapsed_s(s), s->o.vehicles, s->o.kiosks);
  printf("  rentals asked %u: active %u, refused %u | then completed %u, cancelled %u, "
         "cancel refused %u\n", s->requested, s->active, s->rejected, s->completed, s->cancelled,
         s->refused_cancel);
  printf("  late riders %u, late fees charged %u | bookings asked %u: held %u, refused %u | "
         "then used %u, cancelled %u (%u after the rental was refused)\n", s->late_returns,
         s->late_fees, s->bookings, s->bookings_held, s->bookings_refused, s->bookings_used,
         s->bookings_cancelled, s->bookings_rent_refused);
  printf("  faults %u, repairs started %u, completed %u, unlocks %u, gave up unlocking %u, "
         "agent errors %u\n", s->faults, s->repairs_started, s->repairs_completed, s->unlocks,
         s->gave_up, s->submit_errors);
  printf("  faults injected %u: network cuts %u, power cuts %u, restarts %u (%u failed)\n",
         sim_fault_plan_injected(&s->plan), s->plan.cuts, s->plan.power_cuts, s->plan.restarts,
         s->plan.failed);
  printf("  kiosk-observed decision latency: p50 %.1f ms, p95 %.1f ms, p99 %.1f ms (%zu answers)\n",
         percentile(s->latencies_ms, s->n_lat, 50), percentile(s->latencies_ms, s->n_lat, 95),
         percentile(s->latencies_ms, s->n_lat, 99), s->n_lat);
  if (s->o.latency_file) { /* for percentiles over several fleet-sim processes */
    FILE *f = fopen(s->o.latency_file, "w");
    for (size_t i = 0; f && i < s->n_lat; i++) fprintf(f, "%.1f\n", s->latencies_ms[i]);
    if (!f || fclose(f) != 0)
      fprintf(stderr, "fleet-sim: cannot write %s: %s\n", s->o.latency_file, strerror(errno));
  }
}

static bool all_done(struct sim *s) {
  for (size_t i = 0; i < s->n_trips; i++)
    if (s->trips[i].state != TRIP_DONE) return false;
  return true;
}

static void run_loop(struct sim *s) {
  double arrivals = 0;
  int64_t next_progress = fl_mono_us() + 5000000, last = fl_mono_us();
  for (;;) {
    int64_t now = fl_mono_us();
    double dt = (double)(now - last) / 1e6, t = elapsed_s(s);
    last = now;
    bool arriving = t < s->o.duration_s;
    for (size_t i = 0; i < s->n_devices; i++) sim_device_tick(s->devices[i], now);
    /* Ticking thousands of agents takes a while: what follows (requests and
     * their latency clock, booking windows) must not act on a stale time. */
    now = fl_mono_us();
    pthread_mutex_lock(&s->lock);
    if (sim_fault_plan_step(&s->plan, &s->o.faults, t, s->devices) && !s->o.quiet) progress(s);
    drain_inbox(s);
    if (arriving)
      for (arrivals += s->o.rate * dt; arrivals >= 1.0; arrivals -= 1.0) customer_arrives(s, now);
    for (size_t i = 0; i < s->n_trips; i++) trip_step(s, &s->trips[i], now, !arriving);
    for (int i = 0; i < s->o.vehicles; i++) vehicle_step(s, &s->vehicles[i], now, dt, arriving);
    bool finished = !arriving && ((all_done(s) && s->plan.next == s->plan.n) ||
                                  t > s->o.duration_s + DRAIN_S + s->o.faults.cut_s +
                                          s->o.faults.power_off_s);
    if (now >= next_progress) {
      next_progress = now + 5000000;
      progress(s);
    }
    pthread_mutex_unlock(&s->lock);
    if (finished) break;
    fl_sleep_ms(TICK_MS);
  }
}

/* Starts every device, o->connect_per_s a second (all at once for 0), and
 * waits until each got its sync from the hub (at most 60 s after the last
 * start). Returns FL_OK or the first start error. */
static int start_fleet(struct sim *s) {
  int64_t t0 = fl_mono_us();
  for (size_t i = 0; i < s->n_devices; i++) {
    int rc = sim_device_start(s->devices[i]);
    if (rc != FL_OK) {
      fprintf(stderr, "fleet-sim: %s cannot start: %s\n", s->devices[i]->id, fl_strerror(rc));
      return rc;
    }
    s->n_started++;
    if (s->o.connect_per_s > 0) { /* in waves: tick those started while the next wait */
      int64_t due = t0 + (int64_t)((double)(i + 1) / s->o.connect_per_s * 1e6);
      while (fl_mono_us() < due) {
        for (size_t j = 0; j < s->n_started; j++) sim_device_tick(s->devices[j], fl_mono_us());
        fl_sleep_ms(TICK_MS);
      }
    }
  }
  int64_t deadline = fl_mono_us() + 60000000;
  size_t synced = 0;
  while (synced < s->n_devices && fl_mono_us() < deadline) {
    synced = 0;
    for (size_t i = 0; i < s->n_devices; i++) {
      agent_status st;
      sim_device_tick(s->devices[i], fl_mono_us());
      agent_get_status(sim_device_agent(s->devices[i]), &st);
      synced += st.synced;
    }
    if (synced < s->n_devices) fl_sleep_ms(TICK_MS);
  }
  printf("[%6.1fs] ---- %zu of %zu devices connected and synced in %.1f s\n", elapsed_s(s), synced,
         s->n_devices, (double)(fl_mono_us() - t0) / 1e6);
  fflush(stdout);
  return FL_OK;
}

/* Registers the vehicles through the operator API. */
static int register_fleet(struct sim *s) {
  for (int i = 0; i < s->o.vehicles; i++) {
    char name[32];
    snprintf(name, sizeof name, "Car %d", i + 1);
    int rc = sim_hub_register(s->o.hub_url, s->vehicles[i].dev.id, name,
                              i % 2 ? "north" : "south", 900 + 100 * (i % 5));
    if (rc != FL_OK) {
      fprintf(stderr, "fleet-sim: the hub at %s does not answer\n", s->o.hub_url);
      return rc;
    }
  }
  return FL_OK;
}

int sim_run(const sim_options *o) {
  struct sim s;
  memset(&s, 0, sizeof s);
  s.o = *o;
  s.rng = o->seed;
  pthread_mutex_init(&s.lock, NULL);
  pthread_mutex_init(&s.inbox_lock, NULL);
  if (mkdir(o->state_dir, 0750) != 0 && errno != EEXIST) {
    fprintf(stderr, "fleet-sim: cannot create %s: %s\n", o->state_dir, strerror(errno));
    return 2;
  }
  s.cap_trips = (size_t)(o->rate * o->duration_s * 2) + 16;
  s.n_devices = (size_t)o->vehicles + (size_t)o->kiosks;
  s.trips = calloc(s.cap_trips, sizeof *s.trips);
  s.latencies_ms = calloc(s.cap_trips, sizeof *s.latencies_ms);
  s.vehicles = calloc((size_t)o->vehicles, sizeof *s.vehicles);
  s.kiosks = calloc((size_t)o->kiosks, sizeof *s.kiosks);
  s.devices = calloc(s.n_devices, sizeof *s.devices);
  int rc = s.trips && s.latencies_ms && s.vehicles && s.kiosks && s.devices ? FL_OK : FL_ERR_NOMEM;
  for (int i = 0; rc == FL_OK && i < o->vehicles; i++) {
    rc = actor_init(&s, &s.vehicles[i], "V", i + 1, true);
    s.devices[i] = &s.vehicles[i].dev;
  }
  for (int i = 0; rc == FL_OK && i < o->kiosks; i++) {
    rc = actor_init(&s, &s.kiosks[i], "K", i + 1, false);
    s.devices[o->vehicles + i] = &s.kiosks[i].dev;
  }
  if (rc == FL_OK) {
    rc = sim_fault_plan_make(&s.plan, &o->faults, s.n_devices, o->duration_s, &s.rng);
    if (rc == FL_ERR_INVALID) fprintf(stderr, "fleet-sim: restarts need --restart-hub-cmd / --restart-broker-cmd\n");
    if (rc == FL_OK) sim_fault_plan_skew(&s.plan, &o->faults, s.devices);
  }
  s.t0_us = fl_mono_us();
  if (rc == FL_OK && o->register_vehicles) rc = register_fleet(&s);
  if (rc == FL_OK) rc = start_fleet(&s);
  pthread_t mech;
  bool mech_started = false;
  if (rc == FL_OK) {
    say(&s, "sim", "%d vehicles and %d kiosks started against %s", o->vehicles, o->kiosks, o->broker_uri);
    s.t0_us = fl_mono_us(); /* the scenario's clock starts with the fleet up */
    if (o->mechanic) mech_started = pthread_create(&mech, NULL, mechanic_main, &s) == 0;
    run_loop(&s);
  } else if (rc != FL_ERR_INVALID) {
    fprintf(stderr, "fleet-sim: cannot start the fleet: %s\n", fl_strerror(rc));
  }
  if (mech_started) {
    atomic_store(&s.mechanic_stop, true);
    pthread_join(mech, NULL);
  }
  int status = 2;
  if (rc == FL_OK) {
    sim_fault_plan_free(&s.plan); /* a restart in progress ends before the check */
    progress(&s);
    report(&s);
    printf("  invariants:\n");
    status = check_invariants(&s) ? 1 : 0;
    printf("==== %s\n", status ? "INVARIANTS VIOLATED" : "all invariants held");
  }
  sim_fault_plan_free(&s.plan);
  for (size_t i = 0; s.devices && i < s.n_devices; i++) sim_device_close(s.devices[i]);
  free(s.devices);
  free(s.vehicles);
  free(s.kiosks);
  free(s.trips);
  free(s.latencies_ms);
  free(s.inbox);
  pthread_mutex_destroy(&s.lock);
  pthread_mutex_destroy(&s.inbox_lock);
  return status;
}
