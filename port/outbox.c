/*
 * Combining writer for frames to Erlang (see outbox.h). Invariant: at most one
 * thread is in writev at a time (`busy`), and while `parked` only the loop thread
 * writes. A write error means Erlang has gone: the port exits with PYPORT_EXIT_IO.
 */
#include "outbox.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "memory.h"
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

void outbox_init(int fd, void (*wake_loop)(void))
{
    g_fd = fd;
    g_wake_loop = wake_loop;
}

static void append_locked(char *frame, size_t len)
{
    item_t *it = mem_alloc(sizeof *it);
    it->next = NULL;
    it->data = frame;
    it->len = len;
    it->off = 0;
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
    pthread_mutex_lock(&g_mu);
    append_locked(frame, len);
    flush_locked();
    pthread_mutex_unlock(&g_mu);
}

void outbox_queue(char *frame, size_t len)
{
    pthread_mutex_lock(&g_mu);
    append_locked(frame, len);
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
