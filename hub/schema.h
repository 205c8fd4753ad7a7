/* The hub's SQLite schema (hub/schema.sql), compiled into fleet-hub by
 * hub/CMakeLists.txt: one NUL-terminated string of SQL statements, ready for
 * fl_db_exec(). */
#ifndef HUB_SCHEMA_H
#define HUB_SCHEMA_H

extern const char hub_schema_sql[];

#endif
