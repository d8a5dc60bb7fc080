/*
 * Unit tests of port/protocol.c: proto_peek on every op of the table and on
 * malformed frames (not ETF, compressed, not a tuple, unknown op, wrong arity, bad
 * ids, truncated terms), proto_string on ASCII, Latin-1, multi-byte and invalid
 * UTF-8, and proto_end. Fixtures are built with ei_x_*.
 */
#include <ei.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "check.h"
#include "packet.h"
#include "memory.h"
#include "protocol.h"
#include "pyport/wire.h"

/* term_to_binary({exec, 7, <0.1.0>, binary:copy(<<"x = 1\n">>, 100)}, [compressed]) */
static const unsigned char g_compressed_exec[] = {
    131, 80,  0,   0,  2,   133, 120, 156, 203, 96,  73,  97,  96,  73,  173, 72,  77,
    78,  100, 143, 72, 97,  224, 205, 203, 207, 203, 79,  73,  117, 200, 203, 207, 200,
    47,  46,  97,  96, 96,  96,  100, 128, 130, 92,  6,   6,   166, 136, 10,  5,   91,
    5,   67,  174, 81, 114, 148, 164, 46,  9,   0,   230, 172, 128, 145};

static void encode_pid(ei_x_buff *x)
{
    erlang_pid pid;
    memset(&pid, 0, sizeof pid);
    strcpy(pid.node, "nonode@nohost");
    pid.num = 85;
    pid.serial = 0;
    pid.creation = 0;
    if (ei_x_encode_pid(x, &pid) < 0) {
        abort();
    }
}

/* Appends fields described by fmt: p pid, i integer, a atom, b binary, l [], m #{}. */
static void encode_fields(ei_x_buff *x, const char *fmt)
{
    for (const char *f = fmt; *f; f++) {
        int rc = 0;
        switch (*f) {
        case 'p':
            encode_pid(x);
            break;
        case 'i':
            rc = ei_x_encode_long(x, 42);
            break;
        case 'a':
            rc = ei_x_encode_atom(x, "x");
            break;
        case 'b':
            rc = ei_x_encode_binary(x, "1+1", 3);
            break;
        case 'l':
            rc = ei_x_encode_empty_list(x);
            break;
        case 'm':
            rc = ei_x_encode_map_header(x, 0);
            break;
        default:
            abort();
        }
        if (rc < 0) {
            abort();
        }
    }
}

/* {Op, [Id,] Fields...} with the version byte. Caller frees with ei_x_free. */
static void build(ei_x_buff *x, const char *op, int with_id, long long id, const char *fields)
{
    int arity = 1 + (with_id ? 1 : 0) + (int)strlen(fields);
    if (ei_x_new_with_version(x) < 0 || ei_x_encode_tuple_header(x, arity) < 0 ||
        ei_x_encode_atom(x, op) < 0 || (with_id && ei_x_encode_longlong(x, id) < 0)) {
        abort();
    }
    encode_fields(x, fields);
}

/* proto_peek on an exact-size heap copy, so a sanitizer sees any over-read. */
static int peek(const char *frame, size_t len, proto_head_t *job, const char **err)
{
    char *copy = mem_dup(frame, len);
    memset(job, 0x5a, sizeof *job);
    *err = NULL;
    int rc = proto_peek(copy, len, job, err);
    mem_free(copy);
    return rc;
}

static int ei_type_at(const char *buf, int index)
{
    int type;
    int size;
    return ei_get_type(buf, &index, &type, &size) < 0 ? -1 : type;
}

static int is_atom_type(int t)
{
    return t == ERL_ATOM_EXT || t == ERL_SMALL_ATOM_EXT || t == ERL_ATOM_UTF8_EXT ||
           t == ERL_SMALL_ATOM_UTF8_EXT;
}

typedef struct {
    proto_op_t op;
    const char *name;
    int arity;
    int has_id;
    int has_parent;
    const char *fields; /* after the op and the id */
} op_case_t;

