/*
 * The warm template's fork server (see template.h).
 *
 * Threading rule: one thread. template_serve runs on the main thread, holding
 * the GIL, before pyport starts any other thread (the loop thread, the keeper,
 * the Python thread's helpers all start after the fork, in the child). The
 * SIGCHLD handler only writes a byte to a non-blocking pipe. A parked spare is
 * a forked copy of this one thread, blocked in recvmsg until it is handed a
 * context's fds, and then (a pre-opened attach) in poll/read on its stdin
 * until the context's options come.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "template.h"
#include "fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ei.h>

#include "buf.h"
#include "convert.h"
#include "envs.h"
#include "log.h"
#include "memory.h"
#include "ops.h"
#include "pyport/wire.h"

/* An attach request: its command line, NUL-separated, at most this long. */
#define TMPL_MAX_REQUEST 65536
/* Preload code larger than this is refused. */
#define TMPL_MAX_PRELOAD (64u << 20)
/* After a spare died while parked (someone killed it), the next is forked
   this much later, so a spare killed as soon as it is forked is no fork loop. */
#define TMPL_SPARE_RETRY_MS 1000
/* After a spare was handed a request, the next is forked this much later:
   forking and warming it up take a CPU for tens of milliseconds, which the
   new context needs for its own start and first answer. */
#define TMPL_SPARE_DELAY_MS 30

/* The request of a pre-opened pyport-attach: its context's options come later,
   as the first frame on its stdin (deferred_argv). */
#define TMPL_DEFERRED "--args-on-stdin"

typedef struct {
    int fd;     /* the connection from a pyport-attach program */
    pid_t pid;  /* its child, 0 while none was forked */
    pid_t peer; /* the attach program (SO_PEERCRED) */
} conn_t;

static int g_sig_pipe[2] = {-1, -1};
static conn_t *g_conns; /* owned */
static size_t g_nconns;
static char g_dir[PATH_MAX];
static char g_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
/* The spare: a child forked ahead of demand, parked until a request hands it
   its fds (then it is that request's context and the next spare is forked). */
