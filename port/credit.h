/*
 * Credit windows for the frames Python can emit without bound (docs/protocol.md,
 * "Flow control"): `output` (output and log frames) and `send` (send frames).
 * Erlang sets each window in bytes (setup: output_window, send_window; 0 means
 * unlimited) and returns credit with {credit, Kind, Bytes} as it consumes them.
 * A frame may leave while the bytes in flight plus its own size fit the window,
 * or when nothing is in flight (a frame larger than the window goes alone, so
 * nothing deadlocks). Thread-safe (one mutex); no Python. A returned credit
 * wakes the threads that wait and the loop thread (the fd 1/2 capture).
 */
#ifndef PYPORT_CREDIT_H
#define PYPORT_CREDIT_H

#include <stddef.h>
#include <stdint.h>

typedef enum { CREDIT_OUTPUT, CREDIT_SEND, CREDIT_KINDS } credit_kind_t;

/// Sets the function that wakes the loop thread when credit returns. Call once.
void credit_init(void (*wake_loop)(void));

/// Sets the window of kind (bytes; 0: unlimited). Credit in flight is kept.
void credit_set_window(credit_kind_t kind, int64_t bytes);

/// Credit came back from Erlang: bytes of frames of kind it has consumed.
void credit_return(credit_kind_t kind, int64_t bytes);

/// Takes credit for a frame of n bytes if the window allows it now: returns 1
/// (the frame may be sent), or 0.
int credit_try(credit_kind_t kind, size_t n);

/// Charges n bytes that are sent whatever the window (the loop thread's fd 1/2
/// capture, which reads at most credit_room bytes).
void credit_charge(credit_kind_t kind, size_t n);

/// Returns how many bytes a frame of kind may have now (SIZE_MAX: unlimited; the
/// whole window when nothing is in flight).
size_t credit_room(credit_kind_t kind);

/// Returns 1 when no credit of kind is in flight.
int credit_idle(credit_kind_t kind);

/// Waits until credit returns or, with interruptible, a signal arrives; returns
/// at once if credit returned since `seen` (credit_seq). Call without the GIL.
void credit_wait(uint64_t seen, int interruptible);

/// Returns a counter that every credit_return and window change increments.
uint64_t credit_seq(void);

#endif
