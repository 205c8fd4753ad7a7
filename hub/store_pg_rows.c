/* The PostgreSQL store's rows (hub/model.h's devices, vehicles, rentals,
 * saga steps, repairs, bookings), its scans and the outbox to subscribers:
 * parameters bound in the order of the statements of store_pg_sql.c, results
 * read back into the model's structs. */
#include <string.h>

#include "fleet/clock.h"
#include "store_pg_internal.h"

/* ---- rows ------------------------------------------------------------------------- */

int pg_device_get(void *b_, const char *id, hub_device *out) {
  pg_params p = {0};
  p_text(&p, id);
  PGresult *r;
  int rc = pg__row(b_, P_DEVICE_GET, &p, &r);
  if (rc != FL_OK) return rc;
  memset(out, 0, sizeof *out);
  col_text(r, 0, 0, out->id, sizeof out->id);
  col_text(r, 0, 1, out->role, sizeof out->role);
  out->boot = (uint64_t)col_i64(r, 0, 2);
  out->up_seq = (uint64_t)col_i64(r, 0, 3);
  out->down_seq = (uint64_t)col_i64(r, 0, 4);
  out->down_applied = (uint64_t)col_i64(r, 0, 5);
  out->online = col_i64(r, 0, 6) != 0;
  out->last_seen_ms = col_i64(r, 0, 7);
  out->clock_skew_ms = col_i64(r, 0, 8);
  PQclear(r);
  return FL_OK;
}

int pg_device_put(void *b_, const hub_device *d) {
  pg_params p = {0};
  p_text(&p, d->id);
  p_text_or_null(&p, d->role);
  p_i64(&p, (int64_t)d->boot);
  p_i64(&p, (int64_t)d->up_seq);
  p_i64(&p, (int64_t)d->down_seq);
  p_i64(&p, (int64_t)d->down_applied);
  p_i64(&p, d->online);
  p_i64(&p, d->last_seen_ms);
  p_i64(&p, d->clock_skew_ms);
  return pg__do(b_, P_DEVICE_PUT, &p);
}

static int vehicle_read(const PGresult *r, int row, hub_vehicle *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(r, row, 0, out->id, sizeof out->id);
  col_text(r, row, 1, out->name, sizeof out->name);
  col_text(r, row, 2, out->station, sizeof out->station);
  out->rate_cents = col_i64(r, row, 3);
  COL_STATE(r, row, 4, vehicle_state_parse, &out->state);
  col_text(r, row, 5, out->rental, sizeof out->rental);
  out->repair_due = col_i64(r, row, 6) != 0;
  out->energy_pct = PQgetisnull(r, row, 7) ? -1 : (int)col_i64(r, row, 7);
  out->has_position = !PQgetisnull(r, row, 8);
  out->lat = col_f64(r, row, 8);
  out->lon = col_f64(r, row, 9);
  out->odometer_m = col_i64(r, row, 10);
  out->updated_ms = col_i64(r, row, 11);
  return bad ? FL_ERR_DB : FL_OK;
}

int pg_vehicle_get(void *b_, const char *id, hub_vehicle *out) {
  pg_params p = {0};
  p_text(&p, id);
  PGresult *r;
  int rc = pg__row(b_, P_VEHICLE_GET, &p, &r);
  if (rc != FL_OK) return rc;
  rc = vehicle_read(r, 0, out);
  PQclear(r);
  return rc;
}

/* Writes v with statement id (with or without its change logged). */
static int vehicle_write(pg_store *st, enum pg_stmt_id id, const hub_vehicle *v) {
  pg_params p = {0};
  p_text(&p, v->id);
  p_text(&p, v->name);
  p_text(&p, v->station);
  p_i64(&p, v->rate_cents);
  p_text(&p, vehicle_state_name(v->state));
  p_text_or_null(&p, v->rental);
  p_i64(&p, v->repair_due);
  if (v->energy_pct >= 0) p_i64(&p, v->energy_pct);
  else p_text(&p, NULL);
  if (v->has_position) {
    p_f64(&p, v->lat);
    p_f64(&p, v->lon);
  } else {
    p_text(&p, NULL);
    p_text(&p, NULL);
  }
  p_i64(&p, v->odometer_m);
  p_i64(&p, v->updated_ms);
  return pg__do(st, id, &p);
}

