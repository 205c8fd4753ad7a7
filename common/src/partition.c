#include "fleet/partition.h"

uint32_t fl_fnv1a32(const char *dev) {
  uint32_t h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)dev; *p; p++) {
    h ^= *p;
    h *= 16777619u;
  }
  return h;
}

uint32_t fl_partition_of(const char *dev, uint32_t n) { return n ? fl_fnv1a32(dev) % n : 0; }
