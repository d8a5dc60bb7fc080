/*
 * pyport's own exits once the protocol runs (framing lost, out of memory, a read
 * error): announced to Erlang with an {exiting, Status} frame before the process
 * ends, so Erlang can tell them from a user's os._exit with the same number.
 * The announcement allocates nothing. Any thread; async-signal-unsafe.
 */
#ifndef PYPORT_EXITS_H
#define PYPORT_EXITS_H

/// Sets how an exit is announced (main.c: frame_exiting, once `ready` is sent).
void exit_set_announce(void (*announce)(int status));

/// Announces status (once, whichever thread gets here first) and ends the
/// process with it.
_Noreturn void exit_now(int status);

#endif
