/*
 * Unit tests of port/convert.c, the ETF <-> Python codec, with Python embedded
 * (erlang module registered, no output redirection). Inputs are ei-encoded or
 * byte arrays equal to what Erlang's term_to_binary writes; results are compared
 * with Python values and with the exact bytes Erlang would write. One thread.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <ei.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "check.h"
#include "convert.h"
#include "memory.h"
#include "pyerlang.h"
#include "terms.h"
#include "pyport/wire.h"

static PyObject *g_ns; /* globals for the Python expressions of the tests */

/* ---- Python helpers --------------------------------------------------------- */

/* Evaluates a Python expression of the test itself; a broken test aborts. */
static PyObject *py(const char *expr)
{
    PyObject *r = PyRun_String(expr, Py_eval_input, g_ns, g_ns); // owned
    if (r == NULL) {
        fprintf(stderr, "test expression failed: %s\n", expr);
        PyErr_Print();
        abort();
    }
    return r;
}

static void py_exec(const char *code)
{
    PyObject *r = PyRun_String(code, Py_file_input, g_ns, g_ns); // owned
    if (r == NULL) {
        fprintf(stderr, "test code failed: %s\n", code);
        PyErr_Print();
        abort();
    }
    Py_DECREF(r);
}

/* repr(obj) as a C string (kept alive in a small ring, for failure messages). */
static const char *repr(PyObject *obj)
{
    static char ring[4][256];
    static int next;
    char *out = ring[next++ % 4];
    if (obj == NULL) {
        snprintf(out, 256, "NULL");
        return out;
    }
    PyObject *r = PyObject_Repr(obj); // owned
    const char *s = r != NULL ? PyUnicode_AsUTF8(r) : NULL;
    snprintf(out, 256, "%s", s != NULL ? s : "<repr failed>");
    Py_XDECREF(r);
    PyErr_Clear();
    return out;
}

static const char *type_name(PyObject *obj)
{
    static char out[128];
    if (obj == NULL) {
        return "NULL";
    }
    snprintf(out, sizeof out, "%s", Py_TYPE(obj)->tp_name);
    return out;
}

/* got == eval(expr) and type(got) is type(eval(expr)). */
#define CHECK_PY_EQ(got, expr) check_py_eq(__FILE__, __LINE__, (got), (expr), 1)
/* got == eval(expr), whatever the types. */
#define CHECK_PY_VALUE_EQ(got, expr) check_py_eq(__FILE__, __LINE__, (got), (expr), 0)

static void check_py_eq(const char *file, int line, PyObject *got, const char *expr, int same_type)
{
    PyObject *want = py(expr); // owned
    int eq = got != NULL && PyObject_RichCompareBool(got, want, Py_EQ) == 1;
    PyErr_Clear();
    if (!eq || (same_type && Py_TYPE(got) != Py_TYPE(want))) {
        check_fail(file, line, "%s: got %s (%s), want %s (%s)", expr, repr(got), type_name(got),
                   repr(want), type_name(want));
    }
    Py_DECREF(want);
}

#define CHECK_TYPE(got, name) check_type(__FILE__, __LINE__, (got), (name))

static void check_type(const char *file, int line, PyObject *got, const char *name)
{
    if (got == NULL || strcmp(Py_TYPE(got)->tp_name, name) != 0) {
        check_fail(file, line, "type of %s is %s, want %s", repr(got), type_name(got), name);
    }
}

/* The pending exception is of `type` and its text contains `needle` (or any
   text when needle is NULL); clears it. */
#define CHECK_PY_ERROR(type, needle) check_py_error(__FILE__, __LINE__, (type), (needle))

static void check_py_error(const char *file, int line, PyObject *type, const char *needle)
{
    PyObject *etype;
    PyObject *exc;
    PyObject *tb;
    PyErr_Fetch(&etype, &exc, &tb); // owned, owned, owned
    PyErr_NormalizeException(&etype, &exc, &tb);
    Py_XDECREF(etype);
    Py_XDECREF(tb);
    if (exc == NULL) {
        check_fail(file, line, "expected a %s, no exception set", ((PyTypeObject *)type)->tp_name);
        return;
    }
    if (!PyErr_GivenExceptionMatches(exc, type)) {
        check_fail(file, line, "expected a %s, got %s", ((PyTypeObject *)type)->tp_name, repr(exc));
    } else if (needle != NULL) {
        PyObject *s = PyObject_Str(exc); // owned
        const char *text = s != NULL ? PyUnicode_AsUTF8(s) : NULL;
        if (text == NULL || strstr(text, needle) == NULL) {
            check_fail(file, line, "message \"%s\" lacks \"%s\"", text ? text : "?", needle);
        }
        Py_XDECREF(s);
    }
    Py_DECREF(exc);
    PyErr_Clear();
}

/* ---- ETF helpers ------------------------------------------------------------ */

