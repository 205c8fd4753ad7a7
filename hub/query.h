/* Kiosk self-service (docs/protocol.md, P-QRY-*): a kiosk asks which
 * vehicles are available (at a station, now or for a window) or what a
 * customer has (rentals with due time and running fee, bookings, money), and
 * gets an `answer` on its own reply topic. A query changes nothing; the
 * answer is neither stored nor sequenced (no answer: the kiosk asks again). */
#ifndef HUB_QUERY_H
#define HUB_QUERY_H

#include "txn.h"

/* Answers query m of o->device on o->reply_topic (held until commit). A
 * device that is not a kiosk gets ok false with the reason (P-QRY-3).
 * Returns FL_OK or the store's fl_err. */
int query_answer(hub_txn *t, const hub_origin *o, const fl_msg *m);

#endif
