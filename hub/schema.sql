-- The hub's SQLite schema (hub.db). Compiled into fleet-hub; this file is the
-- readable source and is embedded by hub/CMakeLists.txt.
-- Write side: devices, events, vehicles, rentals, saga_steps, repairs,
-- bookings, downlink, payments. Dead letters and counters for the operator.
-- Version 5 added cluster mode, which is PostgreSQL's only: nothing changed here.
PRAGMA user_version = 5;

CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

-- One row per device that ever spoke, or was addressed.
CREATE TABLE IF NOT EXISTS devices (
  id            TEXT PRIMARY KEY,
  role          TEXT,
  boot          INTEGER NOT NULL DEFAULT 0,
  up_seq        INTEGER NOT NULL DEFAULT 0, -- highest contiguous uplink seq committed (the ack watermark)
  down_seq      INTEGER NOT NULL DEFAULT 0, -- highest downlink seq issued
  down_applied  INTEGER NOT NULL DEFAULT 0, -- highest downlink seq the device acked
  online        INTEGER NOT NULL DEFAULT 0,
  last_seen_ms  INTEGER,
  clock_skew_ms INTEGER                       -- device time minus hub time at last event
);

-- Append-only log of every accepted uplink event and operator command.
-- Operator commands have device 'op' and seq = their own counter.
CREATE TABLE IF NOT EXISTS events (
  id             INTEGER PRIMARY KEY,
  device         TEXT NOT NULL,
  seq            INTEGER NOT NULL,
  type           TEXT NOT NULL,
  corr           TEXT,
  device_time_ms INTEGER,
  received_ms    INTEGER NOT NULL,
  clock_flag     TEXT,                        -- 'implausible' when device time is far off
  payload        BLOB NOT NULL,
  UNIQUE (device, seq)
);

