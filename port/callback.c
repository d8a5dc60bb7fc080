/*
 * erlang.call (see callback.h). A waiter lives on the waiting thread's stack and
 * is linked into g_waiters while it waits; the reply job is handed over under
 * g_mu. The Python thread serves nested requests with worker_handle while it
 * waits, so Python -> Erlang -> Python -> ... nests without deadlock and nothing
 * is ever replayed.
 */
#include "callback.h"

#include <ei.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "buf.h"
#include "control.h"
#include "convert.h"
#include "outbox.h"
#include "protocol.h"
#include "pyerlang.h"
#include "pyport/wire.h"
#include "reader.h"
#include "reply.h"
#include "worker.h"

typedef struct waiter {
    struct waiter *next;
    int64_t id;
    int on_python_thread;
    pthread_cond_t cond;
    job_t *reply; /* owned once set */
} waiter_t;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static waiter_t *g_waiters;
static atomic_llong g_next_id;
static int g_depth;
static int g_max_depth = PYPORT_DEFAULT_MAX_NESTING;

void cb_set_max_nesting(int depth)
{
    g_max_depth = depth;
}

int cb_depth(void)
{
    return g_depth;
}

static void link_waiter(waiter_t *w)
{
    pthread_mutex_lock(&g_mu);
    w->next = g_waiters;
    g_waiters = w;
    pthread_mutex_unlock(&g_mu);
}

/* Unlinks w; returns its reply (owned) if one arrived. */
static job_t *unlink_waiter(waiter_t *w)
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
    return reply;
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

void cb_route(job_t *job)
{
    if (hand_over(job, 0) != 1) {
        inbox_push(job); /* the Python thread takes it (or drops it) */
    }
}

void cb_store(job_t *job)
{
    if (hand_over(job, 1) != 1) {
        job_free(job); /* its caller gave up (a signal interrupted the wait) */
    }
}

static int send_request(int64_t id, PyObject *name, PyObject *args)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(name, &n);
    if (s == NULL) {
        return -1;
    }
    buf_t b;
    buf_init(&b, 256);
    proto_begin(&b);
    proto_tuple(&b, 4);
    proto_atom(&b, "callback");
    proto_long(&b, id);
    proto_long(&b, ctl_is_python_thread() ? ctl_current() : 0);
    proto_binary(&b, s, (size_t)n);
    proto_body(&b);
    PyObject *list = PySequence_List(args); // owned
    int rc = list != NULL ? conv_from_py(&b, list) : -1;
    Py_XDECREF(list);
    if (rc < 0) {
        buf_destroy(&b);
        return -1;
    }
    proto_send(&b);
    return 0;
}

/* Decodes {callback_reply, Id, ok | error, Term}: the result, or raises. */
static PyObject *decode_reply(job_t *job)
{
    int index = job->index;
    long long id;
    char status[MAXATOMLEN];
    if (ei_decode_longlong(job->frame, &index, &id) < 0 ||
        ei_decode_atom(job->frame, &index, status) < 0) {
        PyErr_SetString(PyExc_ValueError, "malformed callback reply");
        return NULL;
    }
    PyObject *value = conv_to_py(job->frame, job->len, &index); // owned
    if (value == NULL || strcmp(status, "ok") == 0) {
        return value;
    }
    pyerl_raise_error(value);
    Py_DECREF(value);
    return NULL;
}

/* The Python thread waits by serving: nested requests run here. */
static int wait_serving(waiter_t *w)
{
    for (;;) {
        pthread_mutex_lock(&g_mu);
        int done = w->reply != NULL;
        pthread_mutex_unlock(&g_mu);
        if (done) {
            return 0;
        }
        job_t *job = inbox_pop();
        if (job == NULL) {
            reply_flush();
            Py_BEGIN_ALLOW_THREADS rd_wait();
            Py_END_ALLOW_THREADS if (PyErr_CheckSignals() < 0)
            {
                return -1;
            }
            continue;
        }
        if (job->op == OP_CALLBACK_REPLY) {
            cb_store(job);
        } else if (job->op == JOB_STOP) {
            worker_handle(job); /* records the stop for worker_run */
            PyErr_SetString(pyerl_RequestTimeout, "the context is stopping");
            return -1;
        } else {
            worker_handle(job);
        }
    }
}

static void wait_sleeping(waiter_t *w)
{
    Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&g_mu);
    while (w->reply == NULL) {
        pthread_cond_wait(&w->cond, &g_mu);
    }
    pthread_mutex_unlock(&g_mu);
    Py_END_ALLOW_THREADS
}

PyObject *cb_call(PyObject *name, PyObject *args)
{
    int on_python = ctl_is_python_thread();
    if (on_python && g_depth >= g_max_depth) {
        PyErr_Format(PyExc_RecursionError, "erlang.call nested deeper than the limit of %d levels",
                     g_max_depth);
        return NULL;
    }
    waiter_t w;
    memset(&w, 0, sizeof w);
    w.id = atomic_fetch_add(&g_next_id, 1) + 1;
    w.on_python_thread = on_python;
    pthread_cond_init(&w.cond, NULL);
    link_waiter(&w);
    PyObject *result = NULL;
    if (send_request(w.id, name, args) == 0) {
        int rc = 0;
        if (on_python) {
            g_depth++;
            rc = wait_serving(&w);
            g_depth--;
        } else {
            wait_sleeping(&w);
        }
        job_t *reply = unlink_waiter(&w);
        if (rc == 0 && reply != NULL) {
            result = decode_reply(reply);
        }
        job_free(reply);
    } else {
        job_free(unlink_waiter(&w));
    }
    pthread_cond_destroy(&w.cond);
    return result;
}
