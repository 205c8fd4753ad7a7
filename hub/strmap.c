#include "strmap.h"

#include <stdlib.h>
#include <string.h>

static uint32_t hash(const char *s) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

static struct strmap_slot *find(const strmap *m, const char *key) {
  size_t mask = m->cap - 1, j = hash(key) & mask;
  while (m->slots[j].key && strcmp(m->slots[j].key, key) != 0) j = (j + 1) & mask;
  return &m->slots[j];
}

static bool grow(strmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 256;
  struct strmap_slot *slots = calloc(cap, sizeof *slots);
  if (!slots) return false;
  strmap old = *m;
  m->slots = slots;
  m->cap = cap;
  for (size_t i = 0; i < old.cap; i++)
    if (old.slots[i].key) *find(m, old.slots[i].key) = old.slots[i];
  free(old.slots);
  return true;
}

int64_t *strmap_put(strmap *m, const char *key, bool *added) {
  *added = false;
  if (2 * (m->n + 1) > m->cap && !grow(m)) return NULL;
  struct strmap_slot *s = find(m, key);
  if (!s->key) {
    if (!(s->key = strdup(key))) return NULL;
    s->value = 0;
    m->n++;
    *added = true;
  }
  return &s->value;
}

int64_t *strmap_get(const strmap *m, const char *key) {
  if (!m->cap) return NULL;
  struct strmap_slot *s = find(m, key);
  return s->key ? &s->value : NULL;
}

void strmap_clear(strmap *m) {
  for (size_t i = 0; i < m->cap; i++) {
    free(m->slots[i].key);
    m->slots[i].key = NULL;
  }
  m->n = 0;
}

void strmap_free(strmap *m) {
  strmap_clear(m);
  free(m->slots);
  m->slots = NULL;
  m->cap = 0;
}