int pg_vehicle_put(void *b_, const hub_vehicle *v) { return vehicle_write(b_, P_VEHICLE_PUT, v); }
int pg_vehicle_reading(void *b_, const hub_vehicle *v) {
  return vehicle_write(b_, P_VEHICLE_READING, v);
}

static int rental_read(const PGresult *r, int row, hub_rental *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(r, row, 0, out->id, sizeof out->id);
  col_text(r, row, 1, out->vehicle, sizeof out->vehicle);
  col_text(r, row, 2, out->customer, sizeof out->customer);
  col_text(r, row, 3, out->kiosk, sizeof out->kiosk);
  col_text(r, row, 4, out->reply_topic, sizeof out->reply_topic);
  COL_STATE(r, row, 5, rental_state_parse, &out->state);
  out->minutes = (uint32_t)col_i64(r, row, 6);
  out->amount_cents = col_i64(r, row, 7);
  out->charged_cents = col_i64(r, row, 8);
  out->refunded_cents = col_i64(r, row, 9);
  out->fee_cents = col_i64(r, row, 10);
  col_text(r, row, 11, out->reason, sizeof out->reason);
  out->started = col_i64(r, row, 12) != 0;
  out->created_ms = col_i64(r, row, 13);
  out->due_ms = col_i64(r, row, 14);
  out->ended_ms = col_i64(r, row, 15);
  out->updated_ms = col_i64(r, row, 16);
  return bad ? FL_ERR_DB : FL_OK;
}

int pg_rental_get(void *b_, const char *id, hub_rental *out) {
  pg_params p = {0};
  p_text(&p, id);
  PGresult *r;
  int rc = pg__row(b_, P_RENTAL_GET, &p, &r);
  if (rc != FL_OK) return rc;
  rc = rental_read(r, 0, out);
  PQclear(r);
  return rc;
}

int pg_rental_put(void *b_, const hub_rental *x) {
  pg_params p = {0};
  p_text(&p, x->id);
  p_text(&p, x->vehicle);
  p_text(&p, x->customer);
  p_text(&p, x->kiosk);
  p_text(&p, x->reply_topic);
  p_text(&p, rental_state_name(x->state));
  p_i64(&p, x->minutes);
  p_i64(&p, x->amount_cents);
  p_i64(&p, x->charged_cents);
  p_i64(&p, x->refunded_cents);
  p_i64(&p, x->fee_cents);
  p_text_or_null(&p, x->reason);
  p_i64(&p, x->started);
  p_i64(&p, x->created_ms);
  if (x->due_ms) p_i64(&p, x->due_ms);
  else p_text(&p, NULL);
  if (x->ended_ms) p_i64(&p, x->ended_ms);
  else p_text(&p, NULL);
  p_i64(&p, x->updated_ms);
  return pg__do(b_, P_RENTAL_PUT, &p);
}

/* Reads a saga_steps row; FL_ERR_DB for a kind or status this hub does not know. */
static int step_read(const PGresult *r, int row, hub_step *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(r, row, 0, out->owner, sizeof out->owner);
  COL_STATE(r, row, 1, step_kind_parse, &out->kind);
  COL_STATE(r, row, 2, step_status_parse, &out->status);
  col_text(r, row, 3, out->idem_key, sizeof out->idem_key);
  out->amount_cents = col_i64(r, row, 4);
  out->attempts = (int)col_i64(r, row, 5);
  col_text(r, row, 6, out->provider_ref, sizeof out->provider_ref);
  col_text(r, row, 7, out->last_error, sizeof out->last_error);
  out->next_try_ms = col_i64(r, row, 8);
  out->updated_ms = col_i64(r, row, 9);
  return bad ? FL_ERR_DB : FL_OK;
}

int pg_step_get(void *b_, const char *owner, step_kind kind, hub_step *out) {
  pg_params p = {0};
  p_text(&p, owner);
  p_text(&p, step_kind_name(kind));
  PGresult *r;
  int rc = pg__row(b_, P_STEP_GET, &p, &r);
  if (rc != FL_OK) return rc;
  rc = step_read(r, 0, out);
  PQclear(r);
  return rc;
}

