/*
 * libFuzzer target for the request path: proto_peek on the input as a frame, and,
 * when it starts with the version byte, conv_to_py, conv_name and conv_kwargs on
 * the term, then conv_from_py of whatever decoded. Inputs sit right before an
 * unreadable page (guard.c), so over-reads fault even inside libei. Checked
 * invariants: a failure sets a Python error; decoding never consumes more than
 * the input; what the codec encodes it decodes again, and re-encodes to the same
 * bytes. As in the port, the codec only sees terms the port's own bounded walk
 * (etf.c) accepts; that walk is checked against an independent one (etf_check.c):
 * a term the port accepts and the reference refuses is a bug. Built with
 * FUZZ_WELLFORMED_ONLY, only inputs the reference accepts are tried.
 * Single-threaded; Python is started once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <ei.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "convert.h"
#include "etf.h"
#include "etf_check.h"
#include "guard.h"
#include "protocol.h"
#include "pyerlang.h"
#include "terms.h"
#include "pyport/wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *etf, size_t len)
{
    fprintf(stderr, "fuzz_convert invariant broken: %s (%zu input bytes)\n", what, len);
    (void)etf;
    if (PyErr_Occurred()) {
        PyErr_Print();
    }
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ei_init();
    pyerl_register();
    Py_Initialize();
    PyObject *m = PyImport_ImportModule("erlang"); // owned
    if (m == NULL) {
        PyErr_Print();
        abort();
    }
    Py_DECREF(m);
    return 0;
}

/* Encodes obj with a version byte; returns 0, or -1 with the error cleared. */
static int encode(buf_t *b, PyObject *obj)
{
    b->len = 0;
    char v = (char)131;
    buf_append(b, &v, 1);
    if (conv_from_py(b, obj) < 0) {
        if (!PyErr_Occurred()) {
            fail("conv_from_py failed without an error", NULL, 0);
        }
        PyErr_Clear();
        return -1;
    }
    return 0;
}

/* Decodes the codec's own encoding in b (from a heap copy: the guarded region
   still holds the input); it must decode, whole. Returns a new reference. */
static PyObject *redecode(const buf_t *b, const char *etf, size_t len)
{
    char *copy = malloc(b->len);
    if (copy == NULL) {
        abort();
    }
    memcpy(copy, b->data, b->len);
    int at = 1;
    PyObject *obj = conv_to_py(copy, b->len, &at); // owned
    if (obj == NULL) {
        fail("the codec's own encoding does not decode", etf, len);
    }
    if ((size_t)at != b->len) {
        fail("the codec's own encoding decodes short", etf, len);
    }
    free(copy);
    return obj;
}

static void check_term(const char *etf, size_t len)
{
    int index = 1;
    PyObject *obj = conv_to_py(etf, len, &index); // owned
    if (obj == NULL) {
        if (!PyErr_Occurred()) {
            fail("conv_to_py failed without an error", etf, len);
        }
        PyErr_Clear();
        return;
    }
    if (index < 1 || (size_t)index > len) {
        fail("conv_to_py consumed more than the input", etf, len);
    }
    /* Our own encoding must decode, whole, and re-encoding must reach a fixed
       point within one more round. (Not at once: the Python tuple
       ('bytes', b'..') encodes as {bytes, <<..>>}, which decodes as bytes.) */
    buf_t once;
    buf_init(&once, 64);
    if (encode(&once, obj) == 0) {
        buf_t twice;
        buf_t thrice;
        buf_init(&twice, 64);
        buf_init(&thrice, 64);
        PyObject *again = redecode(&once, etf, len); // owned
        if (encode(&twice, again) != 0) {
            fail("the codec's own decoding does not encode", etf, len);
        }
        PyObject *third = redecode(&twice, etf, len); // owned
        if (encode(&thrice, third) != 0 || thrice.len != twice.len ||
            memcmp(thrice.data, twice.data, twice.len) != 0) {
            fail("decode/encode does not reach a fixed point", etf, len);
        }
        Py_DECREF(third);
        Py_DECREF(again);
        buf_destroy(&twice);
        buf_destroy(&thrice);
    }
    buf_destroy(&once);
    Py_DECREF(obj);
}

static void check_names(const char *etf, size_t len)
{
    int index = 1;
    PyObject *name = conv_name(etf, len, &index); // owned
    if (name == NULL) {
        if (!PyErr_Occurred()) {
            fail("conv_name failed without an error", etf, len);
        }
        PyErr_Clear();
    } else if (!PyUnicode_CheckExact(name) || (size_t)index > len) {
        fail("conv_name gave a non-str or read past the input", etf, len);
    }
    Py_XDECREF(name);
    index = 1;
    PyObject *kw = conv_kwargs(etf, len, &index); // owned
    if (kw == NULL) {
        if (!PyErr_Occurred()) {
            fail("conv_kwargs failed without an error", etf, len);
        }
        PyErr_Clear();
    } else if (!PyDict_CheckExact(kw) || (size_t)index > len) {
        fail("conv_kwargs gave a non-dict or read past the input", etf, len);
    }
    Py_XDECREF(kw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
#ifdef FUZZ_WELLFORMED_ONLY
    if (!etf_well_formed(data, size)) {
        return 0;
    }
#endif
    char *frame = guard_copy(data, size);
    proto_head_t job;
    const char *err = NULL;
    memset(&job, 0, sizeof job);
    if (proto_peek(frame, size, &job, &err) == 0) {
        if (job.op < 0 || job.op >= OP_COUNT || job.index < 2 || (size_t)job.index > size) {
            fail("proto_peek accepted with a bad op or index", frame, size);
        }
    } else if (err == NULL) {
        fail("proto_peek refused without a reason", frame, size);
    }
    /* The port's walk, with the depth margin the port uses. */
    int port_ok = etf_frame_ok(frame, size, PYPORT_DEFAULT_MAX_DEPTH + 2);
    if (port_ok && !etf_well_formed(data, size)) {
        fail("the port's walk accepted a term the reference walk refuses", frame, size);
    }
    if (port_ok) {
        check_term(frame, size);
        check_names(frame, size);
    }
    return 0;
}
