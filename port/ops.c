/*
 * Request operations (see ops.h). Module functions are found through
 * sys.modules (imported on first use); '__main__' means the caller's namespace.
 * Source code is compiled once per distinct text and mode (a bounded cache), and
 * registered with linecache so tracebacks show its lines.
 */
#include "ops.h"

#include <ei.h>
#include <string.h>

#include "convert.h"
#include "credit.h"
#include "envs.h"
#include "terms.h"

/* Compiled code objects kept per mode; the cache is emptied when it grows past this. */
#define OPS_CODE_CACHE 512

static PyObject *g_eval_cache; /* owned: bytes -> code */
static PyObject *g_exec_cache; /* owned: bytes -> code */
static PyObject *g_linecache;  /* owned: linecache.cache */
static long g_code_seq;

int op_init(void)
{
    g_eval_cache = PyDict_New();
    g_exec_cache = PyDict_New();
    return g_eval_cache != NULL && g_exec_cache != NULL ? 0 : -1;
}

/* linecache.cache, imported on the first compile rather than at start (the
   import costs several ms: tokenize, re). Borrowed; NULL if it cannot be had.
   The import runs Python code inside a request, so a cancel or an interrupt can
   be raised in it: that exception is left set and -1 is stored in *err (the
   compile fails with it, and the import is tried again next time). */
static PyObject *linecache(int *err)
{
    static int tried;
    *err = 0;
    if (!tried) {
        PyObject *lc = PyImport_ImportModule("linecache"); // owned
        if (lc != NULL) {
            g_linecache = PyObject_GetAttrString(lc, "cache");
            Py_DECREF(lc);
        }
        if (g_linecache == NULL && PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_ImportError) &&
            !PyErr_ExceptionMatches(PyExc_AttributeError)) {
            *err = -1;
            return NULL;
        }
        PyErr_Clear();
        tried = 1;
    }
    return g_linecache;
}

/* ---- looking things up ---------------------------------------------------- */

/* getattr along a dotted path "a.b.c". Returns a new reference. */
static PyObject *get_dotted(PyObject *obj, PyObject *path)
{
    if (PyUnicode_FindChar(path, '.', 0, PyUnicode_GET_LENGTH(path), 1) < 0) {
        return PyObject_GetAttr(obj, path); /* the common case: no dots */
    }
    PyObject *dot = PyUnicode_FromString(".");                             // owned
    PyObject *names = dot != NULL ? PyUnicode_Split(path, dot, -1) : NULL; // owned
    Py_XDECREF(dot);
    if (names == NULL) {
        return NULL;
    }
    PyObject *cur = Py_NewRef(obj); // owned
    for (Py_ssize_t i = 0; cur != NULL && i < PyList_GET_SIZE(names); i++) {
        Py_SETREF(cur, PyObject_GetAttr(cur, PyList_GET_ITEM(names, i)));
    }
    Py_DECREF(names);
    return cur;
}

/* The callable named (module, function): '__main__' means the caller's env,
   then the builtins. Returns a new reference. */
static PyObject *find_callable(PyObject *env, PyObject *module, PyObject *function)
{
    if (PyUnicode_CompareWithASCIIString(module, "__main__") == 0) {
        PyObject *dot = PyUnicode_FromString(".");                                 // owned
        PyObject *parts = dot != NULL ? PyUnicode_Partition(function, dot) : NULL; // owned
        Py_XDECREF(dot);
        if (parts == NULL) {
            return NULL;
        }
        PyObject *first = PyTuple_GET_ITEM(parts, 0);        // borrowed
        PyObject *rest = PyTuple_GET_ITEM(parts, 2);         // borrowed
        PyObject *obj = PyDict_GetItemWithError(env, first); // borrowed
        if (obj == NULL && !PyErr_Occurred()) {
            obj = PyDict_GetItemWithError(PyEval_GetBuiltins(), first);
        }
        PyObject *r = NULL; // owned
        if (obj == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_NameError, "name '%U' is not defined", first);
            }
        } else {
            r = PyUnicode_GET_LENGTH(rest) > 0 ? get_dotted(obj, rest) : Py_NewRef(obj);
        }
        Py_DECREF(parts);
        return r;
    }
    PyObject *mod = PyImport_GetModule(module); // owned
    if (mod == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        mod = PyImport_Import(module);
        if (mod == NULL) {
            return NULL;
        }
    }
    PyObject *r = get_dotted(mod, function);
    Py_DECREF(mod);
    return r;
}

