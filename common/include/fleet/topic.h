/* The topic tree of fleet/v1 (docs/protocol.md, "Topics"). Device ids sit in
 * the topic so that mosquitto pattern ACLs (%u) confine each device. */
#ifndef FLEET_TOPIC_H
#define FLEET_TOPIC_H

#include <stddef.h>

#define FL_TOPIC_ROOT "fleet/v1"
#define FL_TOPIC_MAX 160

/* Channels of a device's subtree: fleet/v1/dev/{dev}/{dir}/{name}. */
typedef enum fl_channel {
  FL_CH_NONE = 0,
  FL_CH_UP_EVT,    /* up/evt    sequenced events */
  FL_CH_UP_HELLO,  /* up/hello  birth */
  FL_CH_UP_WILL,   /* up/will   last will */
  FL_CH_UP_ACK,    /* up/ack    device_ack */
  FL_CH_DOWN_ACK,  /* down/ack  hub's cumulative ack */
  FL_CH_DOWN_SYNC, /* down/sync answer to hello */
  FL_CH_DOWN_CMD,  /* down/cmd  commands */
  FL_CH_DOWN_REPLY, /* down/reply decisions and answers (default response topic) */
  FL_CH_UP_QUERY    /* up/query  kiosk queries (unsequenced, rev 1.1) */
} fl_channel;

/* Writes the topic of device dev's channel ch into buf (cap bytes).
 * Returns the length, or a negative fl_err (FL_ERR_BUFFER, FL_ERR_INVALID). */
int fl_topic_device(char *buf, size_t cap, const char *dev, fl_channel ch);

/* As fl_topic_device, in the topic family of revision 1.2 when part >= 0:
 * fleet/v1/p/{part}/dev/{dev}/{dir}/{name} (part in decimal, no leading
 * zeros); part < 0 gives the family of 1.0 and 1.1 (fl_topic_device). */
int fl_topic_device_p(char *buf, size_t cap, const char *dev, fl_channel ch, int part);

/* Parses a device topic of either family. On success returns FL_OK, copies
 * the device id into dev (cap devcap) and sets *ch. Returns FL_ERR_TOPIC for
 * anything else. */
int fl_topic_parse_device(const char *topic, char *dev, size_t devcap, fl_channel *ch);

/* As fl_topic_parse_device, also setting *part to the topic's partition
 * (-1: the family of 1.0 and 1.1, which names none). */
int fl_topic_parse_device_p(const char *topic, char *dev, size_t devcap, fl_channel *ch,
                            int *part);

/* fleet/v1/p/{part}/status: the partition's retained status (rev 1.2). */
int fl_topic_partition_status(char *buf, size_t cap, unsigned part);

/* fleet/v1/p/{part}/dev/+/up/#: the filter of one partition's uplink. */
int fl_topic_partition_up(char *buf, size_t cap, unsigned part);

/* Retained state and notification topics for dashboards:
 * fleet/v1/state/{kind}/{id} (kind: vehicle, rental, repair, booking,
 * station) and fleet/v1/notify/{kind}. Return as above. */
int fl_topic_state(char *buf, size_t cap, const char *kind, const char *id);
int fl_topic_notify(char *buf, size_t cap, const char *kind);

#define FL_TOPIC_HUB_STATUS FL_TOPIC_ROOT "/hub/status"
#define FL_TOPIC_ALL_UP FL_TOPIC_ROOT "/dev/+/up/#"
#define FL_TOPIC_ALL_UP_P FL_TOPIC_ROOT "/p/+/dev/+/up/#"

#endif
