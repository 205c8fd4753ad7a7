/* fleetctl watch (hub/fleetctl_watch.c). */
#ifndef HUB_FLEETCTL_WATCH_H
#define HUB_FLEETCTL_WATCH_H

/* Runs `fleetctl watch` with argv[0] = "watch". Returns the exit status
 * (0, 1 when the broker cannot be reached, 2 for a usage error). */
int fleetctl_watch(int argc, char **argv);

#endif
