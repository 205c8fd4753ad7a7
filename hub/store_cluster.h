/* The cluster's own view of the store (cluster mode, hub/cluster.h): the
 * partition count, the leases of the partitions and the live hubs, in the
 * tables cluster, partitions and hubs (hub/schema_pg.sql, version 5). Each
 * call is one short statement of its own (autocommit) on a connection of its
 * own, so that the cluster's heartbeat never waits for the engine's batch
 * transaction. PostgreSQL only (hub/store_pg_cluster.c).
 *
 * Every function returns FL_OK or an fl_err: FL_ERR_UNAVAILABLE when the
 * database cannot be reached (the next call reconnects), FL_ERR_DB otherwise. */
#ifndef HUB_STORE_CLUSTER_H
#define HUB_STORE_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "fleet/proto.h"

typedef struct hub_cluster_db hub_cluster_db;

/* A partition held: its number and the epoch of this hub's lease. */
typedef struct hub_lease {
  uint32_t part;
  int64_t epoch;
} hub_lease;

/* What a hub says of itself at each heartbeat (the table hubs). */
typedef struct hub_member {
  char id[FL_ID_MAX + 1];
  int64_t started_ms;
  uint32_t owned;
  uint64_t queue_depth;
  uint64_t events_applied;
} hub_member;

/* Connects to url ("" : the PG* environment). Returns FL_OK and *out (free
 * with hub_cluster_db_close), or FL_ERR_UNAVAILABLE (logged) / FL_ERR_NOMEM. */
int hub_cluster_db_open(const char *url, hub_cluster_db **out);
void hub_cluster_db_close(hub_cluster_db *db);

/* Fixes the fleet's partition count at its first start (and creates a row
 * per partition), or reads the count fixed before: *stored. */
int hub_cluster_db_setup(hub_cluster_db *db, uint32_t partitions, int64_t now_ms,
                         uint32_t *stored);

/* Records me's heartbeat at now_ms. */
int hub_cluster_db_heartbeat(hub_cluster_db *db, const hub_member *me, int64_t now_ms);

/* The ids of the hubs whose heartbeat is after since_ms, sorted, into ids
 * (cap of them); *n may exceed cap (then only cap are there). */
int hub_cluster_db_live(hub_cluster_db *db, int64_t since_ms, char (*ids)[FL_ID_MAX + 1],
                        size_t cap, size_t *n);

/* The partitions hub holds: each lease extended to until_ms; with bump, each
 * epoch is raised too (a hub starting again under the same id takes its
 * partitions back as a new owner). Fills out (cap) and *n, by partition. */
int hub_cluster_db_renew(hub_cluster_db *db, const char *hub, int64_t until_ms, int bump,
                         hub_lease *out, size_t cap, size_t *n);

/* Takes up to k partitions that nobody holds or whose lease ended before
 * now_ms (FOR UPDATE SKIP LOCKED: rows another hub is taking are passed
 * over), each with its epoch raised and leased until until_ms. */
int hub_cluster_db_take(hub_cluster_db *db, const char *hub, int64_t now_ms, int64_t until_ms,
                        size_t k, hub_lease *out, size_t cap, size_t *n);

/* Gives up the n partitions parts[] of hub at once (owner '', lease ended
 * at now_ms), so that others may take them. */
int hub_cluster_db_release(hub_cluster_db *db, const char *hub, const uint32_t *parts, size_t n,
                           int64_t now_ms);

/* Gives up every partition of hub and removes its row of hubs (SIGTERM). */
int hub_cluster_db_leave(hub_cluster_db *db, const char *hub, int64_t now_ms);

#endif
