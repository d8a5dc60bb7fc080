/*
 * The Python thread's loop and request dispatch (see worker.h). A request runs
 * between ctl_begin and ctl_end (so other threads can see and interrupt it, and
 * an interrupt raised while its answer is encoded still belongs to it; it ends
 * before the answer is sent, so info never shows an answered request) with its
 * caller as the owner of any object references it creates; its answer is sent
 * at once, or by the event loop when an awaitable result completes. All serving
 * goes through worker_serve: the top-level loop, a callback wait and the event
 * loop's reader differ only in which jobs they take, when they stop and how
 * they wait.
 */
#include "worker.h"

#include <ei.h>

#include "async.h"
#include "control.h"
#include "envs.h"
#include "frames.h"
#include "heap.h"
#include "inbox.h"
#include "log.h"
#include "ops.h"
#include "protocol.h"
#include "pyport/wire.h"
#include "reader.h"
#include "reply.h"
#include "stats.h"
#include "terms.h"
#include "waiters.h"

static int g_stop;

int worker_init(const worker_cfg_t *cfg)
{
    reply_set_max_frame(cfg->max_frame);
    return op_init();
}

static int is_awaitable(PyObject *o)
{
    PyAsyncMethods *am = Py_TYPE(o)->tp_as_async;
    return am != NULL && am->am_await != NULL;
}

/* Runs the op of a request job in its caller's environment; answers it unless
   the answer is left to the event loop (awaitable results, streams). */
static void run_request(job_t *job)
{
    reply_t r;
    reply_begin(&r, job->id);
    reply_cause_t cause = REPLY_BADARG;
    PyObject *result = NULL; // owned
    int deferred = 0;
    int began = 0;
    int cancelled = 0;
    op_args_t a = {.frame = job->frame, .len = job->len, .index = job->index, .env = NULL};
    int pid_start;
    int pid_len;
    long long parent; /* checked by proto_peek: skipped here */
    if (proto_pid_span(job->frame, job->len, &a.index, &pid_start, &pid_len) < 0 ||
        ei_decode_longlong(job->frame, &a.index, &parent) < 0) {
        ctl_unclaim(job->id);
        PyErr_SetString(PyExc_ValueError, "the caller must be a pid");
        reply_error(&r, REPLY_BADARG);
        reply_send(&r);
        stats_call_answered();
        return;
    }
    const char *pid = job->frame + pid_start;
    env_owner_t prev = env_owner_set(pid, (size_t)pid_len);
    int created = 0;
    a.env = env_get(pid, (size_t)pid_len, &created);
    if (created) {
        frame_env(pid, (size_t)pid_len);
    }
    if (a.env == NULL) {
        ctl_unclaim(job->id);
        cause = REPLY_PYERR;
    } else if (ctl_begin(job->id, job->op) < 0) {
        ctl_unclaim(job->id);
        PyErr_SetString(PyExc_RecursionError, "requests nest too deeply");
        cause = REPLY_PYERR;
    } else if (ctl_take() == CTL_CANCEL) {
        /* Cancelled after it left the inbox and before it began: it never runs. */
        began = 1;
        cancelled = 1;
    } else {
        began = 1;
        long window = 0;
        switch (job->op) {
        case OP_CALL:
            result = op_call(&a, &cause);
            break;
        case OP_EVAL:
            result = op_eval(&a, &cause);
            break;
        case OP_EXEC:
            result = op_exec(&a, &cause);
            break;
        case OP_METHOD:
            result = op_method(&a, &cause);
            break;
        case OP_GETATTR:
            result = op_getattr(&a, &cause);
            break;
        case OP_STREAM: {
            PyObject *source = op_stream_source(&a, &cause, &window); // owned
            if (source != NULL) {
                cause = REPLY_PYERR;
                deferred = async_stream(job->id, pid, (size_t)pid_len, source, window) == 0;
                Py_DECREF(source);
            }
            break;
        }
        default:
            PyErr_SetString(PyExc_ValueError, "op not supported");
            break;
        }
    }
    if (result != NULL && is_awaitable(result)) {
        deferred = async_start(job->id, pid, (size_t)pid_len, result) == 0;
        cause = REPLY_PYERR;
        Py_CLEAR(result);
    }
    if (!deferred) {
        /* Encoding may run Python code: an interrupt raised meanwhile is still
           this request's. */
        if (cancelled) {
            reply_cancelled(&r);
        } else if (result != NULL) {
            reply_ok(&r, result);
            Py_DECREF(result);
        } else {
            reply_error(&r, cause);
        }
    }
    /* Ended before the answer leaves: once its caller has the answer, info no
       longer shows it running. */
    if (began) {
        ctl_end();
    }
    if (deferred) {
        buf_destroy(&r.b);
    } else {
        reply_send(&r);
        stats_call_answered();
    }
    env_owner_restore(prev);
}

