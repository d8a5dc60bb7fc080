/*
 * What to do with each frame from Erlang, whichever thread read it (the Python
 * thread while it is idle, the loop thread while Python is busy): answer the ops
 * that must not wait for Python (cancel, interrupt, info, credit), hand callback replies to
 * their waiters, and queue everything else for the Python thread. Never touches a
 * PyObject, so it runs without the GIL. Thread-safe.
 */
#include "dispatch.h"

#include <ei.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "credit.h"
#include "exits.h"
#include "frames.h"
#include "inbox.h"
#include "log.h"
#include "memory.h"
#include "protocol.h"
#include "pyport/wire.h"
#include "stats.h"
#include "waiters.h"

static size_t g_max_frame = PYPORT_DEFAULT_MAX_FRAME;
static char g_python_version[32];
static void (*g_exit_soon)(void);

void dispatch_init(const dispatch_cfg_t *cfg)
{
    g_max_frame = cfg->max_frame;
    g_exit_soon = cfg->exit_soon;
    proto_set_max_depth(cfg->max_depth);
    snprintf(g_python_version, sizeof g_python_version, "%s", cfg->python_version);
}

/* ---- ops answered on this thread ---------------------------------------- */

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
    frame_info_t info = {
        .current = ctl_current(),
        .op = "unknown",
        .envs = stats_envs(),
        .queue = (int64_t)inbox_len(),
        .calls = stats_calls(),
        .os_pid = getpid(),
        .rss_bytes = rss_bytes(),
        .python_version = g_python_version,
    };
    if (info.current != 0) {
        int op;
        int64_t started;
        ctl_current_info(&op, &started);
        if (op >= 0 && op < OP_COUNT) {
            info.op = proto_op_info((proto_op_t)op)->name;
        }
        info.running_ms = ctl_now_ms() - started;
    }
    frame_info(id, &info);
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
            frame_cancelled(id);
            job_free(queued);
        } else {
            /* Taken from the inbox, it is about to begin (it will not run) or
               runs (the signal raises in it once it is on top); or it awaits on
               the event loop, or became a task just now: the copy queued here
               cancels its task. At most one of these applies. */
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
    case OP_CREDIT: {
        char kind[MAXATOMLEN];
        long long bytes;
        int index = job->index;
        if (ei_decode_atom(job->frame, &index, kind) < 0 ||
            ei_decode_longlong(job->frame, &index, &bytes) < 0 || bytes < 0 ||
            (strcmp(kind, "output") != 0 && strcmp(kind, "send") != 0)) {
            log_warn("malformed credit");
            break;
        }
        credit_return(strcmp(kind, "output") == 0 ? CREDIT_OUTPUT : CREDIT_SEND, bytes);
        break;
    }
    default:
        log_warn("op %s reached the loop thread", proto_op_info((proto_op_t)job->op)->name);
        break;
    }
}

/* ---- frames in ---------------------------------------------------------- */

static void dispatch_one(char *frame, size_t len);

/* A batch: each of its frames as if it had been read alone (a copy of its own,
   which dispatch_one takes). A malformed rest is dropped with a warning. */
static void dispatch_batch(char *batch, size_t len)
{
    size_t pos = 0;
    const char *inner;
    size_t inner_len;
    int rc;
    while ((rc = proto_batch_next(batch, len, &pos, &inner, &inner_len)) > 0) {
        dispatch_one(mem_dup(inner, inner_len), inner_len);
    }
    if (rc < 0) {
        log_warn("dropped the rest of a malformed batch of %zu bytes at byte %zu", len, pos);
    }
    mem_free(batch);
}

void dispatch_frame(char *frame, size_t len)
{
    if (len > 0 && (unsigned char)frame[0] == PYPORT_BATCH_TAG) {
        dispatch_batch(frame, len);
    } else {
        dispatch_one(frame, len);
    }
}

static void dispatch_one(char *frame, size_t len)
{
    proto_head_t head;
    const char *err = NULL;
    int rc = proto_peek(frame, len, &head, &err);
    if (rc < 0) {
        frame_reject(head.id, err);
        mem_free(frame);
        return;
    }
    job_t *job = mem_calloc(1, sizeof *job);
    job->frame = frame;
    job->len = len;
    job->op = head.op;
    job->id = head.id;
    job->index = head.index;
    job->parent = head.parent;
    if (job->op == OP_CALLBACK_REPLY) {
        waiters_route(job);
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
    proto_head_t head;
    const char *err = NULL;
    proto_peek_header(peek, peek_len, &head, &err);
    if (head.id <= 0) {
        log_warn("dropped a frame of %zu bytes (max_frame is %zu)", total, g_max_frame);
        return;
    }
    frame_too_large(head.id, total, g_max_frame);
}

void dispatch_eof(int mid_frame)
{
    if (mid_frame) {
        log_error("stdin closed in the middle of a frame");
        exit_now(PYPORT_EXIT_FRAMING);
    }
    /* Erlang closed the port or died: stop the Python thread, and make sure the
       process ends soon even if Python is stuck. */
    job_t *stop = mem_calloc(1, sizeof *stop);
    stop->op = JOB_STOP;
    inbox_push(stop);
    ctl_request(CTL_INTERRUPT, ctl_current());
    g_exit_soon();
}
