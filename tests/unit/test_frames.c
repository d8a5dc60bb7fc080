/*
 * Unit tests of port/frames.c, the constructors of the frames the port sends:
 * each whole frame is sent through the real outbox into a pipe, read back, and
 * decoded with ei (header term, then the body term when there is one). Covers
 * the layout of reject/badarg, cancelled, too_large, output, log, env, ready,
 * and an answer turned into an error in place. Single-threaded.
 */
#define _GNU_SOURCE
#include <ei.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "check.h"
#include "frames.h"
#include "memory.h"
#include "outbox.h"
#include "protocol.h"
#include "pyport/wire.h"

static int g_pipe[2];

static void no_wake(void)
{
}

/* Everything written to the pipe so far (the outbox writes at once: the pipe
   never fills in these tests). */
static size_t drain(char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(g_pipe[0], out + n, cap - n);
        if (r <= 0) {
            break;
        }
        n += (size_t)r;
    }
    return n;
}

typedef struct {
    char data[4096];
    size_t len; /* bytes after the 4-byte length */
    int index;  /* ei cursor into data */
} frame_in_t;

/* Reads exactly one frame from the pipe; checks its length header. */
static int one_frame(frame_in_t *f)
{
    char raw[4096 + 4];
    size_t n = drain(raw, sizeof raw);
    f->index = 0;
    f->len = 0;
    if (n < PYPORT_FRAME_HEADER_BYTES) {
        check_fail(__FILE__, __LINE__, "no frame (got %zu bytes)", n);
        return -1;
    }
    const unsigned char *u = (const unsigned char *)raw;
    size_t announced = ((size_t)u[0] << 24) | ((size_t)u[1] << 16) | ((size_t)u[2] << 8) | u[3];
    CHECK_UINT_EQ(announced, n - PYPORT_FRAME_HEADER_BYTES);
    f->len = n - PYPORT_FRAME_HEADER_BYTES;
    memcpy(f->data, raw + PYPORT_FRAME_HEADER_BYTES, f->len);
    return 0;
}

/* Decodes the version byte, a tuple header of `arity` and the atom `tag`. */
static void expect_header(frame_in_t *f, int arity, const char *tag)
{
    int version = 0;
    int got = 0;
    char atom[MAXATOMLEN_UTF8];
    CHECK_INT_EQ(ei_decode_version(f->data, &f->index, &version), 0);
    CHECK_INT_EQ(version, 131);
    CHECK_INT_EQ(ei_decode_tuple_header(f->data, &f->index, &got), 0);
    CHECK_INT_EQ(got, arity);
    CHECK_INT_EQ(ei_decode_atom(f->data, &f->index, atom), 0);
    CHECK_STR_EQ(atom, tag);
}

static void expect_long(frame_in_t *f, long long want)
{
    long long v = -1;
    CHECK_INT_EQ(ei_decode_longlong(f->data, &f->index, &v), 0);
    CHECK_INT_EQ(v, want);
}

static void expect_atom(frame_in_t *f, const char *want)
{
    char atom[MAXATOMLEN_UTF8];
    CHECK_INT_EQ(ei_decode_atom(f->data, &f->index, atom), 0);
    CHECK_STR_EQ(atom, want);
}

static void expect_binary(frame_in_t *f, const char *want, size_t n)
{
    char got[1024];
    long len = -1;
    CHECK_INT_EQ(ei_decode_binary(f->data, &f->index, got, &len), 0);
    CHECK_MEM_EQ(got, (size_t)len, want, n);
}

static void expect_body(frame_in_t *f)
{
    int version = 0;
    CHECK_INT_EQ(ei_decode_version(f->data, &f->index, &version), 0);
    CHECK_INT_EQ(version, 131);
}

static void expect_end(frame_in_t *f)
{
    CHECK_UINT_EQ((size_t)f->index, f->len);
}

/* {error, Id} + {badarg, Text}: Text is a string of code points. */
static void expect_badarg(frame_in_t *f, long long id, const char *text)
{
    expect_header(f, 2, "error");
    expect_long(f, id);
    expect_body(f);
    int arity = 0;
    CHECK_INT_EQ(ei_decode_tuple_header(f->data, &f->index, &arity), 0);
    CHECK_INT_EQ(arity, 2);
    expect_atom(f, "badarg");
    char got[256];
    CHECK_INT_EQ(ei_decode_string(f->data, &f->index, got), 0);
    CHECK_STR_EQ(got, text);
    expect_end(f);
}

static void test_frame_reject_is_badarg_with_the_id(void)
{
    frame_in_t f;
    frame_reject(4242, "bad request id");
    if (one_frame(&f) == 0) {
        expect_badarg(&f, 4242, "bad request id");
    }
}