/* {setup, Id, Opts}: settings of the whole context, not of a caller. */
static void run_setup(job_t *job)
{
    reply_t r;
    reply_begin(&r, job->id);
    reply_cause_t cause = REPLY_BADARG;
    op_args_t a = {.frame = job->frame, .len = job->len, .index = job->index, .env = NULL};
    PyObject *result = NULL; // owned
    int began = ctl_begin(job->id, job->op) == 0;
    if (began) {
        result = op_setup(&a, &cause);
    } else {
        ctl_unclaim(job->id);
    }
    if (result != NULL) {
        reply_ok(&r, result);
        Py_DECREF(result);
    } else {
        reply_error(&r, cause);
    }
    if (began) {
        ctl_end();
    }
    reply_send(&r);
}

static void with_pid(job_t *job, int release)
{
    int index = job->index;
    int start;
    int len;
    if (release) {
        env_ref_release(job->frame, job->len, &index);
    } else if (proto_pid_span(job->frame, job->len, &index, &start, &len) == 0) {
        env_drop(job->frame + start, (size_t)len);
    } else {
        log_warn("drop_env needs a pid");
    }
}

static void stream_ack(job_t *job)
{
    int index = job->index;
    long long id;
    long long n;
    if (ei_decode_longlong(job->frame, &index, &id) == 0 &&
        ei_decode_longlong(job->frame, &index, &n) == 0 && n > 0) {
        async_ack(id, (long)n);
    } else {
        log_warn("malformed stream_ack");
    }
}

static void cancel(job_t *job)
{
    int index = job->index;
    long long id;
    if (ei_decode_longlong(job->frame, &index, &id) == 0) {
        async_cancel(id);
    }
}

void worker_handle(job_t *job)
{
    /* Any job may run Python code for long (a finalizer, preload code). */
    rd_busy();
    switch (job->op) {
    case OP_CALL:
    case OP_EVAL:
    case OP_EXEC:
    case OP_METHOD:
    case OP_GETATTR:
    case OP_STREAM:
        run_request(job);
        break;
    case OP_SETUP:
        run_setup(job);
        break;
    case OP_DROP_ENV:
        with_pid(job, 0);
        break;
    case OP_RELEASE:
        with_pid(job, 1);
        break;
    case OP_STREAM_ACK:
        stream_ack(job);
        break;
    case OP_CANCEL:
        cancel(job);
        break;
    case OP_CALLBACK_REPLY:
        if (waiters_store(job)) {
            return; /* its waiter owns it */
        }
        async_callback_reply(job); /* an async_call's, or nobody's any more */
        break;
    case JOB_STOP:
        g_stop = 1;
        break;
    default:
        frame_reject(job->id, "op not supported");
        break;
    }
    job_free(job);
}

int worker_raise_pending(void)
{
    /* The request on top of the stack or, while the event loop runs a task
       (depth 0), the task's own request. */
    int64_t task = ctl_depth() == 0 ? async_current_request() : 0;
    switch (task != 0 ? ctl_take_task(task) : ctl_take()) {
    case CTL_CANCEL:
        PyErr_SetString(terms_RequestTimeout, "the Erlang caller timed out");
        return -1;
    case CTL_INTERRUPT:
        PyErr_SetNone(PyExc_KeyboardInterrupt);
        return -1;
    case CTL_MEMORY:
        PyErr_SetString(PyExc_MemoryError, "the context is over its max_memory limit");
        return -1;
    case CTL_NONE:
        break;
    }
    return 0;
}

/* Runs the Python-level signal handlers now. Returns -1 with the error set
   when one raised and the caller takes errors; otherwise reports the error and
   goes on (a user's handler at the top level has nobody to raise in). */
static int check_signals(int takes_errors)
{
    if (PyErr_CheckSignals() == 0) {
        return 0;
    }
    if (takes_errors) {
        return -1;
    }
    PyErr_WriteUnraisable(NULL);
    return 0;
}

serve_end_t worker_serve(const serve_t *s)
{
    for (;;) {
        if (s->interruptible && worker_raise_pending() < 0) {
            return SERVE_ERROR;
        }
        if (g_stop) {
            return SERVE_STOPPED;
        }
        if (s->done != NULL && s->done(s->ctx)) {
            return SERVE_DONE;
        }
        if (s->wait == SERVE_RUN_EVENT_LOOP && async_pending() > 0) {
            async_run(); /* its reader serves the jobs meanwhile */
            continue;
        }
        uint64_t seen = inbox_seq();
        job_t *job = inbox_pop(s->filter, s->ctx);
        if (job != NULL) {
            worker_handle(job);
            heap_note_work();
            continue;
        }
        reply_flush();
        if (s->wait == SERVE_RETURN) {
            return SERVE_IDLE;
        }
        Py_BEGIN_ALLOW_THREADS
        rd_wait(seen);
        Py_END_ALLOW_THREADS
        if (check_signals(s->interruptible) < 0) {
            return SERVE_ERROR;
        }
    }
}

/* Jobs of request R's call chain, and jobs that are not requests. */
static int in_chain(const job_t *job, void *ctx)
{
    return job->id == 0 || job->parent == *(const int64_t *)ctx;
}

void worker_serve_chain(int64_t request)
{
    serve_t s = {.filter = in_chain, .ctx = &request, .wait = SERVE_RETURN};
    worker_serve(&s);
}

void worker_run(void)
{
    serve_t top = {.wait = SERVE_RUN_EVENT_LOOP};
    worker_serve(&top);
    reply_flush();
}
