/* Kiosk requests: rentals and bookings. Each is an outbox event whose corr is
 * the rental or booking id (chosen here when the caller gives none); the hub
 * answers with a decision on down/reply. */
#include <stdio.h>
#include <string.h>

#include "agent_internal.h"
#include "fleet/error.h"

/* Sets m's corr to id, or to a new request id when id is NULL or "", and
 * copies it to id_out. Returns FL_OK or FL_ERR_INVALID. */
static int request_corr(fl_agent *a, fl_msg *m, const char *id, char *id_out, size_t cap) {
  if (id && id[0]) {
    if (!fl_id_valid(id)) return FL_ERR_INVALID;
    snprintf(m->env.corr, sizeof m->env.corr, "%s", id);
  } else if (agent_new_request_id(a, m->env.corr, sizeof m->env.corr) != FL_OK) {
    return FL_ERR_INVALID;
  }
  if (id_out && cap) snprintf(id_out, cap, "%s", m->env.corr);
  return FL_OK;
}

/* Copies src into an id field, refusing a bad id. */
static int copy_id(char *dst, size_t cap, const char *src) {
  if (!src || !fl_id_valid(src)) return FL_ERR_INVALID;
  snprintf(dst, cap, "%s", src);
  return FL_OK;
}

int agent_rent(fl_agent *a, const char *vehicle, const char *customer, uint32_t minutes,
               const char *rental, char *id_out, size_t cap) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_RENTAL_REQUEST);
  fl_rental_request *r = &m.body.rental_request;
  if (!a || minutes < 1 || minutes > 43200 ||
      copy_id(r->vehicle, sizeof r->vehicle, vehicle) != FL_OK ||
      copy_id(r->customer, sizeof r->customer, customer) != FL_OK)
    return FL_ERR_INVALID;
  r->minutes = minutes;
  int err = request_corr(a, &m, rental, id_out, cap);
  return err == FL_OK ? agent_submit(a, &m, NULL) : err;
}

/* Queues a cancel (rental or booking, type t) of id with an optional reason. */
static int cancel_request(fl_agent *a, fl_msg_type t, const char *id, const char *reason) {
  fl_msg m;
  fl_msg_init(&m, t);
  char *why = t == FL_MSG_RENTAL_CANCEL ? m.body.rental_cancel.reason : m.body.booking_cancel.reason;
  if (!a || copy_id(m.env.corr, sizeof m.env.corr, id) != FL_OK ||
      (reason && strlen(reason) > FL_TEXT_MAX))
    return FL_ERR_INVALID;
  snprintf(why, FL_TEXT_MAX + 1, "%s", reason ? reason : "");
  return agent_submit(a, &m, NULL);
}

int agent_cancel(fl_agent *a, const char *rental, const char *reason) {
  return cancel_request(a, FL_MSG_RENTAL_CANCEL, rental, reason);
}

int agent_unbook(fl_agent *a, const char *booking, const char *reason) {
  return cancel_request(a, FL_MSG_BOOKING_CANCEL, booking, reason);
}

int agent_return(fl_agent *a, const char *rental, const char *station, uint64_t odometer_m) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_RENTAL_RETURN);
  fl_rental_return *r = &m.body.rental_return;
  if (!a || copy_id(m.env.corr, sizeof m.env.corr, rental) != FL_OK ||
      (station && station[0] && copy_id(r->station, sizeof r->station, station) != FL_OK))
    return FL_ERR_INVALID;
  r->odometer_m = odometer_m;
  return agent_submit(a, &m, NULL);
}

int agent_book(fl_agent *a, const char *vehicle, const char *customer, int64_t start_ms,
               int64_t end_ms, const char *booking, char *id_out, size_t cap) {
  fl_msg m;
  fl_msg_init(&m, FL_MSG_BOOKING_REQUEST);
  fl_booking_request *b = &m.body.booking_request;
  if (!a || end_ms <= start_ms || copy_id(b->vehicle, sizeof b->vehicle, vehicle) != FL_OK ||
      copy_id(b->customer, sizeof b->customer, customer) != FL_OK)
    return FL_ERR_INVALID;
  b->start_ms = start_ms;
  b->end_ms = end_ms;
  int err = request_corr(a, &m, booking, id_out, cap);
  return err == FL_OK ? agent_submit(a, &m, NULL) : err;
}