/* The code object for the source at a->index in `mode`. Borrowed (the cache holds it). */
static PyObject *compiled(op_args_t *a, int mode, reply_cause_t *cause)
{
    int type;
    int size;
    *cause = REPLY_BADARG;
    if (ei_get_type(a->frame, &a->index, &type, &size) < 0 || type != ERL_BINARY_EXT) {
        PyErr_SetString(PyExc_ValueError, "code must be a binary");
        return NULL;
    }
    long n;
    const char *p = a->frame + a->index + 5;
    ei_decode_binary(a->frame, &a->index, NULL, &n);
    if (memchr(p, 0, (size_t)n) != NULL) {
        /* Compiling stops at a NUL: refused rather than run cut short. */
        PyErr_SetString(PyExc_ValueError, "code must not contain a NUL byte");
        return NULL;
    }
    *cause = REPLY_PYERR;
    PyObject *cache = mode == Py_eval_input ? g_eval_cache : g_exec_cache;
    PyObject *key = PyBytes_FromStringAndSize(p, n); // owned
    if (key == NULL) {
        return NULL;
    }
    PyObject *code = PyDict_GetItemWithError(cache, key); // borrowed
    if (code != NULL || PyErr_Occurred()) {
        Py_DECREF(key);
        return code;
    }
    char filename[48];
    snprintf(filename, sizeof filename, "<pyport-%s-%ld>", mode == Py_eval_input ? "eval" : "exec",
             ++g_code_seq);
    PyObject *fresh = Py_CompileString(PyBytes_AS_STRING(key), filename, mode); // owned
    if (fresh == NULL) {
        Py_DECREF(key);
        return NULL;
    }
    int lc_err;
    PyObject *lc = linecache(&lc_err); // borrowed
    if (lc_err < 0) {
        Py_DECREF(key);
        Py_DECREF(fresh);
        return NULL;
    }
    if (lc != NULL) {
        PyObject *src = PyUnicode_DecodeUTF8(p, n, "replace");               // owned
        PyObject *lines = src != NULL ? PyUnicode_Splitlines(src, 1) : NULL; // owned
        PyObject *entry = lines != NULL
                              ? Py_BuildValue("(nOOs)", (Py_ssize_t)n, Py_None, lines, filename)
                              : NULL; // owned
        if (entry != NULL) {
            PyDict_SetItemString(g_linecache, filename, entry);
        }
        Py_XDECREF(entry);
        Py_XDECREF(lines);
        Py_XDECREF(src);
        PyErr_Clear();
    }
    if (PyDict_GET_SIZE(cache) >= OPS_CODE_CACHE) {
        PyDict_Clear(cache);
    }
    int rc = PyDict_SetItem(cache, key, fresh);
    Py_DECREF(key);
    Py_DECREF(fresh);
    return rc == 0 ? fresh : NULL; /* alive: the cache holds it */
}

/* Decodes Args (must be a proper list) and Kwargs at a->index. */
static int call_args(op_args_t *a, PyObject **args, PyObject **kwargs)
{
    PyObject *list = conv_to_py(a->frame, a->len, &a->index); // owned
    if (list == NULL) {
        return -1;
    }
    if (!PyList_Check(list)) {
        Py_DECREF(list);
        PyErr_SetString(PyExc_ValueError, "arguments must be a proper list");
        return -1;
    }
    *args = PyList_AsTuple(list);
    Py_DECREF(list);
    if (*args == NULL) {
        return -1;
    }
    *kwargs = conv_kwargs(a->frame, a->len, &a->index);
    if (*kwargs == NULL) {
        Py_CLEAR(*args);
        return -1;
    }
    return 0;
}

static PyObject *invoke(PyObject *target, PyObject *args, PyObject *kwargs)
{
    return PyObject_Call(target, args, PyDict_GET_SIZE(kwargs) > 0 ? kwargs : NULL);
}

/* ---- operations ----------------------------------------------------------- */

PyObject *op_call(op_args_t *a, reply_cause_t *cause)
{
    PyObject *module = NULL;   // owned
    PyObject *function = NULL; // owned
    PyObject *args = NULL;     // owned
    PyObject *kwargs = NULL;   // owned
    PyObject *target = NULL;   // owned
    PyObject *result = NULL;   // owned
    *cause = REPLY_BADARG;
    module = conv_name(a->frame, a->len, &a->index);
    function = module != NULL ? conv_name(a->frame, a->len, &a->index) : NULL;
    if (function == NULL || call_args(a, &args, &kwargs) < 0) {
        goto done;
    }
    *cause = REPLY_PYERR;
    target = find_callable(a->env, module, function);
    if (target != NULL) {
        result = invoke(target, args, kwargs);
    }
done:
    Py_XDECREF(module);
    Py_XDECREF(function);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    Py_XDECREF(target);
    return result;
}

