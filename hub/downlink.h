/* The hub's outbox to devices: decisions and commands are stored with the
 * device's next downlink seq in the batch's transaction, published after
 * commit when the device is online, and kept until the device acknowledges
 * them, so that a device that was away gets them again after its hello
 * (P-SEQ-9) and a hub that restarted publishes them again. */
#ifndef HUB_DOWNLINK_H
#define HUB_DOWNLINK_H

#include "txn.h"

/* Loads device id, or a fresh row for a device never seen. */
int downlink_device(hub_txn *t, const char *id, hub_device *d);

/* Stores m as the next downlink message of device and holds its publish on
 * topic (with correlation data corr, may be NULL) for after commit.
 * expires_ms 0: never. Returns FL_OK or an fl_err. */
int downlink_send(hub_txn *t, const char *device, const char *topic, fl_msg *m, const char *corr,
                  int64_t expires_ms);

/* Holds a publish of every stored message of device after seq `after`
 * (commands already expired are left out: P-SEQ-11). */
int downlink_resend(hub_txn *t, const char *device, uint64_t after);

/* Same for every online device (after the hub (re)connects to the broker). */
int downlink_resend_online(hub_txn *t);

/* The device applied its downlink up to seq upto: forgets those messages.
 * d is updated (not stored). */
int downlink_acked(hub_txn *t, hub_device *d, uint64_t upto);

#endif
