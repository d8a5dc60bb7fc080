/*
 * The pyport port program: parse the command line, move the protocol onto
 * private fds (fd 0 becomes /dev/null, fds 1 and 2 become pipes forwarded to
 * Erlang's logger), start the loop thread and Python, serve requests on this
 * (the main) thread, then tear down in reverse. Exit statuses: pyport/wire.h.
 * With --template it is a warm template instead (template.c): Python starts
 * first, and each forked child goes on here as a context whose Python is
 * already running.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <ei.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "async.h"
#include "callback.h"
#include "control.h"
#include "convert.h"
#include "credit.h"
#include "dispatch.h"
#include "envs.h"
#include "exits.h"
#include "frames.h"
#include "heap.h"
#include "inbox.h"
#include "keeper.h"
#include "log.h"
#include "loop.h"
#include "outbox.h"
#include "output.h"
#include "pyerlang.h"
#include "pyport/wire.h"
#include "reader.h"
#include "reply.h"
#include "template.h"
#include "worker.h"

#ifndef PYPORT_PYTHON_EXECUTABLE
#define PYPORT_PYTHON_EXECUTABLE "/usr/bin/python3"
#endif

/* How long after stdin closes the process may take to exit. */
#define MAIN_EXIT_GRACE_MS 500

#define MAIN_MAX_PATHS 64

typedef struct {
    const char *name;
    const char *python;
    size_t max_frame;
    int max_depth;
    int max_nesting;
    const char *paths[MAIN_MAX_PATHS];
    int npaths;
    const char *crash_file; /* where faulthandler writes, NULL: the port's stderr */
    int template_mode;      /* --template: run the preload, then fork contexts */
} options_t;

static int g_in_fd = -1;
static int g_out_fd = -1;
static int g_capture_rd[2] = {-1, -1};
static int g_keeper_fd = -1;
static int g_crash_fd = -1;

static void usage(void)
{
    fprintf(stderr,
            "usage: pyport [--name NAME] [--max-frame BYTES] [--max-depth N] [--max-nesting N]\n"
            "              [--python EXECUTABLE] [--path DIR]... [--crash-file PATH] [--template]\n"
            "pyport is started by the pyport Erlang application as a port program;\n"
            "it speaks the protocol of docs/protocol.md on stdin/stdout.\n");
}

static long parse_num(const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) {
        usage();
        exit(PYPORT_EXIT_USAGE);
    }
    return v;
}

static void parse_options(int argc, char **argv, options_t *o)
{
    static const struct option longs[] = {
        {"name", required_argument, NULL, 'n'},
        {"max-frame", required_argument, NULL, 'f'},
        {"max-depth", required_argument, NULL, 'd'},
        {"max-nesting", required_argument, NULL, 'N'},
        {"python", required_argument, NULL, 'p'},
        {"path", required_argument, NULL, 'P'},
        {"crash-file", required_argument, NULL, 'c'},
        {"template", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    o->name = "pyport";
    o->python = PYPORT_PYTHON_EXECUTABLE;
    o->max_frame = PYPORT_DEFAULT_MAX_FRAME;
    o->max_depth = PYPORT_DEFAULT_MAX_DEPTH;
    o->max_nesting = PYPORT_DEFAULT_MAX_NESTING;
    o->npaths = 0;
    o->crash_file = NULL;
    o->template_mode = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'n':
            o->name = optarg;
            break;
        case 'f':
            o->max_frame = (size_t)parse_num(optarg, 64, PYPORT_HARD_MAX_FRAME);
            break;
        case 'd':
            o->max_depth = (int)parse_num(optarg, 1, 100000);
            break;
        case 'N':
            o->max_nesting = (int)parse_num(optarg, 1, 100000);
            break;
        case 'p':
            o->python = optarg;
            break;
        case 'P':
            if (o->npaths == MAIN_MAX_PATHS) {
                usage();
                exit(PYPORT_EXIT_USAGE);
            }
            o->paths[o->npaths++] = optarg;
            break;
        case 'c':
            o->crash_file = optarg;
            break;
        case 't':
            o->template_mode = 1;
            break;
        case 'h':
            usage();
            exit(PYPORT_EXIT_OK);
        default:
            usage();
            exit(PYPORT_EXIT_USAGE);
        }
    }
    if (optind != argc) {
        usage();
        exit(PYPORT_EXIT_USAGE);
    }
}

static int dup_private(int fd)
{
    int p = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (p < 0) {
        fprintf(stderr, "pyport: cannot duplicate fd %d: %s\n", fd, strerror(errno));
        exit(PYPORT_EXIT_IO);
    }
    return p;
}

/* A forked child (os.fork, multiprocessing fork) must not hold the protocol
   pipes: it would keep the port open after this process dies. */
