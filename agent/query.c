/* Kiosk queries (docs/protocol.md 6.1): a question to the hub that changes
 * nothing, so it bypasses the outbox. agent_query() publishes it at once on
 * up/query (seq 0, Response Topic and Correlation Data as for decisions);
 * the hub's answer comes on down/reply and is kept here, in memory, the
 * latest per query id, for the last AGENT_QUERIES_KEPT ids. A query that
 * gets no answer is simply asked again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_internal.h"
#include "fleet/error.h"
#include "fleet/log.h"

struct agent_query_slot {
  char id[FL_ID_MAX + 1]; /* "" = free */
  uint64_t rev;           /* 0 = asked, no answer yet */
  int64_t time_ms;
  fl_answer answer;
};

/* The slot of query id, or NULL. */
static struct agent_query_slot *slot_find(fl_agent *a, const char *id) {
  if (!a->queries) return NULL;
  for (int i = 0; i < AGENT_QUERIES_KEPT; i++)
    if (strcmp(a->queries[i].id, id) == 0) return &a->queries[i];
  return NULL;
}

/* Remembers query id (keeping its answer if it is asked again), forgetting
 * the oldest one when all slots are taken. Returns FL_OK or FL_ERR_NOMEM. */
static int slot_remember(fl_agent *a, const char *id) {
  if (!a->queries) {
    a->queries = calloc(AGENT_QUERIES_KEPT, sizeof *a->queries);
    if (!a->queries) return FL_ERR_NOMEM;
  }
  if (slot_find(a, id)) return FL_OK;
  struct agent_query_slot *s = &a->queries[a->query_count++ % AGENT_QUERIES_KEPT];
  memset(s, 0, sizeof *s);
  snprintf(s->id, sizeof s->id, "%s", id);
  return FL_OK;
}

int agent_query(fl_agent *a, const fl_query *q, const char *id, char *id_out, size_t cap) {
  char topic[FL_TOPIC_MAX], reply[FL_TOPIC_MAX];
  uint8_t buf[512]; /* a query is at most ~330 bytes */
  size_t len = 0;
  int err = FL_OK;
  if (!a || !q || a->role != FL_ROLE_KIOSK || (id && id[0] && !fl_id_valid(id)))
    return FL_ERR_INVALID;
  fl_msg *m = malloc(sizeof *m); /* fl_msg is large; keep it off the caller's stack */
  if (!m) return FL_ERR_NOMEM;
  fl_msg_init(m, FL_MSG_QUERY);
  m->body.query = *q;
  if (id && id[0])
    snprintf(m->env.corr, sizeof m->env.corr, "%s", id);
  else if (agent_new_request_id(a, m->env.corr, sizeof m->env.corr) != FL_OK)
    err = FL_ERR_INVALID;
  /* in the device's topic family (rev 1.2: partitioned, P-PART-2) */
  if (err == FL_OK &&
      (fl_topic_device_p(topic, sizeof topic, a->id, FL_CH_UP_QUERY, a->partition) < 0 ||
       fl_topic_device_p(reply, sizeof reply, a->id, FL_CH_DOWN_REPLY, a->partition) < 0))
    err = FL_ERR_INVALID;
  if (err != FL_OK) goto out;

  pthread_mutex_lock(&a->lock);
  agent__envelope_unsequenced(a, m);
  err = fl_msg_encode(m, buf, sizeof buf, &len); /* P-ENC-2: checked before it leaves */
  if (err == FL_OK && !a->connected) err = FL_ERR_UNAVAILABLE; /* P-QRY-1: not while offline */
  if (err == FL_OK) err = slot_remember(a, m->env.corr);
  pthread_mutex_unlock(&a->lock);
  if (err == FL_ERR_BUFFER) err = FL_ERR_INVALID;
  if (err != FL_OK) goto out;

  /* published without a->lock (agent_internal.h: lock order) */
  err = fl_mqtt_publish(a->mqtt, topic, buf, len, 1, false, reply, m->env.corr,
                        strlen(m->env.corr), 0);
  if (err == FL_OK)
    fl_info("%s query %s %s sent", a->id, m->env.corr, fl_query_what_name(q->what));
  else
    fl_warn("%s query %s not sent: %s", a->id, m->env.corr, fl_strerror(err));
  if (err == FL_OK && id_out && cap) snprintf(id_out, cap, "%s", m->env.corr);
out:
  free(m);
  return err;
}

bool query__answered(fl_agent *a, const fl_msg *m) {
  if (m->env.seq != 0) { /* P-QRY-6 */
    fl_warn("%s answer %s with seq=%llu: dropped", a->id, m->env.corr,
            (unsigned long long)m->env.seq);
    return false;
  }
  struct agent_query_slot *s = slot_find(a, m->env.corr);
  if (!s) {
    fl_debug("%s answer to a query not asked here (%s): dropped", a->id, m->env.corr);
    return false;
  }
  s->answer = m->body.answer;
  s->time_ms = m->env.time_ms;
  s->rev++;
  fl_info("%s answer %s %s ok=%d%s%s", a->id, m->env.corr,
          fl_query_what_name(m->body.answer.what), m->body.answer.ok,
          m->body.answer.reason[0] ? " reason=" : "", m->body.answer.reason);
  return true;
}

int agent_answer_get(fl_agent *a, const char *id, agent_answer *out) {
  if (!a || !id || !out || !fl_id_valid(id)) return FL_ERR_INVALID;
  int err = FL_ERR_NOT_FOUND;
  pthread_mutex_lock(&a->lock);
  const struct agent_query_slot *s = slot_find(a, id);
  if (s && s->rev > 0) {
    snprintf(out->query, sizeof out->query, "%s", s->id);
    out->rev = s->rev;
    out->time_ms = s->time_ms;
    out->answer = s->answer;
    err = FL_OK;
  }
  pthread_mutex_unlock(&a->lock);
  return err;
}

void query__free(fl_agent *a) {
  free(a->queries);
  a->queries = NULL;
}
