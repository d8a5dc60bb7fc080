/*
 * ETF <-> Python codec (see convert.h, docs/types.md). Decoding walks the ei
 * buffer once, taking binaries and opaque terms straight from it; encoding
 * appends to a buf_t with doubling growth. Both carry a depth counter.
 */
#include "convert.h"

#include <ei.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "atoms.h"
#include "etf.h"
#include "frames.h"
#include "protocol.h"
#include "pyport/wire.h"
#include "terms.h"

/* The input being decoded: every skip is bounded by its length (ei_skip_term
   is not: it ignores errors inside tuples and lists). */
typedef struct {
    const char *buf;
    size_t len;
} conv_in_t;

static int g_max_depth = PYPORT_DEFAULT_MAX_DEPTH;
static conv_to_ref_fn g_to_ref;
static conv_from_ref_fn g_from_ref;

/* Erlang refuses bigger integers; refusing them here gives a clear error. */
#define CONV_MAX_BIG_BYTES (1 << 20)

void conv_set_atom_budget(int64_t remaining)
{
    atoms_set_budget(remaining);
}

void conv_set_max_depth(int depth)
{
    g_max_depth = depth;
}

void conv_set_ref_hooks(conv_to_ref_fn to_ref, conv_from_ref_fn from_ref)
{
    g_to_ref = to_ref;
    g_from_ref = from_ref;
}

static PyObject *bad(const char *msg)
{
    PyErr_SetString(PyExc_ValueError, msg);
    return NULL;
}

/* Advances *index past the term there; -1 if it does not fit the input. */
static int skip(const conv_in_t *in, int *index)
{
    long end = etf_skip(in->buf, in->len, (size_t)*index, g_max_depth + 2);
    if (end < 0) {
        return -1;
    }
    *index = (int)end;
    return 0;
}

static PyObject *too_deep(void)
{
    PyErr_Format(PyExc_ValueError, "term nests deeper than the limit of %d levels", g_max_depth);
    return NULL;
}

/* ---- atoms ---------------------------------------------------------------- */

/* A direct-mapped cache of Atom objects for short names, so decoding the same
   atom again allocates nothing. */
#define ATOM_CACHE_SIZE 1024
#define ATOM_CACHE_NAME 48

typedef struct {
    size_t len;
    char name[ATOM_CACHE_NAME];
    PyObject *atom; /* owned */
} atom_slot_t;

static atom_slot_t g_atoms[ATOM_CACHE_SIZE];

static PyObject *atom_object(const char *name, size_t len)
{
    if (len == 4 && memcmp(name, "true", 4) == 0) {
        Py_RETURN_TRUE;
    }
    if (len == 5 && memcmp(name, "false", 5) == 0) {
        Py_RETURN_FALSE;
    }
    if ((len == 4 && memcmp(name, "none", 4) == 0) || (len == 3 && memcmp(name, "nil", 3) == 0) ||
        (len == 9 && memcmp(name, "undefined", 9) == 0)) {
        Py_RETURN_NONE;
    }
    if (len >= ATOM_CACHE_NAME) {
        return terms_atom_new(name, len);
    }
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)name[i]) * 16777619u;
    }
    atom_slot_t *slot = &g_atoms[h % ATOM_CACHE_SIZE];
    if (slot->atom != NULL && slot->len == len && memcmp(slot->name, name, len) == 0) {
        return Py_NewRef(slot->atom);
    }
    PyObject *a = terms_atom_new(name, len); // owned
    if (a == NULL) {
        return NULL;
    }
    Py_XSETREF(slot->atom, Py_NewRef(a));
    slot->len = len;
    memcpy(slot->name, name, len);
    return a;
}

/* Decodes the atom at *index into out (MAXATOMLEN_UTF8 bytes) as UTF-8 with its
   byte length in *len (a NUL inside an atom is kept: ei's decoder would end the
   name there). The frame was walked (etf.c), so the bytes are there. */
