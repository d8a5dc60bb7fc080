/*
 * A growable byte buffer with geometric growth, used to build ETF frames with
 * ei's encode functions (which write at buf + *index). Not thread-safe: one
 * owner at a time; ownership of the bytes moves with buf_steal.
 */
#ifndef PYPORT_BUF_H
#define PYPORT_BUF_H

#include <stddef.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} buf_t;

/// Initialises caller storage with room for cap bytes.
void buf_init(buf_t *b, size_t cap);

/// Frees the bytes; the buffer may be initialised again.
void buf_destroy(buf_t *b);

/// Makes room for extra more bytes after len: at least doubles the capacity,
/// or grows it to exactly what is needed when that is more.
void buf_reserve(buf_t *b, size_t extra);

/// Appends n bytes.
void buf_append(buf_t *b, const void *p, size_t n);

/// Returns the owned bytes (caller frees with mem_free) and leaves b empty.
char *buf_steal(buf_t *b, size_t *len);

#endif
