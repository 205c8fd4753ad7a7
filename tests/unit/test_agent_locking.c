/* Regression test of the agent's lock order, with a real mosquitto.
 *
 * paho runs every callback with its internal mutex held, and publishing
 * needs that mutex. The agent once published while holding its own lock
 * (agent_submit / agent_tick) while paho's receive thread, holding paho's
 * mutex, waited for the agent's lock to handle an incoming ack: the two
 * threads waited for each other forever.
 *
 * Here one thread calls agent_submit + agent_tick in a tight loop while a
 * second MQTT client plays the hub (answers hello with sync) and floods the
 * agent's down/ack topic with valid acks. The test passes when it finishes in
 * time (alarm() turns a hang into a failure) and the agent kept working: it
 * stayed synced and every event it accepted was delivered and acked.
 *
 * Then the downlink: a gap in the hub's seq is normal (P-SEQ-10): the message
 * is applied, applied jumps, device_ack follows, and no hello is sent; a
 * duplicate is only acked again.
 *
 * Usage: test_agent_locking [SECONDS]   (default 4; mosquitto from
 * $FLEET_MOSQUITTO or /usr/sbin/mosquitto) */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fleet/agent.h"
#include "fleet/clock.h"
#include "fleet/error.h"
#include "fleet/log.h"
#include "fleet/mqtt.h"
#include "fleet/partition.h"
#include "fleet/topic.h"

#define DEV "LOCK1"
#define TIME_LIMIT_S 60

static int passed, failed;

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (cond) {                                                                  \
      passed++;                                                                  \
    } else {                                                                     \
      failed++;                                                                  \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
    }                                                                            \
  } while (0)

static char dir[64];
static volatile pid_t broker_pid;

/* ---- the broker ------------------------------------------------------------ */

/* Files in dir, removed on every exit. */
static const char *const dir_files[] = {"mosquitto.conf", "agent.db", "agent.db-wal",
                                        "agent.db-shm"};
static char dir_paths[4][128];

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "test_agent_locking: no progress within the time limit "
                            "(deadlock?)\n0 passed, 1 failed\n";
  if (broker_pid > 0) kill(broker_pid, SIGKILL);
  for (int i = 0; i < 4; i++) unlink(dir_paths[i]); /* async-signal-safe */
  rmdir(dir);
  ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)w;
  _exit(1);
}

/* Returns a TCP port on 127.0.0.1 that was free a moment ago. */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    perror("free_port");
    exit(1);
  }
  close(fd);
  return ntohs(sa.sin_port);
}

/* True once something accepts connections on port. */
static bool port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

static void broker_start(int port) {
  char conf[128];
  snprintf(conf, sizeof conf, "%s/mosquitto.conf", dir);
  FILE *f = fopen(conf, "w");
  if (!f) {
    perror(conf);
    exit(1);
  }
  fprintf(f, "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n", port);
  fclose(f);
  const char *bin = getenv("FLEET_MOSQUITTO");
  if (!bin || !bin[0]) bin = "/usr/sbin/mosquitto";
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(1);
  }
  if (pid == 0) {
    execl(bin, bin, "-c", conf, (char *)NULL);
    perror(bin);
    _exit(127);
  }
  broker_pid = pid;
  for (int i = 0; i < 500 && !port_open(port); i++) fl_sleep_ms(10);
  if (!port_open(port)) {
    fprintf(stderr, "mosquitto did not start on port %d\n", port);
    kill(pid, SIGKILL);
    exit(1);
  }
}

static void broker_stop(void) {
  if (broker_pid <= 0) return;
  kill(broker_pid, SIGTERM);
  waitpid(broker_pid, NULL, 0);
  broker_pid = 0;
}

/* ---- the fake hub: answers hello, tracks the highest event seq ------------- */

typedef struct fake_hub {
  fl_mqtt *mqtt;
  char topic_ack[FL_TOPIC_MAX], topic_sync[FL_TOPIC_MAX];
  char topic_reply[FL_TOPIC_MAX], topic_cmd[FL_TOPIC_MAX];
  atomic_uint_fast64_t device_acks;   /* device_acks received */
  atomic_uint_fast64_t device_ack_upto; /* the last one's upto */
  atomic_uint_fast64_t max_seq;  /* highest event seq seen */
  atomic_uint_fast64_t hellos;   /* hellos answered */
  atomic_uint_fast64_t mid;      /* for message ids */
  atomic_bool flood;             /* the acker's pace: flat out or every 20 ms */
  atomic_bool stop;
  atomic_int outstanding;        /* acks published, PUBACK pending */
  atomic_uint_fast64_t acks_sent;
} fake_hub;

