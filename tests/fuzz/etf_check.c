/*
 * Bounded ETF validation (see etf_check.h), following the external term format
 * of erts/doc: every tag the codec may meet, each length checked against the end
 * before it is used. Recursion is capped well past the codec's nesting limit.
 */
#include "etf_check.h"

#include <stdint.h>
#include <string.h>

#define ETF_CHECK_MAX_DEPTH 3000

typedef struct {
    const unsigned char *b;
    size_t len;
    size_t i;
} cursor_t;

static int take(cursor_t *c, size_t n)
{
    if (n > c->len - c->i) {
        return 0;
    }
    c->i += n;
    return 1;
}

static int u8(cursor_t *c, uint32_t *v)
{
    if (c->len - c->i < 1) {
        return 0;
    }
    *v = c->b[c->i++];
    return 1;
}

static int u16(cursor_t *c, uint32_t *v)
{
    if (c->len - c->i < 2) {
        return 0;
    }
    *v = ((uint32_t)c->b[c->i] << 8) | c->b[c->i + 1];
    c->i += 2;
    return 1;
}

static int u32(cursor_t *c, uint32_t *v)
{
    if (c->len - c->i < 4) {
        return 0;
    }
    const unsigned char *p = c->b + c->i;
    *v = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    c->i += 4;
    return 1;
}

static int term(cursor_t *c, int depth);

static int atom(cursor_t *c)
{
    uint32_t tag;
    uint32_t n;
    if (!u8(c, &tag)) {
        return 0;
    }
    switch (tag) {
    case 100: /* ATOM_EXT */
    case 118: /* ATOM_UTF8_EXT */
        return u16(c, &n) && take(c, n);
    case 115: /* SMALL_ATOM_EXT */
    case 119: /* SMALL_ATOM_UTF8_EXT */
        return u8(c, &n) && take(c, n);
    default:
        return 0;
    }
}

static int elements(cursor_t *c, uint64_t n, int depth)
{
    /* Each element takes at least one byte: a count beyond the rest is a lie. */
    if (n > c->len - c->i) {
        return 0;
    }
    for (uint64_t k = 0; k < n; k++) {
        if (!term(c, depth + 1)) {
            return 0;
        }
    }
    return 1;
}

static int new_fun(cursor_t *c, int depth)
{
    uint32_t size;
    size_t start = c->i;
    uint32_t arity;
    uint32_t numfree;
    if (!u32(c, &size) || size < 4 || size - 4 > c->len - c->i) {
        return 0;
    }
    size_t end = start + size;
    if (!u8(c, &arity) || !take(c, 16 + 4) || !u32(c, &numfree) || !atom(c) ||
        !term(c, depth + 1) || !term(c, depth + 1) || !term(c, depth + 1) ||
        !elements(c, numfree, depth)) {
        return 0;
    }
    return c->i == end;
}

static int term(cursor_t *c, int depth)
{
    uint32_t tag;
    uint32_t n;
    if (depth > ETF_CHECK_MAX_DEPTH || !u8(c, &tag)) {
        return 0;
    }
    switch (tag) {
    case 97: /* SMALL_INTEGER_EXT */
        return take(c, 1);
    case 98: /* INTEGER_EXT */
        return take(c, 4);
    case 99: /* FLOAT_EXT: text read with sscanf, so it must end inside its 31 bytes */
        return c->len - c->i >= 31 && memchr(c->b + c->i, 0, 31) != NULL && take(c, 31);
    case 70: /* NEW_FLOAT_EXT */
        return take(c, 8);
    case 100:
    case 115:
    case 118:
    case 119:
        c->i--;
        return atom(c);
    case 109: /* BINARY_EXT */
        return u32(c, &n) && take(c, n);
    case 77: /* BIT_BINARY_EXT */
        return u32(c, &n) && take(c, 1) && take(c, n);
    case 106: /* NIL_EXT */
        return 1;
    case 107: /* STRING_EXT */
        return u16(c, &n) && take(c, n);
    case 108: /* LIST_EXT: elements, then the tail */
        return u32(c, &n) && elements(c, n, depth) && term(c, depth + 1);
    case 104: /* SMALL_TUPLE_EXT */
        return u8(c, &n) && elements(c, n, depth);
    case 105: /* LARGE_TUPLE_EXT */
        return u32(c, &n) && elements(c, n, depth);
    case 116: /* MAP_EXT */
        return u32(c, &n) && elements(c, 2 * (uint64_t)n, depth);
    case 110: /* SMALL_BIG_EXT */
        return u8(c, &n) && take(c, 1) && take(c, n);
    case 111: /* LARGE_BIG_EXT */
        return u32(c, &n) && take(c, 1) && take(c, n);
    case 103: /* PID_EXT */
        return atom(c) && take(c, 4 + 4 + 1);
    case 88: /* NEW_PID_EXT */
        return atom(c) && take(c, 4 + 4 + 4);
    case 102: /* PORT_EXT */
        return atom(c) && take(c, 4 + 1);
    case 89: /* NEW_PORT_EXT */
        return atom(c) && take(c, 4 + 4);
    case 120: /* V4_PORT_EXT */
        return atom(c) && take(c, 8 + 4);
    case 101: /* REFERENCE_EXT */
        return atom(c) && take(c, 4 + 1);
    case 114: /* NEW_REFERENCE_EXT */
        return u16(c, &n) && atom(c) && take(c, 1) && take(c, 4 * (size_t)n);
    case 90: /* NEWER_REFERENCE_EXT */
        return u16(c, &n) && atom(c) && take(c, 4) && take(c, 4 * (size_t)n);
    case 113: /* EXPORT_EXT */
        return atom(c) && atom(c) && term(c, depth + 1);
    case 112: /* NEW_FUN_EXT */
        return new_fun(c, depth);
    default:
        return 0;
    }
}

int etf_well_formed(const unsigned char *buf, size_t len)
{
    cursor_t c = {buf, len, 0};
    uint32_t version;
    if (!u8(&c, &version) || version != 131 || !term(&c, 0)) {
        return 0;
    }
    return c.i == len;
}