PyObject *op_eval(op_args_t *a, reply_cause_t *cause)
{
    PyObject *code = compiled(a, Py_eval_input, cause); // borrowed
    if (code == NULL) {
        return NULL;
    }
    Py_INCREF(code);
    *cause = REPLY_BADARG;
    PyObject *locals = conv_kwargs(a->frame, a->len, &a->index); // owned
    PyObject *r = NULL;
    if (locals != NULL) {
        *cause = REPLY_PYERR;
        r = PyEval_EvalCode(code, a->env, PyDict_GET_SIZE(locals) > 0 ? locals : a->env);
        Py_DECREF(locals);
    }
    Py_DECREF(code);
    return r;
}

PyObject *op_exec(op_args_t *a, reply_cause_t *cause)
{
    PyObject *code = compiled(a, Py_file_input, cause); // borrowed
    if (code == NULL) {
        return NULL;
    }
    Py_INCREF(code);
    PyObject *r = PyEval_EvalCode(code, a->env, a->env);
    Py_DECREF(code);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    return terms_atom_new("ok", 2);
}

/* Decodes a reference and a name; returns the object (new) and sets *name. */
static PyObject *ref_and_name(op_args_t *a, reply_cause_t *cause, PyObject **name)
{
    *cause = REPLY_BADARG;
    PyObject *obj = conv_to_py(a->frame, a->len, &a->index); // owned
    if (obj == NULL) {
        return NULL;
    }
    *name = conv_name(a->frame, a->len, &a->index);
    if (*name == NULL) {
        Py_DECREF(obj);
        return NULL;
    }
    *cause = REPLY_PYERR;
    return obj;
}

PyObject *op_method(op_args_t *a, reply_cause_t *cause)
{
    PyObject *name = NULL;                         // owned
    PyObject *obj = ref_and_name(a, cause, &name); // owned
    PyObject *args = NULL;                         // owned
    PyObject *kwargs = NULL;                       // owned
    PyObject *result = NULL;                       // owned
    if (obj == NULL) {
        return NULL;
    }
    *cause = REPLY_BADARG;
    if (call_args(a, &args, &kwargs) == 0) {
        *cause = REPLY_PYERR;
        PyObject *method = get_dotted(obj, name); // owned
        if (method != NULL) {
            result = invoke(method, args, kwargs);
            Py_DECREF(method);
        }
    }
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    Py_DECREF(name);
    Py_DECREF(obj);
    return result;
}

PyObject *op_getattr(op_args_t *a, reply_cause_t *cause)
{
    PyObject *name = NULL;                         // owned
    PyObject *obj = ref_and_name(a, cause, &name); // owned
    if (obj == NULL) {
        return NULL;
    }
    PyObject *r = get_dotted(obj, name);
    Py_DECREF(name);
    Py_DECREF(obj);
    return r;
}

PyObject *op_stream_source(op_args_t *a, reply_cause_t *cause, long *window)
{
    int arity;
    char kind[MAXATOMLEN];
    *cause = REPLY_BADARG;
    if (ei_decode_tuple_header(a->frame, &a->index, &arity) < 0 ||
        ei_decode_atom(a->frame, &a->index, kind) < 0) {
        PyErr_SetString(PyExc_ValueError, "a stream source is {call, M, F, Args, Kw} or "
                                          "{eval, Code, Locals}");
        return NULL;
    }
    PyObject *source = NULL; // owned
    if (strcmp(kind, "call") == 0 && arity == 5) {
        source = op_call(a, cause);
    } else if (strcmp(kind, "eval") == 0 && arity == 3) {
        source = op_eval(a, cause);
    } else {
        PyErr_SetString(PyExc_ValueError, "a stream source is {call, M, F, Args, Kw} or "
                                          "{eval, Code, Locals}");
        return NULL;
    }
    if (source == NULL) {
        return NULL;
    }
    long long w;
    if (ei_decode_longlong(a->frame, &a->index, &w) < 0 || w < 1) {
        *cause = REPLY_BADARG;
        PyErr_SetString(PyExc_ValueError, "a stream window must be a positive integer");
        Py_DECREF(source);
        return NULL;
    }
    *window = (long)w;
    return source;
}

