/*
 * erlang.call (see callback.h). The waiter lives on the calling thread's stack
 * (waiters.c). The Python thread serves the requests of the waiting request's
 * call chain (worker_serve) while it waits, so Python -> Erlang -> Python -> ...
 * nests without deadlock and nothing is ever replayed, while other callers'
 * requests wait for the chain to return.
 */
#include "callback.h"

#include <ei.h>
#include <stdatomic.h>
#include <string.h>

#include "async.h"
#include "buf.h"
#include "control.h"
#include "convert.h"
#include "frames.h"
#include "inbox.h"
#include "pyport/wire.h"
#include "terms.h"
#include "waiters.h"
#include "worker.h"

static atomic_llong g_next_id;
static int g_depth; /* callback waits nested on the Python thread */
static int g_max_depth = PYPORT_DEFAULT_MAX_NESTING;

void cb_set_max_nesting(int depth)
{
    g_max_depth = depth;
}

/* The request whose erlang.call this is: the one on top of the stack, or the
   coroutine's (a task runs at depth 0); 0 on another Python thread. */
static int64_t cb_request(void)
{
    if (!ctl_is_python_thread()) {
        return 0;
    }
    int64_t top = ctl_current();
    return top != 0 ? top : async_current_request();
}

static int send_request(int64_t id, int64_t request, PyObject *name, PyObject *args, int async)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(name, &n);
    if (s == NULL) {
        return -1;
    }
    buf_t b;
    if (async) {
        frame_begin_async_callback(&b, id, request, s, (size_t)n);
    } else {
        frame_begin_callback(&b, id, request, s, (size_t)n);
    }
    PyObject *list = PySequence_List(args); // owned
    int rc = list != NULL ? conv_from_py(&b, list) : -1;
    Py_XDECREF(list);
    if (rc < 0) {
        buf_destroy(&b);
        return -1;
    }
    frame_send(&b);
    return 0;
}

typedef struct {
    waiter_t *w;
    int64_t request; /* the request whose erlang.call waits */
} wait_t;

static int reply_arrived(void *ctx)
{
    return waiters_done(((wait_t *)ctx)->w);
}

/* While request R waits in erlang.call, the Python thread takes the requests of
   R's call chain (made from R's callback: Parent == R) and every job that is not
   a request; other requests wait in order. */
static int in_chain(const job_t *job, void *ctx)
{
    return job->id == 0 || job->parent == ((wait_t *)ctx)->request;
}

/* The Python thread waits by serving: nested requests run here. Returns 0 when
   the reply arrived, or -1 with an error set (an action for the waiting
   request, a signal handler's error, or the port stopping). */
static int wait_serving(waiter_t *w, int64_t request)
{
    wait_t ctx = {w, request};
    serve_t s = {.filter = in_chain,
                 .done = reply_arrived,
                 .ctx = &ctx,
                 .wait = SERVE_BLOCK,
                 .interruptible = 1};
    switch (worker_serve(&s)) {
    case SERVE_DONE:
        return 0;
    case SERVE_STOPPED:
        PyErr_SetString(terms_RequestTimeout, "the context is stopping");
        return -1;
    default:
        return -1;
    }
}

static void wait_sleeping(waiter_t *w)
{
    Py_BEGIN_ALLOW_THREADS
    waiters_sleep(w);
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
    waiters_add(&w, atomic_fetch_add(&g_next_id, 1) + 1, on_python);
    PyObject *result = NULL;
    int64_t request = cb_request();
    if (send_request(w.id, request, name, args, 0) == 0) {
        int rc = 0;
        if (on_python) {
            g_depth++;
            rc = wait_serving(&w, request);
            g_depth--;
        } else {
            wait_sleeping(&w);
        }
        job_t *reply = waiters_remove(&w);
        if (rc == 0 && reply != NULL) {
            result = conv_callback_reply(reply->frame, reply->len, reply->index, NULL);
        }
        job_free(reply);
    } else {
        job_free(waiters_remove(&w));
    }
    return result;
}

int64_t cb_send_async(PyObject *name, PyObject *args)
{
    if (!ctl_is_python_thread()) {
        PyErr_SetString(PyExc_RuntimeError, "erlang.async_call runs on the context's event loop");
        return -1;
    }
    int64_t id = atomic_fetch_add(&g_next_id, 1) + 1;
    /* Made for the request on top of the stack (a loop run from sync code) or
       the coroutine's own request: Erlang runs it in the call chain of that
       request, in a process of its own (concurrent ones overlap). */
    return send_request(id, cb_request(), name, args, 1) == 0 ? id : -1;
}
