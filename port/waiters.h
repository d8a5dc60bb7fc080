/*
 * The threads waiting in erlang.call for their callback_reply, and the routing
 * of each reply to its waiter. A waiter lives on the waiting thread's stack and
 * is linked here while it waits. A reply read by the loop thread goes straight to
 * a sleeping waiter (another Python thread, woken through its condition
 * variable); a reply for the Python thread is queued in the inbox, which that
 * thread serves while it waits. Thread-safe (one mutex); no Python.
 */
#ifndef PYPORT_WAITERS_H
#define PYPORT_WAITERS_H

#include <pthread.h>
#include <stdint.h>

#include "inbox.h"

typedef struct waiter {
    struct waiter *next;
    int64_t id;
    int on_python_thread;
    pthread_cond_t cond;
    job_t *reply; /* owned once set */
} waiter_t;

/// Links w (caller storage) as the waiter of callback id. Any thread.
void waiters_add(waiter_t *w, int64_t id, int on_python_thread);

/// Unlinks w and returns its reply (owned), or NULL if none arrived.
job_t *waiters_remove(waiter_t *w);

/// Returns 1 once w's reply has arrived.
int waiters_done(waiter_t *w);

/// Blocks until w's reply arrives. Call without the GIL (any thread but the
/// Python thread, which serves the inbox instead).
void waiters_sleep(waiter_t *w);

/// A callback_reply frame was read (either thread): hands it to its sleeping
/// waiter, or queues it for the Python thread. Takes ownership of job.
void waiters_route(job_t *job);

/// Python thread: a callback_reply job taken from the inbox. Hands it to its
/// waiter and returns 1 (the waiter owns it), or returns 0 when no thread waits
/// for it (an erlang.async_call's reply, or a caller that gave up): the caller
/// keeps job.
int waiters_store(job_t *job);

#endif
