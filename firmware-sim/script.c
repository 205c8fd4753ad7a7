/* The script parser: lines into steps, with the line number in every error. */
#include "script.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/proto.h"

/* What a step looks like. args has one letter per positional argument:
 *   I id   K declared kiosk   V declared vehicle   D declared device
 *   N number >= 0   F any number   S STATE (upper case)   W word
 *   A the word "as"   L a new name (rental or booking)   R a name defined before
 * a lower-case letter is optional (and so is everything after it); '+' after
 * the last letter repeats it. opts lists the option keys allowed; those in
 * TEXT_OPTS take text, the others numbers. */
struct spec {
  const char *kw1, *kw2;
  sim_op op;
  const char *args;
  const char *opts;
  const char *usage;
};

#define TEXT_OPTS "name station reason"

static const struct spec specs[] = {
    {"vehicles", NULL, SIM_OP_VEHICLES, "I+", "", "vehicles ID..."},
    {"kiosks", NULL, SIM_OP_KIOSKS, "I+", "", "kiosks ID..."},
    {"register", NULL, SIM_OP_REGISTER, "I", "rate name station status",
     "register no | register VEHICLE [rate=CENTS] [name=TEXT] [station=TEXT] [status=HTTP]"},
    {"timeout", NULL, SIM_OP_TIMEOUT, "N", "", "timeout SECONDS"},
    {"rent", NULL, SIM_OP_RENT, "KIINAL", "", "rent KIOSK VEHICLE CUSTOMER MINUTES as NAME"},
    {"cancel", NULL, SIM_OP_CANCEL, "KR", "", "cancel KIOSK NAME"},
    {"return", NULL, SIM_OP_RETURN, "KR", "odometer", "return KIOSK NAME [odometer=M]"},
    {"book", NULL, SIM_OP_BOOK, "KIIFFAL", "",
     "book KIOSK VEHICLE CUSTOMER FROM_S TO_S as NAME (seconds from now)"},
    {"cancel-booking", NULL, SIM_OP_CANCEL_BOOKING, "KR", "", "cancel-booking KIOSK NAME"},
    {"unlock", NULL, SIM_OP_UNLOCK, "VIw", "", "unlock VEHICLE CUSTOMER [allowed|refused]"},
    {"lock", NULL, SIM_OP_LOCK, "V", "", "lock VEHICLE"},
    {"fault", NULL, SIM_OP_FAULT, "VWw", "", "fault VEHICLE CODE[,CODE...] [info|warning|critical]"},
    {"telemetry", NULL, SIM_OP_TELEMETRY, "V", "odometer energy",
     "telemetry VEHICLE [odometer=M] [energy=PCT]"},
    {"repair-start", NULL, SIM_OP_REPAIR_START, "I", "", "repair-start VEHICLE"},
    {"repair-complete", NULL, SIM_OP_REPAIR_COMPLETE, "I", "", "repair-complete VEHICLE"},
    {"expect", "rental", SIM_OP_EXPECT_RENTAL, "RS", "charged refunded fee started reason within",
     "expect rental NAME STATE [charged=C] [refunded=C] [fee=C] [started=0|1] [reason~TEXT]"},
    {"expect", "vehicle", SIM_OP_EXPECT_VEHICLE, "IS", "within", "expect vehicle ID STATE"},
    {"expect", "repair", SIM_OP_EXPECT_REPAIR, "IS", "within", "expect repair VEHICLE STATE"},
    {"expect", "customer", SIM_OP_EXPECT_CUSTOMER, "I", "open bookings fees within",
     "expect customer ID [open=N] [bookings=N] [fees=C]"},
    {"expect", "notify", SIM_OP_EXPECT_NOTIFY, "WWW", "within", "expect notify KIND ID|NAME STATE|ALERT"},
    {"expect", "state", SIM_OP_EXPECT_STATE, "WWS", "within", "expect state KIND ID|NAME STATE"},
    {"expect", "bookings", SIM_OP_EXPECT_BOOKINGS, "VN", "within", "expect bookings VEHICLE COUNT"},
    {"expect", "clock-flag", SIM_OP_EXPECT_CLOCK_FLAG, "DW", "within",
     "expect clock-flag DEVICE implausible|none"},
    {"expect", NULL, SIM_OP_EXPECT_DECISION, "RS", "ok charged refunded fee reason within",
     "expect NAME STATE [ok=0|1] [charged=C] [refunded=C] [fee=C] [reason~TEXT]"},
    {"wait", NULL, SIM_OP_WAIT, "N", "", "wait SECONDS"},
    {"offline", NULL, SIM_OP_OFFLINE, "Dn", "", "offline DEVICE [SECONDS]"},
    {"online", NULL, SIM_OP_ONLINE, "D", "", "online DEVICE"},
    {"powercut", NULL, SIM_OP_POWERCUT, "Dn", "", "powercut DEVICE [SECONDS]"},
    {"poweron", NULL, SIM_OP_POWERON, "D", "", "poweron DEVICE"},
    {"skew", NULL, SIM_OP_SKEW, "Fd+", "", "skew SECONDS [DEVICE...]"},
    {"restart", NULL, SIM_OP_RESTART, "Ww", "", "restart hub|broker [term|kill]"},
    {"invariants", NULL, SIM_OP_INVARIANTS, "", "", "invariants"},
};

