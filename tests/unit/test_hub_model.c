/* Unit test of the hub's state machines (hub/model.h), table-driven: for
 * every machine, every pair of states is tried, and exactly the moves listed
 * here (and staying put) are allowed. The lists are written from the
 * product's rules (docs/architecture.md, "State machines"), not read from
 * the code's tables, so a move added or lost in model.c fails here. */
#include <stdio.h>
#include <string.h>

#include "fleet/error.h"
#include "model.h"
#include "unit.h"

typedef struct move {
  int from, to;
} move;

static const move vehicle_ok[] = {
    {VEHICLE_NEW, VEHICLE_AVAILABLE},              /* registered */
    {VEHICLE_AVAILABLE, VEHICLE_RESERVED},         /* rental requested, paying */
    {VEHICLE_RESERVED, VEHICLE_RENTED},            /* charge went through */
    {VEHICLE_RESERVED, VEHICLE_AVAILABLE},         /* declined, cancelled */
    {VEHICLE_RESERVED, VEHICLE_REPAIR_REQUESTED},  /* declined after a fault came in */
    {VEHICLE_RENTED, VEHICLE_AVAILABLE},           /* returned */
    {VEHICLE_RENTED, VEHICLE_REPAIR_REQUESTED},    /* returned after a fault */
    {VEHICLE_AVAILABLE, VEHICLE_REPAIR_REQUESTED}, /* fault */
    {VEHICLE_REPAIR_REQUESTED, VEHICLE_IN_REPAIR}, /* mechanic starts */
    {VEHICLE_IN_REPAIR, VEHICLE_AVAILABLE},        /* mechanic completes */
    {VEHICLE_AVAILABLE, VEHICLE_RETIRED},          /* retired (no rental holds it) */
    {VEHICLE_REPAIR_REQUESTED, VEHICLE_RETIRED},
    {VEHICLE_IN_REPAIR, VEHICLE_RETIRED},
};

static const move rental_ok[] = {
    {RENTAL_REQUESTED, RENTAL_PAYMENT_PENDING},
    {RENTAL_REQUESTED, RENTAL_REJECTED},               /* unavailable, booked, breaker open */
    {RENTAL_PAYMENT_PENDING, RENTAL_ACTIVE},           /* charged */
    {RENTAL_PAYMENT_PENDING, RENTAL_REJECTED},         /* declined, failed for good */
    {RENTAL_PAYMENT_PENDING, RENTAL_CANCEL_REQUESTED}, /* cancel while the charge is in flight */
    {RENTAL_PAYMENT_PENDING, RENTAL_CANCELLED},        /* cancel while the charge waits to retry */
    {RENTAL_ACTIVE, RENTAL_COMPLETED},                 /* returned on time */
    {RENTAL_ACTIVE, RENTAL_RETURNED},                  /* returned late: fee to charge */
    {RENTAL_ACTIVE, RENTAL_CANCEL_REQUESTED},          /* cancelled before the start, compensated */
    {RENTAL_RETURNED, RENTAL_COMPLETED},               /* fee settled */
    {RENTAL_RETURNED, RENTAL_CANCEL_REQUESTED},        /* compensated by the operator */
    {RENTAL_CANCEL_REQUESTED, RENTAL_CANCELLED},       /* refunded */
};

static const move booking_ok[] = {
    {BOOKING_NEW, BOOKING_PAYMENT_PENDING}, {BOOKING_NEW, BOOKING_HELD}, /* no deposit */
    {BOOKING_NEW, BOOKING_REJECTED},        {BOOKING_PAYMENT_PENDING, BOOKING_HELD},
    {BOOKING_PAYMENT_PENDING, BOOKING_REJECTED}, {BOOKING_PAYMENT_PENDING, BOOKING_CANCELLED},
    {BOOKING_HELD, BOOKING_USED},           {BOOKING_HELD, BOOKING_CANCELLED},
    {BOOKING_HELD, BOOKING_EXPIRED}, /* a no-show */
};

static const move repair_ok[] = {
    {REPAIR_NEW, REPAIR_REQUESTED},
    {REPAIR_REQUESTED, REPAIR_IN_PROGRESS},
    {REPAIR_IN_PROGRESS, REPAIR_COMPLETED},
};

static const move step_ok[] = {
    {STEP_NEW, STEP_CALLING},     {STEP_CALLING, STEP_DONE},   {STEP_CALLING, STEP_DECLINED},
    {STEP_CALLING, STEP_RETRY},   {STEP_CALLING, STEP_FAILED}, {STEP_CALLING, STEP_CANCELLED},
    {STEP_RETRY, STEP_CALLING},   {STEP_RETRY, STEP_CANCELLED}, {STEP_FAILED, STEP_CALLING},
    {STEP_FAILED, STEP_CANCELLED},
};

