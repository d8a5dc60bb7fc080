/*
 * The keeper: a tiny program (pyport-keeper, beside the port binary) spawned at
 * start-up, beside Python's start, that holds the read end of the pipe from Erlang
 * and nothing else, until shortly after the port process dies. While it lives,
 * a write by Erlang right after the port died still succeeds (it lands in the
 * pipe) instead of failing with EPIPE, which would make the runtime close the
 * port and lose the exit status; so every death is reported with its real
 * signal or status.
 */
#ifndef PYPORT_KEEPER_H
#define PYPORT_KEEPER_H

/// Spawns the keeper holding in_fd. Returns the fd the port must keep open (its
/// end of the pipe the keeper watches), or -1 if the keeper could not start.
/// posix_spawn: safe beside other threads (main.c calls it on a thread of its
/// own while Python starts).
int keeper_start(int in_fd);

#endif
