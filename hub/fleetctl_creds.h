/* fleetctl creds: device logins for the broker, kept by fleetctl and applied
 * to mosquitto's password and ACL files from the hub's registry
 * (docs/operations.md, "Device credentials"). */
#ifndef FLEETCTL_CREDS_H
#define FLEETCTL_CREDS_H

/* Runs `fleetctl [global options] creds SUBCOMMAND ...` when argv's first
 * word that is not a global option (--hub URL, --json) is "creds"; returns
 * its exit status (0 done, 1 failed, 2 usage). Returns -1, having done
 * nothing, for any other command line. */
int fleetctl_creds_main(int argc, char **argv);

/* The one line fleetctl's help shows for creds. */
#define FLEETCTL_CREDS_HELP \
  "new ID [--role R] | list | rotate ID | revoke ID | sync (fleetctl creds --help)"

#endif
