/* hub_outlets_pick (hub/outlets.h): a device's topics, of both families and
 * every channel, go on one outlet chosen by the device id's FNV-1a hash; any
 * other topic on none of them (-1: the main connection). */
#include <stdio.h>
#include <string.h>

#include "fleet/partition.h"
#include "outlets.h"
#include "unit.h"

int main(void) {
  const char *devs[] = {"V1", "K1", "B-T40", "kiosk-0042", "car 7"};
  for (int n = 1; n <= HUB_OUTLETS_MAX; n++) {
    for (size_t d = 0; d < sizeof devs / sizeof devs[0]; d++) {
      int want = (int)(fl_fnv1a32(devs[d]) % (uint32_t)n);
      char t[160];
      snprintf(t, sizeof t, "fleet/v1/dev/%s/down/ack", devs[d]);
      CHECK(hub_outlets_pick(t, n) == want);
      snprintf(t, sizeof t, "fleet/v1/dev/%s/down/reply", devs[d]);
      CHECK(hub_outlets_pick(t, n) == want);
      snprintf(t, sizeof t, "fleet/v1/p/%u/dev/%s/down/cmd", fl_partition_of(devs[d], 256),
               devs[d]);
      CHECK(hub_outlets_pick(t, n) == want);
      snprintf(t, sizeof t, "fleet/v1/p/%u/dev/%s/down/sync", fl_partition_of(devs[d], 256),
               devs[d]);
      CHECK(hub_outlets_pick(t, n) == want);
    }
    const char *others[] = {"fleet/v1/state/vehicle/V1", "fleet/v1/notify/rental",
                            "fleet/v1/json/state/vehicle/V1", "fleet/v1/hub/status",
                            "fleet/v1/dev/", "fleet/v1/p/3/status", "fleet/v1/p/3/devx/V1/a"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
      CHECK(hub_outlets_pick(others[i], n) == -1);
  }
  int spread = 0;
  for (int i = 0; i < 64; i++) {
    char t[64];
    snprintf(t, sizeof t, "fleet/v1/dev/D%d/down/ack", i);
    spread |= 1 << hub_outlets_pick(t, 4);
  }
  CHECK(spread == 0xF); /* 64 devices use all four connections */
  CHECK(hub_outlets_pick(NULL, 4) == -1);
  return unit_report("hub_outlets");
}
