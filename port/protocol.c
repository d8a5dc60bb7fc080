/*
 * Envelope parsing and term encoding (see protocol.h and docs/protocol.md).
 * The op table below is the single list of requests the port understands;
 * frames.c, next to it, is the single list of frames the port sends.
 * Stateless but for the walk depth set at start-up; callable from any thread.
 */
#include "protocol.h"

#include <ei.h>
#include <string.h>

#include "etf.h"
#include "packet.h"
#include "pyport/wire.h"

/* clang-format off */
static const proto_op_info_t g_ops[OP_COUNT] = {
    /*                     name              arity id parent where */
    [OP_CALL]           = {"call",           8,    1, 1, ON_PYTHON}, /* {call, Id, Pid, Parent, M, F, Args, Kw} */
    [OP_EVAL]           = {"eval",           6,    1, 1, ON_PYTHON}, /* {eval, Id, Pid, Parent, Code, Locals} */
    [OP_EXEC]           = {"exec",           5,    1, 1, ON_PYTHON}, /* {exec, Id, Pid, Parent, Code} */
    [OP_DROP_ENV]       = {"drop_env",       2,    0, 0, ON_PYTHON}, /* {drop_env, Pid} */
    [OP_CANCEL]         = {"cancel",         2,    0, 0, ON_LOOP},   /* {cancel, Id} */
    [OP_INTERRUPT]      = {"interrupt",      2,    0, 0, ON_LOOP},   /* {interrupt, keyboard|memory} */
    [OP_INFO]           = {"info",           2,    1, 0, ON_LOOP},   /* {info, Id} */
    [OP_CALLBACK_REPLY] = {"callback_reply", 4,    0, 0, ON_LOOP},   /* {callback_reply, CbId, ok|error, T} */
    [OP_STREAM]         = {"stream",         6,    1, 1, ON_PYTHON}, /* {stream, Id, Pid, Parent, Source, Window} */
    [OP_STREAM_ACK]     = {"stream_ack",     3,    0, 0, ON_PYTHON}, /* {stream_ack, Id, N} */
    [OP_METHOD]         = {"method",         8,    1, 1, ON_PYTHON}, /* {method, Id, Pid, Parent, Ref, Name, Args, Kw} */
    [OP_GETATTR]        = {"getattr",        6,    1, 1, ON_PYTHON}, /* {getattr, Id, Pid, Parent, Ref, Name} */
    [OP_RELEASE]        = {"release",        2,    0, 0, ON_PYTHON}, /* {release, Ref} */
    [OP_SETUP]          = {"setup",          3,    1, 0, ON_PYTHON}, /* {setup, Id, Opts} */
    [OP_CREDIT]         = {"credit",         3,    0, 0, ON_LOOP},   /* {credit, output|send, Bytes} */
};
/* clang-format on */

const proto_op_info_t *proto_op_info(proto_op_t op)
{
    return &g_ops[op];
}

/* Terms may nest this deep before a frame is refused outright; the codec gives
   the precise error for terms just over max_depth. */
static int g_walk_depth = PYPORT_DEFAULT_MAX_DEPTH + 2;

void proto_set_max_depth(int depth)
{
    g_walk_depth = depth + 2;
}

int proto_peek(const char *frame, size_t len, proto_head_t *head, const char **err)
{
    if (proto_peek_header(frame, len, head, err) < 0) {
        return -1;
    }
    /* One bounded walk before anything decodes the frame: ei trusts the lengths
       inside a term. */
    if (!etf_frame_ok(frame, len, g_walk_depth)) {
        *err = "malformed term (a length or count runs past the frame, an unknown tag, "
               "or nesting far deeper than max_depth)";
        return -1;
    }
    if (g_ops[head->op].has_parent) {
        /* The parent follows the caller pid; the op reads both again. */
        long pid_end = etf_skip(frame, len, (size_t)head->index, 0);
        int index = (int)pid_end;
        long long parent;
        if (pid_end < 0 || ei_decode_longlong(frame, &index, &parent) < 0 || parent < 0) {
            *err = "the parent request must be a non-negative integer";
            return -1;
        }
        head->parent = parent;
    }
    return 0;
}

