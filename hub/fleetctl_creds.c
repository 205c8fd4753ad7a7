/* fleetctl creds: the broker logins of devices (and of the hub and
 * dashboards), so that the operator never edits mosquitto's files by hand.
 *
 * The store is CREDS_DIR/credentials, one line per login:
 *   ID ROLE STATUS CREATED_MS UPDATED_MS HASH
 * ROLE is vehicle, kiosk, hub or dashboard; STATUS active or revoked; HASH is
 * the password's hash as mosquitto_passwd writes it ("$7$101$..."), or "-"
 * once revoked. Passwords themselves are never stored: `new` and `rotate`
 * print them once. Every command holds an exclusive lock on
 * CREDS_DIR/credentials.lock, and every file is replaced whole (a temporary
 * file renamed over it), so a broker reloading never reads half a file.
 *
 * `sync` (run after every change too) writes CREDS_DIR/passwd and
 * CREDS_DIR/acl from the store and the hub's registry (GET /v1/vehicles):
 * a revoked login, and a vehicle the hub does not know or has RETIRED, is
 * left out, so it can no longer connect. Then it sends SIGHUP to the broker
 * (the pid in its pid_file), which reloads both files and disconnects the
 * clients that lost their login. */
#include "fleetctl_creds.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fleet/cli.h"

#define CREDS_DEFAULT_DIR "/etc/fleet/creds"
#define CREDS_DEFAULT_PIDFILE "/run/mosquitto/mosquitto.pid"
#define CREDS_DEFAULT_HUB "http://127.0.0.1:8080"
#define CREDS_ID_MAX 40
#define CREDS_HASH_MAX 256
#define CREDS_PATH_MAX 1024
#define CREDS_MAX_RESPONSE (64u << 20)

typedef struct creds_entry {
  char id[CREDS_ID_MAX + 1];
  char role[16];
  bool revoked;
  long long created_ms, updated_ms;
  char hash[CREDS_HASH_MAX]; /* "-" when revoked */
} creds_entry;

typedef struct creds_store {
  creds_entry *v;
  size_t n, cap;
} creds_store;

typedef struct creds_opts {
  const char *hub, *dir, *pidfile, *role;
  bool json;
  const char *args[3]; /* subcommand and its argument */
  int nargs;
} creds_opts;

static const char *const roles[] = {"vehicle", "kiosk", "hub", "dashboard"};

__attribute__((format(printf, 3, 4))) static int creds__fail(const creds_opts *o, int status,
                                                             const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (o && o->json) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", msg);
    cJSON_AddStringToObject(j, "code", status == FL_CLI_USAGE ? "usage" : "creds");
    char *text = cJSON_PrintUnformatted(j);
    printf("%s\n", text ? text : "{\"error\":\"out of memory\",\"code\":\"nomem\"}");
    cJSON_free(text);
    cJSON_Delete(j);
  } else {
    fprintf(stderr, "fleetctl: %s\n", msg);
    if (status == FL_CLI_USAGE) fprintf(stderr, "Try 'fleetctl creds --help'.\n");
  }
  return status;
}

static int creds__usage(void) {
  printf("usage: fleetctl [--hub URL] [--json] creds COMMAND [ARGS] [OPTIONS]\n"
         "Broker logins (mosquitto password file and ACL) kept from the hub's registry.\n"
         "  new ID [--role vehicle|kiosk|hub|dashboard]  a login; prints its password once\n"
         "                 (the role defaults to vehicle when the hub knows vehicle ID)\n"
         "  list           every login: role, status, whether sync lets it in\n"
         "  rotate ID      a new password (printed once); the old one stops working\n"
         "  revoke ID      the login stops working\n"
         "  sync           write passwd and acl from the store and the registry, reload the\n"
         "                 broker (new, rotate and revoke sync too)\n"
         "Options:\n"
         "  --creds-dir DIR    the store, passwd and acl (default $FLEETCTL_CREDS_DIR, "
         "else " CREDS_DEFAULT_DIR ")\n"
         "  --broker-pid FILE  mosquitto's pid_file, signalled with SIGHUP (default\n"
         "                     $FLEETCTL_BROKER_PIDFILE, else " CREDS_DEFAULT_PIDFILE ")\n"
         "Left out by sync: revoked logins, and vehicles the hub does not know or has retired.\n");
  return 0;
}

