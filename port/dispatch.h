/*
 * Handling of frames from Erlang, shared by the two threads that may read them.
 * Thread-safe; never touches Python objects, and includes no file of the Python
 * thread: what it needs from there is published in loop-safe modules (stats.c,
 * waiters.c, control.c, inbox.c).
 */
#ifndef PYPORT_DISPATCH_H
#define PYPORT_DISPATCH_H

#include <stddef.h>

typedef struct {
    size_t max_frame;
    int max_depth;
    const char *python_version; /* reported by info */
    void (*exit_soon)(void);    /* Erlang has gone: exit soon even if Python is stuck */
} dispatch_cfg_t;

/// Sets the limits, the Python version and the exit hook. Call once.
void dispatch_init(const dispatch_cfg_t *cfg);

/// A whole frame from Erlang, or a batch of them (PYPORT_BATCH_TAG); takes
/// ownership of frame (mem_free).
void dispatch_frame(char *frame, size_t len);

/// A frame over the limit: its first peek_len bytes and its full length.
void dispatch_oversize(const char *peek, size_t peek_len, size_t total);

/// stdin closed. mid_frame: in the middle of a frame (framing lost: exits).
void dispatch_eof(int mid_frame);

#endif
