/*
 * Process-bound environments and object references (see envs.h). Both tables are
 * dicts keyed by the owner's pid bytes. References carry a random incarnation
 * number, so a reference from before a restart is recognised, never confused
 * with a new object that happens to get the same id.
 */
#include "envs.h"

#include <ei.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "control.h"
#include "convert.h"
#include "etf.h"
#include "protocol.h"
#include "stats.h"
#include "terms.h"

static PyObject *g_table;    /* owned: bytes(pid) -> namespace dict */
static PyObject *g_refs;     /* owned: bytes(pid) -> {ref id: object} */
static PyObject *g_template; /* owned or NULL: preload namespace */
static PyObject *g_last_key; /* owned: bytes of the last pid looked up */
static PyObject *g_last_env; /* borrowed from g_table */
static char g_ctx[64];
static size_t g_ctx_len;
static unsigned long long g_incarnation;
static long long g_next_ref;
static env_owner_t g_owner;

static int to_ref(buf_t *b, PyObject *obj);

int env_init(void)
{
    g_table = PyDict_New();
    g_refs = PyDict_New();
    if (getrandom(&g_incarnation, sizeof g_incarnation, 0) != sizeof g_incarnation) {
        g_incarnation = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32);
    }
    conv_set_ref_hooks(to_ref, env_ref_get);
    return g_table != NULL && g_refs != NULL ? 0 : -1;
}

void env_set_template(PyObject *ns)
{
    Py_XINCREF(ns);
    Py_XSETREF(g_template, ns);
}

void env_set_context(const char *pid, size_t len)
{
    if (len <= sizeof g_ctx) {
        memcpy(g_ctx, pid, len);
        g_ctx_len = len;
    }
}

static PyObject *env_new(void)
{
    PyObject *env = g_template != NULL ? PyDict_Copy(g_template) : PyDict_New(); // owned
    if (env == NULL) {
        return NULL;
    }
    PyObject *builtins = PyImport_ImportModule("builtins"); // owned
    PyObject *name = PyUnicode_FromString("__main__");      // owned
    int rc = builtins != NULL && name != NULL &&
                     PyDict_SetItemString(env, "__builtins__", builtins) == 0 &&
                     PyDict_SetItemString(env, "__name__", name) == 0
                 ? 0
                 : -1;
    Py_XDECREF(builtins);
    Py_XDECREF(name);
    if (rc < 0) {
        Py_DECREF(env);
        return NULL;
    }
    return env;
}

PyObject *env_get(const char *pid, size_t len, int *created)
{
    *created = 0;
    if (g_last_key != NULL && (size_t)PyBytes_GET_SIZE(g_last_key) == len &&
        memcmp(PyBytes_AS_STRING(g_last_key), pid, len) == 0) {
        return g_last_env;
    }
    PyObject *key = PyBytes_FromStringAndSize(pid, (Py_ssize_t)len); // owned
    if (key == NULL) {
        return NULL;
    }
    PyObject *env = PyDict_GetItemWithError(g_table, key); // borrowed
    if (env == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(key);
            return NULL;
        }
        PyObject *fresh = env_new(); // owned
        if (fresh == NULL || PyDict_SetItem(g_table, key, fresh) < 0) {
            Py_XDECREF(fresh);
            Py_DECREF(key);
            return NULL;
        }
        env = fresh;
        Py_DECREF(fresh); /* the table holds it */
        stats_envs_add(1);
        *created = 1;
    }
    Py_XSETREF(g_last_key, key);
    g_last_env = env;
    return env;
}

int env_drop(const char *pid, size_t len)
{
    PyObject *key = PyBytes_FromStringAndSize(pid, (Py_ssize_t)len); // owned
    if (key == NULL) {
        PyErr_Clear();
        return 0;
    }
    if (g_last_key != NULL && PyObject_RichCompareBool(key, g_last_key, Py_EQ) == 1) {
        Py_CLEAR(g_last_key);
        g_last_env = NULL;
    }
    int existed = 0;
    PyObject *env = PyDict_GetItemWithError(g_table, key); // borrowed
    if (env != NULL) {
        existed = 1;
        /* Clear first so cycles through the namespace's functions free now. */
        Py_INCREF(env);
        if (PyDict_DelItem(g_table, key) == 0) {
            stats_envs_add(-1);
        }
        PyDict_Clear(env);
        Py_DECREF(env);
    }
    PyObject *refs = PyDict_GetItemWithError(g_refs, key); // borrowed
    if (refs != NULL) {
        existed = 1;
        PyDict_DelItem(g_refs, key);
    }
    PyErr_Clear();
    Py_DECREF(key);
    return existed;
}

/* ---- references -------------------------------------------------------------- */

env_owner_t env_owner_set(const char *pid, size_t len)
{
    env_owner_t prev = g_owner;
    g_owner.pid = pid;
    g_owner.len = len;
    return prev;
}

void env_owner_restore(env_owner_t prev)
{
    g_owner = prev;
}

PyObject *env_owner_pid(void)
{
    if (g_owner.pid == NULL) {
        Py_RETURN_NONE;
    }
    return terms_new(&terms_PidType, g_owner.pid, g_owner.len);
}

