/*
 * {packet, 4} frame reader (see packet.h). One thread at a time. Allocates exactly
 * the announced length once the header is complete, so a frame costs one
 * allocation and one copy of its bytes whatever the chunking.
 */
#include "packet.h"

#include <string.h>

#include "memory.h"

void packet_reader_init(packet_reader_t *r, size_t max)
{
    memset(r, 0, sizeof *r);
    r->max = max;
}

void packet_reader_destroy(packet_reader_t *r)
{
    mem_free(r->body);
    r->body = NULL;
}

int packet_reader_idle(const packet_reader_t *r)
{
    return r->hdr_got == 0 && r->body == NULL && !r->skipping;
}

void packet_put_len(char *p, uint32_t n)
{
    p[0] = (char)((n >> 24) & 0xff);
    p[1] = (char)((n >> 16) & 0xff);
    p[2] = (char)((n >> 8) & 0xff);
    p[3] = (char)(n & 0xff);
}

static void start_body(packet_reader_t *r, const packet_handlers_t *h, void *ctx)
{
    size_t len = ((size_t)r->hdr[0] << 24) | ((size_t)r->hdr[1] << 16) | ((size_t)r->hdr[2] << 8) |
                 (size_t)r->hdr[3];
    r->hdr_got = 0;
    r->body_len = len;
    r->body_got = 0;
    if (len > r->max) {
        r->skipping = 1;
        r->peek_len = 0;
        return;
    }
    r->body = mem_alloc(len);
    if (len == 0) {
        char *body = r->body;
        r->body = NULL;
        h->frame(ctx, body, 0);
    }
}

void packet_feed(packet_reader_t *r, const char *data, size_t n, const packet_handlers_t *h,
                 void *ctx)
{
    while (n > 0) {
        if (!r->skipping && r->body == NULL) {
            size_t take = PYPORT_FRAME_HEADER_BYTES - r->hdr_got;
            if (take > n) {
                take = n;
            }
            memcpy(r->hdr + r->hdr_got, data, take);
            r->hdr_got += take;
            data += take;
            n -= take;
            if (r->hdr_got == PYPORT_FRAME_HEADER_BYTES) {
                start_body(r, h, ctx);
            }
            continue;
        }
        size_t take = r->body_len - r->body_got;
        if (take > n) {
            take = n;
        }
        if (r->skipping) {
            size_t room = sizeof r->peek - r->peek_len;
            size_t keep = take < room ? take : room;
            memcpy(r->peek + r->peek_len, data, keep);
            r->peek_len += keep;
        } else {
            memcpy(r->body + r->body_got, data, take);
        }
        r->body_got += take;
        data += take;
        n -= take;
        if (r->body_got == r->body_len) {
            if (r->skipping) {
                r->skipping = 0;
                h->oversize(ctx, r->peek, r->peek_len, r->body_len);
            } else {
                char *body = r->body;
                r->body = NULL;
                h->frame(ctx, body, r->body_len);
            }
        }
    }
}

char *packet_room(packet_reader_t *r, size_t *n)
{
    if (r->body == NULL || r->skipping) {
        *n = 0;
        return NULL;
    }
    *n = r->body_len - r->body_got;
    return r->body + r->body_got;
}

void packet_filled(packet_reader_t *r, size_t n, const packet_handlers_t *h, void *ctx)
{
    r->body_got += n;
    if (r->body_got == r->body_len) {
        char *body = r->body;
        r->body = NULL;
        h->frame(ctx, body, r->body_len);
    }
}
