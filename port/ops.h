/*
 * The operations a request can ask for, each decoding its own fields from the
 * frame and running in the caller's environment: call, eval, exec, method,
 * getattr, the source of a stream, and setup. Python thread (GIL held).
 */
#ifndef PYPORT_OPS_H
#define PYPORT_OPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "reply.h"

typedef struct {
    const char *frame; /* the request's ETF bytes */
    size_t len;
    int index;     /* cursor: the next field to decode */
    PyObject *env; /* borrowed: the caller's namespace */
} op_args_t;

/// Prepares the compile caches. Returns 0 or -1 with an error set.
int op_init(void);

/* Each returns a new reference, or NULL with a Python error set and *cause saying
   whether the request itself was malformed (REPLY_BADARG) or Python raised. */

/// {call, Id, Pid, Module, Function, Args, Kwargs}
PyObject *op_call(op_args_t *a, reply_cause_t *cause);
/// {eval, Id, Pid, Code, Locals}
PyObject *op_eval(op_args_t *a, reply_cause_t *cause);
/// {exec, Id, Pid, Code}: the result is the atom ok.
PyObject *op_exec(op_args_t *a, reply_cause_t *cause);
/// {method, Id, Pid, Ref, Name, Args, Kwargs}
PyObject *op_method(op_args_t *a, reply_cause_t *cause);
/// {getattr, Id, Pid, Ref, Name}
PyObject *op_getattr(op_args_t *a, reply_cause_t *cause);
/// {stream, Id, Pid, Source, Window}: returns the iterable; sets *window.
PyObject *op_stream_source(op_args_t *a, reply_cause_t *cause, long *window);
/// {setup, Id, Opts}: context pid, preload, venv, logging, output and send credit
/// windows, atom budget. Returns the atom ok.
PyObject *op_setup(op_args_t *a, reply_cause_t *cause);
/// Runs preload code (a str) in a fresh namespace that every new environment
/// copies (the setup's `preload`, and the warm template's). 0, or -1 with a
/// Python exception set.
int op_preload(PyObject *code_text);

#endif