static pid_t g_spare_pid;   /* 0 while none is parked */
static int g_spare_fd = -1; /* the template's end of the spare's socketpair */
static int64_t g_spare_due; /* monotonic ms from which a missing spare is forked */

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void on_sigchld(int sig)
{
    (void)sig;
    int saved = errno;
    char c = 0;
    ssize_t n = write(g_sig_pipe[1], &c, 1);
    (void)n;
    errno = saved;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n)
{
    char *b = p;
    while (n > 0) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return -1;
        }
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* One {packet, 4} frame "<kind> <text>" to Erlang. */
static void tell(int ctl_out, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void tell(int ctl_out, const char *kind, const char *fmt, ...)
{
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    size_t tlen = (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
    size_t klen = strlen(kind);
    uint32_t len = (uint32_t)(klen + 1 + tlen);
    unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                            (unsigned char)(len >> 8), (unsigned char)len};
    if (write_all(ctl_out, hdr, 4) < 0 || write_all(ctl_out, kind, klen) < 0 ||
        write_all(ctl_out, " ", 1) < 0 || write_all(ctl_out, text, tlen) < 0) {
        log_error("template: cannot write to Erlang: %s", strerror(errno));
    }
}

/* The pending Python exception as "Type: message" in buf (cleared). */
static void exception_text(char *buf, size_t n)
{
    PyObject *type, *value, *tb; // owned
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    const char *tname = type != NULL ? ((PyTypeObject *)type)->tp_name : "Error";
    PyObject *s = value != NULL ? PyObject_Str(value) : NULL; // owned
    const char *msg = s != NULL ? PyUnicode_AsUTF8(s) : NULL;
    snprintf(buf, n, "%s: %s", tname, msg != NULL ? msg : "");
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
}

/* Reads the preload frame and runs it. 0, or -1 after telling Erlang why. */
static int run_preload(int ctl_in, int ctl_out)
{
    unsigned char hdr[4];
    if (read_all(ctl_in, hdr, 4) < 0) {
        return -1; /* Erlang went away */
    }
    uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (len > TMPL_MAX_PRELOAD) {
        tell(ctl_out, "error", "preload code of %u bytes is too large", len);
        return -1;
    }
    char *code = mem_alloc(len + 1); // owned
    if (read_all(ctl_in, code, len) < 0) {
        mem_free(code);
        return -1;
    }
    code[len] = '\0';
    int rc = 0;
    if (len > 0) {
        /* pyport's writers send output frames, which only a context can: while
           the preload runs, sys.stdout and sys.stderr write to the stderr the
           template was started with (the BEAM's). */
        PyObject *out = PySys_GetObject("stdout"); // borrowed
        PyObject *err = PySys_GetObject("stderr"); // borrowed
        Py_XINCREF(out);                           // owned from here
        Py_XINCREF(err);                           // owned from here
        PySys_SetObject("stdout", PySys_GetObject("__stderr__"));
        PySys_SetObject("stderr", PySys_GetObject("__stderr__"));
        PyObject *text = PyUnicode_DecodeUTF8(code, len, "strict"); // owned
        rc = text != NULL ? op_preload(text) : -1;
        Py_XDECREF(text);
        char why[2048];
        if (rc < 0) {
            exception_text(why, sizeof why);
        }
        PyObject *fl = PyObject_CallMethod(PySys_GetObject("__stderr__"), "flush", NULL); // owned
        if (fl == NULL) {
            PyErr_Clear();
        }
        Py_XDECREF(fl);
        PySys_SetObject("stdout", out);
        PySys_SetObject("stderr", err);
        Py_XDECREF(out);
        Py_XDECREF(err);
        if (rc < 0) {
            tell(ctl_out, "error", "preload failed: %s", why);
        }
    }
    mem_free(code);
    return rc;
}

/* _pyport.fork_check(): refuses (-1) a template with Python threads running,
   passes on its warnings (native threads, sockets, an asyncio loop). */
static int check_fork_safety(int ctl_out)
{
    PyObject *helpers = PyImport_ImportModule("_pyport"); // owned
    PyObject *r =
        helpers != NULL ? PyObject_CallMethod(helpers, "fork_check", NULL) : NULL; // owned
    Py_XDECREF(helpers);
    if (r == NULL || !PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2) {
        char why[2048];
        if (PyErr_Occurred()) {
            exception_text(why, sizeof why);
        } else {
            snprintf(why, sizeof why, "fork_check returned no pair");
        }
        Py_XDECREF(r);
        tell(ctl_out, "error", "fork check failed: %s", why);
        return -1;
    }
    int rc = 0;
    for (Py_ssize_t k = 0; k < 2; k++) {
        PyObject *list = PyTuple_GET_ITEM(r, k); // borrowed
        Py_ssize_t n = PyList_Check(list) ? PyList_GET_SIZE(list) : 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            const char *s = PyUnicode_AsUTF8(PyList_GET_ITEM(list, i));
            if (s == NULL) {
                PyErr_Clear();
                continue;
            }
            tell(ctl_out, k == 0 ? "error" : "warning", "%s", s);
            if (k == 0) {
                rc = -1;
            }
        }
    }
    Py_DECREF(r);
    return rc;
}

/* A private directory (0700) with the socket in it. -1 after telling Erlang. */
static int listen_socket(int ctl_out)
{
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0' || strlen(tmp) > 60) {
        tmp = "/tmp";
    }
    snprintf(g_dir, sizeof g_dir, "%s/pyport-tmpl-XXXXXX", tmp);
    if (mkdtemp(g_dir) == NULL) {
        tell(ctl_out, "error", "cannot create a directory in %s: %s", tmp, strerror(errno));
        g_dir[0] = '\0';
        return -1;
    }
    if (strlen(g_dir) + 3 > sizeof g_path) {
        tell(ctl_out, "error", "socket path too long in %s", g_dir);
        return -1;
    }
    memcpy(g_path, g_dir, strlen(g_dir));
    memcpy(g_path + strlen(g_dir), "/s", 3);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, g_path, strlen(g_path) + 1);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 128) < 0) {
        tell(ctl_out, "error", "cannot listen on %s: %s", g_path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

static void cleanup_socket(void)
{
    if (g_dir[0] != '\0') {
        unlink(g_path);
        rmdir(g_dir);
    }
}

static void drop_conn(size_t i)
{
    close(g_conns[i].fd);
    g_conns[i] = g_conns[--g_nconns];
}

/* Only a process of our own user may ask for a fork: its pid, or 0. */
static pid_t same_user(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    int ok = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == getuid();
    return ok ? (cred.pid > 0 ? cred.pid : 1) : 0;
}

static void accept_all(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            return; /* EAGAIN, or a connection that went away */
        }
        pid_t peer = same_user(fd);
        if (peer == 0) {
            log_warn("template: refused a connection from another user");
            close(fd);
            continue;
        }
        g_conns = mem_realloc(g_conns, (g_nconns + 1) * sizeof *g_conns);
        g_conns[g_nconns++] = (conn_t){.fd = fd, .pid = 0, .peer = peer};
    }
}

