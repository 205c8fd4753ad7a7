/* What the hub tells dashboards: the retained state of each vehicle, rental
 * and repair (fleet/v1/state/...) and notifications of changes and alerts
 * (fleet/v1/notify/...), held in the batch's effects until commit. */
#ifndef HUB_PUBLISH_H
#define HUB_PUBLISH_H

#include "txn.h"

/* Publish the thing's retained state and, when its state differs from
 * `from`, a notification of the change (text: a reason, may be NULL). */
int publish_vehicle(hub_txn *t, const hub_vehicle *v, vehicle_state from, const char *text);
int publish_rental(hub_txn *t, const hub_rental *r, rental_state from);
int publish_repair(hub_txn *t, const hub_repair *r, repair_state from);
/* A booking has no retained state: only the notification. */
int publish_booking(hub_txn *t, const hub_booking *b, booking_state from, const char *text);

/* News of a booking that is not a change of its state (moved to another
 * vehicle): a notification whatever the state. */
int publish_booking_news(hub_txn *t, const hub_booking *b, const char *text);

/* A payment notice (fleet/v1/notify/payment): money moved for owner (a
 * rental or booking) of customer; what: charged, refunded, fee_charged,
 * deposit_kept, deposit_returned. */
int publish_payment(hub_txn *t, const char *owner, const char *customer, const char *what,
                    int64_t amount_cents);

/* Notes that station's counts may have changed (see publish_stations). */
void publish_station_changed(hub_txn *t, const char *station);

/* Publishes the station_state (retained) of every station whose counts may
 * have changed in this batch (vehicles' states, stations and held bookings):
 * once per station per batch, at its end. */
int publish_stations(hub_txn *t);

/* Holds the batch's notices (rev 1.2): the changes collected in this batch,
 * one fleet/v1/notices/{kind} message per kind (split at FL_MAX_NOTICES
 * changes), in the order of each kind's first change. Durable, as every
 * notification. Returns FL_OK or an fl_err. Call once, at the batch's end. */
int publish_notices(hub_txn *t);

/* An operator alert (fleet/v1/notify/alert), also logged as a warning. */
int publish_alert(hub_txn *t, const char *id, const char *name, const char *text);

#endif
