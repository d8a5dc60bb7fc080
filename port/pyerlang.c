/*
 * The `erlang` Python module (see pyerlang.h): its functions (atom, call, send,
 * self), the handler of the interrupt signal, and the module's set-up. A client
 * of everything below it: the term types and exceptions (terms.c), the codec,
 * callbacks, environments and the asyncio bridge. GIL held.
 */
#include "pyerlang.h"

#include <signal.h>

#include "async.h"
#include "bufview.h"
#include "buf.h"
#include "callback.h"
#include "control.h"
#include "convert.h"
#include "envs.h"
#include "frames.h"
#include "output.h"
#include "terms.h"
#include "worker.h"

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
    return terms_atom_new(s, (size_t)n);
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
    const char *etf;
    Py_ssize_t len;
    if (PyObject_TypeCheck(dest, &terms_PidType) && terms_bytes(dest, &etf, &len)) {
        frame_begin_send_pid(&b, etf, (size_t)len);
    } else if (PyUnicode_Check(dest)) {
        const char *name = PyUnicode_AsUTF8AndSize(dest, &len);
        if (name == NULL) {
            return NULL;
        }
        frame_begin_send_name(&b, name, (size_t)len);
    } else {
        PyErr_SetString(PyExc_TypeError, "send(dest, term): dest must be an erlang.Pid or a str");
        return NULL;
    }
    if (conv_from_py(&b, term) < 0) {
        buf_destroy(&b);
        return NULL;
    }
    if (output_send_metered(&b, CREDIT_SEND, 1) < 0) {
        return NULL;
    }
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

/* The Python-level handler of CTL_SIGNAL and SIGINT: raises in the code
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
    if (worker_raise_pending() < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* _callback_send(name, args): erlang.async_call's frame; the CbId. */
static PyObject *mod_callback_send(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *name;
    PyObject *cb_args;
    if (!PyArg_ParseTuple(args, "UO", &name, &cb_args)) {
        return NULL;
    }
    int64_t id = cb_send_async(name, cb_args);
    return id < 0 ? NULL : PyLong_FromLongLong(id);
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
    {"_callback_send", mod_callback_send, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mod_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "erlang",
    .m_doc = "The Erlang side of a pyport context.",
    .m_size = -1,
    .m_methods = mod_methods,
};

static PyObject *PyInit_erlang(void)
{
    PyObject *m = PyModule_Create(&mod_def); // owned
    if (m == NULL) {
        return NULL;
    }
    if (terms_add_to(m) < 0 || bufview_add_to(m) < 0 ||
        PyModule_AddFunctions(m, async_methods) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
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
    handler = PyObject_GetAttrString(m, "_signal");
    /* _signal, not signal: the same handlers without importing enum (and
       functools, collections, types) at every start. */
    signal_mod = PyImport_ImportModule("_signal");
    if (handler == NULL || signal_mod == NULL) {
        goto done;
    }
    r = PyObject_CallMethod(signal_mod, "signal", "iO", CTL_SIGNAL, handler);
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