/* Tells the attach program of a child its wait status, then forgets it. */
static void reap(void)
{
    char drain[64];
    while (read(g_sig_pipe[0], drain, sizeof drain) > 0) {
    }
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) {
            return;
        }
        if (pid == g_spare_pid) {
            log_warn("template: the spare %d died while parked (status %d)", (int)pid, status);
            close(g_spare_fd);
            g_spare_fd = -1;
            g_spare_pid = 0;
            g_spare_due = now_ms() + TMPL_SPARE_RETRY_MS;
            continue;
        }
        for (size_t i = 0; i < g_nconns; i++) {
            if (g_conns[i].pid == pid) {
                int32_t msg[2] = {1, status};
                ssize_t n = send(g_conns[i].fd, msg, sizeof msg, MSG_NOSIGNAL);
                (void)n;
                drop_conn(i);
                break;
            }
        }
    }
}

/* In a forked child: none of the template's fds stay open (a child holding
   one would keep another's connection, or Erlang's pipe, from closing). */
static void close_template_fds(int ctl_in, int ctl_out, int lfd)
{
    signal(SIGCHLD, SIG_DFL);
    close(g_sig_pipe[0]);
    close(g_sig_pipe[1]);
    close(ctl_in);
    close(ctl_out);
    close(lfd);
    if (g_spare_fd >= 0) {
        close(g_spare_fd);
        g_spare_fd = -1;
    }
    g_spare_pid = 0;
    for (size_t i = 0; i < g_nconns; i++) {
        close(g_conns[i].fd);
    }
    mem_free(g_conns);
    g_conns = NULL;
    g_nconns = 0;
}

/* The request's fds as the child's 0, 1 and 2. */
static void take_fds(const int fds[3])
{
    for (int i = 0; i < 3; i++) {
        if (dup2(fds[i], i) < 0) {
            _exit(PYPORT_EXIT_IO);
        }
    }
    for (int i = 0; i < 3; i++) {
        if (fds[i] > 2) {
            close(fds[i]);
        }
    }
}

/* Splits a request "arg\0arg\0..." into an owned argv with argv[0] "pyport". */
static void request_argv(const char *buf, size_t len, int *argc, char ***argv)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++) {
        n += buf[i] == '\0';
    }
    char **v = mem_calloc(n + 2, sizeof *v); // owned, with the strings
    char *copy = mem_alloc(len + 1);         // owned by v (freed never: process lifetime)
    memcpy(copy, buf, len);
    copy[len] = '\0';
    int c = 0;
    v[c++] = "pyport";
    for (size_t i = 0; i < len;) {
        v[c++] = copy + i;
        i += strlen(copy + i) + 1;
    }
    v[c] = NULL;
    *argc = c;
    *argv = v;
}

/* A request of a pre-opened attach: TMPL_DEFERRED as it came from the attach
   program, or as the template hands it on, with the attach program's pid
   ("--args-on-stdin\0<pid>\0"). */
static int is_deferred(const char *buf, size_t len)
{
    return len >= sizeof TMPL_DEFERRED && memcmp(buf, TMPL_DEFERRED, sizeof TMPL_DEFERRED) == 0;
}

/* Waits until stdin has data (or EOF); exits if the attach program `peer'
   dies first: the Erlang side of a parked port whose attach was killed keeps
   its end of stdin open until the port closes, which it does only once this
   process (which holds stdout) is gone. */
static void await_stdin(pid_t peer)
{
    int pfd = peer > 0 ? (int)syscall(SYS_pidfd_open, peer, 0) : -1;
    if (pfd < 0 && peer > 0 && errno == ESRCH) {
        _exit(PYPORT_EXIT_OK);
    }
    struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = pfd, .events = POLLIN}};
    for (;;) {
        int n = poll(p, pfd >= 0 ? 2 : 1, -1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 || p[0].revents != 0) {
            break;
        }
        if (p[1].revents != 0) {
            _exit(PYPORT_EXIT_OK);
        }
    }
    if (pfd >= 0) {
        close(pfd);
    }
}

