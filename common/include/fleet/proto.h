/* The wire contract in C: every message of fleet/v1 as a plain struct, and the
 * CBOR codec for them. docs/protocol.md and schemas/fleet-v1.cddl are the
 * normative text; this header mirrors them.
 *
 * Every message is one CBOR map (the envelope) with text keys:
 *   "v"    uint   protocol version, 1
 *   "type" tstr   message type name, see fl_msg_type_name()
 *   "mid"  tstr   message id, unique per sender
 *   "dev"  tstr   device id of the sender (device messages) or of the
 *                 addressed device (hub -> device messages); "hub" otherwise
 *   "boot" uint   sender's boot counter
 *   "seq"  uint   sequence number: per device for uplink events, per device
 *                 for downlink messages (hub's own counter); 0 = unsequenced
 *   "time" int    sender's clock, milliseconds since the Unix epoch
 *   "corr" tstr   correlation id: rental or booking id (optional in general,
 *                 required where a message type says so)
 *   "body" map    the fields of the message type
 * Optional fields are omitted when zero / empty / false, and an absent
 * optional field decodes as zero / empty / false. Unknown keys are ignored.
 * Ids (device, vehicle, customer, rental, ...) are 1..64 bytes of
 * [A-Za-z0-9._:-].
 */
#ifndef FLEET_PROTO_H
#define FLEET_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FL_PROTO_VERSION 1
#define FL_MAX_MSG_BYTES 8192 /* size cap of one encoded message */
#define FL_MAX_DEPTH 4        /* envelope map > body map > array > map */
#define FL_ID_MAX 64          /* bytes of an id, without the NUL */
#define FL_TEXT_MAX 128       /* bytes of a free text field (reason, name) */
#define FL_DTC_MAX 16         /* bytes of one diagnostic trouble code */
#define FL_MAX_DTCS 16        /* codes in one fault report */
#define FL_MAX_BOOKINGS 32    /* bookings in one "bookings" command */
#define FL_MAX_ANSWER_VEHICLES 32 /* vehicles in one answer to "available" */
#define FL_MAX_ANSWER_RENTALS 16  /* rentals in one answer to "customer" */
#define FL_MAX_ANSWER_BOOKINGS 16 /* bookings in one answer to "customer" */
#define FL_MAX_NOTICES 16         /* changes in one "notices" message (rev 1.2): with
                                     every field at its longest a full message takes
                                     5,673 bytes (23 changes would take 8,025): room
                                     under FL_MAX_MSG_BYTES for later optional fields */
#define FL_PARTITION_MAX 4095     /* highest partition number (FL_PARTITIONS_MAX - 1) */

