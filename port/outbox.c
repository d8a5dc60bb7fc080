/*
 * Combining writer for frames to Erlang (see outbox.h). Invariant: at most one
 * thread is in writev at a time (`busy`), and while `parked` only the loop thread
 * writes. A write error means Erlang has gone: the port exits with PYPORT_EXIT_IO.
 */
#include "outbox.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "memory.h"
#include "pipes.h"
#include "pyport/wire.h"

#define OUTBOX_MAX_IOV 256

typedef struct item {
    struct item *next;
    char *data;
    size_t len;
    size_t off;
} item_t;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static item_t *g_head;
static item_t *g_tail;
static int g_busy;
static int g_parked;
static int g_fd = -1;
static void (*g_wake_loop)(void);

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void outbox_init(int fd, void (*wake_loop)(void))
{
    g_fd = fd;
    g_wake_loop = wake_loop;
    pipes_init(PIPES_OUT, fd);
}

/* The item is allocated before the lock is taken: an allocation that fails
   ends the process through exit_now, which writes under this lock. */
static item_t *new_item(char *frame, size_t len)
{
    if (len > pipes_capacity(PIPES_OUT)) {
        pipes_grow(PIPES_OUT, len);
    }
    item_t *it = mem_alloc(sizeof *it);
    it->next = NULL;
    it->data = frame;
    it->len = len;
    it->off = 0;
    return it;
}

static void append_locked(item_t *it)
{
    if (g_tail != NULL) {
        g_tail->next = it;
    } else {
        g_head = it;
    }
    g_tail = it;
}

/* Writes queued items until the queue is empty or the fd would block.
   Called with g_mu held and g_busy set; returns with g_mu held.
   Returns 1 if it stopped because the pipe is full. */
static int write_locked(void)
{
    while (g_head != NULL) {
        struct iovec iov[OUTBOX_MAX_IOV];
        int n = 0;
        for (item_t *it = g_head; it != NULL && n < OUTBOX_MAX_IOV; it = it->next) {
            iov[n].iov_base = it->data + it->off;
            iov[n].iov_len = it->len - it->off;
            n++;
        }
        pthread_mutex_unlock(&g_mu);
        ssize_t w = writev(g_fd, iov, n);
        int err = errno;
        pthread_mutex_lock(&g_mu);
        if (w < 0) {
            if (err == EINTR) {
                continue;
            }
            if (err == EAGAIN || err == EWOULDBLOCK) {
                return 1;
            }
            if (err == EPIPE) {
                _exit(PYPORT_EXIT_OK); /* Erlang closed the port: nobody to answer */
            }
            log_error("write to Erlang failed: %s", strerror(err));
            _exit(PYPORT_EXIT_IO);
        }
        size_t left = (size_t)w;
        while (left > 0 && g_head != NULL) {
            item_t *it = g_head;
            size_t rest = it->len - it->off;
            if (left < rest) {
                it->off += left;
                left = 0;
                break;
            }
            left -= rest;
            g_head = it->next;
            if (g_head == NULL) {
                g_tail = NULL;
            }
            mem_free(it->data);
            mem_free(it);
        }
    }
    return 0;
}

static void flush_locked(void)
{
    if (g_busy || g_parked || g_head == NULL) {
        return;
    }
    g_busy = 1;
    int full = write_locked();
    g_busy = 0;
    if (full) {
        g_parked = 1;
        g_wake_loop();
    }
}

void outbox_push(char *frame, size_t len)
{
    item_t *it = new_item(frame, len);
    pthread_mutex_lock(&g_mu);
    append_locked(it);
    flush_locked();
    pthread_mutex_unlock(&g_mu);
}

void outbox_queue(char *frame, size_t len)
{
    item_t *it = new_item(frame, len);
    pthread_mutex_lock(&g_mu);
    append_locked(it);
    pthread_mutex_unlock(&g_mu);
}

void outbox_flush(void)
{
    pthread_mutex_lock(&g_mu);
    flush_locked();
    pthread_mutex_unlock(&g_mu);
}

int outbox_parked(void)
{
    pthread_mutex_lock(&g_mu);
    int p = g_parked;
    pthread_mutex_unlock(&g_mu);
    return p;
}

int outbox_on_writable(void)
{
    pthread_mutex_lock(&g_mu);
    int more = 0;
    if (!g_busy) {
        g_busy = 1;
        more = write_locked();
        g_busy = 0;
        g_parked = more;
    } else {
        more = 1;
    }
    pthread_mutex_unlock(&g_mu);
    return more;
}

/* Writes n bytes at p, polling for room in the pipe until deadline (monotonic
   ms). Returns 0, or -1 on error or timeout. */
static int write_all(const char *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = write(g_fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return -1;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            return -1;
        }
        struct pollfd pfd = {.fd = g_fd, .events = POLLOUT};
        poll(&pfd, 1, (int)left);
    }
    return 0;
}

void outbox_final(const char *frame, size_t len, int within_ms)
{
    int64_t deadline = now_ms() + within_ms;
    /* Wait for a writer in writev (it holds no lock meanwhile) to finish. */
    for (;;) {
        pthread_mutex_lock(&g_mu);
        if (!g_busy) {
            break;
        }
        pthread_mutex_unlock(&g_mu);
        if (now_ms() >= deadline) {
            return;
        }
        struct timespec t = {0, 1000000};
        nanosleep(&t, NULL);
    }
    /* Everything queued first (a frame may be partly written), then ours; the
       lock is kept: nobody writes after the last frame. */
    g_busy = 1;
    for (item_t *it = g_head; it != NULL; it = it->next) {
        if (write_all(it->data + it->off, it->len - it->off, deadline) < 0) {
            return;
        }
    }
    write_all(frame, len, deadline);
}
