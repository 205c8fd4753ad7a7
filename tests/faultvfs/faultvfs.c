/* faultvfs: an SQLite VFS that fails chosen writes and syncs, loaded into a
 * real fleet-hub or fleet-agent with LD_PRELOAD (the shipped programs carry no
 * test code). Its constructor wraps the default VFS and registers the wrapper
 * as the new default, so every database the process opens goes through it.
 *
 * What to fail is one fault spec: words `key=value`, separated by blanks or
 * new lines.
 *
 *   file=hub.db     the files: a base name equal to it, or it followed by '-'
 *                   (hub.db, hub.db-wal, hub.db-journal); required
 *   op=write        write, sync or any (write and sync); default write
 *   nth=3           the 3rd matching operation counted from when the spec was
 *                   read (1 = the next one); default 1
 *   mode=once       once: only the nth fails; after: the nth and every later
 *                   one, until the spec changes; default once
 *   error=full      full (SQLITE_FULL) or ioerr (SQLITE_IOERR_WRITE,
 *                   SQLITE_IOERR_FSYNC); default full
 *   id=7            echoed in the status file, to tell specs apart
 *
 * Environment:
 *   FAULTVFS_CONTROL  a file holding the spec. It is looked at (stat) before
 *                     every operation and read again when it changed, which
 *                     restarts the count; missing or empty: no fault. A test
 *                     switches faults on and off while the process runs by
 *                     replacing it (write a temporary file, rename it).
 *   FAULTVFS_FAULT    a fixed spec, used when FAULTVFS_CONTROL is not set.
 *   FAULTVFS_STATUS   a file rewritten (temporary file + rename) after every
 *                     matching operation: `id=7 ops=12 fired=1 last=write
 *                     path=/x/hub.db-wal`.
 *   FAULTVFS_CACHE_PAGES, FAULTVFS_CACHE_FILE
 *                     every connection to a database whose base name is
 *                     FAULTVFS_CACHE_FILE gets `PRAGMA cache_size=N`: a small
 *                     cache makes SQLite write pages to the WAL in the middle
 *                     of a transaction (a cache spill), so that a fault can hit
 *                     a statement rather than only the COMMIT.
 *
 * The constructor initialises SQLite, so a later sqlite3_config() in the
 * program returns SQLITE_MISUSE (fleet-agent's page-cache tweak is then
 * ignored; it is a memory saving only). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum fault_op { OP_WRITE = 1, OP_SYNC = 2, OP_ANY = 3 };

struct fault_spec {
  bool active;
  char file[128];
  int op;          /* enum fault_op mask */
  long nth;        /* >= 1 */
  bool after;      /* every op from the nth on */
  bool ioerr;      /* else SQLITE_FULL */
  char id[32];
};

/* The process-wide state, under `lock`. */
static struct {
  pthread_mutex_t lock;
  sqlite3_vfs *real;
  const char *control, *status;
  struct stat control_seen;   /* st_ino, st_size, st_mtim of the spec read */
  bool control_present;
  struct fault_spec spec;
  long ops, fired;            /* matching operations and faults since the spec was read */
} fv = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* One open file: our header, then the real VFS's file. */
struct fault_file {
  sqlite3_file base;
  sqlite3_file *real;
  char path[512];
};

/* Returns true if path's base name is name, or name followed by '-'. */
static bool name_matches(const char *path, const char *name) {
  if (!path || !name[0]) return false;
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  size_t n = strlen(name);
  return strncmp(base, name, n) == 0 && (base[n] == '\0' || base[n] == '-');
}