/* ---- the store ----------------------------------------------------------- */

static long long creds__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A login name: 1..40 of [A-Za-z0-9._-] (a device id, P-ENV-3, without ':',
 * which separates the name from the hash in mosquitto's password file). */
static bool creds__valid_id(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > CREDS_ID_MAX) return false;
  for (const char *p = id; *p; p++)
    if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
          *p == '.' || *p == '_' || *p == '-'))
      return false;
  return true;
}

static bool creds__valid_role(const char *role) {
  for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
    if (strcmp(role, roles[i]) == 0) return true;
  return false;
}

static creds_entry *creds__find(creds_store *s, const char *id) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->v[i].id, id) == 0) return &s->v[i];
  return NULL;
}

static creds_entry *creds__add(creds_store *s) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 32;
    creds_entry *grown = realloc(s->v, cap * sizeof *grown);
    if (!grown) return NULL;
    s->v = grown;
    s->cap = cap;
  }
  memset(&s->v[s->n], 0, sizeof s->v[0]);
  return &s->v[s->n++];
}

static void creds__path(char *buf, const creds_opts *o, const char *name) {
  snprintf(buf, CREDS_PATH_MAX, "%s/%s", o->dir, name);
}

/* Reads CREDS_DIR/credentials into *s (empty when there is none). Returns 0,
 * or 1 after saying which line is wrong. */
static int creds__load(const creds_opts *o, creds_store *s) {
  char path[CREDS_PATH_MAX], line[1024];
  creds__path(path, o, "credentials");
  FILE *f = fopen(path, "r");
  if (!f) return errno == ENOENT ? 0 : creds__fail(o, 1, "%s: %s", path, strerror(errno));
  int rc = 0, lineno = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    lineno++;
    if (line[0] == '#' || line[0] == '\n') continue;
    char id[64], role[32], status[16], hash[CREDS_HASH_MAX];
    long long created, updated;
    creds_entry *e = NULL;
    if (sscanf(line, "%63s %31s %15s %lld %lld %255s", id, role, status, &created, &updated,
               hash) != 6 ||
        !creds__valid_id(id) || !creds__valid_role(role) ||
        (strcmp(status, "active") != 0 && strcmp(status, "revoked") != 0) || creds__find(s, id)) {
      rc = creds__fail(o, 1,
                       "%s line %d is not ID ROLE active|revoked CREATED UPDATED HASH "
                       "(or repeats an ID)",
                       path, lineno);
    } else if (!(e = creds__add(s))) {
      rc = creds__fail(o, 1, "out of memory");
    } else {
      snprintf(e->id, sizeof e->id, "%s", id);
      snprintf(e->role, sizeof e->role, "%s", role);
      e->revoked = strcmp(status, "revoked") == 0;
      e->created_ms = created;
      e->updated_ms = updated;
      snprintf(e->hash, sizeof e->hash, "%s", hash);
    }
  }
  fclose(f);
  return rc;
}

/* Writes text to path whole: a temporary file beside it, synced, renamed
 * over it, with mode. Returns 0, or 1 after saying why. */
static int creds__replace(const creds_opts *o, const char *path, const char *text, mode_t mode) {
  char tmp[CREDS_PATH_MAX + 8];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return creds__fail(o, 1, "%s: %s", tmp, strerror(errno));
  size_t len = strlen(text), done = 0;
  while (done < len) {
    ssize_t w = write(fd, text + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += (size_t)w;
  }
  bool ok = done == len && fchmod(fd, mode) == 0 && fsync(fd) == 0;
  int err = errno;
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    err = ok ? errno : err;
    unlink(tmp);
    return creds__fail(o, 1, "cannot write %s: %s", path, strerror(err));
  }
  int dir = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    fsync(dir);
    close(dir);
  }
  return 0;
}

/* A growing text buffer; on out of memory it keeps what it has and sets oom. */
typedef struct creds_text {
  char *p;
  size_t len, cap;
  bool oom;
} creds_text;

