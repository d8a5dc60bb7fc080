/*
 * erlang._BufferBase (see bufview.h). Python thread or any thread holding the
 * GIL. A view exported by getbuffer holds the bytes object it was taken from,
 * so replacing the data (_set_data) never invalidates a view.
 */
#include "bufview.h"

typedef struct {
    PyObject_HEAD
    PyObject *data; /* owned: a bytes or bytearray object, never NULL after init */
} bufview_t;

static int bv_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    bufview_t *bv = (bufview_t *)self;
    if (bv->data == NULL) {
        bv->data = PyBytes_FromStringAndSize(NULL, 0);
    }
    return bv->data != NULL ? 0 : -1;
}

static void bv_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(((bufview_t *)self)->data);
    Py_TYPE(self)->tp_free(self);
}

static int bv_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((bufview_t *)self)->data);
    return 0;
}

static int bv_clear(PyObject *self)
{
    Py_CLEAR(((bufview_t *)self)->data);
    return 0;
}

/* _set_data(b): the bytes (or bytearray) the buffer exports from now on. */
static PyObject *bv_set_data(PyObject *self, PyObject *arg)
{
    if (!PyBytes_Check(arg) && !PyByteArray_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "_set_data needs bytes or a bytearray");
        return NULL;
    }
    bufview_t *bv = (bufview_t *)self;
    Py_INCREF(arg);
    Py_XSETREF(bv->data, arg);
    Py_RETURN_NONE;
}

static PyObject *bv_get_data(PyObject *self, void *closure)
{
    (void)closure;
    bufview_t *bv = (bufview_t *)self;
    if (bv->data == NULL) {
        return PyBytes_FromStringAndSize(NULL, 0);
    }
    return Py_NewRef(bv->data);
}

static int bv_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
    bufview_t *bv = (bufview_t *)self;
    if (bv->data == NULL && bv_init(self, NULL, NULL) < 0) {
        return -1;
    }
    /* The view's obj is the data object: it stays valid whatever the buffer
       holds next (a bytearray cannot grow while viewed; the Python side then
       moves to a new one). Always read-only. */
    if (flags & PyBUF_WRITABLE) {
        PyErr_SetString(PyExc_BufferError, "an erlang.PyBuffer is read-only");
        return -1;
    }
    if (PyObject_GetBuffer(bv->data, view, flags) < 0) {
        return -1;
    }
    view->readonly = 1;
    return 0;
}

static PyBufferProcs bv_as_buffer = {.bf_getbuffer = bv_getbuffer, .bf_releasebuffer = NULL};

static PyMethodDef bv_methods[] = {
    {"_set_data", bv_set_data, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef bv_getset[] = {
    {"_data", bv_get_data, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject bufview_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "erlang._BufferBase",
    .tp_basicsize = sizeof(bufview_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = bv_init,
    .tp_dealloc = bv_dealloc,
    .tp_free = PyObject_GC_Del,
    .tp_traverse = bv_traverse,
    .tp_clear = bv_clear,
    .tp_as_buffer = &bv_as_buffer,
    .tp_methods = bv_methods,
    .tp_getset = bv_getset,
};

int bufview_add_to(PyObject *m)
{
    if (PyType_Ready(&bufview_type) < 0) {
        return -1;
    }
    Py_INCREF(&bufview_type);
    if (PyModule_AddObject(m, "_BufferBase", (PyObject *)&bufview_type) < 0) {
        Py_DECREF(&bufview_type);
        return -1;
    }
    return 0;
}
