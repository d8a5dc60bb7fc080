/*
 * The C half of the asyncio bridge (see async.h; the Python half is _pyport.py).
 * Completion and stream frames are built here so they share the codec and the
 * reply framing of synchronous requests.
 */
#include "async.h"

#include <stdarg.h>
#include <string.h>

#include "buf.h"
#include "control.h"
#include "convert.h"
#include "envs.h"
#include "frames.h"
#include "inbox.h"
#include "output.h"
#include "protocol.h"
#include "pyport/wire.h"
#include "reader.h"
#include "reply.h"
#include "terms.h"
#include "worker.h"

static PyObject *g_helpers; /* owned: the _pyport module */
static long g_pending;      /* async requests started and not yet answered */
static PyObject *g_drain;   /* owned: erlang._drain */
static PyObject *g_request; /* owned: _pyport.request, the running task's request */

int async_init(void)
{
    g_helpers = PyImport_ImportModule("_pyport");
    if (g_helpers == NULL) {
        return -1;
    }
    PyObject *erlang = PyImport_ImportModule("erlang"); // owned
    if (erlang == NULL) {
        return -1;
    }
    g_drain = PyObject_GetAttrString(erlang, "_drain");
    Py_DECREF(erlang);
    g_request = PyObject_GetAttrString(g_helpers, "request");
    return g_drain != NULL && g_request != NULL ? 0 : -1;
}

int64_t async_current_request(void)
{
    PyObject *v = NULL; // owned
    if (g_request == NULL || PyContextVar_Get(g_request, NULL, &v) < 0 || v == NULL) {
        PyErr_Clear();
        return 0;
    }
    long long id = PyLong_AsLongLong(v);
    Py_DECREF(v);
    if (id == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return id;
}

PyObject *async_helpers(void)
{
    return g_helpers;
}

/* Calls _pyport.<fn>(...) and discards the result; -1 with an error set on failure. */
static int helper(const char *fn, const char *fmt, ...)
{
    PyObject *f = PyObject_GetAttrString(g_helpers, fn); // owned
    if (f == NULL) {
        return -1;
    }
    va_list ap;
    va_start(ap, fmt);
    PyObject *args = Py_VaBuildValue(fmt, ap); // owned
    va_end(ap);
    PyObject *r = args != NULL ? PyObject_CallObject(f, args) : NULL; // owned
    Py_XDECREF(args);
    Py_DECREF(f);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

long async_pending(void)
{
    return g_pending;
}

void async_run(void)
{
    rd_event_loop(1); /* the loop thread reads while the event loop runs */
    if (inbox_len() > 0) {
        /* Jobs this thread read itself were queued without waking the eventfd
           the event loop watches: make it readable, or they wait for the loop
           to stop. */
        inbox_kick();
    }
    int rc = helper("run", "(iO)", inbox_fd(), g_drain);
    rd_event_loop(0);
    if (rc < 0) {
        /* Tasks return SystemExit and KeyboardInterrupt instead of raising them
           (_pyport._Raised); whatever still escapes the loop (a callback of the
           loop itself) is reported, never allowed to end the process: the
           tasks go on at the next run. */
        PyErr_WriteUnraisable(NULL);
    }
}

static PyObject *owner_obj(const char *pid, size_t len)
{
    return terms_new(&terms_PidType, pid, len);
}

int async_start(int64_t id, const char *pid, size_t len, PyObject *awaitable)
{
    PyObject *owner = owner_obj(pid, len); // owned
    if (owner == NULL) {
        return -1;
    }
    int rc = helper("start_task", "(LOO)", (long long)id, owner, awaitable);
    Py_DECREF(owner);
    if (rc == 0) {
        g_pending++;
        ctl_task_add(id);
    }
    return rc;
}

int async_stream(int64_t id, const char *pid, size_t len, PyObject *source, long window)
{
    PyObject *owner = owner_obj(pid, len); // owned
    if (owner == NULL) {
        return -1;
    }
    int rc = helper("start_stream", "(LOOl)", (long long)id, owner, source, window);
    Py_DECREF(owner);
    if (rc == 0) {
        g_pending++;
        ctl_task_add(id);
    }
    return rc;
}

void async_cancel(int64_t id)
{
    if (helper("cancel", "(L)", (long long)id) < 0) {
        PyErr_WriteUnraisable(NULL);
    }
}

void async_callback_reply(const job_t *job)
{
    int64_t cb_id = 0;
    PyObject *value = conv_callback_reply(job->frame, job->len, job->index, &cb_id); // owned
    PyObject *exc = NULL;                                                            // owned
    if (value == NULL) {
        if (cb_id == 0) {
            PyErr_WriteUnraisable(NULL); /* malformed: no future to tell */
            return;
        }
        PyObject *type;
        PyObject *tb;
        PyErr_Fetch(&type, &exc, &tb); /* all three owned */
        PyErr_NormalizeException(&type, &exc, &tb);
        if (exc != NULL && tb != NULL) {
            PyException_SetTraceback(exc, tb);
        }
        Py_XDECREF(type);
        Py_XDECREF(tb);
    }
    int rc = helper("callback_done", "(LOO)", (long long)cb_id, value != NULL ? value : Py_None,
                    exc != NULL ? exc : Py_None);
    Py_XDECREF(value);
    Py_XDECREF(exc);
    if (rc < 0) {
        PyErr_WriteUnraisable(NULL);
    }
}

void async_ack(int64_t id, long n)
{
    if (helper("stream_ack", "(Ll)", (long long)id, n) < 0) {
        PyErr_WriteUnraisable(NULL);
    }
}

/* ---- functions of the erlang module used by _pyport ------------------------ */

static int owner_bytes(PyObject *owner, const char **pid, Py_ssize_t *len)
{
    if (!terms_bytes(owner, pid, len)) {
        PyErr_SetString(PyExc_TypeError, "owner must be an erlang.Pid");
        return -1;
    }
    return 0;
}

/* _finish(req_id, owner, status, value): the one answer of an async request. */
static PyObject *mod_finish(PyObject *self, PyObject *args)
{
    (void)self;
    long long id;
    PyObject *owner;
    const char *status;
    PyObject *value;
    const char *pid;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "LOsO", &id, &owner, &status, &value) ||
        owner_bytes(owner, &pid, &len) < 0) {
        return NULL;
    }
    reply_t r;
    reply_begin(&r, id);
    env_owner_t prev = env_owner_set(pid, (size_t)len);
    if (strcmp(status, "ok") == 0) {
        reply_ok(&r, value);
    } else if (strcmp(status, "error") == 0 && PyExceptionInstance_Check(value)) {
        PyErr_SetObject((PyObject *)Py_TYPE(value), value);
        reply_error(&r, REPLY_PYERR);
    } else {
        reply_cancelled(&r);
    }
    env_owner_restore(prev);
    reply_send(&r);
    g_pending--;
    ctl_task_remove(id);
    Py_RETURN_NONE;
}

