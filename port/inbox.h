/*
 * The queue of decoded-enough frames from the loop thread to the Python thread.
 * The loop thread pushes; the Python thread pops. An eventfd becomes readable when
 * the queue turns non-empty, so the Python thread can sleep in poll(2) (or let
 * asyncio watch the fd). Thread-safe: one mutex guards the list.
 */
#ifndef PYPORT_INBOX_H
#define PYPORT_INBOX_H

#include <stddef.h>
#include <stdint.h>

typedef struct job {
    struct job *next;
    int op;      /* proto_op_t */
    int64_t id;  /* request id; 0 for frames that take no reply */
    char *frame; /* owned ETF bytes, version byte first */
    size_t len;
    int index; /* ei index of the first field after the op (and id) */
} job_t;

/// Creates the eventfd; call once before any other inbox function.
void inbox_init(void);

/// Returns the fd that is readable while jobs may be waiting.
int inbox_fd(void);

/// Appends a job (ownership moves to the queue). Any thread; the eventfd is only
/// written when another thread than the Python thread makes the queue non-empty.
void inbox_push(job_t *job);

/// Makes the eventfd readable, waking the Python thread from inbox_wait.
void inbox_kick(void);

/// Removes and returns the oldest job, or NULL. Python thread.
job_t *inbox_pop(void);

/// Removes and returns the queued job with request id `id`, or NULL if none is queued.
job_t *inbox_take(int64_t id);

/// Blocks until the queue is non-empty, timeout_ms passes (-1: forever), or a
/// signal arrives. Returns 1 if jobs are waiting. Call without the GIL.
int inbox_wait(int timeout_ms);

/// Consumes pending wake-ups of the eventfd (before popping every job, when the
/// fd is watched by an event loop rather than inbox_wait).
void inbox_drain(void);

/// Returns the number of queued jobs.
size_t inbox_len(void);

/// Frees a job and its frame.
void job_free(job_t *job);

#endif
