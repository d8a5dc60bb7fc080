/*
 * A bounded walk over ETF bytes: says whether a term fits in its buffer. ei
 * trusts the lengths and counts inside a term, so every frame from Erlang is
 * walked once, before anything decodes it; after that, ei and the codec never
 * read past the frame, and no count can claim more elements than there are
 * bytes. Pure functions, any thread.
 */
#ifndef PYPORT_ETF_H
#define PYPORT_ETF_H

#include <stddef.h>

/// Returns the offset just past the term starting at buf[pos], or -1 when the
/// term is malformed, runs past len, or nests deeper than depth.
long etf_skip(const char *buf, size_t len, size_t pos, int depth);

/// Told about one atom: its name bytes (Latin-1 when latin1, else UTF-8).
/// Returns 0 to go on, nonzero to stop.
typedef int (*etf_atom_fn)(void *ctx, const char *name, size_t n, int latin1);

/// As etf_skip, calling atom for every atom of the term, those inside pids,
/// ports, references, funs and exports included. Returns the end offset, -1
/// when the term is malformed, or -2 when atom returned nonzero.
long etf_each_atom(const char *buf, size_t len, size_t pos, int depth, etf_atom_fn atom, void *ctx);

/// Returns 1 when buf[0..len) is the version byte 131 followed by exactly one
/// well-formed term nesting at most depth levels.
int etf_frame_ok(const char *buf, size_t len, int depth);

#endif
