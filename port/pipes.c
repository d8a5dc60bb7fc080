/*
 * Growing the protocol pipes (see pipes.h). Threading: any thread; the capacity
 * per direction is an atomic, and two threads growing the same pipe at once only
 * repeat an idempotent fcntl. The pipe-max-size limit is read once, on first use.
 */
#define _GNU_SOURCE
#include "pipes.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#define PIPES_DEFAULT (64 * 1024)
#define PIPES_FALLBACK_MAX (1024 * 1024)

static int g_fd[2] = {-1, -1};
static atomic_size_t g_cap[2] = {PIPES_DEFAULT, PIPES_DEFAULT};
static atomic_size_t g_max;   /* 0 until read */
static atomic_int g_stuck[2]; /* growing failed once: never tried again */

void pipes_init(pipes_dir_t dir, int fd)
{
    g_fd[dir] = fd;
    int cur = fcntl(fd, F_GETPIPE_SZ);
    atomic_store(&g_cap[dir], cur > 0 ? (size_t)cur : PIPES_DEFAULT);
}

static size_t max_size(void)
{
    size_t m = atomic_load(&g_max);
    if (m != 0) {
        return m;
    }
    m = PIPES_FALLBACK_MAX;
    FILE *f = fopen("/proc/sys/fs/pipe-max-size", "re");
    if (f != NULL) {
        unsigned long v = 0;
        if (fscanf(f, "%lu", &v) == 1 && v >= PIPES_DEFAULT) {
            m = v;
        }
        fclose(f);
    }
    atomic_store(&g_max, m);
    return m;
}

void pipes_grow(pipes_dir_t dir, size_t want)
{
    size_t cap = atomic_load(&g_cap[dir]);
    if (want <= cap || g_fd[dir] < 0 || atomic_load(&g_stuck[dir])) {
        return;
    }
    size_t limit = max_size();
    if (cap >= limit) {
        return;
    }
    size_t size = cap;
    while (size < want && size < limit) {
        size *= 2;
    }
    if (size > limit) {
        size = limit;
    }
    int got = fcntl(g_fd[dir], F_SETPIPE_SZ, (int)size);
    if (got > 0) {
        atomic_store(&g_cap[dir], (size_t)got);
    } else {
        /* Over the user's pipe-page budget, or not a pipe: stay as we are and
           stop trying. */
        atomic_store(&g_stuck[dir], 1);
    }
}

size_t pipes_capacity(pipes_dir_t dir)
{
    return atomic_load(&g_cap[dir]);
}
