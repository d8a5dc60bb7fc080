/*
 * Guarded copies (see guard.h): one mapping, grown on demand, whose last page is
 * made unreadable; inputs are copied to end at that page. One thread only.
 */
#include "guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static char *g_base;
static size_t g_room; /* readable bytes before the guard page */

static void grow(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t room = ((n + page - 1) / page) * page;
    if (room == 0) {
        room = page;
    }
    if (g_base != NULL) {
        munmap(g_base, g_room + page);
    }
    g_base = mmap(NULL, room + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g_base == MAP_FAILED || mprotect(g_base + room, page, PROT_NONE) != 0) {
        perror("guard mmap");
        abort();
    }
    g_room = room;
}

char *guard_copy(const void *p, size_t n)
{
    if (g_base == NULL || n > g_room) {
        grow(n);
    }
    char *dst = g_base + g_room - n;
    if (n > 0) {
        memcpy(dst, p, n);
    }
    return dst;
}
