/*
 * Process-bound environments (see envs.h): a dict from the pid's ETF bytes to
 * its namespace dict. The last pid used is remembered, since a caller usually
 * sends several requests in a row. Python thread only; the count is atomic.
 */
#include "envs.h"

#include <stdatomic.h>
#include <string.h>

static PyObject *g_table;   /* owned: bytes(pid) -> dict */
static PyObject *g_last_key; /* owned: bytes of the last pid looked up */
static PyObject *g_last_env; /* borrowed from g_table */
static atomic_size_t g_count;

int env_init(void)
{
    g_table = PyDict_New();
    return g_table != NULL ? 0 : -1;
}

static PyObject *env_new(void)
{
    PyObject *env = PyDict_New(); // owned
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
        atomic_fetch_add(&g_count, 1);
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
    PyObject *env = PyDict_GetItemWithError(g_table, key); // borrowed
    int existed = env != NULL;
    if (existed) {
        /* Clear first so cycles through the namespace's functions free now. */
        Py_INCREF(env);
        if (PyDict_DelItem(g_table, key) == 0) {
            atomic_fetch_sub(&g_count, 1);
        }
        PyDict_Clear(env);
        Py_DECREF(env);
    }
    PyErr_Clear();
    Py_DECREF(key);
    return existed;
}

size_t env_count(void)
{
    return atomic_load(&g_count);
}