static void hub_envelope(fake_hub *h, fl_msg *m, uint64_t seq) {
  m->env.v = FL_PROTO_VERSION;
  snprintf(m->env.mid, sizeof m->env.mid, "hub:%" PRIuFAST64, atomic_fetch_add(&h->mid, 1) + 1);
  snprintf(m->env.dev, sizeof m->env.dev, "%s", DEV);
  m->env.boot = 1;
  m->env.seq = seq;
  m->env.time_ms = fl_now_ms();
}

/* Publishes m at QoS 1; tag != 0 asks for hub_on_published. */
static int hub_publish_tagged(fake_hub *h, const char *topic, fl_msg *m, uint64_t seq,
                              uint64_t tag) {
  uint8_t buf[2048];
  size_t len = 0;
  hub_envelope(h, m, seq);
  int err = fl_msg_encode(m, buf, sizeof buf, &len);
  if (err != FL_OK) return err;
  return fl_mqtt_publish(h->mqtt, topic, buf, len, 1, false, NULL, NULL, 0, tag);
}

static int hub_publish(fake_hub *h, const char *topic, fl_msg *m, uint64_t seq) {
  return hub_publish_tagged(h, topic, m, seq, 0);
}

static void hub_on_published(void *ctx, uint64_t tag, int rc) {
  fake_hub *h = ctx;
  atomic_fetch_sub(&h->outstanding, 1);
}

/* paho's thread, paho's mutex held: decode, answer, return. */
static void hub_on_message(void *ctx, const fl_mqtt_msg *msg) {
  fake_hub *h = ctx;
  fl_msg *m = malloc(sizeof *m);
  if (!m) return;
  if (fl_msg_decode(msg->payload, msg->len, m, NULL) == FL_OK) {
    if (m->env.type == FL_MSG_HELLO) {
      fl_msg s;
      fl_msg_init(&s, FL_MSG_SYNC);
      s.body.sync.acked = m->body.hello.last_ack;
      s.body.sync.next_seq = m->body.hello.last_ack + 1;
      s.body.sync.down_seq = 0;
      if (hub_publish(h, h->topic_sync, &s, 0) == FL_OK) atomic_fetch_add(&h->hellos, 1);
    } else if (m->env.type == FL_MSG_DEVICE_ACK) {
      atomic_store(&h->device_ack_upto, m->body.device_ack.upto);
      atomic_fetch_add(&h->device_acks, 1);
    } else if (m->env.seq > 0) {
      uint64_t cur = atomic_load(&h->max_seq);
      while (m->env.seq > cur && !atomic_compare_exchange_weak(&h->max_seq, &cur, m->env.seq)) {
      }
    }
  }
  free(m);
}

/* Sends ack{upto: highest seq seen}: as fast as the broker takes them while
 * flood is set (at most 64 without PUBACK, so that paho's queue, which the
 * agent's publishes share, stays short), else every 20 ms. */
static void *acker_main(void *arg) {
  fake_hub *h = arg;
  while (!atomic_load(&h->stop)) {
    if (atomic_load(&h->outstanding) >= 64) {
      usleep(50);
      continue;
    }
    fl_msg m;
    fl_msg_init(&m, FL_MSG_ACK);
    m.body.ack.upto = atomic_load(&h->max_seq);
    atomic_fetch_add(&h->outstanding, 1);
    if (m.body.ack.upto > 0 && hub_publish_tagged(h, h->topic_ack, &m, 0, 1) == FL_OK) {
      atomic_fetch_add(&h->acks_sent, 1);
    } else {
      atomic_fetch_sub(&h->outstanding, 1);
      fl_sleep_ms(1);
    }
    if (!atomic_load(&h->flood)) fl_sleep_ms(20);
  }
  return NULL;
}

/* ---- the test ---------------------------------------------------------------- */

