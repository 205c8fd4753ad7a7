/* The hub's model: the rows it keeps and the state machines they move
 * through. States are enums here; their names (the text stored in the
 * database, published on the wire and shown to operators) come from the name
 * tables in model.c, and the store maps between the two at its edge.
 *
 * Each state machine has a transition table: model_*_may() answers whether
 * a thing may move from one state to another, and the domain modules refuse
 * (FL_ERR_STATE) any move the table does not allow. */
#ifndef HUB_MODEL_H
#define HUB_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fleet/proto.h"

/* ---- state machines -------------------------------------------------------- */

typedef enum vehicle_state {
  VEHICLE_NEW, /* not registered yet (in memory only; name "") */
  VEHICLE_AVAILABLE,
  VEHICLE_RESERVED, /* payment pending */
  VEHICLE_RENTED,
  VEHICLE_REPAIR_REQUESTED,
  VEHICLE_IN_REPAIR,
  VEHICLE_RETIRED,
  VEHICLE_STATE__COUNT
} vehicle_state;

typedef enum rental_state {
  RENTAL_REQUESTED, /* a request being decided (in memory only) */
  RENTAL_PAYMENT_PENDING,
  RENTAL_ACTIVE,
  RENTAL_RETURNED, /* late fee being charged */
  RENTAL_COMPLETED,
  RENTAL_REJECTED,
  RENTAL_CANCEL_REQUESTED,
  RENTAL_CANCELLED,
  RENTAL_STATE__COUNT
} rental_state;

typedef enum booking_state {
  BOOKING_NEW, /* a request being decided (in memory only; name "") */
  BOOKING_PAYMENT_PENDING,
  BOOKING_HELD,
  BOOKING_USED,
  BOOKING_CANCELLED,
  BOOKING_REJECTED,
  BOOKING_EXPIRED, /* not used in its window: a no-show */
  BOOKING_STATE__COUNT
} booking_state;

typedef enum repair_state {
  REPAIR_NEW, /* not opened yet (in memory only; name "") */
  REPAIR_REQUESTED,
  REPAIR_IN_PROGRESS,
  REPAIR_COMPLETED,
  REPAIR_STATE__COUNT
} repair_state;

/* A payment step of a saga (hub/saga.h). */
typedef enum step_status {
  STEP_NEW, /* not recorded yet (in memory only; name "") */
  STEP_CALLING,   /* recorded before the call; called again after a restart */
  STEP_DONE,
  STEP_DECLINED,
  STEP_RETRY,     /* failed, waiting for its next try */
  STEP_FAILED,    /* gave up: the operator may retry */
  STEP_CANCELLED, /* called off before it went through */
  STEP_STATUS__COUNT
} step_status;

typedef enum step_kind {
  STEP_CHARGE,  /* a rental's payment */
  STEP_FEE,     /* a rental's late fee */
  STEP_DEPOSIT, /* a booking's deposit */
  STEP_REFUND,  /* gives back the owner's charging step (charge or deposit) */
  STEP_KIND__COUNT
} step_kind;

/* Name of a state, as stored and published ("AVAILABLE", "calling", ...).
 * Never NULL: an out-of-range value gives "?". */
const char *vehicle_state_name(vehicle_state s);
const char *rental_state_name(rental_state s);
const char *booking_state_name(booking_state s);
const char *repair_state_name(repair_state s);
const char *step_status_name(step_status s);
const char *step_kind_name(step_kind k);

/* Parse a name back. Return FL_OK with *out, or FL_ERR_BAD_VALUE. */
int vehicle_state_parse(const char *name, vehicle_state *out);
int rental_state_parse(const char *name, rental_state *out);
int booking_state_parse(const char *name, booking_state *out);
int repair_state_parse(const char *name, repair_state *out);
int step_status_parse(const char *name, step_status *out);
int step_kind_parse(const char *name, step_kind *out);

/* Transition tables: true when the machine may go from `from` to `to`.
 * Staying in the same state is always allowed (a row rewritten). */
