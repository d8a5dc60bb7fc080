/*
 * Request execution on the Python thread (see worker.h). Every request job gets
 * exactly one reply frame: {reply, Id} + result, or {error, Id} + reason. The
 * reply header is written first and its tag patched in place on error ("reply"
 * and "error" have the same length), so a large result is never copied.
 */
#include "worker.h"

#include <ei.h>
#include <stdatomic.h>
#include <string.h>

#include "buf.h"
#include "control.h"
#include "convert.h"
#include "envs.h"
#include "log.h"
#include "memory.h"
#include "outbox.h"
#include "protocol.h"
#include "pyerlang.h"
#include "pyport/wire.h"

/* Replies left unsent while more jobs wait, so they leave in one write. */
#define WORKER_MAX_BATCH 64

/* Compiled code objects kept per mode; the cache is emptied when it grows past this. */
#define WORKER_CODE_CACHE 512

typedef enum { RUN_OK, RUN_PYERR, RUN_BADARG } run_status_t;

static worker_cfg_t g_cfg;
static atomic_long g_calls;
static PyObject *g_eval_cache; /* owned: bytes -> code */
static PyObject *g_exec_cache; /* owned: bytes -> code */
static PyObject *g_linecache;  /* owned: linecache.cache, for tracebacks of exec'd code */
static long g_code_seq;
static int g_batched;

int worker_init(const worker_cfg_t *cfg)
{
    g_cfg = *cfg;
    g_eval_cache = PyDict_New();
    g_exec_cache = PyDict_New();
    PyObject *lc = PyImport_ImportModule("linecache"); // owned
    if (lc != NULL) {
        g_linecache = PyObject_GetAttrString(lc, "cache");
        Py_DECREF(lc);
    }
    PyErr_Clear();
    return g_eval_cache != NULL && g_exec_cache != NULL ? 0 : -1;
}

long worker_calls(void)
{
    return atomic_load(&g_calls);
}

/* ---- looking things up ---------------------------------------------------- */

/* getattr along a dotted path: "a.b.c" on obj. Returns a new reference. */
static PyObject *get_dotted(PyObject *obj, PyObject *path)
{
    PyObject *dot = PyUnicode_FromString(".");      // owned
    PyObject *names = PyUnicode_Split(path, dot, -1); // owned
    Py_DECREF(dot);
    if (names == NULL) {
        return NULL;
    }
    PyObject *cur = Py_NewRef(obj); // owned
    for (Py_ssize_t i = 0; cur != NULL && i < PyList_GET_SIZE(names); i++) {
        Py_SETREF(cur, PyObject_GetAttr(cur, PyList_GET_ITEM(names, i)));
    }
    Py_DECREF(names);
    return cur;
}

/* The callable named (module, function): '__main__' means the caller's env. */
static PyObject *find_callable(PyObject *env, PyObject *module, PyObject *function)
{
    if (PyUnicode_CompareWithASCIIString(module, "__main__") == 0) {
        PyObject *dot = PyUnicode_FromString(".");          // owned
        PyObject *head = PyUnicode_Partition(function, dot); // owned
        Py_DECREF(dot);
        if (head == NULL) {
            return NULL;
        }
        PyObject *first = PyTuple_GET_ITEM(head, 0);  // borrowed
        PyObject *rest = PyTuple_GET_ITEM(head, 2);   // borrowed
        PyObject *obj = PyDict_GetItemWithError(env, first); // borrowed
        if (obj == NULL && !PyErr_Occurred()) {
            obj = PyDict_GetItemWithError(PyEval_GetBuiltins(), first);
        }
        if (obj == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_NameError, "name '%U' is not defined", first);
            }
            Py_DECREF(head);
            return NULL;
        }
        PyObject *r = PyUnicode_GET_LENGTH(rest) > 0 ? get_dotted(obj, rest) : Py_NewRef(obj);
        Py_DECREF(head);
        return r;
    }
    PyObject *mod = PyImport_GetModule(module); // owned
    if (mod == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        mod = PyImport_Import(module);
        if (mod == NULL) {
            return NULL;
        }
    }
    PyObject *r = get_dotted(mod, function);
    Py_DECREF(mod);
    return r;
}

