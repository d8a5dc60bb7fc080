/*
 * The libuv loop thread: reads frames from Erlang while the Python thread is busy
 * (reader.c decides who reads), forwards whatever reaches fd 1/2 as output frames
 * (within the output credit window), takes over writing when the pipe to Erlang
 * is full, and runs the exit watchdog.
 * It never touches a PyObject.
 */
#ifndef PYPORT_LOOP_H
#define PYPORT_LOOP_H

#include <stddef.h>

typedef struct {
    int in_fd;         /* protocol: frames from Erlang */
    int out_fd;        /* protocol: frames to Erlang (non-blocking) */
    int capture_fd[2]; /* read ends of the pipes behind fd 1 and fd 2, or -1 */
    int exit_grace_ms; /* after stdin closes, exit at most this much later */
} loop_cfg_t;

/// Starts the loop thread with all signals blocked in it (aborts if it cannot).
void loop_start(const loop_cfg_t *cfg);

/// Wakes the loop thread (the outbox parked a write, reading changes hands,
/// credit returned). Any thread; does nothing before loop_start. main.c hands it
/// to the outbox, the reader and the credit windows, which never include this
/// file.
void loop_wake(void);

/// Erlang has gone: exit within exit_grace_ms even if Python is stuck. Any thread.
void loop_exit_soon(void);

/// Stops the loop thread and joins it. Python thread, at shutdown.
void loop_stop(void);

#endif
