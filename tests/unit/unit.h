/* The unit tests' checks: CHECK(cond) counts, prints the failing line, and
 * goes on; unit_report() prints "N passed, N failed" and gives main's exit
 * code. */
#ifndef FLEET_UNIT_H
#define FLEET_UNIT_H

#include <stdio.h>

static int unit_passed, unit_failed;

#define CHECK(cond)                                                                \
  do {                                                                             \
    if (cond) {                                                                    \
      unit_passed++;                                                               \
    } else {                                                                       \
      unit_failed++;                                                               \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
    }                                                                              \
  } while (0)

static inline int unit_report(const char *name) {
  printf("%s: %d passed, %d failed\n", name, unit_passed, unit_failed);
  return unit_failed ? 1 : 0;
}

#endif