/* Names known while parsing: devices (with their role) and rental/booking names. */
struct known {
  const char *name;
  char kind; /* 'K' kiosk, 'V' vehicle, 'R' rental or booking name */
};

struct parser {
  const char *path;
  int line;
  char *err;
  size_t cap;
  char *out;             /* next free byte of the storage */
  struct known *known;
  size_t n_known, cap_known;
};

__attribute__((format(printf, 2, 3))) static int fail(struct parser *p, const char *fmt, ...) {
  int n = snprintf(p->err, p->cap, "%s:%d: ", p->path, p->line);
  va_list ap;
  va_start(ap, fmt);
  if (n >= 0 && (size_t)n < p->cap) vsnprintf(p->err + n, p->cap - (size_t)n, fmt, ap);
  va_end(ap);
  return FL_ERR_INVALID;
}

/* Returns true if word is one of the blank-separated words of list. */
static bool word_in(const char *list, const char *word) {
  size_t n = strlen(word);
  if (n == 0) return false;
  for (const char *c = list; (c = strstr(c, word)) != NULL; c += n)
    if ((c == list || c[-1] == ' ') && (c[n] == ' ' || c[n] == '\0')) return true;
  return false;
}

static char known_kind(const struct parser *p, const char *name) {
  for (size_t i = 0; i < p->n_known; i++)
    if (strcmp(p->known[i].name, name) == 0) return p->known[i].kind;
  return 0;
}

static int known_add(struct parser *p, const char *name, char kind) {
  char had = known_kind(p, name);
  if (had) return fail(p, "'%s' is defined already", name);
  if (p->n_known == p->cap_known) {
    size_t cap = p->cap_known ? p->cap_known * 2 : 32;
    struct known *grown = realloc(p->known, cap * sizeof *grown);
    if (!grown) return FL_ERR_NOMEM;
    p->known = grown;
    p->cap_known = cap;
  }
  p->known[p->n_known++] = (struct known){name, kind};
  return FL_OK;
}

/* Splits one line into tokens copied into the storage: words separated by
 * blanks, "double quotes" keep blanks, # outside quotes ends the line.
 * Returns the number of tokens, or -1 for an unterminated quote. */
static int tokenize(struct parser *p, const char *line, const char **tok, int max) {
  int n = 0;
  const char *c = line;
  for (;;) {
    while (*c == ' ' || *c == '\t' || *c == '\r') c++;
    if (!*c || *c == '#') return n;
    if (n == max) return n + 1; /* too many: the caller reports it */
    tok[n++] = p->out;
    bool quoted = false;
    while (*c && (quoted || (*c != ' ' && *c != '\t' && *c != '\r' && *c != '#'))) {
      if (*c == '"') quoted = !quoted;
      else *p->out++ = *c;
      c++;
    }
    *p->out++ = '\0';
    if (quoted) return -1;
  }
}

/* Returns true when s parses completely as a number (>= 0 unless signed). */
static bool is_number(const char *s, bool is_signed) {
  char *end;
  double v = strtod(s, &end);
  return *s && !*end && (is_signed || v >= 0);
}

static bool is_state(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (!isupper((unsigned char)*s) && *s != '_') return false;
  return true;
}