static void atfork_child(void)
{
    close(g_in_fd);
    close(g_out_fd);
    close(g_capture_rd[0]);
    close(g_capture_rd[1]);
    close(g_keeper_fd);
    close(g_crash_fd);
}

/* What a cold context does beside Python's start, on a thread of its own (about
   2 ms of CPU that a second core takes off the start): fill in the program's data
   pages, and spawn the keeper (posix_spawn, safe beside other threads). Joined by
   join_aside before anything reads g_keeper_fd or could fork. */
static pthread_t g_aside;
static int g_aside_running;

static void *aside(void *arg)
{
    (void)arg;
    heap_prefault();
    g_keeper_fd = keeper_start(g_in_fd);
    return NULL;
}

static void start_aside(void)
{
    /* Every signal stays with the Python thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    g_aside_running = pthread_create(&g_aside, NULL, aside, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!g_aside_running) {
        aside(NULL);
    }
}

static void join_aside(void)
{
    if (g_aside_running) {
        pthread_join(g_aside, NULL);
        g_aside_running = 0;
    }
}

/* Moves the protocol to private fds; fd 0 reads /dev/null and fds 1 and 2 write
   into pipes that the loop thread forwards, so no stray write reaches Erlang's
   stream. Returns the saved stderr for the port's own log. A context forked
   from a template has no keeper: its pyport-attach holds stdin instead. */
static int protect_fds(int with_keeper)
{
    g_in_fd = dup_private(0);
    g_out_fd = dup_private(1);
    int log_fd = dup_private(2);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0) {
        fprintf(stderr, "pyport: cannot open /dev/null: %s\n", strerror(errno));
        exit(PYPORT_EXIT_IO);
    }
    close(null);
    for (int i = 0; i < 2; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0 || dup2(p[1], i + 1) < 0) {
            fprintf(stderr, "pyport: cannot redirect fd %d: %s\n", i + 1, strerror(errno));
            exit(PYPORT_EXIT_IO);
        }
        close(p[1]);
        g_capture_rd[i] = p[0];
    }
    int fl = fcntl(g_out_fd, F_GETFL);
    if (fl < 0 || fcntl(g_out_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        fprintf(stderr, "pyport: fcntl: %s\n", strerror(errno));
        exit(PYPORT_EXIT_IO);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (with_keeper) {
        start_aside();
    }
    pthread_atfork(NULL, NULL, atfork_child);
    return log_fd;
}

static void python_version(char *out, size_t n)
{
    const char *v = Py_GetVersion();
    size_t len = strcspn(v, " ");
    if (len >= n) {
        len = n - 1;
    }
    memcpy(out, v, len);
    out[len] = '\0';
}

/* The per-context limits of the command line, kept where the code that
   enforces them reads them: at Python's start, and again in a context forked
   from a template (whose Python started with the template's command line). */
static void set_limits(const options_t *o)
{
    conv_set_max_depth(o->max_depth);
    cb_set_max_nesting(o->max_nesting);
    reply_set_max_frame(o->max_frame);
}

/* _pyport.py lives in python/ beside the binary (priv/python in the app). */
static int add_helpers_path(PyObject *sys_path)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 16);
    if (n <= 0) {
        PyErr_SetString(PyExc_OSError, "cannot find the pyport executable");
        return -1;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL) {
        PyErr_SetString(PyExc_OSError, "cannot find the pyport executable");
        return -1;
    }
    strcpy(slash + 1, "python");
    PyObject *p = PyUnicode_DecodeFSDefault(exe); // owned
    int rc = p != NULL ? PyList_Insert(sys_path, 0, p) : -1;
    Py_XDECREF(p);
    return rc;
}

static int start_python(const options_t *o)
{
    pyerl_register();
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.parse_argv = 0;
    config.install_signal_handlers = 1;
    config.buffered_stdio = 0;
    char *argv0[] = {(char *)o->python};
    PyStatus st = PyConfig_SetBytesString(&config, &config.program_name, o->python);
    if (!PyStatus_Exception(st)) {
        st = PyConfig_SetBytesString(&config, &config.executable, o->python);
    }
    if (!PyStatus_Exception(st)) {
        st = PyConfig_SetBytesArgv(&config, 1, argv0);
    }
    if (!PyStatus_Exception(st)) {
        st = Py_InitializeFromConfig(&config);
    }
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        log_error("Python failed to start: %s", st.err_msg ? st.err_msg : "unknown error");
        return -1;
    }
    set_limits(o);
    worker_cfg_t wcfg = {.max_frame = o->max_frame};
    PyObject *sys_path = PySys_GetObject("path"); // borrowed
    if (sys_path == NULL || add_helpers_path(sys_path) < 0 || pyerl_setup() < 0 ||
        output_init() < 0 || env_init() < 0 || worker_init(&wcfg) < 0 || async_init() < 0) {
        PyErr_Print();
        return -1;
    }
    for (int i = o->npaths - 1; i >= 0 && sys_path != NULL; i--) {
        PyObject *p = PyUnicode_DecodeFSDefault(o->paths[i]); // owned
        if (p == NULL || PyList_Insert(sys_path, 0, p) < 0) {
            Py_XDECREF(p);
            PyErr_Print();
            return -1;
        }
        Py_DECREF(p);
    }
    return 0;
}

