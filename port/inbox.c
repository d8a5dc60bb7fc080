/*
 * Job queue to the Python thread (see inbox.h). The eventfd is written only when
 * another thread makes the queue go from empty to non-empty (or the Python thread
 * asked to be woken by the next push), so a burst of frames costs one wake-up,
 * and frames the Python thread read itself cost none. A request leaves the queue
 * and becomes claimed under the same lock a cancel takes to look for it, so a
 * cancel always finds its request queued, claimed, running or ended.
 */
#include "inbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "memory.h"

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static job_t *g_head;
static job_t *g_tail;
static size_t g_len;
static int g_efd = -1;
static _Atomic uint64_t g_seq;
static atomic_int g_want_wake;

void inbox_init(void)
{
    g_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (g_efd < 0) {
        log_error("eventfd: %s", strerror(errno));
        abort();
    }
}

int inbox_fd(void)
{
    return g_efd;
}

static void wake(void)
{
    uint64_t one = 1;
    while (write(g_efd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

static void drain(void)
{
    uint64_t v;
    while (read(g_efd, &v, sizeof v) < 0 && errno == EINTR) {
    }
}

void inbox_push(job_t *job)
{
    job->next = NULL;
    pthread_mutex_lock(&g_mu);
    int was_empty = g_head == NULL;
    if (g_tail != NULL) {
        g_tail->next = job;
    } else {
        g_head = job;
    }
    g_tail = job;
    g_len++;
    atomic_fetch_add(&g_seq, 1);
    pthread_mutex_unlock(&g_mu);
    /* The Python thread never needs to wake itself. */
    if (!ctl_is_python_thread() && (atomic_exchange(&g_want_wake, 0) || was_empty)) {
        wake();
    }
}

void inbox_want_wake(void)
{
    atomic_store(&g_want_wake, 1);
}

uint64_t inbox_seq(void)
{
    return atomic_load(&g_seq);
}

void inbox_kick(void)
{
    wake();
}

/* Takes job (whose predecessor is prev, NULL at the head) out of the list. */
static void unlink_locked(job_t *prev, job_t *job)
{
    if (prev != NULL) {
        prev->next = job->next;
    } else {
        g_head = job->next;
    }
    if (g_tail == job) {
        g_tail = prev;
    }
    g_len--;
    job->next = NULL;
}

job_t *inbox_pop(inbox_filter_t filter, void *ctx)
{
    pthread_mutex_lock(&g_mu);
    job_t *prev = NULL;
    job_t *job = g_head;
    while (job != NULL && filter != NULL && !filter(job, ctx)) {
        prev = job;
        job = job->next;
    }
    if (job != NULL) {
        unlink_locked(prev, job);
        if (job->id > 0) {
            ctl_claim(job->id);
        }
    }
    pthread_mutex_unlock(&g_mu);
    return job;
}

void inbox_drain(void)
{
    drain();
}

job_t *inbox_take(int64_t id)
{
    pthread_mutex_lock(&g_mu);
    job_t *prev = NULL;
    job_t *job = g_head;
    while (job != NULL && job->id != id) {
        prev = job;
        job = job->next;
    }
    if (job != NULL) {
        unlink_locked(prev, job);
    }
    pthread_mutex_unlock(&g_mu);
    return job;
}

size_t inbox_len(void)
{
    pthread_mutex_lock(&g_mu);
    size_t n = g_len;
    pthread_mutex_unlock(&g_mu);
    return n;
}

void job_free(job_t *job)
{
    if (job != NULL) {
        mem_free(job->frame);
        mem_free(job);
    }
}
