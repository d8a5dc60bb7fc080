/*
 * The `erlang` Python module (see pyerlang.h). Types are static C types so the
 * codec can test and build them without attribute lookups. Everything here runs
 * with the GIL held.
 */
#include "pyerlang.h"

#include <ei.h>
#include <signal.h>
#include <string.h>

#include "async.h"
#include "buf.h"
#include "callback.h"
#include "control.h"
#include "convert.h"
#include "envs.h"
#include "etf.h"
#include "outbox.h"
#include "protocol.h"
#include "pyport/wire.h"

PyObject *pyerl_RequestTimeout;
PyObject *pyerl_Error;

/* ---- Atom: a str subclass that converts back to an atom ----------------- */

static PyObject *atom_repr(PyObject *self)
{
    PyObject *inner = PyUnicode_Type.tp_repr(self); // owned
    if (inner == NULL) {
        return NULL;
    }
    PyObject *r = PyUnicode_FromFormat("erlang.Atom(%U)", inner); // owned
    Py_DECREF(inner);
    return r;
}

PyTypeObject pyerl_AtomType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "erlang.Atom",
    .tp_doc = "An Erlang atom: a str that converts back to the same atom.",
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_repr = atom_repr,
};

PyObject *pyerl_atom_new(const char *utf8, size_t len)
{
    PyObject *s = PyUnicode_DecodeUTF8(utf8, (Py_ssize_t)len, "strict"); // owned
    if (s == NULL) {
        return NULL;
    }
    PyObject *a = PyObject_CallOneArg((PyObject *)&pyerl_AtomType, s); // owned
    Py_DECREF(s);
    return a;
}

/* ---- Term, Pid, Ref: opaque Erlang terms kept as their ETF bytes --------- */

typedef struct {
    PyObject_HEAD PyObject *etf; /* owned bytes, one term without version byte */
} term_t;

static int check_etf(const char *p, Py_ssize_t n)
{
    if (n <= 0 || etf_skip(p, (size_t)n, 0, PYPORT_DEFAULT_MAX_DEPTH + 2) != (long)n) {
        PyErr_SetString(PyExc_ValueError, "not the ETF bytes of exactly one Erlang term");
        return -1;
    }
    return 0;
}

static PyObject *term_new_py(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Py_buffer view;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) > 0) {
        PyErr_SetString(PyExc_TypeError, "Term() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*", &view)) {
        return NULL;
    }
    PyObject *r = NULL;
    const char *p = view.buf;
    Py_ssize_t n = view.len;
    /* Accept bytes with or without the leading version byte. */
    if (n > 0 && (unsigned char)p[0] == 131) {
        p++;
        n--;
    }
    if (check_etf(p, n) == 0) {
        r = pyerl_term_new(type, p, (size_t)n);
    }
    PyBuffer_Release(&view);
    return r;
}

static void term_dealloc(PyObject *self)
{
    Py_XDECREF(((term_t *)self)->etf);
    Py_TYPE(self)->tp_free(self);
}

static Py_hash_t term_hash(PyObject *self)
{
    return PyObject_Hash(((term_t *)self)->etf);
}

