/*
 * Starting the keeper (see keeper.h): posix_spawn of the pyport-keeper program
 * (keeper_main.c) beside the port binary, with the protocol read end as its fd 0
 * and the read end of a watch pipe as its fd 1. A spawn shares nothing with the
 * port afterwards: a fork would leave every page the port had mapped shared
 * copy-on-write, and each first write by Python would then fault and flush the
 * TLB for as long as the keeper lives.
 *
 * Threading rule: main thread only, before any other thread exists.
 */
#define _GNU_SOURCE
#include "keeper.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define KEEPER_PROGRAM "pyport-keeper"

/* The keeper's path: pyport-keeper in the port binary's directory. */
static int keeper_path(char *out, size_t n)
{
    ssize_t len = readlink("/proc/self/exe", out, n - sizeof KEEPER_PROGRAM - 1);
    if (len <= 0) {
        return -1;
    }
    out[len] = '\0';
    char *slash = strrchr(out, '/');
    if (slash == NULL) {
        return -1;
    }
    memcpy(slash + 1, KEEPER_PROGRAM, sizeof KEEPER_PROGRAM);
    return 0;
}

int keeper_start(int in_fd)
{
    char path[4096];
    if (keeper_path(path, sizeof path) < 0) {
        return -1;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none;
    sigemptyset(&none);
    int ok = posix_spawn_file_actions_init(&fa) == 0;
    if (!ok) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (posix_spawnattr_init(&attr) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        close(p[0]);
        close(p[1]);
        return -1;
    }
    /* dup2 clears close-on-exec on the copies; the keeper closes every other
       inherited fd itself (keeper_main.c). */
    ok = posix_spawn_file_actions_adddup2(&fa, in_fd, 0) == 0 &&
         posix_spawn_file_actions_adddup2(&fa, p[0], 1) == 0 &&
         posix_spawnattr_setsigmask(&attr, &none) == 0 &&
         posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK) == 0;
    pid_t pid;
    char *argv[] = {KEEPER_PROGRAM, NULL};
    char *envp[] = {NULL};
    if (ok) {
        ok = posix_spawn(&pid, path, &fa, &attr, argv, envp) == 0;
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    close(p[0]);
    if (!ok) {
        close(p[1]);
        return -1;
    }
    return p[1];
}