/* Splits "key=value" or "key~value"; returns false for a positional word. */
static bool split_option(const char *tok, sim_step_opt *o) {
  size_t k = strspn(tok, "abcdefghijklmnopqrstuvwxyz_");
  if (k == 0 || (tok[k] != '=' && tok[k] != '~')) return false;
  o->key = tok;
  o->match = tok[k];
  o->value = tok + k + 1;
  ((char *)tok)[k] = '\0'; /* the token lives in our own storage */
  return true;
}

/* Checks one positional argument against its type letter. */
static int check_arg(struct parser *p, char type, const char *a) {
  switch (toupper((unsigned char)type)) {
  case 'I':
    return fl_id_valid(a) ? FL_OK : fail(p, "'%s' is not a valid id ([A-Za-z0-9._:-], 1..64)", a);
  case 'K':
  case 'V':
  case 'D': {
    char kind = known_kind(p, a), want = (char)toupper((unsigned char)type);
    if (kind == 'R' || !kind) return fail(p, "no device '%s' (declare it with vehicles or kiosks)", a);
    if (want != 'D' && kind != want)
      return fail(p, "'%s' is a %s, not a %s", a, kind == 'K' ? "kiosk" : "vehicle",
                  want == 'K' ? "kiosk" : "vehicle");
    return FL_OK;
  }
  case 'N':
  case 'F':
    return is_number(a, toupper((unsigned char)type) == 'F') ? FL_OK : fail(p, "'%s' is not a number", a);
  case 'S':
    return is_state(a) ? FL_OK : fail(p, "'%s' is not a STATE (upper case)", a);
  case 'A':
    return strcmp(a, "as") == 0 ? FL_OK : fail(p, "expected 'as', found '%s'", a);
  case 'L':
    return fl_id_valid(a) ? known_add(p, a, 'R') : fail(p, "'%s' is not a valid name", a);
  case 'R':
    return known_kind(p, a) == 'R' ? FL_OK : fail(p, "no rental or booking named '%s' yet", a);
  default:
    return FL_OK;
  }
}

/* Checks the words that take one of a few values. */
static int check_choices(struct parser *p, const sim_step *s) {
  static const struct { sim_op op; int arg; const char *choices; } rules[] = {
      {SIM_OP_UNLOCK, 2, "allowed refused"},
      {SIM_OP_FAULT, 2, "info warning critical"},
      {SIM_OP_RESTART, 0, "hub broker"},
      {SIM_OP_RESTART, 1, "term kill"},
      {SIM_OP_EXPECT_CLOCK_FLAG, 1, "implausible none"},
      {SIM_OP_EXPECT_NOTIFY, 0, "vehicle rental repair booking alert"},
      {SIM_OP_EXPECT_STATE, 0, "vehicle rental repair"},
  };
  for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
    if (rules[i].op != s->op || rules[i].arg >= s->n_args) continue;
    if (!word_in(rules[i].choices, s->arg[rules[i].arg]))
      return fail(p, "'%s' must be one of: %s", s->arg[rules[i].arg], rules[i].choices);
  }
  return FL_OK;
}

static const struct spec *find_spec(const char **tok, int n) {
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
    const struct spec *sp = &specs[i];
    if (strcmp(sp->kw1, tok[0]) != 0) continue;
    if (!sp->kw2 || (n > 1 && strcmp(sp->kw2, tok[1]) == 0)) return sp;
  }
  return NULL;
}

