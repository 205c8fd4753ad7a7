/* The SQLite backend: reading and writing the rows of hub/model.h, states
 * mapped to and from their names here, at the store's edge. */
#include <stdlib.h>
#include <string.h>

#include "fleet/clock.h"
#include "store_sqlite_internal.h"

int sq_device_get(void *b_, const char *id, hub_device *out) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_DEVICE_GET];
  bind_text(s, 1, id);
  int rc = row_fetch(s);
  if (rc != FL_OK) return rc;
  memset(out, 0, sizeof *out);
  col_text(s, 0, out->id, sizeof out->id);
  col_text(s, 1, out->role, sizeof out->role);
  out->boot = (uint64_t)sqlite3_column_int64(s, 2);
  out->up_seq = (uint64_t)sqlite3_column_int64(s, 3);
  out->down_seq = (uint64_t)sqlite3_column_int64(s, 4);
  out->down_applied = (uint64_t)sqlite3_column_int64(s, 5);
  out->online = sqlite3_column_int(s, 6) != 0;
  out->last_seen_ms = sqlite3_column_int64(s, 7);
  out->clock_skew_ms = sqlite3_column_int64(s, 8);
  row_done(s);
  return FL_OK;
}

int sq_device_put(void *b_, const hub_device *d) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_DEVICE_PUT];
  bind_text(s, 1, d->id);
  bind_text_or_null(s, 2, d->role);
  sqlite3_bind_int64(s, 3, (sqlite3_int64)d->boot);
  sqlite3_bind_int64(s, 4, (sqlite3_int64)d->up_seq);
  sqlite3_bind_int64(s, 5, (sqlite3_int64)d->down_seq);
  sqlite3_bind_int64(s, 6, (sqlite3_int64)d->down_applied);
  sqlite3_bind_int(s, 7, d->online);
  sqlite3_bind_int64(s, 8, d->last_seen_ms);
  sqlite3_bind_int64(s, 9, d->clock_skew_ms);
  return fl_db_step_done(s);
}

static int vehicle_read(sqlite3_stmt *s, hub_vehicle *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(s, 0, out->id, sizeof out->id);
  col_text(s, 1, out->name, sizeof out->name);
  col_text(s, 2, out->station, sizeof out->station);
  out->rate_cents = sqlite3_column_int64(s, 3);
  COL_STATE(s, 4, vehicle_state_parse, &out->state);
  col_text(s, 5, out->rental, sizeof out->rental);
  out->repair_due = sqlite3_column_int(s, 6) != 0;
  out->energy_pct = sqlite3_column_type(s, 7) == SQLITE_NULL ? -1 : sqlite3_column_int(s, 7);
  out->has_position = sqlite3_column_type(s, 8) != SQLITE_NULL;
  out->lat = sqlite3_column_double(s, 8);
  out->lon = sqlite3_column_double(s, 9);
  out->odometer_m = sqlite3_column_int64(s, 10);
  out->updated_ms = sqlite3_column_int64(s, 11);
  return bad ? FL_ERR_DB : FL_OK;
}

int sq_vehicle_get(void *b_, const char *id, hub_vehicle *out) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_VEHICLE_GET];
  bind_text(s, 1, id);
  int rc = row_fetch(s);
  if (rc != FL_OK) return rc;
  rc = vehicle_read(s, out);
  row_done(s);
  return rc;
}

int sq_vehicle_reading(void *b_, const hub_vehicle *v);

int sq_vehicle_put(void *b_, const hub_vehicle *v) {
  sq_store *st = b_;
  int rc = sq_vehicle_reading(st, v);
  return rc == FL_OK ? readmodel_record(st->rm, RM_VEHICLE, v->id, NULL) : rc;
}

