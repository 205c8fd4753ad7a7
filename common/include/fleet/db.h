/* SQLite helpers shared by the hub and the agent: open with the project's
 * pragmas, run statements, translate SQLite codes into fl_err at this edge. */
#ifndef FLEET_DB_H
#define FLEET_DB_H

#include <sqlite3.h>
#include <stdbool.h>

typedef enum fl_db_sync {
  FL_DB_SYNC_OFF,    /* no fsync: fastest, loses recent commits on any OS crash */
  FL_DB_SYNC_NORMAL, /* WAL + NORMAL: survives a process crash, may lose last commits on power loss */
  FL_DB_SYNC_FULL,   /* WAL + FULL: survives power loss, one fsync per commit */
} fl_db_sync;

/* Makes SQLite's page cache start empty: no block of 20 pages set aside per
 * connection when it first reads, each page allocated when it is cached (a
 * small database caches a few pages, bench/run footprint). Process-wide: call
 * once at start, before any other SQLite call. Returns FL_OK, or FL_ERR_DB if
 * SQLite was already in use (nothing changed). */
int fl_db_init_small(void);

/* Opens (creating if needed) the database at path in WAL mode with the given
 * durability, a busy timeout and foreign keys on; read_only opens an existing
 * file for reading only. Returns FL_OK and *out (close with fl_db_close), or
 * FL_ERR_DB after logging SQLite's message. */
int fl_db_open(const char *path, fl_db_sync sync, bool read_only, sqlite3 **out);

/* As fl_db_open (read-write), and a new database file gets pages of
 * page_size bytes (512..65536, a power of two; 0: SQLite's 4096). Smaller
 * pages mean fewer bytes written per small commit (flash wear); an existing
 * file keeps its page size. */
int fl_db_open_paged(const char *path, fl_db_sync sync, int page_size, sqlite3 **out);

/* Closes db, finalizing nothing: finalize your statements first. NULL ok. */
void fl_db_close(sqlite3 *db);

/* Runs one or more statements without results. Returns FL_OK or FL_ERR_DB
 * (logged with the SQL's first words). */
int fl_db_exec(sqlite3 *db, const char *sql);

/* Prepares sql into *st (persistent). Returns FL_OK or FL_ERR_DB (logged). */
int fl_db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st);

/* Steps a statement that returns no row, then resets it and clears its
 * bindings. Returns FL_OK, FL_ERR_CONFLICT on a constraint violation, or
 * FL_ERR_DB (logged). */
int fl_db_step_done(sqlite3_stmt *st);

/* Parses "off", "normal", "full"; returns -1 for anything else. */
int fl_db_sync_from_name(const char *name);

/* Translates an SQLite result code into an fl_err. */
int fl_db_err(int sqlite_rc);

#endif
