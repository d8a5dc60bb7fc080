/*
 * Unit tests of port/packet.c, the {packet, 4} reader: frames split at every byte
 * boundary, many frames per chunk, empty frames, oversized frames (peek and total
 * reported, framing kept), packet_reader_idle, packet_put_len. Single-threaded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "packet.h"
#include "memory.h"
#include "pyport/wire.h"

#define MAX_EVENTS 4096

/* One callback seen by the collector: a frame, or an oversized frame. */
typedef struct {
    int oversize;
    char *data; /* owned copy: the frame, or the peeked bytes */
    size_t len; /* frame length, or peek length */
    size_t total;
} event_t;

typedef struct {
    event_t ev[MAX_EVENTS];
    size_t n;
} collector_t;

static void on_frame(void *ctx, char *frame, size_t len)
{
    collector_t *c = ctx;
    if (c->n == MAX_EVENTS) {
        abort();
    }
    /* The reader hands over ownership: keep the very buffer, as the port does. */
    c->ev[c->n++] = (event_t){0, frame, len, len};
}

static void on_oversize(void *ctx, const char *peek, size_t peek_len, size_t total)
{
    collector_t *c = ctx;
    if (c->n == MAX_EVENTS) {
        abort();
    }
    c->ev[c->n++] = (event_t){1, mem_dup(peek, peek_len), peek_len, total};
}

static const packet_handlers_t g_handlers = {on_frame, on_oversize};

static void collector_clear(collector_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        mem_free(c->ev[i].data);
    }
    c->n = 0;
}

/* Appends a frame (header + payload) to a stream under construction. */
static void put_frame(char *stream, size_t *at, const char *payload, size_t len)
{
    packet_put_len(stream + *at, (uint32_t)len);
    *at += PYPORT_FRAME_HEADER_BYTES;
    memcpy(stream + *at, payload, len);
    *at += len;
}

static void fill(char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (char)((i * 31u + seed) & 0xff);
    }
}

/* The frames of the three-frame stream used by the splitting tests. */
static char g_p1[] = "hello";
static char g_p3[300];

static size_t three_frame_stream(char *stream)
{
    size_t at = 0;
    fill(g_p3, sizeof g_p3, 7);
    put_frame(stream, &at, g_p1, 5);
    put_frame(stream, &at, "", 0);
    put_frame(stream, &at, g_p3, sizeof g_p3);
    return at;
}

static void check_three_frames(const collector_t *c)
{
    CHECK_UINT_EQ(c->n, 3);
    if (c->n != 3) {
        return;
    }
    CHECK_INT_EQ(c->ev[0].oversize, 0);
    CHECK_MEM_EQ(c->ev[0].data, c->ev[0].len, g_p1, 5);
    CHECK_INT_EQ(c->ev[1].oversize, 0);
    CHECK_UINT_EQ(c->ev[1].len, 0);
    CHECK_INT_EQ(c->ev[2].oversize, 0);
    CHECK_MEM_EQ(c->ev[2].data, c->ev[2].len, g_p3, sizeof g_p3);
}

static void test_frame_whole_chunk_gives_one_frame(void)
{
    static collector_t c;
    packet_reader_t r;
    packet_reader_init(&r, 1024);
    char stream[64];
    size_t at = 0;
    put_frame(stream, &at, "abc", 3);
    packet_feed(&r, stream, at, &g_handlers, &c);
    CHECK_UINT_EQ(c.n, 1);
    CHECK_MEM_EQ(c.ev[0].data, c.ev[0].len, "abc", 3);
    CHECK(packet_reader_idle(&r));
    collector_clear(&c);
    packet_reader_destroy(&r);
}

static void test_frame_split_at_every_single_boundary(void)
{
    static collector_t c;
    static char stream[512];
    size_t n = three_frame_stream(stream);
    for (size_t cut = 0; cut <= n; cut++) {
        packet_reader_t r;
        packet_reader_init(&r, 1024);
        packet_feed(&r, stream, cut, &g_handlers, &c);
        packet_feed(&r, stream + cut, n - cut, &g_handlers, &c);
        check_three_frames(&c);
        CHECK(packet_reader_idle(&r));
        collector_clear(&c);
        packet_reader_destroy(&r);
    }
}

static void test_frame_split_at_every_pair_of_boundaries(void)
{
    static collector_t c;
    static char stream[512];
    size_t n = three_frame_stream(stream);
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            packet_reader_t r;
            packet_reader_init(&r, 1024);
            packet_feed(&r, stream, a, &g_handlers, &c);
            packet_feed(&r, stream + a, b - a, &g_handlers, &c);
            packet_feed(&r, stream + b, n - b, &g_handlers, &c);
            check_three_frames(&c);
            collector_clear(&c);
            packet_reader_destroy(&r);
        }
    }
}

