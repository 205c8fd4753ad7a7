#include "fleet/topic.h"

#include <stdio.h>
#include <string.h>

#include "fleet/error.h"
#include "fleet/partition.h"
#include "fleet/proto.h"

static const char *const channel_names[] = {
    [FL_CH_UP_EVT] = "up/evt",       [FL_CH_UP_HELLO] = "up/hello",
    [FL_CH_UP_WILL] = "up/will",     [FL_CH_UP_ACK] = "up/ack",
    [FL_CH_DOWN_ACK] = "down/ack",   [FL_CH_DOWN_SYNC] = "down/sync",
    [FL_CH_DOWN_CMD] = "down/cmd",   [FL_CH_DOWN_REPLY] = "down/reply",
    [FL_CH_UP_QUERY] = "up/query",
};
#define N_CHANNELS (sizeof channel_names / sizeof channel_names[0])

/* Writes FL_TOPIC_ROOT "/" mid "/" a ["/" b] into buf. */
static int topic_print(char *buf, size_t cap, const char *mid, const char *a, const char *b) {
  int n = b ? snprintf(buf, cap, "%s/%s/%s/%s", FL_TOPIC_ROOT, mid, a, b)
            : snprintf(buf, cap, "%s/%s/%s", FL_TOPIC_ROOT, mid, a);
  if (n < 0) return FL_ERR_INVALID;
  if ((size_t)n >= cap) return FL_ERR_BUFFER;
  return n;
}

int fl_topic_device(char *buf, size_t cap, const char *dev, fl_channel ch) {
  if (!fl_id_valid(dev) || ch <= FL_CH_NONE || (size_t)ch >= N_CHANNELS) return FL_ERR_INVALID;
  return topic_print(buf, cap, "dev", dev, channel_names[ch]);
}

int fl_topic_device_p(char *buf, size_t cap, const char *dev, fl_channel ch, int part) {
  if (part < 0) return fl_topic_device(buf, cap, dev, ch);
  if (!fl_id_valid(dev) || ch <= FL_CH_NONE || (size_t)ch >= N_CHANNELS ||
      (unsigned)part >= FL_PARTITIONS_MAX)
    return FL_ERR_INVALID;
  int n = snprintf(buf, cap, "%s/p/%d/dev/%s/%s", FL_TOPIC_ROOT, part, dev, channel_names[ch]);
  if (n < 0) return FL_ERR_INVALID;
  return (size_t)n >= cap ? FL_ERR_BUFFER : n;
}

int fl_topic_parse_device(const char *topic, char *dev, size_t devcap, fl_channel *ch) {
  int part;
  return fl_topic_parse_device_p(topic, dev, devcap, ch, &part);
}

/* Reads the partition segment "{part}/" at s (decimal, no leading zeros,
 * below FL_PARTITIONS_MAX). Returns the text after the slash, or NULL. */
static const char *parse_partition(const char *s, int *part) {
  unsigned v = 0;
  const char *p = s;
  for (; *p >= '0' && *p <= '9'; p++) {
    v = v * 10 + (unsigned)(*p - '0');
    if (v >= FL_PARTITIONS_MAX) return NULL;
  }
  if (p == s || *p != '/' || (p - s > 1 && s[0] == '0')) return NULL;
  *part = (int)v;
  return p + 1;
}

int fl_topic_parse_device_p(const char *topic, char *dev, size_t devcap, fl_channel *ch,
                            int *part) {
  static const char legacy[] = FL_TOPIC_ROOT "/dev/";
  static const char parted[] = FL_TOPIC_ROOT "/p/";
  const char *id;
  *part = -1;
  if (strncmp(topic, legacy, sizeof legacy - 1) == 0) {
    id = topic + sizeof legacy - 1;
  } else if (strncmp(topic, parted, sizeof parted - 1) == 0) {
    const char *rest = parse_partition(topic + sizeof parted - 1, part);
    if (!rest || strncmp(rest, "dev/", 4) != 0) {
      *part = -1;
      return FL_ERR_TOPIC;
    }
    id = rest + 4;
  } else {
    return FL_ERR_TOPIC;
  }
  const char *slash = strchr(id, '/');
  if (!slash) return FL_ERR_TOPIC;
  size_t idlen = (size_t)(slash - id);
  if (idlen == 0 || idlen > FL_ID_MAX || idlen >= devcap) return FL_ERR_TOPIC;
  memcpy(dev, id, idlen);
  dev[idlen] = '\0';
  if (!fl_id_valid(dev)) return FL_ERR_TOPIC;
  for (size_t i = 1; i < N_CHANNELS; i++) {
    if (strcmp(slash + 1, channel_names[i]) == 0) {
      *ch = (fl_channel)i;
      return FL_OK;
    }
  }
  return FL_ERR_TOPIC;
}

int fl_topic_state(char *buf, size_t cap, const char *kind, const char *id) {
  if (!fl_id_valid(id)) return FL_ERR_INVALID;
  return topic_print(buf, cap, "state", kind, id);
}

int fl_topic_notify(char *buf, size_t cap, const char *kind) {
  return topic_print(buf, cap, "notify", kind, NULL);
}

int fl_topic_partition_status(char *buf, size_t cap, unsigned part) {
  if (part >= FL_PARTITIONS_MAX) return FL_ERR_INVALID;
  int n = snprintf(buf, cap, "%s/p/%u/status", FL_TOPIC_ROOT, part);
  if (n < 0) return FL_ERR_INVALID;
  return (size_t)n >= cap ? FL_ERR_BUFFER : n;
}

int fl_topic_partition_up(char *buf, size_t cap, unsigned part) {
  if (part >= FL_PARTITIONS_MAX) return FL_ERR_INVALID;
  int n = snprintf(buf, cap, "%s/p/%u/dev/+/up/#", FL_TOPIC_ROOT, part);
  if (n < 0) return FL_ERR_INVALID;
  return (size_t)n >= cap ? FL_ERR_BUFFER : n;
}
