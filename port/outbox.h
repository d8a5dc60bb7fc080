/*
 * Frames from any thread to Erlang over the protocol write fd. The first thread
 * that finds the outbox idle writes everything queued with one writev (so replies
 * that are ready together leave together); others just append. If the pipe is
 * full the loop thread takes over and waits for it to drain, so no thread that
 * must keep reading ever blocks on a write. Thread-safe.
 */
#ifndef PYPORT_OUTBOX_H
#define PYPORT_OUTBOX_H

#include <stddef.h>

/// Sets the non-blocking write fd and the function that wakes the loop thread.
void outbox_init(int fd, void (*wake_loop)(void));

/// Queues a whole frame (4-byte header included; ownership moves) and writes
/// everything queued unless another thread is writing.
void outbox_push(char *frame, size_t len);

/// Queues a whole frame without writing; a later outbox_push or outbox_flush sends it.
void outbox_queue(char *frame, size_t len);

/// Writes what is queued unless another thread is writing or the loop waits.
void outbox_flush(void);

/// Returns 1 when the loop thread must wait for the fd to become writable.
int outbox_parked(void);

/// Loop thread: the fd became writable; returns 1 while more remains to write.
int outbox_on_writable(void);

/// The process is about to exit: writes everything queued and then frame (not
/// owned), waiting for room in the pipe for at most within_ms, and keeps the
/// outbox locked so nothing follows. Allocates nothing. Any thread that does not
/// hold the outbox (exit_now never runs inside it).
void outbox_final(const char *frame, size_t len, int within_ms);

#endif