__attribute__((format(printf, 2, 3))) static void creds__append(creds_text *t, const char *fmt,
                                                                ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || t->oom) return;
  if (t->len + (size_t)n + 1 > t->cap) {
    size_t cap = (t->len + (size_t)n + 1) * 2;
    char *grown = realloc(t->p, cap);
    if (!grown) {
      t->oom = true;
      return;
    }
    t->p = grown;
    t->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
  va_end(ap);
  t->len += (size_t)n;
}

static int creds__save(const creds_opts *o, const creds_store *s) {
  creds_text t = {0};
  creds__append(&t, "# fleetctl creds: ID ROLE STATUS CREATED_MS UPDATED_MS HASH (do not edit)\n");
  for (size_t i = 0; i < s->n; i++)
    creds__append(&t, "%s %s %s %lld %lld %s\n", s->v[i].id, s->v[i].role,
                  s->v[i].revoked ? "revoked" : "active", s->v[i].created_ms, s->v[i].updated_ms,
                  s->v[i].hash);
  char path[CREDS_PATH_MAX];
  creds__path(path, o, "credentials");
  int rc = t.oom ? creds__fail(o, 1, "out of memory") : creds__replace(o, path, t.p, 0600);
  free(t.p);
  return rc;
}

/* ---- passwords ------------------------------------------------------------ */

/* Writes a new random password (24 characters of base64url, 144 bits) into
 * out (at least 25 bytes). Returns 0, or 1 after saying why. */
static int creds__new_password(const creds_opts *o, char *out) {
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char raw[18];
  if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
    return creds__fail(o, 1, "getrandom: %s", strerror(errno));
  for (size_t i = 0, k = 0; i < sizeof raw; i += 3) {
    uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
    for (int s = 18; s >= 0; s -= 6)
      out[k++] = b64[(v >> s) & 63];
  }
  out[24] = '\0';
  return 0;
}

/* Hashes password for id with `mosquitto_passwd -U` on a private temporary
 * file (the password never appears on a command line); writes mosquitto's
 * hash ("$7$...") into hash. Returns 0, or 1 after saying why. */
static int creds__hash(const creds_opts *o, const char *id, const char *password, char *hash) {
  const char *tool = getenv("FLEETCTL_MOSQUITTO_PASSWD");
  if (!tool || !*tool) tool = "mosquitto_passwd";
  char tmp[CREDS_PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s/.hash-XXXXXX", o->dir);
  int fd = mkstemp(tmp);
  if (fd < 0) return creds__fail(o, 1, "%s: %s", tmp, strerror(errno));
  int rc = 1;
  FILE *f = fdopen(fd, "w+");
  if (!f) {
    close(fd);
    creds__fail(o, 1, "%s: %s", tmp, strerror(errno));
    goto out;
  }
  fprintf(f, "%s:%s\n", id, password);
  if (fflush(f) != 0) {
    creds__fail(o, 1, "%s: %s", tmp, strerror(errno));
    goto out;
  }
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, STDOUT_FILENO);
    execlp(tool, tool, "-U", tmp, (char *)NULL);
    fprintf(stderr, "fleetctl: cannot run %s: %s\n", tool, strerror(errno));
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    creds__fail(o, 1, "%s -U failed (Debian package mosquitto)", tool);
    goto out;
  }
  char line[CREDS_HASH_MAX + CREDS_ID_MAX + 4];
  size_t idlen = strlen(id);
  if (fseek(f, 0, SEEK_SET) != 0 || !fgets(line, sizeof line, f) || strncmp(line, id, idlen) != 0 ||
      line[idlen] != ':' || line[idlen + 1] != '$') {
    creds__fail(o, 1, "%s -U did not write a hash", tool);
    goto out;
  }
  line[strcspn(line, "\r\n")] = '\0';
  snprintf(hash, CREDS_HASH_MAX, "%s", line + idlen + 1);
  rc = 0;
out:
  if (f) fclose(f);
  unlink(tmp);
  return rc;
}

/* ---- the hub's registry --------------------------------------------------- */

static size_t creds__on_data(char *ptr, size_t size, size_t n, void *user) {
  creds_text *t = user;
  size_t add = size * n;
  if (t->len + add > CREDS_MAX_RESPONSE) return 0;
  creds__append(t, "%.*s", (int)add, ptr);
  return t->oom ? 0 : add;
}

