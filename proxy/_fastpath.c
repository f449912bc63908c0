/* The relay's native fast path: the common round trip of a session, in C.
 *
 * A client read that is exactly one simple Query whose text the session's hook chain has
 * already admitted (proxy/hooks.py, HookChain.admit_known) is taken by Engine.query; the
 * target's answer, when it arrives whole in one read and holds only the messages of a plain
 * result, is read by Engine.result, which files the statement's audit record. Everything
 * else (the first sight of a statement, refusals, holds, masking, COPY, the extended
 * protocol, a result split across reads) declines, and the Python relay does it. The
 * semantics are those of proxy/relay.py; proxy/fastpath.py is the same engine without the
 * fast path (for a Python without a compiler) and tests hold the two to the same output.
 *
 * A session the engine keeps taking is handed to the Pump, a thread that relays its
 * sockets with the same rules off the event loop (see the Pump section below).
 *
 * Audit records are kept here, in sequence order with the events the Python relay files
 * (Engine.add), until the recorder drains them (Engine.drain) into the rows of a
 * statement_batches record.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CACHED_LENGTH 8192 /* guard.classify.MAX_CACHED_LENGTH */
#define PROMOTE_AFTER 3         /* round trips in a row taken before a session is pumped */

static PyObject *S_SIMPLE, *S_ALLOW, *S_OK, *S_ERROR;

static double
wall_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint32_t
be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ---- Stats: statement counts and the latency histogram of fast-path statements -------- */

typedef struct {
    PyObject_HEAD
    double *bounds;
    Py_ssize_t nbounds;
    long long *counts; /* nbounds + 1 */
    long long ok, error;
    double sum;
} Stats;

static void
Stats_dealloc(Stats *self)
{
    PyMem_Free(self->bounds);
    PyMem_Free(self->counts);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Stats_init(Stats *self, PyObject *args, PyObject *kwds)
{
    PyObject *bounds;
    static char *kwlist[] = {"bounds", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!", kwlist, &PyTuple_Type, &bounds))
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(bounds);
    PyMem_Free(self->bounds);
    PyMem_Free(self->counts);
    self->bounds = PyMem_Calloc(n ? n : 1, sizeof(double));
    self->counts = PyMem_Calloc(n + 1, sizeof(long long));
    if (self->bounds == NULL || self->counts == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        double b = PyFloat_AsDouble(PyTuple_GET_ITEM(bounds, i));
        if (b == -1.0 && PyErr_Occurred())
            return -1;
        self->bounds[i] = b;
    }
    self->nbounds = n;
    self->ok = self->error = 0;
    self->sum = 0.0;
    return 0;
}

static void
Stats_observe(Stats *self, double elapsed, int error)
{
    Py_ssize_t lo = 0, hi = self->nbounds; /* bisect_left */
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (self->bounds[mid] < elapsed)
            lo = mid + 1;
        else
            hi = mid;
    }
    self->counts[lo]++;
    self->sum += elapsed;
    if (error)
        self->error++;
    else
        self->ok++;
}

static PyObject *
Stats_snapshot(Stats *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *counts = PyList_New(self->nbounds + 1);
    if (counts == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i <= self->nbounds; i++) {
        PyObject *c = PyLong_FromLongLong(self->counts[i]);
        if (c == NULL) {
            Py_DECREF(counts);
            return NULL;
        }
        PyList_SET_ITEM(counts, i, c);
    }
    return Py_BuildValue("(LLNd)", self->ok, self->error, counts, self->sum);
}

static PyMethodDef Stats_methods[] = {
    {"snapshot", (PyCFunction)Stats_snapshot, METH_NOARGS,
     "(ok, error, latency bucket counts, latency sum) of the statements seen so far."},
    {NULL}};

static PyTypeObject StatsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "proxy._fastpath.Stats",
    .tp_basicsize = sizeof(Stats),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Counts of the statements the fast path completed (decision allow).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Stats_init,
    .tp_dealloc = (destructor)Stats_dealloc,
    .tp_methods = Stats_methods,
};

/* ---- Engine ------------------------------------------------------------------------------ */

typedef struct {
    PyObject *row;      /* a row built by the Python relay (sql text at index 1), or NULL */
    PyObject *sql;      /* fast: the statement text */
    PyObject *known;    /* fast: (class, reasons) */
    PyObject *tag;      /* fast: command tag (bytes) or NULL */
    PyObject *sqlstate; /* fast: str or NULL */
    long long seq, started_us, duration_us, rows;
    int error;
} Record;

struct Engine;
struct Pump;

/* One of a pumped session's sockets: what the pump's epoll entry points at. */
typedef struct {
    struct Engine *engine;
    int fd;
    int client; /* 1: the client's socket, 0: the target's */
} Side;

typedef struct Engine {
    PyObject_HEAD
    PyObject *admitted; /* dict: exact text (str) or number key (bytes) -> (class, reasons) */
    PyObject *blank;    /* dict: RowDescription payload -> bool, or None: no masking */
    Stats *stats;
    PyObject *session;  /* the session's id, the engine's value in ``dirty`` */
    PyObject *dirty;    /* dict the engine enters itself in while it holds records */
    PyObject *description; /* the last RowDescription payload the fast path relayed */
    PyObject *fragments;   /* (class, reasons) -> their JSON, for drain */
    int description_new;   /* description changed since take_description */
    int armed;             /* the Python relay holds nothing: the engine may take reads */
    int status;            /* the session's transaction status byte */
    /* connect(): the audit recorder (its ``available``), the transports' writes, and the
     * Python relay's handlers of what the engine declines */
    PyObject *recorder, *client_write, *target_write, *client_fallback, *target_fallback;
    /* The pump (connect()'s optional part): ``promote`` is called when the engine took
     * PROMOTE_AFTER round trips in a row on the transports, ``handback`` gets the session
     * back from the pump. ``watched``: the pump has the sockets (read under its lock). */
    struct Pump *pump;
    PyObject *promote, *handback;
    Side sides[2];
    int watched, streak;
    long long seq;
    int listed;
    int inflight;
    PyObject *sql, *known;
    double started;
    /* what the answer said so far: rows of finished commands, rows of the one going on,
     * an error, the last command tag and SQLSTATE, the columns of the last description
     * and whether they need no masking */
    long long rows, counted;
    int error, columns, blank_ok;
    PyObject *tag, *sqlstate;
    Record *recs;
    Py_ssize_t n, cap;
} Engine;