int proto_batch_next(const char *batch, size_t len, size_t *pos, const char **inner,
                     size_t *inner_len)
{
    size_t at = *pos == 0 ? 1 : *pos;
    if (at >= len) {
        return 0;
    }
    if (len - at < PYPORT_FRAME_HEADER_BYTES) {
        return -1;
    }
    const unsigned char *b = (const unsigned char *)batch + at;
    size_t n = ((size_t)b[0] << 24) | ((size_t)b[1] << 16) | ((size_t)b[2] << 8) | b[3];
    at += PYPORT_FRAME_HEADER_BYTES;
    if (n == 0 || n > len - at) {
        return -1;
    }
    *inner = batch + at;
    *inner_len = n;
    *pos = at + n;
    return 1;
}

int proto_peek_header(const char *frame, size_t len, proto_head_t *head, const char **err)
{
    const unsigned char *b = (const unsigned char *)frame;
    char atom[MAXATOMLEN_UTF8];
    int arity;
    size_t first;

    head->id = 0;
    head->op = -1;
    head->index = 0;
    head->parent = 0;
    if (len < 2 || len > PYPORT_HARD_MAX_FRAME || b[0] != PROTO_ETF_VERSION) {
        *err = "not an ETF term (bad version byte or compressed)";
        return -1;
    }
    if (b[1] == ERL_SMALL_TUPLE_EXT && len >= 3) {
        arity = b[2];
        first = 3;
    } else if (b[1] == ERL_LARGE_TUPLE_EXT && len >= 6) {
        arity =
            (int)(((uint32_t)b[2] << 24) | ((uint32_t)b[3] << 16) | ((uint32_t)b[4] << 8) | b[5]);
        first = 6;
    } else {
        *err = "frame is not a tuple";
        return -1;
    }
    /* Each field is walked (bounded) before ei decodes it: the frame may be cut
       short (an oversized frame's first bytes) or forged. */
    long op_end = arity >= 1 ? etf_skip(frame, len, first, 0) : -1;
    int index = (int)first;
    if (op_end < 0 || ei_decode_atom(frame, &index, atom) < 0) {
        *err = "first element of the frame is not an atom";
        return -1;
    }
    long id_end = arity >= 2 ? etf_skip(frame, len, (size_t)op_end, 0) : -1;
    long long id = 0;
    int have_id = id_end >= 0 && ei_decode_longlong(frame, &index, &id) == 0;
    int op = -1;
    for (int i = 0; i < OP_COUNT; i++) {
        if (strcmp(atom, g_ops[i].name) == 0) {
            op = i;
            break;
        }
    }
    if (op < 0) {
        *err = "unknown op";
        head->id = have_id && id > 0 ? id : 0; /* still answer it if we can */
        return -1;
    }
    head->op = op;
    if (g_ops[op].has_id) {
        if (!have_id || id <= 0) {
            *err = "bad request id";
            return -1;
        }
        head->id = id;
    }
    if (arity != g_ops[op].arity) {
        *err = "wrong number of fields for op";
        return -1;
    }
    head->index = g_ops[op].has_id ? index : (int)op_end;
    return 0;
}

int proto_pid_span(const char *frame, size_t frame_len, int *index, int *start, int *len)
{
    int type;
    int size;
    if (ei_get_type(frame, index, &type, &size) < 0 ||
        (type != ERL_PID_EXT && type != ERL_NEW_PID_EXT)) {
        return -1;
    }
    long end = etf_skip(frame, frame_len, (size_t)*index, 0);
    if (end < 0) {
        return -1;
    }
    *start = *index;
    *len = (int)end - *index;
    *index = (int)end;
    return 0;
}

/* Room for any fixed-size ei encoding (headers, numbers, small atoms). */
#define PROTO_SMALL 16

#define EI_APPEND(b, extra, call)                                                                  \
    do {                                                                                           \
        buf_reserve((b), (extra));                                                                 \
        int i_ = (int)(b)->len;                                                                    \
        call;                                                                                      \
        (b)->len = (size_t)i_;                                                                     \
    } while (0)

/* The one place that writes the ETF version byte of a term the port sends. */
void proto_body(buf_t *b)
{
    char v = (char)PROTO_ETF_VERSION;
    buf_append(b, &v, 1);
}