static void test_frame_byte_by_byte(void)
{
    static collector_t c;
    static char stream[512];
    size_t n = three_frame_stream(stream);
    packet_reader_t r;
    packet_reader_init(&r, 1024);
    for (size_t i = 0; i < n; i++) {
        packet_feed(&r, stream + i, 1, &g_handlers, &c);
    }
    check_three_frames(&c);
    CHECK(packet_reader_idle(&r));
    collector_clear(&c);
    packet_reader_destroy(&r);
}

static void test_frame_many_frames_in_one_chunk(void)
{
    static collector_t c;
    enum { N = 1000 };
    size_t cap = N * (PYPORT_FRAME_HEADER_BYTES + 40);
    char *stream = mem_alloc(cap);
    size_t at = 0;
    for (int i = 0; i < N; i++) {
        char p[40];
        size_t len = (size_t)(i % 40);
        fill(p, len, (unsigned)i);
        put_frame(stream, &at, p, len);
    }
    packet_reader_t r;
    packet_reader_init(&r, 1024);
    packet_feed(&r, stream, at, &g_handlers, &c);
    CHECK_UINT_EQ(c.n, N);
    for (int i = 0; i < N && (size_t)i < c.n; i++) {
        char p[40];
        size_t len = (size_t)(i % 40);
        fill(p, len, (unsigned)i);
        CHECK_MEM_EQ(c.ev[i].data, c.ev[i].len, p, len);
    }
    CHECK(packet_reader_idle(&r));
    collector_clear(&c);
    packet_reader_destroy(&r);
    mem_free(stream);
}

static void test_frame_zero_length_frame_is_delivered(void)
{
    static collector_t c;
    packet_reader_t r;
    packet_reader_init(&r, 1024);
    char hdr[PYPORT_FRAME_HEADER_BYTES];
    packet_put_len(hdr, 0);
    packet_feed(&r, hdr, sizeof hdr, &g_handlers, &c);
    CHECK_UINT_EQ(c.n, 1);
    CHECK_INT_EQ(c.ev[0].oversize, 0);
    CHECK_UINT_EQ(c.ev[0].len, 0);
    CHECK(packet_reader_idle(&r));
    /* Two empty frames back to back, then a normal one. */
    char stream[32];
    size_t at = 0;
    put_frame(stream, &at, "", 0);
    put_frame(stream, &at, "", 0);
    put_frame(stream, &at, "xy", 2);
    packet_feed(&r, stream, at, &g_handlers, &c);
    CHECK_UINT_EQ(c.n, 4);
    CHECK_UINT_EQ(c.ev[1].len, 0);
    CHECK_UINT_EQ(c.ev[2].len, 0);
    CHECK_MEM_EQ(c.ev[3].data, c.ev[3].len, "xy", 2);
    collector_clear(&c);
    packet_reader_destroy(&r);
}

static void test_frame_of_exactly_max_is_accepted(void)
{
    static collector_t c;
    char p[100];
    fill(p, sizeof p, 3);
    char stream[128];
    size_t at = 0;
    put_frame(stream, &at, p, sizeof p);
    packet_reader_t r;
    packet_reader_init(&r, sizeof p);
    packet_feed(&r, stream, at, &g_handlers, &c);
    CHECK_UINT_EQ(c.n, 1);
    CHECK_INT_EQ(c.ev[0].oversize, 0);
    CHECK_MEM_EQ(c.ev[0].data, c.ev[0].len, p, sizeof p);
    collector_clear(&c);
    packet_reader_destroy(&r);
}

/* A stream of: a frame of `big` bytes (over max 100), then "next". */
static size_t oversize_stream(char *stream, char *big, size_t big_len)
{
    size_t at = 0;
    fill(big, big_len, 11);
    put_frame(stream, &at, big, big_len);
    put_frame(stream, &at, "next", 4);
    return at;
}

static void check_oversize_then_next(const collector_t *c, const char *big, size_t big_len)
{
    size_t peek = big_len < PYPORT_OVERSIZE_PEEK_BYTES ? big_len : PYPORT_OVERSIZE_PEEK_BYTES;
    CHECK_UINT_EQ(c->n, 2);
    if (c->n != 2) {
        return;
    }
    CHECK_INT_EQ(c->ev[0].oversize, 1);
    CHECK_UINT_EQ(c->ev[0].total, big_len);
    CHECK_MEM_EQ(c->ev[0].data, c->ev[0].len, big, peek);
    CHECK_INT_EQ(c->ev[1].oversize, 0);
    CHECK_MEM_EQ(c->ev[1].data, c->ev[1].len, "next", 4);
}

