#include "model.h"

#include <string.h>

#include "fleet/error.h"

static const char *const vehicle_names[VEHICLE_STATE__COUNT] = {
    [VEHICLE_NEW] = "",
    [VEHICLE_AVAILABLE] = "AVAILABLE",
    [VEHICLE_RESERVED] = "RESERVED",
    [VEHICLE_RENTED] = "RENTED",
    [VEHICLE_REPAIR_REQUESTED] = "REPAIR_REQUESTED",
    [VEHICLE_IN_REPAIR] = "IN_REPAIR",
    [VEHICLE_RETIRED] = "RETIRED",
};

static const char *const rental_names[RENTAL_STATE__COUNT] = {
    [RENTAL_REQUESTED] = "REQUESTED",
    [RENTAL_PAYMENT_PENDING] = "PAYMENT_PENDING",
    [RENTAL_ACTIVE] = "ACTIVE",
    [RENTAL_RETURNED] = "RETURNED",
    [RENTAL_COMPLETED] = "COMPLETED",
    [RENTAL_REJECTED] = "REJECTED",
    [RENTAL_CANCEL_REQUESTED] = "CANCEL_REQUESTED",
    [RENTAL_CANCELLED] = "CANCELLED",
};

static const char *const booking_names[BOOKING_STATE__COUNT] = {
    [BOOKING_NEW] = "",
    [BOOKING_PAYMENT_PENDING] = "PAYMENT_PENDING",
    [BOOKING_HELD] = "HELD",
    [BOOKING_USED] = "USED",
    [BOOKING_CANCELLED] = "CANCELLED",
    [BOOKING_REJECTED] = "REJECTED",
    [BOOKING_EXPIRED] = "EXPIRED",
};

static const char *const repair_names[REPAIR_STATE__COUNT] = {
    [REPAIR_NEW] = "",
    [REPAIR_REQUESTED] = "REQUESTED",
    [REPAIR_IN_PROGRESS] = "IN_PROGRESS",
    [REPAIR_COMPLETED] = "COMPLETED",
};

static const char *const step_status_names[STEP_STATUS__COUNT] = {
    [STEP_NEW] = "",
    [STEP_CALLING] = "calling",
    [STEP_DONE] = "done",
    [STEP_DECLINED] = "declined",
    [STEP_RETRY] = "retry",
    [STEP_FAILED] = "failed",
    [STEP_CANCELLED] = "cancelled",
};

static const char *const step_kind_names[STEP_KIND__COUNT] = {
    [STEP_CHARGE] = "charge",
    [STEP_FEE] = "fee",
    [STEP_DEPOSIT] = "deposit",
    [STEP_REFUND] = "refund",
};

static const char *name_of(const char *const *names, int n, int v) {
  return v >= 0 && v < n && names[v] ? names[v] : "?";
}

static int parse(const char *const *names, int n, const char *name, int *out) {
  for (int i = 0; name && i < n; i++)
    if (names[i] && strcmp(names[i], name) == 0) {
      *out = i;
      return FL_OK;
    }
  return FL_ERR_BAD_VALUE;
}

#define NAME_AND_PARSE(type, prefix, names, count)                         \
  const char *prefix##_name(type v) { return name_of(names, count, (int)v); } \
  int prefix##_parse(const char *name, type *out) {                        \
    int v = 0;                                                             \
    int rc = parse(names, count, name, &v);                                \
    if (rc == FL_OK) *out = (type)v;                                       \
    return rc;                                                             \
  }

NAME_AND_PARSE(vehicle_state, vehicle_state, vehicle_names, VEHICLE_STATE__COUNT)
NAME_AND_PARSE(rental_state, rental_state, rental_names, RENTAL_STATE__COUNT)
NAME_AND_PARSE(booking_state, booking_state, booking_names, BOOKING_STATE__COUNT)
NAME_AND_PARSE(repair_state, repair_state, repair_names, REPAIR_STATE__COUNT)
NAME_AND_PARSE(step_status, step_status, step_status_names, STEP_STATUS__COUNT)
NAME_AND_PARSE(step_kind, step_kind, step_kind_names, STEP_KIND__COUNT)

/* Transition tables: bit `to` of row `from` is set when the move is allowed. */
#define B(x) (1u << (x))

