/* Vehicle role: who may unlock (bookings and hub grants, decided locally so
 * that it works offline), lock events, telemetry and faults, and the effect
 * of the hub's commands. */
#include <stdio.h>
#include <string.h>

#include "access.h"
#include "agent_internal.h"
#include "fleet/error.h"
#include "fleet/log.h"

/* Records a lock event for customer (may be ""), in the caller's lock. */
static int lock_event(fl_agent *a, bool locked, const char *customer, bool refused,
                      const char *reason, const char *corr, uint64_t *seq) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_LOCK);
  fl_lock *l = &m.body.lock;
  l->locked = locked;
  l->refused = refused;
  l->offline = !a->connected;
  snprintf(l->customer, sizeof l->customer, "%s", customer ? customer : "");
  snprintf(l->reason, sizeof l->reason, "%s", reason ? reason : "");
  snprintf(m.env.corr, sizeof m.env.corr, "%s", corr ? corr : "");
  return agent__submit(a, &m, seq);
}

int vehicle__apply_command(fl_agent *a, const fl_msg *cmd, fl_cmd_status *status, char *reason,
                           size_t cap) {
  const fl_command *c = &cmd->body.command;
  sqlite3 *db = outbox__db(a->ob);
  int err = FL_OK;
  *status = FL_CMD_APPLIED;
  if (a->role != FL_ROLE_VEHICLE) {
    *status = FL_CMD_REFUSED;
    snprintf(reason, cap, "not a vehicle");
    return FL_OK;
  }
  switch (c->action) {
  case FL_ACT_UNLOCK:
    if (c->customer[0]) { /* the customer may now open the car */
      err = access__grant(db, c->customer);
    } else { /* remote unlock by the operator */
      err = lock_event(a, false, NULL, false, "remote", cmd->env.corr, NULL);
      if (err == FL_OK) a->locked = false;
    }
    break;
  case FL_ACT_LOCK:
    err = access__grant(db, NULL);
    if (err == FL_OK) err = lock_event(a, true, NULL, false, "remote", cmd->env.corr, NULL);
    if (err == FL_OK) a->locked = true;
    break;
  case FL_ACT_BOOKINGS:
    err = access__replace_bookings(db, c->bookings, c->n_bookings);
    break;
  default:
    *status = FL_CMD_REFUSED;
    snprintf(reason, cap, "unknown action");
    break;
  }
  return err;
}

int agent_unlock(fl_agent *a, const char *customer, int64_t now_ms, agent_unlock_result *res) {
  if (!a || !res || !customer || !fl_id_valid(customer) || a->role != FL_ROLE_VEHICLE)
    return FL_ERR_INVALID;
  memset(res, 0, sizeof *res);
  pthread_mutex_lock(&a->lock);
  int r = access__check(outbox__db(a->ob), customer, now_ms, res->reason, sizeof res->reason);
  int err = r < 0 ? r : FL_OK;
  if (err == FL_OK) {
    res->allowed = r == 1;
    /* A refusal leaves the car locked; the event reports the attempt. */
    err = res->allowed ? lock_event(a, false, customer, false, NULL, NULL, &res->seq)
                       : lock_event(a, a->locked, customer, true, res->reason, NULL, &res->seq);
  }
  if (err == FL_OK && res->allowed) a->locked = false;
  if (err == FL_OK) {
    fl_info("%s unlock customer=%s %s (%s)%s", a->id, customer,
            res->allowed ? "allowed" : "refused", res->reason, a->connected ? "" : " offline");
    uplink__unlock_publish(a);
  } else {
    pthread_mutex_unlock(&a->lock);
  }
  return err;
}

int agent_lock(fl_agent *a) {
  if (!a || a->role != FL_ROLE_VEHICLE) return FL_ERR_INVALID;
  pthread_mutex_lock(&a->lock);
  int err = lock_event(a, true, NULL, false, NULL, NULL, NULL);
  if (err == FL_OK) {
    a->locked = true;
    uplink__unlock_publish(a);
  } else {
    pthread_mutex_unlock(&a->lock);
  }
  return err;
}

int agent_telemetry(fl_agent *a, uint64_t odometer_m, uint32_t energy_pct, double lat,
                    double lon) {
  if (!a) return FL_ERR_INVALID;
  fl_msg m;
  fl_msg_init(&m, FL_MSG_TELEMETRY);
  m.body.telemetry.odometer_m = odometer_m;
  m.body.telemetry.energy_pct = energy_pct;
  m.body.telemetry.lat = lat;
  m.body.telemetry.lon = lon;
  pthread_mutex_lock(&a->lock);
  int err = agent__submit(a, &m, NULL);
  if (err == FL_OK) {
    a->reading = m.body.telemetry;
    a->has_reading = true;
    a->reading_ms = agent__mono_ms();
    uplink__unlock_publish(a);
  } else {
    pthread_mutex_unlock(&a->lock);
  }
  return err;
}

void vehicle__telemetry_timer(fl_agent *a, int64_t now_ms) {
  if (!a->telemetry_period_ms || !a->has_reading || now_ms - a->reading_ms < a->telemetry_period_ms)
    return;
  fl_msg m;
  fl_msg_init(&m, FL_MSG_TELEMETRY);
  m.body.telemetry = a->reading; /* with a new device time */
  int err = agent__submit(a, &m, NULL);
  if (err != FL_OK) fl_warn("%s periodic telemetry: %s", a->id, fl_strerror(err));
  a->reading_ms = now_ms;
}

int agent_fault(fl_agent *a, const char *const *dtcs, size_t n, fl_severity severity,
                const char *text, uint64_t *seq) {
  if (!a || !dtcs || n == 0 || n > FL_MAX_DTCS) return FL_ERR_INVALID;
  fl_msg m;
  fl_msg_init(&m, FL_MSG_FAULT);
  for (size_t i = 0; i < n; i++) {
    if (!dtcs[i] || !dtcs[i][0] || strlen(dtcs[i]) > FL_DTC_MAX) return FL_ERR_INVALID;
    snprintf(m.body.fault.dtcs[i], sizeof m.body.fault.dtcs[i], "%s", dtcs[i]);
  }
  m.body.fault.n_dtcs = (uint32_t)n;
  m.body.fault.severity = severity;
  if (text && strlen(text) > FL_TEXT_MAX) return FL_ERR_INVALID;
  snprintf(m.body.fault.text, sizeof m.body.fault.text, "%s", text ? text : "");
  return agent_submit(a, &m, seq);
}
