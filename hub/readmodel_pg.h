/* Read models on PostgreSQL: the same projections of the change log as
 * hub/readmodel.c, in PostgreSQL's dialect (hub/schema_pg.sql, "Read side").
 *
 * The store writes a vehicle, rental, repair or saga step in one statement
 * that also logs the change and projects it: "WITH w AS (<upsert> RETURNING
 * *), " followed by readmodel_pg_tail(). The change's snapshot is the JSON of
 * the row as written (json_build_object: doubles in their shortest exact
 * form), and the live read-model row is copied from the same row, so a
 * rebuild from the snapshots gives the same values, and readmodel_pg_check()
 * proves it. Everything runs inside the caller's transaction. */
#ifndef HUB_READMODEL_PG_H
#define HUB_READMODEL_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "readmodel.h"

/* Writes into buf (cap bytes) the rest of the statement that logs and
 * projects the row of kind held by the CTE "w": "l AS (INSERT INTO changes
 * ...) INSERT INTO rm_... ON CONFLICT ...". */
void readmodel_pg_tail(rm_kind kind, char *buf, size_t cap);

/* Replaces every read model with a projection of the whole change log.
 * Returns FL_OK and the number of changes replayed, or FL_ERR_DB (*failed
 * gets the PGresult of the statement that failed, or NULL when there was
 * none: the caller clears it). */
int readmodel_pg_rebuild(PGconn *conn, uint64_t *changes, PGresult **failed);

/* Rebuilds into temporary tables and compares them with the live read
 * models: FL_OK with *differing = rows that differ (0: equal) and a sentence
 * in msg naming the tables that differ; or FL_ERR_DB (*failed as above). */
int readmodel_pg_check(PGconn *conn, uint64_t *differing, char *msg, size_t cap,
                       PGresult **failed);

#endif