static const unsigned vehicle_moves[VEHICLE_STATE__COUNT] = {
    [VEHICLE_NEW] = B(VEHICLE_AVAILABLE),
    [VEHICLE_AVAILABLE] = B(VEHICLE_RESERVED) | B(VEHICLE_REPAIR_REQUESTED) | B(VEHICLE_RETIRED),
    [VEHICLE_RESERVED] = B(VEHICLE_RENTED) | B(VEHICLE_AVAILABLE) | B(VEHICLE_REPAIR_REQUESTED),
    [VEHICLE_RENTED] = B(VEHICLE_AVAILABLE) | B(VEHICLE_REPAIR_REQUESTED),
    [VEHICLE_REPAIR_REQUESTED] = B(VEHICLE_IN_REPAIR) | B(VEHICLE_RETIRED),
    [VEHICLE_IN_REPAIR] = B(VEHICLE_AVAILABLE) | B(VEHICLE_RETIRED),
    [VEHICLE_RETIRED] = 0,
};

static const unsigned rental_moves[RENTAL_STATE__COUNT] = {
    [RENTAL_REQUESTED] = B(RENTAL_PAYMENT_PENDING) | B(RENTAL_REJECTED),
    [RENTAL_PAYMENT_PENDING] = B(RENTAL_ACTIVE) | B(RENTAL_REJECTED) |
                               B(RENTAL_CANCEL_REQUESTED) | B(RENTAL_CANCELLED),
    [RENTAL_ACTIVE] = B(RENTAL_RETURNED) | B(RENTAL_COMPLETED) | B(RENTAL_CANCEL_REQUESTED),
    [RENTAL_RETURNED] = B(RENTAL_COMPLETED) | B(RENTAL_CANCEL_REQUESTED),
    [RENTAL_COMPLETED] = 0,
    [RENTAL_REJECTED] = 0,
    [RENTAL_CANCEL_REQUESTED] = B(RENTAL_CANCELLED),
    [RENTAL_CANCELLED] = 0,
};

static const unsigned booking_moves[BOOKING_STATE__COUNT] = {
    [BOOKING_NEW] = B(BOOKING_PAYMENT_PENDING) | B(BOOKING_HELD) | B(BOOKING_REJECTED),
    [BOOKING_PAYMENT_PENDING] = B(BOOKING_HELD) | B(BOOKING_REJECTED) | B(BOOKING_CANCELLED),
    [BOOKING_HELD] = B(BOOKING_USED) | B(BOOKING_CANCELLED) | B(BOOKING_EXPIRED),
    [BOOKING_USED] = 0,
    [BOOKING_CANCELLED] = 0,
    [BOOKING_REJECTED] = 0,
    [BOOKING_EXPIRED] = 0,
};

static const unsigned repair_moves[REPAIR_STATE__COUNT] = {
    [REPAIR_NEW] = B(REPAIR_REQUESTED),
    [REPAIR_REQUESTED] = B(REPAIR_IN_PROGRESS),
    [REPAIR_IN_PROGRESS] = B(REPAIR_COMPLETED),
    [REPAIR_COMPLETED] = 0,
};

static const unsigned step_moves[STEP_STATUS__COUNT] = {
    [STEP_NEW] = B(STEP_CALLING),
    [STEP_CALLING] = B(STEP_DONE) | B(STEP_DECLINED) | B(STEP_RETRY) | B(STEP_FAILED) |
                     B(STEP_CANCELLED),
    [STEP_DONE] = 0,
    [STEP_DECLINED] = 0,
    [STEP_RETRY] = B(STEP_CALLING) | B(STEP_CANCELLED),
    [STEP_FAILED] = B(STEP_CALLING) | B(STEP_CANCELLED),
    [STEP_CANCELLED] = 0,
};

static bool may(const unsigned *moves, int n, int from, int to) {
  if (from < 0 || from >= n || to < 0 || to >= n) return false;
  return from == to || (moves[from] & B(to)) != 0;
}

bool model_vehicle_may(vehicle_state from, vehicle_state to) {
  return may(vehicle_moves, VEHICLE_STATE__COUNT, (int)from, (int)to);
}
bool model_rental_may(rental_state from, rental_state to) {
  return may(rental_moves, RENTAL_STATE__COUNT, (int)from, (int)to);
}
bool model_booking_may(booking_state from, booking_state to) {
  return may(booking_moves, BOOKING_STATE__COUNT, (int)from, (int)to);
}
bool model_repair_may(repair_state from, repair_state to) {
  return may(repair_moves, REPAIR_STATE__COUNT, (int)from, (int)to);
}
bool model_step_may(step_status from, step_status to) {
  return may(step_moves, STEP_STATUS__COUNT, (int)from, (int)to);
}

bool model_rental_holds_vehicle(rental_state s) {
  return s == RENTAL_PAYMENT_PENDING || s == RENTAL_ACTIVE;
}

bool model_booking_holds(booking_state s) {
  return s == BOOKING_PAYMENT_PENDING || s == BOOKING_HELD;
}
