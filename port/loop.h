/*
 * The libuv loop thread: reads frames from Erlang and queues them for the Python
 * thread, answers the ops that must not wait for Python (cancel, interrupt, info),
 * forwards whatever reaches fd 1/2 as output frames, and takes over writing when
 * the pipe to Erlang is full. It never touches a PyObject.
 */
#ifndef PYPORT_LOOP_H
#define PYPORT_LOOP_H

#include <stddef.h>

typedef struct {
    int in_fd;             /* protocol: frames from Erlang */
    int out_fd;            /* protocol: frames to Erlang (non-blocking) */
    int capture_fd[2];     /* read ends of the pipes behind fd 1 and fd 2, or -1 */
    size_t max_frame;      /* frames above this are refused */
    int exit_grace_ms;     /* after stdin closes, exit at most this much later */
    char python_version[32];
} loop_cfg_t;

/// Starts the loop thread with all signals blocked in it. Returns 0 or -1.
void loop_start(const loop_cfg_t *cfg);

/// Wakes the loop thread (e.g. the outbox parked a write). Any thread.
void loop_wake(void);

/// Stops the loop thread and joins it. Python thread, at shutdown.
void loop_stop(void);

#endif