static void
record_clear(Record *r)
{
    Py_CLEAR(r->row);
    Py_CLEAR(r->sql);
    Py_CLEAR(r->known);
    Py_CLEAR(r->tag);
    Py_CLEAR(r->sqlstate);
}

static int
Engine_traverse(Engine *self, visitproc visit, void *arg)
{
    Py_VISIT(self->admitted);
    Py_VISIT(self->blank);
    Py_VISIT(self->stats);
    Py_VISIT(self->session);
    Py_VISIT(self->dirty);
    Py_VISIT(self->known);
    Py_VISIT(self->fragments);
    Py_VISIT(self->recorder);
    Py_VISIT(self->client_write);
    Py_VISIT(self->target_write);
    Py_VISIT(self->client_fallback);
    Py_VISIT(self->target_fallback);
    Py_VISIT((PyObject *)self->pump);
    Py_VISIT(self->promote);
    Py_VISIT(self->handback);
    for (Py_ssize_t i = 0; i < self->n; i++) {
        Py_VISIT(self->recs[i].row);
        Py_VISIT(self->recs[i].known);
    }
    return 0;
}

static int
Engine_clear(Engine *self)
{
    Py_CLEAR(self->admitted);
    Py_CLEAR(self->blank);
    Py_CLEAR(self->stats);
    Py_CLEAR(self->session);
    Py_CLEAR(self->dirty);
    Py_CLEAR(self->description);
    Py_CLEAR(self->fragments);
    Py_CLEAR(self->recorder);
    Py_CLEAR(self->client_write);
    Py_CLEAR(self->target_write);
    Py_CLEAR(self->client_fallback);
    Py_CLEAR(self->target_fallback);
    Py_CLEAR(self->pump);
    Py_CLEAR(self->promote);
    Py_CLEAR(self->handback);
    self->armed = 0;
    Py_CLEAR(self->sql);
    Py_CLEAR(self->known);
    Py_CLEAR(self->tag);
    Py_CLEAR(self->sqlstate);
    self->inflight = 0;
    for (Py_ssize_t i = 0; i < self->n; i++)
        record_clear(&self->recs[i]);
    self->n = 0;
    return 0;
}

static void
Engine_dealloc(Engine *self)
{
    PyObject_GC_UnTrack(self);
    Engine_clear(self);
    PyMem_Free(self->recs);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Engine_init(Engine *self, PyObject *args, PyObject *kwds)
{
    PyObject *session, *admitted, *blank, *stats, *dirty;
    static char *kwlist[] = {"session", "admitted", "blank", "stats", "dirty", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!OO!O!", kwlist, &session, &PyDict_Type,
                                     &admitted, &blank, &StatsType, &stats, &PyDict_Type,
                                     &dirty))
        return -1;
    if (blank != Py_None && !PyDict_Check(blank)) {
        PyErr_SetString(PyExc_TypeError, "blank must be a dict or None");
        return -1;
    }
    Engine_clear(self);
    Py_INCREF(admitted);
    self->admitted = admitted;
    Py_INCREF(blank);
    self->blank = blank;
    Py_INCREF(stats);
    self->stats = (Stats *)stats;
    Py_INCREF(session);
    self->session = session;
    Py_INCREF(dirty);
    self->dirty = dirty;
    self->seq = 0;
    self->listed = 0;
    self->status = 'I';
    return 0;
}

static Record *
Engine_slot(Engine *self)
{
    if (self->n == self->cap) {
        Py_ssize_t cap = self->cap ? self->cap * 2 : 64;
        Record *recs = PyMem_Realloc(self->recs, cap * sizeof(Record));
        if (recs == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        self->recs = recs;
        self->cap = cap;
    }
    if (!self->listed) {
        if (PyDict_SetItem(self->dirty, (PyObject *)self, self->session) < 0)
            return NULL;
        self->listed = 1;
    }
    Record *r = &self->recs[self->n++];
    memset(r, 0, sizeof(Record));
    return r;
}

/* guard.classify.numbers_key on the text's bytes: digits become 0; None (NULL, no error)
 * for a text that is not plain ASCII, holds a comment, a string, a quoted name, a dollar
 * sign or a backslash, or is longer than the classifier caches. */
static PyObject *
numbers_key(const char *s, Py_ssize_t n)
{
    if (n > MAX_CACHED_LENGTH)
        return NULL;
    PyObject *key = PyBytes_FromStringAndSize(NULL, n);
    if (key == NULL)
        return NULL;
    char *k = PyBytes_AS_STRING(key);
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || c == '\'' || c == '"' || c == '$' || c == '\\')
            goto none;
        if ((c == '-' || c == '*') && i > 0 && s[i - 1] == (c == '-' ? '-' : '/'))
            goto none;
        k[i] = (c >= '1' && c <= '9') ? '0' : (char)c;
    }
    return key;
none:
    Py_DECREF(key);
    return NULL;
}

/* 1 when ``data`` is one whole Query of an admitted text or shape (now in flight), 0 when
 * not, -1 on error. */
static int
take_query(Engine *self, PyObject *data)
{
    if (self->inflight || !PyBytes_CheckExact(data))
        return 0;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    if (n < 6 || p[0] != 'Q' || (Py_ssize_t)be32(p + 1) != n - 1 || p[n - 1] != 0)
        return 0;
    const char *text = (const char *)p + 5;
    Py_ssize_t length = n - 6;
    if (memchr(text, 0, length) != NULL)
        return 0;
    PyObject *sql = PyUnicode_DecodeUTF8(text, length, "surrogateescape");
    if (sql == NULL)
        return -1;
    PyObject *known = PyDict_GetItemWithError(self->admitted, sql);
    if (known == NULL) {
        if (PyErr_Occurred())
            goto fail;
        PyObject *key = numbers_key(text, length);
        if (key == NULL) {
            if (PyErr_Occurred())
                goto fail;
        }
        else {
            known = PyDict_GetItemWithError(self->admitted, key);
            Py_DECREF(key);
            if (known == NULL && PyErr_Occurred())
                goto fail;
        }
    }
    if (known == NULL || !PyTuple_CheckExact(known) || PyTuple_GET_SIZE(known) != 2) {
        Py_DECREF(sql);
        return 0;
    }
    Py_INCREF(known);
    Py_XSETREF(self->known, known);
    Py_XSETREF(self->sql, sql);
    Py_CLEAR(self->tag);
    Py_CLEAR(self->sqlstate);
    self->rows = self->counted = 0;
    self->error = self->blank_ok = 0;
    self->columns = -1;
    self->started = wall_clock();
    self->inflight = 1;
    return 1;
fail:
    Py_DECREF(sql);
    return -1;
}

