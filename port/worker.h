/*
 * The Python thread's work: take jobs from the inbox, run each request in its
 * caller's environment, and answer it (at once, or when its coroutine or stream
 * completes). Runs on the process's main thread with the GIL held, releasing it
 * while waiting for work. worker_handle is reentrant, so requests can run nested
 * inside a callback wait.
 */
#ifndef PYPORT_WORKER_H
#define PYPORT_WORKER_H

#include <stddef.h>

#include "inbox.h"

typedef struct {
    size_t max_frame;
} worker_cfg_t;

/// Prepares the worker after Python and the erlang module are up.
/// Returns 0 or -1 with a Python error set.
int worker_init(const worker_cfg_t *cfg);

/// Serves jobs until a JOB_STOP job arrives. Python thread, GIL held.
void worker_run(void);

/// Runs one job and frees it. Python thread, GIL held.
void worker_handle(job_t *job);

/// Returns 1 once a JOB_STOP job has been handled.
int worker_stopping(void);

#endif
