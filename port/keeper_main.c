/*
 * pyport-keeper: the keeper program (keeper.h), spawned by the port before
 * any of its threads exists. Its fd 0 is the read end of the pipe from Erlang,
 * its fd 1 the read end of a watch pipe whose write end only the port holds.
 * It closes every other fd, ignores the signals meant for the port, and exits
 * KEEPER_LINGER_MS after the watch pipe reaches EOF (the port process died: its
 * end closed with it).
 *
 * Threading rule: one thread, no Python, no libuv.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "control.h"

/* Long enough for the runtime to read the dead port's EOF and exit status. */
#define KEEPER_LINGER_MS 200

int main(void)
{
    signal(SIGINT, SIG_IGN);
    signal(CTL_SIGNAL, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    /* One close_range for the rest (a loop over 1024 fds where the kernel has
       none). */
    if (syscall(SYS_close_range, 2U, ~0U, 0U) != 0) {
        for (int fd = 2; fd < 1024; fd++) {
            close(fd);
        }
    }
    char c;
    for (;;) {
        ssize_t n = read(1, &c, 1);
        if (n == 0 || (n < 0 && errno != EINTR)) {
            break; /* EOF: the port died */
        }
        /* EINTR or a stray byte: keep waiting for EOF */
    }
    struct timespec t = {0, KEEPER_LINGER_MS * 1000000L};
    nanosleep(&t, NULL);
    return 0;
}
