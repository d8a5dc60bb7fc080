/*
 * The atom budget (docs/protocol.md, setup max_atoms): distinct atom names the
 * port sends that did not come from Erlang each use one unit of the budget; past
 * it the codec refuses to encode a new name (erlang.AtomLimitError), so Python
 * cannot grow the node's atom table without bound. Names decoded from frames
 * are known (a bounded set); names already sent are free to send again. No
 * budget (the default) costs nothing. Not thread-safe: the codec's callers hold
 * the GIL.
 */
#ifndef PYPORT_ATOMS_H
#define PYPORT_ATOMS_H

#include <stddef.h>
#include <stdint.h>

/// Sets how many new atom names may still be sent (-1: no limit). Names already
/// sent stay free.
void atoms_set_budget(int64_t remaining);

/// Returns 1 when a budget is set (then the codec tells about the names it meets).
int atoms_limited(void);

/// A name that came from Erlang (UTF-8, or Latin-1 when latin1). Always returns 0
/// (an etf_atom_fn).
int atoms_known(void *ctx, const char *name, size_t n, int latin1);

/// A name about to be sent: returns 0 if it may be (known, sent before, or within
/// the budget, which it then uses), -1 if the budget is used up (an etf_atom_fn).
int atoms_use(void *ctx, const char *name, size_t n, int latin1);

#endif