/* Ticks a until its status satisfies done (or timeout_ms passes). */
static bool tick_until(fl_agent *a, int timeout_ms, bool (*done)(const agent_status *),
                       agent_status *st) {
  int64_t end = fl_mono_us() / 1000 + timeout_ms;
  for (;;) {
    agent_tick(a, fl_mono_us() / 1000);
    agent_get_status(a, st);
    if (done(st)) return true;
    if (fl_mono_us() / 1000 >= end) return false;
    fl_sleep_ms(10);
  }
}

static bool is_synced(const agent_status *st) { return st->connected && st->synced; }
static bool is_drained(const agent_status *st) {
  return st->synced && st->backlog == 0 && st->last_ack + 1 == st->next_seq;
}

/* The fake hub sends decision (kind FL_MSG_DECISION) or command seq. */
static int hub_downlink(fake_hub *h, fl_msg_type kind, uint64_t seq) {
  fl_msg m;
  fl_msg_init(&m, kind);
  if (kind == FL_MSG_DECISION) {
    snprintf(m.env.corr, sizeof m.env.corr, "R%" PRIu64, seq);
    m.body.decision.subject = FL_SUBJ_RENTAL;
    snprintf(m.body.decision.state, sizeof m.body.decision.state, "ACTIVE");
    m.body.decision.ok = true;
    return hub_publish(h, h->topic_reply, &m, seq);
  }
  m.body.command.action = FL_ACT_UNLOCK;
  m.body.command.expires_ms = fl_now_ms() + 60000;
  snprintf(m.body.command.customer, sizeof m.body.command.customer, "C%" PRIu64, seq);
  return hub_publish(h, h->topic_cmd, &m, seq);
}

/* Waits until the agent applied `applied` and the hub got device_ack{upto:
 * applied} more than `acks_before` times in all. */
static bool wait_applied(fl_agent *a, fake_hub *h, uint64_t applied, uint64_t acks_before) {
  for (int i = 0; i < 500; i++) {
    agent_status st;
    agent_tick(a, fl_mono_us() / 1000);
    agent_get_status(a, &st);
    if (st.applied == applied && atomic_load(&h->device_acks) > acks_before &&
        atomic_load(&h->device_ack_upto) == applied)
      return true;
    fl_sleep_ms(10);
  }
  return false;
}

/* Downlink seqs 1, then 4 (a gap: applied), then 2 (a duplicate: acked). */
static void test_downlink_gap(fl_agent *a, fake_hub *h) {
  uint64_t hellos = atomic_load(&h->hellos);
  uint64_t acks = atomic_load(&h->device_acks);
  CHECK(hub_downlink(h, FL_MSG_DECISION, 1) == FL_OK);
  CHECK(wait_applied(a, h, 1, acks));
  acks = atomic_load(&h->device_acks);
  CHECK(hub_downlink(h, FL_MSG_COMMAND, 4) == FL_OK);
  CHECK(wait_applied(a, h, 4, acks));
  agent_unlock_result r;
  CHECK(agent_unlock(a, "C4", fl_now_ms(), &r) == FL_OK && r.allowed); /* the command took */
  acks = atomic_load(&h->device_acks);
  CHECK(hub_downlink(h, FL_MSG_DECISION, 2) == FL_OK);
  CHECK(wait_applied(a, h, 4, acks)); /* acked again, upto stays 4 */
  agent_decision d;
  CHECK(agent_decision_get(a, "R1", &d) == FL_OK && d.decided);
  CHECK(agent_decision_get(a, "R2", &d) == FL_ERR_NOT_FOUND); /* not applied */
  fl_sleep_ms(200);
  CHECK(atomic_load(&h->hellos) == hellos); /* a gap asks for no resync */
  agent_status st;
  agent_get_status(a, &st);
  CHECK(st.synced && st.applied == 4);
}

/* What the order test's subscriber saw. */
typedef struct order_seen {
  atomic_uint_fast64_t got, out_of_order;
  uint64_t next; /* only the one paho thread that delivers touches it */
} order_seen;

static void order_on_message(void *ctx, const fl_mqtt_msg *msg) {
  order_seen *o = ctx;
  char text[32];
  size_t n = msg->len < sizeof text - 1 ? msg->len : sizeof text - 1;
  memcpy(text, msg->payload, n);
  text[n] = '\0';
  uint64_t v = strtoull(text, NULL, 10);
  if (v != o->next) atomic_fetch_add(&o->out_of_order, 1);
  o->next = v + 1;
  atomic_fetch_add(&o->got, 1);
}

