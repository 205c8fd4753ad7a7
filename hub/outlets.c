/* The hub's publishing connections: see outlets.h. */
#include "outlets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/partition.h"
#include "fleet/topic.h"

/* One outlet: its client, and what its callbacks need to say which it is. */
struct outlet {
  hub_outlets *o;
  int k;
  fl_mqtt *mqtt;
};

struct hub_outlets {
  hub_outlets_callbacks cb;
  int n;
  struct outlet out[HUB_OUTLETS_MAX];
};

/* Returns the device id's span in topic (*len bytes from the return), or
 * NULL when topic is not a device topic of either family. */
static const char *device_of(const char *topic, size_t *len) {
  static const char dev[] = FL_TOPIC_ROOT "/dev/", part[] = FL_TOPIC_ROOT "/p/";
  const char *id = NULL;
  if (strncmp(topic, dev, sizeof dev - 1) == 0) {
    id = topic + sizeof dev - 1;
  } else if (strncmp(topic, part, sizeof part - 1) == 0) {
    const char *slash = strchr(topic + sizeof part - 1, '/');
    if (!slash || strncmp(slash, "/dev/", 5) != 0) return NULL;
    id = slash + 5;
  } else {
    return NULL;
  }
  const char *end = strchr(id, '/');
  size_t n = end ? (size_t)(end - id) : strlen(id);
  if (n == 0) return NULL;
  *len = n;
  return id;
}

int hub_outlets_pick(const char *topic, int n) {
  size_t len = 0;
  const char *id = topic ? device_of(topic, &len) : NULL;
  char dev[FL_TOPIC_MAX];
  if (!id || len >= sizeof dev) return -1;
  if (n <= 1) return 0;
  memcpy(dev, id, len);
  dev[len] = '\0';
  return (int)(fl_fnv1a32(dev) % (uint32_t)n);
}

static void outlet_connected(void *ctx) {
  struct outlet *ol = ctx;
  if (ol->o->cb.on_connected) ol->o->cb.on_connected(ol->o->cb.ctx, ol->k);
}

static void outlet_lost(void *ctx, const char *cause) {
  struct outlet *ol = ctx;
  if (ol->o->cb.on_lost) ol->o->cb.on_lost(ol->o->cb.ctx, ol->k, cause);
}

static void outlet_published(void *ctx, uint64_t tag, fl_err rc) {
  struct outlet *ol = ctx;
  if (ol->o->cb.on_published) ol->o->cb.on_published(ol->o->cb.ctx, tag, rc);
}

int hub_outlets_create(const fl_mqtt_opts *base, int n, const hub_outlets_callbacks *cb,
                       hub_outlets **out) {
  if (!base || !base->client_id || n < 1 || n > HUB_OUTLETS_MAX || !out) return FL_ERR_INVALID;
  hub_outlets *o = calloc(1, sizeof *o);
  if (!o) return FL_ERR_NOMEM;
  if (cb) o->cb = *cb;
  int rc = FL_OK;
  for (int k = 0; k < n && rc == FL_OK; k++) {
    char id[128];
    if (snprintf(id, sizeof id, "%s-out%d", base->client_id, k) >= (int)sizeof id) {
      rc = FL_ERR_INVALID;
      break;
    }
    /* publish-only: no subscriptions, no will; a clean session, as there
     * is nothing in it worth keeping (the engine republishes on connect) */
    fl_mqtt_opts oo = {.uri = base->uri, .client_id = id, .username = base->username,
                       .password = base->password, .keepalive_s = base->keepalive_s,
                       .clean_start = true, .max_inflight = base->max_inflight,
                       .reconnect_min_ms = base->reconnect_min_ms,
                       .reconnect_max_ms = base->reconnect_max_ms, .ca_file = base->ca_file,
                       .cert_file = base->cert_file, .key_file = base->key_file};
    o->out[k] = (struct outlet){.o = o, .k = k};
    fl_mqtt_callbacks mcb = {.ctx = &o->out[k], .on_connected = outlet_connected,
                             .on_lost = outlet_lost, .on_published = outlet_published};
    rc = fl_mqtt_create(&oo, &mcb, &o->out[k].mqtt);
    if (rc == FL_OK) o->n = k + 1;
  }
  if (rc != FL_OK) {
    hub_outlets_destroy(o);
    return rc;
  }
  *out = o;
  return FL_OK;
}

int hub_outlets_start(hub_outlets *o) {
  for (int k = 0; k < o->n; k++) {
    int rc = fl_mqtt_start(o->out[k].mqtt);
    if (rc != FL_OK) return rc;
  }
  return FL_OK;
}

int hub_outlets_count(const hub_outlets *o) { return o ? o->n : 0; }

fl_mqtt *hub_outlets_for(hub_outlets *o, const char *topic) {
  int k = hub_outlets_pick(topic, o->n);
  return k < 0 ? NULL : o->out[k].mqtt;
}

bool hub_outlets_connected(const hub_outlets *o) {
  for (int k = 0; k < o->n; k++)
    if (!fl_mqtt_connected(o->out[k].mqtt)) return false;
  return true;
}

void hub_outlets_stop(hub_outlets *o, int timeout_ms) {
  if (!o) return;
  for (int k = 0; k < o->n; k++) fl_mqtt_stop(o->out[k].mqtt, timeout_ms);
}

void hub_outlets_destroy(hub_outlets *o) {
  if (!o) return;
  for (int k = 0; k < o->n; k++) fl_mqtt_destroy(o->out[k].mqtt);
  free(o);
}
