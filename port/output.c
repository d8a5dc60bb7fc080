/*
 * sys.stdout and sys.stderr of a context (see output.h). Output is buffered per
 * stream and sent as {output, ReqId, Stream, Bytes}: at a newline, when the
 * buffer is large, when the request changes, and when the request ends. ReqId 0
 * means "not during a request of this thread". Frames go out within the output
 * credit window: a writer waits for credit with the GIL released. GIL held.
 */
#include "output.h"

#include <string.h>

#include "buf.h"
#include "control.h"
#include "credit.h"
#include "frames.h"
#include "terms.h"

#define OUTPUT_CHUNK (64 * 1024)

typedef struct {
    PyObject_HEAD
    const char *stream; /* "stdout" or "stderr" */
    buf_t buf;
    int64_t req;
    int python_thread; /* the Python thread wrote what buf holds */
} writer_t;

static writer_t *g_outputs[2]; /* owned */

static int64_t writer_req(void)
{
    return ctl_is_python_thread() ? ctl_current() : 0;
}

int output_send_metered(buf_t *b, credit_kind_t kind, int interruptible)
{
    size_t size = frame_size(b);
    int on_python = ctl_is_python_thread();
    for (;;) {
        uint64_t seen = credit_seq();
        if (credit_try(kind, size)) {
            frame_send(b);
            return 0;
        }
        /* Only the Python thread receives the interrupt signal. */
        int signals = interruptible && on_python;
        Py_BEGIN_ALLOW_THREADS
        credit_wait(seen, signals);
        Py_END_ALLOW_THREADS
        if (signals && PyErr_CheckSignals() < 0) {
            buf_destroy(b);
            return -1;
        }
    }
}

/* How writer_send waits for credit. */
typedef enum {
    SEND_WAIT,           /* wait, running signal handlers on the Python thread */
    SEND_WITH_THE_ANSWER /* do not wait: charge the window (see output_flush) */
} send_mode_t;

/* Sends what o holds, in frames of at most OUTPUT_CHUNK bytes. Each chunk leaves
   the buffer before the wait for credit (which releases the GIL, so another
   thread may write meanwhile). Returns 0, or -1 with an error set when a signal
   handler raised during a wait (the rest stays buffered). */
static int writer_send(writer_t *o, send_mode_t mode)
{
    while (o->buf.len > 0) {
        size_t n = o->buf.len;
        if (n > OUTPUT_CHUNK) {
            n = OUTPUT_CHUNK;
        }
        buf_t f;
        frame_output(&f, o->req, o->stream, o->buf.data, n);
        memmove(o->buf.data, o->buf.data + n, o->buf.len - n);
        o->buf.len -= n;
        if (mode == SEND_WITH_THE_ANSWER) {
            credit_charge(CREDIT_OUTPUT, frame_size(&f));
            frame_send(&f);
        } else if (output_send_metered(&f, CREDIT_OUTPUT, 1) < 0) {
            return -1;
        }
    }
    return 0;
}

static PyObject *writer_write(PyObject *self, PyObject *arg)
{
    writer_t *o = (writer_t *)self;
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "write() argument must be str, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(arg, &n);
    if (s == NULL) {
        /* Lone surrogates: write them escaped rather than fail the print. */
        PyErr_Clear();
        PyObject *b = PyUnicode_AsEncodedString(arg, "utf-8", "backslashreplace"); // owned
        if (b == NULL) {
            return NULL;
        }
        PyObject *clean = PyUnicode_FromEncodedObject(b, "utf-8", "strict"); // owned
        Py_DECREF(b);
        if (clean == NULL) {
            return NULL;
        }
        PyObject *r = writer_write(self, clean);
        Py_DECREF(clean);
        return r;
    }
    int64_t req = writer_req();
    if (o->buf.len > 0 && req != o->req && writer_send(o, SEND_WAIT) < 0) {
        return NULL;
    }
    o->req = req;
    o->python_thread = ctl_is_python_thread();
    buf_append(&o->buf, s, (size_t)n);
    if ((memchr(s, '\n', (size_t)n) != NULL || o->buf.len >= OUTPUT_CHUNK) &&
        writer_send(o, SEND_WAIT) < 0) {
        return NULL;
    }
    return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(arg));
}

static PyObject *writer_flush(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (writer_send((writer_t *)self, SEND_WAIT) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *writer_true(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_RETURN_TRUE;
}

static PyObject *writer_false(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_RETURN_FALSE;
}

static PyObject *writer_fileno(PyObject *self, PyObject *unused)
{
    (void)unused;
    /* fd 1 and 2 are pipes the port forwards to logger, never the protocol. */
    return PyLong_FromLong(strcmp(((writer_t *)self)->stream, "stdout") == 0 ? 1 : 2);
}

static PyObject *writer_get_encoding(PyObject *self, void *closure)
{
    (void)self;
    (void)closure;
    return PyUnicode_FromString("utf-8");
}

static void writer_dealloc(PyObject *self)
{
    buf_destroy(&((writer_t *)self)->buf);
    Py_TYPE(self)->tp_free(self);
}

static PyMethodDef writer_methods[] = {
    {"write", writer_write, METH_O, "Write text to the caller's group leader."},
    {"flush", writer_flush, METH_NOARGS, "Send buffered text now."},
    {"writable", writer_true, METH_NOARGS, NULL},
    {"readable", writer_false, METH_NOARGS, NULL},
    {"seekable", writer_false, METH_NOARGS, NULL},
    {"isatty", writer_false, METH_NOARGS, NULL},
    {"fileno", writer_fileno, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef writer_getset[] = {
    {"encoding", writer_get_encoding, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject OutputType = {
    TERMS_TYPE_HEAD,
    .tp_name = "erlang._Output",
    .tp_doc = "sys.stdout/sys.stderr of a pyport context: text goes to the caller's "
              "group leader.",
    .tp_basicsize = sizeof(writer_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = writer_dealloc,
    .tp_methods = writer_methods,
    .tp_getset = writer_getset,
};

static writer_t *writer_new(const char *stream)
{
    writer_t *o = PyObject_New(writer_t, &OutputType);
    if (o != NULL) {
        o->stream = stream;
        buf_init(&o->buf, 256);
        o->req = 0;
        o->python_thread = 0;
    }
    return o;
}

void output_flush(void)
{
    for (int i = 0; i < 2; i++) {
        if (g_outputs[i] != NULL && g_outputs[i]->python_thread) {
            writer_send(g_outputs[i], SEND_WITH_THE_ANSWER);
        }
    }
}

int output_init(void)
{
    if (PyType_Ready(&OutputType) < 0) {
        return -1;
    }
    g_outputs[0] = writer_new("stdout");
    g_outputs[1] = writer_new("stderr");
    if (g_outputs[0] == NULL || g_outputs[1] == NULL ||
        PySys_SetObject("stdout", (PyObject *)g_outputs[0]) < 0 ||
        PySys_SetObject("stderr", (PyObject *)g_outputs[1]) < 0) {
        return -1;
    }
    return 0;
}
