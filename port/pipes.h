/*
 * Pipe capacity for large frames. A Linux pipe holds 64 KiB by default, so a
 * frame of several MiB crosses it in dozens of fill-and-drain rounds, each a
 * wake-up on both sides. A pipe grows (F_SETPIPE_SZ) when a frame larger than its
 * capacity is about to cross it, up to /proc/sys/fs/pipe-max-size, so contexts
 * that only pass small terms keep the default and charge nothing to the user's
 * pipe-page budget. Thread-safe (one atomic capacity per fd slot).
 */
#ifndef PYPORT_PIPES_H
#define PYPORT_PIPES_H

#include <stddef.h>

/// Which of the two protocol pipes an fd is.
typedef enum { PIPES_IN = 0, PIPES_OUT = 1 } pipes_dir_t;

/// Remembers the fd of one protocol pipe (call once per direction, first).
void pipes_init(pipes_dir_t dir, int fd);

/// Makes the pipe hold at least want bytes if the system allows it (rounded up
/// to a power of two, capped by pipe-max-size). Failure keeps the current size.
void pipes_grow(pipes_dir_t dir, size_t want);

/// Returns the pipe's capacity as last known (64 KiB before any growth).
size_t pipes_capacity(pipes_dir_t dir);

#endif
