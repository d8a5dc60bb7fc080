/*
 * The port's heap policy (see heap.h). Threading: heap_init runs before any
 * thread and before Python; the rest runs on the Python thread (g_dirty is only
 * read and written there).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "heap.h"

#include <malloc.h>
#include <stdlib.h>

/* Free memory at the top of the heap kept while requests come: enough for the
   request frame, the bytes object and the reply frame of a 64 MiB binary, so
   a run of large requests reuses the same pages instead of faulting fresh ones
   in. */
#define HEAP_TRIM_THRESHOLD (256 * 1024 * 1024)
/* Idle this long, the free memory goes back to the kernel. */
#define HEAP_IDLE_MS 2000

static int g_dirty; /* work ran since the last trim */

static void *arena_alloc(void *ctx, size_t size)
{
    (void)ctx;
    return malloc(size);
}

static void arena_free(void *ctx, void *p, size_t size)
{
    (void)ctx;
    (void)size;
    free(p);
}

void heap_init(void)
{
    /* No block gets a mapping of its own: glibc caps the mmap threshold at
       32 MiB, and above it every large frame buffer or bytes object would be a
       fresh mapping whose every page faults in (and is unmapped at free). From
       the heap, a freed block is reused by the next request. */
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD);
    /* CPython's object arenas (256 KiB) from malloc rather than from their own
       mmap: a freed arena is reused by the next request without page faults. */
    PyObjectArenaAllocator arenas = {NULL, arena_alloc, arena_free};
    PyObject_SetArenaAllocator(&arenas);
}

void heap_note_work(void)
{
    g_dirty = 1;
}

int heap_wait_ms(void)
{
    return g_dirty ? HEAP_IDLE_MS : -1;
}

void heap_idle(void)
{
    g_dirty = 0;
    malloc_trim(0);
}
