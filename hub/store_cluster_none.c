/* hub/store_cluster.h in a build without libpq: cluster mode needs
 * PostgreSQL, so opening its connection says so and fails. */
#include "fleet/error.h"
#include "fleet/log.h"
#include "store_cluster.h"

int hub_cluster_db_open(const char *url, hub_cluster_db **out) {
  (void)url;
  *out = NULL;
  fl_error("cluster: this fleet-hub was built without PostgreSQL (libpq): no cluster mode");
  return FL_ERR_CONFIG;
}
void hub_cluster_db_close(hub_cluster_db *db) { (void)db; }
int hub_cluster_db_setup(hub_cluster_db *db, uint32_t p, int64_t now, uint32_t *stored) {
  (void)db, (void)p, (void)now, (void)stored;
  return FL_ERR_CONFIG;
}
int hub_cluster_db_heartbeat(hub_cluster_db *db, const hub_member *me, int64_t now) {
  (void)db, (void)me, (void)now;
  return FL_ERR_CONFIG;
}
int hub_cluster_db_live(hub_cluster_db *db, int64_t since, char (*ids)[FL_ID_MAX + 1], size_t cap,
                        size_t *n) {
  (void)db, (void)since, (void)ids, (void)cap;
  *n = 0;
  return FL_ERR_CONFIG;
}
int hub_cluster_db_renew(hub_cluster_db *db, const char *hub, int64_t until, int bump,
                         hub_lease *out, size_t cap, size_t *n) {
  (void)db, (void)hub, (void)until, (void)bump, (void)out, (void)cap;
  *n = 0;
  return FL_ERR_CONFIG;
}
int hub_cluster_db_take(hub_cluster_db *db, const char *hub, int64_t now, int64_t until, size_t k,
                        hub_lease *out, size_t cap, size_t *n) {
  (void)db, (void)hub, (void)now, (void)until, (void)k, (void)out, (void)cap;
  *n = 0;
  return FL_ERR_CONFIG;
}
int hub_cluster_db_release(hub_cluster_db *db, const char *hub, const uint32_t *parts, size_t n,
                           int64_t now) {
  (void)db, (void)hub, (void)parts, (void)n, (void)now;
  return FL_ERR_CONFIG;
}
int hub_cluster_db_leave(hub_cluster_db *db, const char *hub, int64_t now) {
  (void)db, (void)hub, (void)now;
  return FL_ERR_CONFIG;
}
