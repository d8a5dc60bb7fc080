/*
 * Callback waiters (see waiters.h). Invariant: a waiter's reply is set at most
 * once, under g_mu, and only while the waiter is linked.
 */
#include "waiters.h"

#include <ei.h>

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static waiter_t *g_waiters;

void waiters_add(waiter_t *w, int64_t id, int on_python_thread)
{
    w->id = id;
    w->on_python_thread = on_python_thread;
    w->reply = NULL;
    pthread_cond_init(&w->cond, NULL);
    pthread_mutex_lock(&g_mu);
    w->next = g_waiters;
    g_waiters = w;
    pthread_mutex_unlock(&g_mu);
}

job_t *waiters_remove(waiter_t *w)
{
    pthread_mutex_lock(&g_mu);
    for (waiter_t **p = &g_waiters; *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    job_t *reply = w->reply;
    w->reply = NULL;
    pthread_mutex_unlock(&g_mu);
    pthread_cond_destroy(&w->cond);
    return reply;
}

int waiters_done(waiter_t *w)
{
    pthread_mutex_lock(&g_mu);
    int done = w->reply != NULL;
    pthread_mutex_unlock(&g_mu);
    return done;
}

void waiters_sleep(waiter_t *w)
{
    pthread_mutex_lock(&g_mu);
    while (w->reply == NULL) {
        pthread_cond_wait(&w->cond, &g_mu);
    }
    pthread_mutex_unlock(&g_mu);
}

static int64_t reply_id(const job_t *job)
{
    long long id = 0;
    int index = job->index;
    ei_decode_longlong(job->frame, &index, &id);
    return id;
}

/* Gives job to its waiter; returns 1 if taken, 0 if the waiter is on the Python
   thread (and job was not taken), -1 if nobody waits for it. */
static int hand_over(job_t *job, int from_python_thread)
{
    int64_t id = reply_id(job);
    int rc = -1;
    pthread_mutex_lock(&g_mu);
    for (waiter_t *w = g_waiters; w != NULL; w = w->next) {
        if (w->id != id) {
            continue;
        }
        if (w->on_python_thread && !from_python_thread) {
            rc = 0;
        } else {
            w->reply = job;
            pthread_cond_signal(&w->cond);
            rc = 1;
        }
        break;
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

void waiters_route(job_t *job)
{
    /* A reply for the Python thread always goes through the inbox, even when
       that thread read it: it takes it in order with the jobs read before it. */
    if (hand_over(job, 0) != 1) {
        inbox_push(job); /* the Python thread takes it (or drops it) */
    }
}

int waiters_store(job_t *job)
{
    return hand_over(job, 1) == 1;
}