typedef enum fl_msg_type {
  FL_MSG_NONE = 0,
  /* device -> hub, sequenced events: fleet/v1/dev/{dev}/up/evt */
  FL_MSG_RENTAL_REQUEST,  /* "rental_request"  kiosk; corr = new rental id */
  FL_MSG_RENTAL_CANCEL,   /* "rental_cancel"   kiosk; corr = rental id */
  FL_MSG_RENTAL_RETURN,   /* "rental_return"   kiosk or vehicle; corr = rental id */
  FL_MSG_BOOKING_REQUEST, /* "booking_request" kiosk; corr = new booking id */
  FL_MSG_BOOKING_CANCEL,  /* "booking_cancel"  kiosk; corr = booking id */
  FL_MSG_FAULT,           /* "fault"           vehicle */
  FL_MSG_LOCK,            /* "lock"            vehicle: locked or unlocked */
  FL_MSG_TELEMETRY,       /* "telemetry"       vehicle */
  FL_MSG_COMMAND_RESULT,  /* "command_result"  any: outcome of a command */
  /* device -> hub, unsequenced */
  FL_MSG_HELLO,   /* "hello"   fleet/v1/dev/{dev}/up/hello, on every connect */
  FL_MSG_OFFLINE, /* "offline" fleet/v1/dev/{dev}/up/will, the MQTT last will */
  FL_MSG_DEVICE_ACK, /* "device_ack" fleet/v1/dev/{dev}/up/ack: downlink applied */
  /* hub -> device */
  FL_MSG_ACK,      /* "ack"      fleet/v1/dev/{dev}/down/ack, cumulative */
  FL_MSG_SYNC,     /* "sync"     fleet/v1/dev/{dev}/down/sync, answer to hello */
  FL_MSG_DECISION, /* "decision" response topic of the request (sequenced downlink) */
  FL_MSG_COMMAND,  /* "command"  fleet/v1/dev/{dev}/down/cmd (sequenced downlink) */
  /* hub -> everyone */
  FL_MSG_HUB_STATUS,    /* "hub_status"    fleet/v1/hub/status, retained */
  FL_MSG_VEHICLE_STATE, /* "vehicle_state" fleet/v1/state/vehicle/{id}, retained */
  FL_MSG_RENTAL_STATE,  /* "rental_state"  fleet/v1/state/rental/{id}, retained */
  FL_MSG_REPAIR_STATE,  /* "repair_state"  fleet/v1/state/repair/{id}, retained */
  FL_MSG_NOTIFY,        /* "notify"        fleet/v1/notify/{kind} */
  /* added to v1 by revision 1.1 (docs/protocol.md, section 8); appended so
   * that the values above keep their numbers */
  FL_MSG_QUERY,         /* "query"         kiosk -> hub: fleet/v1/dev/{dev}/up/query,
                           unsequenced; corr = query id */
  FL_MSG_ANSWER,        /* "answer"        hub -> kiosk: the query's response topic
                           (default down/reply), unsequenced; corr = query id */
  FL_MSG_BOOKING_STATE, /* "booking_state" fleet/v1/state/booking/{id}, retained */
  FL_MSG_STATION_STATE, /* "station_state" fleet/v1/state/station/{id}, retained */
  /* added by revision 1.2 (partitions and the lean path) */
  FL_MSG_PARTITION_STATUS, /* "partition_status" fleet/v1/p/{p}/status, retained */
  FL_MSG_NOTICES,          /* "notices" fleet/v1/notices/{kind}: many notify at once */
  FL_MSG__COUNT
} fl_msg_type;

typedef struct fl_envelope {
  uint32_t v;
  fl_msg_type type;
  char mid[FL_ID_MAX + 1];
  char dev[FL_ID_MAX + 1];
  uint64_t boot;
  uint64_t seq;
  int64_t time_ms;
  char corr[FL_ID_MAX + 1];
} fl_envelope;

/* rental_request: corr is the rental id chosen by the kiosk. */
typedef struct fl_rental_request {
  char vehicle[FL_ID_MAX + 1];  /* required */
  char customer[FL_ID_MAX + 1]; /* required */
  uint32_t minutes;             /* required, 1..43200: planned duration */
} fl_rental_request;

/* rental_cancel: corr is the rental id. */
typedef struct fl_rental_cancel {
  char reason[FL_TEXT_MAX + 1]; /* optional */
} fl_rental_cancel;

/* rental_return: corr is the rental id. */
typedef struct fl_rental_return {
  char station[FL_ID_MAX + 1]; /* optional: where it was returned */
  uint64_t odometer_m;         /* optional */
} fl_rental_return;

/* booking_request: corr is the booking id chosen by the kiosk. */
typedef struct fl_booking_request {
  char vehicle[FL_ID_MAX + 1];  /* required */
  char customer[FL_ID_MAX + 1]; /* required */
  int64_t start_ms;             /* required */
  int64_t end_ms;               /* required, > start_ms */
} fl_booking_request;

/* booking_cancel: corr is the booking id; no fields. */
typedef struct fl_booking_cancel {
  char reason[FL_TEXT_MAX + 1]; /* optional */
} fl_booking_cancel;

typedef enum fl_severity {
  FL_SEV_NONE = 0,
  FL_SEV_INFO,     /* "info" */
  FL_SEV_WARNING,  /* "warning" */
  FL_SEV_CRITICAL, /* "critical" */
} fl_severity;

/* fault: diagnostic trouble codes read from the vehicle. */
typedef struct fl_fault {
  uint32_t n_dtcs;                           /* required: 1..FL_MAX_DTCS */
  char dtcs[FL_MAX_DTCS][FL_DTC_MAX + 1];    /* "dtcs": array of tstr */
  fl_severity severity;                      /* required */
  char text[FL_TEXT_MAX + 1];                /* optional: description */
} fl_fault;

