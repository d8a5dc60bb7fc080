/*
 * Handling of frames from Erlang, shared by the two threads that may read them.
 * Thread-safe; never touches Python objects.
 */
#ifndef PYPORT_DISPATCH_H
#define PYPORT_DISPATCH_H

#include <stddef.h>

#include "inbox.h"

/// Sets the frame and nesting limits and the Python version reported by info.
/// Call once.
void dispatch_init(size_t max_frame, int max_depth, const char *python_version);

/// A whole frame from Erlang; takes ownership of frame (mem_free).
void dispatch_frame(char *frame, size_t len);

/// A frame over the limit: its first peek_len bytes and its full length.
void dispatch_oversize(const char *peek, size_t peek_len, size_t total);

/// Answers a malformed request {error, Id} + {badarg, why}, or logs it when it
/// has no id. Any thread.
void dispatch_reject(const job_t *job, const char *why);

/// stdin closed. mid_frame: in the middle of a frame (framing lost: exits).
void dispatch_eof(int mid_frame);

#endif
