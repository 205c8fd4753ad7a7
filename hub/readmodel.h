/* Read models: projections of the change log (hub/schema.sql, "Read side").
 *
 * The store calls readmodel_record() after it writes a vehicle, rental,
 * repair or saga step row: one row is appended to `changes` with a JSON
 * snapshot of the row as written, and the thing's read-model row (rm_fleet,
 * rm_rentals, rm_repairs, rm_sagas) is projected from the same write-side
 * row, column by column as the snapshot gives it back (REAL columns rounded
 * through JSON like the snapshot). A rebuild projects the snapshot of the
 * last change of every thing, so the live read models and a rebuild are
 * equal, and readmodel_check() proves it. Everything runs inside the
 * caller's transaction. */
#ifndef HUB_READMODEL_H
#define HUB_READMODEL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

typedef enum rm_kind { RM_VEHICLE, RM_RENTAL, RM_REPAIR, RM_SAGA, RM_BOOKING, RM__COUNT } rm_kind;

typedef struct readmodel readmodel;

/* Prepares the statements on db (schema already created). Returns FL_OK and
 * *out (free with readmodel_close), or FL_ERR_DB / FL_ERR_NOMEM. */
int readmodel_open(sqlite3 *db, readmodel **out);
void readmodel_close(readmodel *rm);

/* Logs the change of one thing, read from its write-side row, and projects
 * it. key2 is the step for RM_SAGA, NULL otherwise. Returns FL_OK or FL_ERR_DB. */
int readmodel_record(readmodel *rm, rm_kind kind, const char *key, const char *key2);

/* Replaces every read model with a projection of the whole change log.
 * Returns FL_OK and the number of changes replayed, or FL_ERR_DB. */
int readmodel_rebuild(sqlite3 *db, uint64_t *changes);

/* Rebuilds into temporary tables and compares them with the live read
 * models. Returns FL_OK with *differing = rows that differ (0: equal), and a
 * sentence in msg naming the tables that differ; or FL_ERR_DB. */
int readmodel_check(sqlite3 *db, uint64_t *differing, char *msg, size_t cap);

#endif