/* GETs path from the hub; returns its JSON body (free with cJSON_Delete)
 * when the hub answered 200 with JSON, else NULL after saying why. */
static cJSON *creds__hub_get(const creds_opts *o, const char *path) {
  char url[1024];
  snprintf(url, sizeof url, "%s%s", o->hub, path);
  CURL *curl = curl_easy_init();
  creds_text body = {0};
  cJSON *json = NULL;
  long status = 0;
  if (!curl) {
    creds__fail(o, 1, "cannot initialise libcurl");
    return NULL;
  }
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, creds__on_data);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK)
    creds__fail(o, 1, "cannot reach the hub at %s for its registry: %s", o->hub,
                curl_easy_strerror(rc));
  else if (curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status), status != 200)
    creds__fail(o, 1, "the hub answered HTTP %ld to GET %s", status, path);
  else if (!body.p || !(json = cJSON_ParseWithLength(body.p, body.len)))
    creds__fail(o, 1, "the hub's answer to GET %s is not JSON", path);
  curl_easy_cleanup(curl);
  free(body.p);
  return json;
}

/* Whether sync lets e in, given the hub's vehicles (an array of {id, state});
 * returns NULL when it does, else the reason it is left out. */
static const char *creds__left_out(const creds_entry *e, const cJSON *vehicles) {
  if (e->revoked) return "revoked";
  if (strcmp(e->role, "vehicle") != 0) return NULL;
  const cJSON *v;
  cJSON_ArrayForEach(v, vehicles) {
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(v, "id"));
    if (!id || strcmp(id, e->id) != 0) continue;
    const char *state = cJSON_GetStringValue(cJSON_GetObjectItem(v, "state"));
    return state && strcmp(state, "RETIRED") == 0 ? "retired" : NULL;
  }
  return "not registered";
}

/* ---- sync ----------------------------------------------------------------- */

/* Sends SIGHUP to the broker named by the pid file. Returns 0, or 1 after
 * saying why (the files are written: reloading the broker applies them). */
static int creds__signal_broker(const creds_opts *o) {
  FILE *f = fopen(o->pidfile, "r");
  long pid = 0;
  if (!f)
    return creds__fail(o, 1,
                       "wrote the files, but cannot read the broker's pid file %s (%s): "
                       "reload mosquitto (systemctl reload mosquitto) to apply them",
                       o->pidfile, strerror(errno));
  int got = fscanf(f, "%ld", &pid);
  fclose(f);
  if (got != 1 || pid <= 1 || kill((pid_t)pid, SIGHUP) != 0)
    return creds__fail(o, 1, "wrote the files, but cannot signal the broker (pid file %s): %s",
                       o->pidfile, got == 1 && pid > 1 ? strerror(errno) : "no pid in it");
  return 0;
}

/* Writes passwd and acl from s and the registry, then reloads the broker.
 * Returns the exit status. */
