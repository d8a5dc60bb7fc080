/*
 * The Python thread's loop and request dispatch (see worker.h). A request runs
 * between ctl_begin/ctl_end (so the loop thread can see and interrupt it) with
 * its caller as the owner of any object references it creates; its answer is
 * sent at once, or by the event loop when an awaitable result completes.
 */
#include "worker.h"

#include <ei.h>

#include "async.h"
#include "control.h"
#include "envs.h"
#include "frames.h"
#include "log.h"
#include "ops.h"
#include "protocol.h"
#include "pyport/wire.h"
#include "reader.h"
#include "reply.h"
#include "stats.h"
#include "waiters.h"

static int g_stop;

int worker_init(const worker_cfg_t *cfg)
{
    reply_set_max_frame(cfg->max_frame);
    return op_init();
}

int worker_stopping(void)
{
    return g_stop;
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
    op_args_t a = {.frame = job->frame, .len = job->len, .index = job->index, .env = NULL};
    int pid_start;
    int pid_len;
    if (proto_pid_span(job->frame, job->len, &a.index, &pid_start, &pid_len) < 0) {
        PyErr_SetString(PyExc_ValueError, "the caller must be a pid");
        reply_error(&r, REPLY_BADARG);
        reply_send(&r);
        return;
    }
    const char *pid = job->frame + pid_start;
    rd_busy();
    env_owner_t prev = env_owner_set(pid, (size_t)pid_len);
    int created = 0;
    a.env = env_get(pid, (size_t)pid_len, &created);
    if (created) {
        frame_env(pid, (size_t)pid_len);
    }
    if (a.env == NULL) {
        cause = REPLY_PYERR;
    } else if (ctl_begin(job->id, job->op) < 0) {
        PyErr_SetString(PyExc_RecursionError, "requests nest too deeply");
        cause = REPLY_PYERR;
    } else {
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
        ctl_end();
    }
    if (result != NULL && is_awaitable(result)) {
        deferred = async_start(job->id, pid, (size_t)pid_len, result) == 0;
        cause = REPLY_PYERR;
        Py_CLEAR(result);
    }
    if (deferred) {
        buf_destroy(&r.b);
    } else {
        if (result != NULL) {
            reply_ok(&r, result);
            Py_DECREF(result);
        } else {
            reply_error(&r, cause);
        }
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
    rd_busy();               /* preload code may run long: let the loop thread read meanwhile */
    PyObject *result = NULL; // owned
    if (ctl_begin(job->id, job->op) == 0) {
        result = op_setup(&a, &cause);
        ctl_end();
    }
    if (result != NULL) {
        reply_ok(&r, result);
        Py_DECREF(result);
    } else {
        reply_error(&r, cause);
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
        waiters_store(job);
        return; /* waiters_store owns it */
    case JOB_STOP:
        g_stop = 1;
        break;
    default:
        frame_reject(job->id, "op not supported");
        break;
    }
    job_free(job);
}

void worker_run(void)
{
    while (!g_stop) {
        if (async_pending() > 0) {
            async_run();
            continue;
        }
        job_t *job = inbox_pop();
        if (job == NULL) {
            reply_flush();
            Py_BEGIN_ALLOW_THREADS
            rd_wait();
            Py_END_ALLOW_THREADS
            continue;
        }
        worker_handle(job);
    }
    reply_flush();
}
