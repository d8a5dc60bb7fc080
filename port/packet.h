/*
 * {packet, 4} framing of the byte stream from Erlang: a reader that turns
 * arbitrary chunks into whole frames, never trusting a length beyond the limit.
 * An oversized frame is not buffered: its first bytes are kept so the request id
 * can still be answered, the rest is skipped, and framing stays intact.
 * Not thread-safe: one reader at a time (reader.c hands the reader of the pipe
 * between the two threads under its mutex).
 */
#ifndef PYPORT_PACKET_H
#define PYPORT_PACKET_H

#include <stddef.h>
#include <stdint.h>

#include "pyport/wire.h"

typedef struct {
    /// A whole frame; the callee takes ownership of frame (mem_free).
    void (*frame)(void *ctx, char *frame, size_t len);
    /// A frame over the limit: its first peek_len bytes and its full length.
    void (*oversize)(void *ctx, const char *peek, size_t peek_len, size_t total);
} packet_handlers_t;

typedef struct {
    size_t max;
    unsigned char hdr[PYPORT_FRAME_HEADER_BYTES];
    size_t hdr_got;
    char *body;      /* owned while a normal frame is being filled */
    size_t body_len; /* length announced by the header */
    size_t body_got;
    int skipping; /* an oversized frame is being skipped */
    char peek[PYPORT_OVERSIZE_PEEK_BYTES];
    size_t peek_len;
} packet_reader_t;

/// Initialises caller storage; frames longer than max bytes are skipped.
void packet_reader_init(packet_reader_t *r, size_t max);

/// Frees a partly read frame.
void packet_reader_destroy(packet_reader_t *r);

/// Feeds n bytes; calls the handlers for each frame completed by them.
void packet_feed(packet_reader_t *r, const char *data, size_t n, const packet_handlers_t *h,
                 void *ctx);

/// Returns where the rest of the frame being filled goes and sets *n to its
/// length, or returns NULL when no frame body is being filled (so a large body can
/// be read straight into place; report what was read with packet_filled).
char *packet_room(packet_reader_t *r, size_t *n);

/// n bytes were read into the room packet_room returned; completes the frame
/// (calling the frame handler) when it is whole.
void packet_filled(packet_reader_t *r, size_t n, const packet_handlers_t *h, void *ctx);

/// Returns 1 when no frame is partly read (a clean place for the stream to end).
int packet_reader_idle(const packet_reader_t *r);

/// Writes n as the 4-byte big-endian frame header at p.
void packet_put_len(char *p, uint32_t n);

#endif