/* Parses text into *spec (inactive if it names no file). */
static void spec_parse(const char *text, struct fault_spec *spec) {
  *spec = (struct fault_spec){.op = OP_WRITE, .nth = 1};
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", text);
  char *save = NULL;
  for (char *word = strtok_r(buf, " \t\r\n", &save); word; word = strtok_r(NULL, " \t\r\n", &save)) {
    char *eq = strchr(word, '=');
    if (!eq) continue;
    *eq = '\0';
    const char *key = word, *value = eq + 1;
    if (strcmp(key, "file") == 0) {
      snprintf(spec->file, sizeof spec->file, "%s", value);
    } else if (strcmp(key, "op") == 0) {
      spec->op = strcmp(value, "sync") == 0 ? OP_SYNC : strcmp(value, "any") == 0 ? OP_ANY : OP_WRITE;
    } else if (strcmp(key, "nth") == 0) {
      spec->nth = strtol(value, NULL, 10);
      if (spec->nth < 1) spec->nth = 1;
    } else if (strcmp(key, "mode") == 0) {
      spec->after = strcmp(value, "after") == 0;
    } else if (strcmp(key, "error") == 0) {
      spec->ioerr = strcmp(value, "ioerr") == 0;
    } else if (strcmp(key, "id") == 0) {
      snprintf(spec->id, sizeof spec->id, "%s", value);
    }
  }
  spec->active = spec->file[0] != '\0';
}

/* Reads the control file again if it changed since it was last read.
 * Called with fv.lock held. */
static void control_refresh(void) {
  if (!fv.control) return;
  struct stat st;
  bool present = stat(fv.control, &st) == 0;
  if (present == fv.control_present &&
      (!present || (st.st_ino == fv.control_seen.st_ino && st.st_size == fv.control_seen.st_size &&
                    st.st_mtim.tv_sec == fv.control_seen.st_mtim.tv_sec &&
                    st.st_mtim.tv_nsec == fv.control_seen.st_mtim.tv_nsec)))
    return;
  fv.control_present = present;
  if (present) fv.control_seen = st;
  char text[1024] = "";
  FILE *f = present ? fopen(fv.control, "r") : NULL;
  if (f) {
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
  }
  spec_parse(text, &fv.spec);
  fv.ops = fv.fired = 0;
}

/* Rewrites the status file. Called with fv.lock held. */
static void status_write(const char *op, const char *path) {
  if (!fv.status) return;
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp", fv.status);
  FILE *f = fopen(tmp, "w");
  if (!f) return;
  fprintf(f, "id=%s ops=%ld fired=%ld last=%s path=%s\n", fv.spec.id, fv.ops, fv.fired, op, path);
  if (fclose(f) == 0) rename(tmp, fv.status);
}

/* Decides whether this operation on file fails. Returns SQLITE_OK or the
 * error to return instead of doing it. */
static int fault_check(struct fault_file *file, int op) {
  int err = SQLITE_OK;
  int saved_errno = errno;
  pthread_mutex_lock(&fv.lock);
  control_refresh();
  if (fv.spec.active && (fv.spec.op & op) && name_matches(file->path, fv.spec.file)) {
    fv.ops++;
    if (fv.ops == fv.spec.nth || (fv.spec.after && fv.ops > fv.spec.nth)) {
      fv.fired++;
      if (!fv.spec.ioerr) err = SQLITE_FULL;
      else err = op == OP_SYNC ? SQLITE_IOERR_FSYNC : SQLITE_IOERR_WRITE;
    }
    status_write(op == OP_SYNC ? "sync" : "write", file->path);
  }
  pthread_mutex_unlock(&fv.lock);
  errno = saved_errno;
  return err;
}

/* ---- sqlite3_io_methods: checks, then the real file's method -------------- */

