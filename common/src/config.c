#include "fleet/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/error.h"

extern char **environ;

/* A [section] key = value line of the file; read says whether the program
 * asked for it (a key never asked for is unknown: fl_config_unknown). */
struct config_entry {
  char *section, *key, *value;
  bool read;
  struct config_entry *next;
};

/* A key the program asked for, with the value it got (the environment's, the
 * file's or the default), in the order asked: the program's known keys. */
struct config_key {
  char *section, *key, *value;
  struct config_key *next;
};

struct fl_config {
  char *env_prefix;
  char *path;                   /* the file, or NULL */
  struct config_entry *entries; /* the file's values, newest first */
  struct config_key *keys, **keys_tail;
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
  c->path = path ? strdup(path) : NULL;
  c->keys_tail = &c->keys;
  if (!c->env_prefix || (path && !c->path)) {
    fl_config_free(c);
    return FL_ERR_NOMEM;
  }
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
  for (struct config_key *k = c->keys, *n; k; k = n) {
    n = k->next;
    free(k->section);
    free(k->key);
    free(k->value);
    free(k);
  }
  free(c->path);
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

/* Returns the value of [section] key (environment first, then the file) or
 * NULL, and marks the key as known. */
static const char *config_lookup(fl_config *c, const char *section, const char *key) {
  const char *v = NULL;
  /* Later file entries win: the list is newest first. Every line of the key
   * is read, the ones it overrides as well. */
  for (struct config_entry *e = c->entries; e; e = e->next)
    if (strcmp(e->section, section) == 0 && strcmp(e->key, key) == 0) {
      e->read = true;
      if (!v) v = e->value;
    }
  char name[256];
  env_name(c, section, key, name, sizeof name);
  const char *env = getenv(name);
  return env ? env : v;
}

/* Records that the program knows [section] key and got value. Out of memory,
 * the key is left out of fl_config_print (and its environment variable would
 * read as unknown): the loader's answer stays right. */
static void config_note(fl_config *c, const char *section, const char *key, const char *value) {
  for (struct config_key *k = c->keys; k; k = k->next)
    if (strcmp(k->section, section) == 0 && strcmp(k->key, key) == 0) return;
  struct config_key *k = calloc(1, sizeof *k);
  if (!k) return;
  k->section = strdup(section);
  k->key = strdup(key);
  k->value = strdup(value);
  if (!k->section || !k->key || !k->value) {
    free(k->section);
    free(k->key);
    free(k->value);
    free(k);
    return;
  }
  *c->keys_tail = k;
  c->keys_tail = &k->next;
}

const char *fl_config_str(fl_config *c, const char *section, const char *key, const char *def) {
  const char *v = config_lookup(c, section, key);
  config_note(c, section, key, v ? v : def);
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
  char shown[32];
  snprintf(shown, sizeof shown, "%lld", (long long)def);
  config_note(c, section, key, v ? v : shown);
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
  char shown[32];
  snprintf(shown, sizeof shown, "%g", def);
  config_note(c, section, key, v ? v : shown);
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
  config_note(c, section, key, v ? v : def ? "true" : "false");
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

/* Returns true when the program asked for some key of section. */
static bool section_known(const fl_config *c, const char *section) {
  for (const struct config_key *k = c->keys; k; k = k->next)
    if (strcmp(k->section, section) == 0) return true;
  return false;
}

/* Returns true when name is the environment variable of a known key. */
static bool env_known(const fl_config *c, const char *name) {
  char known[256];
  for (const struct config_key *k = c->keys; k; k = k->next) {
    env_name(c, k->section, k->key, known, sizeof known);
    if (strcmp(known, name) == 0) return true;
  }
  return false;
}

int fl_config_unknown(const fl_config *c, char *err, size_t errcap) {
  /* the file's first line that nobody read: entries are newest first */
  const struct config_entry *first = NULL;
  for (const struct config_entry *e = c->entries; e; e = e->next)
    if (!e->read) first = e;
  if (first) {
    if (!section_known(c, first->section))
      snprintf(err, errcap, "config %s: unknown section [%s] (key %s)", c->path,
               first->section, first->key);
    else
      snprintf(err, errcap, "config %s: unknown key [%s] %s", c->path, first->section,
               first->key);
    return FL_ERR_CONFIG;
  }
  size_t plen = strlen(c->env_prefix);
  for (char **env = environ; env && *env; env++) {
    const char *eq = strchr(*env, '=');
    size_t len = eq ? (size_t)(eq - *env) : strlen(*env);
    char name[256];
    if (len <= plen || len >= sizeof name || strncmp(*env, c->env_prefix, plen) != 0 ||
        (*env)[plen] != '_')
      continue;
    memcpy(name, *env, len);
    name[len] = '\0';
    if (!env_known(c, name)) {
      snprintf(err, errcap, "config: unknown environment variable %s (no such setting)", name);
      return FL_ERR_CONFIG;
    }
  }
  return FL_OK;
}

/* Returns true for a key whose value is a secret. */
static bool key_secret(const char *key) {
  return strstr(key, "password") != NULL || strstr(key, "secret") != NULL;
}

/* Prints value to out with a URL's password (scheme://user:PASSWORD@host)
 * masked. */
static void print_value(FILE *out, const char *value) {
  const char *auth = strstr(value, "://");
  const char *at = auth ? strchr(auth + 3, '@') : NULL;
  const char *colon = auth ? strchr(auth + 3, ':') : NULL;
  if (at && colon && colon < at)
    fprintf(out, "%.*s:****%s", (int)(colon - value), value, at);
  else
    fputs(value, out);
}

/* Returns true when a key before k is of k's section. */
static bool section_seen(const fl_config *c, const struct config_key *k) {
  for (const struct config_key *j = c->keys; j != k; j = j->next)
    if (strcmp(j->section, k->section) == 0) return true;
  return false;
}

void fl_config_print(const fl_config *c, FILE *out) {
  /* by section, in the order sections were first read */
  for (const struct config_key *s = c->keys; s; s = s->next) {
    if (section_seen(c, s)) continue;
    for (const struct config_key *k = s; k; k = k->next) {
      if (strcmp(k->section, s->section) != 0) continue;
      fprintf(out, "%s.%s = ", k->section, k->key);
      if (key_secret(k->key) && k->value[0])
        fputs("****", out);
      else
        print_value(out, k->value);
      fputc('\n', out);
    }
  }
}