-- Messages that were rejected, kept for the operator.
CREATE TABLE IF NOT EXISTS dead_letters (
  id          INTEGER PRIMARY KEY,
  received_ms INTEGER NOT NULL,
  topic       TEXT NOT NULL,
  device      TEXT,
  error       TEXT NOT NULL,                  -- fl_errname token: dup_key, topic, ...
  detail      TEXT NOT NULL,
  payload     BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS vehicles (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL DEFAULT '',
  station     TEXT NOT NULL DEFAULT '',
  rate_cents  INTEGER NOT NULL,               -- per hour
  state       TEXT NOT NULL,                  -- AVAILABLE RESERVED RENTED REPAIR_REQUESTED IN_REPAIR RETIRED
  rental      TEXT,                           -- current rental
  repair_due  INTEGER NOT NULL DEFAULT 0,     -- a fault came in while rented: repair at return
  energy_pct  INTEGER,
  lat         REAL,
  lon         REAL,
  odometer_m  INTEGER,
  updated_ms  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS rentals (
  id             TEXT PRIMARY KEY,            -- chosen by the kiosk (envelope corr)
  vehicle        TEXT NOT NULL,
  customer       TEXT NOT NULL,
  kiosk          TEXT NOT NULL,               -- device that asked; decisions go there
  reply_topic    TEXT NOT NULL,
  state          TEXT NOT NULL,               -- REQUESTED PAYMENT_PENDING ACTIVE RETURNED COMPLETED REJECTED CANCEL_REQUESTED CANCELLED
  minutes        INTEGER NOT NULL,
  amount_cents   INTEGER NOT NULL DEFAULT 0,
  charged_cents  INTEGER NOT NULL DEFAULT 0,
  refunded_cents INTEGER NOT NULL DEFAULT 0,
  fee_cents      INTEGER NOT NULL DEFAULT 0,
  reason         TEXT,
  started        INTEGER NOT NULL DEFAULT 0,  -- vehicle unlocked/driven: cancel no longer allowed
  created_ms     INTEGER NOT NULL,
  due_ms         INTEGER,
  ended_ms       INTEGER,
  updated_ms     INTEGER NOT NULL
);
-- Two customers can never hold the same vehicle: enforced by the store itself.
-- A rental holds its vehicle while it pays and while it is ACTIVE; a cancel
-- or a return frees the vehicle at once (the refund or the late fee is
-- settled afterwards). Schema version 2 replaced rentals_one_open_per_vehicle,
-- which also counted CANCEL_REQUESTED and RETURNED.
DROP INDEX IF EXISTS rentals_one_open_per_vehicle;
CREATE UNIQUE INDEX IF NOT EXISTS rentals_vehicle_held ON rentals(vehicle)
  WHERE state IN ('PAYMENT_PENDING', 'ACTIVE');
CREATE INDEX IF NOT EXISTS rentals_customer ON rentals(customer);

-- The saga's steps: each is recorded before it runs, so a restart resumes it.
CREATE TABLE IF NOT EXISTS saga_steps (
  rental      TEXT NOT NULL,
  step        TEXT NOT NULL,                  -- charge, refund, fee
  status      TEXT NOT NULL,                  -- calling, done, declined, failed
  idem_key    TEXT NOT NULL UNIQUE,           -- sent to the payment provider
  amount_cents INTEGER NOT NULL,
  attempts    INTEGER NOT NULL DEFAULT 0,
  provider_ref TEXT,
  last_error  TEXT,
  next_try_ms INTEGER,
  updated_ms  INTEGER NOT NULL,
  PRIMARY KEY (rental, step)
);

CREATE TABLE IF NOT EXISTS repairs (
  id          TEXT PRIMARY KEY,
  vehicle     TEXT NOT NULL,
  state       TEXT NOT NULL,                  -- REQUESTED IN_PROGRESS COMPLETED
  dtcs        TEXT NOT NULL,
  severity    TEXT NOT NULL,
  text        TEXT,
  opened_ms   INTEGER NOT NULL,
  updated_ms  INTEGER NOT NULL
);

-- Bookings ahead of time (hub/booking.c): PAYMENT_PENDING (deposit being
-- charged) -> HELD -> USED (its customer rented the vehicle in the window) or
-- CANCELLED (deposit refunded); REJECTED when refused or declined.
CREATE TABLE IF NOT EXISTS bookings (
  id             TEXT PRIMARY KEY,            -- chosen by the kiosk (envelope corr)
  vehicle        TEXT NOT NULL,
  customer       TEXT NOT NULL,
  kiosk          TEXT NOT NULL,               -- device that asked last; decisions go there
  reply_topic    TEXT NOT NULL,
  state          TEXT NOT NULL,               -- PAYMENT_PENDING HELD USED CANCELLED REJECTED EXPIRED
  start_ms       INTEGER NOT NULL,
  end_ms         INTEGER NOT NULL,
  deposit_cents  INTEGER NOT NULL DEFAULT 0,
  charged_cents  INTEGER NOT NULL DEFAULT 0,
  refunded_cents INTEGER NOT NULL DEFAULT 0,
  rental         TEXT,                        -- the rental that used it
  reason         TEXT,
  created_ms     INTEGER NOT NULL,
  updated_ms     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS bookings_vehicle ON bookings(vehicle, start_ms);
CREATE INDEX IF NOT EXISTS bookings_customer ON bookings(customer);
-- Two customers can never hold the same vehicle for the same time: a booking
-- that holds its vehicle (PAYMENT_PENDING, HELD) may not overlap another one
-- that holds it and has not ended by the writer's clock (updated_ms). Every
-- write of a booking is an upsert, so this insert trigger sees them all.
CREATE TRIGGER IF NOT EXISTS bookings_no_overlap BEFORE INSERT ON bookings
  WHEN NEW.state IN ('PAYMENT_PENDING', 'HELD')
BEGIN
  SELECT RAISE(ABORT, 'booking overlaps another booking of the vehicle')
  WHERE EXISTS (SELECT 1 FROM bookings b WHERE b.vehicle = NEW.vehicle AND b.id <> NEW.id
                AND b.state IN ('PAYMENT_PENDING', 'HELD') AND b.start_ms < NEW.end_ms
                AND b.end_ms > NEW.start_ms AND b.end_ms > NEW.updated_ms);
END;

-- Alerts raised once per thing (schema version 3): an overdue rental is
-- announced once, not at every tick.
CREATE TABLE IF NOT EXISTS alerts_raised (
  kind  TEXT NOT NULL,                        -- rental_overdue, ...
  id    TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rentals_due ON rentals(state, due_ms);
CREATE INDEX IF NOT EXISTS vehicles_station ON vehicles(station);
CREATE INDEX IF NOT EXISTS bookings_state_start ON bookings(state, start_ms);

-- The hub's outbox to subscribers (schema version 4): retained state and
-- notifications written in the transaction of the change, deleted once the
-- broker has them; what a crash left is published again, the same bytes.
CREATE TABLE IF NOT EXISTS outbox (
  seq        INTEGER PRIMARY KEY,
  topic      TEXT NOT NULL,
  payload    BLOB NOT NULL,
  retain     INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  expiry_s   INTEGER NOT NULL DEFAULT 0         -- MQTT 5 message expiry (ended things' state)
);
CREATE INDEX IF NOT EXISTS rentals_customer_state ON rentals(customer, state);

-- Hub -> device messages (decisions, commands) until the device acks them.
CREATE TABLE IF NOT EXISTS downlink (
  device      TEXT NOT NULL,
  seq         INTEGER NOT NULL,
  type        TEXT NOT NULL,
  topic       TEXT NOT NULL,
  corr        BLOB,
  expires_ms  INTEGER,
  payload     BLOB NOT NULL,
  created_ms  INTEGER NOT NULL,
  PRIMARY KEY (device, seq)
) WITHOUT ROWID;

-- Named counters for the operator (rejected messages by reason, ...).
CREATE TABLE IF NOT EXISTS counters (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);

-- ---- Read side -----------------------------------------------------------
-- Append-only log of every change of a vehicle, rental, repair or saga step,
-- written in the transaction of the change, with the thing's state after it
-- (JSON taken from its write-side row). The read models below are projections
-- of this log: updated live from each new row, and rebuilt from the whole log
-- by `fleetctl rebuild` (hub/readmodel.c has the projections).
CREATE TABLE IF NOT EXISTS changes (
  seq        INTEGER PRIMARY KEY,
  at_ms      INTEGER NOT NULL,
  kind       TEXT NOT NULL,                   -- vehicle, rental, repair, saga
  id         TEXT NOT NULL,                   -- saga: rental:step
  from_state TEXT,
  to_state   TEXT,
  snapshot   TEXT NOT NULL                    -- JSON
);
CREATE INDEX IF NOT EXISTS changes_by_thing ON changes(kind, id, seq);

CREATE TABLE IF NOT EXISTS rm_fleet (
  id TEXT PRIMARY KEY, name TEXT, station TEXT, rate_cents INTEGER, state TEXT, rental TEXT,
  repair_due INTEGER, energy_pct INTEGER, lat REAL, lon REAL, odometer_m INTEGER,
  updated_ms INTEGER
);
CREATE TABLE IF NOT EXISTS rm_rentals (
  id TEXT PRIMARY KEY, vehicle TEXT, customer TEXT, kiosk TEXT, state TEXT, minutes INTEGER,
  amount_cents INTEGER, charged_cents INTEGER, refunded_cents INTEGER, fee_cents INTEGER,
  reason TEXT, started INTEGER, created_ms INTEGER, due_ms INTEGER, ended_ms INTEGER,
  updated_ms INTEGER
);
CREATE INDEX IF NOT EXISTS rm_rentals_customer ON rm_rentals(customer);
CREATE INDEX IF NOT EXISTS rm_rentals_created ON rm_rentals(created_ms);
CREATE TABLE IF NOT EXISTS rm_repairs (
  id TEXT PRIMARY KEY, vehicle TEXT, state TEXT, dtcs TEXT, severity TEXT, text TEXT,
  opened_ms INTEGER, updated_ms INTEGER
);
CREATE TABLE IF NOT EXISTS rm_sagas (
  rental TEXT, step TEXT, status TEXT, amount_cents INTEGER, attempts INTEGER,
  provider_ref TEXT, last_error TEXT, next_try_ms INTEGER, updated_ms INTEGER,
  PRIMARY KEY (rental, step)
);
-- Bookings, as rentals (schema version 4).
CREATE TABLE IF NOT EXISTS rm_bookings (
  id TEXT PRIMARY KEY, vehicle TEXT, customer TEXT, kiosk TEXT, state TEXT, start_ms INTEGER,
  end_ms INTEGER, deposit_cents INTEGER, charged_cents INTEGER, refunded_cents INTEGER, rental TEXT, reason TEXT,
  created_ms INTEGER, updated_ms INTEGER
);
CREATE INDEX IF NOT EXISTS rm_bookings_customer ON rm_bookings(customer);
CREATE INDEX IF NOT EXISTS rm_bookings_vehicle ON rm_bookings(vehicle, start_ms);

-- Stations: vehicles at each station by what they can do now, and those with
-- a HELD booking not over (the counts of fleet/v1/state/station/{id}).
CREATE VIEW IF NOT EXISTS rm_stations AS
  SELECT f.station AS station,
         SUM(f.state = 'AVAILABLE') AS available,
         SUM(f.state IN ('RESERVED', 'RENTED')) AS rented,
         SUM(f.state IN ('REPAIR_REQUESTED', 'IN_REPAIR')) AS in_repair,
         SUM(EXISTS (SELECT 1 FROM rm_bookings b WHERE b.vehicle = f.id AND b.state = 'HELD'
                     AND b.end_ms > CAST(strftime('%s', 'now') AS INTEGER) * 1000)) AS booked,
         COUNT(*) AS vehicles
  FROM rm_fleet f WHERE f.station <> '' AND f.state <> 'RETIRED' GROUP BY f.station;

-- A customer's own view: open rentals, what was charged and refunded, fees owed
-- (a late fee whose step is not done).
CREATE VIEW IF NOT EXISTS rm_customers AS
  SELECT r.customer AS customer,
         SUM(r.state IN ('PAYMENT_PENDING', 'ACTIVE', 'CANCEL_REQUESTED', 'RETURNED')) AS open_rentals,
         COUNT(*) AS rentals,
         SUM(r.charged_cents) AS charged_cents,
         SUM(r.refunded_cents) AS refunded_cents,
         SUM(CASE WHEN r.fee_cents > 0 AND NOT EXISTS (
               SELECT 1 FROM rm_sagas s WHERE s.rental = r.id AND s.step = 'fee' AND s.status = 'done')
             THEN r.fee_cents ELSE 0 END) AS fees_owed_cents
  FROM rm_rentals r GROUP BY r.customer;
