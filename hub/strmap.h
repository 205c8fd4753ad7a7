/* A map from strings to 64-bit integers (open addressing, keys copied):
 * the one hash table of the hub, for the batch's retained topics and the
 * telemetry throttle. Not thread-safe. */
#ifndef HUB_STRMAP_H
#define HUB_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct strmap {
  struct strmap_slot {
    char *key;
    int64_t value;
  } *slots;
  size_t n, cap; /* cap: 0 or a power of two */
} strmap;

/* Returns the value slot of key, adding key (value 0, *added true) when it
 * is absent; NULL when out of memory. The pointer is valid until the next
 * strmap_put. */
int64_t *strmap_put(strmap *m, const char *key, bool *added);

/* Returns the value slot of key, or NULL when absent. */
int64_t *strmap_get(const strmap *m, const char *key);

/* Forgets every key (keeps the memory); strmap_free releases it. */
void strmap_clear(strmap *m);
void strmap_free(strmap *m);

#endif
