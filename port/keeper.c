/*
 * The keeper process (see keeper.h). It is the port program itself, started
 * again with posix_spawn (a vfork and an exec: nothing of the port's memory is
 * shared copy-on-write, so the port's start-up writes cost no page copies) and
 * the first argument "--keeper". It holds only the protocol read end (fd 0) and
 * its end of a watch pipe (fd 1), ignores the signals meant for the port, and
 * exits KEEPER_LINGER_MS after the watch pipe reaches EOF (the port process died:
 * its end closed with it). Threading: keeper_start runs before any thread exists;
 * keeper_main is the whole of the keeper process, single-threaded.
 */
#define _GNU_SOURCE
#include "keeper.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "control.h"

/* Long enough for the runtime to read the dead port's EOF and exit status. */
#define KEEPER_LINGER_MS 200
#define KEEPER_ARG "--keeper"

extern char **environ;

int keeper_requested(int argc, char **argv)
{
    return argc == 2 && strcmp(argv[1], KEEPER_ARG) == 0;
}

int keeper_main(void)
{
    prctl(PR_SET_NAME, "pyport-keeper");
    signal(SIGINT, SIG_IGN);
    signal(CTL_SIGNAL, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* fd 0: the protocol read end, fd 1: the watch pipe; nothing else. */
    if (syscall(SYS_close_range, 2U, ~0U, 0U) != 0) {
        for (int fd = 2; fd < 1024; fd++) {
            close(fd);
        }
    }
    char c;
    while (read(1, &c, 1) != 0) {
        /* EINTR or a stray byte: keep waiting for EOF */
    }
    struct timespec t = {0, KEEPER_LINGER_MS * 1000000L};
    nanosleep(&t, NULL);
    return 0;
}

int keeper_start(int in_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    /* Every signal blocked until the keeper has ignored the port's ones. */
    sigset_t all;
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
    posix_spawn_file_actions_adddup2(&fa, p[0], 1);
    char *argv[] = {"pyport-keeper", KEEPER_ARG, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(p[0]);
    if (rc != 0) {
        close(p[1]);
        return -1;
    }
    return p[1];
}
