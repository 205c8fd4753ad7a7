/* Partitions of the fleet (docs/protocol.md, "Partitions", rev 1.2): a
 * device's partition is a stable hash of its id, the same in every client,
 * so that a device's topics name it and a hub can subscribe only to the
 * partitions it owns. */
#ifndef FLEET_PARTITION_H
#define FLEET_PARTITION_H

#include <stdint.h>

/* The partition count of a fleet unless configured otherwise ([cluster]
 * partitions on the hub, partitions on the agent): chosen once per fleet. */
#define FL_PARTITIONS_DEFAULT 256u
#define FL_PARTITIONS_MAX 4096u

/* The 32-bit FNV-1a hash of the bytes of dev (offset basis 2166136261,
 * prime 16777619). */
uint32_t fl_fnv1a32(const char *dev);

/* Returns dev's partition: fl_fnv1a32(dev) mod n (n > 0). */
uint32_t fl_partition_of(const char *dev, uint32_t n);

#endif
