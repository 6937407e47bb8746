/*
 * stageless.proxy._headscan: the proxy's check of a plain answer head, in C.
 *
 * Why by hand: every answer the proxy forwards (and every shadow copy's answer) is checked
 * for being "plain", so that it can pass as it came instead of going through the parser. The
 * same check written in Python and compiled with mypyc (stageless.proxy.heads.read_plain_head,
 * which stays the reference and the interpreted path) costs about 6,300 instructions per
 * answer: the split into lines allocates an object per line, and each bytes.find from compiled
 * code parses its arguments with a format string. httptools (llhttp) parses in C but calls
 * back into Python for every header (about 500 instructions each) and does not report the
 * framing headers it saw. No library answers this question, so it is written here, once, as a
 * scan of the bytes in place. It must answer exactly what read_plain_head answers for every
 * input: tests/proxy/test_headscan.py compares the two on generated heads.
 *
 * Built by stageless.proxy.native with the compiled hot path, never used without it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* The decimal number in p[start:end] between optional spaces and tabs, else -1 (heads.digits). */
static long long
digits(const unsigned char *p, Py_ssize_t start, Py_ssize_t end)
{
    while (start < end && (p[start] == ' ' || p[start] == '\t'))
        start++;
    while (end > start && (p[end - 1] == ' ' || p[end - 1] == '\t'))
        end--;
    if (start == end || end - start > 18)
        return -1;
    long long number = 0;
    for (Py_ssize_t i = start; i < end; i++) {
        unsigned char c = p[i];
        if (c < '0' || c > '9')
            return -1;
        number = number * 10 + (c - '0');
    }
    return number;
}

/* Whether line starts with name (lower-case letters, '-', ':'), letters in any case
 * (heads._named); the caller has checked that line is long enough. */
static int
named(const unsigned char *line, const char *name, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char byte = line[i];
        unsigned char want = (unsigned char)name[i];
        if (byte != want && ((byte | 0x20) != want || want == '-' || want == ':'))
            return 0;
    }
    return 1;
}

/* Whether line[start:end] is word in any case, between optional spaces and tabs
 * (heads._is_value). */
static int
is_value(const unsigned char *line, Py_ssize_t start, Py_ssize_t end, const char *word)
{
    Py_ssize_t n = (Py_ssize_t)strlen(word);
    while (start < end && (line[start] == ' ' || line[start] == '\t'))
        start++;
    while (end > start && (line[end - 1] == ' ' || line[end - 1] == '\t'))
        end--;
    return end - start == n && named(line + start, word, n);
}

/* Header-name starts that keep an answer off the fast path, by their first letter
 * (heads._NOT_PLAIN). */
static int
not_plain(const unsigned char *line, Py_ssize_t size, unsigned char first)
{
    static const char *const k[] = {"keep-alive:", NULL};
    static const char *const p[] = {"proxy-", NULL};
    static const char *const t[] = {"transfer-encoding:", "te:", "trailer:", NULL};
    static const char *const u[] = {"upgrade:", NULL};
    const char *const *marks;
    switch (first) {
    case 'k': marks = k; break;
    case 'p': marks = p; break;
    case 't': marks = t; break;
    case 'u': marks = u; break;
    default: return 0;
    }
    for (; *marks != NULL; marks++) {
        Py_ssize_t n = (Py_ssize_t)strlen(*marks);
        if (size > n && named(line, *marks, n))
            return 1;
    }
    return 0;
}

/* The Content-Length of the head's lines in p[start:stop) (the status line first, each line
 * ending with LF), when the answer may pass as it came, else -1 (heads.plain_length). */
static long long
plain_length(const unsigned char *p, Py_ssize_t start, Py_ssize_t stop)
{
    const unsigned char *nl = memchr(p + start, '\n', (size_t)(stop - start));
    if (nl == NULL)
        return -1;
    Py_ssize_t size = (nl - p) - start; /* the status line */
    if (size == 0 || p[start + size - 1] != '\r')
        return -1;
    long long length = -1;
    int connection = 0;
    for (Py_ssize_t at = (nl - p) + 1; at < stop; at += size + 1) {
        const unsigned char *line = p + at;
        nl = memchr(line, '\n', (size_t)(stop - at));
        if (nl == NULL)
            return -1; /* cannot happen: stop is just past a LF */
        size = nl - line;
        if (size < 2 || line[size - 1] != '\r')
            return -1; /* a bare LF, or an empty line before the end */
        unsigned char first = line[0] | 0x20;
        if (first == 'c') {
            if ((size >= 15 && memcmp(line, "Content-Length:", 15) == 0) ||
                (size > 15 && line[14] == ':' && named(line, "content-length", 14))) {
                if (length >= 0)
                    return -1;
                length = digits(line, 15, size - 1);
                if (length < 0)
                    return -1;
            }
            else if (size == 23 && memcmp(line, "Connection: keep-alive\r", 23) == 0) {
                if (connection)
                    return -1;
                connection = 1;
            }
            else if (size > 11 && line[10] == ':' && named(line, "connection", 10)) {
                if (connection || !is_value(line, 11, size - 1, "keep-alive"))
                    return -1;
                connection = 1;
            }
        }
        else if (first == ' ' || line[0] == '\t') {
            return -1; /* obsolete line folding: the parser decides */
        }
        else if (not_plain(line, size, first)) {
            return -1;
        }
    }
    return length;
}

/* plain_head(data: bytes, start: int, /) -> tuple[int, int, int] | None
 * What heads.read_plain_head(data, start) answers, for start >= 0. */
static PyObject *
plain_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "plain_head() takes 2 arguments: data and start");
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "plain_head() data must be bytes");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    if (start < 0) {
        PyErr_SetString(PyExc_ValueError, "plain_head() start must be >= 0");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]);
    if (start > n || n - start < 9 || memcmp(p + start, "HTTP/1.1 ", 9) != 0)
        Py_RETURN_NONE;
    Py_ssize_t end = -1; /* where the first CRLF CRLF at or after start begins */
    for (Py_ssize_t i = start; i + 3 < n; i++) {
        const unsigned char *cr = memchr(p + i, '\r', (size_t)(n - 3 - i));
        if (cr == NULL)
            break;
        i = cr - p;
        if (p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
            end = i;
            break;
        }
    }
    if (end < 0)
        Py_RETURN_NONE;
    /* fewer than three digits give less than 100 */
    long long status = digits(p, start + 9, start + 12);
    if (status < 200 || status == 204 || status == 304)
        Py_RETURN_NONE;
    long long length = plain_length(p, start, end + 2);
    if (length < 0)
        Py_RETURN_NONE;
    PyObject *found = PyTuple_New(3);
    if (found == NULL)
        return NULL;
    PyObject *items[3] = {
        PyLong_FromLongLong(status), PyLong_FromSsize_t(end + 4), PyLong_FromLongLong(length)};
    for (int i = 0; i < 3; i++) {
        if (items[i] == NULL) {
            for (int j = i + 1; j < 3; j++)
                Py_XDECREF(items[j]);
            Py_DECREF(found);
            return NULL;
        }
        PyTuple_SET_ITEM(found, i, items[i]); /* steals the reference */
    }
    return found;
}

static PyMethodDef methods[] = {
    {"plain_head", (PyCFunction)(void (*)(void))plain_head, METH_FASTCALL,
     "The status, body start and body length of the plain answer head at data[start], else "
     "None: what stageless.proxy.heads.read_plain_head answers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_headscan",
    .m_doc = "The proxy's check of a plain answer head, in C (see stageless.proxy.heads).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__headscan(void)
{
    return PyModule_Create(&module);
}
