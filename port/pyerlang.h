/*
 * The `erlang` module seen by Python: the Atom (a str subclass), Term, Pid and
 * Ref types that carry Erlang terms through Python unchanged, the writers that
 * replace sys.stdout/sys.stderr, and the handler of PYPORT's interrupt signal.
 * Python thread (or any thread holding the GIL) only.
 */
#ifndef PYPORT_PYERLANG_H
#define PYPORT_PYERLANG_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

extern PyTypeObject pyerl_AtomType;
extern PyTypeObject pyerl_TermType;
extern PyTypeObject pyerl_PidType;
extern PyTypeObject pyerl_RefType;

/// Registers the module with the interpreter; call before Py_Initialize.
void pyerl_register(void);

/// After Py_Initialize: imports the module, installs sys.stdout/sys.stderr
/// writers and the signal handlers. Returns 0, or -1 with a Python error set.
int pyerl_setup(void);

/// Returns a new Atom for UTF-8 text, or NULL with an error set.
PyObject *pyerl_atom_new(const char *utf8, size_t len);

/// Returns a new Term of `type` (Term, Pid or Ref) holding the ETF bytes of one
/// term (no version byte), or NULL with an error set.
PyObject *pyerl_term_new(PyTypeObject *type, const char *etf, size_t len);

/// For a Term (or subclass): sets *etf/*len to its bytes (borrowed) and returns 1;
/// returns 0 for any other object.
int pyerl_term_bytes(PyObject *obj, const char **etf, Py_ssize_t *len);

/// Sends what sys.stdout/sys.stderr have buffered. Call with the GIL.
void pyerl_flush_output(void);

/// The exception raised in code whose request timed out (erlang.RequestTimeout).
extern PyObject *pyerl_RequestTimeout;

/// The exception raised for an Erlang exception in erlang.call (erlang.Error).
extern PyObject *pyerl_Error;

/// Raises erlang.Error with `reason` (the {Class, Reason} tuple from Erlang).
void pyerl_raise_error(PyObject *reason);

#endif