static int decode_atom(const char *buf, int *index, char *out, size_t *len)
{
    const unsigned char *p = (const unsigned char *)buf + *index;
    size_t n;
    size_t hdr;
    int latin1;
    switch (p[0]) {
    case ERL_ATOM_EXT:
    case ERL_ATOM_UTF8_EXT:
        n = ((size_t)p[1] << 8) | p[2];
        hdr = 3;
        latin1 = p[0] == ERL_ATOM_EXT;
        break;
    case ERL_SMALL_ATOM_EXT:
    case ERL_SMALL_ATOM_UTF8_EXT:
        n = p[1];
        hdr = 2;
        latin1 = p[0] == ERL_SMALL_ATOM_EXT;
        break;
    default:
        return -1;
    }
    size_t o = 0;
    if (latin1) {
        if (n > 255) {
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char c = p[hdr + i];
            if (c < 0x80) {
                out[o++] = (char)c;
            } else {
                out[o++] = (char)(0xc0 | (c >> 6));
                out[o++] = (char)(0x80 | (c & 0x3f));
            }
        }
    } else {
        if (n >= MAXATOMLEN_UTF8) {
            return -1;
        }
        memcpy(out, p + hdr, n);
        o = n;
    }
    out[o] = '\0';
    *len = o;
    *index += (int)(hdr + n);
    if (atoms_limited()) {
        atoms_known(NULL, out, o, 0);
    }
    return 0;
}

/* ---- integers ------------------------------------------------------------- */

static PyObject *decode_big(const conv_in_t *in, int *index)
{
    const char *buf = in->buf;
    const unsigned char *p = (const unsigned char *)buf + *index;
    size_t n;
    int sign;
    const unsigned char *digits;
    if (p[0] == ERL_SMALL_BIG_EXT) {
        n = p[1];
        sign = p[2];
        digits = p + 3;
    } else {
        n = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4];
        sign = p[5];
        digits = p + 6;
    }
    if (skip(in, index) < 0) {
        return bad("malformed integer");
    }
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *v = PyLong_FromUnsignedNativeBytes(digits, n, Py_ASNATIVEBYTES_LITTLE_ENDIAN);
#else
    PyObject *v = _PyLong_FromByteArray(digits, n, 1, 0); // owned
#endif
    if (v != NULL && sign) {
        Py_SETREF(v, PyNumber_Negative(v));
    }
    return v;
}

static int encode_int(buf_t *b, PyObject *o)
{
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (!overflow && v >= INT32_MIN && v <= INT32_MAX) {
        /* SMALL_INTEGER_EXT or INTEGER_EXT, written directly. */
        buf_reserve(b, 5);
        unsigned char *q = (unsigned char *)b->data + b->len;
        if (v >= 0 && v <= 255) {
            q[0] = ERL_SMALL_INTEGER_EXT;
            q[1] = (unsigned char)v;
            b->len += 2;
        } else {
            uint32_t u = (uint32_t)(int32_t)v;
            q[0] = ERL_INTEGER_EXT;
            q[1] = (unsigned char)(u >> 24);
            q[2] = (unsigned char)(u >> 16);
            q[3] = (unsigned char)(u >> 8);
            q[4] = (unsigned char)u;
            b->len += 5;
        }
        return 0;
    }
    if (!overflow) {
        proto_long(b, v);
        return 0;
    }
    int neg = overflow < 0;
    PyObject *mag = neg ? PyNumber_Negative(o) : Py_NewRef(o); // owned
    if (mag == NULL) {
        return -1;
    }
    int rc = -1;
    size_t bits = _PyLong_NumBits(mag);
    size_t n = (bits + 7) / 8;
    if (bits == (size_t)-1) {
        goto done;
    }
    if (n > CONV_MAX_BIG_BYTES) {
        PyErr_SetString(PyExc_OverflowError, "int too large for an Erlang integer");
        goto done;
    }
    buf_reserve(b, n + 6);
    unsigned char *p = (unsigned char *)b->data + b->len;
    size_t hdr;
    if (n <= 255) {
        p[0] = ERL_SMALL_BIG_EXT;
        p[1] = (unsigned char)n;
        p[2] = (unsigned char)neg;
        hdr = 3;
    } else {
        p[0] = ERL_LARGE_BIG_EXT;
        p[1] = (unsigned char)(n >> 24);
        p[2] = (unsigned char)(n >> 16);
        p[3] = (unsigned char)(n >> 8);
        p[4] = (unsigned char)n;
        p[5] = (unsigned char)neg;
        hdr = 6;
    }
#if PY_VERSION_HEX >= 0x030D0000
    if (PyLong_AsNativeBytes(mag, p + hdr, (Py_ssize_t)n,
                             Py_ASNATIVEBYTES_LITTLE_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER) <
        0) {
        goto done;
    }
#else
    if (_PyLong_AsByteArray((PyLongObject *)mag, p + hdr, n, 1, 0) < 0) {
        goto done;
    }
#endif
    b->len += hdr + n;
    rc = 0;
done:
    Py_DECREF(mag);
    return rc;
}

