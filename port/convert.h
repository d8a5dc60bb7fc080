/*
 * The codec: Erlang terms (ETF, decoded with ei) to Python objects and back, as
 * tabled in docs/types.md, and Python exceptions to error terms. One pass,
 * linear in the size of the term, with a nesting limit that gives a clear error
 * instead of a stack overflow. Builds on the term types of terms.c. Any thread
 * holding the GIL.
 */
#ifndef PYPORT_CONVERT_H
#define PYPORT_CONVERT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include "buf.h"

/// Sets the nesting limit for both directions (default PYPORT_DEFAULT_MAX_DEPTH).
void conv_set_max_depth(int depth);

/// Sets how many new atom names the codec may still send (-1: no limit; see
/// atoms.h). Encoding a new name past it fails with erlang.AtomLimitError.
void conv_set_atom_budget(int64_t remaining);

/// Hooks that issue object references: `to_ref` encodes an object with no Erlang
/// form (returns 0, or -1 with an error set); `from_ref` turns a {py_ref, ...}
/// tuple at *index into its object (new reference) or returns NULL with an error
/// set. Unset, objects become their repr and {py_ref, ...} stays a tuple.
typedef int (*conv_to_ref_fn)(buf_t *b, PyObject *obj);
typedef PyObject *(*conv_from_ref_fn)(const char *buf, size_t len, int *index);
void conv_set_ref_hooks(conv_to_ref_fn to_ref, conv_from_ref_fn from_ref);

/// Decodes the term at buf[*index] (no version byte) of the len-byte input into a
/// new reference and advances *index. The input must have passed proto_peek (or
/// etf_frame_ok): ei trusts lengths. On failure returns NULL with ValueError set.
PyObject *conv_to_py(const char *buf, size_t len, int *index);

/// Decodes an atom, binary or charlist at *index into a new exact str (names of
/// modules, functions, keyword arguments). On failure NULL with ValueError set.
PyObject *conv_name(const char *buf, size_t len, int *index);

/// Decodes a map with atom/binary/string keys into a new dict with str keys
/// (kwargs, locals). On failure NULL with ValueError set.
PyObject *conv_kwargs(const char *buf, size_t len, int *index);

/// Appends obj as one ETF term (no version byte). Returns 0, or -1 with a Python
/// error set; b may then hold a partial term and the caller must truncate it.
int conv_from_py(buf_t *b, PyObject *obj);

/// Appends the pending Python exception as {pyerr, Type, Message, Traceback}
/// (strings) and clears it. There must be an exception set.
void conv_exception(buf_t *b);

/// Appends {badarg, Message} for the pending Python exception and clears it.
void conv_badarg(buf_t *b);

/// Decodes the body of {callback_reply, CbId, ok | error, Term} at index: the
/// result (new reference), or NULL with the Erlang error raised as erlang.Error
/// (ValueError when malformed). *cb_id (if not NULL) gets CbId.
PyObject *conv_callback_reply(const char *frame, size_t len, int index, int64_t *cb_id);

#endif
