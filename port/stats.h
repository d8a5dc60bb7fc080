/*
 * Counters the Python thread publishes for the loop thread's answer to info:
 * live environments and requests answered. C11 atomics; any thread.
 */
#ifndef PYPORT_STATS_H
#define PYPORT_STATS_H

#include <stdint.h>

/// An environment was created (+1) or dropped (-1).
void stats_envs_add(int delta);

/// Returns the number of live environments.
int64_t stats_envs(void);

/// A request was answered.
void stats_call_answered(void);

/// Returns the number of requests answered so far.
int64_t stats_calls(void);

#endif
