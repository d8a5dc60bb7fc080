/*
 * pyport-attach: the port program of a context forked from a warm template
 * (template.h). Usage: pyport-attach SOCKET [pyport options...]; the Erlang
 * application opens it ahead of demand as `pyport-attach SOCKET
 * --args-on-stdin', and the context's options follow as the port's first
 * frame, read by the forked child (docs/protocol.md, "Warm template").
 *
 * It hands its fds 0, 1 and 2 (the pipes from and to Erlang, and the BEAM's
 * stderr) and its options to the template, which forks the context; the
 * context then talks to Erlang directly on those pipes. This program stays as
 * the process Erlang sees: it holds the read end of stdin while the context
 * lives (as the keeper does for a cold context, so a write right after the
 * context died is not an EPIPE), dies with the BEAM (PR_SET_PDEATHSIG), and
 * when the template reports the context's wait status it exits the same way
 * (same exit code, or same signal), so Erlang's exit_status is the context's.
 * If the template dies first, it waits for the context's end through a pidfd
 * and exits with PYPORT_EXIT_LOST (status unknown).
 *
 * Threading rule: one thread, no Python, no libuv; a lingering copy (the
 * keeper's linger) uses only async-signal-safe calls after its fork.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fdpass.h"
#include "pyport/wire.h"

/* Same linger as the keeper's: long enough for the runtime to read the exit. */
#define ATTACH_LINGER_MS 200
#define ATTACH_MAX_REQUEST 65536

static int connect_template(const char *path)
{
    struct sockaddr_un a;
    if (strlen(path) >= sizeof a.sun_path) {
        fprintf(stderr, "pyport-attach: socket path too long: %s\n", path);
        exit(PYPORT_EXIT_USAGE);
    }
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        fprintf(stderr, "pyport-attach: cannot reach the template at %s: %s\n", path,
                strerror(errno));
        exit(PYPORT_EXIT_IO);
    }
    return fd;
}

/* The options, NUL-separated, with fds 0, 1 and 2. */
static void send_request(int fd, int argc, char **argv)
{
    static char buf[ATTACH_MAX_REQUEST];
    size_t len = 0;
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(argv[i]) + 1;
        if (len + n > sizeof buf) {
            fprintf(stderr, "pyport-attach: command line too long\n");
            exit(PYPORT_EXIT_USAGE);
        }
        memcpy(buf + len, argv[i], n);
        len += n;
    }
    if (len == 0) {
        buf[len++] = '\0'; /* a message of 0 bytes would read as EOF */
    }
    const int fds[3] = {0, 1, 2};
    if (fdpass_send(fd, buf, len, fds) < 0) {
        fprintf(stderr, "pyport-attach: cannot hand over to the template: %s\n", strerror(errno));
        exit(PYPORT_EXIT_IO);
    }
}

/* One {kind, value} message from the template; 0 on EOF. */
static int receive(int fd, int32_t msg[2])
{
    for (;;) {
        ssize_t n = recv(fd, msg, 2 * sizeof(int32_t), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return n == (ssize_t)(2 * sizeof(int32_t));
    }
}

/* Keeps stdin open a little longer in a copy of this process, then exits. */
static void linger_and_exit(int code, int sig)
{
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec t = {0, ATTACH_LINGER_MS * 1000000L};
        nanosleep(&t, NULL);
        _exit(0);
    }
    if (sig != 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        signal(sig, SIG_DFL);
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, sig);
        sigprocmask(SIG_UNBLOCK, &s, NULL);
        raise(sig);
        code = 128 + sig; /* a signal that does not kill (e.g. SIGCHLD) */
    }
    _exit(code);
}

/* The template died before the context: wait for the context's own end. */
static void wait_unknown(pid_t pid)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd >= 0) {
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        while (poll(&p, 1, -1) < 0 && errno == EINTR) {
        }
    } else {
        while (kill(pid, 0) == 0 || errno == EPERM) {
            struct timespec t = {0, 50 * 1000000L};
            nanosleep(&t, NULL);
        }
    }
    linger_and_exit(PYPORT_EXIT_LOST, 0);
}

int main(int argc, char **argv)
{
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        return PYPORT_EXIT_OK;
    }
    prctl(PR_SET_NAME, "pyport-attach");
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        fprintf(stderr, "usage: pyport-attach SOCKET [pyport options...]\n"
                        "started by the pyport Erlang application for a context forked from a "
                        "warm template\n");
        return PYPORT_EXIT_USAGE;
    }
    int fd = connect_template(argv[1]);
    send_request(fd, argc - 2, argv + 2);
    /* The context writes to Erlang itself; this copy of stdout is not needed. */
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 1);
        close(null);
    }
    int32_t msg[2];
    if (!receive(fd, msg) || msg[0] != 0) {
        fprintf(stderr, "pyport-attach: the template closed the connection\n");
        return PYPORT_EXIT_IO;
    }
    if (msg[1] <= 0) {
        fprintf(stderr, "pyport-attach: the template cannot fork: %s\n", strerror(-msg[1]));
        return PYPORT_EXIT_IO;
    }
    pid_t pid = msg[1];
    if (!receive(fd, msg) || msg[0] != 1) {
        wait_unknown(pid);
    }
    int status = msg[1];
    if (WIFSIGNALED(status)) {
        linger_and_exit(0, WTERMSIG(status));
    }
    linger_and_exit(WIFEXITED(status) ? WEXITSTATUS(status) : PYPORT_EXIT_LOST, 0);
    return 0;
}
