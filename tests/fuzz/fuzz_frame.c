/*
 * libFuzzer target for the frame reader: the input's first two bytes pick the
 * size limit and the chunking, the rest is the byte stream. Every callback is
 * compared with a straightforward parse of the whole stream (frames, oversized
 * frames with their peek and total, the idle state at the end). Single-threaded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "packet.h"
#include "memory.h"
#include "pyport/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    const uint8_t *stream;
    size_t n;
    size_t max;
    size_t pos;    /* where the next expected frame starts in stream */
    size_t events; /* callbacks seen */
} model_t;

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void broken(const char *what, const model_t *m)
{
    fprintf(stderr, "fuzz_frame invariant broken: %s (event %zu at offset %zu, max %zu)\n", what,
            m->events, m->pos, m->max);
    abort();
}

/* The next whole frame of the stream according to the model. */
static size_t expect_next(model_t *m, size_t *len)
{
    if (m->n - m->pos < PYPORT_FRAME_HEADER_BYTES) {
        broken("callback without a whole header", m);
    }
    *len = be32(m->stream + m->pos);
    if (*len > m->n - m->pos - PYPORT_FRAME_HEADER_BYTES) {
        broken("callback before the whole frame arrived", m);
    }
    size_t body = m->pos + PYPORT_FRAME_HEADER_BYTES;
    m->pos = body + *len;
    m->events++;
    return body;
}

static void on_frame(void *ctx, char *frame, size_t len)
{
    model_t *m = ctx;
    size_t want;
    size_t body = expect_next(m, &want);
    if (want > m->max || len != want || (len > 0 && memcmp(frame, m->stream + body, len) != 0)) {
        broken("frame differs from the stream", m);
    }
    mem_free(frame);
}

static void on_oversize(void *ctx, const char *peek, size_t peek_len, size_t total)
{
    model_t *m = ctx;
    size_t want;
    size_t body = expect_next(m, &want);
    size_t want_peek = want < PYPORT_OVERSIZE_PEEK_BYTES ? want : PYPORT_OVERSIZE_PEEK_BYTES;
    if (want <= m->max || total != want || peek_len != want_peek ||
        memcmp(peek, m->stream + body, peek_len) != 0) {
        broken("oversized frame reported wrongly", m);
    }
}

static const packet_handlers_t g_handlers = {on_frame, on_oversize};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    /* Limits from 0 to 1020 bytes, so that oversized frames are common. */
    model_t m = {data + 2, size - 2, (size_t)data[0] * 4, 0, 0};
    uint32_t seed = data[1] * 2654435761u + 1;
    packet_reader_t r;
    packet_reader_init(&r, m.max);
    size_t at = 0;
    while (at < m.n) {
        seed = seed * 1103515245u + 12345u;
        size_t chunk = 1 + (seed >> 16) % 64;
        if (chunk > m.n - at) {
            chunk = m.n - at;
        }
        /* Each chunk in its own exact-size allocation, as the sanitizer sees it. */
        char *copy = mem_dup(m.stream + at, chunk);
        packet_feed(&r, copy, chunk, &g_handlers, &m);
        mem_free(copy);
        at += chunk;
    }
    /* Everything whole has been delivered; idle exactly when nothing is left over. */
    size_t rest = m.pos;
    if (m.n - rest >= PYPORT_FRAME_HEADER_BYTES &&
        be32(m.stream + rest) <= m.n - rest - PYPORT_FRAME_HEADER_BYTES) {
        broken("a whole frame was not delivered", &m);
    }
    if (packet_reader_idle(&r) != (rest == m.n)) {
        broken("packet_reader_idle disagrees with the stream", &m);
    }
    packet_reader_destroy(&r);
    return 0;
}
