/* Configuration: an INI file (inih) plus environment overrides.
 * The value of [section] key is, in order: the environment variable
 * PREFIX_SECTION_KEY (upper-cased, e.g. FLEET_HUB_MQTT_URI), the file, the
 * default given by the caller. Typed getters check ranges so that a bad value
 * stops the program with a clear message instead of running half-configured. */
#ifndef FLEET_CONFIG_H
#define FLEET_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct fl_config fl_config;

/* Loads path (NULL: no file, environment and defaults only) with environment
 * prefix env_prefix ("FLEET_HUB"). Returns FL_OK and *out (free with
 * fl_config_free), or FL_ERR_CONFIG with a sentence in err (file missing,
 * syntax error at line N). */
int fl_config_load(const char *path, const char *env_prefix, fl_config **out, char *err,
                   size_t errcap);

void fl_config_free(fl_config *c);

/* Returns the string value or def; the pointer lives as long as c (or is def). */
const char *fl_config_str(fl_config *c, const char *section, const char *key, const char *def);

/* Typed getters: on a value that does not parse or is outside [min, max] they
 * return FL_ERR_CONFIG and write the reason into the config's error, which
 * fl_config_error() returns; otherwise FL_OK and *out (def when unset). */
int fl_config_int(fl_config *c, const char *section, const char *key, int64_t def, int64_t min,
                  int64_t max, int64_t *out);
int fl_config_double(fl_config *c, const char *section, const char *key, double def, double min,
                     double max, double *out);
int fl_config_bool(fl_config *c, const char *section, const char *key, bool def, bool *out);

/* Returns the first error recorded by a typed getter, or NULL. */
const char *fl_config_error(const fl_config *c);

/* Every getter above also records its key as known, with the value it gave.
 * After reading every key it knows, a program asks: returns FL_OK, or
 * FL_ERR_CONFIG with one sentence in err naming the first line of the file
 * that no getter read ("unknown key [fees] tier1_cent", or "unknown section
 * [feez]" when no key of its section was read) or the first environment
 * variable PREFIX_* that is no known key's override. So a new key only has
 * to be read to be known. */
int fl_config_unknown(const fl_config *c, char *err, size_t errcap);

/* Prints every key read so far, by section in the order first read, one a line as
 * "section.key = value" with its effective value (environment, file or
 * default); values of keys named *password* or *secret*, and the password
 * of a URL (scheme://user:PASSWORD@host), print as ****. */
void fl_config_print(const fl_config *c, FILE *out);

#endif
