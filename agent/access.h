/* Access: who may unlock this vehicle. The bookings the hub sent (a
 * "bookings" command replaces the whole list) and the customers the hub
 * granted with an "unlock" command (cleared by a "lock" command), kept in the
 * agent's SQLite file so that a booked customer gets in while offline.
 * Internal to the agent library. */
#ifndef AGENT_ACCESS_H
#define AGENT_ACCESS_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet/proto.h"

/* Creates the tables if needed. Returns FL_OK or FL_ERR_DB. */
int access__init(sqlite3 *db);

/* Replaces the stored bookings with b[0..n). Returns FL_OK or FL_ERR_DB. */
int access__replace_bookings(sqlite3 *db, const fl_booking *b, uint32_t n);

/* Copies up to cap bookings (by start) into out; returns how many are
 * stored, or FL_ERR_DB. */
int access__bookings(sqlite3 *db, fl_booking *out, size_t cap);

/* Grants customer (hub unlock command); NULL or "" revokes every grant.
 * Returns FL_OK or FL_ERR_DB. */
int access__grant(sqlite3 *db, const char *customer);

/* Decides whether customer may unlock at device time now_ms. Returns 1
 * (allowed) or 0 (refused), with the reason in why; FL_ERR_DB. */
int access__check(sqlite3 *db, const char *customer, int64_t now_ms, char *why, size_t cap);

#endif
