/*
 * Guarded copies of fuzz inputs: the bytes end exactly where an unreadable page
 * begins, so a read past the input faults at once even inside libei, which is not
 * built with the sanitizers. One thread; a copy lives until the next call.
 */
#ifndef PYPORT_FUZZ_GUARD_H
#define PYPORT_FUZZ_GUARD_H

#include <stddef.h>

/// Returns a copy of n bytes of p that ends right before a PROT_NONE page.
char *guard_copy(const void *p, size_t n);

#endif
