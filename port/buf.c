/*
 * Growable byte buffer (see buf.h). Growth at least doubles, so building a frame
 * of n bytes costs O(n) whatever the number of appends; one reservation larger
 * than twice the capacity (a large binary) gets exactly what it asks for, not
 * up to twice that. Single owner, no locking.
 */
#include "buf.h"

#include <string.h>

#include "memory.h"

void buf_init(buf_t *b, size_t cap)
{
    b->cap = cap ? cap : 64;
    b->data = mem_alloc(b->cap);
    b->len = 0;
}

void buf_destroy(buf_t *b)
{
    mem_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_reserve(buf_t *b, size_t extra)
{
    size_t need = b->len + extra;
    if (need <= b->cap) {
        return;
    }
    size_t cap = b->cap ? 2 * b->cap : 64;
    if (cap < need) {
        cap = need;
    }
    b->data = mem_realloc(b->data, cap);
    b->cap = cap;
}

void buf_append(buf_t *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

char *buf_steal(buf_t *b, size_t *len)
{
    char *p = b->data;
    *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