static int creds__sync(const creds_opts *o, const creds_store *s) {
  cJSON *vehicles = creds__hub_get(o, "/v1/vehicles");
  if (!vehicles) return 1;
  creds_text pw = {0}, acl = {0}, out = {0};
  creds__append(&acl,
                "# written by fleetctl creds sync from %s/credentials and the hub's "
                "registry: do not edit\n# (docs/protocol.md P-TOP-6)\n",
                o->dir);
  size_t in = 0;
  for (size_t i = 0; i < s->n; i++) {
    const creds_entry *e = &s->v[i];
    const char *why = creds__left_out(e, vehicles);
    if (why) {
      creds__append(&out, "%s%s %s", out.len ? ", " : "", e->id, why);
      continue;
    }
    in++;
    creds__append(&pw, "%s:%s\n", e->id, e->hash);
    if (strcmp(e->role, "hub") == 0)
      creds__append(&acl, "\nuser %s\ntopic readwrite fleet/v1/#\n", e->id);
    else if (strcmp(e->role, "dashboard") == 0)
      creds__append(&acl,
                    "\nuser %s\ntopic read fleet/v1/state/#\ntopic read fleet/v1/notify/#\n"
                    "topic read fleet/v1/notices/#\n",
                    e->id);
    else
      creds__append(&acl,
                    "\nuser %s\ntopic write fleet/v1/dev/%s/up/#\n"
                    "topic read fleet/v1/dev/%s/down/#\ntopic read fleet/v1/hub/status\n"
                    /* revision 1.2: its partitioned subtree, any partition count */
                    "topic write fleet/v1/p/+/dev/%s/up/#\n"
                    "topic read fleet/v1/p/+/dev/%s/down/#\ntopic read fleet/v1/p/+/status\n",
                    e->id, e->id, e->id, e->id, e->id);
  }
  cJSON_Delete(vehicles);
  char pw_path[CREDS_PATH_MAX], acl_path[CREDS_PATH_MAX];
  creds__path(pw_path, o, "passwd");
  creds__path(acl_path, o, "acl");
  int rc = 1;
  if (pw.oom || acl.oom || out.oom)
    creds__fail(o, 1, "out of memory");
  else if (creds__replace(o, acl_path, acl.p, 0640) == 0 &&
           creds__replace(o, pw_path, pw.p ? pw.p : "", 0640) == 0 &&
           (rc = creds__signal_broker(o)) == 0)
    fprintf(stderr, "fleetctl: synced %zu logins to %s and %s, broker reloaded%s%s\n", in, pw_path,
            acl_path, out.len ? "; left out: " : "", out.len ? out.p : "");
  free(pw.p);
  free(acl.p);
  free(out.p);
  return rc;
}

/* ---- commands --------------------------------------------------------------- */

/* Prints a login and its new password, once. */
static void creds__print_secret(const creds_opts *o, const creds_entry *e, const char *password) {
  if (o->json) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", e->id);
    cJSON_AddStringToObject(j, "role", e->role);
    cJSON_AddStringToObject(j, "password", password);
    char *text = cJSON_PrintUnformatted(j);
    if (text) printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(j);
  } else {
    printf("id        %s\nrole      %s\npassword  %s\n", e->id, e->role, password);
    fprintf(stderr,
            "fleetctl: the password is shown only now: put it in the device's "
            "[mqtt] password (/etc/fleet/agent-%s.ini)\n",
            e->id);
  }
}

/* The role of a new login: --role, else vehicle when the hub knows a vehicle
 * of that id. Returns NULL after saying why. */
static const char *creds__role_for(const creds_opts *o, const char *id) {
  if (o->role) {
    if (!creds__valid_role(o->role)) {
      creds__fail(o, FL_CLI_USAGE, "--role is vehicle, kiosk, hub or dashboard");
      return NULL;
    }
    return o->role;
  }
  cJSON *vehicles = creds__hub_get(o, "/v1/vehicles");
  if (!vehicles) return NULL;
  creds_entry probe = {.role = "vehicle"};
  snprintf(probe.id, sizeof probe.id, "%s", id);
  const char *why = creds__left_out(&probe, vehicles);
  cJSON_Delete(vehicles);
  if (why && strcmp(why, "not registered") == 0) {
    creds__fail(o, 1,
                "the hub has no vehicle %s: register it first, or give --role kiosk "
                "(or hub, dashboard)",
                id);
    return NULL;
  }
  return "vehicle";
}

static int creds__new(const creds_opts *o, creds_store *s, const char *id) {
  creds_entry *e = creds__find(s, id);
  if (e && !e->revoked)
    return creds__fail(o, 1, "%s has credentials already (creds rotate %s for a new password)", id,
                       id);
  const char *role = creds__role_for(o, id);
  if (!role) return o->role ? FL_CLI_USAGE : 1;
  char password[32], hash[CREDS_HASH_MAX];
  if (creds__new_password(o, password) || creds__hash(o, id, password, hash)) return 1;
  if (!e && !(e = creds__add(s))) return creds__fail(o, 1, "out of memory");
  snprintf(e->id, sizeof e->id, "%s", id);
  snprintf(e->role, sizeof e->role, "%s", role);
  e->revoked = false;
  e->created_ms = e->updated_ms = creds__now_ms();
  snprintf(e->hash, sizeof e->hash, "%s", hash);
  if (creds__save(o, s)) return 1;
  creds__print_secret(o, e, password);
  return creds__sync(o, s);
}

