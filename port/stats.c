/*
 * Counters for info (see stats.h): written by the Python thread, read by
 * whichever thread answers info.
 */
#include "stats.h"

#include <stdatomic.h>

static _Atomic int64_t g_envs;
static _Atomic int64_t g_calls;

void stats_envs_add(int delta)
{
    atomic_fetch_add(&g_envs, delta);
}

int64_t stats_envs(void)
{
    return atomic_load(&g_envs);
}

void stats_call_answered(void)
{
    atomic_fetch_add(&g_calls, 1);
}

int64_t stats_calls(void)
{
    return atomic_load(&g_calls);
}
