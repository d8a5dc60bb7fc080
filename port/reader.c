/*
 * Ownership of reading the pipe from Erlang (see reader.h). Invariant: bytes are
 * read from the fd only by the owner, and the owner changes only under g_mu
 * (to the loop thread in rd_on_timer/rd_event_loop, back in rd_hand_back), so
 * frames are fed in the order they were read.
 */
#include "reader.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "control.h"
#include "dispatch.h"
#include "exits.h"
#include "heap.h"
#include "inbox.h"
#include "log.h"
#include "packet.h"
#include "pipes.h"
#include "pyport/wire.h"

enum { RD_PYTHON, RD_LOOP };

#define RD_CHUNK (64 * 1024)

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static packet_reader_t g_reader;
static int g_fd = -1;
static int g_timer = -1;
static atomic_int g_owner;
static atomic_int g_want_back;
static atomic_int g_event_loop;
static atomic_int g_armed;
static atomic_int g_waiting; /* the Python thread is in rd_wait */
static atomic_int g_eof;
static _Atomic int64_t g_busy_since; /* when the Python thread last started work */
static char g_buf[RD_CHUNK];         /* the Python thread's read buffer */
static void (*g_wake_loop)(void);

static void frame_cb(void *ctx, char *frame, size_t len)
{
    (void)ctx;
    dispatch_frame(frame, len);
}

static void oversize_cb(void *ctx, const char *peek, size_t peek_len, size_t total)
{
    (void)ctx;
    dispatch_oversize(peek, peek_len, total);
}

static const packet_handlers_t g_handlers = {frame_cb, oversize_cb};

void rd_init(int fd, size_t max_frame, void (*wake_loop)(void))
{
    g_fd = fd;
    g_wake_loop = wake_loop;
    packet_reader_init(&g_reader, max_frame);
    pipes_init(PIPES_IN, fd);
    g_timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (g_timer < 0) {
        log_error("timerfd_create: %s", strerror(errno));
        _exit(PYPORT_EXIT_IO);
    }
    atomic_store(&g_owner, RD_PYTHON);
}

int rd_timer_fd(void)
{
    return g_timer;
}

static void arm(int64_t ms)
{
    struct itimerspec t;
    memset(&t, 0, sizeof t);
    t.it_value.tv_sec = ms / 1000;
    t.it_value.tv_nsec = (ms % 1000) * 1000000 + (ms <= 0 ? 1 : 0);
    timerfd_settime(g_timer, 0, &t, NULL);
}

/* A frame larger than the pipe is being read: let the pipe hold the rest, so it
   crosses in one or a few rounds rather than in 64 KiB ones. Called with g_mu. */
static void grow_for_frame(void)
{
    size_t room;
    if (packet_room(&g_reader, &room) != NULL && room > pipes_capacity(PIPES_IN)) {
        pipes_grow(PIPES_IN, room);
    }
}

/* ---- the Python thread ------------------------------------------------------- */

/* Reads what is there, if the Python thread still owns reading. */
static void python_read(void)
{
    pthread_mutex_lock(&g_mu);
    if (atomic_load(&g_owner) != RD_PYTHON) {
        pthread_mutex_unlock(&g_mu);
        return;
    }
    /* The rest of a large frame is read straight into place, not through g_buf. */
    size_t room;
    char *dst = packet_room(&g_reader, &room);
    ssize_t n;
    if (dst != NULL && room >= sizeof g_buf) {
        n = read(g_fd, dst, room);
        if (n > 0) {
            packet_filled(&g_reader, (size_t)n, &g_handlers, NULL);
        }
    } else {
        n = read(g_fd, g_buf, sizeof g_buf);
        if (n > 0) {
            packet_feed(&g_reader, g_buf, (size_t)n, &g_handlers, NULL);
        }
    }
    if (n > 0) {
        grow_for_frame();
        pthread_mutex_unlock(&g_mu);
        return;
    }
    int mid_frame = !packet_reader_idle(&g_reader);
    pthread_mutex_unlock(&g_mu);
    if (n == 0) {
        atomic_store(&g_eof, 1);
        dispatch_eof(mid_frame);
    } else if (errno != EAGAIN && errno != EINTR) {
        log_error("read from Erlang failed: %s", strerror(errno));
        exit_now(PYPORT_EXIT_IO);
    }
}

/* The Python thread stopped waiting without getting reading back (a job came,
   or a signal): the loop thread keeps reading, since the Python thread may now
   be busy for long. If reading was handed back meanwhile, it is the Python
   thread's, and rd_busy arms the takeover timer. */
static void keep_loop_reading(void)
{
    pthread_mutex_lock(&g_mu);
    atomic_store(&g_want_back, 0);
    pthread_mutex_unlock(&g_mu);
}

/* Waits on the inbox alone while the loop thread reads, until a job arrives
   after `seen`, reading is the Python thread's again, or a signal. The hand-back
   kicks the eventfd after changing the owner, and a push while this thread
   sleeps kicks it too (inbox_want_wake), so no wake-up is lost. */
