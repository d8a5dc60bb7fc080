/*
 * Credit windows (see credit.h). Invariant: in flight is what was charged and not
 * returned yet (never below 0: Erlang returning more than was sent is clamped).
 * A waiter compares credit_seq with what it saw, so no wake-up is lost: the
 * condition variable wakes threads waiting without signals, the eventfd wakes a
 * thread in poll(2), which a signal interrupts.
 */
#include "credit.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

typedef struct {
    int64_t window; /* 0: unlimited */
    int64_t in_flight;
} window_t;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static window_t g_windows[CREDIT_KINDS];
static _Atomic uint64_t g_seq;
static int g_efd = -1;
static void (*g_wake_loop)(void);

void credit_init(void (*wake_loop)(void))
{
    g_wake_loop = wake_loop;
    g_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (g_efd < 0) {
        log_error("eventfd: %s", strerror(errno));
        abort();
    }
}

static void changed_locked(void)
{
    atomic_fetch_add(&g_seq, 1);
    pthread_cond_broadcast(&g_cond);
}

static void wake(void)
{
    uint64_t one = 1;
    while (write(g_efd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    if (g_wake_loop != NULL) {
        g_wake_loop();
    }
}

void credit_set_window(credit_kind_t kind, int64_t bytes)
{
    pthread_mutex_lock(&g_mu);
    g_windows[kind].window = bytes > 0 ? bytes : 0;
    changed_locked();
    pthread_mutex_unlock(&g_mu);
    wake();
}

void credit_return(credit_kind_t kind, int64_t bytes)
{
    if (bytes <= 0) {
        return;
    }
    pthread_mutex_lock(&g_mu);
    window_t *w = &g_windows[kind];
    w->in_flight = bytes < w->in_flight ? w->in_flight - bytes : 0;
    changed_locked();
    pthread_mutex_unlock(&g_mu);
    wake();
}

static size_t room_locked(const window_t *w)
{
    if (w->window == 0) {
        return SIZE_MAX;
    }
    if (w->in_flight == 0) {
        return (size_t)w->window; /* at least the whole window: a big frame goes alone */
    }
    return w->in_flight < w->window ? (size_t)(w->window - w->in_flight) : 0;
}

int credit_try(credit_kind_t kind, size_t n)
{
    pthread_mutex_lock(&g_mu);
    window_t *w = &g_windows[kind];
    int ok = w->window == 0 || w->in_flight == 0 || n <= room_locked(w);
    if (ok && w->window != 0) {
        w->in_flight += (int64_t)n;
    }
    pthread_mutex_unlock(&g_mu);
    return ok;
}

void credit_charge(credit_kind_t kind, size_t n)
{
    pthread_mutex_lock(&g_mu);
    window_t *w = &g_windows[kind];
    if (w->window != 0) {
        w->in_flight += (int64_t)n;
    }
    pthread_mutex_unlock(&g_mu);
}

size_t credit_room(credit_kind_t kind)
{
    pthread_mutex_lock(&g_mu);
    size_t room = room_locked(&g_windows[kind]);
    pthread_mutex_unlock(&g_mu);
    return room;
}

int credit_idle(credit_kind_t kind)
{
    pthread_mutex_lock(&g_mu);
    int idle = g_windows[kind].in_flight == 0;
    pthread_mutex_unlock(&g_mu);
    return idle;
}

uint64_t credit_seq(void)
{
    return atomic_load(&g_seq);
}

void credit_wait(uint64_t seen, int interruptible)
{
    if (!interruptible) {
        pthread_mutex_lock(&g_mu);
        while (atomic_load(&g_seq) == seen) {
            pthread_cond_wait(&g_cond, &g_mu);
        }
        pthread_mutex_unlock(&g_mu);
        return;
    }
    for (;;) {
        uint64_t v;
        while (read(g_efd, &v, sizeof v) < 0 && errno == EINTR) {
        }
        if (atomic_load(&g_seq) != seen) {
            return;
        }
        struct pollfd p = {.fd = g_efd, .events = POLLIN};
        if (poll(&p, 1, -1) < 0 && errno == EINTR) {
            return; /* a signal: the caller runs the handlers */
        }
    }
}
