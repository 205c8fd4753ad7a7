#include "saga.h"

#include <stdio.h>
#include <string.h>

#include "downlink.h"
#include "fleet/error.h"
#include "fleet/log.h"

/* Builds the provider call for step s of o. */
static void job_for(const saga_owner *o, const hub_step *s, pay_job *job) {
  memset(job, 0, sizeof *job);
  job->kind = s->kind == STEP_REFUND ? PAY_REFUND : PAY_CHARGE;
  model_copy(job->owner, o->id);
  model_copy(job->step, step_kind_name(s->kind));
  model_copy(job->idem_key, s->idem_key);
  model_copy(job->customer, o->customer);
  job->amount_cents = s->amount_cents;
  if (job->kind == PAY_REFUND)
    snprintf(job->refund_of, sizeof job->refund_of, "%s:%s", o->id, step_kind_name(o->charge));
}

/* Moves s to status (refusing a move the step machine does not allow) and stores it. */
static int set_status(hub_txn *t, hub_step *s, step_status status) {
  if (!model_step_may(s->status, status)) {
    fl_error("saga: step %s:%s may not go from %s to %s", s->owner, step_kind_name(s->kind),
             step_status_name(s->status), step_status_name(status));
    return FL_ERR_STATE;
  }
  s->status = status;
  s->updated_ms = t->now_ms;
  return hub_store_step_put(t->store, s);
}

int saga_step_start(hub_txn *t, const saga_owner *o, step_kind kind, int64_t amount_cents) {
  hub_step s;
  int rc = hub_store_step_get(t->store, o->id, kind, &s);
  if (rc == FL_OK) return FL_OK;
  if (rc != FL_ERR_NOT_FOUND) return rc;
  memset(&s, 0, sizeof s);
  model_copy(s.owner, o->id);
  s.kind = kind;
  snprintf(s.idem_key, sizeof s.idem_key, "%s:%s", o->id, step_kind_name(kind));
  s.amount_cents = amount_cents;
  s.attempts = 1;
  rc = set_status(t, &s, STEP_CALLING);
  if (rc != FL_OK) return rc;
  pay_job job;
  job_for(o, &s, &job);
  return effects_payment(t->fx, &job);
}

int saga_step_resubmit(hub_txn *t, const saga_owner *o, const hub_step *step) {
  hub_step s = *step;
  if (s.status != STEP_CALLING) {
    s.attempts++;
    int rc = set_status(t, &s, STEP_CALLING);
    if (rc != FL_OK) return rc;
  }
  pay_job job;
  job_for(o, &s, &job);
  return effects_payment(t->fx, &job);
}

int saga_step_failed(hub_txn *t, hub_step *s, const pay_result *res, bool *gave_up) {
  model_copy(s->last_error, res->reason[0] ? res->reason : "payment provider failed");
  /* compensation never gives up */
  *gave_up = s->kind != STEP_REFUND && s->attempts >= t->cfg->payment_max_attempts;
  if (*gave_up) return set_status(t, s, STEP_FAILED);
  int shift = s->attempts < 8 ? s->attempts : 8;
  int64_t backoff = (int64_t)200 << shift;
  s->next_try_ms = t->now_ms + (backoff > 30000 ? 30000 : backoff);
  return set_status(t, s, STEP_RETRY);
}

int saga_charge_refused(hub_txn *t, hub_step *s, const pay_result *res, bool *final, char *reason,
                        size_t cap) {
  *final = true;
  if (res->outcome != PAY_FAILED) {
    snprintf(reason, cap, "payment declined: %s", res->reason);
    return FL_OK;
  }
  int rc = saga_step_failed(t, s, res, final);
  if (rc == FL_OK && *final) snprintf(reason, cap, "payment failed: %s", s->last_error);
  return rc;
}

int saga_step_call_off(hub_txn *t, hub_step *s) { return set_status(t, s, STEP_CANCELLED); }

/* Loads the step res answers into *s and records a final outcome (ok ->
 * "done", declined -> "declined"; a failure stays "calling" for
 * saga_step_failed). FL_ERR_STATE for a late duplicate of a settled call. */
