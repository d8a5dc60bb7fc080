/*
 * erlang.call: Python calling a function registered in Erlang, exactly once.
 * The calling thread sends {callback, CbId, ReqId, Name} + Args and waits for
 * {callback_reply, CbId, ok | error, Term} (waiters.c routes it). ReqId names
 * the request the call is made for (on top of the stack, or the coroutine's).
 * The Python thread keeps serving that request's call chain while it waits (so
 * Erlang may call back into Python, to any depth); other Python threads sleep
 * until the reply is handed to them. Any thread holding the GIL.
 */
#ifndef PYPORT_CALLBACK_H
#define PYPORT_CALLBACK_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

/// Sets how deeply the Python thread may nest callback waits.
void cb_set_max_nesting(int depth);

/// Calls the Erlang function registered as `name` with `args` (a tuple). GIL held.
/// Returns a new reference, or NULL with erlang.Error (an Erlang exception),
/// RecursionError (nesting limit) or whatever a signal raised while waiting.
PyObject *cb_call(PyObject *name, PyObject *args);

/// Sends {callback, CbId, ReqId, Name} + Args without waiting (erlang.async_call):
/// the reply comes back as a callback_reply no waiter takes, and the Python
/// thread hands it to async_callback_reply. Returns CbId, or -1 with an error set.
/// Python thread only.
int64_t cb_send_async(PyObject *name, PyObject *args);

#endif