/* In the child of a pre-opened attach program, with its fds as 0-2: the
   command line from the first frame on stdin (PYPORT_ATTACH_ARGS_TAG, then
   the options NUL-terminated), read byte-exact so the protocol that follows
   stays in the pipe. Exits if stdin closes first (the port was closed while
   parked), or on a frame that is not one. */
static void deferred_argv(pid_t peer, int *argc, char ***argv)
{
    await_stdin(peer);
    unsigned char hdr[PYPORT_FRAME_HEADER_BYTES];
    if (read_all(0, hdr, sizeof hdr) < 0) {
        _exit(PYPORT_EXIT_OK);
    }
    uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (len < 1 || len > PYPORT_ATTACH_MAX_ARGS) {
        fprintf(stderr, "pyport: a pre-opened context's first frame is not its options\n");
        _exit(PYPORT_EXIT_USAGE);
    }
    char *buf = mem_alloc(len); // owned
    if (read_all(0, buf, len) < 0) {
        _exit(PYPORT_EXIT_OK);
    }
    if ((unsigned char)buf[0] != PYPORT_ATTACH_ARGS_TAG || buf[len - 1] != '\0') {
        fprintf(stderr, "pyport: a pre-opened context's first frame is not its options\n");
        _exit(PYPORT_EXIT_USAGE);
    }
    request_argv(buf + 1, len - 1, argc, argv);
    mem_free(buf);
}

/* A child's command line from its request: in it, or (pre-opened attach) to
   be read from stdin, waiting as a parked spare waits: dying with the template
   (tmpl) until its options come. fds 0-2 are the request's already. */
static void child_argv(const char *buf, size_t len, pid_t tmpl, int *argc, char ***argv)
{
    if (is_deferred(buf, len)) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != tmpl) {
            _exit(PYPORT_EXIT_OK);
        }
        pid_t peer = len > sizeof TMPL_DEFERRED ? (pid_t)atoi(buf + sizeof TMPL_DEFERRED) : 0;
        deferred_argv(peer, argc, argv);
    } else {
        request_argv(buf, len, argc, argv);
    }
    /* A context lives on when its template dies (as a direct fork does). */
    prctl(PR_SET_PDEATHSIG, 0);
}

/* A request: its command line (at most TMPL_MAX_REQUEST bytes) and 3 fds.
   Returns its length, 0 for EAGAIN, -1 for EOF or anything not a request. */
static ssize_t recv_request(int fd, char *buf, int fds[3], int flags)
{
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(3 * sizeof(int))];
    } ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = TMPL_MAX_REQUEST};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = ctl.space,
                       .msg_controllen = sizeof ctl.space};
    ssize_t n;
    do {
        n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC | flags);
    } while (n < 0 && errno == EINTR && (flags & MSG_DONTWAIT) == 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return 0;
    }
    int nfds = 0;
    fds[0] = fds[1] = fds[2] = -1;
    struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&m) : NULL;
    if (c != NULL && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        memcpy(fds, CMSG_DATA(c), (size_t)(nfds < 3 ? nfds : 3) * sizeof(int));
    }
    if (n <= 0 || nfds != 3 || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
        for (int k = 0; k < nfds && k < 3; k++) {
            close(fds[k]);
        }
        return -1;
    }
    return n;
}

/* In the spare, before it parks: one eval through the path a first request
   takes (a new environment, compile, run, encode the result), so that the
   pages it writes are copied now, off the path of the start, while this
   process has one thread (a copy-on-write fault then needs no TLB shootdown
   to another CPU). The environment is dropped again; the source text is
   none a caller would send, so no request finds its code already compiled. */
