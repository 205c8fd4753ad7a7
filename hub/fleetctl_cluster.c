/* The columns of `fleetctl partitions` and `fleetctl hubs` (fleetctl_cluster.h). */
#include "fleetctl_cluster.h"

#include <stddef.h>

const char *const fleetctl_partition_cols[] = {"partition",    "owner",         "epoch",
                                               "lease_age", "lease_left", "lag",
                                               "owner_live",   NULL};
const char *const fleetctl_hub_cols[] = {"id",    "live",        "owned",          "queue_depth",
                                         "events_applied", "heartbeat_age", "started_ms",
                                         NULL};
