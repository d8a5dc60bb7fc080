/*
 * Wire constants of the pyport protocol, shared by port/, tests/ and bench/.
 * docs/protocol.md is the normative grammar; include/pyport_wire.hrl holds the
 * same numbers for Erlang and tests/test_wire.escript checks that both agree.
 * Constants only: no functions, no state, safe from any thread.
 */
#ifndef PYPORT_WIRE_H
#define PYPORT_WIRE_H

/* Bumped on any incompatible change of the grammar in docs/protocol.md. */
#define PYPORT_PROTOCOL_VERSION 2

/* Every frame starts with a 4-byte big-endian length ({packet, 4}). */
#define PYPORT_FRAME_HEADER_BYTES 4

/* First byte of a batch frame from Erlang: several frames written at once, each
   with its own 4-byte length, read as if they had come one by one (every other
   frame is an ETF term and starts with 131). */
#define PYPORT_BATCH_TAG 66

/* Largest frame accepted or produced unless --max-frame says otherwise. */
#define PYPORT_DEFAULT_MAX_FRAME (256u * 1024u * 1024u)

/* No --max-frame may exceed this: ei indexes are ints. */
#define PYPORT_HARD_MAX_FRAME (1024u * 1024u * 1024u)

/* Deepest nesting of lists/tuples/maps accepted in either direction. */
#define PYPORT_DEFAULT_MAX_DEPTH 1000

/* Bytes of an oversized frame kept to read its request id before the rest is dropped. */
#define PYPORT_OVERSIZE_PEEK_BYTES 512

/* Deepest Python -> Erlang -> Python nesting before erlang.call raises. */
#define PYPORT_DEFAULT_MAX_NESTING 200

/* A pre-opened pyport-attach (docs/protocol.md, "Warm template"): the first
   frame on its stdin is this byte, then the context's command-line options,
   each followed by a NUL; the frame is at most PYPORT_ATTACH_MAX_ARGS bytes. */
#define PYPORT_ATTACH_ARGS_TAG 1
#define PYPORT_ATTACH_MAX_ARGS 65536

/* Exit statuses of the port program (documented in docs/operations.md). */
#define PYPORT_EXIT_OK 0       /* stdin closed, or asked to stop */
#define PYPORT_EXIT_USAGE 64   /* bad command line */
#define PYPORT_EXIT_PYTHON 65  /* Python failed to start */
#define PYPORT_EXIT_FRAMING 66 /* the byte stream cannot be framed any more */
#define PYPORT_EXIT_OOM 67     /* an allocation failed */
#define PYPORT_EXIT_IO 68      /* read or write error on the protocol pipes */
#define PYPORT_EXIT_LOST 69    /* a forked context ended after its template: status unknown */

#endif
