/* Growing arrays: the one helper behind the hub's lists (effects, outflow). */
#ifndef HUB_GROW_H
#define HUB_GROW_H

#include <stddef.h>
#include <stdlib.h>

#include "fleet/error.h"

/* Makes the array *arr (of *cap elements of elem bytes) hold at least need
 * elements, doubling from 64. Returns FL_OK, or FL_ERR_NOMEM with *arr and
 * *cap unchanged. The caller frees *arr. */
static inline int hub_grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return FL_OK;
  size_t n = *cap ? *cap * 2 : 64;
  while (n < need) n *= 2;
  void *p = realloc(*arr, n * elem);
  if (!p) return FL_ERR_NOMEM;
  *arr = p;
  *cap = n;
  return FL_OK;
}

#endif
