/* Unit test of cluster mode's pure rules (hub/cluster.h): the fair shares
 * always add up to the partition count and differ by at most one, every
 * hub computing the same split; and the partition status encodes as the
 * CBOR map {partition, epoch, hub, online}, read back with libcbor. */
#include <cbor.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "fleet/error.h"
#include "unit.h"

static void shares_add_up(void) {
  static const uint32_t counts[] = {1, 2, 7, 16, 255, 256, 4096};
  for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
    for (size_t n = 1; n <= 12; n++) {
      uint32_t sum = 0, lo = UINT32_MAX, hi = 0;
      for (size_t r = 0; r < n; r++) {
        uint32_t s = hub_cluster_fair_share(counts[c], n, r);
        sum += s;
        lo = s < lo ? s : lo;
        hi = s > hi ? s : hi;
      }
      CHECK(sum == counts[c]);
      CHECK(hi - lo <= 1);
      CHECK(hub_cluster_fair_share(counts[c], n, 0) == hi); /* the first ones take more */
    }
  }
  CHECK(hub_cluster_fair_share(16, 3, 3) == 0); /* not among the live hubs */
  CHECK(hub_cluster_fair_share(16, 3, 0) == 6 && hub_cluster_fair_share(16, 3, 2) == 5);
}

/* The value of key in map, or NULL. */
static cbor_item_t *lookup(cbor_item_t *map, const char *key) {
  struct cbor_pair *pairs = cbor_map_handle(map);
  for (size_t i = 0; i < cbor_map_size(map); i++)
    if (cbor_isa_string(pairs[i].key) && cbor_string_length(pairs[i].key) == strlen(key) &&
        memcmp(cbor_string_handle(pairs[i].key), key, strlen(key)) == 0)
      return pairs[i].value;
  return NULL;
}

static void status_encodes(void) {
  uint8_t buf[256];
  size_t len = 0;
  CHECK(hub_cluster_status_encode(17, 42, "hub-2", true, buf, sizeof buf, &len) == FL_OK);
  struct cbor_load_result res;
  cbor_item_t *map = cbor_load(buf, len, &res);
  CHECK(map && cbor_isa_map(map) && cbor_map_size(map) == 4);
  if (map && cbor_isa_map(map)) {
    cbor_item_t *part = lookup(map, "partition"), *epoch = lookup(map, "epoch");
    cbor_item_t *hub = lookup(map, "hub"), *online = lookup(map, "online");
    CHECK(part && cbor_isa_uint(part) && cbor_get_int(part) == 17);
    CHECK(epoch && cbor_isa_uint(epoch) && cbor_get_int(epoch) == 42);
    CHECK(hub && cbor_isa_string(hub) && cbor_string_length(hub) == 5 &&
          memcmp(cbor_string_handle(hub), "hub-2", 5) == 0);
    CHECK(online && cbor_is_bool(online) && cbor_get_bool(online));
  }
  if (map) cbor_decref(&map);
  CHECK(hub_cluster_status_encode(1, 1, "hub", false, buf, 4, &len) == FL_ERR_BUFFER);
}

int main(void) {
  shares_add_up();
  status_encodes();
  return unit_report("hub_cluster");
}
