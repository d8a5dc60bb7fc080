/*
 * The envelope of the pyport wire grammar (docs/protocol.md): the op table, the
 * peek that reads a frame's op and request id without decoding its body, and the
 * ei encoders (with the one writer of the ETF version byte) that frames.c and the
 * codec build on. Pure functions over bytes: no state but the nesting limit set
 * once at start-up, no I/O; safe from any thread.
 */
#ifndef PYPORT_PROTOCOL_H
#define PYPORT_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The first byte of every ETF term (a frame's header and body). */
#define PROTO_ETF_VERSION 131

typedef enum {
    OP_CALL,
    OP_EVAL,
    OP_EXEC,
    OP_DROP_ENV,
    OP_CANCEL,
    OP_INTERRUPT,
    OP_INFO,
    OP_CALLBACK_REPLY,
    OP_STREAM,
    OP_STREAM_ACK,
    OP_METHOD,
    OP_GETATTR,
    OP_RELEASE,
    OP_SETUP,
    OP_CREDIT,
    OP_COUNT
} proto_op_t;

/* Where a frame is handled. */
typedef enum { ON_PYTHON, ON_LOOP } proto_where_t;

typedef struct {
    const char *name; /* the op atom */
    int arity;        /* tuple arity including the op atom */
    int has_id;       /* second element is a request id; exactly one reply follows */
    int has_parent;   /* a request: {Op, Id, Pid, Parent, ...} */
    proto_where_t where;
} proto_op_info_t;

/// What proto_peek read from a frame's envelope.
typedef struct {
    int op;         /* proto_op_t, or -1 when the op is unknown */
    int64_t id;     /* the request id, 0 if the op has none or it could not be read */
    int index;      /* ei index of the first field after the op (and id) */
    int64_t parent; /* the request whose erlang.call this one serves, 0 if none */
} proto_head_t;

/// Returns the table entry for op.
const proto_op_info_t *proto_op_info(proto_op_t op);

/// Sets the nesting limit of frames (max_depth of the codec; see proto_peek).
void proto_set_max_depth(int depth);

/// Checks a whole frame with one bounded walk (every length and count fits, no
/// unknown tag, nesting bounded) and reads its envelope into *head. Returns 0,
/// or -1 with *err set to a static message; on -1 head->id is still set when the
/// id could be read, so the error can be answered. After 0, ei and the codec may
/// decode the frame safely.
int proto_peek(const char *frame, size_t len, proto_head_t *head, const char **err);

/// As proto_peek for the envelope only (the first bytes of an oversized frame):
/// reads op and id without walking the rest.
/// The frame at *pos of a batch frame (PYPORT_BATCH_TAG, then frames each with
/// a 4-byte big-endian length; *pos starts at 0): 1 with *inner and *inner_len
/// set and *pos moved past it, 0 at the end, -1 if a length runs past the batch
/// or a frame is empty.
int proto_batch_next(const char *batch, size_t len, size_t *pos, const char **inner,
                     size_t *inner_len);

int proto_peek_header(const char *frame, size_t len, proto_head_t *head, const char **err);

/// Decodes the caller pid at *index and returns its span (its ETF bytes) in
/// *start/*len; advances *index. Returns 0 or -1.
int proto_pid_span(const char *frame, size_t frame_len, int *index, int *start, int *len);

/// Starts a frame in b (length placeholder and version byte). b must be empty.
void proto_begin(buf_t *b);

/// Writes the version byte that starts a second term in the frame.
void proto_body(buf_t *b);

/// Patches the frame length. Returns 0, or -1 when the frame exceeds max bytes.
int proto_end(buf_t *b, size_t max);

/* ei encoders that reserve room first (they never fail on our own buffers). */
void proto_atom(buf_t *b, const char *atom);
void proto_atom_len(buf_t *b, const char *utf8, size_t len);
void proto_tuple(buf_t *b, int arity);
void proto_list(buf_t *b, int arity);
void proto_nil(buf_t *b);
void proto_map(buf_t *b, int arity);
void proto_long(buf_t *b, int64_t v);
void proto_double(buf_t *b, double v);
void proto_binary(buf_t *b, const void *p, size_t n);
void proto_raw(buf_t *b, const void *p, size_t n);
/// Encodes UTF-8 text as an Erlang string (a list of code points).
void proto_string(buf_t *b, const char *utf8, size_t n);

#endif
