/*
 * Always-on assertions for the C unit tests (they ignore NDEBUG). A failed check
 * prints where it failed, the expression and both values, counts the failure and
 * lets the test go on; check_exit_status() makes the program exit non-zero if any
 * check failed. Single-threaded: the counters are plain globals.
 */
#ifndef PYPORT_TEST_CHECK_H
#define PYPORT_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int check_failed;
static int check_run;
static const char *check_test = "?";

__attribute__((format(printf, 3, 4), unused)) static void check_fail(const char *file, int line,
                                                                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s (%s:%d): ", check_test, file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    check_failed++;
}

/* Prints up to 64 bytes of p as hex, then "..." if there are more. */
__attribute__((unused)) static void check_hex(const char *label, const void *p, size_t n)
{
    const unsigned char *s = p;
    fprintf(stderr, "    %s (%zu bytes):", label, n);
    for (size_t i = 0; i < n && i < 64; i++) {
        fprintf(stderr, " %02x", s[i]);
    }
    fprintf(stderr, n > 64 ? " ...\n" : "\n");
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            check_fail(__FILE__, __LINE__, "%s", #cond);                                           \
        }                                                                                          \
    } while (0)

#define CHECK_INT_EQ(a, b)                                                                         \
    do {                                                                                           \
        long long a_ = (long long)(a);                                                             \
        long long b_ = (long long)(b);                                                             \
        if (a_ != b_) {                                                                            \
            check_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);              \
        }                                                                                          \
    } while (0)

#define CHECK_UINT_EQ(a, b)                                                                        \
    do {                                                                                           \
        unsigned long long a_ = (unsigned long long)(a);                                           \
        unsigned long long b_ = (unsigned long long)(b);                                           \
        if (a_ != b_) {                                                                            \
            check_fail(__FILE__, __LINE__, "%s == %s: %llu != %llu", #a, #b, a_, b_);              \
        }                                                                                          \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                                         \
    do {                                                                                           \
        const char *a_ = (a);                                                                      \
        const char *b_ = (b);                                                                      \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                                     \
            check_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,                   \
                       a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                    \
        }                                                                                          \
    } while (0)

#define CHECK_MEM_EQ(a, alen, b, blen)                                                             \
    do {                                                                                           \
        const void *a_ = (a);                                                                      \
        const void *b_ = (b);                                                                      \
        size_t alen_ = (size_t)(alen);                                                             \
        size_t blen_ = (size_t)(blen);                                                             \
        if (alen_ != blen_ || (alen_ > 0 && memcmp(a_, b_, alen_) != 0)) {                         \
            check_fail(__FILE__, __LINE__, "bytes of %s == bytes of %s", #a, #b);                  \
            check_hex(#a, a_, alen_);                                                              \
            check_hex(#b, b_, blen_);                                                              \
        }                                                                                          \
    } while (0)

/* Runs one test function, named after what it checks. */
#define RUN_TEST(fn)                                                                               \
    do {                                                                                           \
        int before_ = check_failed;                                                                \
        check_test = #fn;                                                                          \
        check_run++;                                                                               \
        fn();                                                                                      \
        fprintf(stderr, "%s %s\n", check_failed == before_ ? "ok  " : "FAILED", #fn);              \
    } while (0)

/* Prints the summary; returns the process exit status (0 only if all passed). */
__attribute__((unused)) static int check_exit_status(void)
{
    fprintf(stderr, "%d tests, %d failed checks\n", check_run, check_failed);
    return check_failed == 0 ? 0 : 1;
}

#endif