/* The op table of docs/protocol.md, with realistic fields (i after p: Parent). */
static const op_case_t g_op_cases[] = {
    {OP_CALL, "call", 8, 1, 1, "piaalm"},     {OP_EVAL, "eval", 6, 1, 1, "pibm"},
    {OP_EXEC, "exec", 5, 1, 1, "pib"},        {OP_DROP_ENV, "drop_env", 2, 0, 0, "p"},
    {OP_CANCEL, "cancel", 2, 0, 0, "i"},      {OP_INTERRUPT, "interrupt", 2, 0, 0, "a"},
    {OP_INFO, "info", 2, 1, 0, ""},           {OP_CALLBACK_REPLY, "callback_reply", 4, 0, 0, "iaa"},
    {OP_STREAM, "stream", 6, 1, 1, "piai"},   {OP_STREAM_ACK, "stream_ack", 3, 0, 0, "ii"},
    {OP_METHOD, "method", 8, 1, 1, "piaalm"}, {OP_GETATTR, "getattr", 6, 1, 1, "piaa"},
    {OP_RELEASE, "release", 2, 0, 0, "a"},    {OP_SETUP, "setup", 3, 1, 0, "m"},
    {OP_CREDIT, "credit", 3, 0, 0, "ai"},
};

#define N_OP_CASES (sizeof g_op_cases / sizeof g_op_cases[0])

static void test_proto_op_table_matches_protocol_doc(void)
{
    CHECK_INT_EQ(N_OP_CASES, OP_COUNT);
    for (size_t i = 0; i < N_OP_CASES; i++) {
        const proto_op_info_t *info = proto_op_info(g_op_cases[i].op);
        CHECK_STR_EQ(info->name, g_op_cases[i].name);
        CHECK_INT_EQ(info->arity, g_op_cases[i].arity);
        CHECK_INT_EQ(info->has_id, g_op_cases[i].has_id);
        CHECK_INT_EQ(info->has_parent, g_op_cases[i].has_parent);
    }
    CHECK_INT_EQ(proto_op_info(OP_CANCEL)->where, ON_LOOP);
    CHECK_INT_EQ(proto_op_info(OP_INTERRUPT)->where, ON_LOOP);
    CHECK_INT_EQ(proto_op_info(OP_INFO)->where, ON_LOOP);
    CHECK_INT_EQ(proto_op_info(OP_CREDIT)->where, ON_LOOP);
    CHECK_INT_EQ(proto_op_info(OP_CALL)->where, ON_PYTHON);
    CHECK_INT_EQ(proto_op_info(OP_EVAL)->where, ON_PYTHON);
    CHECK_INT_EQ(proto_op_info(OP_EXEC)->where, ON_PYTHON);
    CHECK_INT_EQ(proto_op_info(OP_DROP_ENV)->where, ON_PYTHON);
}

static void test_proto_peek_accepts_every_op(void)
{
    static const int field_type[128] = {
        ['p'] = ERL_NEW_PID_EXT, ['i'] = ERL_SMALL_INTEGER_EXT, ['a'] = ERL_SMALL_ATOM_UTF8_EXT,
        ['b'] = ERL_BINARY_EXT,  ['l'] = ERL_NIL_EXT,           ['m'] = ERL_MAP_EXT,
    };
    for (size_t i = 0; i < N_OP_CASES; i++) {
        const op_case_t *c = &g_op_cases[i];
        ei_x_buff x;
        long long id = 1000 + (long long)i;
        build(&x, c->name, c->has_id, id, c->fields);
        proto_head_t job;
        const char *err;
        int rc = peek(x.buff, (size_t)x.index, &job, &err);
        check_test = c->name;
        CHECK_INT_EQ(rc, 0);
        CHECK(err == NULL);
        CHECK_INT_EQ(job.op, c->op);
        CHECK_INT_EQ(job.id, c->has_id ? id : 0);
        CHECK_INT_EQ(job.parent, c->has_parent ? 42 : 0);
        if (c->fields[0] != '\0') {
            /* The index points at the first field after the op (and id). */
            int t = ei_type_at(x.buff, job.index);
            int want = field_type[(int)c->fields[0]];
            CHECK(t == want || (want == ERL_NEW_PID_EXT && t == ERL_PID_EXT) ||
                  (want == ERL_SMALL_ATOM_UTF8_EXT && is_atom_type(t)));
        } else {
            CHECK_INT_EQ(job.index, x.index);
        }
        ei_x_free(&x);
    }
    check_test = "test_proto_peek_accepts_every_op";
}

