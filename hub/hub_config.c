#include "hub_config.h"

#include <stdio.h>
#include <string.h>

#include "fleet/config.h"
#include "fleet/error.h"

static void copy_str(char *dst, size_t cap, const char *src) { snprintf(dst, cap, "%s", src); }

/* Reads an int key into *out within [min, max]; returns FL_OK or FL_ERR_CONFIG. */
static int get_int(fl_config *c, const char *sec, const char *key, int64_t def, int64_t min,
                   int64_t max, int *out) {
  int64_t v;
  int rc = fl_config_int(c, sec, key, def, min, max, &v);
  if (rc == FL_OK) *out = (int)v;
  return rc;
}

int hub_config_load(const char *path, hub_config *cfg, char *err, size_t errcap) {
  return hub_config_check(path, cfg, NULL, err, errcap);
}

int hub_config_check(const char *path, hub_config *cfg, FILE *out, char *err, size_t errcap) {
  fl_config *c = NULL;
  int rc = fl_config_load(path, "FLEET_HUB", &c, err, errcap);
  if (rc != FL_OK) return rc;
  memset(cfg, 0, sizeof *cfg);
  copy_str(cfg->state_dir, sizeof cfg->state_dir, fl_config_str(c, "hub", "state_dir", "./hub-state"));
  copy_str(cfg->mqtt_uri, sizeof cfg->mqtt_uri, fl_config_str(c, "mqtt", "uri", "tcp://127.0.0.1:1883"));
  copy_str(cfg->mqtt_client_id, sizeof cfg->mqtt_client_id, fl_config_str(c, "mqtt", "client_id", "fleet-hub"));
  copy_str(cfg->mqtt_username, sizeof cfg->mqtt_username, fl_config_str(c, "mqtt", "username", ""));
  copy_str(cfg->mqtt_password, sizeof cfg->mqtt_password, fl_config_str(c, "mqtt", "password", ""));
  copy_str(cfg->mqtt_ca_file, sizeof cfg->mqtt_ca_file, fl_config_str(c, "mqtt", "ca_file", ""));
  copy_str(cfg->mqtt_cert_file, sizeof cfg->mqtt_cert_file, fl_config_str(c, "mqtt", "cert_file", ""));
  copy_str(cfg->mqtt_key_file, sizeof cfg->mqtt_key_file, fl_config_str(c, "mqtt", "key_file", ""));
  copy_str(cfg->http_bind, sizeof cfg->http_bind, fl_config_str(c, "http", "bind", "127.0.0.1"));
  copy_str(cfg->http_tokens_file, sizeof cfg->http_tokens_file, fl_config_str(c, "http", "tokens_file", ""));
  copy_str(cfg->http_cert_file, sizeof cfg->http_cert_file, fl_config_str(c, "http", "cert_file", ""));
  copy_str(cfg->http_key_file, sizeof cfg->http_key_file, fl_config_str(c, "http", "key_file", ""));
  copy_str(cfg->payment_provider, sizeof cfg->payment_provider, fl_config_str(c, "payment", "provider", "sim"));
  copy_str(cfg->payment_url, sizeof cfg->payment_url, fl_config_str(c, "payment", "url", ""));
  copy_str(cfg->store_backend, sizeof cfg->store_backend, fl_config_str(c, "store", "backend", "sqlite"));
  copy_str(cfg->store_url, sizeof cfg->store_url, fl_config_str(c, "store", "url", ""));
  const char *notify = fl_config_str(c, "mqtt", "notify", "batch");
  if (strcmp(notify, "batch") != 0 && strcmp(notify, "each") != 0 && strcmp(notify, "both") != 0) {
    snprintf(err, errcap, "config [mqtt] notify = '%s': must be batch, each or both", notify);
    fl_config_free(c);
    return FL_ERR_CONFIG;
  }
  copy_str(cfg->notify_mode, sizeof cfg->notify_mode, notify);
  const char *dur = fl_config_str(c, "store", "durability", "normal");
  int sync = fl_db_sync_from_name(dur);
  if (sync < 0) {
    snprintf(err, errcap, "config [store] durability = '%s': must be off, normal or full", dur);
    fl_config_free(c);
    return FL_ERR_CONFIG;
  }
  cfg->durability = (fl_db_sync)sync;
  rc = FL_OK;
  rc |= get_int(c, "mqtt", "max_inflight", 256, 1, 65535, &cfg->mqtt_max_inflight);
  rc |= fl_config_bool(c, "mqtt", "json_mirror", false, &cfg->json_mirror);
  rc |= get_int(c, "mqtt", "ended_state_ttl_s", 86400, 0, 86400 * 365, &cfg->ended_state_ttl_s);
  rc |= get_int(c, "mqtt", "state_interval_ms", 1000, 0, 3600000, &cfg->state_interval_ms);
  rc |= get_int(c, "mqtt", "ack_hold_ms", 250, 0, 10000, &cfg->ack_hold_ms);
  rc |= fl_config_bool(c, "mqtt", "rental_states", false, &cfg->rental_states);
  rc |= get_int(c, "http", "port", 8080, 0, 65535, &cfg->http_port);
  rc |= fl_config_bool(c, "http", "metrics_open", true, &cfg->http_metrics_open);
  rc |= get_int(c, "engine", "batch_max", 512, 1, 100000, &cfg->batch_max);
  rc |= get_int(c, "engine", "queue_max", 20000, 16, 10000000, &cfg->queue_max);
  rc |= get_int(c, "engine", "linger_us", 500, 0, 100000, &cfg->linger_us);
  rc |= get_int(c, "engine", "telemetry_publish_ms", 1000, 0, 3600000, &cfg->telemetry_publish_ms);
  rc |= fl_config_int(c, "engine", "minute_ms", 60000, 1, 60000, &cfg->minute_ms);
  rc |= get_int(c, "engine", "command_ttl_s", 300, 1, 86400 * 30, &cfg->command_ttl_s);
  rc |= get_int(c, "payment", "workers", 4, 1, 256, &cfg->payment_workers);
  rc |= get_int(c, "payment", "timeout_ms", 5000, 1, 600000, &cfg->payment_timeout_ms);
  rc |= get_int(c, "payment", "max_attempts", 5, 1, 1000, &cfg->payment_max_attempts);
  rc |= get_int(c, "payment", "queue_max", 1000, 1, 1000000, &cfg->payment_queue_max);
  rc |= get_int(c, "payment.sim", "latency_ms", 20, 0, 600000, &cfg->sim_latency_ms);
  rc |= fl_config_double(c, "payment.sim", "decline_rate", 0.0, 0.0, 1.0, &cfg->sim_decline_rate);
  rc |= fl_config_double(c, "payment.sim", "failure_rate", 0.0, 0.0, 1.0, &cfg->sim_failure_rate);
  rc |= get_int(c, "breaker", "failures", 5, 1, 100000, &cfg->breaker_failures);
  rc |= get_int(c, "breaker", "open_s", 10, 1, 86400, &cfg->breaker_open_s);
  rc |= get_int(c, "breaker", "slow_ms", 3000, 0, 600000, &cfg->breaker_slow_ms);
  rc |= fl_config_double(c, "breaker", "slow_share", 0.5, 0.01, 1.0, &cfg->breaker_slow_share);
  rc |= get_int(c, "breaker", "window", 20, 1, 1000, &cfg->breaker_window);
  rc |= fl_config_int(c, "booking", "deposit_cents", 2000, 0, INT64_C(1) << 40,
                      &cfg->booking_deposit_cents);
  rc |= get_int(c, "booking", "grace_s", 900, 0, 86400 * 7, &cfg->booking_grace_s);
  /* [cluster]: several hubs over one PostgreSQL (hub/cluster.h) */
  rc |= fl_config_bool(c, "cluster", "enabled", false, &cfg->cluster_enabled);
  rc |= get_int(c, "cluster", "partitions", 256, 1, 4096, &cfg->cluster_partitions);
  rc |= get_int(c, "cluster", "lease_ms", 3000, 300, 600000, &cfg->cluster_lease_ms);
  rc |= get_int(c, "cluster", "settle_ms", 1000, 0, 600000, &cfg->cluster_settle_ms);
  rc |= get_int(c, "cluster", "claim_ms", 30000, 1000, 86400000, &cfg->cluster_claim_ms);
  copy_str(cfg->cluster_hub_id, sizeof cfg->cluster_hub_id,
           fl_config_str(c, "cluster", "hub_id", cfg->mqtt_client_id));
  /* Late-fee tiers: late by up to tierN_hours costs tierN_cents; beyond the
   * last tier, the last tier's price applies. Defaults: 1 day, 7 days, beyond. */
  static const int def_hours[HUB_FEE_TIERS] = {24, 168, 1000000, 0};
  static const int64_t def_cents[HUB_FEE_TIERS] = {2000, 10000, 50000, 0};
  for (int i = 0; i < HUB_FEE_TIERS && rc == FL_OK; i++) {
    char hk[32], ck[32];
    snprintf(hk, sizeof hk, "tier%d_hours", i + 1);
    snprintf(ck, sizeof ck, "tier%d_cents", i + 1);
    int64_t cents;
    rc |= get_int(c, "fees", hk, def_hours[i], 0, 1000000, &cfg->fee_tier_hours[i]);
    rc |= fl_config_int(c, "fees", ck, def_cents[i], 0, INT64_C(1) << 40, &cents);
    cfg->fee_tier_cents[i] = cents;
    if (rc == FL_OK && cfg->fee_tier_hours[i] > 0) cfg->n_fee_tiers = i + 1;
  }
  if (rc != FL_OK) {
    snprintf(err, errcap, "%s", fl_config_error(c) ? fl_config_error(c) : "bad configuration");
    fl_config_free(c);
    return FL_ERR_CONFIG;
  }
  const char *no_show = fl_config_str(c, "booking", "no_show", "keep");
  if (strcmp(no_show, "keep") != 0 && strcmp(no_show, "refund") != 0) {
    snprintf(err, errcap, "config [booking] no_show = '%s': must be keep or refund", no_show);
    fl_config_free(c);
    return FL_ERR_CONFIG;
  }
  cfg->booking_no_show_refund = strcmp(no_show, "refund") == 0;
  if (strcmp(cfg->store_backend, "sqlite") != 0 && strcmp(cfg->store_backend, "postgresql") != 0) {
    snprintf(err, errcap, "config [store] backend = '%s': must be sqlite or postgresql", cfg->store_backend);
    fl_config_free(c);
    return FL_ERR_CONFIG;
  }
  if (cfg->cluster_enabled && strcmp(cfg->store_backend, "postgresql") != 0) {
    snprintf(err, errcap, "config [cluster] enabled = true: needs [store] backend = postgresql "
             "(the hubs share the fleet through it), not %s", cfg->store_backend);
    fl_config_free(c);
    return FL_ERR_CONFIG;
  }
  if (cfg->cluster_enabled && (!cfg->cluster_hub_id[0] || strpbrk(cfg->cluster_hub_id, "/+# "))) {
    snprintf(err, errcap, "config [cluster] hub_id = '%s': must be a non-empty name without "
             "'/', '+', '#' or spaces", cfg->cluster_hub_id);
    fl_config_free(c);
    return FL_ERR_CONFIG;
  }
  if (!cfg->http_cert_file[0] != !cfg->http_key_file[0]) {
    snprintf(err, errcap, "config [http] cert_file and key_file: set both (HTTPS) or neither");
    fl_config_free(c);
    return FL_ERR_CONFIG;
  }
  if (strcmp(cfg->payment_provider, "sim") != 0 && strcmp(cfg->payment_provider, "http") != 0) {
    snprintf(err, errcap, "config [payment] provider = '%s': must be sim or http", cfg->payment_provider);
    fl_config_free(c);
    return FL_ERR_CONFIG;
  }
  if (strcmp(cfg->payment_provider, "http") == 0 && !cfg->payment_url[0]) {
    snprintf(err, errcap, "config [payment] url: required when provider = http");
    fl_config_free(c);
    return FL_ERR_CONFIG;
  }
  /* every key is read by now: anything else in the file is a mistake */
  rc = fl_config_unknown(c, err, errcap);
  if (rc == FL_OK && out) fl_config_print(c, out);
  fl_config_free(c);
  return rc;
}
