/*
 * The libuv loop thread (see loop.h). All handles live in this file and are
 * touched only on the loop thread, except g_async, which other threads signal
 * through uv_async_send (a write was parked, reading changes hands, credit
 * returned, Erlang has gone). Handle memory is static; shutdown closes every handle
 * and runs the loop until uv_loop_close succeeds. The pipe from Erlang is read
 * here only while this thread owns reading (reader.c).
 */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "credit.h"
#include "exits.h"
#include "frames.h"
#include "log.h"
#include "outbox.h"
#include "pyport/wire.h"
#include "reader.h"

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
static uv_poll_t g_takeover;
static int g_reading;
static int g_eof; /* stdin has closed: never read again */
static pthread_t g_thread;
static atomic_int g_started;
static atomic_int g_stopping;
static atomic_int g_exit_requested;
static char g_read_buf[LOOP_READ_CHUNK];
static char g_capture_buf[LOOP_READ_CHUNK];
static size_t g_capture_overhead; /* bytes of an fd output frame besides the data */
static int g_capture_paused;

static void check_uv(int rc, const char *what)
{
    if (rc < 0) {
        log_error("%s: %s", what, uv_strerror(rc));
        abort();
    }
}

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
        rd_feed(b->base, (size_t)n);
        return;
    }
    if (n == 0) {
        return;
    }
    uv_read_stop(s);
    g_reading = 0;
    g_eof = 1;
    if (n != UV_EOF) {
        log_error("read from Erlang failed: %s", uv_strerror((int)n));
        exit_now(PYPORT_EXIT_IO);
    }
    rd_eof();
}

static void start_reading(void)
{
    if (!g_reading && !g_eof) {
        check_uv(uv_read_start((uv_stream_t *)&g_in, alloc_cb, read_cb), "uv_read_start");
        g_reading = 1;
    }
}

/* A job has run long: write the replies held back for the burst before it, and
   read on its behalf (cancel, info, callback replies). */
static void takeover_cb(uv_poll_t *p, int status, int events)
{
    (void)p;
    (void)events;
    if (status != 0) {
        return;
    }
    outbox_flush();
    if (rd_on_timer()) {
        start_reading();
    }
}

/* ---- stray output on fd 1 and fd 2 ---------------------------------------- */

/* The pipes behind fd 1/2 are read only as far as the output credit window
   allows: while it is used up they are not read, so writers to fd 1/2 block on
   the full pipe until credit returns (async_cb resumes). */

/* Bytes to read now for one output frame, 0 when the window is used up. */
static size_t capture_room(void)
{
    size_t room = credit_room(CREDIT_OUTPUT);
    if (room == SIZE_MAX || room >= g_capture_overhead + LOOP_READ_CHUNK) {
        return LOOP_READ_CHUNK;
    }
    if (room > g_capture_overhead) {
        return room - g_capture_overhead;
    }
    /* A window smaller than a frame's header: one byte, alone in flight. */
    return credit_idle(CREDIT_OUTPUT) ? 1 : 0;
}

static void capture_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    (void)h;
    (void)suggested;
    *out = uv_buf_init(g_capture_buf, (unsigned)capture_room());
}

static void capture_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void capture_reading(int on)
{
    for (int i = 0; i < 2; i++) {
        if (!g_capture_open[i]) {
            continue;
        }
        if (on) {
            check_uv(uv_read_start((uv_stream_t *)&g_capture[i], capture_alloc_cb, capture_cb),
                     "uv_read_start(capture)");
        } else {
            uv_read_stop((uv_stream_t *)&g_capture[i]);
        }
    }
    g_capture_paused = !on;
}

static void capture_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n == UV_ENOBUFS) {
        capture_reading(0); /* no credit left: resumed when it returns */
        return;
    }
    if (n < 0) {
        uv_read_stop(s);
        g_capture_open[(uv_pipe_t *)s == &g_capture[1]] = 0;
        return;
    }
    if (n == 0) {
        return;
    }
    int which = (uv_pipe_t *)s == &g_capture[1];
    buf_t f;
    frame_output(&f, 0, which ? "fd2" : "fd1", b->base, (size_t)n);
    credit_charge(CREDIT_OUTPUT, frame_size(&f));
    frame_send(&f);
    if (capture_room() == 0) {
        capture_reading(0);
    }
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
    if (atomic_exchange(&g_exit_requested, 0) && !uv_is_active((uv_handle_t *)&g_exit_timer)) {
        /* Started once: starting it again would push the deadline back. */
        check_uv(uv_timer_start(&g_exit_timer, exit_timer_cb, (uint64_t)g_cfg.exit_grace_ms, 0),
                 "uv_timer_start");
    }
    if (rd_wants_back()) {
        /* Stop before handing over, so the two threads never read at once. */
        if (g_reading) {
            uv_read_stop((uv_stream_t *)&g_in);
            g_reading = 0;
        }
        if (!rd_hand_back()) {
            start_reading();
        }
    } else if (rd_loop_owns()) {
        start_reading();
    }
    if (g_capture_paused && capture_room() > 0) {
        capture_reading(1);
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
    if (atomic_load(&g_started)) {
        uv_async_send(&g_async);
    }
}

void loop_exit_soon(void)
{
    atomic_store(&g_exit_requested, 1);
    loop_wake();
}

void loop_start(const loop_cfg_t *cfg)
{
    g_cfg = *cfg;
    check_uv(uv_loop_init(&g_loop), "uv_loop_init");
    check_uv(uv_async_init(&g_loop, &g_async, async_cb), "uv_async_init");
    check_uv(uv_timer_init(&g_loop, &g_exit_timer), "uv_timer_init");
    check_uv(uv_poll_init(&g_loop, &g_out_poll, cfg->out_fd), "uv_poll_init");
    check_uv(uv_pipe_init(&g_loop, &g_in, 0), "uv_pipe_init");
    check_uv(uv_pipe_open(&g_in, cfg->in_fd), "uv_pipe_open(stdin)");
    check_uv(uv_poll_init(&g_loop, &g_takeover, rd_timer_fd()), "uv_poll_init(timer)");
    check_uv(uv_poll_start(&g_takeover, UV_READABLE, takeover_cb), "uv_poll_start(timer)");
    buf_t empty;
    frame_output(&empty, 0, "fd1", "", 0);
    g_capture_overhead = frame_size(&empty);
    buf_destroy(&empty);
    for (int i = 0; i < 2; i++) {
        if (cfg->capture_fd[i] < 0) {
            continue;
        }
        check_uv(uv_pipe_init(&g_loop, &g_capture[i], 0), "uv_pipe_init");
        check_uv(uv_pipe_open(&g_capture[i], cfg->capture_fd[i]), "uv_pipe_open(capture)");
        g_capture_open[i] = 1;
    }
    capture_reading(1);
    sigset_t all;
    sigset_t old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&g_thread, NULL, thread_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    atomic_store(&g_started, 1);
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
}
