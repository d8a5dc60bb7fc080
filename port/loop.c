/*
 * The libuv loop thread (see loop.h). All handles live in this file and are
 * touched only on the loop thread, except g_async, which other threads signal
 * through uv_async_send. Handle memory is static; shutdown closes every handle
 * and runs the loop until uv_loop_close succeeds.
 */
#include "loop.h"

#include <ei.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "buf.h"
#include "callback.h"
#include "control.h"
#include "envs.h"
#include "frame.h"
#include "inbox.h"
#include "log.h"
#include "memory.h"
#include "outbox.h"
#include "protocol.h"
#include "pyport/wire.h"
#include "worker.h"

#define LOOP_READ_CHUNK (64 * 1024)

static loop_cfg_t g_cfg;
static uv_loop_t g_loop;
static uv_pipe_t g_in;
static uv_pipe_t g_capture[2];
static int g_capture_open[2];
static uv_async_t g_async;
static uv_poll_t g_out_poll;
static int g_out_polling;
static uv_timer_t g_exit_timer;
static frame_reader_t g_reader;
static pthread_t g_thread;
static atomic_int g_stopping;
static char g_read_buf[LOOP_READ_CHUNK];

static void check_uv(int rc, const char *what)
{
    if (rc < 0) {
        log_error("%s: %s", what, uv_strerror(rc));
        abort();
    }
}

static void send_built(buf_t *b)
{
    proto_end(b, PYPORT_HARD_MAX_FRAME);
    size_t len;
    char *frame = buf_steal(b, &len);
    outbox_push(frame, len);
}

/* ---- ops answered on this thread ---------------------------------------- */

static void answer_cancelled(int64_t id)
{
    buf_t b;
    buf_init(&b, 64);
    proto_begin_reply(&b, "error", id);
    proto_atom(&b, "cancelled");
    send_built(&b);
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
    proto_binary(&b, g_cfg.python_version, strlen(g_cfg.python_version));
    send_built(&b);
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

static void reject_frame(const job_t *job, const char *why)
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

static void on_frame(void *ctx, char *frame, size_t len)
{
    (void)ctx;
    job_t *job = mem_calloc(1, sizeof *job);
    job->frame = frame;
    job->len = len;
    const char *err = NULL;
    if (proto_peek(frame, len, job, &err) < 0) {
        reject_frame(job, err);
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

static void on_oversize(void *ctx, const char *peek, size_t peek_len, size_t total)
{
    (void)ctx;
    job_t job;
    memset(&job, 0, sizeof job);
    const char *err = NULL;
    proto_peek(peek, peek_len, &job, &err);
    if (job.id <= 0) {
        log_warn("dropped a frame of %zu bytes (max_frame is %zu)", total, g_cfg.max_frame);
        return;
    }
    buf_t b;
    buf_init(&b, 64);
    proto_begin_reply(&b, "error", job.id);
    proto_tuple(&b, 3);
    proto_atom(&b, "too_large");
    proto_long(&b, (int64_t)total);
    proto_long(&b, (int64_t)g_cfg.max_frame);
    send_built(&b);
}

static const frame_handlers_t g_handlers = {on_frame, on_oversize};

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    (void)h;
    (void)suggested;
    *out = uv_buf_init(g_read_buf, sizeof g_read_buf);
}

static void exit_timer_cb(uv_timer_t *t)
{
    (void)t;
    /* Python did not finish in time after Erlang went away: no orphans. */
    _exit(PYPORT_EXIT_OK);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n > 0) {
        frame_feed(&g_reader, b->base, (size_t)n, &g_handlers, NULL);
        return;
    }
    if (n == 0) {
        return;
    }
    uv_read_stop(s);
    if (n != UV_EOF) {
        log_error("read from Erlang failed: %s", uv_strerror((int)n));
        _exit(PYPORT_EXIT_IO);
    }
    if (!frame_reader_idle(&g_reader)) {
        log_error("stdin closed in the middle of a frame");
        _exit(PYPORT_EXIT_FRAMING);
    }
    /* Erlang closed the port or died: stop the Python thread, and make sure the
       process ends soon even if Python is stuck. */
    job_t *stop = mem_calloc(1, sizeof *stop);
    stop->op = JOB_STOP;
    inbox_push(stop);
    ctl_request(CTL_INTERRUPT, ctl_current());
    check_uv(uv_timer_start(&g_exit_timer, exit_timer_cb, (uint64_t)g_cfg.exit_grace_ms, 0),
             "uv_timer_start");
}

/* ---- stray output on fd 1 and fd 2 ---------------------------------------- */

static void capture_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n < 0) {
        uv_read_stop(s);
        return;
    }
    if (n == 0) {
        return;
    }
    int which = (uv_pipe_t *)s == &g_capture[1];
    buf_t f;
    buf_init(&f, (size_t)n + 48);
    proto_begin(&f);
    proto_tuple(&f, 4);
    proto_atom(&f, "output");
    proto_long(&f, 0);
    proto_atom(&f, which ? "fd2" : "fd1");
    proto_binary(&f, b->base, (size_t)n);
    send_built(&f);
}

