/* The local control interface of the fleet-agent daemon: a Unix socket with
 * a line protocol, one request per connection.
 *
 * Request: one line, the arguments separated by TAB, ended by LF, at most
 * CTL_LINE_MAX bytes of printable text. Answer: zero or more result lines,
 * then one final line, "ok" or "error <code> <message>", then the server
 * closes. Codes: usage, failed, timeout, refused, busy (docs/agent.md). */
#ifndef AGENT_CTL_H
#define AGENT_CTL_H

#include <stdatomic.h>
#include <stddef.h>

#include "fleet/agent.h"

#define CTL_LINE_MAX 1024
#define CTL_ARGS_MAX 16

/* Exit codes of `fleet-agent ctl`, and the error codes of the final line. */
typedef enum ctl_status {
  CTL_OK = 0,
  CTL_FAILED = 1,  /* "failed": the agent could not do it (outbox full, ...) */
  CTL_USAGE = 2,   /* "usage": bad command or arguments */
  CTL_TIMEOUT = 3, /* "timeout": --wait ended without a decision */
  CTL_REFUSED = 4, /* "refused": unlock refused */
  CTL_BUSY = 5,    /* "busy": too many control connections */
} ctl_status;

/* Returns the token of s in the final line ("usage"), or NULL for CTL_OK. */
const char *ctl_status_token(ctl_status s);
/* Returns the status named by token, CTL_FAILED if unknown. */
ctl_status ctl_status_from_token(const char *token);

typedef struct ctl_server ctl_server;

/* Listens on path (a stale socket file is replaced) and serves requests for
 * a on a thread of its own, one short-lived thread per connection. Returns
 * FL_OK and *out (stop with ctl_server_stop), or FL_ERR_IO. */
int ctl_server_start(const char *path, fl_agent *a, ctl_server **out);

/* Stops accepting, waits for the connections in hand, removes the socket
 * file and frees s. NULL accepted. */
void ctl_server_stop(ctl_server *s);

/* Runs one request (argv[0] is the command) against a, writing result lines
 * to fd; on failure writes the reason (one line, no newline) into err.
 * stopping aborts a --wait. Returns the status for the final line. */
ctl_status ctl_execute(fl_agent *a, int argc, char **argv, int fd, const atomic_bool *stopping,
                       char *err, size_t errcap);

/* `fleet-agent ctl [--socket PATH | --config FILE] COMMAND ARGS...`: sends
 * the request, prints the result lines to stdout and an error to stderr.
 * Returns the process exit code (a ctl_status). */
int ctl_client_main(int argc, char **argv);

#endif