static PyObject *
Engine_query(Engine *self, PyObject *data)
{
    int taken = take_query(self, data);
    if (taken < 0)
        return NULL;
    return PyBool_FromLong(taken);
}

/* The SQLSTATE of an ErrorResponse payload (proxy.codec.error_sqlstate), or NULL. */
static PyObject *
error_sqlstate(const unsigned char *p, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n && p[i] != 0) {
        unsigned char field = p[i++];
        const unsigned char *end = memchr(p + i, 0, n - i);
        if (end == NULL)
            return NULL;
        if (field == 'C')
            return PyUnicode_DecodeUTF8((const char *)p + i, end - (p + i), "replace");
        i = end - p + 1;
    }
    return NULL;
}

/* Reads the target's answer to the query in flight, read by read. A read of whole
 * messages, all of a plain result, is taken: 1 when the answer goes on, the transaction
 * status byte when it ended with ReadyForQuery (the statement is filed). Anything else
 * returns 0 and changes nothing; the Python relay then takes the statement (take). */
static long
read_answer(Engine *self, PyObject *data)
{
    if (!self->inflight || !PyBytes_CheckExact(data))
        return 0;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data), at = 0;
    long long rows = self->rows, counted = self->counted;
    int error = self->error, status = 0, blank = self->blank_ok, columns = self->columns;
    const unsigned char *tag = NULL, *description = NULL, *state = NULL;
    Py_ssize_t tag_len = 0, description_len = 0, state_len = 0;
    int masking = self->blank != Py_None;
    while (at < n) {
        if (status || n - at < 5)
            return 0;
        unsigned char type = p[at];
        uint32_t length = be32(p + at + 1);
        if (length < 4 || (Py_ssize_t)length > n - at - 1)
            return 0;
        const unsigned char *body = p + at + 5;
        Py_ssize_t size = (Py_ssize_t)length - 4;
        switch (type) {
        case 'T':
            if (size < 2)
                return 0;
            description = body;
            description_len = size;
            columns = (body[0] << 8) | body[1];
            blank = 0;
            if (masking) {
                PyObject *key = PyBytes_FromStringAndSize((const char *)body, size);
                if (key == NULL)
                    return -1;
                PyObject *is_blank = PyDict_GetItemWithError(self->blank, key);
                Py_DECREF(key);
                if (is_blank == NULL && PyErr_Occurred())
                    return -1;
                if (is_blank != Py_True)
                    return 0;
                blank = 1;
            }
            break;
        case 'D':
            if (masking && !(blank && size >= 2 && ((body[0] << 8) | body[1]) == columns))
                return 0;
            counted++;
            break;
        case 'C': {
            if (size < 1 || body[size - 1] != 0)
                return 0;
            tag = body;
            tag_len = size - 1;
            Py_ssize_t word = tag_len;
            while (word > 0 && tag[word - 1] != ' ')
                word--;
            long long count = 0;
            int digits = tag_len - word > 0 && tag_len - word <= 18;
            for (Py_ssize_t i = word; digits && i < tag_len; i++) {
                if (tag[i] < '0' || tag[i] > '9')
                    digits = 0;
                else
                    count = count * 10 + (tag[i] - '0');
            }
            rows += digits ? count : counted;
            counted = 0;
            break;
        }
        case 'E':
            error = 1;
            state = body;
            state_len = size;
            break;
        case 'Z':
            if (size != 1)
                return 0;
            status = body[0];
            break;
        case 'N':
        case 'A':
        case 'S':
        case 'I':
            break;
        default:
            return 0;
        }
        at += 1 + (Py_ssize_t)length;
    }

    /* The read is taken: keep what it said. */
    if (tag != NULL) {
        PyObject *tag_obj = PyBytes_FromStringAndSize((const char *)tag, tag_len);
        if (tag_obj == NULL)
            return -1;
        Py_XSETREF(self->tag, tag_obj);
    }
    if (state != NULL) {
        PyObject *state_obj = error_sqlstate(state, state_len);
        if (state_obj == NULL && PyErr_Occurred())
            return -1;
        Py_XSETREF(self->sqlstate, state_obj);
    }
    if (description != NULL && masking) {
        PyObject *d = PyBytes_FromStringAndSize((const char *)description, description_len);
        if (d == NULL)
            return -1;
        Py_XSETREF(self->description, d);
        self->description_new = 1;
    }
    self->rows = rows;
    self->counted = counted;
    self->error = error;
    self->blank_ok = blank;
    self->columns = columns;
    if (!status)
        return 1;

    /* The whole answer is here: file the statement. */
    Record *r = Engine_slot(self);
    if (r == NULL)
        return -1;
    double ended = wall_clock();
    r->sql = self->sql;
    r->known = self->known;
    r->tag = self->tag;
    r->sqlstate = self->sqlstate;
    self->sql = self->known = self->tag = self->sqlstate = NULL;
    self->inflight = 0;
    r->seq = ++self->seq;
    r->started_us = (long long)(self->started * 1e6);
    long long duration = (long long)(ended * 1e6) - r->started_us;
    r->duration_us = duration > 0 ? duration : 0;
    r->rows = rows;
    r->error = error;
    self->status = (int)status;
    Stats_observe(self->stats, ended - self->started, error);
    return status;
}

static PyObject *
Engine_result(Engine *self, PyObject *data)
{
    long status = read_answer(self, data);
    if (status < 0)
        return NULL;
    return PyLong_FromLong(status);
}

/* Hand the query in flight to the Python relay, with what its answer said so far. */
static PyObject *
Engine_take(Engine *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->inflight) {
        PyErr_SetString(PyExc_RuntimeError, "no statement in flight");
        return NULL;
    }
    /* "N" hands the references to the tuple (or releases them if it cannot be built) */
    PyObject *tag = self->tag ? self->tag : Py_NewRef(Py_None);
    PyObject *state = self->sqlstate ? self->sqlstate : Py_NewRef(Py_None);
    PyObject *result = Py_BuildValue("(NNdLLONN)", self->sql, self->known, self->started,
                                     self->rows, self->counted, self->error ? S_ERROR : S_OK,
                                     tag, state);
    self->sql = self->known = self->tag = self->sqlstate = NULL;
    self->inflight = 0;
    return result;
}