static void test_proto_peek_pid_span_covers_the_pid(void)
{
    ei_x_buff x;
    build(&x, "exec", 1, 9, "pib");
    proto_head_t job;
    const char *err;
    CHECK_INT_EQ(peek(x.buff, (size_t)x.index, &job, &err), 0);
    int index = job.index;
    int start = -1;
    int len = -1;
    CHECK_INT_EQ(proto_pid_span(x.buff, (size_t)x.index, &index, &start, &len), 0);
    CHECK_INT_EQ(start, job.index);
    ei_x_buff p;
    ei_x_new(&p);
    encode_pid(&p);
    CHECK_MEM_EQ(x.buff + start, len, p.buff, p.index);
    CHECK_INT_EQ(ei_type_at(x.buff, index), ERL_SMALL_INTEGER_EXT);
    /* Not a pid: the parent after it. */
    CHECK_INT_EQ(proto_pid_span(x.buff, (size_t)x.index, &index, &start, &len), -1);
    ei_x_free(&p);
    ei_x_free(&x);
}

static void expect_reject(const char *frame, size_t len, long long want_id)
{
    proto_head_t job;
    const char *err;
    int rc = peek(frame, len, &job, &err);
    CHECK_INT_EQ(rc, -1);
    CHECK(err != NULL && err[0] != '\0');
    CHECK_INT_EQ(job.id, want_id);
}

static void test_proto_peek_rejects_non_etf_bytes(void)
{
    expect_reject("hello world", 11, 0);
    expect_reject("\x00\x01\x02\x03", 4, 0);
    expect_reject("\x82\x68\x01\x64\x00\x01x", 7, 0); /* version 130 */
    expect_reject("", 0, 0);
    expect_reject("\x83", 1, 0);
}

static void test_proto_peek_rejects_compressed_etf(void)
{
    expect_reject((const char *)g_compressed_exec, sizeof g_compressed_exec, 0);
}

static void test_proto_peek_rejects_non_tuple_terms(void)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_atom(&x, "call");
    expect_reject(x.buff, (size_t)x.index, 0);
    ei_x_free(&x);

    ei_x_new_with_version(&x);
    ei_x_encode_list_header(&x, 2);
    ei_x_encode_atom(&x, "eval");
    ei_x_encode_long(&x, 3);
    ei_x_encode_empty_list(&x);
    expect_reject(x.buff, (size_t)x.index, 0);
    ei_x_free(&x);

    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 0);
    expect_reject(x.buff, (size_t)x.index, 0);
    ei_x_free(&x);

    /* First element not an atom. */
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_binary(&x, "eval", 4);
    ei_x_encode_long(&x, 3);
    encode_pid(&x);
    expect_reject(x.buff, (size_t)x.index, 0);
    ei_x_free(&x);
}

static void test_proto_peek_unknown_op_still_reports_id(void)
{
    ei_x_buff x;
    build(&x, "frobnicate", 1, 77, "pa");
    expect_reject(x.buff, (size_t)x.index, 77);
    ei_x_free(&x);

    /* Unknown op without an id: nothing to answer. */
    build(&x, "frobnicate", 0, 0, "");
    expect_reject(x.buff, (size_t)x.index, 0);
    ei_x_free(&x);
    build(&x, "frobnicate", 0, 0, "a");
    expect_reject(x.buff, (size_t)x.index, 0);
    ei_x_free(&x);
}

static void test_proto_peek_wrong_arity_reports_id(void)
{
    ei_x_buff x;
    build(&x, "call", 1, 5, "pia"); /* 5 fields, needs 8 */
    expect_reject(x.buff, (size_t)x.index, 5);
    ei_x_free(&x);
    build(&x, "eval", 1, 6, "pibma"); /* one too many */
    expect_reject(x.buff, (size_t)x.index, 6);
    ei_x_free(&x);
    build(&x, "info", 1, 8, "a");
    expect_reject(x.buff, (size_t)x.index, 8);
    ei_x_free(&x);
    build(&x, "exec", 0, 0, ""); /* {exec}: no id to read */
    expect_reject(x.buff, (size_t)x.index, 0);
    ei_x_free(&x);
    build(&x, "cancel", 0, 0, "ii");
    expect_reject(x.buff, (size_t)x.index, 0);
    ei_x_free(&x);
}

