/* Decisions: the hub's last answer per request (rental or booking id), kept
 * in the agent's SQLite file so that `fleet-agent ctl decision` can show the
 * outcome of a request made while offline. Internal to the agent library. */
#ifndef AGENT_DECISIONS_H
#define AGENT_DECISIONS_H

#include <sqlite3.h>

#include "fleet/agent.h"

/* Creates the table if needed. Returns FL_OK or FL_ERR_DB. */
int decisions__init(sqlite3 *db);

/* Records that a request for corr was queued (no-op if corr is known).
 * Returns FL_OK or FL_ERR_DB. */
int decisions__queue(sqlite3 *db, const char *corr, fl_subject subject);

/* Stores decision m (type decision) for m->env.corr, bumping its rev.
 * Returns FL_OK or FL_ERR_DB. */
int decisions__store(sqlite3 *db, const fl_msg *m);

/* Reads the decision for corr. Returns FL_OK, FL_ERR_NOT_FOUND, FL_ERR_DB. */
int decisions__get(sqlite3 *db, const char *corr, agent_decision *out);

#endif
