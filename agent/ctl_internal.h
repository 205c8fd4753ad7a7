/* Internals of the control socket, exposed for tests/fuzz (not an API): the
 * parsing of one request, which ctl_server.c does before ctl_execute(). */
#ifndef AGENT_CTL_INTERNAL_H
#define AGENT_CTL_INTERNAL_H

#include <stddef.h>

/* Reads one request line from fd into buf (cap bytes, cap >= 2) up to its
 * LF, which becomes the terminating NUL. Returns the line's length, or -1
 * with the reason in *why (a static sentence): line too long, end of input
 * before the LF, read error or timeout. */
int ctl__read_request(int fd, char *buf, size_t cap, const char **why);

/* Splits line on TAB into argv (at most CTL_ARGS_MAX entries pointing into
 * line, which is changed). Returns the argument count, or -1 with the reason
 * in *why when the line holds a control character other than TAB or has too
 * many arguments. */
int ctl__split_request(char *line, char **argv, const char **why);

#endif
