/*
 * The one answer of a request: {reply, Id} + result or {error, Id} + reason.
 * The header is written first and its tag patched in place on error ("reply" and
 * "error" have the same length), so a large result is encoded once, straight into
 * the frame. Python thread (GIL held).
 */
#ifndef PYPORT_REPLY_H
#define PYPORT_REPLY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include "buf.h"
#include "frames.h"

typedef struct {
    buf_t b;
    frame_answer_t at; /* where its tag and body start */
    int64_t id;
} reply_t;

/// How a request failed: its own arguments were malformed, or Python raised.
typedef enum { REPLY_PYERR, REPLY_BADARG } reply_cause_t;

/// Sets the largest frame a reply may be (bigger ones become {too_large, ...}).
void reply_set_max_frame(size_t max);

/// Starts the reply to request id in caller storage.
void reply_begin(reply_t *r, int64_t id);

/// Encodes result as the body; if it cannot be encoded, the reply becomes the error.
void reply_ok(reply_t *r, PyObject *result);

/// Makes the body the pending Python exception ({pyerr, ...} or {badarg, ...}).
void reply_error(reply_t *r, reply_cause_t cause);

/// Makes the reply {error, Id} + cancelled (the request was cancelled).
void reply_cancelled(reply_t *r);

/// Frames and sends the reply (batched when more jobs wait); frees r's buffer.
void reply_send(reply_t *r);

/// Writes every queued reply now (when the Python thread runs out of work).
void reply_flush(void);

/// Sends a whole frame, batching it with others while more jobs wait.
void reply_send_frame(char *frame, size_t len);

#endif
