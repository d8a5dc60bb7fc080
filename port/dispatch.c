/*
 * What to do with each frame from Erlang, whichever thread read it (the Python
 * thread while it is idle, the loop thread while Python is busy): answer the ops
 * that must not wait for Python (cancel, interrupt, info), hand callback replies to
 * their waiters, and queue everything else for the Python thread. Never touches a
 * PyObject, so it runs without the GIL. Thread-safe.
 */
#include "dispatch.h"

#include <ei.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "callback.h"
#include "control.h"
#include "envs.h"
#include "inbox.h"
#include "log.h"
#include "loop.h"
#include "memory.h"
#include "outbox.h"
#include "protocol.h"
#include "pyport/wire.h"
#include "worker.h"

static size_t g_max_frame = PYPORT_DEFAULT_MAX_FRAME;
static char g_python_version[32];

void dispatch_init(size_t max_frame, int max_depth, const char *python_version)
{
    g_max_frame = max_frame;
    proto_set_max_depth(max_depth);
    snprintf(g_python_version, sizeof g_python_version, "%s", python_version);
}

/* ---- ops answered on this thread ---------------------------------------- */

static void answer_cancelled(int64_t id)
{
    buf_t b;
    buf_init(&b, 64);
    proto_begin_reply(&b, "error", id);
    proto_atom(&b, "cancelled");
    proto_send(&b);
}

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0;
    long rss = 0;
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) {
            rss = 0;
        }
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

static void answer_info(int64_t id)
{
    buf_t b;
    buf_init(&b, 256);
    proto_begin_reply(&b, "reply", id);
    proto_map(&b, 7);
    proto_atom(&b, "current");
    int64_t cur = ctl_current();
    if (cur == 0) {
        proto_atom(&b, "idle");
    } else {
        int op;
        int64_t started;
        ctl_current_info(&op, &started);
        proto_map(&b, 3);
        proto_atom(&b, "id");
        proto_long(&b, cur);
        proto_atom(&b, "op");
        proto_atom(&b, op >= 0 && op < OP_COUNT ? proto_op_info((proto_op_t)op)->name : "unknown");
        proto_atom(&b, "running_ms");
        proto_long(&b, ctl_now_ms() - started);
    }
    proto_atom(&b, "envs");
    proto_long(&b, (int64_t)env_count());
    proto_atom(&b, "queue");
    proto_long(&b, (int64_t)inbox_len());
    proto_atom(&b, "calls");
    proto_long(&b, worker_calls());
    proto_atom(&b, "os_pid");
    proto_long(&b, getpid());
    proto_atom(&b, "rss_bytes");
    proto_long(&b, rss_bytes());
    proto_atom(&b, "python_version");
    proto_binary(&b, g_python_version, strlen(g_python_version));
    proto_send(&b);
}

static void handle_here(job_t *job)
{
    switch (job->op) {
    case OP_CANCEL: {
        long long id;
        int index = job->index;
        if (ei_decode_longlong(job->frame, &index, &id) < 0) {
            log_warn("cancel without a request id");
            break;
        }
        job_t *queued = inbox_take(id);
        if (queued != NULL) {
            /* Not started yet: it never runs, and still gets its one reply. */
            answer_cancelled(id);
            job_free(queued);
        } else {
            /* Running now (the signal raises in it), or awaiting on the event
               loop (the job cancels its task): one of the two applies. */
            ctl_request(CTL_CANCEL, id);
            job_t *copy = mem_calloc(1, sizeof *copy);
            *copy = *job;
            copy->frame = mem_dup(job->frame, job->len);
            inbox_push(copy);
        }
        break;
    }
    case OP_INTERRUPT: {
        char kind[MAXATOMLEN];
        int index = job->index;
        if (ei_decode_atom(job->frame, &index, kind) < 0) {
            log_warn("interrupt without a kind");
            break;
        }
        ctl_request(strcmp(kind, "memory") == 0 ? CTL_MEMORY : CTL_INTERRUPT, ctl_current());
        break;
    }
    case OP_INFO:
        answer_info(job->id);
        break;
    default:
        log_warn("op %s reached the loop thread", proto_op_info((proto_op_t)job->op)->name);
        break;
    }
}

/* ---- frames in ---------------------------------------------------------- */

void dispatch_reject(const job_t *job, const char *why)
{
    if (job->id > 0) {
        char *frame;
        size_t len;
        proto_badarg_frame(job->id, why, &frame, &len);
        outbox_push(frame, len);
    } else {
        log_warn("dropped a malformed frame: %s", why);
    }
}

void dispatch_frame(char *frame, size_t len)
{
    job_t *job = mem_calloc(1, sizeof *job);
    job->frame = frame;
    job->len = len;
    const char *err = NULL;
    if (proto_peek(frame, len, job, &err) < 0) {
        dispatch_reject(job, err);
        job_free(job);
        return;
    }

    if (job->op == OP_CALLBACK_REPLY) {
        cb_route(job);
        return;
    }
    if (proto_op_info((proto_op_t)job->op)->where == ON_LOOP) {
        handle_here(job);
        job_free(job);
        return;
    }
    inbox_push(job);
}

void dispatch_oversize(const char *peek, size_t peek_len, size_t total)
{
    job_t job;
    memset(&job, 0, sizeof job);
    const char *err = NULL;
    proto_peek_header(peek, peek_len, &job, &err);
    if (job.id <= 0) {
        log_warn("dropped a frame of %zu bytes (max_frame is %zu)", total, g_max_frame);
        return;
    }
    buf_t b;
    buf_init(&b, 64);
    proto_begin_reply(&b, "error", job.id);
    proto_tuple(&b, 3);
    proto_atom(&b, "too_large");
    proto_long(&b, (int64_t)total);
    proto_long(&b, (int64_t)g_max_frame);
    proto_send(&b);
}

void dispatch_eof(int mid_frame)
{
    if (mid_frame) {
        log_error("stdin closed in the middle of a frame");
        _exit(PYPORT_EXIT_FRAMING);
    }
    /* Erlang closed the port or died: stop the Python thread, and make sure the
       process ends soon even if Python is stuck. */
    job_t *stop = mem_calloc(1, sizeof *stop);
    stop->op = JOB_STOP;
    inbox_push(stop);
    ctl_request(CTL_INTERRUPT, ctl_current());
    loop_exit_soon();
}
