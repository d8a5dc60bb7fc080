/*
 * The keeper process (see keeper.h). It closes every fd but the protocol read
 * end and its end of a watch pipe, ignores the signals meant for the port, and
 * exits KEEPER_LINGER_MS after the watch pipe reaches EOF (the port process died:
 * its end closed with it). Only async-signal-safe calls after fork.
 */
#define _GNU_SOURCE
#include "keeper.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "control.h"

/* Long enough for the runtime to read the dead port's EOF and exit status. */
#define KEEPER_LINGER_MS 200

static void keep(int in_fd, int watch_fd)
{
    prctl(PR_SET_NAME, "pyport-keeper");
    signal(SIGINT, SIG_IGN);
    signal(CTL_SIGNAL, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    /* The two fds kept moved to 0 and 1, then one close_range for the rest
       (a loop over 1024 fds where the kernel has no close_range). */
    if (dup2(in_fd, 0) == 0 && dup2(watch_fd, 1) == 1) {
        in_fd = 0;
        watch_fd = 1;
    }
    if (syscall(SYS_close_range, 2U, ~0U, 0U) != 0) {
        for (int fd = 2; fd < 1024; fd++) {
            if (fd != in_fd && fd != watch_fd) {
                close(fd);
            }
        }
    }
    char c;
    while (read(watch_fd, &c, 1) != 0) {
        /* EINTR or a stray byte: keep waiting for EOF */
    }
    struct timespec t = {0, KEEPER_LINGER_MS * 1000000L};
    nanosleep(&t, NULL);
    _exit(0);
}

int keeper_start(int in_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        keep(in_fd, p[0]);
    }
    close(p[0]);
    return p[1];
}
