/*
 * The warm template: a pyport process started with --template runs the
 * preload once and then only forks. Each context of its pool is a fork of it:
 * a small `pyport-attach` program (the port Erlang opens for the context)
 * connects to the template's Unix socket and hands over its fds 0, 1 and 2
 * (SCM_RIGHTS) with its command line; the template forks, and the child
 * returns from template_serve() with those fds as its own fds 0, 1 and 2, to
 * go on as a context started from the command line (main.c), without starting
 * Python again. The template reports each child's pid and, when it has reaped
 * it, its wait status to the attach program, which exits the same way, so
 * Erlang sees the real exit status of the context.
 *
 * The fork itself is ahead of demand: the template keeps one child forked
 * and parked (the spare), blocked on a socketpair; a request's fds and command
 * line go to the spare, which becomes that context, and the template forks
 * the next spare once it has answered the request. Only when no spare is
 * parked (two requests at once, or one killed) does a request fork its own
 * child. A parked spare dies with the template (PR_SET_PDEATHSIG, and the
 * socketpair's EOF); a spare that became a context no longer needs it.
 *
 * The attach program itself is opened ahead of demand too (py_template's
 * parked port): its request is only "--args-on-stdin", and the child that
 * gets its fds waits, still dying with the template, for the context's
 * options as the first frame on its stdin (PYPORT_ATTACH_ARGS_TAG, then the
 * options NUL-terminated), exiting if stdin closes or its attach program dies
 * first. The template hands such a request on with the attach program's pid
 * added ("--args-on-stdin\0<pid>\0") and tells Erlang which child got it.
 *
 * Template protocol on its own stdin/stdout ({packet, 4} frames):
 *   Erlang → template: one frame, the preload code (UTF-8, may be empty);
 *                      then stdin closing means "exit" (children live on).
 *   template → Erlang: "warning <text>" (any number), then "ready <path>"
 *                      (the socket to connect to) or "error <text>" (it exits);
 *                      "spare <pid>" each time it forked a spare (the first
 *                      one before "ready"); "attached <pid> <attach pid>"
 *                      when child <pid> got a pre-opened attach's fds.
 */
#ifndef PYPORT_TEMPLATE_H
#define PYPORT_TEMPLATE_H

/// Returned by template_serve in a forked child.
#define TMPL_CHILD (-1)

/// Runs the template on the main thread, holding the GIL, with Python started
/// and no other thread: reads the preload from ctl_in, runs it, checks it is
/// safe to fork, listens, and forks a child per attach request. Returns
/// TMPL_CHILD in a child (fds 0-2 are the context's, *argc/*argv its command
/// line, owned, argv[0] included), else the template's exit status.
int template_serve(int ctl_in, int ctl_out, int *argc, char ***argv);

#endif
