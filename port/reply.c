/*
 * Request replies (see reply.h). Replies are queued without writing while more
 * jobs wait in the inbox (up to REPLY_MAX_BATCH), so a burst of answers leaves in
 * one write; the worker flushes when the inbox is empty.
 */
#include "reply.h"

#include "convert.h"
#include "frames.h"
#include "inbox.h"
#include "outbox.h"
#include "output.h"
#include "protocol.h"
#include "pyport/wire.h"

/* Replies left unsent while more jobs wait, so they leave in one write. */
#define REPLY_MAX_BATCH 64

static size_t g_max_frame = PYPORT_DEFAULT_MAX_FRAME;
static int g_batched;

void reply_set_max_frame(size_t max)
{
    g_max_frame = max;
}

void reply_begin(reply_t *r, int64_t id)
{
    r->id = id;
    frame_begin_answer(&r->b, id, &r->at);
}

static void set_error_tag(reply_t *r)
{
    frame_answer_error(&r->b, &r->at);
}

void reply_ok(reply_t *r, PyObject *result)
{
    if (conv_from_py(&r->b, result) < 0) {
        reply_error(r, REPLY_PYERR);
    }
}

void reply_error(reply_t *r, reply_cause_t cause)
{
    set_error_tag(r);
    if (cause == REPLY_BADARG) {
        conv_badarg(&r->b);
    } else {
        conv_exception(&r->b);
    }
}

void reply_cancelled(reply_t *r)
{
    set_error_tag(r);
    frame_body_cancelled(&r->b);
}

void reply_send_frame(char *frame, size_t len)
{
    if (g_batched < REPLY_MAX_BATCH && inbox_len() > 0) {
        outbox_queue(frame, len);
        g_batched++;
    } else {
        outbox_push(frame, len);
        g_batched = 0;
    }
}

void reply_flush(void)
{
    outbox_flush();
    g_batched = 0;
}

void reply_send(reply_t *r)
{
    /* Output the request printed goes out before its answer. */
    output_flush();
    size_t size = r->b.len - PYPORT_FRAME_HEADER_BYTES;
    if (size > g_max_frame) {
        set_error_tag(r);
        frame_body_too_large(&r->b, size, g_max_frame);
    }
    proto_end(&r->b, PYPORT_HARD_MAX_FRAME);
    size_t len;
    char *frame = buf_steal(&r->b, &len);
    reply_send_frame(frame, len);
}
