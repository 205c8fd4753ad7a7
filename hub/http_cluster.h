/* The operator API's view of cluster mode (hub/cluster.h):
 * GET /v1/cluster/partitions and GET /v1/cluster/hubs, read from the shared
 * PostgreSQL database like every other read. */
#ifndef HUB_HTTP_CLUSTER_H
#define HUB_HTTP_CLUSTER_H

#include "http_internal.h"

/* GET /v1/cluster/partitions: a JSON array, by partition, of {partition,
 * owner ("" : nobody), epoch, lease_until_ms, lease_left, lease_age
 * (since the owner last renewed it), lag (the inputs waiting in the
 * owner's queue, at its last heartbeat), owner_live}. arg: unused. Returns 200, 404 when the
 * hub is not in cluster mode, or 500 with *out an error object. */
unsigned http__get_cluster_partitions(http_request *r, const void *arg, cJSON **out);

/* GET /v1/cluster/hubs: a JSON array, by id, of {id, started_ms,
 * heartbeat_ms, heartbeat_age, live, owned, queue_depth, events_applied}; ages and
 * leases left are durations in milliseconds.
 * Same statuses. */
unsigned http__get_cluster_hubs(http_request *r, const void *arg, cJSON **out);

#endif