/* ---- Erlang -> Python ----------------------------------------------------- */

static PyObject *to_py(const conv_in_t *in, int *index, int depth);

static PyObject *opaque(PyTypeObject *type, const conv_in_t *in, int *index)
{
    const char *buf = in->buf;
    int start = *index;
    if (skip(in, index) < 0) {
        return bad("malformed term");
    }
    if (atoms_limited()) {
        /* The node names and other atoms inside came from Erlang. */
        etf_each_atom(in->buf, in->len, (size_t)start, g_max_depth + 2, atoms_known, NULL);
    }
    return terms_new(type, buf + start, (size_t)(*index - start));
}

static PyObject *decode_binary(const conv_in_t *in, int *index, int as_bytes)
{
    const char *buf = in->buf;
    long n;
    const char *p = buf + *index + 5;
    if (ei_decode_binary(buf, index, NULL, &n) < 0) {
        return bad("malformed binary");
    }
    if (!as_bytes) {
        PyObject *s = PyUnicode_DecodeUTF8(p, n, NULL); // owned
        if (s != NULL) {
            return s;
        }
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            return NULL;
        }
        PyErr_Clear();
    }
    return PyBytes_FromStringAndSize(p, n);
}

static PyObject *decode_list(const conv_in_t *in, int *index, int depth)
{
    const char *buf = in->buf;
    int start = *index;
    int arity;
    if (ei_decode_list_header(buf, index, &arity) < 0) {
        return bad("malformed list");
    }
    PyObject *list = PyList_New(arity); // owned
    if (list == NULL) {
        return NULL;
    }
    for (int i = 0; i < arity; i++) {
        PyObject *item = to_py(in, index, depth + 1); // owned
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, item); // steals
    }
    if (arity == 0 && (unsigned char)buf[start] == ERL_NIL_EXT) {
        return list;
    }
    /* A LIST_EXT always has a tail, even with no elements (OTP never writes
       that form for [], but a frame may). */
    int type;
    int size;
    if (ei_get_type(buf, index, &type, &size) < 0) {
        Py_DECREF(list);
        return bad("malformed list tail");
    }
    if (type == ERL_NIL_EXT) {
        (*index)++;
        return list;
    }
    /* An improper list has no Python form: keep the whole list as a Term. */
    Py_DECREF(list);
    *index = start;
    return opaque(&terms_TermType, in, index);
}

static PyObject *decode_string(const conv_in_t *in, int *index)
{
    const char *buf = in->buf;
    const unsigned char *p = (const unsigned char *)buf + *index + 3;
    int type;
    int n;
    if (ei_get_type(buf, index, &type, &n) < 0 || skip(in, index) < 0) {
        return bad("malformed string");
    }
    PyObject *list = PyList_New(n); // owned
    if (list == NULL) {
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        PyList_SET_ITEM(list, i, PyLong_FromLong(p[i])); // steals; small ints never fail
    }
    return list;
}

static int is_atom_named(const conv_in_t *in, int index, const char *name)
{
    const char *buf = in->buf;
    char atom[MAXATOMLEN_UTF8];
    size_t len;
    return decode_atom(buf, &index, atom, &len) == 0 && len == strlen(name) &&
           memcmp(atom, name, len) == 0;
}