int pg_step_put(void *b_, const hub_step *s) {
  pg_params p = {0};
  p_text(&p, s->owner);
  p_text(&p, step_kind_name(s->kind));
  p_text(&p, step_status_name(s->status));
  p_text(&p, s->idem_key);
  p_i64(&p, s->amount_cents);
  p_i64(&p, s->attempts);
  p_text_or_null(&p, s->provider_ref);
  p_text_or_null(&p, s->last_error);
  p_i64(&p, s->next_try_ms);
  p_i64(&p, s->updated_ms);
  return pg__do(b_, P_STEP_PUT, &p);
}

/* The rows are all in the result before fn runs, so fn may write. */
int pg_steps_where(void *b_, step_status status, int64_t due_ms,
                   int (*fn)(void *ctx, const hub_step *s), void *ctx) {
  pg_params p = {0};
  p_text(&p, step_status_name(status));
  p_i64(&p, due_ms);
  PGresult *r;
  int rc = pg__run(b_, P_STEPS_WHERE, &p, &r);
  for (int i = 0; rc == FL_OK && i < PQntuples(r); i++) {
    hub_step s;
    if (step_read(r, i, &s) == FL_OK) rc = fn(ctx, &s); /* a damaged row is logged and left alone */
  }
  PQclear(r);
  return rc;
}

static int repair_read(const PGresult *r, hub_repair *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(r, 0, 0, out->id, sizeof out->id);
  col_text(r, 0, 1, out->vehicle, sizeof out->vehicle);
  COL_STATE(r, 0, 2, repair_state_parse, &out->state);
  col_text(r, 0, 3, out->dtcs, sizeof out->dtcs);
  col_text(r, 0, 4, out->severity, sizeof out->severity);
  col_text(r, 0, 5, out->text, sizeof out->text);
  out->opened_ms = col_i64(r, 0, 6);
  out->updated_ms = col_i64(r, 0, 7);
  return bad ? FL_ERR_DB : FL_OK;
}

static int repair_query(pg_store *st, enum pg_stmt_id id, const char *key, hub_repair *out) {
  pg_params p = {0};
  p_text(&p, key);
  PGresult *r;
  int rc = pg__row(st, id, &p, &r);
  if (rc != FL_OK) return rc;
  rc = repair_read(r, out);
  PQclear(r);
  return rc;
}

int pg_repair_get(void *b_, const char *id, hub_repair *out) {
  return repair_query(b_, P_REPAIR_GET, id, out);
}
int pg_repair_open_for(void *b_, const char *vehicle, hub_repair *out) {
  return repair_query(b_, P_REPAIR_OPEN_FOR, vehicle, out);
}

int pg_repair_put(void *b_, const hub_repair *x) {
  pg_params p = {0};
  p_text(&p, x->id);
  p_text(&p, x->vehicle);
  p_text(&p, repair_state_name(x->state));
  p_text(&p, x->dtcs);
  p_text(&p, x->severity);
  p_text_or_null(&p, x->text);
  p_i64(&p, x->opened_ms);
  p_i64(&p, x->updated_ms);
  return pg__do(b_, P_REPAIR_PUT, &p);
}

static int booking_read(const PGresult *r, int row, hub_booking *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(r, row, 0, out->id, sizeof out->id);
  col_text(r, row, 1, out->vehicle, sizeof out->vehicle);
  col_text(r, row, 2, out->customer, sizeof out->customer);
  col_text(r, row, 3, out->kiosk, sizeof out->kiosk);
  col_text(r, row, 4, out->reply_topic, sizeof out->reply_topic);
  COL_STATE(r, row, 5, booking_state_parse, &out->state);
  out->start_ms = col_i64(r, row, 6);
  out->end_ms = col_i64(r, row, 7);
  out->deposit_cents = col_i64(r, row, 8);
  out->charged_cents = col_i64(r, row, 9);
  out->refunded_cents = col_i64(r, row, 10);
  col_text(r, row, 11, out->rental, sizeof out->rental);
  col_text(r, row, 12, out->reason, sizeof out->reason);
  out->created_ms = col_i64(r, row, 13);
  out->updated_ms = col_i64(r, row, 14);
  return bad ? FL_ERR_DB : FL_OK;
}

int pg_booking_get(void *b_, const char *id, hub_booking *out) {
  pg_params p = {0};
  p_text(&p, id);
  PGresult *r;
  int rc = pg__row(b_, P_BOOKING_GET, &p, &r);
  if (rc != FL_OK) return rc;
  rc = booking_read(r, 0, out);
  PQclear(r);
  return rc;
}

