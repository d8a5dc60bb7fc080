/*
 * What the Python thread is doing now, readable by the loop thread, and the way
 * the loop thread interrupts it: it records an action (cancel a request,
 * KeyboardInterrupt, MemoryError) and sends CTL_SIGNAL to the Python thread,
 * whose Python-level handler (erlang._signal, pyerlang.c) asks ctl_take what to
 * raise in the running code. The running-request stack is written by the Python
 * thread only; other threads read atomics. Thread-safe as documented per function.
 */
#ifndef PYPORT_CONTROL_H
#define PYPORT_CONTROL_H

#include <signal.h>
#include <stdint.h>

/* The signal that carries an action to the Python thread. */
#define CTL_SIGNAL SIGUSR2

typedef enum { CTL_NONE, CTL_CANCEL, CTL_INTERRUPT, CTL_MEMORY } ctl_action_t;

/// Records the calling thread as the Python thread. Call once, on it.
void ctl_init(void);

/// Returns 1 when called on the Python thread recorded by ctl_init. Any thread.
int ctl_is_python_thread(void);

/// Python thread: request `id` (op index `op`) starts; nests over any running one.
/// Returns 0, or -1 when nesting is deeper than the stack allows.
int ctl_begin(int64_t id, int op);

/// Python thread: the innermost request ends.
void ctl_end(void);

/// Returns the innermost running request id, 0 when idle. Any thread.
int64_t ctl_current(void);

/// Returns the op index and the monotonic start time (ms) of the innermost
/// running request; only meaningful while ctl_current() != 0. Any thread.
void ctl_current_info(int *op, int64_t *started_ms);

/// Returns the number of nested running requests. Any thread.
int ctl_depth(void);

/// Loop thread: asks the Python thread to stop request `target` (CTL_CANCEL),
/// to raise KeyboardInterrupt (CTL_INTERRUPT), or MemoryError (CTL_MEMORY) in
/// whatever runs now. Does nothing if no request runs.
void ctl_request(ctl_action_t action, int64_t target);

/// Python thread, from the signal handler: returns the action to raise now
/// (CTL_NONE if none applies) and clears it.
ctl_action_t ctl_take(void);

/// Returns a monotonic clock in milliseconds. Any thread.
int64_t ctl_now_ms(void);

#endif