static void warm_up(void)
{
    ei_x_buff pid;
    ei_x_buff req;
    if (ei_x_new(&pid) < 0 || ei_x_new(&req) < 0) {
        return;
    }
    erlang_pid fake;
    memset(&fake, 0, sizeof fake);
    strcpy(fake.node, "pyport_spare@localhost");
    fake.num = 1;
    fake.creation = 1;
    static const char code[] = "__name__ == '__main__' and not None  # pyport spare";
    if (ei_x_encode_pid(&pid, &fake) == 0 && ei_x_encode_binary(&req, code, sizeof code - 1) == 0 &&
        ei_x_encode_map_header(&req, 0) == 0) {
        int created = 0;
        PyObject *env = env_get(pid.buff, (size_t)pid.index, &created); // borrowed
        op_args_t a = {.frame = req.buff, .len = (size_t)req.index, .index = 0, .env = env};
        reply_cause_t cause;
        PyObject *r = env != NULL ? op_eval(&a, &cause) : NULL; // owned
        if (r != NULL) {
            buf_t b;
            buf_init(&b, 256);
            (void)conv_from_py(&b, r);
            buf_destroy(&b);
            Py_DECREF(r);
        }
        PyErr_Clear();
        (void)env_drop(pid.buff, (size_t)pid.index);
    }
    ei_x_free(&pid);
    ei_x_free(&req);
}

/* In the spare: waits for a request handed over by the template (sp), and
   returns with it as this process's fds 0-2 and command line. Exits if the
   template goes away first: it dies with the template (PR_SET_PDEATHSIG while
   parked), without Python's finalization (which would only copy pages). */
static void park(int sp, pid_t tmpl, int *argc, char ***argv)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != tmpl) {
        _exit(PYPORT_EXIT_OK);
    }
    warm_up();
    char *buf = mem_alloc(TMPL_MAX_REQUEST); // owned
    int fds[3];
    ssize_t n = recv_request(sp, buf, fds, 0);
    if (n <= 0) {
        _exit(PYPORT_EXIT_OK);
    }
    close(sp);
    take_fds(fds);
    child_argv(buf, (size_t)n, tmpl, argc, argv);
    mem_free(buf);
}

/* Forks the next spare: 1 in it (once a request was handed over), else 0. */
static int fork_spare(int ctl_in, int ctl_out, int lfd, int *argc, char ***argv)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
        log_warn("template: socketpair: %s", strerror(errno));
        g_spare_due = now_ms() + TMPL_SPARE_RETRY_MS;
        return 0;
    }
    pid_t tmpl = getpid();
    PyOS_BeforeFork();
    pid_t pid = fork();
    if (pid == 0) {
        PyOS_AfterFork_Child();
        close(sp[0]);
        close_template_fds(ctl_in, ctl_out, lfd);
        park(sp[1], tmpl, argc, argv);
        return 1;
    }
    int saved = errno;
    PyOS_AfterFork_Parent();
    close(sp[1]);
    if (pid < 0) {
        log_warn("template: cannot fork a spare: %s", strerror(saved));
        close(sp[0]);
        g_spare_due = now_ms() + TMPL_SPARE_RETRY_MS;
        return 0;
    }
    g_spare_pid = pid;
    g_spare_fd = sp[0];
    tell(ctl_out, "spare", "%d", (int)pid);
    return 0;
}

/* Hands a request to the parked spare: its pid, or 0 (none, or it is gone). */
static pid_t hand_to_spare(const char *buf, size_t len, const int fds[3])
{
    if (g_spare_pid == 0) {
        return 0;
    }
    ssize_t n = fdpass_send(g_spare_fd, buf, len, fds);
    pid_t pid = n == (ssize_t)len ? g_spare_pid : 0;
    /* Used, or dead (reap() will collect it): either way the next is due. */
    close(g_spare_fd);
    g_spare_fd = -1;
    g_spare_pid = 0;
    g_spare_due = now_ms() + TMPL_SPARE_DELAY_MS;
    return pid;
}