/* _stream_data(req_id, owner, value): one item of a stream. */
static PyObject *mod_stream_data(PyObject *self, PyObject *args)
{
    (void)self;
    long long id;
    PyObject *owner;
    PyObject *value;
    const char *pid;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "LOO", &id, &owner, &value) || owner_bytes(owner, &pid, &len) < 0) {
        return NULL;
    }
    buf_t b;
    frame_begin_stream_data(&b, id);
    env_owner_t prev = env_owner_set(pid, (size_t)len);
    int rc = conv_from_py(&b, value);
    env_owner_restore(prev);
    if (rc < 0) {
        buf_destroy(&b);
        return NULL;
    }
    output_flush();
    proto_end(&b, PYPORT_HARD_MAX_FRAME);
    size_t n;
    char *frame = buf_steal(&b, &n);
    reply_send_frame(frame, n);
    Py_RETURN_NONE;
}

/* _inbox_fd(): the eventfd that is readable while jobs wait for this thread. */
static PyObject *mod_inbox_fd(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromLong(inbox_fd());
}

/* _pending_add(n): n more (or fewer) tasks the loop must run for (spawn_task). */
static PyObject *mod_pending_add(PyObject *self, PyObject *args)
{
    (void)self;
    long n;
    if (!PyArg_ParseTuple(args, "l", &n)) {
        return NULL;
    }
    g_pending += n;
    Py_RETURN_NONE;
}

/* _drain(): the inbox eventfd is readable; serve every job waiting (the jobs of
   the running request's call chain when a request runs an event loop itself). */
static PyObject *mod_drain(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    if (!ctl_is_python_thread()) {
        Py_RETURN_NONE; /* a loop of another thread: the inbox is not its own */
    }
    inbox_drain();
    if (ctl_current() != 0) {
        worker_serve_chain(ctl_current());
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    serve_t s = {.wait = SERVE_RETURN};
    if (worker_serve(&s) == SERVE_STOPPED) {
        helper("stop", "()");
    }
    PyErr_Clear();
    Py_RETURN_NONE;
}

/* _log(levelno, logger_name, message): a Python logging record for Erlang. */
static PyObject *mod_log(PyObject *self, PyObject *args)
{
    (void)self;
    int level;
    const char *name;
    Py_ssize_t name_len;
    const char *msg;
    Py_ssize_t msg_len;
    if (!PyArg_ParseTuple(args, "is#s#", &level, &name, &name_len, &msg, &msg_len)) {
        return NULL;
    }
    buf_t b;
    frame_log(&b, level, name, (size_t)name_len, msg, (size_t)msg_len);
    if (output_send_metered(&b, CREDIT_OUTPUT, 1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyMethodDef async_methods[] = {
    {"_finish", mod_finish, METH_VARARGS, NULL},
    {"_stream_data", mod_stream_data, METH_VARARGS, NULL},
    {"_drain", mod_drain, METH_NOARGS, NULL},
    {"_log", mod_log, METH_VARARGS, NULL},
    {"_inbox_fd", mod_inbox_fd, METH_NOARGS, NULL},
    {"_pending_add", mod_pending_add, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};