static void test_proto_peek_rejects_bad_ids(void)
{
    ei_x_buff x;
    build(&x, "eval", 1, 0, "pibm");
    expect_reject(x.buff, (size_t)x.index, 0);
    ei_x_free(&x);
    build(&x, "eval", 1, -5, "pibm");
    expect_reject(x.buff, (size_t)x.index, 0);
    ei_x_free(&x);

    /* An atom, a float and a bignum where the id goes. */
    const char *kinds[] = {"atom", "float", "bignum"};
    for (int k = 0; k < 3; k++) {
        ei_x_new_with_version(&x);
        ei_x_encode_tuple_header(&x, 5);
        ei_x_encode_atom(&x, "eval");
        if (k == 0) {
            ei_x_encode_atom(&x, "one");
        } else if (k == 1) {
            ei_x_encode_double(&x, 1.0);
        } else {
            /* 2^70 as SMALL_BIG_EXT: 9 little-endian digits. */
            const unsigned char big[] = {110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40};
            ei_x_append_buf(&x, (const char *)big, sizeof big);
        }
        encode_fields(&x, "pibm");
        check_test = kinds[k];
        expect_reject(x.buff, (size_t)x.index, 0);
        ei_x_free(&x);
    }
    check_test = "test_proto_peek_rejects_bad_ids";

    /* The largest id that fits is fine. */
    build(&x, "eval", 1, INT64_MAX, "pibm");
    proto_head_t job;
    const char *err;
    CHECK_INT_EQ(peek(x.buff, (size_t)x.index, &job, &err), 0);
    CHECK_INT_EQ(job.id, INT64_MAX);
    ei_x_free(&x);
}

/* proto_peek on the first `cut` bytes of frame, placed in a zeroed larger buffer so
   that an over-read shows here as a wrong verdict instead of a sanitizer abort
   (tests/fuzz shows the abort). Returns the verdict. */
static int peek_cut(const char *frame, int cut, proto_head_t *job)
{
    const char *err = NULL;
    char *padded = mem_calloc(1, (size_t)cut + 256);
    memcpy(padded, frame, (size_t)cut);
    int rc = proto_peek(padded, (size_t)cut, job, &err);
    mem_free(padded);
    return rc;
}

static void test_proto_peek_rejects_frames_cut_in_the_envelope(void)
{
    ei_x_buff x;
    build(&x, "call", 1, 12, "piaalm");
    ei_x_buff env;
    build(&env, "call", 1, 12, "");
    for (int cut = 0; cut < env.index; cut++) {
        proto_head_t job;
        if (peek_cut(x.buff, cut, &job) != -1) {
            check_fail(__FILE__, __LINE__, "call frame cut at byte %d (in the op or id) accepted",
                       cut);
        }
    }
    ei_x_free(&env);
    ei_x_free(&x);
}

static void test_proto_peek_rejects_frames_whose_term_is_cut_short(void)
{
    /* A frame holds one whole ETF term. proto_peek is the one place that sees
       the frame length before the Python thread decodes the fields with ei
       (which trusts the lengths inside the term), so a term cut short must be
       refused there, with its id, rather than decoded past the frame's end. */
    ei_x_buff x;
    build(&x, "call", 1, 12, "piaalm");
    ei_x_buff env;
    build(&env, "call", 1, 12, "");
    char accepted[512] = "";
    size_t used = 0;
    int n_accepted = 0;
    for (int cut = env.index; cut < x.index; cut++) {
        proto_head_t job;
        if (peek_cut(x.buff, cut, &job) != -1) {
            n_accepted++;
            used += (size_t)snprintf(accepted + used, sizeof accepted - used, " %d", cut);
        }
    }
    if (n_accepted > 0) {
        check_fail(__FILE__, __LINE__,
                   "%d call frames cut after the id (of %d bytes) were accepted; cut at:%s",
                   n_accepted, x.index, accepted);
    }
    ei_x_free(&env);
    ei_x_free(&x);
}

