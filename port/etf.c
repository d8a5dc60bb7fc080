/*
 * Bounded ETF walker (see etf.h), following the external term format as OTP
 * writes it: every read is checked against len, compound terms recurse at most
 * `depth` levels, and funs must contain exactly what their size field says.
 */
#include "etf.h"

#include <stdint.h>
#include <string.h>

/* Longest atom in bytes: 255 characters of up to 4 UTF-8 bytes. */
#define ETF_MAX_ATOM_BYTES (255 * 4)

static uint32_t be(const unsigned char *p, int n)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Bytes available from pos. */
#define HAVE(n) ((size_t)(n) <= len - pos)

/* Who to tell about each atom met (etf_each_atom); NULL while only skipping. */
typedef struct {
    etf_atom_fn atom;
    void *ctx;
    int stopped; /* atom returned nonzero */
} visit_t;

static long skip_atom(const unsigned char *b, size_t len, size_t pos, visit_t *v)
{
    if (!HAVE(1)) {
        return -1;
    }
    unsigned char tag = b[pos];
    size_t n;
    switch (tag) {
    case 100: /* ATOM_EXT */
    case 118: /* ATOM_UTF8_EXT */
        if (!HAVE(3)) {
            return -1;
        }
        n = be(b + pos + 1, 2);
        pos += 3;
        break;
    case 115: /* SMALL_ATOM_EXT */
    case 119: /* SMALL_ATOM_UTF8_EXT */
        if (!HAVE(2)) {
            return -1;
        }
        n = b[pos + 1];
        pos += 2;
        break;
    default:
        return -1;
    }
    if (n > ETF_MAX_ATOM_BYTES || !HAVE(n)) {
        return -1;
    }
    if (v != NULL && !v->stopped &&
        v->atom(v->ctx, (const char *)b + pos, n, tag == 100 || tag == 115) != 0) {
        v->stopped = 1;
    }
    return (long)(pos + n);
}

static long skip(const unsigned char *b, size_t len, size_t pos, int depth, visit_t *v);

static long skip_int(const unsigned char *b, size_t len, size_t pos)
{
    if (HAVE(2) && b[pos] == 97) {
        return (long)(pos + 2);
    }
    return HAVE(5) && b[pos] == 98 ? (long)(pos + 5) : -1;
}

static long skip_pid(const unsigned char *b, size_t len, size_t pos, visit_t *v)
{
    if (!HAVE(1) || (b[pos] != 103 && b[pos] != 88)) {
        return -1;
    }
    return skip(b, len, pos, 0, v);
}

/* The fixed fields of a fun after its header: module, old index, old uniq and
   pid for NEW_FUN_EXT (pid first for FUN_EXT). Returns the offset after them. */
static long skip_fun_fields(const unsigned char *b, size_t len, long at, int pid_first, visit_t *v)
{
    if (pid_first) {
        at = at >= 0 ? skip_pid(b, len, (size_t)at, v) : -1;
    }
    at = at >= 0 ? skip_atom(b, len, (size_t)at, v) : -1;
    at = at >= 0 ? skip_int(b, len, (size_t)at) : -1;
    at = at >= 0 ? skip_int(b, len, (size_t)at) : -1;
    if (!pid_first) {
        at = at >= 0 ? skip_pid(b, len, (size_t)at, v) : -1;
    }
    return at;
}

/* Skips count terms from pos; -1 if any is malformed. */
static long skip_n(const unsigned char *b, size_t len, size_t pos, uint64_t count, int depth,
                   visit_t *v)
{
    /* Every term takes at least one byte: a count beyond the bytes left is a lie. */
    if (count > len - pos) {
        return -1;
    }
    for (uint64_t i = 0; i < count; i++) {
        long next = skip(b, len, pos, depth, v);
        if (next < 0) {
            return -1;
        }
        pos = (size_t)next;
    }
    return (long)pos;
}

