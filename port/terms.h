/*
 * The Python types that carry Erlang terms through Python, which the codec
 * builds and tests: Atom (a str subclass), Term (any term kept as its ETF bytes),
 * and its subclasses Pid and Ref; and the exceptions the port raises in Python
 * (RequestTimeout, Error, AtomLimitError). The erlang module (pyerlang.c) exposes them. Any
 * thread holding the GIL.
 */
#ifndef PYPORT_TERMS_H
#define PYPORT_TERMS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>

/* The head of a static type object: PyVarObject_HEAD_INIT(NULL, 0) written as
   the designated member it expands to, so that formatting tools see where it
   ends (the macro hides its trailing comma). */
#define TERMS_TYPE_HEAD .ob_base = {PyObject_HEAD_INIT(NULL) 0}

extern PyTypeObject terms_AtomType;
extern PyTypeObject terms_TermType;
extern PyTypeObject terms_PidType;
extern PyTypeObject terms_RefType;

/// The exception raised in code whose request timed out (erlang.RequestTimeout).
extern PyObject *terms_RequestTimeout;

/// The exception raised for an Erlang exception in erlang.call (erlang.Error).
extern PyObject *terms_Error;

/// The exception raised when a value to send would exceed the atom budget
/// (erlang.AtomLimitError, a ValueError).
extern PyObject *terms_AtomLimitError;

/// Readies the types and creates the exceptions, once (the erlang module's
/// init calls it). Returns 0, or -1 with a Python error set.
int terms_init(void);

/// Adds the types and exceptions to module m. Returns 0 or -1 with an error set.
int terms_add_to(PyObject *m);

/// Returns a new Atom for UTF-8 text, or NULL with an error set.
PyObject *terms_atom_new(const char *utf8, size_t len);

/// Returns a new Term of `type` (Term, Pid or Ref) holding the ETF bytes of one
/// term (no version byte), or NULL with an error set.
PyObject *terms_new(PyTypeObject *type, const char *etf, size_t len);

/// For a Term (or subclass): sets *etf/*len to its bytes (borrowed) and returns 1;
/// returns 0 for any other object.
int terms_bytes(PyObject *obj, const char **etf, Py_ssize_t *len);

/// Raises erlang.Error with `reason` (the {Class, Reason} tuple from Erlang).
void terms_raise_error(PyObject *reason);

#endif
