/*
 * Passing a context's three standard fds over a Unix socket with SCM_RIGHTS:
 * pyport-attach hands them to the warm template, and the template to its parked
 * spare (template.c). Plain C, no Python: linked into both programs.
 */
#ifndef PYPORT_FDPASS_H
#define PYPORT_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

/* Sends the `len' bytes at `buf' (len > 0) with a copy of each of `fds' on the
   connected socket `sock', retrying when interrupted. What sendmsg returns. */
ssize_t fdpass_send(int sock, const void *buf, size_t len, const int fds[3]);

#endif