static bool listed(const move *ok, size_t n, int from, int to) {
  for (size_t i = 0; i < n; i++)
    if (ok[i].from == from && ok[i].to == to) return true;
  return false;
}

/* Tries every pair of an n-state machine against its list. */
static void check_machine(const char *name, int n, bool (*may)(int, int),
                          const char *(*state_name)(int), const move *ok, size_t n_ok) {
  int allowed = 0, refused = 0;
  for (int from = 0; from < n; from++)
    for (int to = 0; to < n; to++) {
      bool want = from == to || listed(ok, n_ok, from, to);
      bool got = may(from, to);
      if (got != want)
        fprintf(stderr, "%s: %s -> %s is %s, should be %s\n", name, state_name(from),
                state_name(to), got ? "allowed" : "refused", want ? "allowed" : "refused");
      CHECK(got == want);
      if (from != to && want) allowed++;
      if (from != to && !want) refused++;
    }
  CHECK(allowed == (int)n_ok);
  printf("%-8s %d moves allowed, %d refused\n", name, allowed, refused);
}

/* Adapters with int states, so one checker serves every machine. */
static bool vehicle_may(int a, int b) { return model_vehicle_may((vehicle_state)a, (vehicle_state)b); }
static bool rental_may(int a, int b) { return model_rental_may((rental_state)a, (rental_state)b); }
static bool booking_may(int a, int b) { return model_booking_may((booking_state)a, (booking_state)b); }
static bool repair_may(int a, int b) { return model_repair_may((repair_state)a, (repair_state)b); }
static bool step_may(int a, int b) { return model_step_may((step_status)a, (step_status)b); }
static const char *vehicle_nm(int s) { return vehicle_state_name((vehicle_state)s); }
static const char *rental_nm(int s) { return rental_state_name((rental_state)s); }
static const char *booking_nm(int s) { return booking_state_name((booking_state)s); }
static const char *repair_nm(int s) { return repair_state_name((repair_state)s); }
static const char *step_nm(int s) { return step_status_name((step_status)s); }

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Every state's name parses back to it; unknown names are refused. */
static void check_names(void) {
  for (int s = 0; s < VEHICLE_STATE__COUNT; s++) {
    vehicle_state v;
    CHECK(vehicle_state_parse(vehicle_state_name((vehicle_state)s), &v) == FL_OK && (int)v == s);
  }
  for (int s = 0; s < RENTAL_STATE__COUNT; s++) {
    rental_state v;
    CHECK(rental_state_parse(rental_state_name((rental_state)s), &v) == FL_OK && (int)v == s);
  }
  for (int s = 0; s < BOOKING_STATE__COUNT; s++) {
    booking_state v;
    CHECK(booking_state_parse(booking_state_name((booking_state)s), &v) == FL_OK && (int)v == s);
  }
  for (int s = 0; s < STEP_KIND__COUNT; s++) {
    step_kind v;
    CHECK(step_kind_parse(step_kind_name((step_kind)s), &v) == FL_OK && (int)v == s);
  }
  vehicle_state v;
  CHECK(vehicle_state_parse("available", &v) == FL_ERR_BAD_VALUE); /* names are exact */
  CHECK(vehicle_state_parse("PARKED", &v) == FL_ERR_BAD_VALUE);
  CHECK(strcmp(rental_state_name((rental_state)99), "?") == 0);
  CHECK(strcmp(step_status_name(STEP_CALLING), "calling") == 0);
  CHECK(strcmp(vehicle_state_name(VEHICLE_REPAIR_REQUESTED), "REPAIR_REQUESTED") == 0);
}

int main(void) {
  check_machine("vehicle", VEHICLE_STATE__COUNT, vehicle_may, vehicle_nm, vehicle_ok, N(vehicle_ok));
  check_machine("rental", RENTAL_STATE__COUNT, rental_may, rental_nm, rental_ok, N(rental_ok));
  check_machine("booking", BOOKING_STATE__COUNT, booking_may, booking_nm, booking_ok, N(booking_ok));
  check_machine("repair", REPAIR_STATE__COUNT, repair_may, repair_nm, repair_ok, N(repair_ok));
  check_machine("step", STEP_STATUS__COUNT, step_may, step_nm, step_ok, N(step_ok));
  check_names();
  CHECK(model_rental_holds_vehicle(RENTAL_ACTIVE) && !model_rental_holds_vehicle(RENTAL_RETURNED) &&
        !model_rental_holds_vehicle(RENTAL_CANCEL_REQUESTED));
  CHECK(model_booking_holds(BOOKING_HELD) && !model_booking_holds(BOOKING_USED));
  return unit_report("hub_model");
}