/* fl_mqtt keeps QoS 1 publishes in order: with more queued than the broker's
 * Receive Maximum (20) allows in flight, the publishing thread and paho's
 * thread (after each PUBACK) both hand queued ones to paho; they once raced
 * and swapped neighbours, which a device sees as a downlink gap and then a
 * "duplicate" that it drops. */
static void test_publish_order(const char *uri) {
  enum { N = 20000 };
  order_seen seen = {0};
  const char *subs[] = {"order/#"};
  fl_mqtt_opts so = {.uri = uri, .client_id = "order-sub", .clean_start = true,
                     .subscriptions = subs, .n_subscriptions = 1};
  fl_mqtt_opts po = {.uri = uri, .client_id = "order-pub", .clean_start = true,
                     .max_inflight = 1000};
  fl_mqtt_callbacks scb = {.ctx = &seen, .on_message = order_on_message};
  fl_mqtt *sub = NULL, *pub = NULL;
  CHECK(fl_mqtt_create(&so, &scb, &sub) == FL_OK && fl_mqtt_create(&po, NULL, &pub) == FL_OK);
  if (!sub || !pub) return;
  fl_mqtt_start(sub);
  fl_mqtt_start(pub);
  for (int i = 0; i < 500 && !(fl_mqtt_connected(sub) && fl_mqtt_connected(pub)); i++)
    fl_sleep_ms(10);
  fl_sleep_ms(200); /* the subscription */
  int errors = 0;
  for (uint64_t i = 0; i < N; i++) {
    char text[32];
    int n = snprintf(text, sizeof text, "%" PRIu64, i);
    errors += fl_mqtt_publish(pub, "order/x", text, (size_t)n, 1, false, NULL, NULL, 0, 0) != FL_OK;
  }
  for (int i = 0; i < 3000 && atomic_load(&seen.got) < N; i++) fl_sleep_ms(10);
  printf("publish order: %d of %d not queued, %" PRIuFAST64 " received, %" PRIuFAST64
         " out of order\n", errors, (int)N, atomic_load(&seen.got),
         atomic_load(&seen.out_of_order));
  CHECK(errors == 0);
  CHECK(atomic_load(&seen.got) == N);
  CHECK(atomic_load(&seen.out_of_order) == 0);
  fl_mqtt_destroy(pub);
  fl_mqtt_destroy(sub);
}