int sq_vehicle_reading(void *b_, const hub_vehicle *v) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_VEHICLE_PUT];
  bind_text(s, 1, v->id);
  bind_text(s, 2, v->name);
  bind_text(s, 3, v->station);
  sqlite3_bind_int64(s, 4, v->rate_cents);
  bind_text(s, 5, vehicle_state_name(v->state));
  bind_text_or_null(s, 6, v->rental);
  sqlite3_bind_int(s, 7, v->repair_due);
  if (v->energy_pct >= 0) sqlite3_bind_int(s, 8, v->energy_pct);
  if (v->has_position) {
    sqlite3_bind_double(s, 9, v->lat);
    sqlite3_bind_double(s, 10, v->lon);
  }
  sqlite3_bind_int64(s, 11, v->odometer_m);
  sqlite3_bind_int64(s, 12, v->updated_ms);
  return fl_db_step_done(s);
}

static int rental_read(sqlite3_stmt *s, hub_rental *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(s, 0, out->id, sizeof out->id);
  col_text(s, 1, out->vehicle, sizeof out->vehicle);
  col_text(s, 2, out->customer, sizeof out->customer);
  col_text(s, 3, out->kiosk, sizeof out->kiosk);
  col_text(s, 4, out->reply_topic, sizeof out->reply_topic);
  COL_STATE(s, 5, rental_state_parse, &out->state);
  out->minutes = (uint32_t)sqlite3_column_int(s, 6);
  out->amount_cents = sqlite3_column_int64(s, 7);
  out->charged_cents = sqlite3_column_int64(s, 8);
  out->refunded_cents = sqlite3_column_int64(s, 9);
  out->fee_cents = sqlite3_column_int64(s, 10);
  col_text(s, 11, out->reason, sizeof out->reason);
  out->started = sqlite3_column_int(s, 12) != 0;
  out->created_ms = sqlite3_column_int64(s, 13);
  out->due_ms = sqlite3_column_int64(s, 14);
  out->ended_ms = sqlite3_column_int64(s, 15);
  out->updated_ms = sqlite3_column_int64(s, 16);
  return bad ? FL_ERR_DB : FL_OK;
}

int sq_rental_get(void *b_, const char *id, hub_rental *out) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_RENTAL_GET];
  bind_text(s, 1, id);
  int rc = row_fetch(s);
  if (rc != FL_OK) return rc;
  rc = rental_read(s, out);
  row_done(s);
  return rc;
}

int sq_rental_put(void *b_, const hub_rental *r) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_RENTAL_PUT];
  bind_text(s, 1, r->id);
  bind_text(s, 2, r->vehicle);
  bind_text(s, 3, r->customer);
  bind_text(s, 4, r->kiosk);
  bind_text(s, 5, r->reply_topic);
  bind_text(s, 6, rental_state_name(r->state));
  sqlite3_bind_int(s, 7, (int)r->minutes);
  sqlite3_bind_int64(s, 8, r->amount_cents);
  sqlite3_bind_int64(s, 9, r->charged_cents);
  sqlite3_bind_int64(s, 10, r->refunded_cents);
  sqlite3_bind_int64(s, 11, r->fee_cents);
  bind_text_or_null(s, 12, r->reason);
  sqlite3_bind_int(s, 13, r->started);
  sqlite3_bind_int64(s, 14, r->created_ms);
  if (r->due_ms) sqlite3_bind_int64(s, 15, r->due_ms);
  if (r->ended_ms) sqlite3_bind_int64(s, 16, r->ended_ms);
  sqlite3_bind_int64(s, 17, r->updated_ms);
  int rc = fl_db_step_done(s);
  return rc == FL_OK ? readmodel_record(st->rm, RM_RENTAL, r->id, NULL) : rc;
}

/* Reads a saga_steps row; FL_ERR_DB for a kind or status this hub does not know. */
static int step_read(sqlite3_stmt *s, hub_step *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(s, 0, out->owner, sizeof out->owner);
  COL_STATE(s, 1, step_kind_parse, &out->kind);
  COL_STATE(s, 2, step_status_parse, &out->status);
  col_text(s, 3, out->idem_key, sizeof out->idem_key);
  out->amount_cents = sqlite3_column_int64(s, 4);
  out->attempts = sqlite3_column_int(s, 5);
  col_text(s, 6, out->provider_ref, sizeof out->provider_ref);
  col_text(s, 7, out->last_error, sizeof out->last_error);
  out->next_try_ms = sqlite3_column_int64(s, 8);
  out->updated_ms = sqlite3_column_int64(s, 9);
  return bad ? FL_ERR_DB : FL_OK;
}

