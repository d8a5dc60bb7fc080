/*
 * The term types and the port's exceptions (see terms.h). Types are static C
 * types so the codec can test and build them without attribute lookups; a Term
 * holds the ETF bytes of one term, checked by the bounded walk (etf.c) when
 * Python code builds one. GIL held.
 */
#include "terms.h"

#include <ei.h>
#include <string.h>

#include "etf.h"
#include "protocol.h"
#include "pyport/wire.h"

PyObject *terms_RequestTimeout;
PyObject *terms_Error;
PyObject *terms_AtomLimitError;

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

PyTypeObject terms_AtomType = {
    TERMS_TYPE_HEAD,
    .tp_name = "erlang.Atom",
    .tp_doc = "An Erlang atom: a str that converts back to the same atom.",
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_repr = atom_repr,
};

PyObject *terms_atom_new(const char *utf8, size_t len)
{
    PyObject *s = PyUnicode_DecodeUTF8(utf8, (Py_ssize_t)len, "strict"); // owned
    if (s == NULL) {
        return NULL;
    }
    PyObject *a = PyObject_CallOneArg((PyObject *)&terms_AtomType, s); // owned
    Py_DECREF(s);
    return a;
}

/* ---- Term, Pid, Ref: opaque Erlang terms kept as their ETF bytes --------- */

typedef struct {
    PyObject_HEAD
    PyObject *etf; /* owned bytes, one term without version byte */
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
    if (n > 0 && (unsigned char)p[0] == PROTO_ETF_VERSION) {
        p++;
        n--;
    }
    if (check_etf(p, n) == 0) {
        r = terms_new(type, p, (size_t)n);
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
    if ((op != Py_EQ && op != Py_NE) || !PyObject_TypeCheck(b, &terms_TermType)) {
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
    if (Py_TYPE(self) == &terms_PidType) {
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
    char version = (char)PROTO_ETF_VERSION;
    PyObject *v = PyBytes_FromStringAndSize(&version, 1); // owned
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

PyTypeObject terms_TermType = {
    TERMS_TYPE_HEAD,
    .tp_name = "erlang.Term",
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

PyTypeObject terms_PidType = {
    TERMS_TYPE_HEAD,
    .tp_name = "erlang.Pid",
    .tp_doc = "An Erlang process identifier.",
    .tp_basicsize = sizeof(term_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

/* A reference that names a pyport resource (a py_buffer) answers that
   resource's attributes: ref.read() is erlang.PyBuffer(ref).read(), with the
   one reader _pyport keeps per resource. Other attributes are the Term's. */
static PyObject *ref_getattro(PyObject *self, PyObject *name)
{
    PyObject *found = PyObject_GenericGetAttr(self, name); // owned
    if (found != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError) || !PyUnicode_Check(name) ||
        PyUnicode_READ_CHAR(name, 0) == '_') {
        return found;
    }
    PyObject *type;
    PyObject *value;
    PyObject *tb;
    PyErr_Fetch(&type, &value, &tb); /* owned, restored if no resource answers */
    PyObject *helpers = PyImport_ImportModule("_pyport"); // owned
    PyObject *r = helpers != NULL ? PyObject_CallMethod(helpers, "resource_attr", "OO", self, name)
                                  : NULL; // owned
    Py_XDECREF(helpers);
    if (r == NULL) {
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return NULL;
    }
    if (r == Py_NotImplemented) {
        Py_DECREF(r);
        PyErr_Restore(type, value, tb);
        return NULL;
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return r;
}

PyTypeObject terms_RefType = {
    TERMS_TYPE_HEAD,
    .tp_name = "erlang.Ref",
    .tp_doc = "An Erlang reference.",
    .tp_basicsize = sizeof(term_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_getattro = ref_getattro,
};

PyObject *terms_new(PyTypeObject *type, const char *etf, size_t len)
{
    /* tp_alloc, not PyObject_New: a Python subclass of Term is a heap type with
       a __dict__ and the GC header that PyObject_New would not allocate. */
    term_t *t = (term_t *)type->tp_alloc(type, 0);
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

int terms_bytes(PyObject *obj, const char **etf, Py_ssize_t *len)
{
    if (!PyObject_TypeCheck(obj, &terms_TermType)) {
        return 0;
    }
    term_t *t = (term_t *)obj;
    *etf = PyBytes_AS_STRING(t->etf);
    *len = PyBytes_GET_SIZE(t->etf);
    return 1;
}

/* ---- exceptions and set-up ------------------------------------------------ */

void terms_raise_error(PyObject *reason)
{
    PyErr_SetObject(terms_Error, reason);
}

int terms_init(void)
{
    if (terms_Error != NULL) {
        return 0;
    }
    terms_AtomType.tp_base = &PyUnicode_Type;
    terms_PidType.tp_base = &terms_TermType;
    terms_RefType.tp_base = &terms_TermType;
    if (PyType_Ready(&terms_AtomType) < 0 || PyType_Ready(&terms_TermType) < 0 ||
        PyType_Ready(&terms_PidType) < 0 || PyType_Ready(&terms_RefType) < 0) {
        return -1;
    }
    terms_RequestTimeout = PyErr_NewExceptionWithDoc(
        "erlang.RequestTimeout",
        "Raised in Python code whose Erlang caller timed out. Derives from "
        "BaseException so that `except Exception` does not swallow it.",
        PyExc_BaseException, NULL);
    if (terms_RequestTimeout == NULL) {
        return -1;
    }
    terms_Error = PyErr_NewExceptionWithDoc(
        "erlang.Error",
        "An Erlang exception in a function called with erlang.call; args are "
        "(class, reason), e.g. (erlang.Atom('error'), erlang.Atom('badarith')).",
        PyExc_Exception, NULL);
    if (terms_Error == NULL) {
        return -1;
    }
    terms_AtomLimitError = PyErr_NewExceptionWithDoc(
        "erlang.AtomLimitError",
        "Raised when a value to send to Erlang holds an atom name that would exceed "
        "the context's atom budget (max_atoms): Erlang's atom table is never "
        "garbage-collected, so new atoms from Python are bounded.",
        PyExc_ValueError, NULL);
    return terms_AtomLimitError != NULL ? 0 : -1;
}

static int add(PyObject *m, const char *name, PyObject *obj)
{
    Py_INCREF(obj);
    if (PyModule_AddObject(m, name, obj) < 0) {
        Py_DECREF(obj);
        return -1;
    }
    return 0;
}

int terms_add_to(PyObject *m)
{
    if (terms_init() < 0 || add(m, "Atom", (PyObject *)&terms_AtomType) < 0 ||
        add(m, "Term", (PyObject *)&terms_TermType) < 0 ||
        add(m, "Pid", (PyObject *)&terms_PidType) < 0 ||
        add(m, "Ref", (PyObject *)&terms_RefType) < 0 ||
        add(m, "RequestTimeout", terms_RequestTimeout) < 0 || add(m, "Error", terms_Error) < 0 ||
        add(m, "AtomLimitError", terms_AtomLimitError) < 0) {
        return -1;
    }
    return 0;
}