static PyObject *
Engine_next_seq(Engine *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLongLong(++self->seq);
}

static PyObject *
Engine_add(Engine *self, PyObject *row)
{
    if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != 14) {
        PyErr_SetString(PyExc_TypeError, "an event row is a tuple of 14 fields");
        return NULL;
    }
    Record *r = Engine_slot(self);
    if (r == NULL)
        return NULL;
    Py_INCREF(row);
    r->row = row;
    Py_RETURN_NONE;
}

/* The text's index in ``texts``, added when new. */
static PyObject *
text_index(PyObject *indices, PyObject *texts, PyObject *sql)
{
    PyObject *index = PyDict_GetItemWithError(indices, sql);
    if (index != NULL) {
        Py_INCREF(index);
        return index;
    }
    if (PyErr_Occurred())
        return NULL;
    index = PyLong_FromSsize_t(PyList_GET_SIZE(texts));
    if (index == NULL)
        return NULL;
    if (PyDict_SetItem(indices, sql, index) < 0 || PyList_Append(texts, sql) < 0) {
        Py_DECREF(index);
        return NULL;
    }
    return index;
}

/* A growing UTF-8 buffer for the batch's JSON. */
typedef struct {
    char *data;
    Py_ssize_t size, cap;
} Out;

static int
out_reserve(Out *o, Py_ssize_t more)
{
    if (o->size + more <= o->cap)
        return 0;
    Py_ssize_t cap = o->cap ? o->cap : 4096;
    while (cap < o->size + more)
        cap *= 2;
    char *data = PyMem_Realloc(o->data, cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->data = data;
    o->cap = cap;
    return 0;
}

static int
out_write(Out *o, const char *s, Py_ssize_t n)
{
    if (out_reserve(o, n) < 0)
        return -1;
    memcpy(o->data + o->size, s, n);
    o->size += n;
    return 0;
}

static int
out_int(Out *o, long long v)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%lld", v);
    return out_write(o, digits, n);
}

/* Append a str as its UTF-8 bytes; lone surrogates (SQL that was not UTF-8) go back to
 * their bytes, which the final decode replaces, as audit.events._storable does. */
static int
out_str(Out *o, PyObject *text)
{
    PyObject *encoded = PyUnicode_AsEncodedString(text, "utf-8", "surrogateescape");
    if (encoded == NULL) {
        PyErr_Clear();
        encoded = PyUnicode_AsEncodedString(text, "utf-8", "replace");
        if (encoded == NULL)
            return -1;
    }
    int rc = out_write(o, PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded));
    Py_DECREF(encoded);
    return rc;
}

/* Append encode(value), the JSON of ``value`` (audit.events.row_json). */
static int
out_json(Out *o, PyObject *encode, PyObject *value)
{
    PyObject *text = PyObject_CallOneArg(encode, value);
    if (text == NULL)
        return -1;
    if (!PyUnicode_Check(text)) {
        Py_DECREF(text);
        PyErr_SetString(PyExc_TypeError, "the row encoder must return str");
        return -1;
    }
    int rc = out_str(o, text);
    Py_DECREF(text);
    return rc;
}

/* `"class","allow",[reasons]` for ``known``, JSON-encoded once per (class, reasons). */
static PyObject *
known_fragment(PyObject *cache, PyObject *encode, PyObject *known)
{
    PyObject *fragment = PyDict_GetItemWithError(cache, known);
    if (fragment != NULL) {
        Py_INCREF(fragment);
        return fragment;
    }
    if (PyErr_Occurred())
        return NULL;
    PyObject *fields = PyTuple_Pack(3, PyTuple_GET_ITEM(known, 0), S_ALLOW,
                                    PyTuple_GET_ITEM(known, 1));
    if (fields == NULL)
        return NULL;
    Out o = {0};
    int rc = out_json(&o, encode, fields);
    Py_DECREF(fields);
    if (rc < 0 || o.size < 2 || o.data[0] != '[' || o.data[o.size - 1] != ']') {
        if (rc == 0)
            PyErr_SetString(PyExc_ValueError, "the row encoder did not write an array");
        PyMem_Free(o.data);
        return NULL;
    }
    fragment = PyBytes_FromStringAndSize(o.data + 1, o.size - 2);
    PyMem_Free(o.data);
    if (fragment == NULL)
        return NULL;
    if (PyDict_GET_SIZE(cache) >= 1024)
        PyDict_Clear(cache);
    if (PyDict_SetItem(cache, known, fragment) < 0) {
        Py_DECREF(fragment);
        return NULL;
    }
    return fragment;
}

/* One fast record as the JSON array audit.events.encode_batch writes for it. */
static int
out_fast(Out *o, PyObject *cache, PyObject *encode, const Record *r, PyObject *index)
{
    PyObject *fragment = known_fragment(cache, encode, r->known);
    if (fragment == NULL)
        return -1;
    int rc = out_write(o, "[", 1) < 0 || out_int(o, r->seq) < 0 || out_write(o, ",", 1) < 0 ||
             out_int(o, PyLong_AsLongLong(index)) < 0 ||
             out_write(o, ",\"simple\",", 10) < 0 ||
             out_write(o, PyBytes_AS_STRING(fragment), PyBytes_GET_SIZE(fragment)) < 0 ||
             out_write(o, r->error ? ",\"error\"," : ",\"ok\",", r->error ? 9 : 6) < 0 ||
             out_int(o, r->started_us) < 0 || out_write(o, ",", 1) < 0 ||
             out_int(o, r->duration_us) < 0 || out_write(o, ",", 1) < 0 ||
             out_int(o, r->rows) < 0 || out_write(o, ",", 1) < 0;
    Py_DECREF(fragment);
    if (rc)
        return -1;
    if (r->tag == NULL) {
        if (out_write(o, "null", 4) < 0)
            return -1;
    }
    else {
        const unsigned char *t = (const unsigned char *)PyBytes_AS_STRING(r->tag);
        Py_ssize_t n = PyBytes_GET_SIZE(r->tag), i = 0;
        while (i < n && t[i] >= 0x20 && t[i] < 0x7f && t[i] != '"' && t[i] != '\\')
            i++;
        if (i == n) { /* plain ASCII: JSON as it is */
            if (out_write(o, "\"", 1) < 0 || out_write(o, (const char *)t, n) < 0 ||
                out_write(o, "\"", 1) < 0)
                return -1;
        }
        else {
            PyObject *decoded = PyUnicode_DecodeUTF8((const char *)t, n, "replace");
            if (decoded == NULL)
                return -1;
            rc = out_json(o, encode, decoded);
            Py_DECREF(decoded);
            if (rc < 0)
                return -1;
        }
    }
    if (out_write(o, ",", 1) < 0)
        return -1;
    if (r->sqlstate == NULL) {
        if (out_write(o, "null", 4) < 0)
            return -1;
    }
    else if (out_json(o, encode, r->sqlstate) < 0)
        return -1;
    return out_write(o, ",null,null]", 11);
}

