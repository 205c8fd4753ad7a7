#include "saga.h"

#include <stdio.h>
#include <string.h>

#include "fleet/error.h"

#define copy_str(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

/* Builds the provider job for step s of o. */
static void job_for(const saga_owner *o, const hub_step *s, pay_job *job) {
  memset(job, 0, sizeof *job);
  job->kind = strcmp(s->step, "refund") == 0 ? PAY_REFUND : PAY_CHARGE;
  copy_str(job->rental, o->id);
  copy_str(job->step, s->step);
  copy_str(job->idem_key, s->idem_key);
  copy_str(job->customer, o->customer);
  job->amount_cents = s->amount_cents;
  if (job->kind == PAY_REFUND)
    snprintf(job->refund_of, sizeof job->refund_of, "%s:%s", o->id, o->charge);
}

int saga_step_start(hub_engine *e, const saga_owner *o, const char *step, int64_t amount_cents,
                    int64_t now_ms) {
  hub_store *st = hub_engine_store(e);
  hub_step s;
  int rc = hub_store_step_get(st, o->id, step, &s);
  if (rc == FL_OK) return FL_OK;
  if (rc != FL_ERR_NOT_FOUND) return rc;
  memset(&s, 0, sizeof s);
  copy_str(s.rental, o->id);
  copy_str(s.step, step);
  copy_str(s.status, "calling");
  snprintf(s.idem_key, sizeof s.idem_key, "%s:%s", o->id, step);
  s.amount_cents = amount_cents;
  s.attempts = 1;
  s.updated_ms = now_ms;
  rc = hub_store_step_put(st, &s);
  if (rc != FL_OK) return rc;
  pay_job job;
  job_for(o, &s, &job);
  return hub_emit_payment(e, &job);
}

int saga_step_resubmit(hub_engine *e, const saga_owner *o, const hub_step *step, int64_t now_ms) {
  hub_step s = *step;
  if (strcmp(s.status, "calling") != 0) {
    copy_str(s.status, "calling");
    s.attempts++;
    s.updated_ms = now_ms;
    int rc = hub_store_step_put(hub_engine_store(e), &s);
    if (rc != FL_OK) return rc;
  }
  pay_job job;
  job_for(o, &s, &job);
  return hub_emit_payment(e, &job);
}

int saga_step_failed(hub_engine *e, hub_step *s, const pay_result *res, int64_t now_ms,
                     bool *gave_up) {
  const hub_config *cfg = hub_engine_config(e);
  copy_str(s->last_error, res->reason[0] ? res->reason : "payment provider failed");
  s->updated_ms = now_ms;
  bool is_refund = strcmp(s->step, "refund") == 0; /* compensation never gives up */
  *gave_up = !is_refund && s->attempts >= cfg->payment_max_attempts;
  if (*gave_up) {
    copy_str(s->status, "failed");
  } else {
    int shift = s->attempts < 8 ? s->attempts : 8;
    int64_t backoff = (int64_t)200 << shift;
    copy_str(s->status, "retry");
    s->next_try_ms = now_ms + (backoff > 30000 ? 30000 : backoff);
  }
  return hub_store_step_put(hub_engine_store(e), s);
}

int saga_charge_refused(hub_engine *e, hub_step *s, const pay_result *res, int64_t now_ms,
                        bool *final, char *reason, size_t cap) {
  *final = true;
  if (res->outcome != PAY_FAILED) {
    snprintf(reason, cap, "payment declined: %s", res->reason);
    return FL_OK;
  }
  int rc = saga_step_failed(e, s, res, now_ms, final);
  if (rc == FL_OK && *final) snprintf(reason, cap, "payment failed: %s", s->last_error);
  return rc;
}

int saga_step_settle(hub_engine *e, const pay_result *res, int64_t now_ms, hub_step *s) {
  hub_store *st = hub_engine_store(e);
  int rc = hub_store_step_get(st, res->job.rental, res->job.step, s);
  if (rc != FL_OK) return rc;
  if (strcmp(s->status, "calling") != 0) return FL_ERR_STATE; /* a late duplicate */
  if (res->outcome == PAY_FAILED) return FL_OK;
  copy_str(s->status, res->outcome == PAY_OK ? "done" : "declined");
  copy_str(s->provider_ref, res->ref);
  copy_str(s->last_error, res->reason);
  s->updated_ms = now_ms;
  return hub_store_step_put(st, s);
}

int saga_decision(hub_engine *e, const char *device, const char *topic, const char *corr,
                  const fl_decision *d, const char *state, const char *reason) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_DECISION);
  m.body.decision = *d;
  copy_str(m.body.decision.state, state);
  copy_str(m.body.decision.reason, reason ? reason : "");
  return hub_emit_downlink(e, device, topic, &m, corr, 0);
}