int sq_step_get(void *b_, const char *owner, step_kind kind, hub_step *out) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_STEP_GET];
  bind_text(s, 1, owner);
  bind_text(s, 2, step_kind_name(kind));
  int rc = row_fetch(s);
  if (rc != FL_OK) return rc;
  rc = step_read(s, out);
  row_done(s);
  return rc;
}

int sq_step_put(void *b_, const hub_step *p) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_STEP_PUT];
  bind_text(s, 1, p->owner);
  bind_text(s, 2, step_kind_name(p->kind));
  bind_text(s, 3, step_status_name(p->status));
  bind_text(s, 4, p->idem_key);
  sqlite3_bind_int64(s, 5, p->amount_cents);
  sqlite3_bind_int(s, 6, p->attempts);
  bind_text_or_null(s, 7, p->provider_ref);
  bind_text_or_null(s, 8, p->last_error);
  sqlite3_bind_int64(s, 9, p->next_try_ms);
  sqlite3_bind_int64(s, 10, p->updated_ms);
  int rc = fl_db_step_done(s);
  return rc == FL_OK ? readmodel_record(st->rm, RM_SAGA, p->owner, step_kind_name(p->kind)) : rc;
}

int sq_steps_where(void *b_, step_status status, int64_t due_ms,
                          int (*fn)(void *ctx, const hub_step *s), void *ctx) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_STEPS_CALLING];
  bind_text(s, 1, step_status_name(status));
  sqlite3_bind_int64(s, 2, due_ms);
  size_t n = 0, cap = 0;
  hub_step *steps = NULL;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      hub_step *grown = realloc(steps, cap * sizeof *steps);
      if (!grown) {
        free(steps);
        row_done(s);
        return FL_ERR_NOMEM;
      }
      steps = grown;
    }
    if (step_read(s, &steps[n]) == FL_OK) n++; /* a damaged row is logged and left alone */
  }
  row_done(s);
  int err = rc == SQLITE_DONE ? FL_OK : FL_ERR_DB;
  for (size_t i = 0; err == FL_OK && i < n; i++) err = fn(ctx, &steps[i]);
  free(steps);
  return err;
}

static int repair_read(sqlite3_stmt *s, hub_repair *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(s, 0, out->id, sizeof out->id);
  col_text(s, 1, out->vehicle, sizeof out->vehicle);
  COL_STATE(s, 2, repair_state_parse, &out->state);
  col_text(s, 3, out->dtcs, sizeof out->dtcs);
  col_text(s, 4, out->severity, sizeof out->severity);
  col_text(s, 5, out->text, sizeof out->text);
  out->opened_ms = sqlite3_column_int64(s, 6);
  out->updated_ms = sqlite3_column_int64(s, 7);
  return bad ? FL_ERR_DB : FL_OK;
}

/* Runs a one-row repair query bound with key. */
static int repair_query(sqlite3_stmt *s, const char *key, hub_repair *out) {
  bind_text(s, 1, key);
  int rc = row_fetch(s);
  if (rc != FL_OK) return rc;
  rc = repair_read(s, out);
  row_done(s);
  return rc;
}

int sq_repair_get(void *b_, const char *id, hub_repair *out) {
  sq_store *st = b_;
  return repair_query(st->st[S_REPAIR_GET], id, out);
}

int sq_repair_open_for(void *b_, const char *vehicle, hub_repair *out) {
  sq_store *st = b_;
  return repair_query(st->st[S_REPAIR_OPEN_FOR], vehicle, out);
}

