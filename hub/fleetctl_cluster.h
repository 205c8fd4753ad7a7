/* fleetctl's cluster commands: `fleetctl partitions` (GET
 * /v1/cluster/partitions: owner, epoch, lease age, lag of each partition) and
 * `fleetctl hubs` (GET /v1/cluster/hubs). They are rows of fleetctl's
 * command table; this file gives their columns. */
#ifndef HUB_FLEETCTL_CLUSTER_H
#define HUB_FLEETCTL_CLUSTER_H

/* The columns printed, NULL-terminated (static; nothing to free). */
extern const char *const fleetctl_partition_cols[];
extern const char *const fleetctl_hub_cols[];

#endif