/* The code object for source (a binary at *index) in the given mode. Borrowed. */
static PyObject *compiled(const char *frame, int *index, int mode, run_status_t *st)
{
    int type;
    int size;
    if (ei_get_type(frame, index, &type, &size) < 0 || type != ERL_BINARY_EXT) {
        PyErr_SetString(PyExc_ValueError, "code must be a binary");
        *st = RUN_BADARG;
        return NULL;
    }
    long n;
    const char *p = frame + *index + 5;
    ei_decode_binary(frame, index, NULL, &n);
    PyObject *cache = mode == Py_eval_input ? g_eval_cache : g_exec_cache;
    PyObject *key = PyBytes_FromStringAndSize(p, n); // owned
    if (key == NULL) {
        *st = RUN_PYERR;
        return NULL;
    }
    PyObject *code = PyDict_GetItemWithError(cache, key); // borrowed
    if (code != NULL || PyErr_Occurred()) {
        Py_DECREF(key);
        *st = RUN_PYERR;
        return code;
    }
    char filename[48];
    snprintf(filename, sizeof filename, "<pyport-%s-%ld>", mode == Py_eval_input ? "eval" : "exec",
             ++g_code_seq);
    PyObject *fresh = Py_CompileString(PyBytes_AS_STRING(key), filename, mode); // owned
    if (fresh == NULL) {
        Py_DECREF(key);
        *st = RUN_PYERR;
        return NULL;
    }
    if (g_linecache != NULL) {
        /* So tracebacks through this code show its lines. */
        PyObject *src = PyUnicode_DecodeUTF8(p, n, "replace"); // owned
        PyObject *lines = src != NULL ? PyUnicode_Splitlines(src, 1) : NULL; // owned
        PyObject *entry = lines != NULL ? Py_BuildValue("(nOOs)", (Py_ssize_t)n, Py_None, lines,
                                                        filename)
                                        : NULL; // owned
        if (entry != NULL) {
            PyDict_SetItemString(g_linecache, filename, entry);
        }
        Py_XDECREF(entry);
        Py_XDECREF(lines);
        Py_XDECREF(src);
        PyErr_Clear();
    }
    if (PyDict_GET_SIZE(cache) >= WORKER_CODE_CACHE) {
        PyDict_Clear(cache);
    }
    int rc = PyDict_SetItem(cache, key, fresh);
    Py_DECREF(key);
    Py_DECREF(fresh);
    if (rc < 0) {
        *st = RUN_PYERR;
        return NULL;
    }
    return fresh; /* alive: the cache holds it */
}

/* ---- operations ----------------------------------------------------------- */

/* Each returns a new reference to the result, or NULL with a Python error set and
   *st saying whether the request itself was malformed (RUN_BADARG). */

static PyObject *op_call(PyObject *env, const char *frame, int *index, run_status_t *st)
{
    PyObject *module = NULL;   // owned
    PyObject *function = NULL; // owned
    PyObject *args = NULL;     // owned
    PyObject *kwargs = NULL;   // owned
    PyObject *target = NULL;   // owned
    PyObject *result = NULL;   // owned
    *st = RUN_BADARG;
    module = conv_name(frame, index);
    function = module != NULL ? conv_name(frame, index) : NULL;
    PyObject *list = function != NULL ? conv_to_py(frame, index) : NULL; // owned
    if (list != NULL && !PyList_Check(list)) {
        Py_CLEAR(list);
        PyErr_SetString(PyExc_ValueError, "arguments must be a proper list");
    }
    if (list != NULL) {
        args = PyList_AsTuple(list);
        Py_DECREF(list);
    }
    kwargs = args != NULL ? conv_kwargs(frame, index) : NULL;
    if (kwargs == NULL) {
        goto done;
    }
    *st = RUN_PYERR;
    target = find_callable(env, module, function);
    if (target == NULL) {
        goto done;
    }
    result = PyObject_Call(target, args, PyDict_GET_SIZE(kwargs) > 0 ? kwargs : NULL);
done:
    Py_XDECREF(module);
    Py_XDECREF(function);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    Py_XDECREF(target);
    return result;
}

static PyObject *op_eval(PyObject *env, const char *frame, int *index, run_status_t *st)
{
    PyObject *code = compiled(frame, index, Py_eval_input, st); // borrowed
    if (code == NULL) {
        return NULL;
    }
    *st = RUN_BADARG;
    PyObject *locals = conv_kwargs(frame, index); // owned
    if (locals == NULL) {
        return NULL;
    }
    *st = RUN_PYERR;
    Py_INCREF(code);
    PyObject *r = PyEval_EvalCode(code, env, PyDict_GET_SIZE(locals) > 0 ? locals : env);
    Py_DECREF(code);
    Py_DECREF(locals);
    return r;
}

static PyObject *op_exec(PyObject *env, const char *frame, int *index, run_status_t *st)
{
    PyObject *code = compiled(frame, index, Py_file_input, st); // borrowed
    if (code == NULL) {
        return NULL;
    }
    *st = RUN_PYERR;
    Py_INCREF(code);
    PyObject *r = PyEval_EvalCode(code, env, env);
    Py_DECREF(code);
    if (r == NULL) {
        return NULL;
    }
    /* exec answers the atom ok. */
    Py_DECREF(r);
    return pyerl_atom_new("ok", 2);
}

/* ---- replies ------------------------------------------------------------------ */

