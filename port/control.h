/*
 * What the Python thread is doing now, readable by other threads, and the way
 * they interrupt it. A requester (the thread that read a cancel or interrupt
 * frame) records an action for a target request (cancel it, KeyboardInterrupt,
 * MemoryError) and sends CTL_SIGNAL to the Python thread, whose Python-level
 * handler (erlang._signal, pyerlang.c) asks ctl_take what to raise. An action is
 * raised only in its own target's frame: while another request runs on top of
 * the target (a nested request served during the target's erlang.call), it
 * waits, and the serving loop raises it once the target is on top again.
 * Pending actions form a set (two that arrive together are both kept); a cancel
 * of a request that the Python thread has taken from the inbox but not yet begun
 * is kept until it begins (then ctl_take reports it at once) or ends, and one of
 * a coroutine or stream is raised in it if it is running when the signal is
 * handled (ctl_take_task), or dropped when it is answered.
 * Thread-safe: the stack and the set change under one mutex; reads of the top
 * are atomics.
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

/// Python thread, with the inbox locked: request `id` was taken from the inbox
/// and is about to begin (a cancel that finds it neither queued nor running
/// still reaches it).
void ctl_claim(int64_t id);

/// Python thread: the claimed request will not begin after all (it was refused
/// before it ran); forgets its pending actions.
void ctl_unclaim(int64_t id);

/// Python thread: request `id` (op index `op`) starts; nests over any running one.
/// Returns 0, or -1 when nesting is deeper than the stack allows.
int ctl_begin(int64_t id, int op);

/// Python thread: the innermost request ends; its pending actions are dropped.
void ctl_end(void);

/// Returns the innermost running request id, 0 when idle. Any thread.
int64_t ctl_current(void);

/// Returns the op index and the monotonic start time (ms) of the innermost
/// running request; only meaningful while ctl_current() != 0. Any thread.
void ctl_current_info(int *op, int64_t *started_ms);

/// Returns the number of nested running requests. Any thread.
int ctl_depth(void);

/// Any thread: asks the Python thread to stop request `target` (CTL_CANCEL),
/// or to raise KeyboardInterrupt (CTL_INTERRUPT) or MemoryError (CTL_MEMORY) in
/// request `target`. Returns 1 if the target is running or about to begin (the
/// action is kept and the Python thread signalled), 0 if it is neither.
int ctl_request(ctl_action_t action, int64_t target);

/// Python thread: returns the pending action aimed at the innermost running
/// request (CTL_NONE if none) and forgets it. Cancel comes first; if another
/// remains for that request, the signal is sent again so it is raised next.
ctl_action_t ctl_take(void);

/// Python thread: request `id` is answered by the event loop (a coroutine or a
/// stream) from now on; a cancel of it counts as live until ctl_task_remove.
void ctl_task_add(int64_t id);

/// Python thread: the event loop answered request `id`; its actions are dropped.
void ctl_task_remove(int64_t id);

/// Python thread: as ctl_take, for the event-loop request `id` whose coroutine
/// runs now (ctl_depth() is 0 while the event loop runs a task).
ctl_action_t ctl_take_task(int64_t id);

/// Returns a monotonic clock in milliseconds. Any thread.
int64_t ctl_now_ms(void);

#endif
