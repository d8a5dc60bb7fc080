/*
 * Running-request tracking and cross-thread interruption (see control.h).
 * The stack lives in plain arrays written only by the Python thread; the loop
 * thread reads the depth and top through C11 atomics, so a stale read can only
 * make it send a signal that the handler then ignores.
 */
#include "control.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define CTL_MAX_DEPTH 1024

static pthread_t g_python_thread;
static int64_t g_ids[CTL_MAX_DEPTH];
static int g_ops[CTL_MAX_DEPTH];
static int64_t g_started[CTL_MAX_DEPTH];
static atomic_int g_depth;
static _Atomic int64_t g_top_id;
static atomic_int g_top_op;
static _Atomic int64_t g_top_started;

static atomic_int g_action;
static _Atomic int64_t g_action_target;

int64_t ctl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ctl_init(void)
{
    g_python_thread = pthread_self();
}

int ctl_is_python_thread(void)
{
    return pthread_equal(pthread_self(), g_python_thread);
}

static void publish_top(void)
{
    int d = atomic_load(&g_depth);
    if (d > 0) {
        atomic_store(&g_top_op, g_ops[d - 1]);
        atomic_store(&g_top_started, g_started[d - 1]);
        atomic_store(&g_top_id, g_ids[d - 1]);
    } else {
        atomic_store(&g_top_id, 0);
    }
}

int ctl_begin(int64_t id, int op)
{
    int d = atomic_load(&g_depth);
    if (d >= CTL_MAX_DEPTH) {
        return -1;
    }
    g_ids[d] = id;
    g_ops[d] = op;
    g_started[d] = ctl_now_ms();
    atomic_store(&g_depth, d + 1);
    publish_top();
    return 0;
}

void ctl_end(void)
{
    int d = atomic_load(&g_depth);
    if (d > 0) {
        atomic_store(&g_depth, d - 1);
    }
    publish_top();
}

int64_t ctl_current(void)
{
    return atomic_load(&g_top_id);
}

void ctl_current_info(int *op, int64_t *started_ms)
{
    *op = atomic_load(&g_top_op);
    *started_ms = atomic_load(&g_top_started);
}

int ctl_depth(void)
{
    return atomic_load(&g_depth);
}

void ctl_request(ctl_action_t action, int64_t target)
{
    if (atomic_load(&g_depth) == 0) {
        return;
    }
    atomic_store(&g_action_target, target);
    atomic_store(&g_action, (int)action);
    pthread_kill(g_python_thread, CTL_SIGNAL);
}

ctl_action_t ctl_take(void)
{
    ctl_action_t action = (ctl_action_t)atomic_exchange(&g_action, CTL_NONE);
    if (action == CTL_NONE) {
        return CTL_NONE;
    }
    int d = atomic_load(&g_depth);
    if (d == 0) {
        return CTL_NONE; /* it finished before the signal was handled */
    }
    if (action == CTL_CANCEL) {
        int64_t target = atomic_load(&g_action_target);
        for (int i = 0; i < d; i++) {
            if (g_ids[i] == target) {
                return CTL_CANCEL;
            }
        }
        return CTL_NONE;
    }
    return action;
}