static int ff_close(sqlite3_file *f) {
  struct fault_file *ff = (struct fault_file *)f;
  return ff->real->pMethods ? ff->real->pMethods->xClose(ff->real) : SQLITE_OK;
}
static int ff_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off) {
  struct fault_file *ff = (struct fault_file *)f;
  return ff->real->pMethods->xRead(ff->real, buf, amt, off);
}
static int ff_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off) {
  struct fault_file *ff = (struct fault_file *)f;
  int err = fault_check(ff, OP_WRITE);
  return err != SQLITE_OK ? err : ff->real->pMethods->xWrite(ff->real, buf, amt, off);
}
static int ff_truncate(sqlite3_file *f, sqlite3_int64 size) {
  struct fault_file *ff = (struct fault_file *)f;
  return ff->real->pMethods->xTruncate(ff->real, size);
}
static int ff_sync(sqlite3_file *f, int flags) {
  struct fault_file *ff = (struct fault_file *)f;
  int err = fault_check(ff, OP_SYNC);
  return err != SQLITE_OK ? err : ff->real->pMethods->xSync(ff->real, flags);
}
static int ff_file_size(sqlite3_file *f, sqlite3_int64 *size) {
  struct fault_file *ff = (struct fault_file *)f;
  return ff->real->pMethods->xFileSize(ff->real, size);
}
static int ff_lock(sqlite3_file *f, int level) {
  struct fault_file *ff = (struct fault_file *)f;
  return ff->real->pMethods->xLock(ff->real, level);
}
static int ff_unlock(sqlite3_file *f, int level) {
  struct fault_file *ff = (struct fault_file *)f;
  return ff->real->pMethods->xUnlock(ff->real, level);
}
static int ff_check_reserved(sqlite3_file *f, int *out) {
  struct fault_file *ff = (struct fault_file *)f;
  return ff->real->pMethods->xCheckReservedLock(ff->real, out);
}
static int ff_file_control(sqlite3_file *f, int op, void *arg) {
  struct fault_file *ff = (struct fault_file *)f;
  int rc = ff->real->pMethods->xFileControl(ff->real, op, arg);
  if (rc == SQLITE_OK && op == SQLITE_FCNTL_VFSNAME && arg) {
    char **name = arg;
    char *wrapped = sqlite3_mprintf("faultvfs/%z", *name);
    if (wrapped) *name = wrapped;
  }
  return rc;
}
static int ff_sector_size(sqlite3_file *f) {
  struct fault_file *ff = (struct fault_file *)f;
  return ff->real->pMethods->xSectorSize(ff->real);
}
static int ff_device_chars(sqlite3_file *f) {
  struct fault_file *ff = (struct fault_file *)f;
  return ff->real->pMethods->xDeviceCharacteristics(ff->real);
}
static int ff_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **out) {
  struct fault_file *ff = (struct fault_file *)f;
  return ff->real->pMethods->xShmMap(ff->real, page, size, extend, out);
}
static int ff_shm_lock(sqlite3_file *f, int offset, int n, int flags) {
  struct fault_file *ff = (struct fault_file *)f;
  return ff->real->pMethods->xShmLock(ff->real, offset, n, flags);
}
static void ff_shm_barrier(sqlite3_file *f) {
  struct fault_file *ff = (struct fault_file *)f;
  ff->real->pMethods->xShmBarrier(ff->real);
}
static int ff_shm_unmap(sqlite3_file *f, int delete_flag) {
  struct fault_file *ff = (struct fault_file *)f;
  return ff->real->pMethods->xShmUnmap(ff->real, delete_flag);
}
static int ff_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **out) {
  struct fault_file *ff = (struct fault_file *)f;
  return ff->real->pMethods->xFetch(ff->real, off, amt, out);
}
static int ff_unfetch(sqlite3_file *f, sqlite3_int64 off, void *page) {
  struct fault_file *ff = (struct fault_file *)f;
  return ff->real->pMethods->xUnfetch(ff->real, off, page);
}

/* Methods for a real file of version 3 (the unix VFS's files); the versions
 * below leave out what the real file lacks. */
static const sqlite3_io_methods ff_methods[4] = {
    [1] = {1, ff_close, ff_read, ff_write, ff_truncate, ff_sync, ff_file_size, ff_lock, ff_unlock,
           ff_check_reserved, ff_file_control, ff_sector_size, ff_device_chars, NULL, NULL, NULL,
           NULL, NULL, NULL},
    [2] = {2, ff_close, ff_read, ff_write, ff_truncate, ff_sync, ff_file_size, ff_lock, ff_unlock,
           ff_check_reserved, ff_file_control, ff_sector_size, ff_device_chars, ff_shm_map,
           ff_shm_lock, ff_shm_barrier, ff_shm_unmap, NULL, NULL},
    [3] = {3, ff_close, ff_read, ff_write, ff_truncate, ff_sync, ff_file_size, ff_lock, ff_unlock,
           ff_check_reserved, ff_file_control, ff_sector_size, ff_device_chars, ff_shm_map,
           ff_shm_lock, ff_shm_barrier, ff_shm_unmap, ff_fetch, ff_unfetch},
};

/* ---- sqlite3_vfs: the real VFS, with our files ----------------------------- */