static void test_frame_reject_without_id_sends_nothing(void)
{
    char raw[64];
    frame_reject(0, "no id to answer");
    CHECK_UINT_EQ(drain(raw, sizeof raw), 0);
}

static void test_frame_cancelled_layout(void)
{
    frame_in_t f;
    frame_cancelled(7);
    if (one_frame(&f) == 0) {
        expect_header(&f, 2, "error");
        expect_long(&f, 7);
        expect_body(&f);
        expect_atom(&f, "cancelled");
        expect_end(&f);
    }
}

static void test_frame_too_large_layout(void)
{
    frame_in_t f;
    frame_too_large(9, 300000000, PYPORT_DEFAULT_MAX_FRAME);
    if (one_frame(&f) == 0) {
        expect_header(&f, 2, "error");
        expect_long(&f, 9);
        expect_body(&f);
        int arity = 0;
        CHECK_INT_EQ(ei_decode_tuple_header(f.data, &f.index, &arity), 0);
        CHECK_INT_EQ(arity, 3);
        expect_atom(&f, "too_large");
        expect_long(&f, 300000000);
        expect_long(&f, PYPORT_DEFAULT_MAX_FRAME);
        expect_end(&f);
    }
}

static void test_frame_output_layout(void)
{
    frame_in_t f;
    buf_t b;
    frame_output(&b, 12, "fd2", "a\0b\n", 4);
    size_t size = frame_size(&b);
    frame_send(&b);
    if (one_frame(&f) == 0) {
        expect_header(&f, 4, "output");
        expect_long(&f, 12);
        expect_atom(&f, "fd2");
        expect_binary(&f, "a\0b\n", 4);
        expect_end(&f);
        CHECK_UINT_EQ(size, f.len);
    }
}

static void test_frame_log_layout(void)
{
    frame_in_t f;
    buf_t b;
    frame_log(&b, 30, "app.db", 6, "slow query", 10);
    frame_send(&b);
    if (one_frame(&f) == 0) {
        expect_header(&f, 4, "log");
        expect_long(&f, 30);
        expect_binary(&f, "app.db", 6);
        expect_binary(&f, "slow query", 10);
        expect_end(&f);
    }
}

static void test_frame_ready_names_the_protocol_version(void)
{
    frame_in_t f;
    frame_ready("3.11.2", 4321);
    if (one_frame(&f) == 0) {
        expect_header(&f, 4, "ready");
        expect_long(&f, PYPORT_PROTOCOL_VERSION);
        expect_binary(&f, "3.11.2", 6);
        expect_long(&f, 4321);
        expect_end(&f);
    }
}

static void test_frame_answer_turned_into_error_in_place(void)
{
    buf_t b;
    frame_answer_t at;
    frame_begin_answer(&b, 55, &at);
    proto_binary(&b, "a result that is dropped", 24);
    frame_answer_error(&b, &at);
    frame_body_badarg(&b, "bad name", 8);
    frame_send(&b);
    frame_in_t f;
    if (one_frame(&f) == 0) {
        expect_badarg(&f, 55, "bad name");
    }
}

static void test_frame_begin_callback_then_body(void)
{
    buf_t b;
    frame_begin_callback(&b, 3, 44, "double", 6);
    proto_list(&b, 1);
    proto_long(&b, 21);
    proto_nil(&b);
    frame_send(&b);
    frame_in_t f;
    if (one_frame(&f) == 0) {
        expect_header(&f, 4, "callback");
        expect_long(&f, 3);
        expect_long(&f, 44);
        expect_binary(&f, "double", 6);
        expect_body(&f);
        int arity = 0;
        CHECK_INT_EQ(ei_decode_list_header(f.data, &f.index, &arity), 0);
        CHECK_INT_EQ(arity, 1);
        expect_long(&f, 21);
        CHECK_INT_EQ(ei_decode_list_header(f.data, &f.index, &arity), 0);
        CHECK_INT_EQ(arity, 0);
        expect_end(&f);
    }
}

int main(void)
{
    ei_init();
    if (pipe2(g_pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        perror("pipe2");
        return 2;
    }
    outbox_init(g_pipe[1], no_wake);
    RUN_TEST(test_frame_reject_is_badarg_with_the_id);
    RUN_TEST(test_frame_reject_without_id_sends_nothing);
    RUN_TEST(test_frame_cancelled_layout);
    RUN_TEST(test_frame_too_large_layout);
    RUN_TEST(test_frame_output_layout);
    RUN_TEST(test_frame_log_layout);
    RUN_TEST(test_frame_ready_names_the_protocol_version);
    RUN_TEST(test_frame_answer_turned_into_error_in_place);
    RUN_TEST(test_frame_begin_callback_then_body);
    return check_exit_status();
}