static PyObject *term_richcompare(PyObject *a, PyObject *b, int op)
{
    if ((op != Py_EQ && op != Py_NE) || !PyObject_TypeCheck(b, &pyerl_TermType)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    int eq = Py_TYPE(a) == Py_TYPE(b) &&
             PyObject_RichCompareBool(((term_t *)a)->etf, ((term_t *)b)->etf, Py_EQ) == 1;
    if (op == Py_NE) {
        eq = !eq;
    }
    return PyBool_FromLong(eq);
}

static PyObject *term_repr(PyObject *self)
{
    term_t *t = (term_t *)self;
    const char *p = PyBytes_AS_STRING(t->etf);
    int index = 0;
    if (Py_TYPE(self) == &pyerl_PidType) {
        erlang_pid pid;
        if (ei_decode_pid(p, &index, &pid) == 0) {
            return PyUnicode_FromFormat("erlang.Pid('%s', %u, %u)", pid.node, pid.num, pid.serial);
        }
    }
    return PyUnicode_FromFormat("%s(%zd bytes)", Py_TYPE(self)->tp_name, PyBytes_GET_SIZE(t->etf));
}

static PyObject *term_reduce(PyObject *self, PyObject *unused)
{
    (void)unused;
    return Py_BuildValue("(O(O))", (PyObject *)Py_TYPE(self), ((term_t *)self)->etf);
}

static PyObject *term_get_etf(PyObject *self, void *closure)
{
    (void)closure;
    /* With the version byte, so binary_to_term-style tools accept it. */
    PyObject *v = PyBytes_FromStringAndSize("\x83", 1); // owned
    if (v != NULL) {
        PyBytes_Concat(&v, ((term_t *)self)->etf);
    }
    return v;
}

static PyMethodDef term_methods[] = {
    {"__reduce__", term_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef term_getset[] = {
    {"etf", term_get_etf, NULL, "the term in the Erlang external term format", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject pyerl_TermType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "erlang.Term",
    .tp_doc = "An Erlang term with no Python form; converts back to the same term.",
    .tp_basicsize = sizeof(term_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = term_new_py,
    .tp_dealloc = term_dealloc,
    .tp_hash = term_hash,
    .tp_richcompare = term_richcompare,
    .tp_repr = term_repr,
    .tp_methods = term_methods,
    .tp_getset = term_getset,
};

PyTypeObject pyerl_PidType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "erlang.Pid",
    .tp_doc = "An Erlang process identifier.",
    .tp_basicsize = sizeof(term_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

PyTypeObject pyerl_RefType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "erlang.Ref",
    .tp_doc = "An Erlang reference.",
    .tp_basicsize = sizeof(term_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

PyObject *pyerl_term_new(PyTypeObject *type, const char *etf, size_t len)
{
    term_t *t = PyObject_New(term_t, type);
    if (t == NULL) {
        return NULL;
    }
    t->etf = PyBytes_FromStringAndSize(etf, (Py_ssize_t)len);
    if (t->etf == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    return (PyObject *)t;
}

int pyerl_term_bytes(PyObject *obj, const char **etf, Py_ssize_t *len)
{
    if (!PyObject_TypeCheck(obj, &pyerl_TermType)) {
        return 0;
    }
    term_t *t = (term_t *)obj;
    *etf = PyBytes_AS_STRING(t->etf);
    *len = PyBytes_GET_SIZE(t->etf);
    return 1;
}

/* ---- sys.stdout / sys.stderr -------------------------------------------- */

/* Output is buffered per stream and sent as {output, ReqId, Stream, Bytes}:
   at a newline, when the buffer is large, when the request changes, and when
   the request ends. ReqId 0 means "not during a request of this thread". */
#define OUTPUT_CHUNK (64 * 1024)

typedef struct {
    PyObject_HEAD const char *stream; /* "stdout" or "stderr" */
    buf_t buf;
    int64_t req;
} output_t;

static output_t *g_outputs[2];

static int64_t output_req(void)
{
    return ctl_is_python_thread() ? ctl_current() : 0;
}

static void output_send(output_t *o)
{
    size_t off = 0;
    while (off < o->buf.len) {
        size_t n = o->buf.len - off;
        if (n > OUTPUT_CHUNK) {
            n = OUTPUT_CHUNK;
        }
        buf_t f;
        buf_init(&f, n + 64);
        proto_begin(&f);
        proto_tuple(&f, 4);
        proto_atom(&f, "output");
        proto_long(&f, o->req);
        proto_atom(&f, o->stream);
        proto_binary(&f, o->buf.data + off, n);
        proto_send(&f);
        off += n;
    }
    o->buf.len = 0;
}

static PyObject *output_write(PyObject *self, PyObject *arg)
{
    output_t *o = (output_t *)self;
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
        PyObject *r = output_write(self, clean);
        Py_DECREF(clean);
        return r;
    }
    int64_t req = output_req();
    if (o->buf.len > 0 && req != o->req) {
        output_send(o);
    }
    o->req = req;
    buf_append(&o->buf, s, (size_t)n);
    if (memchr(s, '\n', (size_t)n) != NULL || o->buf.len >= OUTPUT_CHUNK) {
        output_send(o);
    }
    return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(arg));
}

static PyObject *output_flush(PyObject *self, PyObject *unused)
{
    (void)unused;
    output_t *o = (output_t *)self;
    if (o->buf.len > 0) {
        output_send(o);
    }
    Py_RETURN_NONE;
}

static PyObject *output_true(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_RETURN_TRUE;
}

static PyObject *output_false(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_RETURN_FALSE;
}

static PyObject *output_fileno(PyObject *self, PyObject *unused)
{
    (void)unused;
    /* fd 1 and 2 are pipes the port forwards to logger, never the protocol. */
    return PyLong_FromLong(strcmp(((output_t *)self)->stream, "stdout") == 0 ? 1 : 2);
}

static PyObject *output_get_encoding(PyObject *self, void *closure)
{
    (void)self;
    (void)closure;
    return PyUnicode_FromString("utf-8");
}

static void output_dealloc(PyObject *self)
{
    buf_destroy(&((output_t *)self)->buf);
    Py_TYPE(self)->tp_free(self);
}

static PyMethodDef output_methods[] = {
    {"write", output_write, METH_O, "Write text to the caller's group leader."},
    {"flush", output_flush, METH_NOARGS, "Send buffered text now."},
    {"writable", output_true, METH_NOARGS, NULL},
    {"readable", output_false, METH_NOARGS, NULL},
    {"seekable", output_false, METH_NOARGS, NULL},
    {"isatty", output_false, METH_NOARGS, NULL},
    {"fileno", output_fileno, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef output_getset[] = {
    {"encoding", output_get_encoding, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject OutputType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "erlang._Output",
    .tp_doc = "sys.stdout/sys.stderr of a pyport context: text goes to the caller's "
              "group leader.",
    .tp_basicsize = sizeof(output_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = output_dealloc,
    .tp_methods = output_methods,
    .tp_getset = output_getset,
};

static output_t *output_new(const char *stream)
{
    output_t *o = PyObject_New(output_t, &OutputType);
    if (o != NULL) {
        o->stream = stream;
        buf_init(&o->buf, 256);
        o->req = 0;
    }
    return o;
}

void pyerl_flush_output(void)
{
    for (int i = 0; i < 2; i++) {
        if (g_outputs[i] != NULL && g_outputs[i]->buf.len > 0) {
            output_send(g_outputs[i]);
        }
    }
}

/* ---- module functions ---------------------------------------------------- */

static PyObject *mod_atom(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "atom() takes a str");
        return NULL;
    }
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(arg, &n);
    if (s == NULL) {
        return NULL;
    }
    if (PyUnicode_GET_LENGTH(arg) > 255) {
        PyErr_SetString(PyExc_ValueError, "an atom has at most 255 characters");
        return NULL;
    }
    return pyerl_atom_new(s, (size_t)n);
}

/* call(name, *args): the Erlang function registered as name, exactly once. */
static PyObject *mod_call(PyObject *self, PyObject *args)
{
    (void)self;
    if (PyTuple_GET_SIZE(args) < 1 || !PyUnicode_Check(PyTuple_GET_ITEM(args, 0))) {
        PyErr_SetString(PyExc_TypeError, "call(name, *args): name must be a str");
        return NULL;
    }
    PyObject *rest = PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args)); // owned
    if (rest == NULL) {
        return NULL;
    }
    PyObject *r = cb_call(PyTuple_GET_ITEM(args, 0), rest);
    Py_DECREF(rest);
    return r;
}

/* send(dest, term): dest is an erlang.Pid or a registered name. */
static PyObject *mod_send(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *dest;
    PyObject *term;
    if (!PyArg_ParseTuple(args, "OO", &dest, &term)) {
        return NULL;
    }
    buf_t b;
    buf_init(&b, 128);
    proto_begin(&b);
    proto_tuple(&b, 2);
    proto_atom(&b, "send");
    const char *etf;
    Py_ssize_t len;
    if (PyObject_TypeCheck(dest, &pyerl_PidType) && pyerl_term_bytes(dest, &etf, &len)) {
        proto_raw(&b, etf, (size_t)len);
    } else if (PyUnicode_Check(dest)) {
        const char *name = PyUnicode_AsUTF8AndSize(dest, &len);
        if (name == NULL) {
            buf_destroy(&b);
            return NULL;
        }
        proto_binary(&b, name, (size_t)len);
    } else {
        buf_destroy(&b);
        PyErr_SetString(PyExc_TypeError, "send(dest, term): dest must be an erlang.Pid or a str");
        return NULL;
    }
    proto_body(&b);
    if (conv_from_py(&b, term) < 0) {
        buf_destroy(&b);
        return NULL;
    }
    proto_send(&b);
    Py_RETURN_NONE;
}

/* self(): the Erlang process whose request is running, or None. */
static PyObject *mod_self(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    if (!ctl_is_python_thread()) {
        Py_RETURN_NONE;
    }
    return env_owner_pid();
}

void pyerl_raise_error(PyObject *reason)
{
    PyErr_SetObject(pyerl_Error, reason);
}

/* The Python-level handler of PYPORT_SIGNAL and SIGINT: raises in the code
   running now what the loop thread asked for, if it still applies. */
static PyObject *mod_signal(PyObject *self, PyObject *args)
{
    (void)self;
    int signum = 0;
    PyObject *frame;
    if (!PyArg_ParseTuple(args, "iO", &signum, &frame)) {
        return NULL;
    }
    if (signum == SIGINT) {
        if (ctl_depth() > 0) {
            PyErr_SetNone(PyExc_KeyboardInterrupt);
            return NULL;
        }
        Py_RETURN_NONE;
    }
    switch (ctl_take()) {
    case CTL_CANCEL:
        PyErr_SetString(pyerl_RequestTimeout, "the Erlang caller timed out");
        return NULL;
    case CTL_INTERRUPT:
        PyErr_SetNone(PyExc_KeyboardInterrupt);
        return NULL;
    case CTL_MEMORY:
        PyErr_SetString(PyExc_MemoryError, "the context is over its max_memory limit");
        return NULL;
    case CTL_NONE:
        break;
    }
    Py_RETURN_NONE;
}

static PyMethodDef mod_methods[] = {
    {"atom", mod_atom, METH_O, "atom(s) -> erlang.Atom: the Erlang atom named s."},
    {"call", mod_call, METH_VARARGS,
     "call(name, *args): call the Erlang function registered as name (exactly once)."},
    {"send", mod_send, METH_VARARGS,
     "send(dest, term): send term to an erlang.Pid or a registered process name."},
    {"self", mod_self, METH_NOARGS,
     "self() -> erlang.Pid: the Erlang process whose request is running (None elsewhere)."},
    {"_signal", mod_signal, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mod_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "erlang",
    .m_doc = "The Erlang side of a pyport context.",
    .m_size = -1,
    .m_methods = mod_methods,
};

static int add_type(PyObject *m, PyTypeObject *t, const char *name)
{
    if (PyType_Ready(t) < 0) {
        return -1;
    }
    Py_INCREF(t);
    if (PyModule_AddObject(m, name, (PyObject *)t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    return 0;
}

static PyObject *init_module(void)
{
    pyerl_AtomType.tp_base = &PyUnicode_Type;
    pyerl_PidType.tp_base = &pyerl_TermType;
    pyerl_RefType.tp_base = &pyerl_TermType;
    PyObject *m = PyModule_Create(&mod_def); // owned
    if (m == NULL) {
        return NULL;
    }
    if (add_type(m, &pyerl_AtomType, "Atom") < 0 || add_type(m, &pyerl_TermType, "Term") < 0 ||
        add_type(m, &pyerl_PidType, "Pid") < 0 || add_type(m, &pyerl_RefType, "Ref") < 0 ||
        PyType_Ready(&OutputType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    pyerl_RequestTimeout = PyErr_NewExceptionWithDoc(
        "erlang.RequestTimeout",
        "Raised in Python code whose Erlang caller timed out. Derives from "
        "BaseException so that `except Exception` does not swallow it.",
        PyExc_BaseException, NULL);
    if (pyerl_RequestTimeout == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(pyerl_RequestTimeout);
    if (PyModule_AddObject(m, "RequestTimeout", pyerl_RequestTimeout) < 0) {
        Py_DECREF(pyerl_RequestTimeout);
        Py_DECREF(m);
        return NULL;
    }
    pyerl_Error = PyErr_NewExceptionWithDoc(
        "erlang.Error",
        "An Erlang exception in a function called with erlang.call; args are "
        "(class, reason), e.g. (erlang.Atom('error'), erlang.Atom('badarith')).",
        PyExc_Exception, NULL);
    if (pyerl_Error == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(pyerl_Error);
    if (PyModule_AddObject(m, "Error", pyerl_Error) < 0 ||
        PyModule_AddFunctions(m, async_methods) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

static PyObject *PyInit_erlang(void)
{
    return init_module();
}

void pyerl_register(void)
{
    PyImport_AppendInittab("erlang", PyInit_erlang);
}

int pyerl_setup(void)
{
    PyObject *m = PyImport_ImportModule("erlang"); // owned
    if (m == NULL) {
        return -1;
    }
    int rc = -1;
    PyObject *handler = NULL;    // owned
    PyObject *signal_mod = NULL; // owned
    PyObject *r = NULL;          // owned
    g_outputs[0] = output_new("stdout");
    g_outputs[1] = output_new("stderr");
    if (g_outputs[0] == NULL || g_outputs[1] == NULL ||
        PySys_SetObject("stdout", (PyObject *)g_outputs[0]) < 0 ||
        PySys_SetObject("stderr", (PyObject *)g_outputs[1]) < 0) {
        goto done;
    }
    handler = PyObject_GetAttrString(m, "_signal");
    signal_mod = PyImport_ImportModule("signal");
    if (handler == NULL || signal_mod == NULL) {
        goto done;
    }
    r = PyObject_CallMethod(signal_mod, "signal", "iO", SIGUSR2, handler);
    if (r == NULL) {
        goto done;
    }
    Py_DECREF(r);
    r = PyObject_CallMethod(signal_mod, "signal", "iO", SIGINT, handler);
    if (r == NULL) {
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(r);
    Py_XDECREF(signal_mod);
    Py_XDECREF(handler);
    Py_DECREF(m);
    return rc;
}