/* lock: the vehicle was locked or unlocked. corr optional: rental/booking. */
typedef struct fl_lock {
  bool locked;                  /* required */
  char customer[FL_ID_MAX + 1]; /* optional: who unlocked */
  bool offline;                 /* optional: decided by the agent while offline */
  char reason[FL_TEXT_MAX + 1]; /* optional: e.g. why an unlock was refused */
  bool refused;                 /* optional: an unlock attempt was refused */
} fl_lock;

/* telemetry: periodic reading. */
typedef struct fl_telemetry {
  uint64_t odometer_m; /* required */
  uint32_t energy_pct; /* required, 0..100: fuel or battery */
  double lat;          /* required, -90..90 (CBOR float or int) */
  double lon;          /* required, -180..180 */
  uint32_t speed_kmh;  /* optional */
} fl_telemetry;

typedef enum fl_cmd_status {
  FL_CMD_NONE = 0,
  FL_CMD_APPLIED, /* "applied" */
  FL_CMD_EXPIRED, /* "expired" */
  FL_CMD_REFUSED, /* "refused" */
} fl_cmd_status;

/* command_result: what the device did with downlink message "cmd_seq". */
typedef struct fl_command_result {
  uint64_t cmd_seq;             /* required: downlink seq of the command */
  fl_cmd_status status;         /* required */
  char reason[FL_TEXT_MAX + 1]; /* optional */
} fl_command_result;

typedef enum fl_role {
  FL_ROLE_NONE = 0,
  FL_ROLE_VEHICLE, /* "vehicle" */
  FL_ROLE_KIOSK,   /* "kiosk" */
} fl_role;

/* hello: birth message, sent on every connect before anything else. */
typedef struct fl_hello {
  fl_role role;            /* required */
  uint64_t last_seq;       /* required: highest uplink seq written to the outbox */
  uint64_t last_ack;       /* required: highest cumulative ack received */
  uint64_t applied;        /* required: highest downlink seq applied */
  char sw[FL_ID_MAX + 1];  /* optional: software version */
} fl_hello;

/* offline: the last will; no fields. */
typedef struct fl_offline {
  char reason[FL_TEXT_MAX + 1]; /* optional */
} fl_offline;

/* device_ack: downlink messages up to "upto" are durably applied. */
typedef struct fl_device_ack {
  uint64_t upto; /* required */
} fl_device_ack;

/* ack: every uplink event of dev up to "upto" is committed by the hub. */
typedef struct fl_ack {
  uint64_t upto; /* required */
} fl_ack;

/* sync: the hub's answer to hello (and its request to resend after a gap). */
typedef struct fl_sync {
  uint64_t acked;     /* required: uplink watermark; resend everything after it */
  uint64_t next_seq;  /* required: lowest seq the device may use for new events */
  uint64_t down_seq;  /* required: highest downlink seq the hub has issued */
} fl_sync;

typedef enum fl_subject {
  FL_SUBJ_NONE = 0,
  FL_SUBJ_RENTAL,  /* "rental" */
  FL_SUBJ_BOOKING, /* "booking" */
} fl_subject;

/* decision: the hub's answer to a request; corr = rental or booking id. */
typedef struct fl_decision {
  fl_subject subject;             /* required */
  char state[24];                 /* required: rental/booking state, e.g. "ACTIVE" */
  bool ok;                        /* required: request granted */
  char reason[FL_TEXT_MAX + 1];   /* optional: why not */
  uint32_t retry_after_s;         /* optional: try again in N s */
  int64_t charged_cents;          /* optional */
  int64_t refunded_cents;         /* optional */
  int64_t fee_cents;              /* optional: late fee charged */
  int64_t due_ms;                 /* optional: when the rental is due back */
  uint64_t upto;                  /* optional (rev 1.2): the hub's committed uplink
                                     watermark for dev; a rev 1.2 device treats it as
                                     an ack with that upto (0: none) */
} fl_decision;