static int creds__rotate(const creds_opts *o, creds_store *s, const char *id) {
  creds_entry *e = creds__find(s, id);
  if (!e || e->revoked)
    return creds__fail(o, 1, "%s has no active credentials (creds new %s)", id, id);
  char password[32], hash[CREDS_HASH_MAX];
  if (creds__new_password(o, password) || creds__hash(o, id, password, hash)) return 1;
  snprintf(e->hash, sizeof e->hash, "%s", hash);
  e->updated_ms = creds__now_ms();
  if (creds__save(o, s)) return 1;
  creds__print_secret(o, e, password);
  return creds__sync(o, s);
}

static int creds__revoke(const creds_opts *o, creds_store *s, const char *id) {
  creds_entry *e = creds__find(s, id);
  if (!e) return creds__fail(o, 1, "%s has no credentials", id);
  e->revoked = true;
  e->updated_ms = creds__now_ms();
  snprintf(e->hash, sizeof e->hash, "-");
  if (creds__save(o, s)) return 1;
  return creds__sync(o, s);
}

static int creds__list(const creds_opts *o, const creds_store *s) {
  cJSON *vehicles = creds__hub_get(o, "/v1/vehicles");
  if (!vehicles) return 1;
  cJSON *rows = cJSON_CreateArray();
  for (size_t i = 0; i < s->n; i++) {
    const char *why = creds__left_out(&s->v[i], vehicles);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "id", s->v[i].id);
    cJSON_AddStringToObject(r, "role", s->v[i].role);
    cJSON_AddStringToObject(r, "status", s->v[i].revoked ? "revoked" : "active");
    cJSON_AddStringToObject(r, "broker", why ? why : "allowed");
    cJSON_AddNumberToObject(r, "created_ms", (double)s->v[i].created_ms);
    cJSON_AddNumberToObject(r, "updated_ms", (double)s->v[i].updated_ms);
    cJSON_AddItemToArray(rows, r);
  }
  cJSON_Delete(vehicles);
  if (o->json) {
    char *text = cJSON_PrintUnformatted(rows);
    if (text) printf("%s\n", text);
    cJSON_free(text);
  } else {
    printf("%-12s  %-9s  %-7s  %-14s  %s\n", "ID", "ROLE", "STATUS", "BROKER", "UPDATED");
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
      time_t t = (time_t)(cJSON_GetNumberValue(cJSON_GetObjectItem(r, "updated_ms")) / 1000);
      struct tm tm;
      char when[32] = "-";
      if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
      printf("%-12s  %-9s  %-7s  %-14s  %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(r, "id")),
             cJSON_GetStringValue(cJSON_GetObjectItem(r, "role")),
             cJSON_GetStringValue(cJSON_GetObjectItem(r, "status")),
             cJSON_GetStringValue(cJSON_GetObjectItem(r, "broker")), when);
    }
  }
  cJSON_Delete(rows);
  return 0;
}

/* ---- command line ------------------------------------------------------------ */

/* Returns the index in argv of the first word that is not a global option
 * of fleetctl (--hub URL, --hub=URL, --json), or argc. */
static int creds__command_index(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--hub") == 0)
      i++;
    else if (strncmp(argv[i], "--hub=", 6) != 0 && strcmp(argv[i], "--json") != 0)
      return i;
  }
  return argc;
}

enum { OPT_HUB = 256, OPT_JSON, OPT_DIR, OPT_PIDFILE, OPT_ROLE };

