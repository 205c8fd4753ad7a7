#include "fleet/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/error.h"

struct config_entry {
  char *section, *key, *value;
  struct config_entry *next;
};

struct fl_config {
  char *env_prefix;
  struct config_entry *entries; /* file values and cached environment values */
  char error[256];
};

static int config_put(fl_config *c, const char *section, const char *key, const char *value) {
  struct config_entry *e = calloc(1, sizeof *e);
  if (!e) return 0;
  e->section = strdup(section);
  e->key = strdup(key);
  e->value = strdup(value);
  e->next = c->entries;
  c->entries = e;
  return e->section && e->key && e->value;
}

static int on_ini(void *user, const char *section, const char *key, const char *value) {
  return config_put(user, section, key, value);
}

int fl_config_load(const char *path, const char *env_prefix, fl_config **out, char *err,
                   size_t errcap) {
  fl_config *c = calloc(1, sizeof *c);
  if (!c) return FL_ERR_NOMEM;
  c->env_prefix = strdup(env_prefix ? env_prefix : "FLEET");
  if (path) {
    int rc = ini_parse(path, on_ini, c);
    if (rc != 0) {
      if (rc == -1)
        snprintf(err, errcap, "config %s: cannot open file", path);
      else if (rc > 0)
        snprintf(err, errcap, "config %s: syntax error at line %d", path, rc);
      else
        snprintf(err, errcap, "config %s: out of memory", path);
      fl_config_free(c);
      return FL_ERR_CONFIG;
    }
  }
  *out = c;
  return FL_OK;
}

void fl_config_free(fl_config *c) {
  if (!c) return;
  for (struct config_entry *e = c->entries, *n; e; e = n) {
    n = e->next;
    free(e->section);
    free(e->key);
    free(e->value);
    free(e);
  }
  free(c->env_prefix);
  free(c);
}

/* Writes the environment variable that overrides [section] key:
 * PREFIX_SECTION_KEY, upper case, with '.' and '-' turned into '_'. */
static void env_name(const fl_config *c, const char *section, const char *key, char *name,
                     size_t cap) {
  snprintf(name, cap, "%s_%s_%s", c->env_prefix, section, key);
  for (char *p = name; *p; p++) *p = (char)(*p == '-' || *p == '.' ? '_' : toupper((unsigned char)*p));
}

static const char *config_lookup(fl_config *c, const char *section, const char *key) {
  char name[256];
  env_name(c, section, key, name, sizeof name);
  const char *v = getenv(name);
  if (v) return v;
  /* Later file entries win: the list is newest first. */
  for (struct config_entry *e = c->entries; e; e = e->next)
    if (strcmp(e->section, section) == 0 && strcmp(e->key, key) == 0) return e->value;
  return NULL;
}

const char *fl_config_str(fl_config *c, const char *section, const char *key, const char *def) {
  const char *v = config_lookup(c, section, key);
  return v ? v : def;
}

static int config_fail(fl_config *c, const char *section, const char *key, const char *value,
                       const char *why) {
  char name[256];
  env_name(c, section, key, name, sizeof name);
  if (!c->error[0])
    snprintf(c->error, sizeof c->error, "config [%s] %s = '%s': %s (environment %s)", section,
             key, value, why, name);
  return FL_ERR_CONFIG;
}

int fl_config_int(fl_config *c, const char *section, const char *key, int64_t def, int64_t min,
                  int64_t max, int64_t *out) {
  const char *v = config_lookup(c, section, key);
  if (!v) {
    *out = def;
    return FL_OK;
  }
  char *end = NULL;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (errno || end == v || *end) return config_fail(c, section, key, v, "not a whole number");
  if (x < min || x > max) {
    char why[96];
    snprintf(why, sizeof why, "must be between %lld and %lld", (long long)min, (long long)max);
    return config_fail(c, section, key, v, why);
  }
  *out = x;
  return FL_OK;
}

int fl_config_double(fl_config *c, const char *section, const char *key, double def, double min,
                     double max, double *out) {
  const char *v = config_lookup(c, section, key);
  if (!v) {
    *out = def;
    return FL_OK;
  }
  char *end = NULL;
  errno = 0;
  double x = strtod(v, &end);
  if (errno || end == v || *end || isnan(x)) return config_fail(c, section, key, v, "not a number");
  if (x < min || x > max) {
    char why[96];
    snprintf(why, sizeof why, "must be between %g and %g", min, max);
    return config_fail(c, section, key, v, why);
  }
  *out = x;
  return FL_OK;
}

int fl_config_bool(fl_config *c, const char *section, const char *key, bool def, bool *out) {
  const char *v = config_lookup(c, section, key);
  if (!v) {
    *out = def;
    return FL_OK;
  }
  if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on")) {
    *out = true;
    return FL_OK;
  }
  if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off")) {
    *out = false;
    return FL_OK;
  }
  return config_fail(c, section, key, v, "not a boolean (true/false)");
}

const char *fl_config_error(const fl_config *c) { return c->error[0] ? c->error : NULL; }
