/*
 * The port's heap policy (see heap.h). Threading: heap_init runs before any
 * thread and before Python; heap_prefault on any one thread, before or while
 * Python starts; the rest runs on the Python thread (g_dirty is only read and
 * written there).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "heap.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

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

#ifdef PYPORT_STATIC_LIBPYTHON
/* The program's own data and bss, libpython's among them (linker symbols). */
extern char __data_start[], _end[];

/* Python's start writes to most pages of its static data (type objects, the
   runtime state), each a copy-on-write fault; one madvise call fills them all
   in for a fraction of that. A kernel without MADV_POPULATE_WRITE (before
   5.14) refuses it, and the pages fault in as they are touched. */
void heap_prefault(void)
{
    uintptr_t from = (uintptr_t)__data_start & ~(uintptr_t)4095;
    uintptr_t to = ((uintptr_t)_end + 4095) & ~(uintptr_t)4095;
    (void)madvise((void *)from, to - from, MADV_POPULATE_WRITE);
}
#else
void heap_prefault(void)
{
}
#endif

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