static PyObject *decode_tuple(const conv_in_t *in, int *index, int depth)
{
    const char *buf = in->buf;
    int start = *index;
    int arity;
    if (ei_decode_tuple_header(buf, index, &arity) < 0) {
        return bad("malformed tuple");
    }
    if (arity == 2 && is_atom_named(in, *index, "bytes")) {
        int at = *index;
        skip(in, &at);
        int type;
        int size;
        if (ei_get_type(buf, &at, &type, &size) == 0 && type == ERL_BINARY_EXT) {
            *index = at;
            return decode_binary(in, index, 1);
        }
    }
    if (g_from_ref != NULL && arity >= 2 && is_atom_named(in, *index, "py_ref")) {
        *index = start;
        return g_from_ref(in->buf, in->len, index);
    }
    PyObject *t = PyTuple_New(arity); // owned
    if (t == NULL) {
        return NULL;
    }
    for (int i = 0; i < arity; i++) {
        PyObject *item = to_py(in, index, depth + 1); // owned
        if (item == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, item); // steals
    }
    return t;
}

static PyObject *decode_map(const conv_in_t *in, int *index, int depth)
{
    const char *buf = in->buf;
    int arity;
    if (ei_decode_map_header(buf, index, &arity) < 0) {
        return bad("malformed map");
    }
    PyObject *d = _PyDict_NewPresized(arity); // owned
    if (d == NULL) {
        return NULL;
    }
    for (int i = 0; i < arity; i++) {
        int kstart = *index;
        PyObject *k = to_py(in, index, depth + 1); // owned
        if (k == NULL) {
            Py_DECREF(d);
            return NULL;
        }
        PyObject *v = to_py(in, index, depth + 1); // owned
        if (v == NULL) {
            Py_DECREF(k);
            Py_DECREF(d);
            return NULL;
        }
        int rc = PyDict_SetItem(d, k, v);
        if (rc < 0 && PyErr_ExceptionMatches(PyExc_TypeError)) {
            /* An unhashable key (a list, a map): keep it as an opaque Term. */
            PyErr_Clear();
            int at = kstart;
            Py_SETREF(k, opaque(&terms_TermType, in, &at));
            rc = k != NULL ? PyDict_SetItem(d, k, v) : -1;
        }
        Py_XDECREF(k);
        Py_DECREF(v);
        if (rc < 0) {
            Py_DECREF(d);
            return NULL;
        }
    }
    if (PyDict_GET_SIZE(d) != arity) {
        /* Keys that differ in Erlang but not in Python (an atom and a binary with
           the same text, 1 and 1.0, true and 1) would silently lose entries. */
        Py_DECREF(d);
        return bad("map has keys that are equal in Python (such as a and <<\"a\">>, "
                   "1 and 1.0, or true and 1)");
    }
    return d;
}