int fleetctl_creds_main(int argc, char **argv) {
  int at = creds__command_index(argc, argv);
  if (at >= argc || strcmp(argv[at], "creds") != 0) return -1;
  static const struct option long_opts[] = {{"hub", required_argument, NULL, OPT_HUB},
                                            {"json", no_argument, NULL, OPT_JSON},
                                            {"creds-dir", required_argument, NULL, OPT_DIR},
                                            {"broker-pid", required_argument, NULL, OPT_PIDFILE},
                                            {"role", required_argument, NULL, OPT_ROLE},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
  creds_opts o = {.hub = getenv("FLEETCTL_HUB"),
                  .dir = getenv("FLEETCTL_CREDS_DIR"),
                  .pidfile = getenv("FLEETCTL_BROKER_PIDFILE")};
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--json") == 0) o.json = true;
  bool help = false;
  opterr = 0;
  optind = 1;
  for (int opt; (opt = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1;) {
    switch (opt) {
    case OPT_HUB: o.hub = optarg; break;
    case OPT_JSON: o.json = true; break;
    case OPT_DIR: o.dir = optarg; break;
    case OPT_PIDFILE: o.pidfile = optarg; break;
    case OPT_ROLE: o.role = optarg; break;
    case 'h': help = true; break;
    default: {
      const char *word = optind > 0 ? argv[optind - 1] : "";
      int len = (int)strcspn(word, "=");
      return creds__fail(&o, FL_CLI_USAGE,
                         opt == ':' ? "%.*s needs a value" : "unknown option %.*s", len, word);
    }
    }
  }
  /* optind now points at "creds"; what follows is the subcommand and its id */
  for (int i = optind + 1; i < argc; i++) {
    if (o.nargs == 3) return creds__fail(&o, FL_CLI_USAGE, "too many arguments");
    o.args[o.nargs++] = argv[i];
  }
  if (help || o.nargs == 0 || strcmp(o.args[0], "help") == 0) {
    if (help || o.nargs) return creds__usage();
    return creds__fail(&o, FL_CLI_USAGE, "creds needs a command: new, list, rotate, revoke, sync");
  }
  const char *cmd = o.args[0];
  bool with_id =
      strcmp(cmd, "new") == 0 || strcmp(cmd, "rotate") == 0 || strcmp(cmd, "revoke") == 0;
  if (!with_id && strcmp(cmd, "list") != 0 && strcmp(cmd, "sync") != 0)
    return creds__fail(&o, FL_CLI_USAGE, "unknown creds command %s", cmd);
  if (o.nargs != (with_id ? 2 : 1))
    return creds__fail(&o, FL_CLI_USAGE,
                       with_id ? "usage: fleetctl creds %s ID" : "usage: fleetctl creds %s", cmd);
  if (o.role && strcmp(cmd, "new") != 0)
    return creds__fail(&o, FL_CLI_USAGE, "only creds new takes --role");
  const char *id = with_id ? o.args[1] : NULL;
  if (id && !creds__valid_id(id))
    return creds__fail(&o, FL_CLI_USAGE, "'%s' is not a login name: 1..40 of A-Z a-z 0-9 . _ -",
                       id);

  static char hub[512];
  snprintf(hub, sizeof hub, "%s", o.hub && *o.hub ? o.hub : CREDS_DEFAULT_HUB);
  for (size_t n = strlen(hub); n > 0 && hub[n - 1] == '/'; n--)
    hub[n - 1] = '\0';
  o.hub = hub;
  if (!o.dir || !*o.dir) o.dir = CREDS_DEFAULT_DIR;
  if (!o.pidfile || !*o.pidfile) o.pidfile = CREDS_DEFAULT_PIDFILE;

  char lock_path[CREDS_PATH_MAX];
  creds__path(lock_path, &o, "credentials.lock");
  int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0)
    return creds__fail(&o, 1, "%s: %s (is --creds-dir a directory you may write?)", lock_path,
                       strerror(errno));
  if (flock(lock, LOCK_EX) != 0) {
    close(lock);
    return creds__fail(&o, 1, "%s: %s", lock_path, strerror(errno));
  }
  umask(027);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  creds_store s = {0};
  int rc = creds__load(&o, &s);
  if (rc == 0) {
    if (strcmp(cmd, "new") == 0)
      rc = creds__new(&o, &s, id);
    else if (strcmp(cmd, "rotate") == 0)
      rc = creds__rotate(&o, &s, id);
    else if (strcmp(cmd, "revoke") == 0)
      rc = creds__revoke(&o, &s, id);
    else if (strcmp(cmd, "list") == 0)
      rc = creds__list(&o, &s);
    else
      rc = creds__sync(&o, &s);
  }
  free(s.v);
  curl_global_cleanup();
  close(lock);
  return rc;
}
