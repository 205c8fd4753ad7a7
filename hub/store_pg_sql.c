/* The PostgreSQL store's statements: the text of each one, prepared on
 * every connection (store_pg.c), and the writes whose statement also logs the
 * change and projects the read model. Parameters are $1..$N in the order the
 * row functions (store_pg_rows.c) bind them. */
#include "store_pg_internal.h"

#define VEHICLE_UPSERT                                                                        \
  "INSERT INTO vehicles(id, name, station, rate_cents, state, rental, repair_due, energy_pct, " \
  "lat, lon, odometer_m, updated_ms) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) "          \
  "ON CONFLICT(id) DO UPDATE SET name=EXCLUDED.name, station=EXCLUDED.station, "              \
  "rate_cents=EXCLUDED.rate_cents, state=EXCLUDED.state, rental=EXCLUDED.rental, "            \
  "repair_due=EXCLUDED.repair_due, energy_pct=EXCLUDED.energy_pct, lat=EXCLUDED.lat, "        \
  "lon=EXCLUDED.lon, odometer_m=EXCLUDED.odometer_m, updated_ms=EXCLUDED.updated_ms"
#define RENTAL_UPSERT                                                                          \
  "INSERT INTO rentals(id, vehicle, customer, kiosk, reply_topic, state, minutes, amount_cents, " \
  "charged_cents, refunded_cents, fee_cents, reason, started, created_ms, due_ms, ended_ms, "    \
  "updated_ms) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17) "              \
  "ON CONFLICT(id) DO UPDATE SET kiosk=EXCLUDED.kiosk, reply_topic=EXCLUDED.reply_topic, "       \
  "state=EXCLUDED.state, amount_cents=EXCLUDED.amount_cents, "                                   \
  "charged_cents=EXCLUDED.charged_cents, refunded_cents=EXCLUDED.refunded_cents, "               \
  "fee_cents=EXCLUDED.fee_cents, reason=EXCLUDED.reason, started=EXCLUDED.started, "             \
  "due_ms=EXCLUDED.due_ms, ended_ms=EXCLUDED.ended_ms, updated_ms=EXCLUDED.updated_ms"
#define STEP_UPSERT                                                                            \
  "INSERT INTO saga_steps(rental, step, status, idem_key, amount_cents, attempts, provider_ref, " \
  "last_error, next_try_ms, updated_ms) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) "                 \
  "ON CONFLICT(rental, step) DO UPDATE SET status=EXCLUDED.status, "                             \
  "amount_cents=EXCLUDED.amount_cents, attempts=EXCLUDED.attempts, "                             \
  "provider_ref=EXCLUDED.provider_ref, last_error=EXCLUDED.last_error, "                         \
  "next_try_ms=EXCLUDED.next_try_ms, updated_ms=EXCLUDED.updated_ms"
#define REPAIR_UPSERT                                                                          \
  "INSERT INTO repairs(id, vehicle, state, dtcs, severity, text, opened_ms, updated_ms) "        \
  "VALUES($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT(id) DO UPDATE SET state=EXCLUDED.state, "         \
  "dtcs=EXCLUDED.dtcs, severity=EXCLUDED.severity, text=EXCLUDED.text, "                         \
  "updated_ms=EXCLUDED.updated_ms"
#define STEP_COLS                                                                              \
  "rental, step, status, idem_key, amount_cents, attempts, provider_ref, last_error, "           \
  "next_try_ms, updated_ms"
#define REPAIR_COLS "id, vehicle, state, dtcs, severity, text, opened_ms, updated_ms"
#define VEHICLE_COLS                                                                           \
  "id, name, station, rate_cents, state, rental, repair_due, energy_pct, lat, lon, odometer_m, " \
  "updated_ms"
#define RENTAL_COLS                                                                            \
  "id, vehicle, customer, kiosk, reply_topic, state, minutes, amount_cents, charged_cents, "     \
  "refunded_cents, fee_cents, reason, started, created_ms, due_ms, ended_ms, updated_ms"
#define BOOKING_COLS                                                                           \
  "id, vehicle, customer, kiosk, reply_topic, state, start_ms, end_ms, deposit_cents, "          \
  "charged_cents, refunded_cents, rental, reason, created_ms, updated_ms"

#define BOOKING_UPSERT \
  "INSERT INTO bookings(" BOOKING_COLS ") " \
  "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) " \
  "ON CONFLICT(id) DO UPDATE SET vehicle=EXCLUDED.vehicle, kiosk=EXCLUDED.kiosk, " \
  "reply_topic=EXCLUDED.reply_topic, state=EXCLUDED.state, " \
  "charged_cents=EXCLUDED.charged_cents, " \
  "refunded_cents=EXCLUDED.refunded_cents, rental=EXCLUDED.rental, " \
  "reason=EXCLUDED.reason, updated_ms=EXCLUDED.updated_ms"