typedef enum fl_action {
  FL_ACT_NONE = 0,
  FL_ACT_UNLOCK,   /* "unlock" */
  FL_ACT_LOCK,     /* "lock" */
  FL_ACT_BOOKINGS, /* "bookings": the full list the vehicle must honour */
} fl_action;

typedef struct fl_booking {
  char booking[FL_ID_MAX + 1];
  char customer[FL_ID_MAX + 1];
  int64_t start_ms;
  int64_t end_ms;
} fl_booking;

/* command: hub -> vehicle; envelope seq is the downlink seq (its id). */
typedef struct fl_command {
  fl_action action;              /* required */
  int64_t expires_ms;            /* required: not applied after this time */
  char customer[FL_ID_MAX + 1];  /* optional */
  uint32_t n_bookings;           /* "bookings" array, required for FL_ACT_BOOKINGS */
  fl_booking bookings[FL_MAX_BOOKINGS];
} fl_command;

/* hub_status: retained; agents resync when the hub's boot changes. */
typedef struct fl_hub_status {
  bool online; /* required */
} fl_hub_status;

/* vehicle_state: retained read model of one vehicle. */
typedef struct fl_vehicle_state {
  char vehicle[FL_ID_MAX + 1];  /* required */
  char name[FL_TEXT_MAX + 1];   /* optional */
  char station[FL_ID_MAX + 1];  /* optional */
  int64_t rate_cents;           /* optional: per hour */
  char state[24];               /* required: AVAILABLE, RESERVED, RENTED, ... */
  char rental[FL_ID_MAX + 1];   /* optional: current rental */
  uint32_t energy_pct;          /* optional */
  double lat, lon;              /* optional */
  bool online;                  /* optional */
} fl_vehicle_state;

/* rental_state: retained read model of one rental. */
typedef struct fl_rental_state {
  char rental[FL_ID_MAX + 1];   /* required */
  char vehicle[FL_ID_MAX + 1];  /* required */
  char customer[FL_ID_MAX + 1]; /* required */
  char state[24];               /* required */
  char reason[FL_TEXT_MAX + 1]; /* optional */
  int64_t charged_cents;        /* optional */
  int64_t refunded_cents;       /* optional */
  int64_t fee_cents;            /* optional */
  int64_t due_ms;               /* optional */
} fl_rental_state;

/* repair_state: retained read model of one repair ticket. */
typedef struct fl_repair_state {
  char repair[FL_ID_MAX + 1];  /* required */
  char vehicle[FL_ID_MAX + 1]; /* required */
  char state[24];              /* required: REQUESTED, IN_PROGRESS, COMPLETED */
  char text[FL_TEXT_MAX + 1];  /* optional: the fault it came from */
} fl_repair_state;

/* notify: one state change, for subscribers that follow changes. */
typedef struct fl_notify {
  char kind[16];               /* required: "vehicle", "rental", "repair", "booking", "alert" */
  char id[FL_ID_MAX + 1];      /* required: id of the thing that changed */
  char from[24];               /* optional: previous state */
  char to[24];                 /* required: new state (or alert name) */
  char text[FL_TEXT_MAX + 1];  /* optional */
  char customer[FL_ID_MAX + 1]; /* optional (rev 1.1): the customer the notice concerns */
} fl_notify;

typedef enum fl_query_what {
  FL_QUERY_NONE = 0,
  FL_QUERY_AVAILABLE, /* "available": vehicles free now or for a window */
  FL_QUERY_CUSTOMER,  /* "customer": one customer's rentals, bookings and money */
} fl_query_what;

/* query: a kiosk asks the hub; corr = the query id chosen by the kiosk.
 * Unsequenced (seq 0), not stored in the outbox: no answer => ask again. */
typedef struct fl_query {
  fl_query_what what;           /* required */
  char station[FL_ID_MAX + 1];  /* optional, "available" only: absent = every station */
  int64_t start_ms;             /* optional, "available" only: both or neither, */
  int64_t end_ms;               /*   end_ms > start_ms: free for that window, not now */
  char customer[FL_ID_MAX + 1]; /* required for "customer", absent for "available" */
} fl_query;

