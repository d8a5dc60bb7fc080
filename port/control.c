/*
 * Running-request tracking and cross-thread interruption (see control.h).
 * Invariant: the stack, the claimed id and the pending set change only under
 * g_mu, so a requester that finds its target neither claimed nor on the stack
 * knows it has ended (or never came), and a pending action is never added for a
 * request that has already ended. The top of the stack is also published through
 * atomics for lock-free readers (info, output tagging).
 */
#include "control.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "log.h"
#include "memory.h"

#define CTL_MAX_DEPTH 1024

/* At most one action of each kind per live request (the stack and the claimed
   one); more cannot be pending. */
#define CTL_MAX_PENDING (3 * (CTL_MAX_DEPTH + 1))

typedef struct {
    int64_t target;
    ctl_action_t action;
} pending_t;

static pthread_t g_python_thread;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int64_t g_ids[CTL_MAX_DEPTH];
static int g_ops[CTL_MAX_DEPTH];
static int64_t g_started[CTL_MAX_DEPTH];
static atomic_int g_depth;
static _Atomic int64_t g_top_id;
static atomic_int g_top_op;
static _Atomic int64_t g_top_started;
static _Atomic int64_t g_claimed; /* taken from the inbox, not yet begun; 0: none */
static pending_t g_pending[CTL_MAX_PENDING];
static int g_npending;
static int64_t *g_tasks; /* owned: requests answered by the event loop, in flight */
static int g_ntasks;
static int g_tasks_cap;

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

/* ---- the pending set (g_mu held) ------------------------------------------ */

static void forget_locked(int64_t target)
{
    for (int i = 0; i < g_npending;) {
        if (g_pending[i].target == target) {
            g_pending[i] = g_pending[--g_npending];
        } else {
            i++;
        }
    }
}

static void add_locked(ctl_action_t action, int64_t target)
{
    for (int i = 0; i < g_npending; i++) {
        if (g_pending[i].target == target && g_pending[i].action == action) {
            return;
        }
    }
    if (g_npending == CTL_MAX_PENDING) {
        log_warn("too many pending interrupts: one dropped");
        return;
    }
    g_pending[g_npending].target = target;
    g_pending[g_npending].action = action;
    g_npending++;
}

static int live_locked(int64_t target)
{
    if (target == 0) {
        return 0;
    }
    if (atomic_load(&g_claimed) == target) {
        return 1;
    }
    int d = atomic_load(&g_depth);
    for (int i = 0; i < d; i++) {
        if (atomic_load(&g_ids[i]) == target) {
            return 1;
        }
    }
    for (int i = 0; i < g_ntasks; i++) {
        if (g_tasks[i] == target) {
            return 1;
        }
    }
    return 0;
}

/* ---- the stack (Python thread) --------------------------------------------- */

static void publish_top(void)
{
    int d = atomic_load(&g_depth);
    if (d > 0) {
        atomic_store(&g_top_op, g_ops[d - 1]);
        atomic_store(&g_top_started, g_started[d - 1]);
        atomic_store(&g_top_id, atomic_load(&g_ids[d - 1]));
    } else {
        atomic_store(&g_top_id, 0);
    }
}

void ctl_claim(int64_t id)
{
    pthread_mutex_lock(&g_mu);
    atomic_store(&g_claimed, id);
    pthread_mutex_unlock(&g_mu);
}

void ctl_unclaim(int64_t id)
{
    pthread_mutex_lock(&g_mu);
    if (atomic_load(&g_claimed) == id) {
        atomic_store(&g_claimed, 0);
    }
    forget_locked(id);
    pthread_mutex_unlock(&g_mu);
}

int ctl_begin(int64_t id, int op)
{
    pthread_mutex_lock(&g_mu);
    int d = atomic_load(&g_depth);
    if (d >= CTL_MAX_DEPTH) {
        pthread_mutex_unlock(&g_mu);
        return -1;
    }
    atomic_store(&g_ids[d], id);
    g_ops[d] = op;
    g_started[d] = ctl_now_ms();
    atomic_store(&g_depth, d + 1);
    if (atomic_load(&g_claimed) == id) {
        atomic_store(&g_claimed, 0);
    }
    publish_top();
    pthread_mutex_unlock(&g_mu);
    return 0;
}

void ctl_end(void)
{
    pthread_mutex_lock(&g_mu);
    int d = atomic_load(&g_depth);
    if (d > 0) {
        int64_t id = atomic_load(&g_ids[d - 1]);
        atomic_store(&g_depth, d - 1);
        if (g_npending > 0) {
            forget_locked(id);
        }
    }
    publish_top();
    pthread_mutex_unlock(&g_mu);
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

/* ---- requests and the signal handler -------------------------------------- */

int ctl_request(ctl_action_t action, int64_t target)
{
    pthread_mutex_lock(&g_mu);
    int live = live_locked(target);
    if (live) {
        add_locked(action, target);
    }
    pthread_mutex_unlock(&g_mu);
    if (live) {
        pthread_kill(g_python_thread, CTL_SIGNAL);
    }
    return live;
}

/* Takes the pending action aimed at `who` (cancel first), re-signalling when
   another remains for it. */
static ctl_action_t take_for(int64_t who)
{
    ctl_action_t action = CTL_NONE;
    int more = 0;
    pthread_mutex_lock(&g_mu);
    if (who != 0 && g_npending > 0) {
        int found = -1;
        for (int i = 0; i < g_npending; i++) {
            if (g_pending[i].target == who && (found < 0 || g_pending[i].action == CTL_CANCEL)) {
                found = i;
            }
        }
        if (found >= 0) {
            action = g_pending[found].action;
            g_pending[found] = g_pending[--g_npending];
            for (int i = 0; i < g_npending; i++) {
                more |= g_pending[i].target == who;
            }
        }
    }
    pthread_mutex_unlock(&g_mu);
    if (more) {
        /* Signals coalesce: another action for this request is raised at the
           next check, even if this one is swallowed. */
        pthread_kill(g_python_thread, CTL_SIGNAL);
    }
    return action;
}

ctl_action_t ctl_take(void)
{
    return take_for(ctl_current());
}

ctl_action_t ctl_take_task(int64_t id)
{
    return take_for(id);
}

void ctl_task_add(int64_t id)
{
    pthread_mutex_lock(&g_mu);
    if (g_ntasks == g_tasks_cap) {
        g_tasks_cap = g_tasks_cap > 0 ? 2 * g_tasks_cap : 64;
        g_tasks = mem_realloc(g_tasks, (size_t)g_tasks_cap * sizeof *g_tasks);
    }
    g_tasks[g_ntasks++] = id;
    pthread_mutex_unlock(&g_mu);
}

void ctl_task_remove(int64_t id)
{
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < g_ntasks; i++) {
        if (g_tasks[i] == id) {
            g_tasks[i] = g_tasks[--g_ntasks];
            break;
        }
    }
    forget_locked(id);
    pthread_mutex_unlock(&g_mu);
}