int sq_repair_put(void *b_, const hub_repair *r) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_REPAIR_PUT];
  bind_text(s, 1, r->id);
  bind_text(s, 2, r->vehicle);
  bind_text(s, 3, repair_state_name(r->state));
  bind_text(s, 4, r->dtcs);
  bind_text(s, 5, r->severity);
  bind_text_or_null(s, 6, r->text);
  sqlite3_bind_int64(s, 7, r->opened_ms);
  sqlite3_bind_int64(s, 8, r->updated_ms);
  int rc = fl_db_step_done(s);
  return rc == FL_OK ? readmodel_record(st->rm, RM_REPAIR, r->id, NULL) : rc;
}

static int booking_read(sqlite3_stmt *s, hub_booking *out) {
  bool bad = false;
  memset(out, 0, sizeof *out);
  col_text(s, 0, out->id, sizeof out->id);
  col_text(s, 1, out->vehicle, sizeof out->vehicle);
  col_text(s, 2, out->customer, sizeof out->customer);
  col_text(s, 3, out->kiosk, sizeof out->kiosk);
  col_text(s, 4, out->reply_topic, sizeof out->reply_topic);
  COL_STATE(s, 5, booking_state_parse, &out->state);
  out->start_ms = sqlite3_column_int64(s, 6);
  out->end_ms = sqlite3_column_int64(s, 7);
  out->deposit_cents = sqlite3_column_int64(s, 8);
  out->charged_cents = sqlite3_column_int64(s, 9);
  out->refunded_cents = sqlite3_column_int64(s, 10);
  col_text(s, 11, out->rental, sizeof out->rental);
  col_text(s, 12, out->reason, sizeof out->reason);
  out->created_ms = sqlite3_column_int64(s, 13);
  out->updated_ms = sqlite3_column_int64(s, 14);
  return bad ? FL_ERR_DB : FL_OK;
}

int sq_booking_get(void *b_, const char *id, hub_booking *out) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_BOOKING_GET];
  bind_text(s, 1, id);
  int rc = row_fetch(s);
  if (rc != FL_OK) return rc;
  rc = booking_read(s, out);
  row_done(s);
  return rc;
}

int sq_booking_put(void *b_, const hub_booking *bk) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_BOOKING_PUT];
  bind_text(s, 1, bk->id);
  bind_text(s, 2, bk->vehicle);
  bind_text(s, 3, bk->customer);
  bind_text(s, 4, bk->kiosk);
  bind_text(s, 5, bk->reply_topic);
  bind_text(s, 6, booking_state_name(bk->state));
  sqlite3_bind_int64(s, 7, bk->start_ms);
  sqlite3_bind_int64(s, 8, bk->end_ms);
  sqlite3_bind_int64(s, 9, bk->deposit_cents);
  sqlite3_bind_int64(s, 10, bk->charged_cents);
  sqlite3_bind_int64(s, 11, bk->refunded_cents);
  bind_text_or_null(s, 12, bk->rental);
  bind_text_or_null(s, 13, bk->reason);
  sqlite3_bind_int64(s, 14, bk->created_ms);
  sqlite3_bind_int64(s, 15, bk->updated_ms);
  int rc = fl_db_step_done(s);
  return rc == FL_OK ? readmodel_record(st->rm, RM_BOOKING, bk->id, NULL) : rc;
}

int sq_bookings_holding(void *b_, const char *vehicle, int64_t now_ms,
                               int64_t start_ms, int64_t end_ms,
                               int (*fn)(void *ctx, const hub_booking *bk), void *ctx) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_BOOKINGS_HOLDING];
  bind_text(s, 1, vehicle);
  sqlite3_bind_int64(s, 2, now_ms);
  sqlite3_bind_int64(s, 3, start_ms);
  sqlite3_bind_int64(s, 4, end_ms);
  int rc = SQLITE_DONE, err = FL_OK;
  while (err == FL_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    hub_booking bk;
    if (booking_read(s, &bk) == FL_OK) err = fn(ctx, &bk);
  }
  if (err == FL_OK && rc != SQLITE_DONE) err = FL_ERR_DB;
  row_done(s);
  return err;
}


/* A callback over rows of one kind. */
typedef struct row_fn {
  enum { ROW_VEHICLE, ROW_RENTAL, ROW_BOOKING } kind;
  union {
    int (*vehicle)(void *ctx, const hub_vehicle *v);
    int (*rental)(void *ctx, const hub_rental *r);
    int (*booking)(void *ctx, const hub_booking *b);
  } fn;
  void *ctx;
} row_fn;

