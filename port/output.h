/*
 * The writers that replace sys.stdout and sys.stderr: text printed by Python goes
 * to Erlang as output frames, tagged with the request that printed it (Erlang
 * hands it to that caller's group leader), within the output credit window; and
 * the metered sending that log and send frames share. Any thread holding the GIL.
 */
#ifndef PYPORT_OUTPUT_H
#define PYPORT_OUTPUT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "buf.h"
#include "credit.h"

/// Installs the writers as sys.stdout and sys.stderr. After Py_Initialize.
/// Returns 0, or -1 with a Python error set.
int output_init(void);

/// Sends what the Python thread left in sys.stdout/sys.stderr (at most a chunk
/// per stream, such as a line without its newline), before a request's answer
/// or a stream item: it goes with the answer, which never waits for credit, and
/// is charged to the output window. Output of other threads stays buffered.
void output_flush(void);

/// Sends the frame in b (ended by frame_send) once the credit window of kind
/// allows it, waiting with the GIL released. With interruptible, the Python
/// thread runs the signal handlers while it waits: returns -1 with their error
/// set (the frame is dropped), else 0. GIL held; b is consumed either way.
int output_send_metered(buf_t *b, credit_kind_t kind, int interruptible);

#endif
