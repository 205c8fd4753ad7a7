/* The command-line conventions every fleet program keeps (header only, so
 * that programs which do not link libfleetcommon, like fleetctl, share it;
 * CMake target fleet_cli):
 *   --help      usage on stdout, exit 0
 *   --version   "PROGRAM VERSION" on stdout (the CMake project's VERSION), exit 0
 *   a usage error: one line "PROGRAM: reason" and a hint on stderr, exit 2
 * Options are parsed with getopt_long, so "--opt VALUE" and "--opt=VALUE"
 * both work. */
#ifndef FLEET_CLI_H
#define FLEET_CLI_H

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#ifndef FLEET_VERSION
#error "FLEET_VERSION is defined by the CMake target fleet_cli"
#endif

/* Exit status of a usage error. */
#define FL_CLI_USAGE 2

/* Prints "prog VERSION" on stdout; returns 0, the exit status. */
static inline int fl_cli_version(const char *prog) {
  printf("%s %s\n", prog, FLEET_VERSION);
  return 0;
}

/* Prints "prog: reason" (printf format) and a hint to run prog --help on
 * stderr; returns FL_CLI_USAGE, the exit status. */
__attribute__((format(printf, 2, 3))) static inline int fl_cli_usage_error(const char *prog,
                                                                           const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", prog);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
  return FL_CLI_USAGE;
}

/* Reports the option getopt_long refused as a usage error and returns
 * FL_CLI_USAGE: opt is getopt_long's return value ('?', or ':' for a
 * missing value when the optstring starts with ':' after any '+'), argv and
 * optind as getopt_long left them. getopt's own message must be off. */
static inline int fl_cli_bad_option(const char *prog, int opt, char *const *argv) {
  const char *word = optind > 0 ? argv[optind - 1] : "";
  if (word && word[0] == '-' && word[1] == '-') {
    int n = (int)strcspn(word, "=");
    return opt == ':' ? fl_cli_usage_error(prog, "option %.*s needs a value", n, word)
                      : fl_cli_usage_error(prog, "unknown option %.*s", n, word);
  }
  return opt == ':' ? fl_cli_usage_error(prog, "option -%c needs a value", optopt)
                    : fl_cli_usage_error(prog, "unknown option -%c", optopt);
}

#endif