/* The statements; NULL for those composed at open (a write and its read model). */
const char *const pg__sql[P__COUNT] = {
    [P_DEVICE_GET] = "SELECT id, role, boot, up_seq, down_seq, down_applied, online, "
                     "last_seen_ms, clock_skew_ms FROM devices WHERE id = $1",
    [P_DEVICE_PUT] = "INSERT INTO devices(id, role, boot, up_seq, down_seq, down_applied, online, "
                     "last_seen_ms, clock_skew_ms) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9) "
                     "ON CONFLICT(id) DO UPDATE SET role=EXCLUDED.role, boot=EXCLUDED.boot, "
                     "up_seq=EXCLUDED.up_seq, down_seq=EXCLUDED.down_seq, "
                     "down_applied=EXCLUDED.down_applied, online=EXCLUDED.online, "
                     "last_seen_ms=EXCLUDED.last_seen_ms, clock_skew_ms=EXCLUDED.clock_skew_ms",
    [P_VEHICLE_GET] = "SELECT id, name, station, rate_cents, state, rental, repair_due, "
                      "energy_pct, lat, lon, odometer_m, updated_ms FROM vehicles WHERE id = $1",
    [P_VEHICLE_READING] = VEHICLE_UPSERT,
    [P_RENTAL_GET] = "SELECT id, vehicle, customer, kiosk, reply_topic, state, minutes, "
                     "amount_cents, charged_cents, refunded_cents, fee_cents, reason, started, "
                     "created_ms, due_ms, ended_ms, updated_ms FROM rentals WHERE id = $1",
    [P_STEP_GET] = "SELECT " STEP_COLS " FROM saga_steps WHERE rental = $1 AND step = $2",
    [P_STEPS_WHERE] = "SELECT " STEP_COLS " FROM saga_steps WHERE status = $1 "
                      "AND COALESCE(next_try_ms, 0) <= $2 ORDER BY updated_ms",
    [P_REPAIR_GET] = "SELECT " REPAIR_COLS " FROM repairs WHERE id = $1",
    [P_REPAIR_OPEN_FOR] = "SELECT " REPAIR_COLS " FROM repairs WHERE vehicle = $1 AND state IN "
                          "('REQUESTED','IN_PROGRESS') ORDER BY opened_ms LIMIT 1",
    [P_EVENT_APPEND] = "INSERT INTO events(device, seq, type, corr, device_time_ms, received_ms, "
                       "clock_flag, payload) VALUES($1,$2,$3,$4,$5,$6,$7,$8)",
    [P_DEAD_LETTER] = "WITH d AS (INSERT INTO dead_letters(received_ms, topic, device, error, "
                      "detail, payload) VALUES($1,$2,$3,$4,$5,$6)) "
                      "INSERT INTO counters(name, value) VALUES('rejected.' || $4, 1) "
                      "ON CONFLICT(name) DO UPDATE SET value = counters.value + 1",
    [P_COUNT] = "INSERT INTO counters(name, value) VALUES($1, $2) "
                "ON CONFLICT(name) DO UPDATE SET value = counters.value + EXCLUDED.value",
    [P_DOWNLINK_PUT] = "INSERT INTO downlink(device, seq, type, topic, corr, expires_ms, payload, "
                       "created_ms) VALUES($1,$2,$3,$4,$5,$6,$7,$8)",
    [P_DOWNLINK_ACK] = "DELETE FROM downlink WHERE device = $1 AND seq <= $2",
    [P_DOWNLINK_EACH] = "SELECT device, seq, type, topic, corr, expires_ms, payload FROM downlink "
                        "WHERE device = $1 AND seq > $2 ORDER BY seq",
    [P_DOWNLINK_ONLINE] = "SELECT d.device, d.seq, d.type, d.topic, d.corr, d.expires_ms, "
                          "d.payload FROM downlink d JOIN devices v ON v.id = d.device "
                          "WHERE v.online = 1 ORDER BY d.device, d.seq",
    [P_NEXT_ID] = "INSERT INTO id_sequences(name, value) VALUES($1, 1) ON CONFLICT(name) "
                  "DO UPDATE SET value = id_sequences.value + 1 RETURNING value",
    [P_BOOKING_GET] = "SELECT " BOOKING_COLS " FROM bookings WHERE id = $1",

    [P_BOOKINGS_HOLDING] = "SELECT " BOOKING_COLS " FROM bookings WHERE vehicle = $1 "
                           "AND state IN ('PAYMENT_PENDING', 'HELD') AND end_ms > $2 "
                           "AND end_ms > $3 AND start_ms < $4 ORDER BY start_ms, id",
    [P_VEHICLES_AT] = "SELECT " VEHICLE_COLS " FROM vehicles WHERE $1::text IS NULL "
                      "OR station = $1 ORDER BY id",
    [P_BOOKINGS_STARTING] = "SELECT " BOOKING_COLS " FROM bookings WHERE state = $1 "
                            "AND start_ms < $2 ORDER BY start_ms, id",
    [P_RENTALS_OVERDUE] = "SELECT " RENTAL_COLS " FROM rentals r WHERE state = 'ACTIVE' "
                          "AND due_ms < $1 AND NOT EXISTS (SELECT 1 FROM alerts_raised a "
                          "WHERE a.kind = 'rental_overdue' AND a.id = r.id) ORDER BY due_ms",
    [P_ALERT_RECORD] = "INSERT INTO alerts_raised(kind, id, at_ms) VALUES($1, $2, $3)",
    [P_RENTALS_OF_CUSTOMER] = "SELECT " RENTAL_COLS " FROM rentals WHERE customer = $1 ORDER BY "
                              "state NOT IN ('REQUESTED','PAYMENT_PENDING','ACTIVE','RETURNED',"
                              "'CANCEL_REQUESTED'), created_ms DESC, id LIMIT $2",
    [P_BOOKINGS_OF_CUSTOMER] = "SELECT " BOOKING_COLS " FROM bookings WHERE customer = $1 "
                               "ORDER BY end_ms <= $3, start_ms DESC, id LIMIT $2",
    [P_CUSTOMER_TOTALS] =
        "SELECT (SELECT coalesce(sum(charged_cents), 0) FROM rentals WHERE customer = $1) + "
        "(SELECT coalesce(sum(charged_cents), 0) FROM bookings WHERE customer = $1), "
        "(SELECT coalesce(sum(refunded_cents), 0) FROM rentals WHERE customer = $1) + "
        "(SELECT coalesce(sum(refunded_cents), 0) FROM bookings WHERE customer = $1), "
        "(SELECT coalesce(sum(r.fee_cents), 0) FROM rentals r JOIN saga_steps s ON s.rental = r.id "
        "AND s.step = 'fee' AND s.status = 'done' WHERE r.customer = $1), "
        "(SELECT coalesce(sum(r.fee_cents), 0) FROM rentals r WHERE r.customer = $1 AND "
        "r.fee_cents > 0 AND NOT EXISTS (SELECT 1 FROM saga_steps s WHERE s.rental = r.id AND "
        "s.step = 'fee' AND s.status = 'done'))",
    [P_STATION_COUNTS] =
        "SELECT count(*) FILTER (WHERE state = 'AVAILABLE'), "
        "count(*) FILTER (WHERE state IN ('RESERVED', 'RENTED')), "
        "count(*) FILTER (WHERE state IN ('REPAIR_REQUESTED', 'IN_REPAIR')), "
        "count(*) FILTER (WHERE EXISTS (SELECT 1 FROM bookings b WHERE b.vehicle = v.id "
        "AND b.state = 'HELD' AND b.end_ms > $2)) FROM vehicles v WHERE station = $1",
    [P_OUTBOX_PUT] = "INSERT INTO outbox(topic, payload, retain, created_ms, expiry_s) "
                     "VALUES($1, $2, $3, $4, $5) RETURNING seq",
    [P_OUTBOX_DELETE] = "DELETE FROM outbox WHERE seq BETWEEN $1 AND $2",
    [P_OUTBOX_EACH] = "SELECT seq, topic, payload, retain, expiry_s FROM outbox ORDER BY seq",
};

/* The writes whose statement also logs and projects: the upsert, its kind. */
const pg_recorded_write pg__recorded[] = {
    {P_VEHICLE_PUT, VEHICLE_UPSERT, RM_VEHICLE},
    {P_RENTAL_PUT, RENTAL_UPSERT, RM_RENTAL},
    {P_STEP_PUT, STEP_UPSERT, RM_SAGA},
    {P_REPAIR_PUT, REPAIR_UPSERT, RM_REPAIR},
    {P_BOOKING_PUT, BOOKING_UPSERT, RM_BOOKING},
};

const size_t pg__n_recorded = sizeof pg__recorded / sizeof pg__recorded[0];