/* Parses the tokens of one line into s. */
static int parse_step(struct parser *p, const char **tok, int n, sim_step *s) {
  if (strcmp(tok[0], "register") == 0 && n == 2 && strcmp(tok[1], "no") == 0) {
    s->op = SIM_OP_REGISTER_NO;
    return FL_OK;
  }
  const struct spec *sp = find_spec(tok, n);
  if (!sp) return fail(p, "unknown command '%s'", tok[0]);
  s->op = sp->op;
  for (int i = sp->kw2 ? 2 : 1; i < n; i++) {
    sim_step_opt o;
    if (split_option(tok[i], &o)) {
      if (!word_in(sp->opts, o.key) || s->n_opts == SIM_SCRIPT_MAX_OPTS)
        return fail(p, "option '%s' is not known here; usage: %s", o.key, sp->usage);
      if (o.match == '~' && strcmp(o.key, "reason") != 0)
        return fail(p, "only reason~TEXT matches a part; use %s=VALUE", o.key);
      if (!word_in(TEXT_OPTS, o.key) && !is_number(o.value, false))
        return fail(p, "option %s needs a number, not '%s'", o.key, o.value);
      s->opt[s->n_opts++] = o;
    } else if (s->n_args == SIM_SCRIPT_MAX_ARGS) {
      return fail(p, "too many words; usage: %s", sp->usage);
    } else {
      s->arg[s->n_args++] = tok[i];
    }
  }
  /* positional arguments against the spec's letters */
  size_t n_types = strlen(sp->args);
  bool repeat = n_types && sp->args[n_types - 1] == '+';
  if (repeat) n_types--;
  size_t required = strcspn(sp->args, "abcdefghijklmnopqrstuvwxyz+");
  if ((size_t)s->n_args < required || (!repeat && (size_t)s->n_args > n_types))
    return fail(p, "usage: %s", sp->usage);
  for (int i = 0; i < s->n_args; i++) {
    char type = sp->args[(size_t)i < n_types ? (size_t)i : n_types - 1];
    int rc = check_arg(p, type, s->arg[i]);
    if (rc != FL_OK) return rc;
  }
  if (s->op == SIM_OP_VEHICLES || s->op == SIM_OP_KIOSKS)
    for (int i = 0; i < s->n_args; i++) {
      int rc = known_add(p, s->arg[i], s->op == SIM_OP_VEHICLES ? 'V' : 'K');
      if (rc != FL_OK) return rc;
    }
  return check_choices(p, s);
}

/* Reads the whole file; returns a NUL-terminated buffer (caller frees) or NULL. */
static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t cap = 0, n = 0, got;
  do {
    if (n + 4096 + 1 > cap) {
      char *grown = realloc(buf, cap = n + 65536);
      if (!grown) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = grown;
    }
    got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
  } while (got > 0);
  fclose(f);
  if (!buf) buf = calloc(1, 1);
  if (buf) buf[n] = '\0';
  *len = n;
  return buf;
}

int sim_script_parse(const char *path, sim_script *s, char *err, size_t cap) {
  memset(s, 0, sizeof *s);
  s->path = path;
  size_t len = 0;
  char *text = read_file(path, &len);
  if (!text) {
    snprintf(err, cap, "%s: cannot read the script", path);
    return FL_ERR_IO;
  }
  size_t lines = 1;
  for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
  /* every line twice at most: its text, and its tokens with their NULs */
  s->storage = malloc(2 * len + 2 * lines + 16);
  s->steps = calloc(lines, sizeof *s->steps);
  struct parser p = {.path = path, .err = err, .cap = cap, .out = s->storage};
  int rc = s->storage && s->steps ? FL_OK : FL_ERR_NOMEM;
  if (rc == FL_ERR_NOMEM) snprintf(err, cap, "%s: out of memory", path);
  char *line = text;
  while (rc == FL_OK && line && *line) {
    char *next = strchr(line, '\n');
    if (next) *next++ = '\0';
    p.line++;
    const char *tok[2 + SIM_SCRIPT_MAX_ARGS + SIM_SCRIPT_MAX_OPTS];
    int max = (int)(sizeof tok / sizeof tok[0]);
    char *line_copy = p.out;
    p.out = stpcpy(p.out, line) + 1;
    int n = tokenize(&p, line, tok, max);
    if (n < 0) rc = fail(&p, "unterminated \"quote\"");
    else if (n > max) rc = fail(&p, "too many words");
    else if (n > 0) {
      sim_step *st = &s->steps[s->n_steps];
      st->line = p.line;
      st->text = line_copy;
      rc = parse_step(&p, tok, n, st);
      if (rc == FL_OK) s->n_steps++;
    }
    line = next;
  }
  free(p.known);
  free(text);
  if (rc != FL_OK) sim_script_free(s);
  return rc;
}

const sim_step_opt *sim_step_opt_get(const sim_step *step, const char *key) {
  for (int i = 0; i < step->n_opts; i++)
    if (strcmp(step->opt[i].key, key) == 0) return &step->opt[i];
  return NULL;
}

void sim_script_free(sim_script *s) {
  if (!s) return;
  free(s->steps);
  free(s->storage);
  s->steps = NULL;
  s->storage = NULL;
  s->n_steps = 0;
}
