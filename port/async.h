/*
 * The asyncio side of the Python thread. A request whose result is awaitable is
 * answered when it completes; streams send their items as the consumer grants
 * credit. While anything is pending the Python thread runs the event loop, which
 * watches the inbox eventfd and serves new jobs as they come, so coroutines on
 * one context interleave and sync requests keep working. The loop itself is in
 * _pyport.py. Python thread only.
 */
#ifndef PYPORT_ASYNC_H
#define PYPORT_ASYNC_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include "inbox.h"

/// Imports _pyport (the helper module). Returns 0 or -1 with an error set.
int async_init(void);

/// Returns the helper module _pyport (borrowed).
PyObject *async_helpers(void);

/// Returns the request whose coroutine or stream runs now (the task's
/// _pyport.request), or 0 outside a task.
int64_t async_current_request(void);

/// Returns the number of coroutines and streams still running.
long async_pending(void);

/// Runs the event loop until nothing is pending or the port stops.
void async_run(void);

/// Awaits `awaitable` for request id (caller pid/len owns its references).
/// Returns 0, or -1 with an error set (the request is then answered by the caller).
int async_start(int64_t id, const char *pid, size_t len, PyObject *awaitable);

/// Streams the items of `source` for request id, `window` items ahead of acks.
int async_stream(int64_t id, const char *pid, size_t len, PyObject *source, long window);

/// Cancels the coroutine or stream of request id, if any.
void async_cancel(int64_t id);

/// Grants n more items to the stream of request id.
void async_ack(int64_t id, long n);

/// A callback_reply no thread waits for: resolves the erlang.async_call future
/// of its CbId, if one still waits (a cancelled one is forgotten). Borrows job.
void async_callback_reply(const job_t *job);

/// Functions added to the `erlang` module: _finish, _stream_data, _drain, _log,
/// _inbox_fd, _pending_add.
extern PyMethodDef async_methods[];

#endif
