/* GET /v1/cluster/partitions and GET /v1/cluster/hubs (http_cluster.h):
 * the tables partitions and hubs (hub/schema_pg.sql), with the ages and the
 * liveness worked out against this hub's [cluster] lease_ms. */
#include "http_cluster.h"

#include <microhttpd.h>

#include "fleet/error.h"

/* Both views are PostgreSQL's only (cluster mode needs it). Leases and
 * heartbeats are written from the hubs' clocks (fl_now_ms), so ages are
 * measured against the database server's clock: hubs and database are
 * expected to keep NTP time (docs/operations.md). */
static const http_view view_partitions = {
    "partition",
    "SELECT p.part AS partition, p.owner AS owner, p.epoch AS epoch, p.lease_until_ms AS "
    "lease_until_ms, p.lease_until_ms - CAST(extract(epoch FROM clock_timestamp()) * 1000 AS "
    "BIGINT) AS lease_left, h.queue_depth AS lag, h.heartbeat_ms AS "
    "owner_heartbeat_ms FROM partitions p LEFT JOIN hubs h ON h.id = p.owner ORDER BY p.part",
    {NULL},
    {0}};

static const http_view view_hubs = {
    "hub",
    "SELECT id, started_ms, heartbeat_ms, CAST(extract(epoch FROM clock_timestamp()) * 1000 AS "
    "BIGINT) - heartbeat_ms AS heartbeat_age, owned, queue_depth, events_applied FROM hubs "
    "ORDER BY id",
    {NULL},
    {0}};

/* Reads view into *out, or answers 404 when cluster mode is off. */
static unsigned read_cluster(http_request *r, const http_view *view, cJSON **out) {
  if (!r->server->cfg.cluster_enabled)
    return http__fail(out, MHD_HTTP_NOT_FOUND, FL_ERR_NOT_FOUND,
                      "this hub is not in cluster mode ([cluster] enabled = false)");
  return http__get_list(r, view, out);
}

static double number(const cJSON *row, const char *key) {
  const cJSON *v = cJSON_GetObjectItem(row, key);
  return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

unsigned http__get_cluster_partitions(http_request *r, const void *arg, cJSON **out) {
  (void)arg;
  unsigned status = read_cluster(r, &view_partitions, out);
  if (status != MHD_HTTP_OK) return status;
  double lease = r->server->cfg.cluster_lease_ms;
  cJSON *row;
  cJSON_ArrayForEach(row, *out) {
    double left = number(row, "lease_left");
    const cJSON *owner = cJSON_GetObjectItem(row, "owner");
    bool owned = cJSON_IsString(owner) && owner->valuestring[0];
    cJSON_AddNumberToObject(row, "lease_age", owned ? lease - left : 0);
    cJSON_AddBoolToObject(row, "owner_live", owned && left > 0);
    cJSON_DeleteItemFromObject(row, "owner_heartbeat_ms");
  }
  return status;
}

unsigned http__get_cluster_hubs(http_request *r, const void *arg, cJSON **out) {
  (void)arg;
  unsigned status = read_cluster(r, &view_hubs, out);
  if (status != MHD_HTTP_OK) return status;
  double lease = r->server->cfg.cluster_lease_ms;
  cJSON *row;
  cJSON_ArrayForEach(row, *out)
    cJSON_AddBoolToObject(row, "live", number(row, "heartbeat_age") < lease);
  return status;
}
