/*
 * Process-bound environments: one Python namespace (a dict with
 * __name__ == '__main__') per calling Erlang pid, created on first use and
 * dropped when Erlang says the pid has died. Python thread only, except
 * env_count, which any thread may read.
 */
#ifndef PYPORT_ENVS_H
#define PYPORT_ENVS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>

/// Creates the table; call once after Py_Initialize. Returns 0 or -1 (error set).
int env_init(void);

/// Returns the environment of the pid whose ETF bytes are pid/len (borrowed),
/// creating it if needed (then *created = 1). NULL with an error set on failure.
PyObject *env_get(const char *pid, size_t len, int *created);

/// Drops the environment of a pid; returns 1 if it existed.
int env_drop(const char *pid, size_t len);

/// Returns the number of live environments. Any thread.
size_t env_count(void);

#endif
