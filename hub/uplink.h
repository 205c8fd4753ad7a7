/* The device protocol on the hub's side (docs/protocol.md): what a device
 * may send on which channel, its events applied once and in order (a
 * duplicate is acked again, a gap answered with a sync), hellos answered
 * with a sync and the stored downlink, presence and downlink acks recorded,
 * and everything malformed kept as a dead letter for the operator. Events
 * go to the domain rules (hub/domain.h). */
#ifndef HUB_UPLINK_H
#define HUB_UPLINK_H

#include <stddef.h>
#include <stdint.h>

#include "txn.h"

/* One message from a device, as the broker delivered it. */
typedef struct uplink_msg {
  const char *topic;
  const char *response_topic; /* NULL when the message has none */
  const uint8_t *payload;
  size_t len;
} uplink_msg;

typedef enum uplink_outcome {
  UPLINK_APPLIED,   /* a new event, applied */
  UPLINK_DUPLICATE, /* an event applied before: acked again */
  UPLINK_GAP,       /* an event after a gap: a sync asks for a resend */
  UPLINK_CONTROL,   /* a hello, an offline will or a downlink ack */
  UPLINK_REJECTED,  /* dead-lettered */
} uplink_outcome;

typedef struct uplink_result {
  uplink_outcome outcome;
  bool is_event;             /* a sequenced event (valid once decoded) */
  fl_msg msg;                /* the decoded message (unless rejected before decoding) */
  char ack_dev[FL_ID_MAX + 1]; /* an ack owed if this input commits ("" none) */
  uint64_t ack_seq;
} uplink_result;

/* Applies in inside the open transaction (and the input's savepoint).
 * Returns FL_OK (also for a rejected message: it is dead-lettered), or the
 * fl_err of a domain rule or of the store; then the caller rolls the input
 * back and calls uplink_reject(). */
int uplink_apply(hub_txn *t, const uplink_msg *in, uplink_result *res);

/* After a domain rule failed with code on the event in res (and the input
 * was rolled back): keeps it as a dead letter, and consumes its seq when it
 * was the device's next, so that the device moves on. res->ack_* are set. */
int uplink_reject(hub_txn *t, const uplink_msg *in, uplink_result *res, int code);

#endif
