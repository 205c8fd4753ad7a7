/* CBOR to JSON, for people and for dashboards that read JSON: the hub's
 * JSON mirror of its state and notification topics, and `fleetctl watch`.
 * Maps become objects (text keys), arrays arrays, byte strings hex text,
 * integers and floats numbers, true/false/null themselves. */
#ifndef HUB_CBOR_JSON_H
#define HUB_CBOR_JSON_H

#include <stddef.h>
#include <stdint.h>

/* Converts the one CBOR item in buf[0..len) to compact JSON. Returns FL_OK
 * and *out (a NUL-terminated string, free with free()), FL_ERR_MALFORMED when
 * buf is not one well-formed item, or FL_ERR_NOMEM. */
int cbor_to_json(const uint8_t *buf, size_t len, char **out);

#endif