static int to_ref(buf_t *b, PyObject *obj)
{
    /* Only requests own references; another Python thread has no caller. */
    if (g_owner.pid == NULL || !ctl_is_python_thread()) {
        PyErr_Format(PyExc_TypeError,
                     "a %.100s has no Erlang form, and there is no request to own a reference",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyObject *key = PyBytes_FromStringAndSize(g_owner.pid, (Py_ssize_t)g_owner.len); // owned
    if (key == NULL) {
        return -1;
    }
    PyObject *refs = PyDict_GetItemWithError(g_refs, key); // borrowed
    if (refs == NULL) {
        PyObject *fresh = PyErr_Occurred() ? NULL : PyDict_New(); // owned
        if (fresh == NULL || PyDict_SetItem(g_refs, key, fresh) < 0) {
            Py_XDECREF(fresh);
            Py_DECREF(key);
            return -1;
        }
        refs = fresh;
        Py_DECREF(fresh);
    }
    Py_DECREF(key);
    long long id = ++g_next_ref;
    PyObject *idobj = PyLong_FromLongLong(id); // owned
    if (idobj == NULL || PyDict_SetItem(refs, idobj, obj) < 0) {
        Py_XDECREF(idobj);
        return -1;
    }
    Py_DECREF(idobj);
    proto_tuple(b, 5);
    proto_atom(b, "py_ref");
    if (g_ctx_len > 0) {
        proto_raw(b, g_ctx, g_ctx_len);
    } else {
        proto_atom(b, "undefined");
    }
    buf_reserve(b, 16);
    int i = (int)b->len;
    ei_encode_ulonglong(b->data, &i, g_incarnation);
    b->len = (size_t)i;
    proto_raw(b, g_owner.pid, g_owner.len);
    proto_long(b, id);
    return 0;
}

static PyObject *ref_error(const char *msg)
{
    PyErr_SetString(PyExc_ValueError, msg);
    return NULL;
}

/* Parses {py_ref, Ctx, Incarnation, Owner, RefId} at *index. On success sets
 *refs (borrowed, the owner's table; NULL if the owner holds none) and *id. */
static int parse_ref(const char *buf, size_t len, int *index, PyObject **refs, PyObject **id)
{
    int arity;
    char atom[MAXATOMLEN];
    unsigned long long inc;
    long long num;
    int type;
    int size;
    if (ei_decode_tuple_header(buf, index, &arity) < 0 || arity != 5 ||
        ei_decode_atom(buf, index, atom) < 0 || strcmp(atom, "py_ref") != 0) {
        ref_error("malformed object reference");
        return -1;
    }
    int ctx_start = *index;
    long ctx_end = etf_skip(buf, len, (size_t)*index, 0);
    if (ctx_end < 0) {
        ref_error("malformed object reference");
        return -1;
    }
    *index = (int)ctx_end;
    size_t ctx_len = (size_t)(*index - ctx_start);
    if (g_ctx_len > 0 && (ctx_len != g_ctx_len || memcmp(buf + ctx_start, g_ctx, ctx_len) != 0)) {
        ref_error("the object reference belongs to another context");
        return -1;
    }
    if (ei_decode_ulonglong(buf, index, &inc) < 0) {
        ref_error("malformed object reference");
        return -1;
    }
    if (inc != g_incarnation) {
        ref_error("the object reference is from before the context restarted");
        return -1;
    }
    int owner_start = *index;
    long owner_end = -1;
    if (ei_get_type(buf, index, &type, &size) == 0 &&
        (type == ERL_PID_EXT || type == ERL_NEW_PID_EXT)) {
        owner_end = etf_skip(buf, len, (size_t)*index, 0);
    }
    if (owner_end < 0) {
        ref_error("malformed object reference");
        return -1;
    }
    *index = (int)owner_end;
    int owner_len = *index - owner_start;
    if (ei_decode_longlong(buf, index, &num) < 0) {
        ref_error("malformed object reference");
        return -1;
    }
    PyObject *key = PyBytes_FromStringAndSize(buf + owner_start, owner_len); // owned
    if (key == NULL) {
        return -1;
    }
    *refs = PyDict_GetItemWithError(g_refs, key);
    Py_DECREF(key);
    if (*refs == NULL && PyErr_Occurred()) {
        return -1;
    }
    *id = PyLong_FromLongLong(num);
    return *id != NULL ? 0 : -1;
}

PyObject *env_ref_get(const char *buf, size_t len, int *index)
{
    PyObject *refs; // borrowed
    PyObject *id;   // owned
    if (parse_ref(buf, len, index, &refs, &id) < 0) {
        return NULL;
    }
    PyObject *obj = refs != NULL ? PyDict_GetItemWithError(refs, id) : NULL; // borrowed
    Py_DECREF(id);
    if (obj == NULL) {
        if (!PyErr_Occurred()) {
            ref_error("the object reference was released, or its owner process died");
        }
        return NULL;
    }
    return Py_NewRef(obj);
}

int env_ref_release(const char *buf, size_t len, int *index)
{
    PyObject *refs; // borrowed
    PyObject *id;   // owned
    if (parse_ref(buf, len, index, &refs, &id) < 0) {
        PyErr_Clear();
        return 0;
    }
    int existed = refs != NULL && PyDict_DelItem(refs, id) == 0;
    PyErr_Clear();
    Py_DECREF(id);
    return existed;
}
