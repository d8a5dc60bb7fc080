/*
 * A bounded ETF validator for the fuzz targets: says whether bytes hold exactly
 * one version byte and one term whose every length and count fits in the bytes
 * (the check ei itself does not make). Pure function, any thread.
 */
#ifndef PYPORT_FUZZ_ETF_CHECK_H
#define PYPORT_FUZZ_ETF_CHECK_H

#include <stddef.h>

/// Returns 1 when buf[0..len) is 131 followed by exactly one well-formed term.
int etf_well_formed(const unsigned char *buf, size_t len);

#endif
