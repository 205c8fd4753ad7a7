/* The hub's PostgreSQL schema (hub/schema_pg.sql), compiled into fleet-hub
 * by hub/CMakeLists.txt: one NUL-terminated string of SQL statements. */
#ifndef HUB_SCHEMA_PG_H
#define HUB_SCHEMA_PG_H

extern const char hub_schema_pg_sql[];

#endif
