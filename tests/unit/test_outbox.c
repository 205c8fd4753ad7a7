/* Unit test of the agent's outbox with a real SQLite file in a temp dir:
 * seqs, acks, the never-drop rule, telemetry coalescing, persistence across
 * reopen, boot counter, rollback and rebase after storage loss. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleet/error.h"
#include "fleet/proto.h"
#include "outbox.h"

static int passed, failed;

#define CHECK(cond)                                                   \
  do {                                                                \
    if (cond) {                                                       \
      passed++;                                                       \
    } else {                                                          \
      failed++;                                                       \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                 \
  } while (0)

static char dir[64], path[128];

static outbox *open_outbox(int max_events, int telemetry_max) {
  outbox_opts o = {.path = path,
                   .dev = "V1",
                   .durability = FL_DB_SYNC_NORMAL,
                   .max_events = max_events,
                   .telemetry_max = telemetry_max};
  outbox *ob = NULL;
  int err = outbox__open(&o, &ob);
  CHECK(err == FL_OK);
  if (!ob) {
    fprintf(stderr, "cannot open outbox %s: %s\n", path, fl_strerror(err));
    exit(1);
  }
  return ob;
}

static int append_fault(outbox *ob, const char *code, uint64_t *seq) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_FAULT);
  m.body.fault.n_dtcs = 1;
  snprintf(m.body.fault.dtcs[0], sizeof m.body.fault.dtcs[0], "%s", code);
  m.body.fault.severity = FL_SEV_WARNING;
  return outbox__append(ob, &m, seq);
}

static int add_telemetry(outbox *ob, uint64_t odometer) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_TELEMETRY);
  m.body.telemetry.odometer_m = odometer;
  m.body.telemetry.energy_pct = 50;
  m.body.telemetry.lat = 48.1;
  m.body.telemetry.lon = 11.5;
  return outbox__telemetry_add(ob, &m);
}

/* Decodes the stored event after `after` into *m; returns its seq or 0. */
static uint64_t read_next(outbox *ob, uint64_t after, fl_msg *m) {
  static outbox_event ev;
  if (outbox__next_event(ob, after, &ev) != FL_OK) return 0;
  if (fl_msg_decode(ev.payload, ev.len, m, NULL) != FL_OK) return 0;
  return ev.seq;
}

static void test_fresh_submit_and_ack(void) {
  outbox *ob = open_outbox(0, 0);
  CHECK(outbox__boot(ob) == 1);
  CHECK(outbox__next_seq(ob) == 1);
  uint64_t s1 = 0, s2 = 0, s3 = 0;
  CHECK(append_fault(ob, "P0001", &s1) == FL_OK);
  CHECK(append_fault(ob, "P0002", &s2) == FL_OK);
  CHECK(append_fault(ob, "P0003", &s3) == FL_OK);
  CHECK(s1 == 1 && s2 == 2 && s3 == 3);
  CHECK(outbox__backlog(ob) == 3);
  fl_msg m;
  CHECK(read_next(ob, 0, &m) == 1);
  CHECK(m.env.type == FL_MSG_FAULT && m.env.seq == 1 && m.env.boot == 1);
  CHECK(strcmp(m.env.mid, "V1:1") == 0 && strcmp(m.env.dev, "V1") == 0);
  CHECK(strcmp(m.body.fault.dtcs[0], "P0001") == 0);
  CHECK(m.env.time_ms > 0);
  CHECK(outbox__ack(ob, 2) == 2);
  CHECK(outbox__last_ack(ob) == 2 && outbox__backlog(ob) == 1);
  CHECK(read_next(ob, 0, &m) == 3);
  CHECK(outbox__ack(ob, 2) == 0); /* duplicate ack: nothing */
  CHECK(outbox__set_applied(ob, 7) == FL_OK);
  outbox__close(ob);
}

static void test_reopen_persists(void) {
  outbox *ob = open_outbox(0, 0);
  CHECK(outbox__boot(ob) == 2);
  CHECK(outbox__next_seq(ob) == 4);
  CHECK(outbox__last_ack(ob) == 2);
  CHECK(outbox__applied(ob) == 7);
  CHECK(outbox__backlog(ob) == 1);
  uint64_t s = 0;
  CHECK(append_fault(ob, "P0004", &s) == FL_OK && s == 4);
  fl_msg m;
  CHECK(read_next(ob, 3, &m) == 4 && m.env.boot == 2);
  CHECK(outbox__ack(ob, 4) == 2 && outbox__backlog(ob) == 0);
  outbox__close(ob);
}

