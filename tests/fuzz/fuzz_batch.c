/*
 * libFuzzer target for the batch frame splitter (proto_batch_next): the input is
 * a batch frame. Every frame it yields must lie inside the input, be non-empty
 * and follow the previous one; the walk must agree with a plain parse of the
 * lengths, and stop (0 at the end, -1 at a bad length) without reading past the
 * input (guard.c puts an unreadable page right after it). Single-threaded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "guard.h"
#include "protocol.h"
#include "pyport/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, size_t at)
{
    fprintf(stderr, "fuzz_batch invariant broken: %s (at byte %zu)\n", what, at);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *batch = guard_copy(data, size);
    size_t pos = 0, model = 1;
    const char *inner;
    size_t n;
    int rc;
    while ((rc = proto_batch_next(batch, size, &pos, &inner, &n)) > 0) {
        /* The plain parse: a length at `model`, then that many bytes. */
        if (model + PYPORT_FRAME_HEADER_BYTES > size) {
            fail("a frame where no length fits", model);
        }
        const uint8_t *b = data + model;
        size_t len = ((size_t)b[0] << 24) | ((size_t)b[1] << 16) | ((size_t)b[2] << 8) | b[3];
        if (n != len || len == 0 || inner != batch + model + PYPORT_FRAME_HEADER_BYTES ||
            inner + n > batch + size || pos != model + PYPORT_FRAME_HEADER_BYTES + len) {
            fail("a frame that is not the next length's bytes", model);
        }
        model = pos;
    }
    if (rc == 0 && size > 1 && model != size) {
        fail("the end reported before the end of the batch", model);
    }
    if (rc < 0 && model + PYPORT_FRAME_HEADER_BYTES <= size) {
        const uint8_t *b = data + model;
        size_t len = ((size_t)b[0] << 24) | ((size_t)b[1] << 16) | ((size_t)b[2] << 8) | b[3];
        if (len != 0 && len <= size - model - PYPORT_FRAME_HEADER_BYTES) {
            fail("a good frame refused", model);
        }
    }
    return 0;
}