/* Tracebacks of crashes (segfaults) go to the crash file, which Erlang reads
   after the death, or else to the BEAM's stderr. */
static void enable_crash_dumps(void)
{
    int crash_fd = g_crash_fd >= 0 ? g_crash_fd : log_fd();
    PyObject *fh = PyImport_ImportModule("faulthandler");                               // owned
    PyObject *r = fh != NULL ? PyObject_CallMethod(fh, "enable", "i", crash_fd) : NULL; // owned
    Py_XDECREF(r);
    Py_XDECREF(fh);
    PyErr_Clear();
}

/* The warm template: its own stdin/stdout stay private to talk to Erlang, fd 0
   reads /dev/null and fd 1 writes to stderr while Python starts and the preload
   runs; then template_serve forks. Returns TMPL_CHILD in a child, with *o
   parsed from the child's command line; else the template's exit status. */
static int run_template(options_t *o)
{
    int ctl_in = dup_private(0);
    int ctl_out = dup_private(1);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(2, 1) < 0) {
        fprintf(stderr, "pyport: cannot redirect fds 0 and 1: %s\n", strerror(errno));
        return PYPORT_EXIT_IO;
    }
    close(null);
    log_init(dup_private(2), o->name);
    if (start_python(o) < 0) {
        return PYPORT_EXIT_PYTHON;
    }
    enable_crash_dumps();
    int argc;
    char **argv;
    int rc = template_serve(ctl_in, ctl_out, &argc, &argv);
    if (rc != TMPL_CHILD) {
        return rc;
    }
    optind = 0;
    parse_options(argc, argv, o);
    return TMPL_CHILD;
}

int main(int argc, char **argv)
{
    options_t opts;
    parse_options(argc, argv, &opts);

    /* Die with the BEAM, even on kill -9 (stdin EOF is the other guard). */
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        return PYPORT_EXIT_OK;
    }
    signal(SIGPIPE, SIG_IGN);
    if (ei_init() != 0) {
        fprintf(stderr, "pyport: ei_init failed\n");
        return PYPORT_EXIT_USAGE;
    }
    /* Before Python starts, in the template as in a cold context (a fork
       inherits it with the heap). */
    heap_init();
    int forked = 0;
    if (opts.template_mode) {
        /* Its forks inherit the filled-in pages. */
        heap_prefault();
        int rc = run_template(&opts);
        if (rc != TMPL_CHILD) {
            return rc;
        }
        forked = 1;
        set_limits(&opts);
    }
    log_init(protect_fds(!forked), opts.name);
    if (opts.crash_file != NULL) {
        /* Opened (and emptied) now, so a crash can always be written. */
        g_crash_fd = open(opts.crash_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (g_crash_fd < 0) {
            log_error("cannot open the crash file %s: %s", opts.crash_file, strerror(errno));
            return PYPORT_EXIT_USAGE;
        }
    }
    ctl_init();
    inbox_init();
    outbox_init(g_out_fd, loop_wake);
    credit_init(loop_wake);

    loop_cfg_t lcfg = {
        .in_fd = g_in_fd,
        .out_fd = g_out_fd,
        .capture_fd = {g_capture_rd[0], g_capture_rd[1]},
        .exit_grace_ms = MAIN_EXIT_GRACE_MS,
    };
    if (!forked && start_python(&opts) < 0) {
        return PYPORT_EXIT_PYTHON;
    }
    join_aside();
    if (g_keeper_fd < 0 && !forked) {
        log_warn("no keeper process: a death may be reported as a closed port");
    }
    enable_crash_dumps();
    char version[32];
    python_version(version, sizeof version);
    dispatch_cfg_t dcfg = {
        .max_frame = opts.max_frame,
        .max_depth = opts.max_depth,
        .python_version = version,
        .exit_soon = loop_exit_soon,
    };
    dispatch_init(&dcfg);
    rd_init(g_in_fd, opts.max_frame, loop_wake);
    loop_start(&lcfg);
    frame_ready(version, getpid());
    exit_set_announce(frame_exiting);

    worker_run();

    Py_FinalizeEx();
    loop_stop();
    return PYPORT_EXIT_OK;
}
