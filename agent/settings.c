#include "settings.h"

#include <stdio.h>
#include <string.h>

#include "fleet/config.h"
#include "fleet/error.h"
#include "fleet/partition.h"

/* Copies [section] key (or def) into dst; FL_ERR_CONFIG if it does not fit. */
static int copy_str(fl_config *c, const char *section, const char *key, const char *def,
                    char *dst, size_t cap, char *err, size_t errcap) {
  const char *v = fl_config_str(c, section, key, def);
  if (strlen(v) >= cap) {
    snprintf(err, errcap, "config [%s] %s: longer than %zu bytes", section, key, cap - 1);
    return FL_ERR_CONFIG;
  }
  snprintf(dst, cap, "%s", v);
  return FL_OK;
}

/* Reads the [agent] and [mqtt] strings and checks id and role. */
static int load_identity(fl_config *c, agent_settings *s, char *err, size_t errcap) {
  char role[16];
  int e = copy_str(c, "agent", "id", "", s->id, sizeof s->id, err, errcap);
  if (e == FL_OK) e = copy_str(c, "agent", "role", "", role, sizeof role, err, errcap);
  if (e == FL_OK) e = copy_str(c, "agent", "state_dir", ".", s->state_dir, sizeof s->state_dir, err, errcap);
  if (e == FL_OK) e = copy_str(c, "agent", "log_level", "info", s->log_level, sizeof s->log_level, err, errcap);
  if (e == FL_OK) e = copy_str(c, "mqtt", "uri", "tcp://127.0.0.1:1883", s->mqtt_uri, sizeof s->mqtt_uri, err, errcap);
  if (e == FL_OK) e = copy_str(c, "mqtt", "username", "", s->username, sizeof s->username, err, errcap);
  if (e == FL_OK) e = copy_str(c, "mqtt", "password", "", s->password, sizeof s->password, err, errcap);
  if (e == FL_OK) e = copy_str(c, "mqtt", "ca_file", "", s->ca_file, sizeof s->ca_file, err, errcap);
  if (e == FL_OK) e = copy_str(c, "mqtt", "cert_file", "", s->cert_file, sizeof s->cert_file, err, errcap);
  if (e == FL_OK) e = copy_str(c, "mqtt", "key_file", "", s->key_file, sizeof s->key_file, err, errcap);
  if (e != FL_OK) return e;
  if (!fl_id_valid(s->id) || strlen(s->id) > 40) {
    snprintf(err, errcap, "config [agent] id = '%s': 1..40 characters of [A-Za-z0-9._:-] "
             "required (environment FLEET_AGENT_AGENT_ID)", s->id);
    return FL_ERR_CONFIG;
  }
  s->agent.role = fl_role_from_name(role);
  if (s->agent.role == FL_ROLE_NONE) {
    snprintf(err, errcap, "config [agent] role = '%s': must be vehicle or kiosk", role);
    return FL_ERR_CONFIG;
  }
  return FL_OK;
}

/* Reads the topic family and the fleet's partition count of [mqtt] (rev 1.2). */
static int load_topics(fl_config *c, agent_settings *s, char *err, size_t errcap) {
  char family[16];
  int64_t partitions;
  int e = copy_str(c, "mqtt", "topic_family", "partitioned", family, sizeof family, err, errcap);
  if (e != FL_OK) return e;
  if (strcmp(family, "partitioned") == 0) {
    s->agent.topic_family = AGENT_TOPICS_PARTITIONED;
  } else if (strcmp(family, "legacy") == 0) {
    s->agent.topic_family = AGENT_TOPICS_LEGACY;
  } else {
    snprintf(err, errcap, "config [mqtt] topic_family = '%s': must be partitioned or legacy",
             family);
    return FL_ERR_CONFIG;
  }
  e = fl_config_int(c, "mqtt", "partitions", FL_PARTITIONS_DEFAULT, 1, FL_PARTITIONS_MAX,
                    &partitions);
  if (e != FL_OK) {
    snprintf(err, errcap, "%s", fl_config_error(c));
    return e;
  }
  s->agent.partitions = (int)partitions;
  return FL_OK;
}