static PyObject *to_py(const conv_in_t *in, int *index, int depth)
{
    const char *buf = in->buf;
    /* Fast paths for the commonest terms: the frame was walked (etf.c), so the
       bytes are there. */
    const unsigned char *p = (const unsigned char *)buf + *index;
    if (p[0] == ERL_SMALL_INTEGER_EXT) {
        *index += 2;
        return PyLong_FromLong(p[1]);
    }
    if (p[0] == ERL_INTEGER_EXT) {
        *index += 5;
        return PyLong_FromLong((int32_t)(((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) |
                                         ((uint32_t)p[3] << 8) | p[4]));
    }
    if (depth > g_max_depth) {
        return too_deep();
    }
    int type;
    int size;
    if (ei_get_type(buf, index, &type, &size) < 0) {
        return bad("malformed term");
    }
    switch (type) {
    case ERL_SMALL_INTEGER_EXT:
    case ERL_INTEGER_EXT: {
        long long v;
        if (ei_decode_longlong(buf, index, &v) < 0) {
            return bad("malformed integer");
        }
        return PyLong_FromLongLong(v);
    }
    case ERL_SMALL_BIG_EXT:
    case ERL_LARGE_BIG_EXT: {
        long long v;
        int at = *index;
        if (ei_decode_longlong(buf, &at, &v) == 0) {
            *index = at;
            return PyLong_FromLongLong(v);
        }
        return decode_big(in, index);
    }
    case ERL_FLOAT_EXT:
    case NEW_FLOAT_EXT: {
        double v;
        if (ei_decode_double(buf, index, &v) < 0) {
            return bad("malformed float");
        }
        return PyFloat_FromDouble(v);
    }
    case ERL_ATOM_EXT:
    case ERL_SMALL_ATOM_EXT:
    case ERL_ATOM_UTF8_EXT:
    case ERL_SMALL_ATOM_UTF8_EXT: {
        char atom[MAXATOMLEN_UTF8];
        size_t len;
        if (decode_atom(buf, index, atom, &len) < 0) {
            return bad("malformed atom");
        }
        return atom_object(atom, len);
    }
    case ERL_BINARY_EXT:
        return decode_binary(in, index, 0);
    case ERL_NIL_EXT:
        (*index)++;
        return PyList_New(0);
    case ERL_STRING_EXT:
        return decode_string(in, index);
    case ERL_LIST_EXT:
        return decode_list(in, index, depth);
    case ERL_SMALL_TUPLE_EXT:
    case ERL_LARGE_TUPLE_EXT:
        return decode_tuple(in, index, depth);
    case ERL_MAP_EXT:
        return decode_map(in, index, depth);
    case ERL_PID_EXT:
    case ERL_NEW_PID_EXT:
        return opaque(&terms_PidType, in, index);
    case ERL_REFERENCE_EXT:
    case ERL_NEW_REFERENCE_EXT:
    case ERL_NEWER_REFERENCE_EXT:
        return opaque(&terms_RefType, in, index);
    default:
        /* Bit strings, ports, funs: carried unchanged. */
        return opaque(&terms_TermType, in, index);
    }
}

PyObject *conv_to_py(const char *buf, size_t len, int *index)
{
    conv_in_t in = {buf, len};
    return to_py(&in, index, 0);
}

static PyObject *any_name(const conv_in_t *in, int *index)
{
    const char *buf = in->buf;
    int type;
    int size;
    if (ei_get_type(buf, index, &type, &size) < 0) {
        return bad("malformed name");
    }
    switch (type) {
    case ERL_ATOM_EXT:
    case ERL_SMALL_ATOM_EXT:
    case ERL_ATOM_UTF8_EXT:
    case ERL_SMALL_ATOM_UTF8_EXT: {
        char atom[MAXATOMLEN_UTF8];
        size_t len;
        if (decode_atom(buf, index, atom, &len) < 0) {
            return bad("malformed atom");
        }
        return PyUnicode_DecodeUTF8(atom, (Py_ssize_t)len, "strict");
    }
    case ERL_BINARY_EXT: {
        long n;
        const char *p = buf + *index + 5;
        if (ei_decode_binary(buf, index, NULL, &n) < 0) {
            return bad("malformed binary");
        }
        PyObject *s = PyUnicode_DecodeUTF8(p, n, "strict");
        if (s == NULL) {
            PyErr_Clear();
            return bad("a name must be valid UTF-8");
        }
        return s;
    }
    case ERL_STRING_EXT:
    case ERL_LIST_EXT:
    case ERL_NIL_EXT: {
        PyObject *codes = to_py(in, index, g_max_depth - 1); // owned
        if (codes == NULL) {
            return NULL;
        }
        PyObject *s = NULL; // owned
        if (PyList_Check(codes)) {
            Py_ssize_t n = PyList_GET_SIZE(codes);
            Py_UCS4 *u = PyMem_Malloc(sizeof(Py_UCS4) * (size_t)(n ? n : 1));
            int ok = u != NULL;
            for (Py_ssize_t i = 0; ok && i < n; i++) {
                long c = PyLong_Check(PyList_GET_ITEM(codes, i))
                             ? PyLong_AsLong(PyList_GET_ITEM(codes, i))
                             : -1;
                ok = c >= 0 && c <= 0x10ffff;
                if (ok) {
                    u[i] = (Py_UCS4)c;
                }
            }
            if (ok) {
                s = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, u, n);
            }
            PyMem_Free(u);
        }
        Py_DECREF(codes);
        if (s == NULL) {
            PyErr_Clear();
            return bad("a name must be an atom, a binary or a string");
        }
        return s;
    }
    default:
        return bad("a name must be an atom, a binary or a string");
    }
}

/* A name as any_name, refused when it contains NUL: Python's import machinery
   and C APIs would see only the text before it. */