int pg_booking_put(void *b_, const hub_booking *bk) {
  pg_params p = {0};
  p_text(&p, bk->id);
  p_text(&p, bk->vehicle);
  p_text(&p, bk->customer);
  p_text(&p, bk->kiosk);
  p_text(&p, bk->reply_topic);
  p_text(&p, booking_state_name(bk->state));
  p_i64(&p, bk->start_ms);
  p_i64(&p, bk->end_ms);
  p_i64(&p, bk->deposit_cents);
  p_i64(&p, bk->charged_cents);
  p_i64(&p, bk->refunded_cents);
  p_text_or_null(&p, bk->rental);
  p_text_or_null(&p, bk->reason);
  p_i64(&p, bk->created_ms);
  p_i64(&p, bk->updated_ms);
  return pg__do(b_, P_BOOKING_PUT, &p);
}

/* Runs statement id with p and calls the row's callback on each row read
 * well (a damaged row is logged by its reader and skipped): the result holds
 * every row, so the callback may use the store. */
typedef struct pg_rows {
  enum { PG_ROW_VEHICLE, PG_ROW_RENTAL, PG_ROW_BOOKING } kind;
  union {
    int (*vehicle)(void *ctx, const hub_vehicle *v);
    int (*rental)(void *ctx, const hub_rental *r);
    int (*booking)(void *ctx, const hub_booking *b);
  } fn;
  void *ctx;
} pg_rows;

static int each_row(void *b_, enum pg_stmt_id id, const pg_params *p, const pg_rows *f) {
  PGresult *r;
  int rc = pg__run(b_, id, p, &r);
  for (int i = 0; rc == FL_OK && i < PQntuples(r); i++) {
    union {
      hub_vehicle v;
      hub_rental x;
      hub_booking bk;
    } row;
    if (f->kind == PG_ROW_VEHICLE && vehicle_read(r, i, &row.v) == FL_OK)
      rc = f->fn.vehicle(f->ctx, &row.v);
    else if (f->kind == PG_ROW_RENTAL && rental_read(r, i, &row.x) == FL_OK)
      rc = f->fn.rental(f->ctx, &row.x);
    else if (f->kind == PG_ROW_BOOKING && booking_read(r, i, &row.bk) == FL_OK)
      rc = f->fn.booking(f->ctx, &row.bk);
  }
  PQclear(r);
  return rc;
}

int pg_bookings_holding(void *b_, const char *vehicle, int64_t now_ms, int64_t start_ms,
                        int64_t end_ms, int (*fn)(void *ctx, const hub_booking *bk),
                        void *ctx) {
  pg_params p = {0};
  p_text(&p, vehicle);
  p_i64(&p, now_ms);
  p_i64(&p, start_ms);
  p_i64(&p, end_ms);
  pg_rows f = {.kind = PG_ROW_BOOKING, .fn.booking = fn, .ctx = ctx};
  return each_row(b_, P_BOOKINGS_HOLDING, &p, &f);
}

/* The periodic scans (hub/store.h): every row is read before fn runs, so
 * that fn may write. */
int pg_vehicles_each(void *b_, const char *station,
                     int (*fn)(void *ctx, const hub_vehicle *v), void *ctx) {
  pg_params p = {0};
  p_text(&p, station && station[0] ? station : NULL);
  pg_rows f = {.kind = PG_ROW_VEHICLE, .fn.vehicle = fn, .ctx = ctx};
  return each_row(b_, P_VEHICLES_AT, &p, &f);
}

int pg_bookings_starting_before(void *b_, booking_state state, int64_t before_ms,
                                int (*fn)(void *ctx, const hub_booking *bk), void *ctx) {
  pg_params p = {0};
  p_text(&p, booking_state_name(state));
  p_i64(&p, before_ms);
  pg_rows f = {.kind = PG_ROW_BOOKING, .fn.booking = fn, .ctx = ctx};
  return each_row(b_, P_BOOKINGS_STARTING, &p, &f);
}

int pg_rentals_overdue(void *b_, int64_t now_ms, int (*fn)(void *ctx, const hub_rental *x),
                       void *ctx) {
  pg_params p = {0};
  p_i64(&p, now_ms);
  pg_rows f = {.kind = PG_ROW_RENTAL, .fn.rental = fn, .ctx = ctx};
  return each_row(b_, P_RENTALS_OVERDUE, &p, &f);
}

