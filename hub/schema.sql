-- The hub's SQLite schema (hub.db). Compiled into fleet-hub; this file is the
-- readable source and is embedded by hub/CMakeLists.txt.
-- Write side: devices, events, vehicles, rentals, saga_steps, repairs,
-- bookings, downlink, payments. Dead letters and counters for the operator.
PRAGMA user_version = 1;

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
CREATE UNIQUE INDEX IF NOT EXISTS rentals_one_open_per_vehicle ON rentals(vehicle)
  WHERE state IN ('REQUESTED', 'PAYMENT_PENDING', 'ACTIVE', 'CANCEL_REQUESTED', 'RETURNED');
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

CREATE TABLE IF NOT EXISTS bookings (
  id          TEXT PRIMARY KEY,
  vehicle     TEXT NOT NULL,
  customer    TEXT NOT NULL,
  kiosk       TEXT NOT NULL,
  state       TEXT NOT NULL,                  -- HELD CANCELLED
  start_ms    INTEGER NOT NULL,
  end_ms      INTEGER NOT NULL,
  deposit_cents INTEGER NOT NULL DEFAULT 0,
  created_ms  INTEGER NOT NULL
);

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
