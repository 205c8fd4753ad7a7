/* Unit test of cluster mode's pure rules (hub/cluster.h): the fair shares
 * always add up to the partition count and differ by at most one, every
 * hub computing the same split; and the partition status a hub publishes
 * decodes (the codec, protocol P-PART-5) to what it was given. */
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "fleet/error.h"
#include "fleet/proto.h"
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

static void status_encodes(void) {
  uint8_t buf[512];
  size_t len = 0;
  CHECK(hub_cluster_status_encode(17, 42, "hub-2", 9, true, buf, sizeof buf, &len) == FL_OK);
  fl_msg m;
  fl_decode_error err;
  CHECK(fl_msg_decode(buf, len, &m, &err) == FL_OK);
  CHECK(m.env.type == FL_MSG_PARTITION_STATUS);
  CHECK(strcmp(m.env.dev, "hub") == 0 && m.env.seq == 0 && m.env.boot == 9);
  CHECK(m.body.partition_status.partition == 17 && m.body.partition_status.epoch == 42);
  CHECK(strcmp(m.body.partition_status.hub, "hub-2") == 0 && m.body.partition_status.online);
  CHECK(hub_cluster_status_encode(1, 1, "hub", 1, false, buf, 4, &len) != FL_OK);
}

int main(void) {
  shares_add_up();
  status_encodes();
  return unit_report("hub_cluster");
}