void proto_begin(buf_t *b)
{
    buf_reserve(b, PYPORT_FRAME_HEADER_BYTES + 1);
    b->len = PYPORT_FRAME_HEADER_BYTES;
    proto_body(b);
}

int proto_end(buf_t *b, size_t max)
{
    size_t n = b->len - PYPORT_FRAME_HEADER_BYTES;
    if (n > max) {
        return -1;
    }
    packet_put_len(b->data, (uint32_t)n);
    return 0;
}

void proto_atom(buf_t *b, const char *atom)
{
    proto_atom_len(b, atom, strlen(atom));
}

void proto_atom_len(buf_t *b, const char *utf8, size_t len)
{
    EI_APPEND(b, len + PROTO_SMALL,
              ei_encode_atom_len_as(b->data, &i_, utf8, (int)len, ERLANG_UTF8, ERLANG_UTF8));
}

void proto_tuple(buf_t *b, int arity)
{
    EI_APPEND(b, PROTO_SMALL, ei_encode_tuple_header(b->data, &i_, arity));
}

void proto_list(buf_t *b, int arity)
{
    EI_APPEND(b, PROTO_SMALL, ei_encode_list_header(b->data, &i_, arity));
}

void proto_nil(buf_t *b)
{
    EI_APPEND(b, PROTO_SMALL, ei_encode_empty_list(b->data, &i_));
}

void proto_map(buf_t *b, int arity)
{
    EI_APPEND(b, PROTO_SMALL, ei_encode_map_header(b->data, &i_, arity));
}

void proto_long(buf_t *b, int64_t v)
{
    EI_APPEND(b, PROTO_SMALL, ei_encode_longlong(b->data, &i_, (long long)v));
}

void proto_double(buf_t *b, double v)
{
    EI_APPEND(b, PROTO_SMALL, ei_encode_double(b->data, &i_, v));
}

void proto_binary(buf_t *b, const void *p, size_t n)
{
    EI_APPEND(b, n + PROTO_SMALL, ei_encode_binary(b->data, &i_, p, (long)n));
}

void proto_raw(buf_t *b, const void *p, size_t n)
{
    buf_append(b, p, n);
}

/* Decodes one UTF-8 sequence at s (n bytes left); returns its length, 0 if invalid. */
static size_t utf8_next(const unsigned char *s, size_t n, long *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len = (s[0] & 0xe0) == 0xc0   ? 2
                 : (s[0] & 0xf0) == 0xe0 ? 3
                 : (s[0] & 0xf8) == 0xf0 ? 4
                                         : 0;
    if (len == 0 || len > n) {
        return 0;
    }
    long c = s[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not characters. */
    static const long min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min_for_len[len] || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff) {
        return 0;
    }
    *cp = c;
    return len;
}

void proto_string(buf_t *b, const char *utf8, size_t n)
{
    const unsigned char *s = (const unsigned char *)utf8;
    size_t count = 0;
    int latin1 = 1;
    for (size_t i = 0; i < n;) {
        long cp;
        size_t l = utf8_next(s + i, n - i, &cp);
        if (l == 0) {
            cp = 0xfffd;
            l = 1;
        }
        if (cp > 255) {
            latin1 = 0;
        }
        count++;
        i += l;
    }
    if (count == 0) {
        proto_nil(b);
        return;
    }
    if (latin1 && count < 65535) {
        /* STRING_EXT: the compact form Erlang itself uses for such lists. */
        buf_reserve(b, count + 3);
        b->data[b->len++] = 107;
        b->data[b->len++] = (char)((count >> 8) & 0xff);
        b->data[b->len++] = (char)(count & 0xff);
    } else {
        proto_list(b, (int)count);
    }
    for (size_t i = 0; i < n;) {
        long cp;
        size_t l = utf8_next(s + i, n - i, &cp);
        if (l == 0) {
            cp = 0xfffd;
            l = 1;
        }
        if (latin1 && count < 65535) {
            b->data[b->len++] = (char)cp;
        } else {
            proto_long(b, cp);
        }
        i += l;
    }
    if (!(latin1 && count < 65535)) {
        proto_nil(b);
    }
}
