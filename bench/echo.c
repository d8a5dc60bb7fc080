/*
 * The benchmark's floor: a port program that speaks pyport's framing ({packet, 4},
 * ETF 131) on stdin/stdout with no Python and no second thread. Each request
 * {Op, Id, Pid, ..., Last} is answered {reply, Id} + Last, the last element's bytes
 * copied unchanged, so the echo carries the request's payload back. Single-threaded.
 */
#include <ei.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pyport/wire.h"

/* First size of the input buffer; it grows to hold the largest frame seen. */
#define ECHO_READ_CHUNK (64 * 1024)
/* Replies gathered from one read before they are written in one writev. */
#define ECHO_MAX_REPLIES 256
/* Room for the reply header: length, 131, {reply, Id}, and the body's 131. */
#define ECHO_HEAD_BYTES 40

typedef struct {
    char head[ECHO_HEAD_BYTES];
    size_t head_len;
    const char *body;
    size_t body_len;
} reply_t;

static reply_t g_replies[ECHO_MAX_REPLIES];
static int g_nreplies;

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        fprintf(stderr, "echo: out of memory (%zu bytes)\n", n);
        exit(PYPORT_EXIT_OOM);
    }
    return q;
}

static void put_len(char *p, size_t n)
{
    p[0] = (char)((n >> 24) & 0xff);
    p[1] = (char)((n >> 16) & 0xff);
    p[2] = (char)((n >> 8) & 0xff);
    p[3] = (char)(n & 0xff);
}

static size_t get_len(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return ((size_t)u[0] << 24) | ((size_t)u[1] << 16) | ((size_t)u[2] << 8) | (size_t)u[3];
}

/* Writes every iovec, resuming after partial writes. */
static void write_all(struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(STDOUT_FILENO, iov, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            fprintf(stderr, "echo: write: %s\n", strerror(errno));
            exit(PYPORT_EXIT_IO);
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
}

static void flush_replies(void)
{
    struct iovec iov[2 * ECHO_MAX_REPLIES];
    int n = 0;
    for (int i = 0; i < g_nreplies; i++) {
        iov[n].iov_base = g_replies[i].head;
        iov[n].iov_len = g_replies[i].head_len;
        n++;
        iov[n].iov_base = (void *)g_replies[i].body;
        iov[n].iov_len = g_replies[i].body_len;
        n++;
    }
    write_all(iov, n);
    g_nreplies = 0;
}

/* Queues the answer to one request frame; the body points into the frame, which
   must stay alive until flush_replies. Frames without a readable id are dropped. */
static void answer(const char *frame, size_t len)
{
    int index = 0;
    int version;
    int arity;
    long long id;
    if (ei_decode_version(frame, &index, &version) < 0 ||
        ei_decode_tuple_header(frame, &index, &arity) < 0 || arity < 3 ||
        ei_skip_term(frame, &index) < 0 || ei_decode_longlong(frame, &index, &id) < 0) {
        fprintf(stderr, "echo: dropped a frame without {Op, Id, ...}\n");
        return;
    }
    for (int i = 2; i < arity - 1; i++) {
        if (ei_skip_term(frame, &index) < 0) {
            fprintf(stderr, "echo: dropped a malformed frame\n");
            return;
        }
    }
    reply_t *r = &g_replies[g_nreplies];
    int h = PYPORT_FRAME_HEADER_BYTES;
    if (ei_encode_version(r->head, &h) < 0 || ei_encode_tuple_header(r->head, &h, 2) < 0 ||
        ei_encode_atom_len_as(r->head, &h, "reply", 5, ERLANG_UTF8, ERLANG_UTF8) < 0 ||
        ei_encode_longlong(r->head, &h, id) < 0 || ei_encode_version(r->head, &h) < 0) {
        fprintf(stderr, "echo: cannot encode a reply header\n");
        exit(PYPORT_EXIT_IO);
    }
    r->body = frame + index;
    r->body_len = len - (size_t)index;
    r->head_len = (size_t)h;
    put_len(r->head, (size_t)h - PYPORT_FRAME_HEADER_BYTES + r->body_len);
    if (++g_nreplies == ECHO_MAX_REPLIES) {
        flush_replies();
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (ei_init() != 0) {
        fprintf(stderr, "echo: ei_init failed\n");
        return PYPORT_EXIT_USAGE;
    }
    size_t cap = ECHO_READ_CHUNK;
    size_t have = 0;
    char *buf = xrealloc(NULL, cap);
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf + have, cap - have);
        if (n == 0) {
            return have == 0 ? PYPORT_EXIT_OK : PYPORT_EXIT_FRAMING;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            fprintf(stderr, "echo: read: %s\n", strerror(errno));
            return PYPORT_EXIT_IO;
        }
        have += (size_t)n;
        size_t at = 0;
        while (have - at >= PYPORT_FRAME_HEADER_BYTES) {
            size_t len = get_len(buf + at);
            if (len > PYPORT_HARD_MAX_FRAME) {
                fprintf(stderr, "echo: frame of %zu bytes\n", len);
                return PYPORT_EXIT_FRAMING;
            }
            if (have - at - PYPORT_FRAME_HEADER_BYTES < len) {
                break;
            }
            answer(buf + at + PYPORT_FRAME_HEADER_BYTES, len);
            at += PYPORT_FRAME_HEADER_BYTES + len;
        }
        flush_replies();
        memmove(buf, buf + at, have - at);
        have -= at;
        if (have >= PYPORT_FRAME_HEADER_BYTES) {
            size_t need = PYPORT_FRAME_HEADER_BYTES + get_len(buf);
            if (need > cap) {
                cap = need;
                buf = xrealloc(buf, cap);
            }
        }
        if (have == cap) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
    }
}