static void test_proto_peek_rejects_trailing_bytes(void)
{
    ei_x_buff x;
    build(&x, "exec", 1, 13, "pib");
    ei_x_append_buf(&x, "junk", 4);
    proto_head_t job;
    const char *err;
    /* The envelope is readable, so whatever the verdict the id must be known. */
    int rc = peek(x.buff, (size_t)x.index, &job, &err);
    CHECK(rc == -1 || job.id == 13);
    CHECK_INT_EQ(job.id, 13);
    ei_x_free(&x);
}

/* Decodes an Erlang string (STRING_EXT, LIST_EXT of integers, or NIL_EXT) at
   buf[*index] into code points. Returns the count, or -1. */
static long decode_codepoints(const char *buf, int *index, long *out, long max)
{
    int type;
    int size;
    if (ei_get_type(buf, index, &type, &size) < 0) {
        return -1;
    }
    if (type == ERL_NIL_EXT) {
        return ei_decode_list_header(buf, index, &size) < 0 ? -1 : 0;
    }
    if (type == ERL_STRING_EXT) {
        char *s = mem_alloc((size_t)size + 1);
        long n = -1;
        if (size <= max && ei_decode_string(buf, index, s) == 0) {
            for (int i = 0; i < size; i++) {
                out[i] = (unsigned char)s[i];
            }
            n = size;
        }
        mem_free(s);
        return n;
    }
    int arity;
    if (type != ERL_LIST_EXT || ei_decode_list_header(buf, index, &arity) < 0 || arity > max) {
        return -1;
    }
    for (int i = 0; i < arity; i++) {
        long long v;
        if (ei_decode_longlong(buf, index, &v) < 0) {
            return -1;
        }
        out[i] = (long)v;
    }
    if (ei_get_type(buf, index, &type, &size) < 0 || type != ERL_NIL_EXT) {
        return -1;
    }
    (*index)++;
    return arity;
}

static void check_string(const char *utf8, size_t n, const long *want, long want_n)
{
    buf_t b;
    buf_init(&b, 16);
    proto_string(&b, utf8, n);
    long got[128];
    int index = 0;
    long got_n = decode_codepoints(b.data, &index, got, 128);
    CHECK_INT_EQ(got_n, want_n);
    CHECK_UINT_EQ((size_t)index, b.len);
    for (long i = 0; i < want_n && i < got_n; i++) {
        if (got[i] != want[i]) {
            check_fail(__FILE__, __LINE__, "code point %ld: 0x%lx != 0x%lx", i, got[i], want[i]);
        }
    }
    buf_destroy(&b);
}

static void test_proto_string_ascii(void)
{
    const long want[] = {'h', 'e', 'l', 'l', 'o'};
    check_string("hello", 5, want, 5);
    check_string("", 0, want, 0);
    /* NUL is a code point like any other. */
    const long nul[] = {'a', 0, 'b'};
    check_string("a\0b", 3, nul, 3);
}

static void test_proto_string_latin1(void)
{
    const long want[] = {'c', 'a', 'f', 0xe9, ' ', 0xff};
    check_string("caf\xc3\xa9 \xc3\xbf", 8, want, 6);
}

static void test_proto_string_multibyte_utf8(void)
{
    /* U+20AC, U+0100, U+1F600, U+10FFFF */
    const long want[] = {0x20ac, ' ', 0x100, 0x1f600, 0x10ffff};
    check_string("\xe2\x82\xac \xc4\x80\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf", 14, want, 5);
}

static void test_proto_string_invalid_utf8_becomes_replacement(void)
{
    const long stray[] = {'a', 0xfffd, 'b'};
    check_string("a\xff"
                 "b",
                 3, stray, 3);
    const long cont[] = {'a', 0xfffd, 'b'};
    check_string("a\x80"
                 "b",
                 3, cont, 3);
    /* A sequence cut short by the end of the text. */
    const long cut[] = {'a', 0xfffd, 0xfffd};
    check_string("a\xe2\x82", 3, cut, 3);
    /* A lead byte followed by a non-continuation byte. */
    const long lead[] = {0xfffd, 'x'};
    check_string("\xc3x", 2, lead, 2);
}