static PyObject *name(const conv_in_t *in, int *index)
{
    PyObject *s = any_name(in, index); // owned
    if (s != NULL && PyUnicode_FindChar(s, 0, 0, PyUnicode_GET_LENGTH(s), 1) >= 0) {
        Py_DECREF(s);
        return bad("a name must not contain a NUL character");
    }
    return s;
}

PyObject *conv_name(const char *buf, size_t len, int *index)
{
    conv_in_t in = {buf, len};
    return name(&in, index);
}

PyObject *conv_kwargs(const char *buf, size_t len, int *index)
{
    conv_in_t input = {buf, len};
    const conv_in_t *in = &input;
    int arity;
    if (ei_decode_map_header(buf, index, &arity) < 0) {
        return bad("keyword arguments and locals must be a map");
    }
    PyObject *d = _PyDict_NewPresized(arity); // owned
    if (d == NULL) {
        return NULL;
    }
    for (int i = 0; i < arity; i++) {
        PyObject *k = name(in, index);                        // owned
        PyObject *v = k != NULL ? to_py(in, index, 1) : NULL; // owned
        if (v == NULL || PyDict_SetItem(d, k, v) < 0) {
            Py_XDECREF(k);
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(k);
        Py_DECREF(v);
    }
    return d;
}

/* ---- Python -> Erlang ----------------------------------------------------- */

static int from_py(buf_t *b, PyObject *o, int depth);

/* Raises erlang.AtomLimitError for value o (an Atom, or a Term holding atoms). */
static int atom_limit(PyObject *o)
{
    PyErr_Format(terms_AtomLimitError,
                 "the atom budget of this context (max_atoms) is used up: %R would add a new "
                 "atom to the Erlang node",
                 o);
    return -1;
}

static int encode_str(buf_t *b, PyObject *o)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (s == NULL) {
        return -1;
    }
    proto_binary(b, s, (size_t)n);
    return 0;
}

static int encode_float(buf_t *b, double v)
{
    if (isnan(v)) {
        proto_atom(b, "nan");
    } else if (isinf(v)) {
        proto_atom(b, v > 0 ? "infinity" : "neg_infinity");
    } else {
        proto_double(b, v);
    }
    return 0;
}

static int encode_buffer(buf_t *b, PyObject *o)
{
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_CONTIG_RO) == 0) {
        proto_binary(b, view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
        return 0;
    }
    /* A strided memoryview: copy it into contiguous bytes first. */
    PyErr_Clear();
    PyObject *bytes = PyBytes_FromObject(o); // owned
    if (bytes == NULL) {
        return -1;
    }
    proto_binary(b, PyBytes_AS_STRING(bytes), (size_t)PyBytes_GET_SIZE(bytes));
    Py_DECREF(bytes);
    return 0;
}

static int encode_seq(buf_t *b, PyObject *o, int depth, int is_tuple)
{
    Py_ssize_t n = Py_SIZE(o);
    if (is_tuple) {
        proto_tuple(b, (int)n);
    } else if (n == 0) {
        proto_nil(b);
        return 0;
    } else {
        proto_list(b, (int)n);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i >= Py_SIZE(o)) {
            PyErr_SetString(PyExc_RuntimeError, "list changed size during conversion");
            return -1;
        }
        PyObject *item = Py_NewRef(is_tuple ? PyTuple_GET_ITEM(o, i) : PyList_GET_ITEM(o, i));
        int rc = from_py(b, item, depth + 1);
        Py_DECREF(item);
        if (rc < 0) {
            return -1;
        }
    }
    if (!is_tuple) {
        proto_nil(b);
    }
    return 0;
}

static int encode_dict(buf_t *b, PyObject *o, int depth)
{
    Py_ssize_t n = PyDict_Size(o);
    proto_map(b, (int)n);
    Py_ssize_t pos = 0;
    Py_ssize_t done = 0;
    PyObject *k;
    PyObject *v;
    while (PyDict_Next(o, &pos, &k, &v)) {
        Py_INCREF(k);
        Py_INCREF(v);
        int rc = done < n ? from_py(b, k, depth + 1) : -1;
        if (rc == 0) {
            rc = from_py(b, v, depth + 1);
        }
        Py_DECREF(k);
        Py_DECREF(v);
        if (rc < 0) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_RuntimeError, "dict changed size during conversion");
            }
            return -1;
        }
        done++;
    }
    if (done != n) {
        PyErr_SetString(PyExc_RuntimeError, "dict changed size during conversion");
        return -1;
    }
    return 0;
}