static size_t row_size(const row_fn *f) {
  return f->kind == ROW_VEHICLE ? sizeof(hub_vehicle)
         : f->kind == ROW_RENTAL ? sizeof(hub_rental) : sizeof(hub_booking);
}

static int row_read(const row_fn *f, sqlite3_stmt *s, void *out) {
  return f->kind == ROW_VEHICLE ? vehicle_read(s, out)
         : f->kind == ROW_RENTAL ? rental_read(s, out) : booking_read(s, out);
}

static int row_call(const row_fn *f, const void *row) {
  return f->kind == ROW_VEHICLE ? f->fn.vehicle(f->ctx, row)
         : f->kind == ROW_RENTAL ? f->fn.rental(f->ctx, row) : f->fn.booking(f->ctx, row);
}

/* Runs the bound query s, reading every row first, then calls f on each
 * (so that f may write to the store). A damaged row is logged and skipped. */
static int rows_then_each(sqlite3_stmt *s, const row_fn *f) {
  size_t n = 0, cap = 0, elem = row_size(f);
  char *rows = NULL;
  int rc, err = FL_OK;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      char *grown = realloc(rows, cap * elem);
      if (!grown) {
        err = FL_ERR_NOMEM;
        break;
      }
      rows = grown;
    }
    if (row_read(f, s, rows + n * elem) == FL_OK) n++;
  }
  if (err == FL_OK && rc != SQLITE_DONE) err = FL_ERR_DB;
  row_done(s);
  for (size_t i = 0; err == FL_OK && i < n; i++) err = row_call(f, rows + i * elem);
  free(rows);
  return err;
}

int sq_vehicles_each(void *b_, const char *station, int (*fn)(void *ctx, const hub_vehicle *v),
                     void *ctx) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_VEHICLES_AT];
  bind_text_or_null(s, 1, station);
  row_fn f = {.kind = ROW_VEHICLE, .fn.vehicle = fn, .ctx = ctx};
  return rows_then_each(s, &f);
}

int sq_bookings_starting_before(void *b_, booking_state state, int64_t before_ms,
                                int (*fn)(void *ctx, const hub_booking *bk), void *ctx) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_BOOKINGS_STARTING];
  bind_text(s, 1, booking_state_name(state));
  sqlite3_bind_int64(s, 2, before_ms);
  row_fn f = {.kind = ROW_BOOKING, .fn.booking = fn, .ctx = ctx};
  return rows_then_each(s, &f);
}

int sq_rentals_overdue(void *b_, int64_t now_ms, int (*fn)(void *ctx, const hub_rental *r),
                       void *ctx) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_RENTALS_OVERDUE];
  sqlite3_bind_int64(s, 1, now_ms);
  row_fn f = {.kind = ROW_RENTAL, .fn.rental = fn, .ctx = ctx};
  return rows_then_each(s, &f);
}

int sq_rentals_of_customer(void *b_, const char *customer, int limit,
                           int (*fn)(void *ctx, const hub_rental *r), void *ctx) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_RENTALS_OF_CUSTOMER];
  bind_text(s, 1, customer);
  sqlite3_bind_int(s, 2, limit);
  row_fn f = {.kind = ROW_RENTAL, .fn.rental = fn, .ctx = ctx};
  return rows_then_each(s, &f);
}

int sq_bookings_of_customer(void *b_, const char *customer, int limit,
                            int (*fn)(void *ctx, const hub_booking *bk), void *ctx) {
  sq_store *st = b_;
  sqlite3_stmt *s = st->st[S_BOOKINGS_OF_CUSTOMER];
  bind_text(s, 1, customer);
  sqlite3_bind_int(s, 2, limit);
  sqlite3_bind_int64(s, 3, fl_now_ms());
  row_fn f = {.kind = ROW_BOOKING, .fn.booking = fn, .ctx = ctx};
  return rows_then_each(s, &f);
}
