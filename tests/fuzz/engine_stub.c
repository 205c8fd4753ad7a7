/* Stand-ins for the engine that hub/http*.c call, so that the HTTP API's
 * request parsing links without the hub's engine, store and MQTT client. The
 * fuzz targets call the parsers directly and never reach these. */
#include <string.h>

#include "engine.h"
#include "fleet/error.h"
#include "rental.h"

int hub_engine_op(hub_engine *e, const hub_op *op, hub_op_result *res, int timeout_ms) {
  memset(res, 0, sizeof *res);
  res->code = FL_ERR_UNAVAILABLE;
  return FL_ERR_UNAVAILABLE;
}

void hub_engine_health(hub_engine *e, hub_health *h) { memset(h, 0, sizeof *h); }

int64_t rental_late_fee(const hub_config *cfg, const hub_rental *r, int64_t now_ms) { return 0; }