int main(int argc, char **argv) {
  int seconds = argc > 1 ? atoi(argv[1]) : 4;
  if (seconds < 1 || seconds > 30) seconds = 4;
  signal(SIGALRM, on_alarm);
  signal(SIGPIPE, SIG_IGN);
  alarm(TIME_LIMIT_S);
  fl_log_set_level(FL_LOG_WARN);

  snprintf(dir, sizeof dir, "/tmp/fleet-locking-XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  for (int i = 0; i < 4; i++)
    snprintf(dir_paths[i], sizeof dir_paths[i], "%s/%s", dir, dir_files[i]);
  int port = free_port();
  broker_start(port);
  char uri[64], db[128];
  snprintf(uri, sizeof uri, "tcp://127.0.0.1:%d", port);
  snprintf(db, sizeof db, "%s/agent.db", dir);

  /* the fake hub, on the agent's default topic family (rev 1.2: partitioned) */
  fake_hub hub = {0};
  char sub_up[FL_TOPIC_MAX];
  int part = (int)fl_partition_of(DEV, FL_PARTITIONS_DEFAULT);
  snprintf(sub_up, sizeof sub_up, FL_TOPIC_ROOT "/p/%d/dev/%s/up/#", part, DEV);
  fl_topic_device_p(hub.topic_ack, sizeof hub.topic_ack, DEV, FL_CH_DOWN_ACK, part);
  fl_topic_device_p(hub.topic_sync, sizeof hub.topic_sync, DEV, FL_CH_DOWN_SYNC, part);
  fl_topic_device_p(hub.topic_reply, sizeof hub.topic_reply, DEV, FL_CH_DOWN_REPLY, part);
  fl_topic_device_p(hub.topic_cmd, sizeof hub.topic_cmd, DEV, FL_CH_DOWN_CMD, part);
  const char *subs[] = {sub_up};
  fl_mqtt_opts ho = {.uri = uri,
                     .client_id = "fake-hub",
                     .clean_start = true,
                     .max_inflight = 1000,
                     .subscriptions = subs,
                     .n_subscriptions = 1};
  fl_mqtt_callbacks hcb = {
      .ctx = &hub, .on_message = hub_on_message, .on_published = hub_on_published};
  int err = fl_mqtt_create(&ho, &hcb, &hub.mqtt);
  CHECK(err == FL_OK);
  if (err != FL_OK) {
    broker_stop();
    return 1;
  }
  fl_mqtt_start(hub.mqtt);
  for (int i = 0; i < 500 && !fl_mqtt_connected(hub.mqtt); i++) fl_sleep_ms(10);
  CHECK(fl_mqtt_connected(hub.mqtt));
  fl_sleep_ms(200); /* let the subscription settle */

  /* the agent */
  agent_config cfg = {.id = DEV,
                      .role = FL_ROLE_VEHICLE,
                      .db_path = db,
                      .mqtt_uri = uri,
                      .durability = FL_DB_SYNC_OFF,
                      .window = 16,
                      .hello_retry_ms = 500,
                      .reconnect_min_ms = 100,
                      .reconnect_max_ms = 500};
  fl_agent *a = NULL;
  err = agent_create(&cfg, &a);
  CHECK(err == FL_OK);
  if (err == FL_OK) err = agent_start(a);
  agent_status st;
  bool synced = err == FL_OK && tick_until(a, 10000, is_synced, &st);
  CHECK(synced);

  pthread_t acker;
  atomic_store(&hub.flood, true);
  bool acker_started = synced && pthread_create(&acker, NULL, acker_main, &hub) == 0;
  CHECK(!synced || acker_started);

  /* The tight loop: submit and tick while acks pour in. */
  uint64_t submitted = 0, full = 0, errors = 0, loops = 0;
  if (acker_started) {
    int64_t end = fl_mono_us() + (int64_t)seconds * 1000000;
    while (fl_mono_us() < end) {
      fl_msg m;
      fl_msg_init(&m, FL_MSG_FAULT);
      m.body.fault.n_dtcs = 1;
      snprintf(m.body.fault.dtcs[0], sizeof m.body.fault.dtcs[0], "P%04" PRIu64, loops % 10000);
      m.body.fault.severity = FL_SEV_INFO;
      err = agent_submit(a, &m, NULL);
      if (err == FL_OK) submitted++;
      else if (err == FL_ERR_FULL) full++;
      else errors++;
      agent_tick(a, fl_mono_us() / 1000);
      loops++;
    }
    atomic_store(&hub.flood, false);
  }
  uint64_t acks_sent = atomic_load(&hub.acks_sent);
  printf("%" PRIu64 " loops: %" PRIu64 " events submitted, %" PRIu64 " outbox full, %" PRIu64
         " errors; %" PRIu64 " acks flooded\n",
         loops, submitted, full, errors, acks_sent);
  CHECK(errors == 0);
  CHECK(submitted >= 100);
  CHECK(acks_sent >= 100);

  /* Still working: everything accepted is delivered and acked. */
  bool drained = acker_started && tick_until(a, 20000, is_drained, &st);
  CHECK(drained);
  agent_get_status(a, &st);
  printf("agent: connected=%d synced=%d next_seq=%" PRIu64 " last_ack=%" PRIu64
         " backlog=%" PRIu64 " inflight=%" PRIu64 "; hub answered %" PRIuFAST64 " hellos\n",
         st.connected, st.synced, st.next_seq, st.last_ack, st.backlog, st.inflight,
         atomic_load(&hub.hellos));
  CHECK(st.connected && st.synced);
  CHECK(st.next_seq == submitted + 1);

  if (synced) test_downlink_gap(a, &hub);
  test_publish_order(uri);

  atomic_store(&hub.stop, true);
  if (acker_started) pthread_join(acker, NULL);
  if (a) agent_stop(a, 1000);
  agent_destroy(a);
  fl_mqtt_destroy(hub.mqtt);
  broker_stop();
  alarm(0);

  for (int i = 0; i < 4; i++) unlink(dir_paths[i]);
  if (rmdir(dir) != 0) fprintf(stderr, "could not remove %s\n", dir);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
