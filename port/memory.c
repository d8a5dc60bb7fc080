/*
 * Allocation that exits cleanly on out-of-memory (failure class 2 in
 * docs/architecture.md). Thread-safe.
 */
#include "memory.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exits.h"
#include "log.h"
#include "pyport/wire.h"

static void oom(size_t n)
{
    log_error("out of memory allocating %zu bytes", n);
    exit_now(PYPORT_EXIT_OOM);
}

void *mem_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        oom(n);
    }
    return p;
}

void *mem_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL) {
        oom(count * size);
    }
    return p;
}

void *mem_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        oom(n);
    }
    return q;
}

void *mem_dup(const void *p, size_t n)
{
    void *q = mem_alloc(n);
    if (n > 0) {
        memcpy(q, p, n);
    }
    return q;
}

void mem_free(void *p)
{
    free(p);
}
