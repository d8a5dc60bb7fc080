/*
 * Frames to Erlang (see frames.h and docs/protocol.md). Headers are small terms
 * encoded with protocol.c's encoders; whole frames go to the outbox at once.
 * Stateless; any thread.
 */
#include "frames.h"

#include <string.h>

#include <ei.h>

#include "log.h"
#include "outbox.h"
#include "packet.h"
#include "protocol.h"
#include "pyport/wire.h"

/* How long the last frame may wait for room in the pipe before the exit. */
#define FRAMES_EXITING_WAIT_MS 1000

size_t frame_size(const buf_t *b)
{
    return b->len - PYPORT_FRAME_HEADER_BYTES;
}

void frame_send(buf_t *b)
{
    proto_end(b, PYPORT_HARD_MAX_FRAME);
    size_t len;
    char *frame = buf_steal(b, &len);
    outbox_push(frame, len);
}

/* Starts a header tuple {Tag, ...} of `arity` elements in the empty b. */
static void begin(buf_t *b, size_t room, const char *tag, int arity)
{
    buf_init(b, room + 64);
    proto_begin(b);
    proto_tuple(b, arity);
    proto_atom(b, tag);
}

/* ---- whole frames -------------------------------------------------------- */

void frame_ready(const char *python_version, long os_pid)
{
    buf_t b;
    begin(&b, 0, "ready", 4);
    proto_long(&b, PYPORT_PROTOCOL_VERSION);
    proto_binary(&b, python_version, strlen(python_version));
    proto_long(&b, os_pid);
    frame_send(&b);
}

void frame_env(const char *pid, size_t len)
{
    buf_t b;
    begin(&b, len, "env", 2);
    proto_raw(&b, pid, len);
    frame_send(&b);
}

void frame_output(buf_t *b, int64_t req, const char *stream, const char *bytes, size_t n)
{
    begin(b, n, "output", 4);
    proto_long(b, req);
    proto_atom(b, stream);
    proto_binary(b, bytes, n);
}

void frame_log(buf_t *b, int level, const char *logger, size_t logger_len, const char *msg,
               size_t msg_len)
{
    begin(b, logger_len + msg_len, "log", 4);
    proto_long(b, level);
    proto_binary(b, logger, logger_len);
    proto_binary(b, msg, msg_len);
}

void frame_exiting(int status)
{
    /* Encoded on the stack: the process may be out of memory. */
    char frame[64];
    int i = 0;
    char *t = frame + PYPORT_FRAME_HEADER_BYTES;
    ei_encode_version(t, &i);
    ei_encode_tuple_header(t, &i, 2);
    ei_encode_atom(t, &i, "exiting");
    ei_encode_long(t, &i, status);
    packet_put_len(frame, (uint32_t)i);
    outbox_final(frame, PYPORT_FRAME_HEADER_BYTES + (size_t)i, FRAMES_EXITING_WAIT_MS);
}

/* {error, Id} and the version byte of its body. */
static void begin_error(buf_t *b, int64_t id)
{
    begin(b, 0, "error", 2);
    proto_long(b, id);
    proto_body(b);
}

void frame_cancelled(int64_t id)
{
    buf_t b;
    begin_error(&b, id);
    frame_body_cancelled(&b);
    frame_send(&b);
}

void frame_too_large(int64_t id, size_t size, size_t max)
{
    buf_t b;
    begin_error(&b, id);
    frame_body_too_large(&b, size, max);
    frame_send(&b);
}

void frame_reject(int64_t id, const char *why)
{
    if (id <= 0) {
        log_warn("dropped a malformed frame: %s", why);
        return;
    }
    buf_t b;
    begin_error(&b, id);
    frame_body_badarg(&b, why, strlen(why));
    frame_send(&b);
}

void frame_info(int64_t id, const frame_info_t *info)
{
    buf_t b;
    begin(&b, 256, "reply", 2);
    proto_long(&b, id);
    proto_body(&b);
    proto_map(&b, 7);
    proto_atom(&b, "current");
    if (info->current == 0) {
        proto_atom(&b, "idle");
    } else {
        proto_map(&b, 3);
        proto_atom(&b, "id");
        proto_long(&b, info->current);
        proto_atom(&b, "op");
        proto_atom(&b, info->op);
        proto_atom(&b, "running_ms");
        proto_long(&b, info->running_ms);
    }
    proto_atom(&b, "envs");
    proto_long(&b, info->envs);
    proto_atom(&b, "queue");
    proto_long(&b, info->queue);
    proto_atom(&b, "calls");
    proto_long(&b, info->calls);
    proto_atom(&b, "os_pid");
    proto_long(&b, info->os_pid);
    proto_atom(&b, "rss_bytes");
    proto_long(&b, info->rss_bytes);
    proto_atom(&b, "python_version");
    proto_binary(&b, info->python_version, strlen(info->python_version));
    frame_send(&b);
}

/* ---- frames with a body ---------------------------------------------------- */

void frame_begin_answer(buf_t *b, int64_t id, frame_answer_t *a)
{
    buf_init(b, 256);
    proto_begin(b);
    proto_tuple(b, 2);
    a->tag_at = b->len + 2; /* after the SMALL_ATOM_UTF8 tag and its length byte */
    proto_atom(b, "reply");
    proto_long(b, id);
    proto_body(b);
    a->body_start = b->len;
}

void frame_answer_error(buf_t *b, const frame_answer_t *a)
{
    /* "reply" and "error" have the same length: the tag is patched in place. */
    memcpy(b->data + a->tag_at, "error", 5);
    b->len = a->body_start;
}

void frame_body_cancelled(buf_t *b)
{
    proto_atom(b, "cancelled");
}

void frame_body_too_large(buf_t *b, size_t size, size_t max)
{
    proto_tuple(b, 3);
    proto_atom(b, "too_large");
    proto_long(b, (int64_t)size);
    proto_long(b, (int64_t)max);
}

void frame_body_badarg(buf_t *b, const char *msg, size_t len)
{
    proto_tuple(b, 2);
    proto_atom(b, "badarg");
    proto_string(b, msg, len);
}

void frame_begin_stream_data(buf_t *b, int64_t id)
{
    begin(b, 64, "stream_data", 2);
    proto_long(b, id);
    proto_body(b);
}

void frame_begin_callback(buf_t *b, int64_t cb_id, int64_t req_id, const char *name, size_t len)
{
    begin(b, len + 192, "callback", 4);
    proto_long(b, cb_id);
    proto_long(b, req_id);
    proto_binary(b, name, len);
    proto_body(b);
}

void frame_begin_async_callback(buf_t *b, int64_t cb_id, int64_t req_id, const char *name,
                                size_t len)
{
    begin(b, len + 192, "async_callback", 4);
    proto_long(b, cb_id);
    proto_long(b, req_id);
    proto_binary(b, name, len);
    proto_body(b);
}

void frame_begin_send_pid(buf_t *b, const char *pid, size_t len)
{
    begin(b, len + 64, "send", 2);
    proto_raw(b, pid, len);
    proto_body(b);
}

void frame_begin_send_name(buf_t *b, const char *name, size_t len)
{
    begin(b, len + 64, "send", 2);
    proto_binary(b, name, len);
    proto_body(b);
}