static void test_frame_oversize_reports_first_bytes_and_total(void)
{
    static collector_t c;
    static char big[5000];
    static char stream[5100];
    size_t n = oversize_stream(stream, big, sizeof big);
    packet_reader_t r;
    packet_reader_init(&r, 100);
    packet_feed(&r, stream, n, &g_handlers, &c);
    check_oversize_then_next(&c, big, sizeof big);
    CHECK(packet_reader_idle(&r));
    collector_clear(&c);
    packet_reader_destroy(&r);
}

static void test_frame_oversize_shorter_than_peek_is_reported_whole(void)
{
    static collector_t c;
    static char big[300];
    static char stream[400];
    size_t n = oversize_stream(stream, big, sizeof big);
    packet_reader_t r;
    packet_reader_init(&r, 100);
    packet_feed(&r, stream, n, &g_handlers, &c);
    check_oversize_then_next(&c, big, sizeof big);
    collector_clear(&c);
    packet_reader_destroy(&r);
}

static void test_frame_oversize_split_at_every_boundary(void)
{
    static collector_t c;
    static char big[1500];
    static char stream[1600];
    size_t n = oversize_stream(stream, big, sizeof big);
    for (size_t cut = 0; cut <= n; cut++) {
        packet_reader_t r;
        packet_reader_init(&r, 100);
        packet_feed(&r, stream, cut, &g_handlers, &c);
        packet_feed(&r, stream + cut, n - cut, &g_handlers, &c);
        check_oversize_then_next(&c, big, sizeof big);
        collector_clear(&c);
        packet_reader_destroy(&r);
    }
    packet_reader_t r;
    packet_reader_init(&r, 100);
    for (size_t i = 0; i < n; i++) {
        packet_feed(&r, stream + i, 1, &g_handlers, &c);
    }
    check_oversize_then_next(&c, big, sizeof big);
    collector_clear(&c);
    packet_reader_destroy(&r);
}

static void test_frame_huge_length_is_skipped_not_allocated(void)
{
    static collector_t c;
    packet_reader_t r;
    packet_reader_init(&r, PYPORT_DEFAULT_MAX_FRAME);
    char hdr[PYPORT_FRAME_HEADER_BYTES];
    packet_put_len(hdr, 0xffffffffu);
    packet_feed(&r, hdr, sizeof hdr, &g_handlers, &c);
    char chunk[4096];
    fill(chunk, sizeof chunk, 5);
    packet_feed(&r, chunk, sizeof chunk, &g_handlers, &c);
    CHECK_UINT_EQ(c.n, 0);
    CHECK(!packet_reader_idle(&r));
    CHECK(r.body == NULL);
    packet_reader_destroy(&r);
}

static void test_frame_idle_only_between_frames(void)
{
    static collector_t c;
    char stream[64];
    size_t at = 0;
    put_frame(stream, &at, "abcdef", 6);
    packet_reader_t r;
    packet_reader_init(&r, 1024);
    CHECK(packet_reader_idle(&r));
    for (size_t i = 0; i < at; i++) {
        packet_feed(&r, stream + i, 1, &g_handlers, &c);
        if (i + 1 < at) {
            /* Mid-header (i < 3), header complete, mid-body. */
            CHECK(!packet_reader_idle(&r));
        }
    }
    CHECK(packet_reader_idle(&r));
    CHECK_UINT_EQ(c.n, 1);
    collector_clear(&c);
    packet_reader_destroy(&r);
}

static void test_frame_idle_false_while_skipping_oversize(void)
{
    static collector_t c;
    static char big[800];
    static char stream[900];
    size_t n = oversize_stream(stream, big, sizeof big);
    packet_reader_t r;
    packet_reader_init(&r, 100);
    /* Header, then part of the body (past the peek), then the rest. */
    packet_feed(&r, stream, 700, &g_handlers, &c);
    CHECK(!packet_reader_idle(&r));
    CHECK_UINT_EQ(c.n, 0);
    packet_feed(&r, stream + 700, PYPORT_FRAME_HEADER_BYTES + sizeof big - 700, &g_handlers, &c);
    CHECK(packet_reader_idle(&r));
    CHECK_UINT_EQ(c.n, 1);
    packet_feed(&r, stream + PYPORT_FRAME_HEADER_BYTES + sizeof big,
                n - PYPORT_FRAME_HEADER_BYTES - sizeof big, &g_handlers, &c);
    check_oversize_then_next(&c, big, sizeof big);
    collector_clear(&c);
    packet_reader_destroy(&r);
}