/* Everything filed since the last drain, as ``(texts, events, count, first_seq, last_seq,
 * started_us)``: the distinct SQL texts, and the statements as the JSON array of arrays
 * audit.events.encode_batch writes (each text as its index in ``texts``); ``encode`` is
 * the JSON encoder of one value (audit.events.row_json). None when nothing was filed. */
static PyObject *
Engine_drain(Engine *self, PyObject *encode)
{
    /* The recorder took the engine off its list; the next record filed puts it back. */
    self->listed = 0;
    if (self->n == 0)
        Py_RETURN_NONE;
    Out o = {0};
    PyObject *texts = PyList_New(0), *indices = PyDict_New(), *result = NULL, *events = NULL;
    if (texts == NULL || indices == NULL || out_write(&o, "[", 1) < 0)
        goto done;
    if (self->fragments == NULL && (self->fragments = PyDict_New()) == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < self->n; i++) {
        Record *r = &self->recs[i];
        if (i > 0 && out_write(&o, ",", 1) < 0)
            goto done;
        PyObject *index = text_index(indices, texts, r->row ? PyTuple_GET_ITEM(r->row, 1) : r->sql);
        if (index == NULL)
            goto done;
        int rc;
        if (r->row != NULL) {
            PyObject *row = PyTuple_New(14);
            if (row == NULL) {
                Py_DECREF(index);
                goto done;
            }
            for (Py_ssize_t f = 0; f < 14; f++) {
                PyObject *value = f == 1 ? index : PyTuple_GET_ITEM(r->row, f);
                Py_INCREF(value);
                PyTuple_SET_ITEM(row, f, value);
            }
            rc = out_json(&o, encode, row);
            Py_DECREF(row);
        }
        else
            rc = out_fast(&o, self->fragments, encode, r, index);
        Py_DECREF(index);
        if (rc < 0)
            goto done;
    }
    if (out_write(&o, "]", 1) < 0)
        goto done;
    events = PyUnicode_DecodeUTF8(o.data, o.size, "replace");
    if (events == NULL)
        goto done;
    const Record *first = &self->recs[0], *last = &self->recs[self->n - 1];
    long long first_seq = first->row ? PyLong_AsLongLong(PyTuple_GET_ITEM(first->row, 0))
                                     : first->seq;
    long long last_seq = last->row ? PyLong_AsLongLong(PyTuple_GET_ITEM(last->row, 0))
                                   : last->seq;
    long long started = first->row ? PyLong_AsLongLong(PyTuple_GET_ITEM(first->row, 7))
                                   : first->started_us;
    if (PyErr_Occurred())
        goto done;
    result = Py_BuildValue("(OOnLLL)", texts, events, self->n, first_seq, last_seq, started);
    if (result == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < self->n; i++)
        record_clear(&self->recs[i]);
    self->n = 0;
done:
    PyMem_Free(o.data);
    Py_XDECREF(texts);
    Py_XDECREF(indices);
    Py_XDECREF(events);
    return result;
}

static PyObject *S_AVAILABLE;
static PyTypeObject PumpType;

static PyObject *
Engine_connect(Engine *self, PyObject *args, PyObject *kwds)
{
    PyObject *recorder, *client_write, *target_write, *client_fallback, *target_fallback;
    PyObject *pump = Py_None, *promote = Py_None, *handback = Py_None;
    static char *kwlist[] = {"recorder",        "client_write", "target_write",
                             "client_fallback", "target_fallback", "pump",
                             "promote",         "handback",     NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOO|OOO", kwlist, &recorder, &client_write,
                                     &target_write, &client_fallback, &target_fallback, &pump,
                                     &promote, &handback))
        return NULL;
    if (pump != Py_None && (!PyObject_TypeCheck(pump, &PumpType) || promote == Py_None ||
                            handback == Py_None)) {
        PyErr_SetString(PyExc_TypeError, "pump must be a Pump, given with promote and handback");
        return NULL;
    }
    Py_XSETREF(self->recorder, Py_NewRef(recorder));
    Py_XSETREF(self->client_write, Py_NewRef(client_write));
    Py_XSETREF(self->target_write, Py_NewRef(target_write));
    Py_XSETREF(self->client_fallback, Py_NewRef(client_fallback));
    Py_XSETREF(self->target_fallback, Py_NewRef(target_fallback));
    if (pump != Py_None) {
        Py_XSETREF(self->pump, (struct Pump *)Py_NewRef(pump));
        Py_XSETREF(self->promote, Py_NewRef(promote));
        Py_XSETREF(self->handback, Py_NewRef(handback));
    }
    self->streak = 0;
    Py_RETURN_NONE;
}

/* Whether the audit recorder takes statements (its ``available``): 1, 0, or -1 on error. */
static int
recorder_available(Engine *self)
{
    PyObject *available = PyObject_GetAttr(self->recorder, S_AVAILABLE);
    if (available == NULL)
        return -1;
    int up = available == Py_True;
    Py_DECREF(available);
    return up;
}

/* What a connected engine's client transport calls for every read. */
static PyObject *
Engine_client_data(Engine *self, PyObject *data)
{
    if (self->client_fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the engine is not connected");
        return NULL;
    }
    if (self->armed && !self->inflight) {
        int up = recorder_available(self);
        if (up < 0)
            return NULL;
        if (up) {
            int taken = take_query(self, data);
            if (taken < 0)
                return NULL;
            if (taken) {
                PyObject *written = PyObject_CallOneArg(self->target_write, data);
                if (written == NULL)
                    return NULL;
                Py_DECREF(written);
                Py_RETURN_NONE;
            }
        }
    }
    self->streak = 0;
    return PyObject_CallOneArg(self->client_fallback, data);
}