static void test_never_drop_critical(void) {
  outbox *ob = open_outbox(3, 0);
  CHECK(outbox__boot(ob) == 3);
  uint64_t s = 0;
  CHECK(append_fault(ob, "P0005", &s) == FL_OK && s == 5);
  CHECK(append_fault(ob, "P0006", &s) == FL_OK);
  CHECK(append_fault(ob, "P0007", &s) == FL_OK && s == 7);
  CHECK(append_fault(ob, "P0008", &s) == FL_ERR_FULL);
  CHECK(outbox__next_seq(ob) == 8); /* a refusal consumes no seq */
  CHECK(outbox__backlog(ob) == 3);
  CHECK(add_telemetry(ob, 1) == FL_OK); /* telemetry is queued, not refused */
  CHECK(outbox__ack(ob, 5) == 1);
  CHECK(append_fault(ob, "P0008", &s) == FL_OK && s == 8);
  CHECK(outbox__ack(ob, 8) == 3);
  outbox__close(ob);
}

static void test_telemetry_coalescing(void) {
  outbox *ob = open_outbox(0, 3);
  CHECK(outbox__telemetry_queued(ob) == 1); /* left from the previous test */
  for (uint64_t odo = 100; odo < 105; odo++) CHECK(add_telemetry(ob, odo) == FL_OK);
  CHECK(outbox__telemetry_queued(ob) == 3);
  CHECK(outbox__telemetry_dropped(ob) == 3);
  CHECK(outbox__next_seq(ob) == 9); /* queued telemetry has no seq */
  uint64_t s = 0;
  CHECK(append_fault(ob, "P0009", &s) == FL_OK && s == 9);
  CHECK(outbox__telemetry_promote(ob, 2) == 2);
  CHECK(outbox__telemetry_queued(ob) == 1);
  CHECK(outbox__next_seq(ob) == 12);
  fl_msg m;
  CHECK(read_next(ob, 9, &m) == 10);
  CHECK(m.env.type == FL_MSG_TELEMETRY && m.body.telemetry.odometer_m == 102);
  CHECK(read_next(ob, 10, &m) == 11 && m.body.telemetry.odometer_m == 103);
  CHECK(outbox__telemetry_promote(ob, 5) == 1);
  CHECK(outbox__telemetry_promote(ob, 5) == 0);
  CHECK(read_next(ob, 11, &m) == 12 && m.body.telemetry.odometer_m == 104);
  CHECK(outbox__ack(ob, 12) == 4 && outbox__backlog(ob) == 0);
  fl_msg bad;
  fl_msg_init(&bad, FL_MSG_TELEMETRY);
  bad.body.telemetry.lat = 123.0; /* out of range: refused at once */
  CHECK(outbox__telemetry_add(ob, &bad) == FL_ERR_INVALID);
  outbox__close(ob);
}

static void test_rollback_restores_counters(void) {
  outbox *ob = open_outbox(0, 0);
  uint64_t s = 0;
  CHECK(outbox__begin(ob) == FL_OK);
  CHECK(append_fault(ob, "P0013", &s) == FL_OK && s == 13);
  outbox__rollback(ob);
  CHECK(outbox__next_seq(ob) == 13 && outbox__backlog(ob) == 0);
  CHECK(append_fault(ob, "P0013", &s) == FL_OK && s == 13);
  outbox__close(ob);
}

static void test_rebase_after_storage_loss(void) {
  outbox *ob = open_outbox(0, 0);
  uint64_t s = 0;
  CHECK(append_fault(ob, "P0014", &s) == FL_OK && s == 14);
  CHECK(outbox__rebase(ob, 10) == FL_OK); /* behind us: no-op */
  CHECK(outbox__next_seq(ob) == 15);
  CHECK(outbox__rebase(ob, 100) == FL_OK);
  CHECK(outbox__next_seq(ob) == 102 && outbox__last_ack(ob) == 99);
  fl_msg m;
  CHECK(read_next(ob, 0, &m) == 100 && m.env.seq == 100 && strcmp(m.env.mid, "V1:100") == 0);
  CHECK(strcmp(m.body.fault.dtcs[0], "P0013") == 0);
  CHECK(read_next(ob, 100, &m) == 101 && strcmp(m.body.fault.dtcs[0], "P0014") == 0);
  outbox__close(ob);
  ob = open_outbox(0, 0);
  CHECK(outbox__next_seq(ob) == 102 && outbox__last_ack(ob) == 99 && outbox__backlog(ob) == 2);
  outbox__close(ob);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/test_outbox.XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  snprintf(path, sizeof path, "%s/outbox.db", dir);
  test_fresh_submit_and_ack();
  test_reopen_persists();
  test_never_drop_critical();
  test_telemetry_coalescing();
  test_rollback_restores_counters();
  test_rebase_after_storage_loss();
  const char *suffixes[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    char f[160];
    snprintf(f, sizeof f, "%s%s", path, suffixes[i]);
    unlink(f);
  }
  rmdir(dir);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