static void test_proto_string_yields_only_unicode_scalar_values(void)
{
    /* Overlong forms, UTF-16 surrogates and code points above U+10FFFF are not
       UTF-8; a string of them must not reach Erlang as code points that
       unicode:characters_to_binary/1 refuses. */
    static const struct {
        const char *bytes;
        size_t n;
    } bad[] = {
        {"\xc0\x80", 2},         /* overlong NUL */
        {"\xe0\x80\xaf", 3},     /* overlong '/' */
        {"\xed\xa0\x80", 3},     /* U+D800 */
        {"\xed\xbf\xbf", 3},     /* U+DFFF */
        {"\xf4\x90\x80\x80", 4}, /* U+110000 */
        {"\xf7\xbf\xbf\xbf", 4}, /* U+1FFFFF */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf_t b;
        buf_init(&b, 16);
        proto_string(&b, bad[i].bytes, bad[i].n);
        long got[8];
        int index = 0;
        long n = decode_codepoints(b.data, &index, got, 8);
        CHECK(n > 0);
        for (long k = 0; k < n; k++) {
            int surrogate = got[k] >= 0xd800 && got[k] <= 0xdfff;
            int scalar = got[k] >= 0 && got[k] <= 0x10ffff && !surrogate;
            int overlong = got[k] < 0x80 && bad[i].bytes[0] != (char)got[k];
            if (!scalar || overlong) {
                check_fail(__FILE__, __LINE__, "case %zu: code point 0x%lx from invalid UTF-8", i,
                           got[k]);
                check_hex("input", bad[i].bytes, bad[i].n);
            }
        }
        buf_destroy(&b);
    }
}

static void test_proto_string_long_text_round_trips(void)
{
    enum { N = 70000 };
    char *s = mem_alloc(N * 2);
    for (size_t i = 0; i < N; i++) {
        s[2 * i] = (char)0xc3; /* U+00E9, Latin-1 but too long for STRING_EXT */
        s[2 * i + 1] = (char)0xa9;
    }
    buf_t b;
    buf_init(&b, 16);
    proto_string(&b, s, N * 2);
    long *got = mem_alloc(sizeof(long) * N);
    int index = 0;
    long n = decode_codepoints(b.data, &index, got, N);
    CHECK_INT_EQ(n, N);
    CHECK_UINT_EQ((size_t)index, b.len);
    long wrong = 0;
    for (long i = 0; i < n; i++) {
        wrong += got[i] != 0xe9;
    }
    CHECK_INT_EQ(wrong, 0);
    mem_free(got);
    mem_free(s);
    buf_destroy(&b);
}

static void test_proto_end_refuses_frames_over_max(void)
{
    buf_t b;
    buf_init(&b, 16);
    proto_begin(&b);
    proto_binary(&b, "0123456789", 10);
    size_t body = b.len - PYPORT_FRAME_HEADER_BYTES;
    CHECK_INT_EQ(proto_end(&b, body - 1), -1);
    CHECK_INT_EQ(proto_end(&b, body), 0);
    const unsigned char *u = (const unsigned char *)b.data;
    CHECK_UINT_EQ(((size_t)u[2] << 8) | u[3], body);
    buf_destroy(&b);
}

static void test_proto_peek_rejects_bad_parents(void)
{
    static const char *bad[] = {"pab", "plb", "pmb"}; /* atom, [], map as Parent */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ei_x_buff x;
        build(&x, "exec", 1, 77, bad[i]);
        expect_reject(x.buff, (size_t)x.index, 77);
        ei_x_free(&x);
    }
    /* A negative parent. */
    ei_x_buff x;
    if (ei_x_new_with_version(&x) < 0 || ei_x_encode_tuple_header(&x, 5) < 0 ||
        ei_x_encode_atom(&x, "exec") < 0 || ei_x_encode_longlong(&x, 78) < 0) {
        abort();
    }
    encode_pid(&x);
    if (ei_x_encode_long(&x, -1) < 0 || ei_x_encode_binary(&x, "1", 1) < 0) {
        abort();
    }
    expect_reject(x.buff, (size_t)x.index, 78);
    ei_x_free(&x);
}