int pg_rentals_of_customer(void *b_, const char *customer, int limit,
                           int (*fn)(void *ctx, const hub_rental *x), void *ctx) {
  pg_params p = {0};
  p_text(&p, customer);
  p_i64(&p, limit);
  pg_rows f = {.kind = PG_ROW_RENTAL, .fn.rental = fn, .ctx = ctx};
  return each_row(b_, P_RENTALS_OF_CUSTOMER, &p, &f);
}

int pg_bookings_of_customer(void *b_, const char *customer, int limit,
                            int (*fn)(void *ctx, const hub_booking *bk), void *ctx) {
  pg_params p = {0};
  p_text(&p, customer);
  p_i64(&p, limit);
  p_i64(&p, fl_now_ms());
  pg_rows f = {.kind = PG_ROW_BOOKING, .fn.booking = fn, .ctx = ctx};
  return each_row(b_, P_BOOKINGS_OF_CUSTOMER, &p, &f);
}

int pg_customer_totals(void *b_, const char *customer, hub_customer_totals *out) {
  pg_params p = {0};
  p_text(&p, customer);
  PGresult *r;
  int rc = pg__row(b_, P_CUSTOMER_TOTALS, &p, &r);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_ERR_DB : rc;
  out->charged_cents = col_i64(r, 0, 0);
  out->refunded_cents = col_i64(r, 0, 1);
  out->fees_paid_cents = col_i64(r, 0, 2);
  out->fees_owed_cents = col_i64(r, 0, 3);
  PQclear(r);
  return FL_OK;
}

int pg_station_counts(void *b_, const char *station, int64_t now_ms,
                      hub_station_counts *out) {
  pg_params p = {0};
  p_text(&p, station);
  p_i64(&p, now_ms);
  PGresult *r;
  int rc = pg__row(b_, P_STATION_COUNTS, &p, &r);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_ERR_DB : rc;
  out->available = (uint32_t)col_i64(r, 0, 0);
  out->rented = (uint32_t)col_i64(r, 0, 1);
  out->in_repair = (uint32_t)col_i64(r, 0, 2);
  out->booked = (uint32_t)col_i64(r, 0, 3);
  PQclear(r);
  return FL_OK;
}

int pg_outbox_put(void *b_, const char *topic, const uint8_t *payload, size_t len,
                  bool retain, uint32_t expiry_s, int64_t now_ms, uint64_t *seq) {
  pg_params p = {0};
  p_text(&p, topic);
  p_blob(&p, payload, len);
  p_i64(&p, retain);
  p_i64(&p, now_ms);
  p_i64(&p, expiry_s);
  PGresult *r;
  int rc = pg__row(b_, P_OUTBOX_PUT, &p, &r);
  if (rc != FL_OK) return rc == FL_ERR_NOT_FOUND ? FL_ERR_DB : rc;
  *seq = (uint64_t)col_i64(r, 0, 0);
  PQclear(r);
  return FL_OK;
}

int pg_outbox_delete(void *b_, uint64_t first, uint64_t last) {
  pg_params p = {0};
  p_i64(&p, (int64_t)first);
  p_i64(&p, (int64_t)last);
  return pg__do(b_, P_OUTBOX_DELETE, &p);
}

int pg_outbox_each(void *b_,
                   int (*fn)(void *ctx, uint64_t seq, const char *topic,
                             const uint8_t *payload, size_t len, bool retain,
                             uint32_t expiry_s),
                   void *ctx) {
  PGresult *r;
  pg_params p = {0};
  int rc = pg__run(b_, P_OUTBOX_EACH, &p, &r);
  for (int i = 0; rc == FL_OK && i < PQntuples(r); i++) {
    size_t len = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 2), &len);
    if (!bytes) {
      rc = FL_ERR_NOMEM;
      break;
    }
    rc = fn(ctx, (uint64_t)col_i64(r, i, 0), PQgetvalue(r, i, 1), bytes, len,
            col_i64(r, i, 3) != 0, (uint32_t)col_i64(r, i, 4));
    PQfreemem(bytes);
  }
  PQclear(r);
  return rc;
}

int pg_alert_record(void *b_, const char *kind, const char *id, int64_t at_ms) {
  pg_params p = {0};
  p_text(&p, kind);
  p_text(&p, id);
  p_i64(&p, at_ms);
  return pg__do(b_, P_ALERT_RECORD, &p);
}
