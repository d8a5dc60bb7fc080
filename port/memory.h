/*
 * Allocation that never returns NULL: on failure the port logs and exits with
 * PYPORT_EXIT_OOM (failure class 2), so callers need no error paths for memory.
 * Thread-safe: plain wrappers over malloc.
 */
#ifndef PYPORT_MEMORY_H
#define PYPORT_MEMORY_H

#include <stddef.h>

/// Returns owned memory of n bytes (n == 0 allowed); exits the process on failure.
void *mem_alloc(size_t n);

/// Returns owned zeroed memory for count elements of size bytes; exits on failure.
void *mem_calloc(size_t count, size_t size);

/// Resizes owned memory p to n bytes and returns it; exits on failure.
void *mem_realloc(void *p, size_t n);

/// Returns an owned copy of n bytes at p.
void *mem_dup(const void *p, size_t n);

/// Frees memory from the functions above; NULL is fine.
void mem_free(void *p);

#endif
