/*
 * Who reads the pipe from Erlang. The idle Python thread reads it itself (poll on
 * the pipe and the inbox), so a request costs no thread hand-off. While Python is
 * busy, the loop thread reads, so cancellations, info and callback replies are
 * seen at once: it takes over when a request has run for RD_TAKEOVER_MS (a
 * timerfd armed by the Python thread) or when the Python thread runs the asyncio
 * event loop, and hands reading back when the Python thread is idle again. The
 * frame reader is shared under one mutex, and only the owner reads.
 */
#ifndef PYPORT_READER_H
#define PYPORT_READER_H

#include <stddef.h>
#include <stdint.h>

/* A request running longer than this lets the loop thread take over reading. */
#define RD_TAKEOVER_MS 1

/// Sets up the shared frame reader over the non-blocking fd, and the function
/// that wakes the loop thread when reading changes hands. Call once, first.
void rd_init(int fd, size_t max_frame, void (*wake_loop)(void));

/// Returns the timerfd the loop thread watches (see rd_on_timer).
int rd_timer_fd(void);

/* ---- the Python thread ----------------------------------------------------- */

/// Waits until a job arrives after inbox_seq() returned `seen`, a signal
/// arrives, or reading changes hands; reads the pipe meanwhile if it owns
/// reading, else asks for it back (unless the event loop runs). Call without the
/// GIL; the caller looks at the inbox again after it returns.
void rd_wait(uint64_t seen);

/// The Python thread starts work (a job): arms the takeover timer, which lets
/// the loop thread read once the thread has been busy RD_TAKEOVER_MS (and write
/// replies held back meanwhile).
void rd_busy(void);

/// The event loop is about to run (on = 1) or has returned (on = 0). While it
/// runs, the loop thread reads and the Python thread never takes reading back.
void rd_event_loop(int on);

/* ---- the loop thread ---------------------------------------------------------- */

/// Feeds bytes the loop thread read.
void rd_feed(const char *data, size_t n);

/// The loop thread saw end of file.
void rd_eof(void);

/// The takeover timer fired. Returns 1 if the loop thread must start reading.
int rd_on_timer(void);

/// Returns 1 if the loop thread owns reading now.
int rd_loop_owns(void);

/// Returns 1 if the Python thread asked for reading back; then the caller must
/// stop reading and call rd_hand_back.
int rd_wants_back(void);

/// The loop thread stopped reading: the Python thread owns it again, unless the
/// event loop started meanwhile (returns 0: the loop thread must read again).
int rd_hand_back(void);

#endif
