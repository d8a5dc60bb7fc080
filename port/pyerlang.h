/*
 * The `erlang` module seen by Python: atom, call, send and self, the types and
 * exceptions of terms.c, the functions the asyncio bridge adds (async.c), and
 * the handler of the interrupt signal (CTL_SIGNAL, and SIGINT). Nothing in the
 * port depends on this file but main.c: the module is a client of the rest.
 * Python thread (or any thread holding the GIL) only.
 */
#ifndef PYPORT_PYERLANG_H
#define PYPORT_PYERLANG_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/// Registers the module with the interpreter; call before Py_Initialize.
void pyerl_register(void);

/// After Py_Initialize: imports the module and installs the signal handlers.
/// Returns 0, or -1 with a Python error set.
int pyerl_setup(void);

#endif
