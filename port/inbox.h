/*
 * The queue of peeked frames (jobs) for the Python thread. Whichever thread read
 * a frame pushes it; the Python thread takes the first job it may serve now
 * (jobs it may not serve yet keep their order). An eventfd becomes readable when
 * another thread makes the queue non-empty, or pushes while the Python thread
 * waits for a new job, so that thread can sleep in poll(2) (reader.c) or let
 * asyncio watch the fd. Thread-safe: one mutex guards the list.
 */
#ifndef PYPORT_INBOX_H
#define PYPORT_INBOX_H

#include <stddef.h>
#include <stdint.h>

/* A job with this op asks the Python thread's loop to return (stdin closed). */
#define JOB_STOP (-2)

typedef struct job {
    struct job *next;
    int op;      /* proto_op_t, or JOB_STOP */
    int64_t id;  /* request id; 0 for frames that take no reply */
    char *frame; /* owned ETF bytes, version byte first */
    size_t len;
    int index;      /* ei index of the first field after the op (and id) */
    int64_t parent; /* a request made from a callback of request `parent`, or 0 */
} job_t;

/// Creates the eventfd; call once before any other inbox function.
void inbox_init(void);

/// Returns the fd that is readable while jobs may be waiting.
int inbox_fd(void);

/// Appends a job (ownership moves to the queue). Any thread; the eventfd is only
/// written by another thread than the Python thread, when the queue was empty
/// or inbox_want_wake asked for it.
void inbox_push(job_t *job);

/// Python thread, before it sleeps on the eventfd waiting for a new job: the
/// next push by another thread writes the eventfd even if the queue is not empty.
void inbox_want_wake(void);

/// Returns a counter that every push increments: compare two readings to know
/// whether a job arrived in between. Any thread.
uint64_t inbox_seq(void);

/// Which jobs the Python thread may take now (NULL: any job).
typedef int (*inbox_filter_t)(const job_t *job, void *ctx);

/// Makes the eventfd readable, waking the Python thread (or its event loop).
void inbox_kick(void);

/// Removes and returns the oldest job that `filter` accepts (or the oldest job
/// when filter is NULL), or NULL. A request taken this way is claimed
/// (ctl_claim) before the queue is unlocked. Python thread.
job_t *inbox_pop(inbox_filter_t filter, void *ctx);

/// Removes and returns the queued job with request id `id`, or NULL if none is queued.
job_t *inbox_take(int64_t id);

/// Consumes pending wake-ups of the eventfd (before popping every job).
void inbox_drain(void);

/// Returns the number of queued jobs.
size_t inbox_len(void);

/// Frees a job and its frame.
void job_free(job_t *job);

#endif