static void test_packet_reader_destroy_frees_partial_frame(void)
{
    static collector_t c;
    char stream[64];
    size_t at = 0;
    put_frame(stream, &at, "abcdef", 6);
    packet_reader_t r;
    packet_reader_init(&r, 1024);
    packet_feed(&r, stream, at - 2, &g_handlers, &c);
    CHECK(r.body != NULL);
    packet_reader_destroy(&r);
    CHECK(r.body == NULL);
    CHECK_UINT_EQ(c.n, 0);
}

static void test_packet_put_len_is_big_endian(void)
{
    static const struct {
        uint32_t n;
        unsigned char b[4];
    } cases[] = {
        {0, {0, 0, 0, 0}},
        {1, {0, 0, 0, 1}},
        {255, {0, 0, 0, 255}},
        {256, {0, 0, 1, 0}},
        {0x01020304u, {1, 2, 3, 4}},
        {0x80000000u, {0x80, 0, 0, 0}},
        {0xffffffffu, {0xff, 0xff, 0xff, 0xff}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[4] = {0x55, 0x55, 0x55, 0x55};
        packet_put_len(out, cases[i].n);
        CHECK_MEM_EQ(out, 4, cases[i].b, 4);
    }
}

static void test_packet_put_len_round_trips_through_reader(void)
{
    static collector_t c;
    char stream[8];
    packet_put_len(stream, 3);
    memcpy(stream + 4, "xyz", 3);
    packet_reader_t r;
    packet_reader_init(&r, 16);
    packet_feed(&r, stream, 7, &g_handlers, &c);
    CHECK_UINT_EQ(c.n, 1);
    CHECK_MEM_EQ(c.ev[0].data, c.ev[0].len, "xyz", 3);
    collector_clear(&c);
    packet_reader_destroy(&r);
}

/* A body read straight into place (packet_room / packet_filled, as the port
   reads the rest of a large frame) gives the same frame as fed bytes, then the
   reader goes on with the next frame; there is no room outside a body. */
static void test_room_fills_a_body_in_place(void)
{
    static collector_t c;
    static char body[5000];
    packet_reader_t r;
    packet_reader_init(&r, 1 << 20);
    size_t n = 99;
    CHECK(packet_room(&r, &n) == NULL);
    CHECK_UINT_EQ(n, 0);
    fill(body, sizeof body, 3);
    char head[PYPORT_FRAME_HEADER_BYTES + 10];
    packet_put_len(head, (uint32_t)sizeof body);
    memcpy(head + PYPORT_FRAME_HEADER_BYTES, body, 10);
    packet_feed(&r, head, sizeof head, &g_handlers, &c);
    CHECK_UINT_EQ(c.n, 0);
    size_t at = 10;
    while (at < sizeof body) {
        char *dst = packet_room(&r, &n);
        CHECK(dst != NULL);
        CHECK_UINT_EQ(n, sizeof body - at);
        if (dst == NULL) {
            break;
        }
        size_t take = n < 1000 ? n : 1000;
        memcpy(dst, body + at, take);
        packet_filled(&r, take, &g_handlers, &c);
        at += take;
    }
    CHECK_UINT_EQ(c.n, 1);
    CHECK(packet_room(&r, &n) == NULL);
    CHECK(packet_reader_idle(&r));
    if (c.n == 1) {
        CHECK_MEM_EQ(c.ev[0].data, c.ev[0].len, body, sizeof body);
    }
    char stream[1024];
    size_t len = three_frame_stream(stream);
    packet_feed(&r, stream, len, &g_handlers, &c);
    CHECK_UINT_EQ(c.n, 4);
    collector_clear(&c);
    packet_reader_destroy(&r);
}

int main(void)
{
    RUN_TEST(test_frame_whole_chunk_gives_one_frame);
    RUN_TEST(test_frame_split_at_every_single_boundary);
    RUN_TEST(test_frame_split_at_every_pair_of_boundaries);
    RUN_TEST(test_frame_byte_by_byte);
    RUN_TEST(test_frame_many_frames_in_one_chunk);
    RUN_TEST(test_frame_zero_length_frame_is_delivered);
    RUN_TEST(test_frame_of_exactly_max_is_accepted);
    RUN_TEST(test_frame_oversize_reports_first_bytes_and_total);
    RUN_TEST(test_frame_oversize_shorter_than_peek_is_reported_whole);
    RUN_TEST(test_frame_oversize_split_at_every_boundary);
    RUN_TEST(test_frame_huge_length_is_skipped_not_allocated);
    RUN_TEST(test_frame_idle_only_between_frames);
    RUN_TEST(test_frame_idle_false_while_skipping_oversize);
    RUN_TEST(test_packet_reader_destroy_frees_partial_frame);
    RUN_TEST(test_packet_put_len_is_big_endian);
    RUN_TEST(test_packet_put_len_round_trips_through_reader);
    RUN_TEST(test_room_fills_a_body_in_place);
    return check_exit_status();
}