/* Serves one attach request on conn i: 1 in the forked child, else 0. */
static int serve_request(size_t i, int ctl_in, int ctl_out, int lfd, int *argc, char ***argv)
{
    char *buf = mem_alloc(TMPL_MAX_REQUEST); // owned
    int fds[3];
    ssize_t n = recv_request(g_conns[i].fd, buf, fds, MSG_DONTWAIT);
    if (n <= 0) {
        if (n < 0) {
            drop_conn(i); /* EOF, or not a request */
        }
        mem_free(buf);
        return 0;
    }
    int saved = 0;
    int deferred = is_deferred(buf, (size_t)n);
    if (deferred) {
        /* Handed on with the attach program's pid, for the child to watch. */
        n = (ssize_t)sizeof TMPL_DEFERRED;
        n += snprintf(buf + n, 16, "%d", (int)g_conns[i].peer) + 1;
    }
    pid_t pid = hand_to_spare(buf, (size_t)n, fds);
    if (pid == 0) {
        /* No spare parked: fork this request's context now. */
        pid_t tmpl = getpid();
        PyOS_BeforeFork();
        pid = fork();
        if (pid == 0) {
            PyOS_AfterFork_Child();
            close_template_fds(ctl_in, ctl_out, lfd);
            take_fds(fds);
            if (deferred) {
                warm_up(); /* it waits for its options: as a spare would */
            }
            child_argv(buf, (size_t)n, tmpl, argc, argv);
            mem_free(buf);
            return 1;
        }
        saved = errno;
        PyOS_AfterFork_Parent();
    }
    for (int k = 0; k < 3; k++) {
        close(fds[k]);
    }
    mem_free(buf);
    int32_t msg[2] = {0, pid > 0 ? (int32_t)pid : -saved};
    if (send(g_conns[i].fd, msg, sizeof msg, MSG_NOSIGNAL) < 0 || pid < 0) {
        drop_conn(i); /* the child's attach program is gone: its stdin is closed too */
    } else {
        g_conns[i].pid = pid;
        if (deferred) {
            tell(ctl_out, "attached", "%d %d", (int)pid, (int)g_conns[i].peer);
        }
    }
    return 0;
}

int template_serve(int ctl_in, int ctl_out, int *argc, char ***argv)
{
    if (run_preload(ctl_in, ctl_out) < 0 || check_fork_safety(ctl_out) < 0) {
        return PYPORT_EXIT_PYTHON;
    }
    if (pipe2(g_sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        tell(ctl_out, "error", "pipe: %s", strerror(errno));
        return PYPORT_EXIT_IO;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigchld;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    int lfd = listen_socket(ctl_out);
    if (lfd < 0) {
        cleanup_socket();
        return PYPORT_EXIT_IO;
    }
    /* The first spare before `ready', so that the first context finds it. */
    if (fork_spare(ctl_in, ctl_out, lfd, argc, argv) == 1) {
        return TMPL_CHILD;
    }
    tell(ctl_out, "ready", "%s", g_path);
    struct pollfd *p = NULL; // owned
    for (;;) {
        int timeout = -1;
        if (g_spare_pid == 0) {
            int64_t wait = g_spare_due - now_ms();
            if (wait <= 0) {
                if (fork_spare(ctl_in, ctl_out, lfd, argc, argv) == 1) {
                    mem_free(p);
                    return TMPL_CHILD;
                }
            } else {
                timeout = (int)wait;
            }
        }
        size_t np = 3 + g_nconns;
        p = mem_realloc(p, np * sizeof *p);
        p[0] = (struct pollfd){.fd = ctl_in, .events = POLLIN};
        p[1] = (struct pollfd){.fd = lfd, .events = POLLIN};
        p[2] = (struct pollfd){.fd = g_sig_pipe[0], .events = POLLIN};
        for (size_t i = 0; i < g_nconns; i++) {
            /* A connection with a child is only watched for its end. */
            p[3 + i] = (struct pollfd){.fd = g_conns[i].fd, .events = POLLIN};
        }
        if (poll(p, np, timeout) < 0) {
            if (errno == EINTR) {
                continue;
            }
            log_error("template: poll: %s", strerror(errno));
            break;
        }
        if (p[0].revents != 0) {
            char junk[256];
            ssize_t r = read(ctl_in, junk, sizeof junk);
            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
                break; /* Erlang closed the template: its children live on */
            }
        }
        if (p[2].revents != 0) {
            reap();
        }
        /* Connections, newest first, so drop_conn's swap never skips one. */
        size_t seen = np - 3 < g_nconns ? np - 3 : g_nconns;
        for (size_t k = seen; k-- > 0;) {
            if (k >= g_nconns || p[3 + k].fd != g_conns[k].fd || p[3 + k].revents == 0) {
                continue;
            }
            if (g_conns[k].pid != 0) {
                drop_conn(k); /* the attach program died; its child sees its stdin close */
            } else if (serve_request(k, ctl_in, ctl_out, lfd, argc, argv) == 1) {
                mem_free(p);
                return TMPL_CHILD;
            }
        }
        if (p[1].revents != 0) {
            accept_all(lfd);
        }
    }
    mem_free(p);
    cleanup_socket();
    return PYPORT_EXIT_OK;
}