static long skip(const unsigned char *b, size_t len, size_t pos, int depth, visit_t *v)
{
    if (depth < 0 || !HAVE(1)) {
        return -1;
    }
    unsigned char tag = b[pos];
    size_t n;
    long at;
    switch (tag) {
    case 97: /* SMALL_INTEGER_EXT */
        return HAVE(2) ? (long)(pos + 2) : -1;
    case 98: /* INTEGER_EXT */
        return HAVE(5) ? (long)(pos + 5) : -1;
    case 70: /* NEW_FLOAT_EXT */
        return HAVE(9) ? (long)(pos + 9) : -1;
    case 99: /* FLOAT_EXT: a NUL-terminated decimal text in 31 bytes */
        return HAVE(32) && memchr(b + pos + 1, 0, 31) != NULL ? (long)(pos + 32) : -1;
    case 100:
    case 115:
    case 118:
    case 119:
        return skip_atom(b, len, pos, v);
    case 106: /* NIL_EXT */
        return (long)(pos + 1);
    case 107: /* STRING_EXT */
        if (!HAVE(3)) {
            return -1;
        }
        n = be(b + pos + 1, 2);
        return HAVE(3 + n) ? (long)(pos + 3 + n) : -1;
    case 109: /* BINARY_EXT */
        if (!HAVE(5)) {
            return -1;
        }
        n = be(b + pos + 1, 4);
        return HAVE(5 + n) ? (long)(pos + 5 + n) : -1;
    case 77: /* BIT_BINARY_EXT */
        if (!HAVE(6)) {
            return -1;
        }
        n = be(b + pos + 1, 4);
        return HAVE(6 + n) && b[pos + 5] >= 1 && b[pos + 5] <= 8 ? (long)(pos + 6 + n) : -1;
    case 110: /* SMALL_BIG_EXT */
        if (!HAVE(3)) {
            return -1;
        }
        n = b[pos + 1];
        return HAVE(3 + n) && b[pos + 2] <= 1 ? (long)(pos + 3 + n) : -1;
    case 111: /* LARGE_BIG_EXT */
        if (!HAVE(6)) {
            return -1;
        }
        n = be(b + pos + 1, 4);
        return HAVE(6 + n) && b[pos + 5] <= 1 ? (long)(pos + 6 + n) : -1;
    case 104: /* SMALL_TUPLE_EXT */
        return HAVE(2) ? skip_n(b, len, pos + 2, b[pos + 1], depth - 1, v) : -1;
    case 105: /* LARGE_TUPLE_EXT */
        return HAVE(5) ? skip_n(b, len, pos + 5, be(b + pos + 1, 4), depth - 1, v) : -1;
    case 108: /* LIST_EXT: elements, then the tail */
        return HAVE(5) ? skip_n(b, len, pos + 5, (uint64_t)be(b + pos + 1, 4) + 1, depth - 1, v)
                       : -1;
    case 116: /* MAP_EXT: keys and values */
        return HAVE(5) ? skip_n(b, len, pos + 5, (uint64_t)be(b + pos + 1, 4) * 2, depth - 1, v)
                       : -1;
    case 103: /* PID_EXT: node, id, serial, creation(1) */
        at = skip_atom(b, len, pos + 1, v);
        return at >= 0 && (size_t)at + 9 <= len ? at + 9 : -1;
    case 88: /* NEW_PID_EXT: node, id, serial, creation(4) */
        at = skip_atom(b, len, pos + 1, v);
        return at >= 0 && (size_t)at + 12 <= len ? at + 12 : -1;
    case 102: /* PORT_EXT */
        at = skip_atom(b, len, pos + 1, v);
        return at >= 0 && (size_t)at + 5 <= len ? at + 5 : -1;
    case 89: /* NEW_PORT_EXT */
        at = skip_atom(b, len, pos + 1, v);
        return at >= 0 && (size_t)at + 8 <= len ? at + 8 : -1;
    case 120: /* V4_PORT_EXT */
        at = skip_atom(b, len, pos + 1, v);
        return at >= 0 && (size_t)at + 12 <= len ? at + 12 : -1;
    case 101: /* REFERENCE_EXT */
        at = skip_atom(b, len, pos + 1, v);
        return at >= 0 && (size_t)at + 5 <= len ? at + 5 : -1;
    case 114: /* NEW_REFERENCE_EXT: count(2), node, creation(1), ids */
    case 90:  /* NEWER_REFERENCE_EXT: count(2), node, creation(4), ids */
        if (!HAVE(3)) {
            return -1;
        }
        n = be(b + pos + 1, 2);
        if (n > 5) {
            return -1;
        }
        at = skip_atom(b, len, pos + 3, v);
        n = (tag == 114 ? 1 : 4) + 4 * n;
        return at >= 0 && (size_t)at + n <= len ? at + (long)n : -1;
    case 113: /* EXPORT_EXT: module, function, arity */
        at = skip_atom(b, len, pos + 1, v);
        at = at >= 0 ? skip_atom(b, len, (size_t)at, v) : -1;
        return at >= 0 && (size_t)at + 2 <= len && b[at] == 97 ? at + 2 : -1;
    case 112: { /* NEW_FUN_EXT: size(4) covers the whole fun */
        if (!HAVE(5)) {
            return -1;
        }
        size_t size = be(b + pos + 1, 4);
        if (size < 29 || !HAVE(1 + size)) {
            return -1;
        }
        size_t end = pos + 1 + size;
        uint32_t nfree = be(b + pos + 26, 4);
        at = skip_fun_fields(b, end, (long)(pos + 30), 0, v);
        at = at >= 0 ? skip_n(b, end, (size_t)at, nfree, depth - 1, v) : -1;
        return at == (long)end ? at : -1;
    }
    case 117: { /* FUN_EXT: nfree(4), pid, module, index, uniq, free variables */
        if (!HAVE(5)) {
            return -1;
        }
        at = skip_fun_fields(b, len, (long)(pos + 5), 1, v);
        return at >= 0 ? skip_n(b, len, (size_t)at, be(b + pos + 1, 4), depth - 1, v) : -1;
    }
    default: /* atom cache references, compressed terms, unknown tags */
        return -1;
    }
}

long etf_skip(const char *buf, size_t len, size_t pos, int depth)
{
    if (pos > len) {
        return -1;
    }
    return skip((const unsigned char *)buf, len, pos, depth, NULL);
}

long etf_each_atom(const char *buf, size_t len, size_t pos, int depth, etf_atom_fn atom, void *ctx)
{
    if (pos > len) {
        return -1;
    }
    visit_t v = {atom, ctx, 0};
    long end = skip((const unsigned char *)buf, len, pos, depth, &v);
    return end >= 0 && v.stopped ? -2 : end;
}

int etf_frame_ok(const char *buf, size_t len, int depth)
{
    return len >= 2 && (unsigned char)buf[0] == 131 && etf_skip(buf, len, 1, depth) == (long)len;
}