static void send_frame(char *frame, size_t len)
{
    if (g_batched < WORKER_MAX_BATCH && inbox_len() > 0) {
        outbox_queue(frame, len);
        g_batched++;
    } else {
        outbox_push(frame, len);
        g_batched = 0;
    }
}

static void notify_env(const char *pid, size_t len)
{
    buf_t b;
    buf_init(&b, len + 32);
    proto_begin(&b);
    proto_tuple(&b, 2);
    proto_atom(&b, "env");
    proto_raw(&b, pid, len);
    proto_end(&b, PYPORT_HARD_MAX_FRAME);
    size_t n;
    char *frame = buf_steal(&b, &n);
    outbox_push(frame, n);
}

/* Replaces the body with {too_large, Size, Max} when the reply is over max_frame. */
static void limit_size(buf_t *b, size_t body_start, size_t tag_at)
{
    size_t size = b->len - PYPORT_FRAME_HEADER_BYTES;
    if (size <= g_cfg.max_frame) {
        return;
    }
    memcpy(b->data + tag_at, "error", 5);
    b->len = body_start;
    proto_tuple(b, 3);
    proto_atom(b, "too_large");
    proto_long(b, (int64_t)size);
    proto_long(b, (int64_t)g_cfg.max_frame);
}

static void run_request(job_t *job)
{
    buf_t b;
    buf_init(&b, 256);
    proto_begin(&b);
    proto_tuple(&b, 2);
    size_t tag_at = b.len + 2; /* after the SMALL_ATOM_UTF8 tag and length bytes */
    proto_atom(&b, "reply");
    proto_long(&b, job->id);
    proto_body(&b);
    size_t body_start = b.len;

    run_status_t st = RUN_BADARG;
    PyObject *result = NULL; // owned
    int index = job->index;
    int pid_start;
    int pid_len;
    if (ctl_begin(job->id, job->op) < 0) {
        PyErr_SetString(PyExc_RecursionError, "requests nest too deeply");
        st = RUN_PYERR;
    } else {
        if (proto_pid_span(job->frame, &index, &pid_start, &pid_len) < 0) {
            PyErr_SetString(PyExc_ValueError, "the caller must be a pid");
        } else {
            int created = 0;
            PyObject *env = env_get(job->frame + pid_start, (size_t)pid_len, &created); // borrowed
            if (created) {
                notify_env(job->frame + pid_start, (size_t)pid_len);
            }
            if (env == NULL) {
                st = RUN_PYERR;
            } else if (job->op == OP_CALL) {
                result = op_call(env, job->frame, &index, &st);
            } else if (job->op == OP_EVAL) {
                result = op_eval(env, job->frame, &index, &st);
            } else {
                result = op_exec(env, job->frame, &index, &st);
            }
        }
        ctl_end();
    }
    if (result != NULL) {
        if (conv_from_py(&b, result) < 0) {
            b.len = body_start;
            st = RUN_PYERR;
        } else {
            st = RUN_OK;
        }
        Py_DECREF(result);
    }
    if (st != RUN_OK) {
        memcpy(b.data + tag_at, "error", 5);
        if (st == RUN_BADARG) {
            conv_badarg(&b);
        } else {
            conv_exception(&b);
        }
    }
    pyerl_flush_output();
    limit_size(&b, body_start, tag_at);
    proto_end(&b, PYPORT_HARD_MAX_FRAME);
    atomic_fetch_add(&g_calls, 1);
    size_t len;
    char *frame = buf_steal(&b, &len);
    send_frame(frame, len);
}

/* A frame that could not be parsed: answer it if it had an id, else log it. */
static void reject(job_t *job, const char *why)
{
    if (job->id > 0) {
        char *frame;
        size_t len;
        proto_badarg_frame(job->id, why, &frame, &len);
        send_frame(frame, len);
    } else {
        log_warn("dropped a malformed frame: %s", why);
    }
}

static void drop_env(job_t *job)
{
    int index = job->index;
    int start;
    int len;
    if (proto_pid_span(job->frame, &index, &start, &len) < 0) {
        reject(job, "drop_env needs a pid");
        return;
    }
    env_drop(job->frame + start, (size_t)len);
}

void worker_handle(job_t *job)
{
    switch (job->op) {
    case OP_CALL:
    case OP_EVAL:
    case OP_EXEC:
        run_request(job);
        break;
    case OP_DROP_ENV:
        drop_env(job);
        break;
    default:
        reject(job, "op not supported");
        break;
    }
    job_free(job);
}

void worker_run(void)
{
    for (;;) {
        job_t *job = inbox_pop();
        if (job == NULL) {
            outbox_flush();
            g_batched = 0;
            Py_BEGIN_ALLOW_THREADS
            inbox_wait(-1);
            Py_END_ALLOW_THREADS
            continue;
        }
        if (job->op == JOB_STOP) {
            job_free(job);
            outbox_flush();
            return;
        }
        worker_handle(job);
    }
}