static int encode_iterable(buf_t *b, PyObject *o, int depth)
{
    PyObject *items = PySequence_List(o); // owned
    if (items == NULL) {
        return -1;
    }
    int rc = encode_seq(b, items, depth, 0);
    Py_DECREF(items);
    return rc;
}

static int encode_repr(buf_t *b, PyObject *o)
{
    PyObject *r = PyObject_Repr(o); // owned
    if (r == NULL) {
        return -1;
    }
    int rc = encode_str(b, r);
    Py_DECREF(r);
    return rc;
}

static int from_py(buf_t *b, PyObject *o, int depth)
{
    if (depth > g_max_depth) {
        too_deep();
        return -1;
    }
    PyTypeObject *t = Py_TYPE(o);
    if (t == &PyUnicode_Type) {
        return encode_str(b, o);
    }
    if (t == &PyLong_Type) {
        return encode_int(b, o);
    }
    if (o == Py_None) {
        proto_atom(b, "none");
        return 0;
    }
    if (o == Py_True || o == Py_False) {
        proto_atom(b, o == Py_True ? "true" : "false");
        return 0;
    }
    if (t == &PyFloat_Type) {
        return encode_float(b, PyFloat_AS_DOUBLE(o));
    }
    if (t == &PyList_Type) {
        return encode_seq(b, o, depth, 0);
    }
    if (t == &PyTuple_Type) {
        return encode_seq(b, o, depth, 1);
    }
    if (t == &PyDict_Type) {
        return encode_dict(b, o, depth);
    }
    if (t == &PyBytes_Type) {
        proto_binary(b, PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o));
        return 0;
    }
    if (PyObject_TypeCheck(o, &terms_AtomType)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(o, &n);
        if (s == NULL) {
            return -1;
        }
        if (PyUnicode_GET_LENGTH(o) > 255) {
            PyErr_SetString(PyExc_ValueError, "an atom has at most 255 characters");
            return -1;
        }
        if (atoms_use(NULL, s, (size_t)n, 0) < 0) {
            return atom_limit(o);
        }
        proto_atom_len(b, s, (size_t)n);
        return 0;
    }
    const char *etf;
    Py_ssize_t etf_len;
    if (terms_bytes(o, &etf, &etf_len)) {
        if (atoms_limited() &&
            etf_each_atom(etf, (size_t)etf_len, 0, g_max_depth + 2, atoms_use, NULL) == -2) {
            return atom_limit(o);
        }
        proto_raw(b, etf, (size_t)etf_len);
        return 0;
    }
    /* Subclasses and look-alikes of the types above. */
    if (PyLong_Check(o)) {
        return encode_int(b, o);
    }
    if (PyFloat_Check(o)) {
        return encode_float(b, PyFloat_AsDouble(o));
    }
    if (PyUnicode_Check(o)) {
        return encode_str(b, o);
    }
    if (PyBytes_Check(o) || PyByteArray_Check(o) || PyMemoryView_Check(o)) {
        return encode_buffer(b, o);
    }
    if (PyList_Check(o)) {
        return encode_seq(b, o, depth, 0);
    }
    if (PyTuple_Check(o)) {
        return encode_seq(b, o, depth, 1);
    }
    if (PyDict_Check(o)) {
        return encode_dict(b, o, depth);
    }
    if (PyAnySet_Check(o)) {
        return encode_iterable(b, o, depth);
    }
    if (PyIndex_Check(o)) {
        PyObject *i = PyNumber_Index(o); // owned
        if (i == NULL) {
            return -1;
        }
        int rc = encode_int(b, i);
        Py_DECREF(i);
        return rc;
    }
    if (g_to_ref != NULL) {
        return g_to_ref(b, o);
    }
    return encode_repr(b, o);
}

int conv_from_py(buf_t *b, PyObject *obj)
{
    return from_py(b, obj, 0);
}

/* ---- exceptions ----------------------------------------------------------- */