static int hexval(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* An ei_x buffer holding the bytes of a hex string (version byte included). */
static void from_hex(ei_x_buff *x, const char *hex)
{
    ei_x_new(x);
    for (const char *p = hex; p[0] && p[1]; p += 2) {
        char byte = (char)(hexval(p[0]) * 16 + hexval(p[1]));
        ei_x_append_buf(x, &byte, 1);
    }
}

static void x_version(ei_x_buff *x)
{
    if (ei_x_new_with_version(x) < 0) {
        abort();
    }
}

static void x_atom(ei_x_buff *x, const char *name)
{
    if (ei_x_encode_atom_len_as(x, name, (int)strlen(name), ERLANG_UTF8, ERLANG_UTF8) < 0) {
        abort();
    }
}

static void x_pid(ei_x_buff *x, unsigned num)
{
    erlang_pid pid;
    memset(&pid, 0, sizeof pid);
    strcpy(pid.node, "nonode@nohost");
    pid.num = num;
    if (ei_x_encode_pid(x, &pid) < 0) {
        abort();
    }
}

static void x_ref(ei_x_buff *x, unsigned n0)
{
    erlang_ref ref;
    memset(&ref, 0, sizeof ref);
    strcpy(ref.node, "nonode@nohost");
    ref.len = 3;
    ref.n[0] = n0;
    ref.n[1] = 7;
    ref.n[2] = 9;
    if (ei_x_encode_ref(x, &ref) < 0) {
        abort();
    }
}

/* A bignum of n little-endian digit bytes, all zero but the top one (= top). */
static void x_big(ei_x_buff *x, size_t n, int neg, unsigned char top)
{
    unsigned char hdr[6];
    size_t h;
    if (n <= 255) {
        hdr[0] = ERL_SMALL_BIG_EXT;
        hdr[1] = (unsigned char)n;
        hdr[2] = (unsigned char)neg;
        h = 3;
    } else {
        hdr[0] = ERL_LARGE_BIG_EXT;
        hdr[1] = (unsigned char)(n >> 24);
        hdr[2] = (unsigned char)(n >> 16);
        hdr[3] = (unsigned char)(n >> 8);
        hdr[4] = (unsigned char)n;
        hdr[5] = (unsigned char)neg;
        h = 6;
    }
    ei_x_append_buf(x, (const char *)hdr, (int)h);
    char *digits = mem_calloc(1, n);
    digits[n - 1] = (char)top;
    ei_x_append_buf(x, digits, (int)n);
    mem_free(digits);
}

/* conv_to_py on an exact-size heap copy of x (version byte skipped). On success
   the whole term must have been consumed. Returns a new reference or NULL with
   the error left set. */
static PyObject *decode(const ei_x_buff *x)
{
    char *copy = mem_dup(x->buff, (size_t)x->index);
    int index = 1;
    PyObject *r = conv_to_py(copy, (size_t)x->index, &index); // owned
    if (r != NULL && index != x->index) {
        check_fail(__FILE__, __LINE__, "decoding consumed %d of %d bytes", index, x->index);
    }
    if (r == NULL && !PyErr_Occurred()) {
        check_fail(__FILE__, __LINE__, "conv_to_py returned NULL without an error");
    }
    mem_free(copy);
    return r;
}

/* conv_from_py into b (emptied first), with a version byte in front. */
static int encode(buf_t *b, PyObject *obj)
{
    b->len = 0;
    char v = (char)131;
    buf_append(b, &v, 1);
    int rc = conv_from_py(b, obj);
    if (rc < 0 && !PyErr_Occurred()) {
        check_fail(__FILE__, __LINE__, "conv_from_py failed without an error");
    }
    return rc;
}

/* obj encodes to exactly the bytes of want (version byte included). */
#define CHECK_ENCODES_TO(obj, want) check_encodes_to(__FILE__, __LINE__, (obj), (want))

static void check_encodes_to(const char *file, int line, PyObject *obj, const ei_x_buff *want)
{
    buf_t b;
    buf_init(&b, 64);
    if (encode(&b, obj) < 0) {
        PyObject *etype;
        PyObject *exc;
        PyObject *tb;
        PyErr_Fetch(&etype, &exc, &tb); // owned, owned, owned
        PyErr_NormalizeException(&etype, &exc, &tb);
        check_fail(file, line, "encoding %s failed: %s", repr(obj), repr(exc));
        Py_XDECREF(etype);
        Py_XDECREF(exc);
        Py_XDECREF(tb);
    } else if (b.len != (size_t)want->index || memcmp(b.data, want->buff, b.len) != 0) {
        check_fail(file, line, "encoding of %s differs", repr(obj));
        check_hex("got", b.data, b.len);
        check_hex("want", want->buff, (size_t)want->index);
    }
    buf_destroy(&b);
}

/* Decoding x and encoding the result gives back x's bytes. */
#define CHECK_ROUND_TRIP(x) check_round_trip(__FILE__, __LINE__, (x))

static void check_round_trip(const char *file, int line, const ei_x_buff *x)
{
    PyObject *obj = decode(x); // owned
    if (obj == NULL) {
        check_fail(file, line, "decoding failed");
        PyErr_Print();
        return;
    }
    check_encodes_to(file, line, obj, x);
    Py_DECREF(obj);
}

/* Decodes x, expecting a ValueError whose text contains needle. */
#define CHECK_DECODE_FAILS(x, needle) check_decode_fails(__FILE__, __LINE__, (x), (needle))

static void check_decode_fails(const char *file, int line, const ei_x_buff *x, const char *needle)
{
    PyObject *obj = decode(x); // owned
    if (obj != NULL) {
        check_fail(file, line, "decoding should fail, gave %s", repr(obj));
        Py_DECREF(obj);
        return;
    }
    check_py_error(file, line, PyExc_ValueError, needle);
}

/* Encodes eval(expr), expecting an exception of `type`. */
#define CHECK_ENCODE_FAILS(expr, type) check_encode_fails(__FILE__, __LINE__, (expr), (type))

static void check_encode_fails(const char *file, int line, const char *expr, PyObject *type)
{
    PyObject *obj = py(expr); // owned
    buf_t b;
    buf_init(&b, 64);
    if (encode(&b, obj) == 0) {
        check_fail(file, line, "encoding %s should fail", expr);
        check_hex("got", b.data, b.len);
    } else {
        check_py_error(file, line, type, NULL);
    }
    buf_destroy(&b);
    Py_DECREF(obj);
}

/* Encodes eval(expr) and decodes the bytes back with the codec. */
static PyObject *through_erlang(const char *expr)
{
    PyObject *obj = py(expr); // owned
    buf_t b;
    buf_init(&b, 64);
    PyObject *r = NULL; // owned
    if (encode(&b, obj) == 0) {
        ei_x_buff x = {.buff = b.data, .buffsz = (int)b.cap, .index = (int)b.len};
        r = decode(&x);
    }
    buf_destroy(&b);
    Py_DECREF(obj);
    return r;
}

/* ---- integers ----------------------------------------------------------------- */

/* Python expression and the hex of Erlang's term_to_binary of the same integer. */
static const struct {
    const char *expr;
    const char *etf;
} g_ints[] = {
    {"0", "836100"},
    {"255", "8361ff"},
    {"256", "836200000100"},
    {"-1", "8362ffffffff"},
    {"2**27-1", "836207ffffff"},
    {"-2**27", "8362f8000000"},
    {"2**31-1", "83627fffffff"},
    {"-2**31", "836280000000"},
    {"2**31", "836e040000000080"},
    {"-2**31-1", "836e040101000080"},
    {"2**63-1", "836e0800ffffffffffffff7f"},
    {"-2**63", "836e08010000000000000080"},
    {"2**63", "836e08000000000000000080"},
    {"-2**63-1", "836e08010100000000000080"},
    {"2**64-1", "836e0800ffffffffffffffff"},
    {"2**64", "836e0900000000000000000001"},
    {"-2**64", "836e0901000000000000000001"},
};

/* eval(expr) encodes to one integer term whose value is eval(expr): ei writes
   2**27..2**31-1 as SMALL_BIG_EXT where Erlang writes INTEGER_EXT, and
   binary_to_term/1 reads both as the same integer. */
static void check_int_encoding(const char *expr)
{
    PyObject *p = py(expr); // owned
    buf_t b;
    buf_init(&b, 64);
    if (encode(&b, p) < 0) {
        check_fail(__FILE__, __LINE__, "encoding %s failed", expr);
        PyErr_Print();
    } else {
        int type = 0;
        int size = 0;
        int index = 1;
        ei_get_type(b.data, &index, &type, &size);
        CHECK(type == ERL_SMALL_INTEGER_EXT || type == ERL_INTEGER_EXT ||
              type == ERL_SMALL_BIG_EXT || type == ERL_LARGE_BIG_EXT);
        ei_x_buff x = {.buff = b.data, .buffsz = (int)b.cap, .index = (int)b.len};
        PyObject *back = decode(&x); // owned
        CHECK_PY_EQ(back, expr);
        Py_XDECREF(back);
    }
    buf_destroy(&b);
    Py_DECREF(p);
}

static void test_conv_ints_at_every_size_boundary(void)
{
    for (size_t i = 0; i < sizeof g_ints / sizeof g_ints[0]; i++) {
        ei_x_buff x;
        from_hex(&x, g_ints[i].etf);
        PyObject *v = decode(&x); // owned
        CHECK_PY_EQ(v, g_ints[i].expr);
        check_int_encoding(g_ints[i].expr);
        Py_XDECREF(v);
        ei_x_free(&x);
    }
    /* Outside 64 bits the codec writes the bignum itself: exactly Erlang's bytes. */
    for (size_t i = 0; i < sizeof g_ints / sizeof g_ints[0]; i++) {
        if (strstr(g_ints[i].expr, "2**64") != NULL) {
            ei_x_buff x;
            from_hex(&x, g_ints[i].etf);
            PyObject *p = py(g_ints[i].expr); // owned
            CHECK_ENCODES_TO(p, &x);
            Py_DECREF(p);
            ei_x_free(&x);
        }
    }
}

static void test_conv_huge_bignums_both_signs(void)
{
    /* 2**2039 is the largest power of two in SMALL_BIG_EXT (255 digit bytes);
       2**2040 needs LARGE_BIG_EXT; 2**80000 is far beyond both. */
    static const struct {
        size_t n;
        unsigned char top;
        const char *pos;
        const char *neg;
    } cases[] = {
        {255, 0x80, "2**2039", "-2**2039"},
        {256, 0x01, "2**2040", "-2**2040"},
        {10001, 0x01, "2**80000", "-2**80000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int neg = 0; neg < 2; neg++) {
            ei_x_buff x;
            x_version(&x);
            x_big(&x, cases[i].n, neg, cases[i].top);
            PyObject *v = decode(&x); // owned
            CHECK_PY_EQ(v, neg ? cases[i].neg : cases[i].pos);
            PyObject *p = py(neg ? cases[i].neg : cases[i].pos); // owned
            CHECK_ENCODES_TO(p, &x);
            Py_DECREF(p);
            Py_XDECREF(v);
            ei_x_free(&x);
        }
    }
}

static void test_conv_non_canonical_bignum_decodes_to_its_value(void)
{
    /* 5 as SMALL_BIG_EXT and 2**32 with a zero top digit: Erlang never writes
       these, but they are valid ETF. */
    ei_x_buff x;
    from_hex(&x, "836e010005");
    PyObject *v = decode(&x); // owned
    CHECK_PY_EQ(v, "5");
    Py_XDECREF(v);
    ei_x_free(&x);
    from_hex(&x, "836e0600000000000100");
    v = decode(&x);
    CHECK_PY_EQ(v, "2**32");
    Py_XDECREF(v);
    ei_x_free(&x);
}

static void test_conv_empty_list_ext_consumes_its_tail(void)
{
    /* [] as LIST_EXT with no elements and a NIL tail, inside a list: OTP never
       writes it, but the tail must be consumed or what follows is misread. */
    ei_x_buff x;
    from_hex(&x, "836c000000016c000000006a6a");
    PyObject *v = decode(&x); // owned
    CHECK_PY_EQ(v, "[[]]");
    Py_XDECREF(v);
    ei_x_free(&x);
    /* With a tail that is not [], it is an improper list: an opaque Term. */
    from_hex(&x, "836c000000006107");
    v = decode(&x);
    CHECK(v != NULL && PyObject_TypeCheck(v, &terms_TermType));
    Py_XDECREF(v);
    ei_x_free(&x);
}

static void test_conv_int_too_large_for_erlang_is_refused(void)
{
    /* Erlang integers stop well short of 2**(8 MiB); the codec refuses cleanly. */
    CHECK_ENCODE_FAILS("2**(8 * 1024 * 1024 + 8)", PyExc_OverflowError);
    CHECK_ENCODE_FAILS("-(2**(8 * 1024 * 1024 + 8))", PyExc_OverflowError);
}

static void test_conv_int_subclasses_and_index_objects(void)
{
    ei_x_buff x;
    from_hex(&x, "8361ff");
    PyObject *p = py("I(255)"); // owned
    CHECK_ENCODES_TO(p, &x);
    Py_DECREF(p);
    p = py("Color.WHITE");
    CHECK_ENCODES_TO(p, &x);
    Py_DECREF(p);
    p = py("Idx(255)");
    CHECK_ENCODES_TO(p, &x);
    Py_DECREF(p);
    ei_x_free(&x);

    from_hex(&x, "836e0900000000000000000001");
    p = py("Idx(2**64)");
    CHECK_ENCODES_TO(p, &x);
    Py_DECREF(p);
    ei_x_free(&x);

    /* bool is not an int here: True is the atom true, never 1. */
    x_version(&x);
    x_atom(&x, "true");
    p = py("True");
    CHECK_ENCODES_TO(p, &x);
    Py_DECREF(p);
    ei_x_free(&x);
    x_version(&x);
    x_atom(&x, "false");
    p = py("False");
    CHECK_ENCODES_TO(p, &x);
    Py_DECREF(p);
    ei_x_free(&x);

    CHECK_ENCODE_FAILS("BadIdx()", PyExc_ArithmeticError);
}

/* ---- floats ------------------------------------------------------------------- */

static void test_conv_floats(void)
{
    const double values[] = {1.5, -0.0, 0.0, 1e308, 5e-324, -2.5e-10, 123456789.125};
    const char *exprs[] = {"1.5", "-0.0", "0.0", "1e308", "5e-324", "-2.5e-10", "123456789.125"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        ei_x_buff x;
        x_version(&x);
        ei_x_encode_double(&x, values[i]);
        PyObject *v = decode(&x); // owned
        CHECK_PY_EQ(v, exprs[i]);
        if (v != NULL && values[i] == 0.0) {
            CHECK_INT_EQ(signbit(PyFloat_AsDouble(v)) != 0, signbit(values[i]) != 0);
        }
        PyObject *p = py(exprs[i]); // owned
        CHECK_ENCODES_TO(p, &x);
        Py_DECREF(p);
        Py_XDECREF(v);
        ei_x_free(&x);
    }
    /* The old textual FLOAT_EXT (term_to_binary(1.5, [{minor_version, 0}])). */
    ei_x_buff x;
    from_hex(&x, "8363312e3530303030303030303030303030303030303030652b30300000000000");
    PyObject *v = decode(&x); // owned
    CHECK_PY_EQ(v, "1.5");
    Py_XDECREF(v);
    ei_x_free(&x);
    /* A float subclass is a float. */
    x_version(&x);
    ei_x_encode_double(&x, 2.5);
    PyObject *p = py("F(2.5)"); // owned
    CHECK_ENCODES_TO(p, &x);
    Py_DECREF(p);
    ei_x_free(&x);
}

static void test_conv_nan_and_infinities_become_atoms(void)
{
    static const struct {
        const char *expr;
        const char *atom;
    } cases[] = {
        {"float('nan')", "nan"}, {"float('inf')", "infinity"},  {"float('-inf')", "neg_infinity"},
        {"F('nan')", "nan"},     {"-F('inf')", "neg_infinity"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ei_x_buff x;
        x_version(&x);
        x_atom(&x, cases[i].atom);
        PyObject *p = py(cases[i].expr); // owned
        CHECK_ENCODES_TO(p, &x);
        Py_DECREF(p);
        ei_x_free(&x);
    }
}

/* ---- atoms -------------------------------------------------------------------- */

static void test_conv_special_atoms(void)
{
    static const struct {
        const char *atom;
        const char *expr;
    } cases[] = {
        {"true", "True"}, {"false", "False"},    {"none", "None"},
        {"nil", "None"},  {"undefined", "None"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ei_x_buff x;
        x_version(&x);
        x_atom(&x, cases[i].atom);
        PyObject *v = decode(&x);           // owned
        PyObject *want = py(cases[i].expr); // owned
        CHECK(v == want);
        Py_XDECREF(v);
        Py_DECREF(want);
        ei_x_free(&x);
    }
    /* None goes back as none (nil and undefined cannot be told apart). */
    ei_x_buff x;
    x_version(&x);
    x_atom(&x, "none");
    PyObject *p = py("None"); // owned
    CHECK_ENCODES_TO(p, &x);
    Py_DECREF(p);
    ei_x_free(&x);
}

static void test_conv_other_atoms_are_erlang_atom_str(void)
{
    const char *names[] = {"hello",
                           "ok",
                           "nan",
                           "True",
                           "a_very_long_atom_name_that_is_longer_"
                           "than_the_cache_slot_of_48_bytes",
                           "h\xc3\xa9llo",
                           "\xe2\x82\xac"};
    const char *exprs[] = {"'hello'",
                           "'ok'",
                           "'nan'",
                           "'True'",
                           "'a_very_long_atom_name_that_is_longer_than_the_cache_slot_of_48_bytes'",
                           "'h\\u00e9llo'",
                           "'\\u20ac'"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        ei_x_buff x;
        x_version(&x);
        x_atom(&x, names[i]);
        PyObject *v = decode(&x); // owned
        CHECK_TYPE(v, "erlang.Atom");
        CHECK(v != NULL && PyUnicode_Check(v));
        CHECK_PY_VALUE_EQ(v, exprs[i]);
        PyObject *plain = py(exprs[i]); // owned
        CHECK(v != NULL && PyObject_Hash(v) == PyObject_Hash(plain));
        Py_DECREF(plain);
        CHECK_ROUND_TRIP(&x);
        Py_XDECREF(v);
        ei_x_free(&x);
    }
    /* The same atom decoded twice is equal (the cache may give the same object). */
    ei_x_buff x;
    x_version(&x);
    x_atom(&x, "cached");
    PyObject *a = decode(&x); // owned
    PyObject *b = decode(&x); // owned
    CHECK(a != NULL && b != NULL && PyObject_RichCompareBool(a, b, Py_EQ) == 1);
    Py_XDECREF(a);
    Py_XDECREF(b);
    ei_x_free(&x);
}

static void test_conv_latin1_atom_ext_decodes_as_unicode(void)
{
    /* term_to_binary('héllo') in OTP 25: ATOM_EXT with the Latin-1 byte 0xe9. */
    ei_x_buff x;
    from_hex(&x, "8364000568e96c6c6f");
    PyObject *v = decode(&x); // owned
    CHECK_TYPE(v, "erlang.Atom");
    CHECK_PY_VALUE_EQ(v, "'h\\u00e9llo'");
    Py_XDECREF(v);
    ei_x_free(&x);
}

static void test_conv_atom_from_python(void)
{
    ei_x_buff x;
    x_version(&x);
    x_atom(&x, "x");
    PyObject *p = py("erlang.atom('x')"); // owned
    CHECK_TYPE(p, "erlang.Atom");
    CHECK_ENCODES_TO(p, &x);
    Py_DECREF(p);
    p = py("MyAtom('x')");
    CHECK_ENCODES_TO(p, &x);
    Py_DECREF(p);
    ei_x_free(&x);

    /* 255 characters is the limit, counted in characters, not bytes. */
    PyObject *v = through_erlang("erlang.atom('a' * 255)"); // owned
    CHECK_PY_VALUE_EQ(v, "'a' * 255");
    Py_XDECREF(v);
    v = through_erlang("erlang.atom('\\u00e9' * 255)");
    CHECK_TYPE(v, "erlang.Atom");
    CHECK_PY_VALUE_EQ(v, "'\\u00e9' * 255");
    Py_XDECREF(v);
    v = through_erlang("erlang.atom('\\U0001F600' * 255)");
    CHECK_TYPE(v, "erlang.Atom");
    CHECK_PY_VALUE_EQ(v, "'\\U0001F600' * 255");
    Py_XDECREF(v);
    CHECK_ENCODE_FAILS("erlang.Atom('a' * 256)", PyExc_ValueError);
    CHECK_ENCODE_FAILS("erlang.Atom('\\ud800')", PyExc_UnicodeError);
}

/* ---- binaries and strings ---------------------------------------------------------- */

static void test_conv_utf8_binary_is_str(void)
{
    const char *texts[] = {"", "hello", "h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80"};
    const char *exprs[] = {"''", "'hello'", "'h\\u00e9llo \\u2603 \\U0001F600'"};
    for (size_t i = 0; i < 3; i++) {
        ei_x_buff x;
        x_version(&x);
        ei_x_encode_binary(&x, texts[i], (long)strlen(texts[i]));
        PyObject *v = decode(&x); // owned
        CHECK_PY_EQ(v, exprs[i]);
        PyObject *p = py(exprs[i]); // owned
        CHECK_ENCODES_TO(p, &x);
        Py_DECREF(p);
        p = py(i == 0 ? "S('')" : i == 1 ? "S('hello')" : "S('h\\u00e9llo \\u2603 \\U0001F600')");
        CHECK_ENCODES_TO(p, &x);
        Py_DECREF(p);
        Py_XDECREF(v);
        ei_x_free(&x);
    }
}

static void test_conv_invalid_utf8_binary_is_bytes(void)
{
    static const struct {
        const char *bytes;
        long n;
        const char *expr;
    } cases[] = {
        {"\xff", 1, "b'\\xff'"},
        {"ab\xc3", 3, "b'ab\\xc3'"},
        {"\xed\xa0\x80", 3, "b'\\xed\\xa0\\x80'"}, /* an encoded surrogate */
        {"\xc0\x80", 2, "b'\\xc0\\x80'"},          /* overlong NUL */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ei_x_buff x;
        x_version(&x);
        ei_x_encode_binary(&x, cases[i].bytes, cases[i].n);
        PyObject *v = decode(&x); // owned
        CHECK_PY_EQ(v, cases[i].expr);
        CHECK_ROUND_TRIP(&x);
        Py_XDECREF(v);
        ei_x_free(&x);
    }
}

static void test_conv_bytes_tuple_is_bytes(void)
{
    ei_x_buff x;
    x_version(&x);
    ei_x_encode_tuple_header(&x, 2);
    x_atom(&x, "bytes");
    ei_x_encode_binary(&x, "abc", 3);
    PyObject *v = decode(&x); // owned
    CHECK_PY_EQ(v, "b'abc'");
    Py_XDECREF(v);
    ei_x_free(&x);

    /* {bytes, NotABinary} and {bytes, B, X} are plain tuples. */
    x_version(&x);
    ei_x_encode_tuple_header(&x, 2);
    x_atom(&x, "bytes");
    ei_x_encode_long(&x, 1);
    v = decode(&x);
    CHECK_PY_VALUE_EQ(v, "('bytes', 1)");
    CHECK_TYPE(v, "tuple");
    Py_XDECREF(v);
    ei_x_free(&x);
    x_version(&x);
    ei_x_encode_tuple_header(&x, 3);
    x_atom(&x, "bytes");
    ei_x_encode_binary(&x, "abc", 3);
    ei_x_encode_long(&x, 1);
    v = decode(&x);
    CHECK_PY_VALUE_EQ(v, "('bytes', 'abc', 1)");
    Py_XDECREF(v);
    ei_x_free(&x);
}

static void test_conv_bytes_like_objects_become_binaries(void)
{
    ei_x_buff x;
    x_version(&x);
    ei_x_encode_binary(&x, "abc", 3);
    const char *exprs[] = {"b'abc'", "bytearray(b'abc')", "memoryview(b'abc')",
                           "memoryview(bytearray(b'xabcx'))[1:4]", "B(b'abc')"};
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        PyObject *p = py(exprs[i]); // owned
        CHECK_ENCODES_TO(p, &x);
        Py_DECREF(p);
    }
    ei_x_free(&x);
    /* A strided view is still a memoryview: its bytes, in order. */
    x_version(&x);
    ei_x_encode_binary(&x, "ace", 3);
    PyObject *p = py("memoryview(b'abcdef')[::2]"); // owned
    CHECK_ENCODES_TO(p, &x);
    Py_DECREF(p);
    ei_x_free(&x);
}

static void test_conv_bit_binary_is_opaque_term(void)
{
    ei_x_buff x;
    from_hex(&x, "834d000000010320"); /* <<1:3>> */
    PyObject *v = decode(&x);         // owned
    CHECK_TYPE(v, "erlang.Term");
    CHECK_ROUND_TRIP(&x);
    Py_XDECREF(v);
    ei_x_free(&x);
}

static void test_conv_lone_surrogate_str_is_an_error(void)
{
    CHECK_ENCODE_FAILS("'a\\ud800b'", PyExc_UnicodeEncodeError);
    CHECK_ENCODE_FAILS("['ok', {'k': '\\udfff'}]", PyExc_UnicodeEncodeError);
    CHECK_ENCODE_FAILS("{'\\ud800': 1}", PyExc_UnicodeEncodeError);
    CHECK_ENCODE_FAILS("S('\\ud800')", PyExc_UnicodeEncodeError);
}

/* ---- lists, tuples, maps ------------------------------------------------------------ */

static void test_conv_lists(void)
{
    ei_x_buff x;
    x_version(&x);
    ei_x_encode_list_header(&x, 3);
    ei_x_encode_long(&x, 1);
    ei_x_encode_binary(&x, "two", 3);
    ei_x_encode_list_header(&x, 1);
    ei_x_encode_double(&x, 3.0);
    ei_x_encode_empty_list(&x);
    ei_x_encode_empty_list(&x);
    PyObject *v = decode(&x); // owned
    CHECK_PY_EQ(v, "[1, 'two', [3.0]]");
    CHECK_ROUND_TRIP(&x);
    Py_XDECREF(v);
    ei_x_free(&x);

    x_version(&x);
    ei_x_encode_empty_list(&x);
    v = decode(&x);
    CHECK_PY_EQ(v, "[]");
    CHECK_ROUND_TRIP(&x);
    Py_XDECREF(v);
    ei_x_free(&x);

    /* A charlist (STRING_EXT) is a list of integers. */
    x_version(&x);
    ei_x_encode_string(&x, "abc");
    v = decode(&x);
    CHECK_PY_EQ(v, "[97, 98, 99]");
    Py_XDECREF(v);
    ei_x_free(&x);

    /* list subclasses are lists. */
    x_version(&x);
    ei_x_encode_list_header(&x, 2);
    ei_x_encode_long(&x, 1);
    ei_x_encode_long(&x, 2);
    ei_x_encode_empty_list(&x);
    PyObject *p = py("L([1, 2])"); // owned
    CHECK_ENCODES_TO(p, &x);
    Py_DECREF(p);
    ei_x_free(&x);
}

static void test_conv_improper_list_is_opaque_term(void)
{
    ei_x_buff x;
    x_version(&x);
    ei_x_encode_list_header(&x, 2);
    ei_x_encode_long(&x, 1);
    ei_x_encode_long(&x, 2);
    ei_x_encode_long(&x, 3);  /* tail: [1, 2 | 3] */
    PyObject *v = decode(&x); // owned
    CHECK_TYPE(v, "erlang.Term");
    CHECK_ROUND_TRIP(&x);
    Py_XDECREF(v);
    ei_x_free(&x);

    /* Inside a proper list, only the improper part is opaque. */
    x_version(&x);
    ei_x_encode_list_header(&x, 2);
    ei_x_encode_list_header(&x, 1);
    ei_x_encode_long(&x, 1);
    ei_x_encode_atom(&x, "tail");
    ei_x_encode_long(&x, 7);
    ei_x_encode_empty_list(&x);
    v = decode(&x);
    CHECK(v != NULL && PyList_Check(v) && PyList_GET_SIZE(v) == 2);
    if (v != NULL && PyList_Check(v) && PyList_GET_SIZE(v) == 2) {
        CHECK_TYPE(PyList_GET_ITEM(v, 0), "erlang.Term");
        CHECK_PY_EQ(PyList_GET_ITEM(v, 1), "7");
    }
    CHECK_ROUND_TRIP(&x);
    Py_XDECREF(v);
    ei_x_free(&x);
}

static void test_conv_tuples(void)
{
    ei_x_buff x;
    x_version(&x);
    ei_x_encode_tuple_header(&x, 0);
    PyObject *v = decode(&x); // owned
    CHECK_PY_EQ(v, "()");
    CHECK_ROUND_TRIP(&x);
    Py_XDECREF(v);
    ei_x_free(&x);

    x_version(&x);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_long(&x, 1);
    ei_x_encode_binary(&x, "a", 1);
    v = decode(&x);
    CHECK_PY_EQ(v, "(1, 'a')");
    CHECK_ROUND_TRIP(&x);
    Py_XDECREF(v);
    PyObject *p = py("Point(1, 'a')"); // owned
    CHECK_ENCODES_TO(p, &x);
    Py_DECREF(p);
    ei_x_free(&x);

    /* LARGE_TUPLE_EXT */
    x_version(&x);
    ei_x_encode_tuple_header(&x, 300);
    for (int i = 0; i < 300; i++) {
        ei_x_encode_long(&x, i);
    }
    v = decode(&x);
    CHECK_PY_EQ(v, "tuple(range(300))");
    CHECK_ROUND_TRIP(&x);
    Py_XDECREF(v);
    ei_x_free(&x);
}

static void test_conv_maps(void)
{
    ei_x_buff x;
    x_version(&x);
    ei_x_encode_map_header(&x, 3);
    x_atom(&x, "a");
    ei_x_encode_long(&x, 1);
    ei_x_encode_binary(&x, "b", 1);
    ei_x_encode_list_header(&x, 1);
    ei_x_encode_long(&x, 2);
    ei_x_encode_empty_list(&x);
    ei_x_encode_long(&x, 3);
    ei_x_encode_map_header(&x, 0);
    PyObject *v = decode(&x); // owned
    CHECK_PY_EQ(v, "{'a': 1, 'b': [2], 3: {}}");
    CHECK_ROUND_TRIP(&x);
    Py_XDECREF(v);
    ei_x_free(&x);

    /* dict subclasses are maps. */
    x_version(&x);
    ei_x_encode_map_header(&x, 1);
    ei_x_encode_binary(&x, "k", 1);
    ei_x_encode_long(&x, 1);
    const char *exprs[] = {"collections.OrderedDict(k=1)", "collections.Counter(k=1)",
                           "collections.defaultdict(int, k=1)", "D(k=1)"};
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        PyObject *p = py(exprs[i]); // owned
        CHECK_ENCODES_TO(p, &x);
        Py_DECREF(p);
    }
    ei_x_free(&x);
}

static void test_conv_map_with_unhashable_keys(void)
{
    ei_x_buff x;
    x_version(&x);
    ei_x_encode_map_header(&x, 4);
    ei_x_encode_list_header(&x, 1); /* [1] => list */
    ei_x_encode_long(&x, 1);
    ei_x_encode_empty_list(&x);
    x_atom(&x, "list");
    ei_x_encode_map_header(&x, 0); /* #{} => map */
    x_atom(&x, "map");
    ei_x_encode_tuple_header(&x, 1); /* {[2]} => tuple */
    ei_x_encode_list_header(&x, 1);
    ei_x_encode_long(&x, 2);
    ei_x_encode_empty_list(&x);
    x_atom(&x, "tuple");
    x_atom(&x, "plain");
    ei_x_encode_long(&x, 4);
    PyObject *v = decode(&x); // owned
    CHECK(v != NULL && PyDict_Check(v) && PyDict_GET_SIZE(v) == 4);
    if (v != NULL && PyDict_Check(v)) {
        Py_ssize_t pos = 0;
        PyObject *k;
        PyObject *val;
        int opaque = 0;
        while (PyDict_Next(v, &pos, &k, &val)) {
            opaque += PyObject_TypeCheck(k, &terms_TermType);
        }
        CHECK_INT_EQ(opaque, 3);
    }
    CHECK_ROUND_TRIP(&x);
    Py_XDECREF(v);
    ei_x_free(&x);
}

/* ---- pids, refs, ports, funs ------------------------------------------------------------ */

static void test_conv_pids_and_refs_compare_and_hash_by_bytes(void)
{
    ei_x_buff p1;
    ei_x_buff p1b;
    ei_x_buff p2;
    ei_x_buff r1;
    x_version(&p1);
    x_pid(&p1, 85);
    x_version(&p1b);
    x_pid(&p1b, 85);
    x_version(&p2);
    x_pid(&p2, 86);
    x_version(&r1);
    x_ref(&r1, 85);
    PyObject *a = decode(&p1);  // owned
    PyObject *b = decode(&p1b); // owned
    PyObject *c = decode(&p2);  // owned
    PyObject *r = decode(&r1);  // owned
    PyObject *r2 = decode(&r1); // owned
    CHECK_TYPE(a, "erlang.Pid");
    CHECK_TYPE(r, "erlang.Ref");
    if (a && b && c && r && r2) {
        CHECK(a != b);
        CHECK_INT_EQ(PyObject_RichCompareBool(a, b, Py_EQ), 1);
        CHECK_INT_EQ(PyObject_RichCompareBool(a, b, Py_NE), 0);
        CHECK(PyObject_Hash(a) == PyObject_Hash(b));
        CHECK_INT_EQ(PyObject_RichCompareBool(a, c, Py_EQ), 0);
        CHECK_INT_EQ(PyObject_RichCompareBool(a, r, Py_EQ), 0);
        CHECK_INT_EQ(PyObject_RichCompareBool(r, r2, Py_EQ), 1);
        CHECK(PyObject_Hash(r) == PyObject_Hash(r2));
        /* Usable as dict keys: an equal pid finds the entry. */
        PyObject *d = PyDict_New(); // owned
        PyDict_SetItem(d, a, Py_True);
        CHECK(PyDict_GetItem(d, b) == Py_True);
        CHECK(PyDict_GetItem(d, c) == NULL);
        Py_DECREF(d);
    }
    CHECK_ROUND_TRIP(&p1);
    CHECK_ROUND_TRIP(&r1);
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(c);
    Py_XDECREF(r);
    Py_XDECREF(r2);
    ei_x_free(&p1);
    ei_x_free(&p1b);
    ei_x_free(&p2);
    ei_x_free(&r1);
}

static void test_conv_ports_and_funs_are_opaque_terms(void)
{
    const char *hex[] = {
        "835964000d6e6f6e6f6465406e6f686f73740000000000000000", /* #Port<0.0> */
        "83716400056c6973747364000373756d6101",                 /* fun lists:sum/1 */
    };
    for (size_t i = 0; i < 2; i++) {
        ei_x_buff x;
        from_hex(&x, hex[i]);
        PyObject *v = decode(&x); // owned
        CHECK_TYPE(v, "erlang.Term");
        CHECK_ROUND_TRIP(&x);
        Py_XDECREF(v);
        ei_x_free(&x);
    }
    /* A Term made in Python from ETF bytes is that term. */
    ei_x_buff x;
    from_hex(&x, "836105");
    PyObject *p = py("erlang.Term(b'\\x83a\\x05')"); // owned
    CHECK_ENCODES_TO(p, &x);
    Py_DECREF(p);
    ei_x_free(&x);
}

/* ---- nesting -------------------------------------------------------------------------- */

static void nested_list(ei_x_buff *x, int depth)
{
    x_version(x);
    for (int i = 0; i < depth; i++) {
        ei_x_encode_list_header(x, 1);
    }
    ei_x_encode_empty_list(x);
    for (int i = 0; i < depth; i++) {
        ei_x_encode_empty_list(x);
    }
}

static void test_conv_nesting_limit_erlang_to_python(void)
{
    ei_x_buff x;
    nested_list(&x, PYPORT_DEFAULT_MAX_DEPTH);
    CHECK_ROUND_TRIP(&x);
    ei_x_free(&x);
    nested_list(&x, PYPORT_DEFAULT_MAX_DEPTH + 1);
    CHECK_DECODE_FAILS(&x, "deeper than the limit");
    ei_x_free(&x);
    /* Far past the limit: still a clean error, not a stack overflow. */
    nested_list(&x, 200000);
    CHECK_DECODE_FAILS(&x, "deeper than the limit");
    ei_x_free(&x);

    /* Tuples and map values count too. */
    x_version(&x);
    for (int i = 0; i < 5000; i++) {
        ei_x_encode_tuple_header(&x, 1);
    }
    ei_x_encode_long(&x, 1);
    CHECK_DECODE_FAILS(&x, "deeper than the limit");
    ei_x_free(&x);
    x_version(&x);
    for (int i = 0; i < 5000; i++) {
        ei_x_encode_map_header(&x, 1);
        ei_x_encode_long(&x, i);
    }
    ei_x_encode_long(&x, 1);
    CHECK_DECODE_FAILS(&x, "deeper than the limit");
    ei_x_free(&x);

    /* The limit is configurable (--max-depth). */
    conv_set_max_depth(5);
    nested_list(&x, 5);
    CHECK_ROUND_TRIP(&x);
    ei_x_free(&x);
    nested_list(&x, 6);
    CHECK_DECODE_FAILS(&x, "limit of 5");
    ei_x_free(&x);
    conv_set_max_depth(PYPORT_DEFAULT_MAX_DEPTH);
}

static void test_conv_nesting_limit_python_to_erlang(void)
{
    py_exec("def nest(n, wrap):\n"
            "    x = []\n"
            "    for _ in range(n):\n"
            "        x = wrap(x)\n"
            "    return x\n");
    py_exec("def depth(x):\n"
            "    d = 0\n"
            "    while x:\n"
            "        x = x[0]\n"
            "        d += 1\n"
            "    return d\n");
    PyObject *ok = through_erlang("nest(1000, lambda x: [x])"); // owned
    /* Compared by walking it: == on 1000 levels would hit Python's own limit. */
    if (ok != NULL) {
        PyDict_SetItemString(g_ns, "got", ok);
        PyObject *d = py("depth(got)"); // owned
        CHECK_PY_EQ(d, "1000");
        Py_DECREF(d);
    } else {
        check_fail(__FILE__, __LINE__, "1000 levels did not go through");
        PyErr_Print();
    }
    Py_XDECREF(ok);
    CHECK_ENCODE_FAILS("nest(1001, lambda x: [x])", PyExc_ValueError);
    CHECK_ENCODE_FAILS("nest(100000, lambda x: [x])", PyExc_ValueError);
    CHECK_ENCODE_FAILS("nest(5000, lambda x: (x,))", PyExc_ValueError);
    CHECK_ENCODE_FAILS("nest(5000, lambda x: {'k': x})", PyExc_ValueError);
    /* Containers that hold themselves. */
    py_exec("selfish = []\nselfish.append(selfish)\nselfd = {}\nselfd['me'] = selfd\n");
    CHECK_ENCODE_FAILS("selfish", PyExc_ValueError);
    CHECK_ENCODE_FAILS("selfd", PyExc_ValueError);
}

/* ---- sets, look-alikes, unconvertible objects -------------------------------------------- */

static void test_conv_sets_become_lists(void)
{
    PyObject *v = through_erlang("{3, 1, 2}"); // owned
    CHECK_TYPE(v, "list");
    if (v != NULL && PyList_Check(v)) {
        PyList_Sort(v);
    }
    CHECK_PY_EQ(v, "[1, 2, 3]");
    Py_XDECREF(v);
    v = through_erlang("frozenset(['a', 'b'])");
    CHECK_TYPE(v, "list");
    if (v != NULL && PyList_Check(v)) {
        PyList_Sort(v);
    }
    CHECK_PY_EQ(v, "['a', 'b']");
    Py_XDECREF(v);
    v = through_erlang("set()");
    CHECK_PY_EQ(v, "[]");
    Py_XDECREF(v);
}

static void test_conv_unconvertible_object_is_its_repr(void)
{
    PyObject *v = through_erlang("object()"); // owned
    CHECK_TYPE(v, "str");
    PyObject *prefix = PyUnicode_FromString("<object object at "); // owned
    CHECK(v != NULL && PyUnicode_Check(v) &&
          PyUnicode_Tailmatch(v, prefix, 0, PY_SSIZE_T_MAX, -1) == 1);
    Py_DECREF(prefix);
    Py_XDECREF(v);
    v = through_erlang("[Plain()]");
    CHECK_PY_EQ(v, "['<Plain>']");
    Py_XDECREF(v);
    /* A repr that raises is an error, not a crash. */
    CHECK_ENCODE_FAILS("BadRepr()", PyExc_RuntimeError);
}

/* ---- names and kwargs ----------------------------------------------------------------- */

static PyObject *name_of(const ei_x_buff *x, int *consumed)
{
    char *copy = mem_dup(x->buff, (size_t)x->index);
    int index = 1;
    PyObject *r = conv_name(copy, (size_t)x->index, &index); // owned
    *consumed = index;
    mem_free(copy);
    return r;
}

static void test_conv_name_accepts_atoms_binaries_and_charlists(void)
{
    ei_x_buff x;
    int used;
    x_version(&x);
    x_atom(&x, "sqrt");
    PyObject *v = name_of(&x, &used); // owned
    CHECK_PY_EQ(v, "'sqrt'");         /* an exact str, not an Atom */
    CHECK_INT_EQ(used, x.index);
    Py_XDECREF(v);
    ei_x_free(&x);

    x_version(&x);
    x_atom(&x, "os.path");
    v = name_of(&x, &used);
    CHECK_PY_EQ(v, "'os.path'");
    Py_XDECREF(v);
    ei_x_free(&x);

    x_version(&x);
    ei_x_encode_binary(&x, "caf\xc3\xa9", 5);
    v = name_of(&x, &used);
    CHECK_PY_EQ(v, "'caf\\u00e9'");
    CHECK_INT_EQ(used, x.index);
    Py_XDECREF(v);
    ei_x_free(&x);

    x_version(&x);
    ei_x_encode_string(&x, "join");
    v = name_of(&x, &used);
    CHECK_PY_EQ(v, "'join'");
    CHECK_INT_EQ(used, x.index);
    Py_XDECREF(v);
    ei_x_free(&x);

    /* A charlist with code points above 255 is a LIST_EXT. */
    x_version(&x);
    ei_x_encode_list_header(&x, 2);
    ei_x_encode_long(&x, 0x20ac);
    ei_x_encode_long(&x, 0x1f600);
    ei_x_encode_empty_list(&x);
    v = name_of(&x, &used);
    CHECK_PY_EQ(v, "'\\u20ac\\U0001F600'");
    CHECK_INT_EQ(used, x.index);
    Py_XDECREF(v);
    ei_x_free(&x);

    x_version(&x);
    ei_x_encode_empty_list(&x);
    v = name_of(&x, &used);
    CHECK_PY_EQ(v, "''");
    Py_XDECREF(v);
    ei_x_free(&x);
}

static void test_conv_name_rejects_bad_input(void)
{
    const char *what[] = {"invalid UTF-8 binary",
                          "integer",
                          "list of atoms",
                          "code point too big",
                          "negative code point",
                          "improper list",
                          "nested list",
                          "tuple",
                          "pid"};
    for (int i = 0; i < 9; i++) {
        ei_x_buff x;
        x_version(&x);
        switch (i) {
        case 0:
            ei_x_encode_binary(&x, "a\xff", 2);
            break;
        case 1:
            ei_x_encode_long(&x, 7);
            break;
        case 2:
            ei_x_encode_list_header(&x, 1);
            x_atom(&x, "a");
            ei_x_encode_empty_list(&x);
            break;
        case 3:
            ei_x_encode_list_header(&x, 1);
            ei_x_encode_long(&x, 0x110000);
            ei_x_encode_empty_list(&x);
            break;
        case 4:
            ei_x_encode_list_header(&x, 1);
            ei_x_encode_long(&x, -1);
            ei_x_encode_empty_list(&x);
            break;
        case 5:
            ei_x_encode_list_header(&x, 1);
            ei_x_encode_long(&x, 97);
            ei_x_encode_long(&x, 98);
            break;
        case 6:
            ei_x_encode_list_header(&x, 1);
            ei_x_encode_string(&x, "ab");
            ei_x_encode_empty_list(&x);
            break;
        case 7:
            ei_x_encode_tuple_header(&x, 1);
            x_atom(&x, "a");
            break;
        default:
            x_pid(&x, 1);
            break;
        }
        int used;
        check_test = what[i];
        PyObject *v = name_of(&x, &used); // owned
        CHECK(v == NULL);
        if (v == NULL) {
            CHECK_PY_ERROR(PyExc_ValueError, NULL);
        }
        Py_XDECREF(v);
        ei_x_free(&x);
    }
    check_test = "test_conv_name_rejects_bad_input";
}

static void test_conv_kwargs(void)
{
    ei_x_buff x;
    x_version(&x);
    ei_x_encode_map_header(&x, 3);
    x_atom(&x, "a");
    ei_x_encode_long(&x, 1);
    ei_x_encode_binary(&x, "b", 1);
    x_atom(&x, "other");
    ei_x_encode_string(&x, "c");
    ei_x_encode_list_header(&x, 1);
    ei_x_encode_long(&x, 3);
    ei_x_encode_empty_list(&x);
    char *copy = mem_dup(x.buff, (size_t)x.index);
    int index = 1;
    PyObject *d = conv_kwargs(copy, (size_t)x.index, &index); // owned
    CHECK_PY_VALUE_EQ(d, "{'a': 1, 'b': 'other', 'c': [3]}");
    CHECK_INT_EQ(index, x.index);
    if (d != NULL) {
        Py_ssize_t pos = 0;
        PyObject *k;
        PyObject *v;
        while (PyDict_Next(d, &pos, &k, &v)) {
            CHECK(PyUnicode_CheckExact(k));
        }
        /* Values are converted like any term: the atom is an erlang.Atom. */
        CHECK_TYPE(PyDict_GetItemString(d, "b"), "erlang.Atom");
    }
    Py_XDECREF(d);
    mem_free(copy);
    ei_x_free(&x);

    /* Not a map; a key that is no name. */
    for (int i = 0; i < 2; i++) {
        x_version(&x);
        if (i == 0) {
            ei_x_encode_list_header(&x, 0);
        } else {
            ei_x_encode_map_header(&x, 1);
            ei_x_encode_long(&x, 1);
            ei_x_encode_long(&x, 2);
        }
        copy = mem_dup(x.buff, (size_t)x.index);
        index = 1;
        d = conv_kwargs(copy, (size_t)x.index, &index);
        CHECK(d == NULL);
        CHECK_PY_ERROR(PyExc_ValueError, NULL);
        Py_XDECREF(d);
        mem_free(copy);
        ei_x_free(&x);
    }
}

/* ---- exceptions ------------------------------------------------------------------------- */

static void test_conv_exception_is_pyerr_tuple(void)
{
    PyErr_SetString(PyExc_ZeroDivisionError, "division by zero");
    buf_t b;
    buf_init(&b, 64);
    conv_exception(&b);
    CHECK(!PyErr_Occurred());
    int index = 0;
    int arity = 0;
    char atom[MAXATOMLEN_UTF8];
    char text[256];
    CHECK_INT_EQ(ei_decode_tuple_header(b.data, &index, &arity), 0);
    CHECK_INT_EQ(arity, 4);
    CHECK_INT_EQ(ei_decode_atom(b.data, &index, atom), 0);
    CHECK_STR_EQ(atom, "pyerr");
    CHECK_INT_EQ(ei_decode_string(b.data, &index, text), 0);
    CHECK_STR_EQ(text, "ZeroDivisionError");
    CHECK_INT_EQ(ei_decode_string(b.data, &index, text), 0);
    CHECK_STR_EQ(text, "division by zero");
    CHECK_INT_EQ(ei_skip_term(b.data, &index), 0);
    CHECK_UINT_EQ((size_t)index, b.len);
    buf_destroy(&b);

    PyErr_SetString(PyExc_ValueError, "bad name");
    buf_init(&b, 64);
    conv_badarg(&b);
    CHECK(!PyErr_Occurred());
    index = 0;
    CHECK_INT_EQ(ei_decode_tuple_header(b.data, &index, &arity), 0);
    CHECK_INT_EQ(arity, 2);
    CHECK_INT_EQ(ei_decode_atom(b.data, &index, atom), 0);
    CHECK_STR_EQ(atom, "badarg");
    CHECK_INT_EQ(ei_decode_string(b.data, &index, text), 0);
    CHECK_STR_EQ(text, "bad name");
    buf_destroy(&b);
}

static void setup_python(void)
{
    ei_init();
    pyerl_register();
    Py_Initialize();
    g_ns = PyDict_New();
    PyDict_SetItemString(g_ns, "__builtins__", PyEval_GetBuiltins());
    py_exec("import erlang, collections, enum\n"
            "class I(int): pass\n"
            "class F(float): pass\n"
            "class S(str): pass\n"
            "class B(bytes): pass\n"
            "class L(list): pass\n"
            "class D(dict): pass\n"
            "class MyAtom(erlang.Atom): pass\n"
            "Point = collections.namedtuple('Point', 'x y')\n"
            "class Color(enum.IntEnum):\n"
            "    WHITE = 255\n"
            "class Idx:\n"
            "    def __init__(self, v): self.v = v\n"
            "    def __index__(self): return self.v\n"
            "class BadIdx:\n"
            "    def __index__(self): raise ArithmeticError('no index')\n"
            "class Plain:\n"
            "    def __repr__(self): return '<Plain>'\n"
            "class BadRepr:\n"
            "    def __repr__(self): raise RuntimeError('no repr')\n");
}

int main(void)
{
    setup_python();
    RUN_TEST(test_conv_ints_at_every_size_boundary);
    RUN_TEST(test_conv_huge_bignums_both_signs);
    RUN_TEST(test_conv_non_canonical_bignum_decodes_to_its_value);
    RUN_TEST(test_conv_empty_list_ext_consumes_its_tail);
    RUN_TEST(test_conv_int_too_large_for_erlang_is_refused);
    RUN_TEST(test_conv_int_subclasses_and_index_objects);
    RUN_TEST(test_conv_floats);
    RUN_TEST(test_conv_nan_and_infinities_become_atoms);
    RUN_TEST(test_conv_special_atoms);
    RUN_TEST(test_conv_other_atoms_are_erlang_atom_str);
    RUN_TEST(test_conv_latin1_atom_ext_decodes_as_unicode);
    RUN_TEST(test_conv_atom_from_python);
    RUN_TEST(test_conv_utf8_binary_is_str);
    RUN_TEST(test_conv_invalid_utf8_binary_is_bytes);
    RUN_TEST(test_conv_bytes_tuple_is_bytes);
    RUN_TEST(test_conv_bytes_like_objects_become_binaries);
    RUN_TEST(test_conv_bit_binary_is_opaque_term);
    RUN_TEST(test_conv_lone_surrogate_str_is_an_error);
    RUN_TEST(test_conv_lists);
    RUN_TEST(test_conv_improper_list_is_opaque_term);
    RUN_TEST(test_conv_tuples);
    RUN_TEST(test_conv_maps);
    RUN_TEST(test_conv_map_with_unhashable_keys);
    RUN_TEST(test_conv_pids_and_refs_compare_and_hash_by_bytes);
    RUN_TEST(test_conv_ports_and_funs_are_opaque_terms);
    RUN_TEST(test_conv_nesting_limit_erlang_to_python);
    RUN_TEST(test_conv_nesting_limit_python_to_erlang);
    RUN_TEST(test_conv_sets_become_lists);
    RUN_TEST(test_conv_unconvertible_object_is_its_repr);
    RUN_TEST(test_conv_name_accepts_atoms_binaries_and_charlists);
    RUN_TEST(test_conv_name_rejects_bad_input);
    RUN_TEST(test_conv_kwargs);
    RUN_TEST(test_conv_exception_is_pyerr_tuple);
    int status = check_exit_status();
    Py_DECREF(g_ns);
    return status;
}