static void test_proto_batch_next_splits_a_batch(void)
{
    /* Two frames of 2 and 3 bytes, then the end. */
    static const char batch[] = {PYPORT_BATCH_TAG, 0, 0, 0, 2, 'a', 'b', 0, 0, 0, 3, 'c', 'd', 'e'};
    size_t pos = 0, n = 0;
    const char *inner = NULL;
    CHECK_INT_EQ(proto_batch_next(batch, sizeof batch, &pos, &inner, &n), 1);
    CHECK_INT_EQ((long long)n, 2);
    CHECK(memcmp(inner, "ab", 2) == 0);
    CHECK_INT_EQ(proto_batch_next(batch, sizeof batch, &pos, &inner, &n), 1);
    CHECK_INT_EQ((long long)n, 3);
    CHECK(memcmp(inner, "cde", 3) == 0);
    CHECK_INT_EQ(proto_batch_next(batch, sizeof batch, &pos, &inner, &n), 0);
    /* The tag alone is an empty batch. */
    pos = 0;
    CHECK_INT_EQ(proto_batch_next(batch, 1, &pos, &inner, &n), 0);
}

static void test_proto_batch_next_refuses_lengths_past_the_end(void)
{
    static const char cut[] = {PYPORT_BATCH_TAG, 0, 0, 0, 2, 'a', 'b', 0, 0, 0, 9, 'c'};
    static const char short_header[] = {PYPORT_BATCH_TAG, 0, 0};
    static const char empty_frame[] = {PYPORT_BATCH_TAG, 0, 0, 0, 0};
    static const char huge[] = {PYPORT_BATCH_TAG, (char)0xff, (char)0xff,
                                (char)0xff,       (char)0xff, 'x'};
    size_t pos = 0, n = 0;
    const char *inner = NULL;
    CHECK_INT_EQ(proto_batch_next(cut, sizeof cut, &pos, &inner, &n), 1);
    CHECK_INT_EQ(proto_batch_next(cut, sizeof cut, &pos, &inner, &n), -1);
    pos = 0;
    CHECK_INT_EQ(proto_batch_next(short_header, sizeof short_header, &pos, &inner, &n), -1);
    pos = 0;
    CHECK_INT_EQ(proto_batch_next(empty_frame, sizeof empty_frame, &pos, &inner, &n), -1);
    pos = 0;
    CHECK_INT_EQ(proto_batch_next(huge, sizeof huge, &pos, &inner, &n), -1);
}

int main(void)
{
    ei_init();
    RUN_TEST(test_proto_op_table_matches_protocol_doc);
    RUN_TEST(test_proto_peek_accepts_every_op);
    RUN_TEST(test_proto_peek_pid_span_covers_the_pid);
    RUN_TEST(test_proto_peek_rejects_non_etf_bytes);
    RUN_TEST(test_proto_peek_rejects_compressed_etf);
    RUN_TEST(test_proto_peek_rejects_non_tuple_terms);
    RUN_TEST(test_proto_peek_unknown_op_still_reports_id);
    RUN_TEST(test_proto_peek_wrong_arity_reports_id);
    RUN_TEST(test_proto_peek_rejects_bad_ids);
    RUN_TEST(test_proto_peek_rejects_frames_cut_in_the_envelope);
    RUN_TEST(test_proto_peek_rejects_frames_whose_term_is_cut_short);
    RUN_TEST(test_proto_peek_rejects_trailing_bytes);
    RUN_TEST(test_proto_peek_rejects_bad_parents);
    RUN_TEST(test_proto_string_ascii);
    RUN_TEST(test_proto_string_latin1);
    RUN_TEST(test_proto_string_multibyte_utf8);
    RUN_TEST(test_proto_string_invalid_utf8_becomes_replacement);
    RUN_TEST(test_proto_string_yields_only_unicode_scalar_values);
    RUN_TEST(test_proto_string_long_text_round_trips);
    RUN_TEST(test_proto_end_refuses_frames_over_max);
    RUN_TEST(test_proto_batch_next_splits_a_batch);
    RUN_TEST(test_proto_batch_next_refuses_lengths_past_the_end);
    return check_exit_status();
}
