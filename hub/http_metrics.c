/* GET /metrics: the engine's figures (hub_engine_health), the store's
 * (http_query_metrics) and the latency histograms (metrics.h), written in the
 * Prometheus text format. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/error.h"
#include "http_internal.h"
#include "metrics.h"


/* Writes value as a Prometheus label value (backslash, quote, newline escaped). */
static void label_value(FILE *f, const char *value) {
  for (const char *p = value; *p; p++) {
    if (*p == '\\' || *p == '"')
      fprintf(f, "\\%c", *p);
    else if (*p == '\n')
      fputs("\\n", f);
    else
      fputc(*p, f);
  }
}

static void metric_head(FILE *f, const char *name, const char *type, const char *help) {
  fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric(FILE *f, const char *name, const char *type, const char *help, double v) {
  metric_head(f, name, type, help);
  fprintf(f, "%s %.17g\n", name, v);
}

/* One sample per name in names (a NULL-terminated list), the value from the
 * object group (0 when it lacks the name), then every other member of group. */
static void metric_by(FILE *f, const char *name, const char *type, const char *help,
                      const char *label, const char *const *names, const cJSON *group) {
  metric_head(f, name, type, help);
  for (const char *const *n = names; n && *n; n++) {
    const cJSON *v = cJSON_GetObjectItem(group, *n);
    fprintf(f, "%s{%s=\"", name, label);
    label_value(f, *n);
    fprintf(f, "\"} %.17g\n", cJSON_IsNumber(v) ? v->valuedouble : 0.0);
  }
  const cJSON *m;
  cJSON_ArrayForEach(m, group) {
    bool listed = false;
    for (const char *const *n = names; n && *n && !listed; n++)
      listed = strcmp(*n, m->string) == 0;
    if (listed || !cJSON_IsNumber(m))
      continue;
    fprintf(f, "%s{%s=\"", name, label);
    label_value(f, m->string);
    fprintf(f, "\"} %.17g\n", m->valuedouble);
  }
}

static double figure(const cJSON *store, const char *name) {
  const cJSON *v = cJSON_GetObjectItem(store, name);
  return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

/* GET /metrics: the engine's figures, the store's, and the latency
 * histograms, in the Prometheus text format (version 0.0.4). */
unsigned http__get_metrics(http_request *r, const void *arg, cJSON **out) {
  static const char *const vehicle_states[] = {"AVAILABLE", "RESERVED",  "RENTED", "REPAIR_REQUESTED",
                                               "IN_REPAIR", "RETIRED",   NULL};
  static const char *const step_states[] = {"calling", "retry", "failed", NULL};
  static const char *const breaker_states[] = {"closed", "open", "half_open", NULL};
  hub_health h;
  memset(&h, 0, sizeof h);
  hub_engine_health(r->server->engine, &h);
  http_read db = {0};
  cJSON *store = http_read_open(&r->server->reader, &db) ? http_query_metrics(&db) : NULL;
  http_read_close(&db);
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) {
    cJSON_Delete(store);
    return http__fail(out, MHD_HTTP_INTERNAL_SERVER_ERROR, FL_ERR_NOMEM, "out of memory");
  }
  metric(f, "fleet_hub_ready", "gauge", "1 when the store is open, recovery done and MQTT connected.",
         h.ready);
  metric(f, "fleet_hub_mqtt_connected", "gauge", "1 while the hub is connected to the broker.",
         h.mqtt_connected);
  metric(f, "fleet_hub_uptime_seconds", "gauge", "Seconds since the engine started.",
         (double)h.uptime_s);
  metric(f, "fleet_hub_events_applied_total", "counter",
         "Uplink events accepted and applied since the hub started.", (double)h.events_applied);
  metric(f, "fleet_hub_duplicates_total", "counter",
         "Re-delivered uplink events acknowledged again since the hub started.",
         (double)h.duplicates);
  metric(f, "fleet_hub_batches_total", "counter",
         "Engine batches (one store transaction each) since the hub started.", (double)h.batches);
  metric(f, "fleet_hub_shed_total", "counter",
         "Messages dropped because the engine queue was full (devices resend them).",
         (double)h.shed);
  metric(f, "fleet_hub_queue_depth", "gauge", "Inputs waiting in the engine's queue.",
         (double)h.queue_depth);
  metric(f, "fleet_hub_payments_pending", "gauge", "Payment calls queued or in progress.",
         (double)h.payments_pending);
  cJSON *breaker = cJSON_CreateObject();
  cJSON_AddNumberToObject(breaker, h.breaker ? h.breaker : "closed", 1);
  metric_by(f, "fleet_hub_breaker_state", "gauge",
            "The payment circuit breaker: 1 for its current state.", "state", breaker_states,
            breaker);
  cJSON_Delete(breaker);
  hub_histogram_write(&hub_metrics_payment_call, f);
  hub_histogram_write(&hub_metrics_batch, f);
  metric(f, "fleet_hub_batch_inputs_total", "counter",
         "Inputs applied in engine batches since the hub started (divided by "
         "fleet_hub_batches_total: the mean batch size).",
         (double)atomic_load(&hub_metrics_batch_inputs));
  metric(f, "fleet_hub_store_readable", "gauge",
         "1 when the figures below could be read from the store.", store != NULL);
  if (store) {
    metric_by(f, "fleet_hub_rejected_total", "counter",
              "Messages rejected (dead-lettered) by reason, over the store's life.", "reason",
              NULL, cJSON_GetObjectItem(store, "rejected"));
    metric_by(f, "fleet_hub_vehicles", "gauge", "Vehicles per state.", "state", vehicle_states,
              cJSON_GetObjectItem(store, "vehicles"));
    metric_by(f, "fleet_hub_saga_steps", "gauge",
              "Saga steps not finished, per status (calling, retry: waiting; failed).", "status",
              step_states, cJSON_GetObjectItem(store, "sagas"));
    const cJSON *sagas = cJSON_GetObjectItem(store, "sagas");
    metric(f, "fleet_hub_sagas_waiting", "gauge",
           "Saga steps waiting for the payment provider (calling or retry).",
           figure(sagas, "calling") + figure(sagas, "retry"));
    metric(f, "fleet_hub_devices_online", "gauge", "Devices whose presence is online.",
           figure(store, "devices_online"));
    metric(f, "fleet_hub_devices", "gauge", "Devices the hub knows.", figure(store, "devices"));
    metric(f, "fleet_hub_downlink_queued", "gauge",
           "Publishes to devices (decisions, commands) kept until the device acknowledges them.",
           figure(store, "downlink_queued"));
  }
  cJSON_Delete(store);
  if (fclose(f) != 0 || !text) {
    free(text);
    return http__fail(out, MHD_HTTP_INTERNAL_SERVER_ERROR, FL_ERR_NOMEM, "out of memory");
  }
  r->text = text;
  r->text_type = "text/plain; version=0.0.4; charset=utf-8";
  return MHD_HTTP_OK;
}
