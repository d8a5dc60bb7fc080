/*
 * Process-bound environments and object references. Each calling Erlang pid has
 * a namespace (a dict with __name__ == '__main__', a copy of the preload
 * namespace) and a table of the Python objects it holds by reference, created on
 * first use and dropped when Erlang says the pid died. A reference is the term
 * {py_ref, Context, Incarnation, Owner, RefId}; it is valid on the context (and
 * OS process incarnation) that made it, until released or its owner dies.
 * Python thread only; the number of namespaces is published in stats.c.
 */
#ifndef PYPORT_ENVS_H
#define PYPORT_ENVS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>

/// Creates the tables and registers the reference hooks of the codec; call once
/// after Py_Initialize. Returns 0 or -1 (error set).
int env_init(void);

/// Returns the namespace of the pid whose ETF bytes are pid/len (borrowed),
/// creating it if needed (then *created = 1). NULL with an error set on failure.
PyObject *env_get(const char *pid, size_t len, int *created);

/// Drops the namespace and the references of a pid; returns 1 if it had either.
int env_drop(const char *pid, size_t len);

/// New namespaces start as a copy of `ns` (the preload namespace); NULL: empty.
void env_set_template(PyObject *ns);

/// Sets the ETF bytes of the context's pid, written into every reference.
void env_set_context(const char *pid, size_t len);

typedef struct {
    const char *pid;
    size_t len;
} env_owner_t;

/// Makes pid/len (borrowed; NULL for none) the owner of references created from
/// now on, and returns the previous owner for env_owner_restore.
env_owner_t env_owner_set(const char *pid, size_t len);

/// Restores an owner returned by env_owner_set.
void env_owner_restore(env_owner_t prev);

/// Returns the current owner's pid as a new erlang.Pid, or None.
PyObject *env_owner_pid(void);

/// Looks up the object of the {py_ref, ...} term at *index (new reference), or
/// NULL with ValueError naming the problem (released, other context, restarted).
PyObject *env_ref_get(const char *buf, size_t len, int *index);

/// Releases the reference whose term is at *index; returns 1 if it existed.
int env_ref_release(const char *buf, size_t len, int *index);

#endif
