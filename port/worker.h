/*
 * The Python thread's work: take jobs from the inbox, run each request in its
 * caller's environment, and answer it (at once, or when its coroutine or stream
 * completes). Runs on the process's main thread with the GIL held, releasing it
 * while waiting for work. worker_serve is the one serving loop, reentrant, so
 * requests run nested inside a callback wait and inside the event loop.
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

/// What worker_serve does when no job it may take waits.
typedef enum {
    SERVE_RETURN,         /* return SERVE_IDLE (the event loop's reader) */
    SERVE_BLOCK,          /* wait for the next job, the GIL released */
    SERVE_RUN_EVENT_LOOP, /* run the event loop while coroutines are pending, else wait */
} serve_wait_t;

typedef enum {
    SERVE_DONE,    /* done() said so */
    SERVE_IDLE,    /* no job to take (SERVE_RETURN) */
    SERVE_STOPPED, /* the port is stopping (stdin closed) */
    SERVE_ERROR,   /* a Python error is set: an action for the request on top, or
                      a signal handler raised (interruptible only) */
} serve_end_t;

/// How to serve: which jobs to take, when to stop, how to wait.
typedef struct {
    inbox_filter_t filter;  /* NULL: every job */
    int (*done)(void *ctx); /* NULL: never */
    void *ctx;              /* for filter and done */
    serve_wait_t wait;
    int interruptible; /* an action aimed at the request on top (or a signal
                          handler's error) ends the serving with SERVE_ERROR */
} serve_t;

/// Raises the action pending for the request running now (the one on top of
/// the stack, or the coroutine's), if any: returns -1 with RequestTimeout,
/// KeyboardInterrupt or MemoryError set, else 0. Python thread, GIL held.
int worker_raise_pending(void);

/// The one serving loop of the Python thread. GIL held.
serve_end_t worker_serve(const serve_t *s);

/// Serves every job, running the event loop while coroutines are pending, until
/// a JOB_STOP job arrives. Python thread, GIL held.
void worker_run(void);

/// Runs one job and frees it. Python thread, GIL held.
void worker_handle(job_t *job);

/// Serves, without waiting, the jobs of request's call chain and the jobs that
/// are not requests (a loop run inside a request: erlang.run). Python thread.
void worker_serve_chain(int64_t request);

#endif