static void wait_for_loop(uint64_t seen)
{
    int asked = !atomic_load(&g_eof) && !atomic_load(&g_event_loop);
    if (asked) {
        atomic_store(&g_want_back, 1);
        g_wake_loop(); /* rd_hand_back kicks the inbox when reading is ours again */
    }
    for (;;) {
        inbox_drain();
        inbox_want_wake();
        if (inbox_seq() != seen) {
            break;
        }
        if (!atomic_load(&g_eof) && atomic_load(&g_owner) == RD_PYTHON) {
            return; /* ours again: the caller comes back to read */
        }
        struct pollfd p = {.fd = inbox_fd(), .events = POLLIN};
        if (poll(&p, 1, -1) < 0) {
            break; /* a signal: let the caller check for it */
        }
    }
    if (asked) {
        keep_loop_reading();
    }
}

void rd_wait(uint64_t seen)
{
    if (inbox_seq() != seen) {
        return;
    }
    if (atomic_load(&g_eof) || atomic_load(&g_owner) != RD_PYTHON) {
        wait_for_loop(seen);
        return;
    }
    inbox_want_wake();
    if (inbox_seq() != seen) {
        return;
    }
    struct pollfd p[2] = {{.fd = g_fd, .events = POLLIN}, {.fd = inbox_fd(), .events = POLLIN}};
    atomic_store(&g_waiting, 1);
    int rc = poll(p, 2, heap_wait_ms());
    atomic_store(&g_waiting, 0);
    if (rc == 0) {
        heap_idle(); /* idle for a while: freed memory goes back to the kernel */
        return;
    }
    if (rc > 0) {
        if (p[1].revents != 0) {
            inbox_drain();
        }
        if (p[0].revents != 0) {
            python_read();
        }
    }
}

void rd_busy(void)
{
    atomic_store(&g_busy_since, ctl_now_ms());
    /* Armed whoever reads: the timer also lets the loop thread write replies
       held back for a burst that turned out to be followed by a long request. */
    if (!atomic_exchange(&g_armed, 1)) {
        arm(RD_TAKEOVER_MS);
    }
}

void rd_event_loop(int on)
{
    pthread_mutex_lock(&g_mu);
    atomic_store(&g_event_loop, on);
    int give = on && atomic_load(&g_owner) == RD_PYTHON;
    if (give) {
        atomic_store(&g_owner, RD_LOOP);
    }
    pthread_mutex_unlock(&g_mu);
    if (give) {
        g_wake_loop();
    }
}

/* ---- the loop thread --------------------------------------------------------- */

void rd_feed(const char *data, size_t n)
{
    pthread_mutex_lock(&g_mu);
    packet_feed(&g_reader, data, n, &g_handlers, NULL);
    grow_for_frame();
    pthread_mutex_unlock(&g_mu);
}

void rd_eof(void)
{
    pthread_mutex_lock(&g_mu);
    int mid_frame = !packet_reader_idle(&g_reader);
    pthread_mutex_unlock(&g_mu);
    atomic_store(&g_eof, 1);
    dispatch_eof(mid_frame);
}

int rd_on_timer(void)
{
    uint64_t expirations;
    if (read(g_timer, &expirations, sizeof expirations) < 0) {
        return 0;
    }
    atomic_store(&g_armed, 0);
    if (atomic_load(&g_owner) != RD_PYTHON || atomic_load(&g_eof) || atomic_load(&g_waiting)) {
        return 0; /* reading by itself (idle, or waiting in a callback) */
    }
    /* Busy since its last rd_busy: judged by the thread, not by the request
       stack, which is pushed a little after rd_busy. */
    int64_t ran = ctl_now_ms() - atomic_load(&g_busy_since);
    if (ran < RD_TAKEOVER_MS) {
        atomic_store(&g_armed, 1);
        arm(RD_TAKEOVER_MS - ran);
        return 0;
    }
    pthread_mutex_lock(&g_mu);
    atomic_store(&g_owner, RD_LOOP);
    pthread_mutex_unlock(&g_mu);
    return 1;
}

int rd_loop_owns(void)
{
    return atomic_load(&g_owner) == RD_LOOP;
}

int rd_wants_back(void)
{
    return atomic_load(&g_want_back) && atomic_load(&g_owner) == RD_LOOP &&
           !atomic_load(&g_event_loop);
}

int rd_hand_back(void)
{
    pthread_mutex_lock(&g_mu);
    if (atomic_load(&g_event_loop) || !atomic_load(&g_want_back)) {
        /* The event loop started meanwhile, or the Python thread got busy
           again before reading was handed back: keep reading for it. */
        pthread_mutex_unlock(&g_mu);
        return 0;
    }
    atomic_store(&g_owner, RD_PYTHON);
    atomic_store(&g_want_back, 0);
    pthread_mutex_unlock(&g_mu);
    inbox_kick();
    return 1;
}