/* What a connected engine's target transport calls for every read. */
static PyObject *
Engine_target_data(Engine *self, PyObject *data)
{
    if (self->target_fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the engine is not connected");
        return NULL;
    }
    if (self->armed && self->inflight) {
        long status = read_answer(self, data);
        if (status < 0)
            return NULL;
        if (status) {
            PyObject *written = PyObject_CallOneArg(self->client_write, data);
            if (written == NULL)
                return NULL;
            Py_DECREF(written);
            if (status > 1 && self->promote != NULL && ++self->streak >= PROMOTE_AFTER) {
                self->streak = 0;
                return PyObject_CallNoArgs(self->promote);
            }
            Py_RETURN_NONE;
        }
    }
    self->streak = 0;
    return PyObject_CallOneArg(self->target_fallback, data);
}

/* ---- Pump: a thread that relays the sockets of sessions the engine is taking ------------
 *
 * A session whose engine took PROMOTE_AFTER round trips in a row on the event loop's
 * transports is handed to the pump (Engine.watch; the relay has paused both transports'
 * reading first): the pump's thread waits on the two sockets itself, reads, asks the
 * engine (holding the GIL only for that), and sends what the engine takes straight to the
 * other socket without the GIL. The first read the engine declines, a send that would
 * block, or the end of a connection hands the session back: the pump stops watching it and
 * calls ``handback(kind, data)`` on the event loop (HANDBACK_*), which resumes the
 * transports and does what the pump could not. Every engine and socket operation happens
 * under the pump's lock, which Engine.unwatch takes too: when it returns, the pump neither
 * reads nor writes the session's sockets any more. */

#define PUMP_READ 65536
#define PUMP_EVENTS 64
#define HANDBACK_CLIENT_READ 0 /* a client read the engine declined: data */
#define HANDBACK_TARGET_READ 1 /* a target read the engine declined: data */
#define HANDBACK_TO_TARGET 2   /* what the target's socket did not take at once: data */
#define HANDBACK_TO_CLIENT 3   /* what the client's socket did not take at once: data */
#define HANDBACK_CLOSED 4      /* a socket ended or failed: the loop's transports see it */

typedef struct Pump {
    PyObject_HEAD
    int epfd, stopfd, running;
    pthread_t thread;
    pthread_mutex_t lock;
    int lock_ready;
    char *buffer;
    PyObject *post; /* the event loop's call_soon_threadsafe */
    PyThreadState *thread_state; /* the pump thread's own, kept while it runs */
    Engine **retired; /* unwatched engines whose reference the pump still holds */
    Py_ssize_t nretired, capretired;
    long long relayed, returned;
} Pump;

/* Stop watching ``engine`` (the pump's lock held); its reference is released by the
 * pump's thread before it next waits, when no event of the old watch can be in hand. */
static int
unwatch_locked(Pump *pump, Engine *engine)
{
    if (!engine->watched)
        return 0;
    epoll_ctl(pump->epfd, EPOLL_CTL_DEL, engine->sides[0].fd, NULL);
    epoll_ctl(pump->epfd, EPOLL_CTL_DEL, engine->sides[1].fd, NULL);
    engine->watched = 0;
    if (pump->nretired == pump->capretired) {
        Py_ssize_t cap = pump->capretired ? pump->capretired * 2 : 16;
        Engine **retired = PyMem_RawRealloc(pump->retired, cap * sizeof(Engine *));
        if (retired == NULL)
            abort(); /* cannot keep the reference's owner: nothing safe is left */
        pump->retired = retired;
        pump->capretired = cap;
    }
    pump->retired[pump->nretired++] = engine;
    pump->returned++;
    return 1;
}

/* The pump thread takes and drops the GIL with its one thread state (PyGILState_Ensure
 * and Release around each event would create and destroy one every time). */
static void
pump_take_gil(Pump *pump)
{
    PyEval_RestoreThread(pump->thread_state);
}

static void
pump_drop_gil(Pump *pump)
{
    pump->thread_state = PyEval_SaveThread();
}

static void
release_retired(Pump *pump, int holding_gil)
{
    pthread_mutex_lock(&pump->lock);
    Py_ssize_t n = pump->nretired;
    Engine **retired = pump->retired;
    pump->retired = NULL;
    pump->nretired = pump->capretired = 0;
    pthread_mutex_unlock(&pump->lock);
    if (n == 0) {
        PyMem_RawFree(retired);
        return;
    }
    if (!holding_gil)
        pump_take_gil(pump);
    for (Py_ssize_t i = 0; i < n; i++)
        Py_DECREF(retired[i]);
    if (!holding_gil)
        pump_drop_gil(pump);
    PyMem_RawFree(retired);
}

/* Hand ``engine``'s session back to the event loop (the lock and the GIL held). */
static void
hand_back(Pump *pump, Engine *engine, int kind, PyObject *data)
{
    unwatch_locked(pump, engine);
    PyObject *done = PyObject_CallFunction(pump->post, "OiO", engine->handback, kind,
                                           data != NULL ? data : Py_None);
    if (done == NULL)
        PyErr_WriteUnraisable(pump->post); /* the loop is closed: the process is ending */
    Py_XDECREF(done);
}

