/*
 * The writers that replace sys.stdout and sys.stderr: text printed by Python goes
 * to Erlang as output frames, tagged with the request that printed it (Erlang
 * hands it to that caller's group leader). Any thread holding the GIL.
 */
#ifndef PYPORT_OUTPUT_H
#define PYPORT_OUTPUT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/// Installs the writers as sys.stdout and sys.stderr. After Py_Initialize.
/// Returns 0, or -1 with a Python error set.
int output_init(void);

/// Sends what sys.stdout/sys.stderr have buffered (before a request's answer).
void output_flush(void);

#endif