bool model_vehicle_may(vehicle_state from, vehicle_state to);
bool model_rental_may(rental_state from, rental_state to);
bool model_booking_may(booking_state from, booking_state to);
bool model_repair_may(repair_state from, repair_state to);
bool model_step_may(step_status from, step_status to);

/* A rental in one of these holds its vehicle (the store's unique index):
 * paying or ACTIVE. A cancel or a return frees the vehicle at once. */
bool model_rental_holds_vehicle(rental_state s);
/* A booking in one of these holds its vehicle for its window. */
bool model_booking_holds(booking_state s);

/* ---- rows ------------------------------------------------------------------- */

typedef struct hub_device {
  char id[FL_ID_MAX + 1];
  char role[16];
  uint64_t boot;
  uint64_t up_seq;       /* ack watermark */
  uint64_t down_seq;     /* highest downlink seq issued */
  uint64_t down_applied; /* highest downlink seq the device acked */
  bool online;
  int64_t last_seen_ms;
  int64_t clock_skew_ms;
} hub_device;

typedef struct hub_vehicle {
  char id[FL_ID_MAX + 1];
  char name[FL_TEXT_MAX + 1];
  char station[FL_ID_MAX + 1];
  int64_t rate_cents; /* per hour */
  vehicle_state state;
  char rental[FL_ID_MAX + 1]; /* the open rental holding it, "" if none */
  bool repair_due;            /* a fault came in while rented: repair at return */
  int energy_pct;             /* -1: unknown */
  double lat, lon;
  bool has_position;
  int64_t odometer_m;
  int64_t updated_ms;
} hub_vehicle;

typedef struct hub_rental {
  char id[FL_ID_MAX + 1];
  char vehicle[FL_ID_MAX + 1];
  char customer[FL_ID_MAX + 1];
  char kiosk[FL_ID_MAX + 1];
  char reply_topic[160];
  rental_state state;
  uint32_t minutes;
  int64_t amount_cents, charged_cents, refunded_cents, fee_cents;
  char reason[FL_TEXT_MAX + 1];
  bool started; /* unlocked: a cancel is no longer allowed */
  int64_t created_ms, due_ms, ended_ms, updated_ms;
} hub_rental;

/* One payment step of a saga, keyed by (owner, kind). */
typedef struct hub_step {
  char owner[FL_ID_MAX + 1]; /* the rental or booking whose step it is */
  step_kind kind;
  step_status status;
  char idem_key[FL_ID_MAX + 24];
  int64_t amount_cents;
  int attempts;
  char provider_ref[FL_ID_MAX + 1];
  char last_error[FL_TEXT_MAX + 1];
  int64_t next_try_ms;
  int64_t updated_ms;
} hub_step;

typedef struct hub_repair {
  char id[FL_ID_MAX + 1];
  char vehicle[FL_ID_MAX + 1];
  repair_state state;
  char dtcs[FL_MAX_DTCS * (FL_DTC_MAX + 1) + 1]; /* comma-separated */
  char severity[16];
  char text[FL_TEXT_MAX + 1];
  int64_t opened_ms, updated_ms;
} hub_repair;

typedef struct hub_booking {
  char id[FL_ID_MAX + 1];
  char vehicle[FL_ID_MAX + 1];
  char customer[FL_ID_MAX + 1];
  char kiosk[FL_ID_MAX + 1];
  char reply_topic[160];
  booking_state state;
  int64_t start_ms, end_ms;
  int64_t deposit_cents, charged_cents, refunded_cents;
  char rental[FL_ID_MAX + 1]; /* the rental that used it */
  char reason[FL_TEXT_MAX + 1];
  int64_t created_ms, updated_ms;
} hub_booking;

/* One stored hub -> device message. */
typedef struct hub_downlink {
  char device[FL_ID_MAX + 1];
  uint64_t seq;
  char type[24];
  char topic[160];
  uint8_t corr[FL_ID_MAX];
  size_t corr_len;
  int64_t expires_ms;     /* 0: never */
  const uint8_t *payload; /* valid until the next store call */
  size_t len;
} hub_downlink;

/* Copies src into the char array dst, cut to its size. */
#define model_copy(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

#endif