/* Runs the preload code in a fresh namespace that every new environment copies. */
int op_preload(PyObject *code_text)
{
    Py_ssize_t n;
    const char *src = PyUnicode_AsUTF8AndSize(code_text, &n);
    if (src == NULL) {
        return -1;
    }
    if (memchr(src, 0, (size_t)n) != NULL) {
        PyErr_SetString(PyExc_ValueError, "preload code must not contain a NUL byte");
        return -1;
    }
    PyObject *code = Py_CompileString(src, "<pyport-preload>", Py_file_input); // owned
    if (code == NULL) {
        return -1;
    }
    env_set_template(NULL);
    PyObject *ns = PyDict_New();                            // owned
    PyObject *builtins = PyImport_ImportModule("builtins"); // owned
    int rc = -1;
    if (ns != NULL && builtins != NULL && PyDict_SetItemString(ns, "__builtins__", builtins) == 0) {
        PyObject *name = PyUnicode_FromString("__main__"); // owned
        if (name != NULL && PyDict_SetItemString(ns, "__name__", name) == 0) {
            PyObject *r = PyEval_EvalCode(code, ns, ns); // owned
            if (r != NULL) {
                Py_DECREF(r);
                env_set_template(ns);
                rc = 0;
            }
        }
        Py_XDECREF(name);
    }
    Py_XDECREF(builtins);
    Py_XDECREF(ns);
    Py_DECREF(code);
    return rc;
}

/* Calls _pyport.<fn>(arg) and discards the result. */
static int helper1(const char *fn, PyObject *arg)
{
    PyObject *helpers = PyImport_ImportModule("_pyport");                              // owned
    PyObject *r = helpers != NULL ? PyObject_CallMethod(helpers, fn, "O", arg) : NULL; // owned
    Py_XDECREF(r);
    Py_XDECREF(helpers);
    return r != NULL ? 0 : -1;
}

PyObject *op_setup(op_args_t *a, reply_cause_t *cause)
{
    *cause = REPLY_BADARG;
    PyObject *opts = conv_to_py(a->frame, a->len, &a->index); // owned
    if (opts == NULL) {
        return NULL;
    }
    if (!PyDict_Check(opts)) {
        Py_DECREF(opts);
        PyErr_SetString(PyExc_ValueError, "setup options must be a map");
        return NULL;
    }
    *cause = REPLY_PYERR;
    int rc = 0;
    PyObject *v = PyDict_GetItemString(opts, "context"); // borrowed
    const char *pid;
    Py_ssize_t len;
    if (v != NULL && terms_bytes(v, &pid, &len)) {
        env_set_context(pid, (size_t)len);
    }
    v = PyDict_GetItemString(opts, "preload");
    if (rc == 0 && v != NULL && PyUnicode_Check(v)) {
        rc = op_preload(v);
    }
    v = PyDict_GetItemString(opts, "venv");
    if (rc == 0 && v != NULL) {
        rc = helper1("activate_venv", v); /* None deactivates */
    }
    v = PyDict_GetItemString(opts, "logging");
    if (rc == 0 && v != NULL && v != Py_None) {
        rc = helper1("configure_logging", v);
    }
    v = PyDict_GetItemString(opts, "max_atoms");
    if (rc == 0 && v == Py_None) {
        conv_set_atom_budget(-1); /* none: no limit */
    } else if (rc == 0 && v != NULL) {
        long long atoms = PyLong_Check(v) ? PyLong_AsLongLong(v) : -1;
        if (atoms < 0) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "max_atoms must be a non-negative integer");
            *cause = REPLY_BADARG;
            rc = -1;
        } else {
            conv_set_atom_budget(atoms);
        }
    }
    static const struct {
        const char *key;
        credit_kind_t kind;
    } windows[] = {{"output_window", CREDIT_OUTPUT}, {"send_window", CREDIT_SEND}};
    for (size_t i = 0; rc == 0 && i < sizeof windows / sizeof windows[0]; i++) {
        v = PyDict_GetItemString(opts, windows[i].key);
        if (v == NULL) {
            continue;
        }
        long long bytes = PyLong_Check(v) ? PyLong_AsLongLong(v) : -1;
        if (bytes < 0) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s must be a non-negative integer", windows[i].key);
            *cause = REPLY_BADARG;
            rc = -1;
        } else {
            credit_set_window(windows[i].kind, bytes);
        }
    }
    Py_DECREF(opts);
    return rc == 0 ? terms_atom_new("ok", 2) : NULL;
}