/* ---- writing when the pipe was full ---------------------------------------- */

static void out_poll_cb(uv_poll_t *p, int status, int events)
{
    (void)events;
    if (status < 0) {
        log_error("poll on the pipe to Erlang failed: %s", uv_strerror(status));
        _exit(PYPORT_EXIT_IO);
    }
    if (!outbox_on_writable()) {
        uv_poll_stop(p);
        g_out_polling = 0;
        outbox_flush(); /* frames queued while parked */
    }
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static void walk_close_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, close_cb);
    }
}

static void async_cb(uv_async_t *a)
{
    (void)a;
    if (atomic_load(&g_stopping)) {
        uv_walk(&g_loop, walk_close_cb, NULL);
        return;
    }
    if (outbox_parked() && !g_out_polling) {
        check_uv(uv_poll_start(&g_out_poll, UV_WRITABLE, out_poll_cb), "uv_poll_start");
        g_out_polling = 1;
    }
}

static void *thread_main(void *arg)
{
    (void)arg;
    uv_run(&g_loop, UV_RUN_DEFAULT);
    while (uv_loop_close(&g_loop) == UV_EBUSY) {
        uv_run(&g_loop, UV_RUN_NOWAIT);
    }
    return NULL;
}

void loop_wake(void)
{
    uv_async_send(&g_async);
}

void loop_start(const loop_cfg_t *cfg)
{
    g_cfg = *cfg;
    frame_reader_init(&g_reader, cfg->max_frame);
    check_uv(uv_loop_init(&g_loop), "uv_loop_init");
    check_uv(uv_async_init(&g_loop, &g_async, async_cb), "uv_async_init");
    check_uv(uv_timer_init(&g_loop, &g_exit_timer), "uv_timer_init");
    check_uv(uv_poll_init(&g_loop, &g_out_poll, cfg->out_fd), "uv_poll_init");
    check_uv(uv_pipe_init(&g_loop, &g_in, 0), "uv_pipe_init");
    check_uv(uv_pipe_open(&g_in, cfg->in_fd), "uv_pipe_open(stdin)");
    check_uv(uv_read_start((uv_stream_t *)&g_in, alloc_cb, read_cb), "uv_read_start");
    for (int i = 0; i < 2; i++) {
        if (cfg->capture_fd[i] < 0) {
            continue;
        }
        check_uv(uv_pipe_init(&g_loop, &g_capture[i], 0), "uv_pipe_init");
        check_uv(uv_pipe_open(&g_capture[i], cfg->capture_fd[i]), "uv_pipe_open(capture)");
        check_uv(uv_read_start((uv_stream_t *)&g_capture[i], alloc_cb, capture_cb),
                 "uv_read_start");
        g_capture_open[i] = 1;
    }
    sigset_t all;
    sigset_t old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&g_thread, NULL, thread_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_error("pthread_create: %s", strerror(rc));
        abort();
    }
}

void loop_stop(void)
{
    atomic_store(&g_stopping, 1);
    uv_async_send(&g_async);
    pthread_join(g_thread, NULL);
    frame_reader_destroy(&g_reader);
}
