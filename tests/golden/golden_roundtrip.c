/*
 * Golden-fixture helper: for every DIR/<name>.etf (written by golden.escript),
 * decodes the term into Python with the port's codec, encodes it back, and
 * writes DIR/<name>.out; a term that fails either way gets DIR/<name>.err with
 * the Python error. golden.escript then compares in Erlang. Single-threaded.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <ei.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "convert.h"
#include "memory.h"
#include "pyerlang.h"
#include "terms.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    buf_t b;
    buf_init(&b, 4096);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        buf_append(&b, chunk, n);
    }
    fclose(f);
    return buf_steal(&b, len);
}

static void spit(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len) {
        perror(path);
        exit(2);
    }
    fclose(f);
}

static void roundtrip(const char *dir, const char *name)
{
    char in[4096];
    char out[4096];
    snprintf(in, sizeof in, "%s/%s", dir, name);
    size_t len;
    char *etf = slurp(in, &len);
    if (etf == NULL || len < 1 || (unsigned char)etf[0] != 131) {
        fprintf(stderr, "%s: not an ETF file\n", in);
        exit(2);
    }
    int index = 1;
    PyObject *obj = conv_to_py(etf, len, &index); // owned
    buf_t b;
    buf_init(&b, len + 16);
    char v = (char)131;
    buf_append(&b, &v, 1);
    int ok = obj != NULL && (size_t)index == len && conv_from_py(&b, obj) == 0;
    snprintf(out, sizeof out, "%s/%.*s.%s", dir, (int)(strlen(name) - 4), name, ok ? "out" : "err");
    if (ok) {
        spit(out, b.data, b.len);
    } else {
        PyObject *type;
        PyObject *exc;
        PyObject *tb;
        PyErr_Fetch(&type, &exc, &tb); // owned, owned, owned
        Py_XDECREF(type);
        Py_XDECREF(tb);
        PyObject *s = exc != NULL ? PyObject_Str(exc) : NULL; // owned
        const char *msg = s != NULL ? PyUnicode_AsUTF8(s) : "decoded length mismatch";
        spit(out, msg, strlen(msg));
        Py_XDECREF(s);
        Py_XDECREF(exc);
        PyErr_Clear();
    }
    Py_XDECREF(obj);
    buf_destroy(&b);
    mem_free(etf);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: golden_roundtrip DIR\n");
        return 2;
    }
    ei_init();
    pyerl_register();
    Py_Initialize();
    PyObject *m = PyImport_ImportModule("erlang"); // owned
    if (m == NULL) {
        PyErr_Print();
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (d == NULL) {
        perror(argv[1]);
        return 2;
    }
    struct dirent *e;
    int count = 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".etf") == 0) {
            roundtrip(argv[1], e->d_name);
            count++;
        }
    }
    closedir(d);
    printf("round-tripped %d fixtures\n", count);
    Py_DECREF(m);
    return Py_FinalizeEx() < 0 ? 1 : 0;
}