static int settle(hub_txn *t, const pay_result *res, hub_step *s) {
  step_kind kind;
  if (step_kind_parse(res->job.step, &kind) != FL_OK) return FL_ERR_NOT_FOUND;
  int rc = hub_store_step_get(t->store, res->job.owner, kind, s);
  if (rc != FL_OK) return rc;
  if (s->status != STEP_CALLING) return FL_ERR_STATE;
  if (res->outcome == PAY_FAILED) return FL_OK;
  model_copy(s->provider_ref, res->ref);
  model_copy(s->last_error, res->reason);
  return set_status(t, s, res->outcome == PAY_OK ? STEP_DONE : STEP_DECLINED);
}

/* Finds the owner of id among the kinds: FL_OK with *kind and *who. */
static int owner_find(hub_txn *t, const saga_owners *owners, const char *id,
                      const saga_owner_kind **kind, saga_owner *who) {
  for (size_t i = 0; i < owners->n; i++) {
    int rc = owners->kinds[i]->find(t, id, who);
    if (rc == FL_OK) *kind = owners->kinds[i];
    if (rc != FL_ERR_NOT_FOUND) return rc;
  }
  return FL_ERR_NOT_FOUND;
}

int saga_on_result(hub_txn *t, const saga_owners *owners, const pay_result *res) {
  const saga_owner_kind *kind = NULL;
  saga_owner who;
  hub_step s;
  int rc = owner_find(t, owners, res->job.owner, &kind, &who);
  if (rc == FL_OK) rc = settle(t, res, &s);
  if (rc == FL_ERR_STATE) return FL_OK; /* a late duplicate of a settled call */
  if (rc == FL_ERR_NOT_FOUND) {
    fl_warn("payment result for unknown rental or booking %s step=%s", res->job.owner,
            res->job.step);
    return FL_OK;
  }
  return rc == FL_OK ? kind->on_result(t, &s, res) : rc;
}

struct resume_ctx {
  hub_txn *t;
  const saga_owners *owners;
};

static int resume_one(void *ctx, const hub_step *s) {
  struct resume_ctx *c = ctx;
  const saga_owner_kind *kind;
  saga_owner who;
  int rc = owner_find(c->t, c->owners, s->owner, &kind, &who);
  if (rc == FL_ERR_NOT_FOUND) return FL_OK;
  return rc == FL_OK ? saga_step_resubmit(c->t, &who, s) : rc;
}

int saga_resume(hub_txn *t, const saga_owners *owners, step_status status) {
  struct resume_ctx c = {t, owners};
  return hub_store_steps_where(t->store, status, status == STEP_CALLING ? INT64_MAX : t->now_ms,
                               resume_one, &c);
}

int saga_retry(hub_txn *t, const saga_owners *owners, const char *id, char *msg, size_t cap) {
  const saga_owner_kind *kind;
  saga_owner who;
  int rc = owner_find(t, owners, id, &kind, &who);
  if (rc == FL_ERR_NOT_FOUND) snprintf(msg, cap, "no rental or booking %s", id);
  if (rc != FL_OK) return rc;
  for (int k = 0; k < STEP_KIND__COUNT; k++) {
    hub_step s;
    rc = hub_store_step_get(t->store, id, (step_kind)k, &s);
    if (rc == FL_ERR_NOT_FOUND) continue;
    if (rc != FL_OK) return rc;
    if (s.status != STEP_RETRY && s.status != STEP_FAILED) continue;
    rc = saga_step_resubmit(t, &who, &s);
    snprintf(msg, cap, "%s %s: step %s retried (attempt %d)", kind->name, id,
             step_kind_name(s.kind), s.attempts + 1);
    return rc;
  }
  snprintf(msg, cap, "%s %s has no failed or waiting step", kind->name, id);
  return FL_ERR_STATE;
}

int saga_decision(hub_txn *t, const char *device, const char *topic, const char *corr,
                  const fl_decision *d, const char *state, const char *reason) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_DECISION);
  m.body.decision = *d;
  model_copy(m.body.decision.state, state);
  model_copy(m.body.decision.reason, reason ? reason : "");
  return downlink_send(t, device, topic, &m, corr, 0);
}
