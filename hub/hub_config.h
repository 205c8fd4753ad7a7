/* The hub's settings: an INI file plus FLEET_HUB_<SECTION>_<KEY> overrides
 * (docs/operations.md lists every key). */
#ifndef HUB_CONFIG_H
#define HUB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fleet/db.h"

#define HUB_FEE_TIERS 4

typedef struct hub_config {
  char state_dir[256];      /* [hub] state_dir: hub.db (and payments-sim.db) live here */
  char mqtt_uri[256];       /* [mqtt] uri */
  char mqtt_client_id[65];  /* [mqtt] client_id */
  char mqtt_username[65];   /* [mqtt] username (optional) */
  char mqtt_password[129];  /* [mqtt] password (optional) */
  char mqtt_ca_file[256];   /* [mqtt] ca_file, cert_file, key_file: TLS (ssl:// uri) */
  char mqtt_cert_file[256];
  char mqtt_key_file[256];
  int mqtt_max_inflight;    /* [mqtt] max_inflight */
  int ended_state_ttl_s;    /* [mqtt] ended_state_ttl_s: retained state of ended things expires (0: never) */
  bool json_mirror;         /* [mqtt] json_mirror: state and notices also as JSON on fleet/v1/json/... */
  int state_interval_ms;    /* [mqtt] state_interval_ms: one retained state per thing per interval, the newest wins (0: every one) */
  int ack_hold_ms;          /* [mqtt] ack_hold_ms: a request's ack waits this long for its decision to carry it (rev 1.2) */
  bool rental_states;       /* [mqtt] rental_states: also the retained fleet/v1/state/rental/{id} (for 1.1 dashboards) */
  char notify_mode[8];      /* [mqtt] notify: batch | each | both */
  char http_bind[64];       /* [http] bind: address of the operator API */
  int http_port;            /* [http] port; 0 disables the API */
  char http_tokens_file[256]; /* [http] tokens_file: "ROLE SHA256 NAME" lines (hub/token.h); "": open API */
  bool http_metrics_open;   /* [http] metrics_open: GET /metrics without a token (default true) */
  char http_cert_file[256]; /* [http] cert_file, key_file: PEM; both set: HTTPS */
  char http_key_file[256];
  char store_backend[16];   /* [store] backend: sqlite | postgresql */
  char store_url[512];      /* [store] url: PostgreSQL connection URL ("": the PG* environment) */
  fl_db_sync durability;    /* [store] durability: off | normal | full (sqlite) */
  int batch_max;            /* [engine] batch_max: inputs per transaction */
  int queue_max;            /* [engine] queue_max: bounded input queue */
  int linger_us;            /* [engine] linger_us: a small batch waits this long for more input */
  int telemetry_publish_ms; /* [engine] telemetry_publish_ms: a vehicle's readings published at most this often */
  int64_t minute_ms;        /* [engine] minute_ms: length of a rental minute (60000; less to simulate time) */
  int command_ttl_s;        /* [engine] command_ttl_s: expiry of unlock/lock commands */
  char payment_provider[16]; /* [payment] provider: sim | http */
  char payment_url[256];    /* [payment] url (http provider) */
  int payment_workers;      /* [payment] workers */
  int payment_timeout_ms;   /* [payment] timeout_ms per call */
  int payment_max_attempts; /* [payment] max_attempts before compensating */
  int payment_queue_max;    /* [payment] queue_max: calls waiting for a worker before new
                               rentals and bookings are refused (refunds, fees: never) */
  int sim_latency_ms;       /* [payment.sim] latency_ms */
  double sim_decline_rate;  /* [payment.sim] decline_rate 0..1 */
  double sim_failure_rate;  /* [payment.sim] failure_rate 0..1 */
  int breaker_failures;     /* [breaker] failures: consecutive failures that open it */
  int breaker_open_s;       /* [breaker] open_s: how long it stays open */
  int breaker_slow_ms;      /* [breaker] slow_ms: a call taking this long is slow (0: never) */
  double breaker_slow_share; /* [breaker] slow_share: slow share of the window that opens it */
  int breaker_window;       /* [breaker] window: the last N calls looked at for slowness */
  int fee_tier_hours[HUB_FEE_TIERS]; /* [fees] tierN_hours: late by up to N hours... */
  int64_t fee_tier_cents[HUB_FEE_TIERS]; /* [fees] tierN_cents: ...costs this much */
  int n_fee_tiers;
  int64_t booking_deposit_cents; /* [booking] deposit_cents: charged when a booking is made */
  int booking_grace_s;      /* [booking] grace_s: a HELD booking not used this long after its start expires */
  int booking_no_show_refund; /* [booking] no_show = keep | refund: the deposit of an expired booking */
  bool cluster_enabled;     /* [cluster] enabled: several hubs share the fleet (needs postgresql) */
  int cluster_partitions;   /* [cluster] partitions: fixed at the fleet's first start */
  char cluster_hub_id[65];  /* [cluster] hub_id: this hub's name among them (default: [mqtt] client_id) */
  int cluster_lease_ms;     /* [cluster] lease_ms: a partition's lease; heartbeat every lease/6 */
  int cluster_settle_ms;    /* [cluster] settle_ms: live hubs unchanged this long before rebalancing */
  int cluster_claim_ms;     /* [cluster] claim_ms: a payment call's claim; a step still calling
                               after it is called again by the leader (same idempotency key) */
} hub_config;

/* Loads path (NULL: defaults and environment only) into *cfg. Returns FL_OK,
 * or FL_ERR_CONFIG with one sentence in err naming the key and the problem:
 * a bad value, or a key, section or FLEET_HUB_* variable the hub does not
 * know. */
int hub_config_load(const char *path, hub_config *cfg, char *err, size_t errcap);

/* hub_config_load(), and when it succeeds and out is not NULL, prints every
 * effective setting to out, one "section.key = value" a line (passwords
 * masked): fleet-hub --check-config. */
int hub_config_check(const char *path, hub_config *cfg, FILE *out, char *err, size_t errcap);

#endif
