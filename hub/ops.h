/* Operator commands: what the console (HTTP API, fleetctl) may ask the
 * engine to do, and what came of it. */
#ifndef HUB_OPS_H
#define HUB_OPS_H

#include <stdint.h>

#include "fleet/proto.h"

/* Operator commands: what the console (HTTP API, fleetctl) may ask. */
typedef enum hub_op_kind {
  HUB_OP_VEHICLE_REGISTER, /* vehicle, name, station, rate_cents */
  HUB_OP_VEHICLE_RETIRE,   /* vehicle */
  HUB_OP_REPAIR_START,     /* repair */
  HUB_OP_REPAIR_COMPLETE,  /* repair */
  HUB_OP_SAGA_RETRY,       /* rental: run its stuck step again */
  HUB_OP_SAGA_COMPENSATE,  /* rental: undo it (refund, release vehicle) */
  HUB_OP_READMODEL_CHECK,  /* compare the read models with a rebuild from the change log */
  HUB_OP_READMODEL_REBUILD, /* replace the read models with a rebuild from the change log */
  HUB_OP_VEHICLE_EDIT,     /* vehicle; name, station, rate_cents as fields says */
  HUB_OP_REPAIR_OPEN,      /* vehicle, text: damage reported */
  HUB_OP_BOOKING_CANCEL,   /* booking */
} hub_op_kind;

typedef struct hub_op {
  hub_op_kind kind;
  char vehicle[FL_ID_MAX + 1];
  char name[FL_TEXT_MAX + 1];
  char station[FL_ID_MAX + 1];
  int64_t rate_cents;
  char repair[FL_ID_MAX + 1];
  char rental[FL_ID_MAX + 1];
  char booking[FL_ID_MAX + 1];
  char text[FL_TEXT_MAX + 1];
  unsigned fields;           /* HUB_OP_VEHICLE_EDIT: which of name, station, rate_cents to set */
  char actor[FL_ID_MAX + 1]; /* who asked, for the event log */
} hub_op;

#define HUB_OP_FIELD_NAME 1u
#define HUB_OP_FIELD_STATION 2u
#define HUB_OP_FIELD_RATE 4u

/* What an operator command did. */
typedef struct hub_op_result {
  int code;                     /* FL_OK, FL_ERR_CONFLICT, FL_ERR_NOT_FOUND, FL_ERR_STATE, ... */
  char message[FL_TEXT_MAX + 1]; /* one sentence for the operator */
} hub_op_result;

#endif