/* Error texts are capped, so an exception whose message embeds other messages
   (each level escaping the one below) cannot build an unbounded term. */
#define CONV_MAX_MESSAGE (16 * 1024)
#define CONV_MAX_TRACEBACK (256 * 1024)

/* Calls emit(b, text, len) with the UTF-8 text of s (a str, or NULL), cut to
   max bytes with a marker. */
static void with_text(buf_t *b, PyObject *s, size_t max,
                      void (*emit)(buf_t *b, const char *text, size_t len))
{
    static const char cut[] = " ... [truncated]";
    Py_ssize_t n = 0;
    const char *p = s != NULL ? PyUnicode_AsUTF8AndSize(s, &n) : NULL;
    if (p == NULL) {
        PyErr_Clear();
        p = "<unprintable>";
        n = (Py_ssize_t)strlen(p);
    }
    if ((size_t)n <= max) {
        emit(b, p, (size_t)n);
        return;
    }
    size_t keep = max;
    while (keep > 0 && ((unsigned char)p[keep] & 0xc0) == 0x80) {
        keep--; /* never split a UTF-8 sequence */
    }
    char *text = PyMem_Malloc(keep + sizeof cut);
    if (text == NULL) {
        emit(b, p, keep);
        return;
    }
    memcpy(text, p, keep);
    memcpy(text + keep, cut, sizeof cut);
    emit(b, text, keep + sizeof cut - 1);
    PyMem_Free(text);
}

/* Returns the pending exception, normalised and with its traceback attached. */
static PyObject *take_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type;
    PyObject *value;
    PyObject *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

void conv_exception(buf_t *b)
{
    PyObject *exc = take_exception(); // owned
    PyObject *msg = NULL;             // owned
    PyObject *tb_text = NULL;         // owned
    if (exc == NULL) {
        PyErr_SetString(PyExc_SystemError, "error without an exception");
        exc = take_exception();
    }
    const char *name = Py_TYPE(exc)->tp_name;
    const char *dot = strrchr(name, '.');
    if (dot != NULL) {
        name = dot + 1;
    }
    msg = PyObject_Str(exc);
    if (msg == NULL) {
        PyErr_Clear();
    }
    PyObject *tb_mod = PyImport_ImportModule("traceback"); // owned
    if (tb_mod != NULL) {
        PyObject *lines = PyObject_CallMethod(tb_mod, "format_exception", "O", exc); // owned
        if (lines != NULL) {
            PyObject *empty = PyUnicode_FromString(""); // owned
            if (empty != NULL) {
                tb_text = PyUnicode_Join(empty, lines);
                Py_DECREF(empty);
            }
            Py_DECREF(lines);
        }
        Py_DECREF(tb_mod);
    }
    PyErr_Clear();
    proto_tuple(b, 4);
    proto_atom(b, "pyerr");
    proto_string(b, name, strlen(name));
    with_text(b, msg, CONV_MAX_MESSAGE, proto_string);
    with_text(b, tb_text, CONV_MAX_TRACEBACK, proto_string);
    Py_XDECREF(msg);
    Py_XDECREF(tb_text);
    Py_DECREF(exc);
}

void conv_badarg(buf_t *b)
{
    PyObject *exc = take_exception();                       // owned
    PyObject *msg = exc != NULL ? PyObject_Str(exc) : NULL; // owned
    PyErr_Clear();
    with_text(b, msg, CONV_MAX_MESSAGE, frame_body_badarg);
    Py_XDECREF(msg);
    Py_XDECREF(exc);
}

PyObject *conv_callback_reply(const char *frame, size_t len, int index, int64_t *cb_id)
{
    long long id;
    char status[MAXATOMLEN];
    if (ei_decode_longlong(frame, &index, &id) < 0 || ei_decode_atom(frame, &index, status) < 0) {
        PyErr_SetString(PyExc_ValueError, "malformed callback reply");
        return NULL;
    }
    if (cb_id != NULL) {
        *cb_id = id;
    }
    PyObject *value = conv_to_py(frame, len, &index); // owned
    if (value == NULL || strcmp(status, "ok") == 0) {
        return value;
    }
    terms_raise_error(value);
    Py_DECREF(value);
    return NULL;
}
