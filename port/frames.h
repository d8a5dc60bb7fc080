/*
 * Every frame the port sends to Erlang (docs/protocol.md, "Frames from the
 * port"), each built by one named constructor, next to the op table of
 * protocol.c. Frames without a codec-encoded body are built and sent at once
 * (outbox), but for those under a credit window (output, log), which are built in
 * caller storage for the caller to send when the window allows; frames with a
 * body are started in caller storage (a buf_t the constructor initialises), the
 * caller appends the body and ends the frame (frame_send, or reply.c's
 * batching). Any thread; no Python.
 */
#ifndef PYPORT_FRAMES_H
#define PYPORT_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* ---- whole frames, sent at once ------------------------------------------ */

/// {ready, ProtocolVersion, PythonVersion, OsPid}: the first frame.
void frame_ready(const char *python_version, long os_pid);

/// {env, Pid}: the environment of the pid whose ETF bytes are pid/len was created.
void frame_env(const char *pid, size_t len);

/// {exiting, Status}: the port is about to exit with one of its own statuses.
/// Writes what is queued, then this frame, and nothing after it; allocates
/// nothing (the exit may be for lack of memory).
void frame_exiting(int status);

/// {error, Id} + cancelled: the request was dropped before it started.
void frame_cancelled(int64_t id);

/// {error, Id} + {too_large, Size, Max}.
void frame_too_large(int64_t id, size_t size, size_t max);

/// {error, Id} + {badarg, Message} when id > 0; otherwise the malformed frame
/// cannot be answered and is logged.
void frame_reject(int64_t id, const char *why);

/// What the answer to {info, Id} reports (docs/protocol.md).
typedef struct {
    int64_t current;    /* the innermost running request, 0 when idle */
    const char *op;     /* its op name */
    int64_t running_ms; /* how long it has run */
    int64_t envs;
    int64_t queue;
    int64_t calls;
    int64_t os_pid;
    int64_t rss_bytes;
    const char *python_version;
} frame_info_t;

/// {reply, Id} + the info map.
void frame_info(int64_t id, const frame_info_t *info);

/* ---- frames under a credit window (credit.c): built, then sent by the caller -- */

/// Builds {output, ReqId, Stream, Bytes} in b (caller storage); Stream is
/// stdout, stderr, fd1 or fd2.
void frame_output(buf_t *b, int64_t req, const char *stream, const char *bytes, size_t n);

/// Builds {log, Level, Logger, Message} in b (caller storage): a logging record.
void frame_log(buf_t *b, int level, const char *logger, size_t logger_len, const char *msg,
               size_t msg_len);

/* ---- frames whose body the caller appends --------------------------------- */

/// Where an answer's tag and body start, to turn it into an error in place.
typedef struct {
    size_t tag_at;
    size_t body_start;
} frame_answer_t;

/// Starts {reply, Id} in b (caller storage), then the version byte of the body.
void frame_begin_answer(buf_t *b, int64_t id, frame_answer_t *a);

/// Makes the answer started in b an {error, Id} with an empty body.
void frame_answer_error(buf_t *b, const frame_answer_t *a);

/// Appends the error body `cancelled`.
void frame_body_cancelled(buf_t *b);

/// Appends the error body {too_large, Size, Max}.
void frame_body_too_large(buf_t *b, size_t size, size_t max);

/// Appends the error body {badarg, Message}.
void frame_body_badarg(buf_t *b, const char *msg, size_t len);

/// Starts {stream_data, Id}; the body is the item.
void frame_begin_stream_data(buf_t *b, int64_t id);

/// Starts {callback, CbId, ReqId, Name}; the body is the argument list.
void frame_begin_callback(buf_t *b, int64_t cb_id, int64_t req_id, const char *name, size_t len);

/// Starts {async_callback, CbId, ReqId, Name} (erlang.async_call: nobody waits
/// on the Python thread, so Erlang may run several at once); the body is the
/// argument list.
void frame_begin_async_callback(buf_t *b, int64_t cb_id, int64_t req_id, const char *name,
                                size_t len);

/// Starts {send, Dest} to a pid (its ETF bytes); the body is the message.
void frame_begin_send_pid(buf_t *b, const char *pid, size_t len);

/// Starts {send, Dest} to a registered name (a binary); the body is the message.
void frame_begin_send_name(buf_t *b, const char *name, size_t len);

/// Returns the size of the frame in b once its body is complete (what Erlang
/// sees as byte_size(Frame), and what credit counts).
size_t frame_size(const buf_t *b);

/// Ends the frame in b and sends it (outbox); b is left empty.
void frame_send(buf_t *b);

#endif