/* One readable socket of a watched session (the lock held, not the GIL). */
static void
pump_event(Pump *pump, Side *side)
{
    Engine *engine = side->engine;
    if (!engine->watched)
        return;
    ssize_t got;
    do
        got = recv(side->fd, pump->buffer, PUMP_READ, MSG_DONTWAIT);
    while (got < 0 && errno == EINTR);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    pump_take_gil(pump);
    if (got <= 0) {
        hand_back(pump, engine, HANDBACK_CLOSED, NULL);
        pump_drop_gil(pump);
        return;
    }
    PyObject *data = PyBytes_FromStringAndSize(pump->buffer, got);
    if (data == NULL) {
        PyErr_WriteUnraisable(NULL);
        hand_back(pump, engine, HANDBACK_CLOSED, NULL); /* cannot happen short of memory */
        pump_drop_gil(pump);
        return;
    }
    long taken = 0;
    if (engine->armed) {
        if (side->client) {
            if (!engine->inflight) {
                taken = recorder_available(engine);
                if (taken > 0)
                    taken = take_query(engine, data);
            }
        }
        else if (engine->inflight)
            taken = read_answer(engine, data);
    }
    if (taken < 0) {
        PyErr_WriteUnraisable((PyObject *)engine);
        taken = 0;
    }
    if (!taken) {
        hand_back(pump, engine, side->client ? HANDBACK_CLIENT_READ : HANDBACK_TARGET_READ, data);
        Py_DECREF(data);
        pump_drop_gil(pump);
        return;
    }
    Py_DECREF(data);
    pump_drop_gil(pump);
    pump->relayed++;
    int to = engine->sides[side->client ? 1 : 0].fd;
    ssize_t sent = 0;
    while (sent < got) {
        ssize_t n = send(to, pump->buffer + sent, got - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        sent += n;
    }
    if (sent < got) {
        /* The other socket is full (or failing): the loop's transport writes the rest and
         * sees any failure itself. */
        pump_take_gil(pump);
        PyObject *rest = PyBytes_FromStringAndSize(pump->buffer + sent, got - sent);
        if (rest == NULL) {
            PyErr_WriteUnraisable(NULL);
            hand_back(pump, engine, HANDBACK_CLOSED, NULL);
        }
        else {
            hand_back(pump, engine, side->client ? HANDBACK_TO_TARGET : HANDBACK_TO_CLIENT, rest);
            Py_DECREF(rest);
        }
        pump_drop_gil(pump);
    }
}

static void *
pump_main(void *arg)
{
    Pump *pump = arg;
    struct epoll_event events[PUMP_EVENTS];
    PyGILState_STATE outer = PyGILState_Ensure();
    pump_drop_gil(pump);
    for (;;) {
        release_retired(pump, 0);
        int n = epoll_wait(pump->epfd, events, PUMP_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            goto out;
        }
        for (int i = 0; i < n; i++) {
            Side *side = events[i].data.ptr;
            if (side == NULL)
                goto out; /* Pump.close */
            pthread_mutex_lock(&pump->lock);
            pump_event(pump, side);
            pthread_mutex_unlock(&pump->lock);
        }
    }
out:
    pump_take_gil(pump);
    PyGILState_Release(outer);
    return NULL;
}

static int
Pump_init(Pump *self, PyObject *args, PyObject *kwds)
{
    PyObject *post;
    static char *kwlist[] = {"post", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O", kwlist, &post))
        return -1;
    if (self->running || self->lock_ready) {
        PyErr_SetString(PyExc_RuntimeError, "a pump is initialised once");
        return -1;
    }
    self->epfd = self->stopfd = -1;
    self->buffer = PyMem_RawMalloc(PUMP_READ);
    if (self->buffer == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_XSETREF(self->post, Py_NewRef(post));
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    self->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->epfd < 0 || self->stopfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    struct epoll_event stop = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, self->stopfd, &stop) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    pthread_mutex_init(&self->lock, NULL);
    self->lock_ready = 1;
    int rc = pthread_create(&self->thread, NULL, pump_main, self);
    if (rc != 0) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->running = 1;
    return 0;
}

static PyObject *
Pump_close(Pump *self, PyObject *Py_UNUSED(ignored))
{
    if (self->running) {
        uint64_t one = 1;
        if (write(self->stopfd, &one, sizeof one) < 0)
            return PyErr_SetFromErrno(PyExc_OSError);
        Py_BEGIN_ALLOW_THREADS
        pthread_join(self->thread, NULL);
        Py_END_ALLOW_THREADS
        self->running = 0;
    }
    if (self->lock_ready)
        release_retired(self, 1);
    Py_RETURN_NONE;
}

static void
Pump_dealloc(Pump *self)
{
    PyObject *closed = Pump_close(self, NULL);
    if (closed == NULL)
        PyErr_WriteUnraisable((PyObject *)self);
    Py_XDECREF(closed);
    if (self->epfd >= 0)
        close(self->epfd);
    if (self->stopfd >= 0)
        close(self->stopfd);
    if (self->lock_ready)
        pthread_mutex_destroy(&self->lock);
    PyMem_RawFree(self->buffer);
    Py_CLEAR(self->post);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Pump_get_relayed(Pump *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLongLong(self->relayed);
}

static PyObject *
Pump_get_returned(Pump *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLongLong(self->returned);
}

static PyGetSetDef Pump_getset[] = {
    {"relayed", (getter)Pump_get_relayed, NULL, "Reads the pump relayed itself.", NULL},
    {"returned", (getter)Pump_get_returned, NULL, "Times it handed a session back.", NULL},
    {NULL}};

static PyMethodDef Pump_methods[] = {
    {"close", (PyCFunction)Pump_close, METH_NOARGS,
     "Stop the pump's thread (sessions still watched are not read any more)."},
    {NULL}};

static PyTypeObject PumpType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "proxy._fastpath.Pump",
    .tp_basicsize = sizeof(Pump),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Pump(post): a thread relaying the sockets of sessions the engine takes.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Pump_init,
    .tp_dealloc = (destructor)Pump_dealloc,
    .tp_methods = Pump_methods,
    .tp_getset = Pump_getset,
};

static PyObject *
Engine_watch(Engine *self, PyObject *args)
{
    int client_fd, target_fd;
    if (!PyArg_ParseTuple(args, "ii", &client_fd, &target_fd))
        return NULL;
    Pump *pump = self->pump;
    if (pump == NULL || !pump->running) {
        PyErr_SetString(PyExc_RuntimeError, "the engine has no running pump");
        return NULL;
    }
    if (self->watched) {
        PyErr_SetString(PyExc_RuntimeError, "the pump already watches this session");
        return NULL;
    }
    self->sides[0] = (Side){self, client_fd, 1};
    self->sides[1] = (Side){self, target_fd, 0};
    struct epoll_event client = {.events = EPOLLIN, .data.ptr = &self->sides[0]};
    struct epoll_event target = {.events = EPOLLIN, .data.ptr = &self->sides[1]};
    int failed = 0;
    Py_INCREF(self); /* the pump's reference while it watches */
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&pump->lock);
    if (epoll_ctl(pump->epfd, EPOLL_CTL_ADD, client_fd, &client) < 0)
        failed = errno;
    else if (epoll_ctl(pump->epfd, EPOLL_CTL_ADD, target_fd, &target) < 0) {
        failed = errno;
        epoll_ctl(pump->epfd, EPOLL_CTL_DEL, client_fd, NULL);
    }
    else
        self->watched = 1;
    pthread_mutex_unlock(&pump->lock);
    Py_END_ALLOW_THREADS
    if (failed) {
        Py_DECREF(self);
        errno = failed;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *
Engine_unwatch(Engine *self, PyObject *Py_UNUSED(ignored))
{
    Pump *pump = self->pump;
    if (pump == NULL || !self->watched)
        Py_RETURN_FALSE;
    int was;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&pump->lock);
    was = unwatch_locked(pump, self);
    pthread_mutex_unlock(&pump->lock);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(was);
}

static PyObject *
Engine_get_watched(Engine *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->watched);
}

static PyObject *
Engine_take_description(Engine *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->description_new || self->description == NULL)
        Py_RETURN_NONE;
    self->description_new = 0;
    return Py_NewRef(self->description);
}

