/*
 * erlang.call: Python calling a function registered in Erlang, exactly once.
 * The calling thread sends {callback, CbId, ReqId, Name} + Args and waits for
 * {callback_reply, CbId, ok | error, Term}. The Python thread keeps serving
 * requests while it waits (so Erlang may call back into Python, to any depth);
 * other Python threads sleep on a condition variable that the loop thread
 * signals. The waiter table is shared by all threads under one mutex.
 */
#ifndef PYPORT_CALLBACK_H
#define PYPORT_CALLBACK_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "inbox.h"

/// Sets how deeply the Python thread may nest callback waits.
void cb_set_max_nesting(int depth);

/// Calls the Erlang function registered as `name` with `args` (a tuple). GIL held.
/// Returns a new reference, or NULL with erlang.Error (an Erlang exception),
/// RecursionError (nesting limit) or whatever a signal raised while waiting.
PyObject *cb_call(PyObject *name, PyObject *args);

/// Loop thread: a callback_reply frame arrived. Hands it to the thread waiting
/// for it, or queues it for the Python thread. Takes ownership of job.
void cb_route(job_t *job);

/// Python thread: a callback_reply job popped from the inbox. Takes ownership.
void cb_store(job_t *job);

/// Returns the current nesting depth of callback waits on the Python thread.
int cb_depth(void);

#endif