/* One vehicle of an answer to "available". */
typedef struct fl_answer_vehicle {
  char vehicle[FL_ID_MAX + 1]; /* required */
  char name[FL_TEXT_MAX + 1];  /* optional */
  char station[FL_ID_MAX + 1]; /* optional */
  int64_t rate_cents;          /* optional: per hour */
  uint32_t energy_pct;         /* optional, 0..100 */
} fl_answer_vehicle;

/* One rental of an answer to "customer". */
typedef struct fl_answer_rental {
  char rental[FL_ID_MAX + 1];  /* required */
  char vehicle[FL_ID_MAX + 1]; /* required */
  char state[24];              /* required: a rental state */
  int64_t due_ms;              /* optional */
  int64_t charged_cents;       /* optional */
  int64_t fee_cents;           /* optional: late fee charged */
  int64_t running_fee_cents;   /* optional: late fee if returned now */
} fl_answer_rental;

/* One booking of an answer to "customer". */
typedef struct fl_answer_booking {
  char booking[FL_ID_MAX + 1]; /* required */
  char vehicle[FL_ID_MAX + 1]; /* required */
  char state[24];              /* required: a booking state */
  int64_t start_ms;            /* required */
  int64_t end_ms;              /* required, > start_ms */
  int64_t deposit_cents;       /* optional */
} fl_answer_booking;

/* answer: the hub's reply to a query; corr = the query id; seq 0. The lists
 * and totals belong to one `what`: vehicles to "available", the rest to
 * "customer". */
typedef struct fl_answer {
  fl_query_what what;           /* required: the query's */
  bool ok;                      /* required: false = refused, see reason */
  char reason[FL_TEXT_MAX + 1]; /* optional */
  bool more;                    /* optional: entries were left out (limits, size) */
  uint32_t n_vehicles;
  fl_answer_vehicle vehicles[FL_MAX_ANSWER_VEHICLES];
  uint32_t n_rentals;
  fl_answer_rental rentals[FL_MAX_ANSWER_RENTALS];
  uint32_t n_bookings;
  fl_answer_booking bookings[FL_MAX_ANSWER_BOOKINGS];
  int64_t charged_cents;   /* optional: customer totals */
  int64_t refunded_cents;  /* optional */
  int64_t fees_paid_cents; /* optional */
  int64_t fees_owed_cents; /* optional */
} fl_answer;

/* booking_state: retained read model of one booking. */
typedef struct fl_booking_state {
  char booking[FL_ID_MAX + 1];  /* required */
  char vehicle[FL_ID_MAX + 1];  /* required */
  char customer[FL_ID_MAX + 1]; /* required */
  char state[24];               /* required: PAYMENT_PENDING, HELD, USED, CANCELLED, REJECTED, EXPIRED */
  int64_t start_ms;             /* required */
  int64_t end_ms;               /* required, > start_ms */
  int64_t charged_cents;        /* optional: deposit charged */
  int64_t refunded_cents;       /* optional */
  char reason[FL_TEXT_MAX + 1]; /* optional */
} fl_booking_state;

/* station_state: retained read model of one station: counts of vehicles. */
typedef struct fl_station_state {
  char station[FL_ID_MAX + 1]; /* required */
  uint32_t available;          /* required: AVAILABLE */
  uint32_t rented;             /* required: RESERVED or RENTED */
  uint32_t in_repair;          /* required: REPAIR_REQUESTED or IN_REPAIR */
  uint32_t booked;             /* required: with a held booking not over yet */
} fl_station_state;

/* partition_status (rev 1.2): retained status of one partition, published by
 * the hub that owns it in a cluster. A device resyncs (hello) when its
 * partition's epoch takes a value it has not seen or online turns true. */
typedef struct fl_partition_status {
  uint32_t partition;         /* required, 0..FL_PARTITION_MAX */
  uint64_t epoch;             /* required: grows when the partition changes owner */
  char hub[FL_ID_MAX + 1];    /* required: text of at most 64 bytes, the owner hub's id */
  bool online;                /* required */
} fl_partition_status;