static PyObject *
Engine_get_armed(Engine *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->armed);
}

static int
Engine_set_armed(Engine *self, PyObject *value, void *Py_UNUSED(closure))
{
    int armed = value == NULL ? 0 : PyObject_IsTrue(value);
    if (armed < 0)
        return -1;
    self->armed = armed;
    return 0;
}

static PyObject *
Engine_get_status(Engine *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(self->status);
}

static int
Engine_set_status(Engine *self, PyObject *value, void *Py_UNUSED(closure))
{
    long status = value == NULL ? -1 : PyLong_AsLong(value);
    if (status == -1 && PyErr_Occurred())
        return -1;
    if (status < 0 || status > 255) {
        PyErr_SetString(PyExc_ValueError, "status is a byte");
        return -1;
    }
    self->status = (int)status;
    return 0;
}

static PyObject *
Engine_get_inflight(Engine *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->inflight);
}

static PyObject *
Engine_get_pending(Engine *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->n);
}

static PyObject *
Engine_get_description(Engine *self, void *Py_UNUSED(closure))
{
    PyObject *d = self->description ? self->description : Py_None;
    Py_INCREF(d);
    return d;
}

static PyGetSetDef Engine_getset[] = {
    {"inflight", (getter)Engine_get_inflight, NULL, "A fast-path query awaits its answer.",
     NULL},
    {"pending", (getter)Engine_get_pending, NULL, "Records filed and not yet drained.", NULL},
    {"armed", (getter)Engine_get_armed, (setter)Engine_set_armed,
     "Set by the Python relay when it holds nothing of the session: the engine may take "
     "reads.",
     NULL},
    {"status", (getter)Engine_get_status, (setter)Engine_set_status,
     "The session's transaction status byte (as the last ReadyForQuery said).", NULL},
    {"watched", (getter)Engine_get_watched, NULL, "The pump has the session's sockets.", NULL},
    {"description", (getter)Engine_get_description, NULL,
     "The last RowDescription payload relayed by the fast path of a masking session.", NULL},
    {NULL}};

static PyMethodDef Engine_methods[] = {
    {"query", (PyCFunction)Engine_query, METH_O,
     "Take a client read that is one admitted simple Query; True when taken."},
    {"result", (PyCFunction)Engine_result, METH_O,
     "Take a read of the answer to the query in flight: 1 (taken, more to come), the "
     "status byte (taken, the answer ended) or 0 (declined)."},
    {"connect", (PyCFunction)(void (*)(void))Engine_connect, METH_VARARGS | METH_KEYWORDS,
     "connect(recorder, client_write, target_write, client_fallback, target_fallback, "
     "pump=None, promote=None, handback=None): what client_data and target_data write to "
     "and hand what they decline to, and the pump that may take the session over."},
    {"client_data", (PyCFunction)Engine_client_data, METH_O,
     "A read from the client: relayed here when taken, else given to client_fallback."},
    {"target_data", (PyCFunction)Engine_target_data, METH_O,
     "A read from the target: relayed here when taken, else given to target_fallback."},
    {"watch", (PyCFunction)Engine_watch, METH_VARARGS,
     "watch(client_fd, target_fd): the pump relays the session's sockets from now on (the "
     "transports' reading paused) until it hands the session back."},
    {"unwatch", (PyCFunction)Engine_unwatch, METH_NOARGS,
     "Take the sockets back from the pump: True when it had them (resume the transports)."},
    {"take_description", (PyCFunction)Engine_take_description, METH_NOARGS,
     "The RowDescription payload the engine relayed last, once; None when none since."},
    {"take", (PyCFunction)Engine_take, METH_NOARGS,
     "Hand the query in flight to the Python relay: (sql, (class, reasons), started, rows, "
     "rows of the command going on, outcome, command tag, SQLSTATE)."},
    {"next_seq", (PyCFunction)Engine_next_seq, METH_NOARGS,
     "The sequence number of the next statement the Python relay files."},
    {"add", (PyCFunction)Engine_add, METH_O, "File a row built by the Python relay."},
    {"drain", (PyCFunction)Engine_drain, METH_O,
     "drain(encode): (texts, events JSON, count, first seq, last seq, start in us) of what "
     "was filed since the last drain, or None."},
    {NULL}};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "proxy._fastpath.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One session's native fast path and audit records.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_traverse = (traverseproc)Engine_traverse,
    .tp_clear = (inquiry)Engine_clear,
    .tp_methods = Engine_methods,
    .tp_getset = Engine_getset,
};

static struct PyModuleDef fastpath_module = {
    PyModuleDef_HEAD_INIT, .m_name = "proxy._fastpath",
    .m_doc = "The relay's native fast path (see proxy/fastpath.py).", .m_size = -1};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    if (PyType_Ready(&StatsType) < 0 || PyType_Ready(&EngineType) < 0 ||
        PyType_Ready(&PumpType) < 0)
        return NULL;
    S_SIMPLE = PyUnicode_InternFromString("simple");
    S_ALLOW = PyUnicode_InternFromString("allow");
    S_OK = PyUnicode_InternFromString("ok");
    S_ERROR = PyUnicode_InternFromString("error");
    S_AVAILABLE = PyUnicode_InternFromString("available");
    if (!S_SIMPLE || !S_ALLOW || !S_OK || !S_ERROR || !S_AVAILABLE)
        return NULL;
    PyObject *module = PyModule_Create(&fastpath_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&StatsType);
    Py_INCREF(&EngineType);
    Py_INCREF(&PumpType);
    if (PyModule_AddObject(module, "Stats", (PyObject *)&StatsType) < 0 ||
        PyModule_AddObject(module, "Engine", (PyObject *)&EngineType) < 0 ||
        PyModule_AddObject(module, "Pump", (PyObject *)&PumpType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