/* Reads [outbox], [sync], [vehicle] and [control]. */
static int load_outbox(fl_config *c, agent_settings *s, char *err, size_t errcap) {
  int64_t max_events, telemetry_max, window, hello, hello_max, stall, stall_max, period;
  char durability[16], def_socket[sizeof s->socket_path];
  int e = fl_config_int(c, "outbox", "max_events", 10000, 1, 10000000, &max_events);
  if (e == FL_OK) e = fl_config_int(c, "outbox", "telemetry_max", 100, 1, 1000000, &telemetry_max);
  if (e == FL_OK) e = fl_config_int(c, "outbox", "window", 128, 1, 500, &window);
  if (e == FL_OK) e = fl_config_int(c, "sync", "hello_retry_ms", 3000, 100, 3600000, &hello);
  if (e == FL_OK) e = fl_config_int(c, "sync", "hello_retry_max_ms", 60000, 100, 3600000, &hello_max);
  if (e == FL_OK) e = fl_config_int(c, "sync", "ack_stall_ms", 10000, 100, 3600000, &stall);
  if (e == FL_OK) e = fl_config_int(c, "sync", "ack_stall_max_ms", 120000, 100, 3600000, &stall_max);
  if (e == FL_OK) e = fl_config_int(c, "vehicle", "telemetry_period_s", 60, 0, 86400, &period);
  if (e != FL_OK) {
    snprintf(err, errcap, "%s", fl_config_error(c));
    return e;
  }
  e = copy_str(c, "outbox", "durability", "normal", durability, sizeof durability, err, errcap);
  if (e != FL_OK) return e;
  int sync = fl_db_sync_from_name(durability);
  if (sync < 0) {
    snprintf(err, errcap, "config [outbox] durability = '%s': must be off, normal or full",
             durability);
    return FL_ERR_CONFIG;
  }
  int n = snprintf(def_socket, sizeof def_socket, "%s/agent-%s.sock", s->state_dir, s->id);
  if (n < 0 || (size_t)n >= sizeof def_socket) def_socket[0] = '\0';
  e = copy_str(c, "control", "socket", def_socket, s->socket_path, sizeof s->socket_path, err,
               errcap);
  if (e == FL_OK && !s->socket_path[0]) {
    snprintf(err, errcap, "config [control] socket: path too long, set a shorter one");
    return FL_ERR_CONFIG;
  }
  s->agent.max_events = (int)max_events;
  s->agent.telemetry_max = (int)telemetry_max;
  s->agent.window = (int)window;
  s->agent.hello_retry_ms = (int)hello;
  s->agent.hello_retry_max_ms = (int)hello_max;
  s->agent.ack_stall_ms = (int)stall;
  s->agent.ack_stall_max_ms = (int)stall_max;
  s->agent.telemetry_period_ms = (int)period * 1000;
  s->agent.durability = (fl_db_sync)sync;
  return e;
}

int agent_settings_load(const char *path, agent_settings *s, char *err, size_t errcap) {
  return agent_settings_check(path, s, NULL, err, errcap);
}

int agent_settings_check(const char *path, agent_settings *s, FILE *out, char *err,
                         size_t errcap) {
  memset(s, 0, sizeof *s);
  fl_config *c = NULL;
  int e = fl_config_load(path, "FLEET_AGENT", &c, err, errcap);
  if (e != FL_OK) return e;
  e = load_identity(c, s, err, errcap);
  if (e == FL_OK) e = load_topics(c, s, err, errcap);
  if (e == FL_OK) e = load_outbox(c, s, err, errcap);
  /* every key is read by now: anything else in the file is a mistake */
  if (e == FL_OK) e = fl_config_unknown(c, err, errcap);
  if (e == FL_OK && out) fl_config_print(c, out);
  fl_config_free(c);
  if (e != FL_OK) return e;
  int n = snprintf(s->db_path, sizeof s->db_path, "%s/agent-%s.db", s->state_dir, s->id);
  if (n < 0 || (size_t)n >= sizeof s->db_path) {
    snprintf(err, errcap, "config [agent] state_dir: path too long");
    return FL_ERR_CONFIG;
  }
  s->agent.id = s->id;
  s->agent.db_path = s->db_path;
  s->agent.mqtt_uri = s->mqtt_uri;
  s->agent.username = s->username[0] ? s->username : NULL;
  s->agent.password = s->password[0] ? s->password : NULL;
  s->agent.ca_file = s->ca_file[0] ? s->ca_file : NULL;
  s->agent.cert_file = s->cert_file[0] ? s->cert_file : NULL;
  s->agent.key_file = s->key_file[0] ? s->key_file : NULL;
  return FL_OK;
}
