/*
 * erlang._BufferBase: the C base of erlang.PyBuffer (_erlang_buffer.py). It
 * holds one bytes or bytearray object and exports it read-only through the buffer protocol, so that
 * memoryview(buf) is a read-only, zero-copy view on any Python 3.11+
 * (a Python class can export a buffer itself only from 3.12). GIL held.
 */
#ifndef PYPORT_BUFVIEW_H
#define PYPORT_BUFVIEW_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/// Adds _BufferBase to module m. Returns 0 or -1 with an error set.
int bufview_add_to(PyObject *m);

#endif