/* One change of a "notices" message: what one notify carries, without kind. */
typedef struct fl_notice {
  char id[FL_ID_MAX + 1];       /* required: id of the thing that changed */
  char from[24];                /* required, may be "": previous state */
  char to[24];                  /* required: new state (or alert name) */
  char text[FL_TEXT_MAX + 1];   /* optional */
  char customer[FL_ID_MAX + 1]; /* optional */
} fl_notice;

/* notices (rev 1.2): the changes of one kind of one hub batch, on
 * fleet/v1/notices/{kind}. */
typedef struct fl_notices {
  char kind[16];               /* required: a notify kind, equals {kind} of the topic */
  uint32_t n_changes;          /* "changes": required, 1..FL_MAX_NOTICES */
  fl_notice changes[FL_MAX_NOTICES];
} fl_notices;

/* One decoded or to-be-encoded message. body is selected by env.type. */
typedef struct fl_msg {
  fl_envelope env;
  union {
    fl_rental_request rental_request;
    fl_rental_cancel rental_cancel;
    fl_rental_return rental_return;
    fl_booking_request booking_request;
    fl_booking_cancel booking_cancel;
    fl_fault fault;
    fl_lock lock;
    fl_telemetry telemetry;
    fl_command_result command_result;
    fl_hello hello;
    fl_offline offline;
    fl_device_ack device_ack;
    fl_ack ack;
    fl_sync sync;
    fl_decision decision;
    fl_command command;
    fl_hub_status hub_status;
    fl_vehicle_state vehicle_state;
    fl_rental_state rental_state;
    fl_repair_state repair_state;
    fl_notify notify;
    fl_query query;
    fl_answer answer;
    fl_booking_state booking_state;
    fl_station_state station_state;
    fl_partition_status partition_status;
    fl_notices notices;
  } body;
} fl_msg;

/* Why a decode failed: the fl_err code, and a sentence naming the field
 * ("body.dtcs[2]: text longer than 16 bytes"). */
typedef struct fl_decode_error {
  int code;
  char detail[160];
} fl_decode_error;

/* Initialises m for type t: zeroes it and sets v and type. */
void fl_msg_init(fl_msg *m, fl_msg_type t);

/* Encodes m as definite-length CBOR into buf (capacity cap). On success
 * returns FL_OK and sets *len. Returns FL_ERR_BUFFER if cap is too small,
 * FL_ERR_INVALID if m breaks the contract (unknown type, missing required
 * field, id with a bad character). No allocation. */
int fl_msg_encode(const fl_msg *m, uint8_t *buf, size_t cap, size_t *len);

/* Decodes one message from buf[0..len) into *out (caller-owned, overwritten).
 * Strict: definite lengths only, size cap FL_MAX_MSG_BYTES, nesting cap
 * FL_MAX_DEPTH, duplicate keys, wrong types, unknown message types, trailing
 * bytes and out-of-range values are rejected; unknown keys are ignored.
 * Returns FL_OK or the fl_err of the first problem; err (may be NULL) gets
 * the code and a detail sentence. */
int fl_msg_decode(const uint8_t *buf, size_t len, fl_msg *out, fl_decode_error *err);

/* Returns the wire name of t ("rental_request"), or NULL if t is not a type. */
const char *fl_msg_type_name(fl_msg_type t);

/* Returns the type named name, or FL_MSG_NONE. */
fl_msg_type fl_msg_type_from_name(const char *name);

/* Returns true if s is a valid id: 1..FL_ID_MAX bytes of [A-Za-z0-9._:-]. */
bool fl_id_valid(const char *s);

/* Wire names of the small enums; each returns NULL for NONE / out of range,
 * and the *_from_name functions return the NONE value for an unknown name. */
const char *fl_severity_name(fl_severity s);
fl_severity fl_severity_from_name(const char *name);
const char *fl_role_name(fl_role r);
fl_role fl_role_from_name(const char *name);
const char *fl_action_name(fl_action a);
fl_action fl_action_from_name(const char *name);
const char *fl_cmd_status_name(fl_cmd_status s);
fl_cmd_status fl_cmd_status_from_name(const char *name);
const char *fl_subject_name(fl_subject s);
fl_subject fl_subject_from_name(const char *name);
const char *fl_query_what_name(fl_query_what w);
fl_query_what fl_query_what_from_name(const char *name);

#endif