static int fv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags) {
  struct fault_file *ff = (struct fault_file *)f;
  ff->base.pMethods = NULL;
  ff->real = (sqlite3_file *)(ff + 1);
  snprintf(ff->path, sizeof ff->path, "%s", name ? name : "");
  int rc = fv.real->xOpen(fv.real, name, ff->real, flags, out_flags);
  if (ff->real->pMethods) {
    int version = ff->real->pMethods->iVersion;
    ff->base.pMethods = &ff_methods[version < 1 ? 1 : version > 3 ? 3 : version];
  }
  return rc;
}
static int fv_delete(sqlite3_vfs *vfs, const char *name, int sync_dir) {
  return fv.real->xDelete(fv.real, name, sync_dir);
}
static int fv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
  return fv.real->xAccess(fv.real, name, flags, out);
}
static int fv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out) {
  return fv.real->xFullPathname(fv.real, name, n, out);
}
static void *fv_dl_open(sqlite3_vfs *vfs, const char *path) { return fv.real->xDlOpen(fv.real, path); }
static void fv_dl_error(sqlite3_vfs *vfs, int n, char *msg) { fv.real->xDlError(fv.real, n, msg); }
static void (*fv_dl_sym(sqlite3_vfs *vfs, void *lib, const char *sym))(void) {
  return fv.real->xDlSym(fv.real, lib, sym);
}
static void fv_dl_close(sqlite3_vfs *vfs, void *lib) { fv.real->xDlClose(fv.real, lib); }
static int fv_randomness(sqlite3_vfs *vfs, int n, char *out) {
  return fv.real->xRandomness(fv.real, n, out);
}
static int fv_sleep(sqlite3_vfs *vfs, int us) { return fv.real->xSleep(fv.real, us); }
static int fv_current_time(sqlite3_vfs *vfs, double *out) {
  return fv.real->xCurrentTime(fv.real, out);
}
static int fv_last_error(sqlite3_vfs *vfs, int n, char *out) {
  return fv.real->xGetLastError(fv.real, n, out);
}
static int fv_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out) {
  return fv.real->xCurrentTimeInt64(fv.real, out);
}

static sqlite3_vfs fault_vfs = {
    .iVersion = 2,
    .zName = "faultvfs",
    .xOpen = fv_open,
    .xDelete = fv_delete,
    .xAccess = fv_access,
    .xFullPathname = fv_full_pathname,
    .xDlOpen = fv_dl_open,
    .xDlError = fv_dl_error,
    .xDlSym = fv_dl_sym,
    .xDlClose = fv_dl_close,
    .xRandomness = fv_randomness,
    .xSleep = fv_sleep,
    .xCurrentTime = fv_current_time,
    .xGetLastError = fv_last_error,
    .xCurrentTimeInt64 = fv_current_time64,
};

/* Auto-extension: shrinks the page cache of the connections to
 * FAULTVFS_CACHE_FILE (see the top of the file). */
static int cache_shrink(sqlite3 *db, char **err, const sqlite3_api_routines *api) {
  const char *pages = getenv("FAULTVFS_CACHE_PAGES");
  const char *file = getenv("FAULTVFS_CACHE_FILE");
  const char *path = sqlite3_db_filename(db, "main");
  if (!pages || !file || !path) return SQLITE_OK;
  const char *slash = strrchr(path, '/');
  if (strcmp(slash ? slash + 1 : path, file) != 0) return SQLITE_OK;
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA cache_size=%ld", strtol(pages, NULL, 10));
  return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

__attribute__((constructor)) static void faultvfs_init(void) {
  fv.real = sqlite3_vfs_find(NULL);
  if (!fv.real) {
    fprintf(stderr, "faultvfs: no default SQLite VFS\n");
    return;
  }
  fault_vfs.szOsFile = (int)sizeof(struct fault_file) + fv.real->szOsFile;
  fault_vfs.mxPathname = fv.real->mxPathname;
  fv.control = getenv("FAULTVFS_CONTROL");
  fv.status = getenv("FAULTVFS_STATUS");
  const char *fixed = getenv("FAULTVFS_FAULT");
  if (!fv.control && fixed) spec_parse(fixed, &fv.spec);
  if (sqlite3_vfs_register(&fault_vfs, 1) != SQLITE_OK) {
    fprintf(stderr, "faultvfs: cannot register the VFS\n");
    return;
  }
  sqlite3_auto_extension((void (*)(void))cache_shrink);
}
