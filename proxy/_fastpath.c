/* The relay's native fast path: the common round trip of a session, in C.
 *
 * A client read that is exactly one simple Query whose text the session's hook chain has
 * already admitted (proxy/hooks.py, HookChain.admit_known), or exactly one extended-protocol
 * round trip of such a text as libpq's PQexecParams sends it (take_extended), is taken by
 * Engine.query, as is a Bind of a named statement the Python relay let through at its Parse
 * (Engine.prepare) in a round trip shaped the same (libpq's PQexecPrepared: pgbench -M
 * prepared, psycopg's prepared statements); the target's answer, when it holds only the
 * messages of a plain result
 * (for an extended round trip: all of it, in one read, without an error), is read by
 * Engine.result, which files the statement's audit record. Everything else (the first
 * sight of a statement, refusals, holds, masking, COPY, a Parse of a named statement,
 * binary rows not known to need no masking, a result split across reads) declines, and the Python relay does it. The
 * semantics are those of proxy/relay.py; proxy/fastpath.py is the same engine without the
 * fast path (for a Python without a compiler) and tests hold the two to the same output.
 *
 * A session the engine keeps taking is handed to the Pump, a thread that relays its
 * sockets with the same rules off the event loop, without the GIL for the common round
 * trip (see the Engine and Pump sections below).
 *
 * Audit records are kept here, in C memory and in sequence order with the events the
 * Python relay files (Engine.add), until the recorder drains them (Engine.drain) into the
 * rows of a statement_batches record.
 */
/* Object ids below this are the server's own (PostgreSQL's FirstNormalObjectId). */
#define FIRST_NORMAL_OID 16384u
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "_spool.h"

#define MAX_CACHED_LENGTH 8192 /* guard.classify.MAX_CACHED_LENGTH */
#define PROMOTE_AFTER 3         /* round trips in a row taken before a session is pumped */

static PyObject *S_ALLOW, *S_OK, *S_ERROR;

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

static int
be16(const unsigned char *p)
{
    return (p[0] << 8) | p[1];
}

/* ---- Stats: statement counts and the latency histogram of fast-path statements -------- */

/* Counted with atomic adds: the pump's thread observes without the GIL. */
typedef struct {
    PyObject_HEAD
    double *bounds;
    Py_ssize_t nbounds;
    long long *counts; /* nbounds + 1 */
    long long ok, error;
    long long sum_ns;
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
    if (self->counts != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "stats are initialised once");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(bounds);
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
    __atomic_fetch_add(&self->counts[lo], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&self->sum_ns, (long long)(elapsed * 1e9), __ATOMIC_RELAXED);
    __atomic_fetch_add(error ? &self->error : &self->ok, 1, __ATOMIC_RELAXED);
}

static PyObject *
Stats_snapshot(Stats *self, PyObject *Py_UNUSED(ignored))
{
    if (self->counts == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the stats are not initialised");
        return NULL;
    }
    PyObject *counts = PyList_New(self->nbounds + 1);
    if (counts == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i <= self->nbounds; i++) {
        PyObject *c = PyLong_FromLongLong(__atomic_load_n(&self->counts[i], __ATOMIC_RELAXED));
        if (c == NULL) {
            Py_DECREF(counts);
            return NULL;
        }
        PyList_SET_ITEM(counts, i, c);
    }
    return Py_BuildValue("(LLNd)", __atomic_load_n(&self->ok, __ATOMIC_RELAXED),
                         __atomic_load_n(&self->error, __ATOMIC_RELAXED), counts,
                         (double)__atomic_load_n(&self->sum_ns, __ATOMIC_RELAXED) * 1e-9);
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

/* ---- Engine ------------------------------------------------------------------------------
 *
 * The engine works on the bytes of a read and keeps what it files in C memory, so that the
 * pump's thread can take a session's common round trip without the GIL: the statement's
 * text is looked up among the session's admitted shapes (a table of what the hook chain's
 * ``admitted`` dict answered before, dropped when the dict changes), the answer's command
 * tag, SQLSTATE and row description are copied, and the record is appended to ``fast``.
 * Whatever needs Python (a text not in the table yet, a row description not known to be
 * blank, the engine not yet on the recorder's list) answers NEED_GIL and is done again
 * with the GIL held. The event loop's calls always hold it. */

#define NEED_GIL (-2)    /* what the engine's steps answer without the GIL when they need it */
#define SHAPES_FIRST 16  /* slots of a session's first shape table (a power of two) */
#define SHAPES_MOST 1024 /* slots at most; a table half full beyond that starts over */
#define TAG_MAX 64       /* a longer command tag is left to the Python relay */
#define STATE_MAX 16

/* An admitted statement shape: the exact text, or its numbers key (guard.classify). */
typedef struct {
    PyObject *known; /* (class, reasons), owned; NULL: an empty slot */
    char *key;
    Py_ssize_t len;
    uint64_t hash;
    int numbers;
} Shape;

/* A statement the fast path filed. ``known`` is borrowed from the shape table until
 * ``owned`` (the table let it go, or a drain took the record). */
typedef struct {
    PyObject *known;
    long long seq, started_us, duration_us, rows;
    Py_ssize_t text_at, text_len; /* in the engine's ``texts`` */
    int error, owned, tag_len, state_len; /* lengths: -1 when none */
    int extended;                         /* sent with the extended protocol */
    char tag[TAG_MAX];
    char state[STATE_MAX];
} Fast;

struct Engine;
struct Pump;

/* A named prepared statement the Python relay let through at its Parse (Engine.prepare),
 * and the result format codes (big-endian, as a Bind sends them) with which the relay said
 * its rows of ``columns`` values need no masking (Engine.blank_binds; ``codes`` NULL: none
 * said). */
typedef struct {
    char *name, *text, *codes;
    Py_ssize_t name_len, text_len, codes_len;
    int columns;
} Named;

#define NAMED_MOST 256 /* a session's named statements the engine binds; more go to Python */

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
    PyObject *fragments; /* (class, reasons) -> their JSON, for drain */
    int armed;           /* the Python relay holds nothing: the engine may take reads */
    int status;          /* the session's transaction status byte */
    /* connect(): the audit recorder (its ``available``), the transports' writes, and the
     * Python relay's handlers of what the engine declines */
    PyObject *recorder, *client_write, *target_write, *client_fallback, *target_fallback;
    /* The pump (connect()'s optional part): ``promote`` is called when the engine took
     * PROMOTE_AFTER round trips in a row on the transports, ``handback`` gets the session
     * back from the pump. ``watched``: the pump has the sockets (read under its lock). */
    struct Pump *pump;
    PyObject *promote, *handback;
    /* connect()'s audit spool: every statement taken is written to it before the target
     * sees it (proxy/_spool.c), as this session (``session_id``) */
    Spool *spool;
    uint8_t session_id[16];
    /* how the last statement filed here ended, for the spool with the next intent */
    uint8_t done[DONE_MAX];
    Py_ssize_t done_len;
    Side sides[2];
    int watched, streak;
    long long seq;
    int listed;
    /* the admitted shapes, valid while ``admitted`` has the version they were read at */
    Shape *shapes;
    Py_ssize_t nslots, nshapes;
    uint64_t shapes_version;
    /* the statement in flight and what its answer said so far: rows of finished commands,
     * rows of the one going on, an error, the last command tag and SQLSTATE, the columns of
     * the last description and whether they need no masking */
    int inflight;
    char *query;
    Py_ssize_t query_len, query_cap;
    /* an extended round trip (take_extended): its Describe of the portal, its Bind's number
     * of result format codes, whether it parsed the unnamed statement or bound a named
     * one; and, for the Python relay, the statement it left the unnamed portal bound to
     * (``bound``: its name, empty for the unnamed statement; ``unnamed``: its text) */
    int extended, described, result_formats, parsed;
    char *unnamed, *bound;
    Py_ssize_t unnamed_len, unnamed_cap, bound_len, bound_cap;
    int unnamed_new, unnamed_formats;
    char *bound_codes; /* the result format codes of that Bind (2 bytes each) */
    Py_ssize_t bound_codes_cap;
    /* the named statements the engine may bind (Engine.prepare) */
    Named *named;
    Py_ssize_t nnamed, named_cap;
    PyObject *known; /* borrowed from the shape table */
    double started;
    long long rows, counted;
    int error, columns, blank_ok, tag_len, state_len;
    char tag[TAG_MAX];
    char state[STATE_MAX];
    /* masking sessions: the last RowDescription the fast path relayed (``description_new``:
     * since take_description), and the last one the ``blank`` dict said needs no masking */
    char *description, *blank_description;
    Py_ssize_t description_len, description_cap, blank_len, blank_cap;
    int description_new;
    /* what was filed: rows built by the Python relay (held with the GIL only) and the fast
     * path's records (under ``records_busy``: the pump files them without the GIL), in
     * sequence order */
    PyObject **pyrows;
    Py_ssize_t npyrows, pyrows_cap;
    Fast *fast;
    Py_ssize_t nfast, fast_cap;
    char *texts;
    Py_ssize_t texts_len, texts_cap;
    int records_busy; /* the records' spin lock: held to copy or grow them, never with the
                       * GIL awaited */
} Engine;

/* The fast records' lock: the pump's thread files a record (or makes room for one) and the
 * recorder's drain copies them out under it: a copy or a realloc, never waiting for the
 * GIL (the drain holds it while it spins), so a waiter spins. */
static void
records_lock(Engine *self)
{
    for (int spins = 0; __atomic_exchange_n(&self->records_busy, 1, __ATOMIC_ACQUIRE); spins++) {
        if (spins >= 200)
            sched_yield(); /* the holder was preempted */
#if defined(__x86_64__) || defined(__i386__)
        else
            __builtin_ia32_pause();
#elif defined(__aarch64__)
        else
            __asm__ __volatile__("yield");
#endif
    }
}

static void
records_unlock(Engine *self)
{
    __atomic_store_n(&self->records_busy, 0, __ATOMIC_RELEASE);
}

/* The engine's and the pump's own buffers come from libc's allocator, not PyMem_Raw*: the
 * pump allocates without the GIL under the records' lock, and tracemalloc's hooks on the
 * raw domain take the GIL, which the drain may hold while it waits for that lock. */

/* Make room for ``need`` items in a raw buffer: 0, or -1 (no exception set). */
static int
grow(void **buffer, Py_ssize_t *cap, Py_ssize_t need, size_t item)
{
    if (need <= *cap)
        return 0;
    Py_ssize_t cap2 = *cap ? *cap : 16;
    while (cap2 < need)
        cap2 *= 2;
    void *p = realloc(*buffer, (size_t)cap2 * item);
    if (p == NULL)
        return -1;
    *buffer = p;
    *cap = cap2;
    return 0;
}

/* The step's answer to a failed allocation: MemoryError with the GIL, else NEED_GIL. */
static int
no_memory(int gil)
{
    if (!gil)
        return NEED_GIL;
    PyErr_NoMemory();
    return -1;
}

/* A hash of ``n`` bytes eight at a time (a multiply and a shift per word), mixed at the end
 * so that the low bits the tables index by depend on every byte. */
static uint64_t
shape_hash(const char *key, Py_ssize_t n, int numbers)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)n << 1) ^ (uint64_t)numbers, word;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&word, key + i, 8);
        h = (h ^ word) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    word = 0;
    memcpy(&word, key + i, n - i);
    h = (h ^ word) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 32);
}

static Shape *
shape_find(Engine *self, const char *key, Py_ssize_t n, int numbers)
{
    uint64_t h = shape_hash(key, n, numbers);
    size_t mask = (size_t)self->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        Shape *s = &self->shapes[i];
        if (s->known == NULL)
            return NULL;
        if (s->hash == h && s->numbers == numbers && s->len == n && memcmp(s->key, key, n) == 0)
            return s;
    }
}

/* Drop every shape (the GIL held; the records borrowing from them take their own
 * reference first). */
static void
shapes_forget(Engine *self)
{
    for (Py_ssize_t i = 0; i < self->nfast; i++) {
        Fast *r = &self->fast[i];
        if (!r->owned) {
            Py_INCREF(r->known);
            r->owned = 1;
        }
    }
    for (Py_ssize_t i = 0; i < self->nslots; i++) {
        Shape *s = &self->shapes[i];
        if (s->known != NULL) {
            Py_CLEAR(s->known);
            free(s->key);
            s->key = NULL;
        }
    }
    self->nshapes = 0;
}

/* Put a shape in a table of ``nslots`` (it is not there and has room). */
static void
shape_place(Shape *table, Py_ssize_t nslots, Shape shape)
{
    size_t mask = (size_t)nslots - 1;
    size_t i = shape.hash & mask;
    while (table[i].known != NULL)
        i = (i + 1) & mask;
    table[i] = shape;
}

/* Remember that ``key`` is admitted as ``known`` (the GIL held): the new shape, or NULL
 * with MemoryError. */
static Shape *
shape_add(Engine *self, const char *key, Py_ssize_t n, int numbers, PyObject *known)
{
    if ((self->nshapes + 1) * 2 > self->nslots) {
        if (self->nslots >= SHAPES_MOST)
            shapes_forget(self);
        else {
            Py_ssize_t nslots = self->nslots ? self->nslots * 2 : SHAPES_FIRST;
            Shape *table = calloc(nslots, sizeof(Shape));
            if (table == NULL) {
                PyErr_NoMemory();
                return NULL;
            }
            for (Py_ssize_t i = 0; i < self->nslots; i++)
                if (self->shapes[i].known != NULL)
                    shape_place(table, nslots, self->shapes[i]);
            free(self->shapes);
            self->shapes = table;
            self->nslots = nslots;
        }
    }
    char *copy = malloc(n ? n : 1);
    if (copy == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(copy, key, n);
    Shape shape = {Py_NewRef(known), copy, n, shape_hash(key, n, numbers), numbers};
    shape_place(self->shapes, self->nslots, shape);
    self->nshapes++;
    return shape_find(self, key, n, numbers);
}

static uint64_t
dict_version(PyObject *dict)
{
    return ((PyDictObject *)dict)->ma_version_tag;
}

static void
record_release(Fast *r)
{
    if (r->owned)
        Py_CLEAR(r->known);
}

static void
named_forget(Engine *self)
{
    for (Py_ssize_t i = 0; i < self->nnamed; i++) {
        free(self->named[i].name);
        free(self->named[i].text);
        free(self->named[i].codes);
    }
    self->nnamed = 0;
}

/* The text of the named statement ``name``, or NULL when the engine may not bind it. */
static const Named *
named_find(Engine *self, const unsigned char *name, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < self->nnamed; i++) {
        const Named *s = &self->named[i];
        if (s->name_len == n && memcmp(s->name, name, n) == 0)
            return s;
    }
    return NULL;
}

static int
Engine_traverse(Engine *self, visitproc visit, void *arg)
{
    Py_VISIT(self->admitted);
    Py_VISIT(self->blank);
    Py_VISIT(self->stats);
    Py_VISIT(self->session);
    Py_VISIT(self->dirty);
    Py_VISIT(self->fragments);
    Py_VISIT(self->recorder);
    Py_VISIT(self->client_write);
    Py_VISIT(self->target_write);
    Py_VISIT(self->client_fallback);
    Py_VISIT(self->target_fallback);
    Py_VISIT((PyObject *)self->pump);
    Py_VISIT(self->promote);
    Py_VISIT(self->handback);
    Py_VISIT((PyObject *)self->spool);
    for (Py_ssize_t i = 0; i < self->npyrows; i++)
        Py_VISIT(self->pyrows[i]);
    /* The shapes' and the fast records' (class, reasons) are tuples of strings: no cycle
     * runs through them, and the pump's thread may be appending records. */
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
    Py_CLEAR(self->fragments);
    Py_CLEAR(self->recorder);
    Py_CLEAR(self->client_write);
    Py_CLEAR(self->target_write);
    Py_CLEAR(self->client_fallback);
    Py_CLEAR(self->target_fallback);
    Py_CLEAR(self->pump);
    Py_CLEAR(self->promote);
    Py_CLEAR(self->handback);
    Py_CLEAR(self->spool);
    self->armed = 0;
    self->inflight = 0;
    self->extended = 0;
    self->unnamed_new = 0;
    named_forget(self);
    self->known = NULL;
    for (Py_ssize_t i = 0; i < self->nfast; i++)
        record_release(&self->fast[i]);
    self->nfast = self->texts_len = 0;
    for (Py_ssize_t i = 0; i < self->npyrows; i++)
        Py_CLEAR(self->pyrows[i]);
    self->npyrows = 0;
    shapes_forget(self);
    self->description_len = self->blank_len = -1;
    self->description_new = 0;
    return 0;
}

static void
Engine_dealloc(Engine *self)
{
    PyObject_GC_UnTrack(self);
    Engine_clear(self);
    free(self->shapes);
    free(self->query);
    free(self->unnamed);
    free(self->bound);
    free(self->bound_codes);
    free(self->named);
    free(self->description);
    free(self->blank_description);
    free(self->pyrows);
    free(self->fast);
    free(self->texts);
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
    if (self->watched) {
        PyErr_SetString(PyExc_RuntimeError, "the pump watches this engine");
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

/* Enter the engine in the recorder's list (the GIL held): 0, or -1 with an error. */
static int
engine_list(Engine *self)
{
    if (self->listed)
        return 0;
    if (PyDict_SetItem(self->dirty, (PyObject *)self, self->session) < 0)
        return -1;
    self->listed = 1;
    return 0;
}

/* guard.classify.numbers_key of the text, written to ``key``: its length (at most ``n``:
 * every run of digits is one ``0``), or -1 for a text that is not plain ASCII, holds a
 * comment, a string, a quoted name, a dollar sign or a backslash, or is longer than the
 * classifier caches. */
static Py_ssize_t
numbers_key(const char *s, Py_ssize_t n, char *key)
{
    if (n > MAX_CACHED_LENGTH)
        return -1;
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || c == '\'' || c == '"' || c == '$' || c == '\\')
            return -1;
        if ((c == '-' || c == '*') && i > 0 && s[i - 1] == (c == '-' ? '-' : '/'))
            return -1;
        if (c >= '0' && c <= '9') {
            if (i == 0 || s[i - 1] < '0' || s[i - 1] > '9')
                key[k++] = '0';
        }
        else
            key[k++] = (char)c;
    }
    return k;
}

/* What the session's ``admitted`` dict says of the text (the GIL held), learnt as a shape:
 * the shape, or NULL when the text is not admitted (or with an error). ``key`` holds the
 * text's numbers key, ``key_len`` bytes, when ``key_len`` is at least 0 (-1: the text has
 * none; -2: not computed yet). */
static Shape *
shape_learn(Engine *self, const char *text, Py_ssize_t n, char *key, Py_ssize_t key_len)
{
    uint64_t version = dict_version(self->admitted);
    PyObject *sql = PyUnicode_DecodeUTF8(text, n, "surrogateescape");
    if (sql == NULL)
        return NULL;
    PyObject *known = PyDict_GetItemWithError(self->admitted, sql);
    Py_DECREF(sql);
    int numbers = 0;
    if (known == NULL) {
        if (PyErr_Occurred())
            return NULL;
        if (key_len == -2)
            key_len = numbers_key(text, n, key);
        if (key_len < 0)
            return NULL;
        PyObject *k = PyBytes_FromStringAndSize(key, key_len);
        if (k == NULL)
            return NULL;
        known = PyDict_GetItemWithError(self->admitted, k);
        Py_DECREF(k);
        if (known == NULL)
            return NULL;
        numbers = 1;
    }
    if (!PyTuple_CheckExact(known) || PyTuple_GET_SIZE(known) != 2)
        return NULL;
    if (version != self->shapes_version) {
        shapes_forget(self);
        self->shapes_version = version;
    }
    return numbers ? shape_add(self, key, key_len, 1, known) : shape_add(self, text, n, 0, known);
}

/* Put ``text`` in flight when it is an admitted text or shape: 1, 0 when it is not; -1 on
 * error (the GIL held) or NEED_GIL (without it). */
static int
take_text(Engine *self, const char *text, Py_ssize_t length, int gil)
{
    char key[MAX_CACHED_LENGTH];
    Py_ssize_t key_len = -2;
    Shape *shape = NULL;
    if (self->nshapes && dict_version(self->admitted) == self->shapes_version) {
        shape = shape_find(self, text, length, 0);
        if (shape == NULL && (key_len = numbers_key(text, length, key)) >= 0)
            shape = shape_find(self, key, key_len, 1);
    }
    if (shape == NULL) {
        if (!gil)
            return NEED_GIL;
        shape = shape_learn(self, text, length, key, key_len);
        if (shape == NULL)
            return PyErr_Occurred() ? -1 : 0;
    }
    if (grow((void **)&self->query, &self->query_cap, length + 1, 1) < 0)
        return no_memory(gil);
    memcpy(self->query, text, length);
    self->query_len = length;
    self->known = shape->known;
    self->rows = self->counted = 0;
    self->error = self->blank_ok = 0;
    self->columns = -1;
    self->tag_len = self->state_len = -1;
    self->extended = self->described = self->result_formats = 0;
    self->started = wall_clock();
    /* Audit before effect: a statement the spool cannot take is left to the Python relay,
     * which refuses it (its own write fails the same way). */
    if (self->spool != NULL) {
        if (spool_intent(self->spool, self->session_id, (long long)(self->started * 1e6), text,
                         length, self->done, self->done_len) < 0)
            return 0;
        self->done_len = 0;
    }
    self->inflight = 1;
    return 1;
}

/* The next message of ``p[:n]`` at ``*at`` when it is of ``type`` and whole: 1 with its
 * payload in ``*body``/``*size`` and ``*at`` past it, else 0. */
static int
next_message(const unsigned char *p, Py_ssize_t n, Py_ssize_t *at, unsigned char type,
             const unsigned char **body, Py_ssize_t *size)
{
    if (n - *at < 5 || p[*at] != type)
        return 0;
    uint32_t length = be32(p + *at + 1);
    if (length < 4 || (Py_ssize_t)length > n - *at - 1)
        return 0;
    *body = p + *at + 5;
    *size = (Py_ssize_t)length - 4;
    *at += 1 + (Py_ssize_t)length;
    return 1;
}

/* The Bind at ``*at`` when it binds the "" portal: 1 with the statement's name in
 * ``*name``/``*name_len`` (empty: the unnamed statement), its result format codes at
 * ``*codes`` (``*formats`` of them, 2 bytes each) and ``*binary`` set when one of them is
 * not text, ``*at`` past it; else 0. */
static int
bind_of_unnamed_portal(const unsigned char *p, Py_ssize_t n, Py_ssize_t *at,
                       const unsigned char **name, Py_ssize_t *name_len,
                       const unsigned char **codes, Py_ssize_t *formats, int *binary)
{
    const unsigned char *body;
    Py_ssize_t size;
    /* "" portal, the statement, parameter formats and values, result formats */
    if (!next_message(p, n, at, 'B', &body, &size) || size < 8 || body[0] != 0)
        return 0;
    const unsigned char *nul = memchr(body + 1, 0, size - 1);
    if (nul == NULL)
        return 0;
    *name = body + 1;
    *name_len = nul - *name;
    Py_ssize_t i = *name_len + 2;
    if (size - i < 2)
        return 0;
    Py_ssize_t count = be16(body + i);
    i += 2 + 2 * count;
    if (size - i < 2)
        return 0;
    count = be16(body + i);
    i += 2;
    for (Py_ssize_t k = 0; k < count; k++) {
        if (size - i < 4)
            return 0;
        int32_t value = (int32_t)be32(body + i);
        i += 4;
        if (value < -1 || size - i < value)
            return 0;
        if (value > 0)
            i += value;
    }
    if (size - i < 2)
        return 0;
    *formats = be16(body + i);
    i += 2;
    if (size - i != 2 * *formats)
        return 0;
    *codes = body + i;
    *binary = 0;
    for (Py_ssize_t k = 0; k < *formats; k++)
        if (be16(body + i + 2 * k) != 0)
            *binary = 1;
    return 1;
}

/* 1 when the read is exactly one extended-protocol round trip of the "" portal: Parse of
 * an admitted text or shape as the unnamed statement and Bind of it (what libpq's
 * PQexecParams, pgbench -M extended and psycopg send), or Bind of a named statement the
 * engine may bind (Engine.prepare) whose text is admitted (PQexecPrepared, pgbench -M
 * prepared, asyncpg); optionally Describe of the portal, Execute of it, Sync; now in
 * flight. Else as take_text. Results in binary are taken where masking cannot
 * need them read: a session without masking, a portal described (its RowDescription
 * decides, as for text), or a named statement bound with the codes the relay said give
 * rows needing no masking (Engine.blank_binds), which also stand for the RowDescription a
 * Bind without Describe gets none of. */
static int
take_extended(Engine *self, const unsigned char *p, Py_ssize_t n, int gil)
{
    const unsigned char *body, *text = NULL, *name, *codes;
    Py_ssize_t size, at = 0, length = 0, name_len, formats;
    int parsed = p[0] == 'P', binary;
    if (parsed) {
        /* Parse: "" statement, the text, its parameter types */
        if (!next_message(p, n, &at, 'P', &body, &size) || size < 4 || body[0] != 0)
            return 0;
        text = body + 1;
        const unsigned char *nul = memchr(text, 0, size - 1);
        if (nul == NULL)
            return 0;
        length = nul - text;
        Py_ssize_t i = length + 2;
        if (size - i < 2 || size - i - 2 != 4 * (Py_ssize_t)be16(body + i))
            return 0;
        for (Py_ssize_t k = i + 2; k < size; k += 4)
            if (be32(body + k) >= FIRST_NORMAL_OID)
                return 0; /* a type the database defines (a domain's CHECK): the relay's */
    }
    if (!bind_of_unnamed_portal(p, n, &at, &name, &name_len, &codes, &formats, &binary))
        return 0;
    if (parsed != (name_len == 0))
        return 0; /* a Parse binds the statement it parsed; a named one stands alone */
    /* Describe of the "" portal, or not */
    int described = at < n && p[at] == 'D';
    if (described &&
        (!next_message(p, n, &at, 'D', &body, &size) || size != 2 || body[0] != 'P' || body[1]))
        return 0;
    /* Execute of the "" portal (with a row limit too: the Sync behind it closes a portal
     * the limit suspended), then Sync, and nothing else */
    if (!next_message(p, n, &at, 'E', &body, &size) || size != 5 || body[0] != 0)
        return 0;
    if (!next_message(p, n, &at, 'S', &body, &size) || size != 0 || at != n)
        return 0;
    const Named *named = NULL;
    if (!parsed) {
        named = named_find(self, name, name_len);
        if (named == NULL)
            return 0;
        text = (const unsigned char *)named->text;
        length = named->text_len;
    }
    /* Rows the relay said need no masking: this statement, bound with the same codes. */
    int known_blank = named != NULL && named->codes != NULL &&
                      named->codes_len == 2 * formats &&
                      memcmp(named->codes, codes, named->codes_len) == 0;
    int masking = self->blank != Py_None;
    if (binary && masking && !described && !known_blank)
        return 0; /* binary rows of unknown columns: the Python relay reads them by type */
    if (grow((void **)&self->unnamed, &self->unnamed_cap, length + 1, 1) < 0 ||
        grow((void **)&self->bound, &self->bound_cap, name_len + 1, 1) < 0 ||
        grow((void **)&self->bound_codes, &self->bound_codes_cap, 2 * formats + 1, 1) < 0)
        return no_memory(gil);
    int taken = take_text(self, (const char *)text, length, gil);
    if (taken != 1)
        return taken;
    if (known_blank && !described) {
        self->blank_ok = 1;
        self->columns = named->columns;
    }
    self->extended = 1;
    self->described = described;
    self->result_formats = (int)formats;
    self->parsed = parsed;
    memcpy(self->unnamed, text, length);
    self->unnamed_len = length;
    memcpy(self->bound, name, name_len);
    self->bound_len = name_len;
    memcpy(self->bound_codes, codes, 2 * formats);
    self->unnamed_formats = (int)formats;
    self->unnamed_new = 1;
    return 1;
}

/* 1 when the read ``p[:n]`` is one whole Query of an admitted text or shape, or one whole
 * extended round trip of one (take_extended), now in flight; 0 when not; -1 on error (the
 * GIL held) or NEED_GIL (without it). */
static int
take_query(Engine *self, const unsigned char *p, Py_ssize_t n, int gil)
{
    if (self->inflight)
        return 0;
    if (n > 0 && (p[0] == 'P' || p[0] == 'B'))
        return take_extended(self, p, n, gil);
    if (n < 6 || p[0] != 'Q' || (Py_ssize_t)be32(p + 1) != n - 1 || p[n - 1] != 0)
        return 0;
    const char *text = (const char *)p + 5;
    Py_ssize_t length = n - 6;
    if (memchr(text, 0, length) != NULL)
        return 0;
    return take_text(self, text, length, gil);
}

/* The SQLSTATE field of an ErrorResponse payload (proxy.codec.error_sqlstate): its length
 * with ``*state`` pointing at it, or -1 when there is none. */
static Py_ssize_t
error_sqlstate(const unsigned char *p, Py_ssize_t n, const unsigned char **state)
{
    Py_ssize_t i = 0;
    while (i < n && p[i] != 0) {
        unsigned char field = p[i++];
        const unsigned char *end = memchr(p + i, 0, n - i);
        if (end == NULL)
            return -1;
        if (field == 'C') {
            *state = p + i;
            return end - (p + i);
        }
        i = end - p + 1;
    }
    return -1;
}

/* Reads the target's answer to the query in flight, read by read. A read of whole
 * messages, all of a plain result, is taken: 1 when the answer goes on, the transaction
 * status byte when it ended with ReadyForQuery (the statement is filed). Anything else
 * returns 0 and changes nothing; the Python relay then takes the statement (take). -1 on
 * error (the GIL held), NEED_GIL (without it), both changing nothing either. */
static long
read_answer(Engine *self, const unsigned char *p, Py_ssize_t n, int gil)
{
    if (!self->inflight)
        return 0;
    Py_ssize_t at = 0;
    long long rows = self->rows, counted = self->counted;
    int error = self->error, status = 0, blank = self->blank_ok, columns = self->columns;
    const unsigned char *tag = NULL, *description = NULL, *state = NULL, *learnt = NULL;
    Py_ssize_t tag_len = 0, description_len = 0, state_len = -1;
    int state_seen = 0;
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
                if (size == self->blank_len && memcmp(body, self->blank_description, size) == 0)
                    blank = 1;
                else {
                    if (!gil)
                        return NEED_GIL;
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
                    learnt = body;
                }
            }
            break;
        case 'D':
            if (masking && !(blank && size >= 2 && ((body[0] << 8) | body[1]) == columns))
                return 0;
            counted++;
            break;
        case 'C': {
            if (size < 1 || body[size - 1] != 0 || size > TAG_MAX)
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
        case '1': /* ParseComplete, BindComplete, NoData: the extended round trip's own */
        case '2':
        case 'n':
            if (!self->extended)
                return 0;
            break;
        case 's': /* PortalSuspended: the Execute's row limit was reached (asyncpg's fetchrow);
                   * the Sync behind it closes the portal. Its rows, no command tag. */
            if (!self->extended)
                return 0;
            rows += counted;
            counted = 0;
            break;
        case 'E':
            if (self->extended || masking)
                return 0; /* which message failed decides the record, and an error's text
                           * may quote a value to mask: the relay's part */
            error = 1;
            state_seen = 1;
            state_len = error_sqlstate(body, size, &state);
            if (state_len >= STATE_MAX)
                return 0;
            break;
        case 'Z':
            if (size != 1)
                return 0;
            status = body[0];
            break;
        case 'N': /* a notice's text, a notification's payload: masked by the relay */
        case 'A':
            if (masking)
                return 0;
            break;
        case 'I':
            break;
        case 'S': /* ParameterStatus: the relay checks what the target now reads text as */
            return 0;
        default:
            return 0;
        }
        at += 1 + (Py_ssize_t)length;
    }
    if (self->extended && !status)
        return 0; /* an extended answer is taken whole or not at all */

    /* The read is taken: make room for what it said, then keep it. */
    int keep_description = description != NULL && masking;
    if (keep_description && grow((void **)&self->description, &self->description_cap,
                                 description_len, 1) < 0)
        return no_memory(gil);
    if (learnt != NULL &&
        grow((void **)&self->blank_description, &self->blank_cap, description_len, 1) < 0)
        return no_memory(gil);
    if (status) {
        if (!self->listed) {
            if (!gil)
                return NEED_GIL;
            if (engine_list(self) < 0)
                return -1;
        }
        /* Room reserved now holds until the record is filed: a drain copies the records
         * out and keeps the buffers; one that fails puts them back with room to spare. */
        records_lock(self);
        int full =
            grow((void **)&self->fast, &self->fast_cap, self->nfast + 1, sizeof(Fast)) < 0 ||
            grow((void **)&self->texts, &self->texts_cap, self->texts_len + self->query_len + 1,
                 1) < 0;
        records_unlock(self);
        if (full)
            return no_memory(gil);
    }
    if (tag != NULL) {
        memcpy(self->tag, tag, tag_len);
        self->tag_len = (int)tag_len;
    }
    if (state_seen) {
        if (state_len > 0)
            memcpy(self->state, state, state_len);
        self->state_len = (int)state_len;
    }
    if (keep_description) {
        memcpy(self->description, description, description_len);
        self->description_len = description_len;
        self->description_new = 1;
    }
    if (learnt != NULL) {
        memcpy(self->blank_description, learnt, description_len);
        self->blank_len = description_len;
    }
    self->rows = rows;
    self->counted = counted;
    self->error = error;
    self->blank_ok = blank;
    self->columns = columns;
    if (!status)
        return 1;

    /* The whole answer is here: file the statement. */
    double ended = wall_clock();
    records_lock(self);
    Fast *r = &self->fast[self->nfast];
    r->known = self->known;
    r->owned = 0;
    r->seq = ++self->seq;
    r->started_us = (long long)(self->started * 1e6);
    long long duration = (long long)(ended * 1e6) - r->started_us;
    r->duration_us = duration > 0 ? duration : 0;
    r->rows = rows;
    r->error = error;
    r->extended = self->extended;
    r->text_at = self->texts_len;
    r->text_len = self->query_len;
    memcpy(self->texts + self->texts_len, self->query, self->query_len);
    self->texts_len += self->query_len;
    r->tag_len = self->tag_len;
    if (r->tag_len > 0)
        memcpy(r->tag, self->tag, r->tag_len);
    r->state_len = self->state_len;
    if (r->state_len > 0)
        memcpy(r->state, self->state, r->state_len);
    if (self->spool != NULL)
        self->done_len = spool_done(self->done, self->session_id, r->started_us,
                                    r->duration_us, rows, error ? "error" : "ok", self->tag,
                                    self->tag_len, self->state, self->state_len);
    __atomic_store_n(&self->nfast, self->nfast + 1, __ATOMIC_RELEASE);
    records_unlock(self);
    self->known = NULL;
    self->inflight = 0;
    self->status = (int)status;
    Stats_observe(self->stats, ended - self->started, error);
    return status;
}

/* A ``bytes`` argument as the engine's steps read it. */
static int
bytes_arg(PyObject *data, const unsigned char **p, Py_ssize_t *n)
{
    if (!PyBytes_CheckExact(data))
        return 0;
    *p = (const unsigned char *)PyBytes_AS_STRING(data);
    *n = PyBytes_GET_SIZE(data);
    return 1;
}

static PyObject *
Engine_query(Engine *self, PyObject *data)
{
    const unsigned char *p;
    Py_ssize_t n;
    int taken = bytes_arg(data, &p, &n) ? take_query(self, p, n, 1) : 0;
    if (taken < 0)
        return NULL;
    return PyBool_FromLong(taken);
}

static PyObject *
Engine_result(Engine *self, PyObject *data)
{
    const unsigned char *p;
    Py_ssize_t n;
    long status = bytes_arg(data, &p, &n) ? read_answer(self, p, n, 1) : 0;
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
    PyObject *sql = PyUnicode_DecodeUTF8(self->query, self->query_len, "surrogateescape");
    PyObject *tag = self->tag_len < 0 ? Py_NewRef(Py_None)
                                      : PyBytes_FromStringAndSize(self->tag, self->tag_len);
    PyObject *state = self->state_len < 0
                          ? Py_NewRef(Py_None)
                          : PyUnicode_DecodeUTF8(self->state, self->state_len, "replace");
    if (sql == NULL || tag == NULL || state == NULL) {
        Py_XDECREF(sql);
        Py_XDECREF(tag);
        Py_XDECREF(state);
        return NULL;
    }
    /* "N" hands the references to the tuple (or releases them if it cannot be built) */
    PyObject *result = Py_BuildValue("(NOdLLONN)", sql, self->known, self->started, self->rows,
                                     self->counted, self->error ? S_ERROR : S_OK, tag, state);
    if (result != NULL) {
        self->known = NULL;
        self->inflight = 0;
    }
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
    if (grow((void **)&self->pyrows, &self->pyrows_cap, self->npyrows + 1, sizeof(PyObject *)) <
        0)
        return PyErr_NoMemory();
    if (engine_list(self) < 0)
        return NULL;
    self->pyrows[self->npyrows++] = Py_NewRef(row);
    Py_RETURN_NONE;
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
    char digits[24], *end = digits + sizeof digits, *p = end;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    return out_write(o, p, end - p);
}

static void
put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static int
out_be32(Out *o, uint32_t v)
{
    unsigned char b[4];
    put_be32(b, v);
    return out_write(o, (const char *)b, 4);
}

/* A str's UTF-8 bytes, lone surrogates (SQL that was not UTF-8) back to their bytes, as
 * the fast path files them; NULL with an exception. */
static PyObject *
wire_bytes(PyObject *text)
{
    PyObject *encoded = PyUnicode_AsEncodedString(text, "utf-8", "surrogateescape");
    if (encoded == NULL) {
        PyErr_Clear();
        encoded = PyUnicode_AsEncodedString(text, "utf-8", "replace");
    }
    return encoded;
}

/* The distinct SQL texts of a drain, as the recorder stores them: each text's bytes and a
 * NUL in ``joined`` (what the masking prefilter reads: masking.sensitive_in), and all of
 * them as the binary ``text[]`` value COPY sends in ``array`` (after a header written at
 * the end); an open-addressing table finds a text seen before. */
typedef struct {
    Out joined, array;
    Py_ssize_t count;
    struct TextSlot {
        uint64_t hash;
        Py_ssize_t at, len, index; /* at: in ``joined``; len -1: an empty slot */
    } *slots;
    Py_ssize_t nslots;
} Texts;

#define ARRAY_HEADER 20 /* ndim, flags, element type, length, lower bound */
#define TEXT_OID 25

static void
texts_place(struct TextSlot *slots, Py_ssize_t nslots, struct TextSlot slot)
{
    size_t mask = (size_t)nslots - 1, i = slot.hash & mask;
    while (slots[i].len >= 0)
        i = (i + 1) & mask;
    slots[i] = slot;
}

/* Room for one more text in the table: 0, or -1 with MemoryError. */
static int
texts_room(Texts *t)
{
    if ((t->count + 1) * 2 <= t->nslots)
        return 0;
    Py_ssize_t nslots = t->nslots ? t->nslots * 2 : 64;
    struct TextSlot *slots = PyMem_Malloc(nslots * sizeof(struct TextSlot));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < nslots; i++)
        slots[i].len = -1;
    for (Py_ssize_t i = 0; i < t->nslots; i++)
        if (t->slots[i].len >= 0)
            texts_place(slots, nslots, t->slots[i]);
    PyMem_Free(t->slots);
    t->slots = slots;
    t->nslots = nslots;
    return 0;
}

/* Room kept at the start of the ``text[]`` for its header (texts_array): 0, or -1 with
 * MemoryError. */
static int
array_started(Texts *t)
{
    if (t->array.size > 0)
        return 0;
    if (out_reserve(&t->array, ARRAY_HEADER) < 0)
        return -1;
    t->array.size = ARRAY_HEADER;
    return 0;
}

/* The index of the ``n`` bytes of ``text`` among the drain's texts, added when new; -1
 * with MemoryError. */
static Py_ssize_t
texts_index(Texts *t, const char *text, Py_ssize_t n)
{
    if (texts_room(t) < 0)
        return -1;
    uint64_t hash = shape_hash(text, n, 0);
    size_t mask = (size_t)t->nslots - 1, i = hash & mask;
    for (; t->slots[i].len >= 0; i = (i + 1) & mask) {
        const struct TextSlot *slot = &t->slots[i];
        if (slot->hash == hash && slot->len == n && memcmp(t->joined.data + slot->at, text, n) == 0)
            return slot->index;
    }
    struct TextSlot slot = {hash, t->joined.size, n, t->count};
    if (out_write(&t->joined, text, n) < 0 || out_write(&t->joined, "", 1) < 0 ||
        array_started(t) < 0 || out_be32(&t->array, (uint32_t)n) < 0 ||
        out_write(&t->array, text, n) < 0)
        return -1;
    t->slots[i] = slot;
    return t->count++;
}

/* The index of a str among the drain's texts (its wire_bytes). */
static Py_ssize_t
texts_index_str(Texts *t, PyObject *text)
{
    PyObject *encoded = wire_bytes(text);
    if (encoded == NULL)
        return -1;
    Py_ssize_t index = texts_index(t, PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded));
    Py_DECREF(encoded);
    return index;
}

/* The binary ``text[]`` of the texts: its header written over the room kept for it. */
static PyObject *
texts_array(Texts *t)
{
    if (array_started(t) < 0)
        return NULL;
    const uint32_t header[5] = {1, 0, TEXT_OID, (uint32_t)t->count, 1};
    for (int k = 0; k < 5; k++)
        put_be32((unsigned char *)t->array.data + 4 * k, header[k]);
    return PyBytes_FromStringAndSize(t->array.data, t->array.size);
}

static void
texts_free(Texts *t)
{
    PyMem_Free(t->joined.data);
    PyMem_Free(t->array.data);
    PyMem_Free(t->slots);
}

/* Append a str's wire_bytes: the bytes of SQL that was not UTF-8 stay, and
 * audit.events.stored_json replaces them before the batch is stored. */
static int
out_str(Out *o, PyObject *text)
{
    PyObject *encoded = wire_bytes(text);
    if (encoded == NULL)
        return -1;
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

/* Append the JSON string of ``n`` bytes of text: as they are when plain ASCII, else decoded
 * (invalid UTF-8 replaced) and encoded by ``encode``. */
static int
out_text(Out *o, PyObject *encode, const char *text, Py_ssize_t n)
{
    const unsigned char *t = (const unsigned char *)text;
    Py_ssize_t i = 0;
    while (i < n && t[i] >= 0x20 && t[i] < 0x7f && t[i] != '"' && t[i] != '\\')
        i++;
    if (i == n)
        return out_write(o, "\"", 1) < 0 || out_write(o, text, n) < 0 ||
                       out_write(o, "\"", 1) < 0
                   ? -1
                   : 0;
    PyObject *decoded = PyUnicode_DecodeUTF8(text, n, "replace");
    if (decoded == NULL)
        return -1;
    int rc = out_json(o, encode, decoded);
    Py_DECREF(decoded);
    return rc;
}

/* One fast record as the JSON array audit.events.encode_batch writes for it, without the
 * nulls it would end with (the statement_events view reads a field past the end as null),
 * ``fragment`` being its known_fragment. */
static int
out_fast(Out *o, PyObject *fragment, PyObject *encode, const Fast *r, Py_ssize_t index)
{
    int rc = out_write(o, "[", 1) < 0 || out_int(o, r->seq) < 0 || out_write(o, ",", 1) < 0 ||
             out_int(o, index) < 0 ||
             (r->extended ? out_write(o, ",\"extended\",", 12) : out_write(o, ",\"simple\",", 10)) <
                 0 ||
             out_write(o, PyBytes_AS_STRING(fragment), PyBytes_GET_SIZE(fragment)) < 0 ||
             out_write(o, r->error ? ",\"error\"," : ",\"ok\",", r->error ? 9 : 6) < 0 ||
             out_int(o, r->started_us) < 0 || out_write(o, ",", 1) < 0 ||
             out_int(o, r->duration_us) < 0 || out_write(o, ",", 1) < 0 ||
             out_int(o, r->rows) < 0 || out_write(o, ",", 1) < 0;
    if (rc)
        return -1;
    if (r->tag_len < 0 ? out_write(o, "null", 4) < 0 : out_text(o, encode, r->tag, r->tag_len) < 0)
        return -1;
    /* the SQLSTATE when there is one; no access request, no masking: the row ends */
    if (r->state_len >= 0 &&
        (out_write(o, ",", 1) < 0 || out_text(o, encode, r->state, r->state_len) < 0))
        return -1;
    return out_write(o, "]", 1);
}

/* The fast records and their texts, taken out of an engine by a drain. */
typedef struct {
    Fast *fast;
    Py_ssize_t nfast, fast_cap;
    char *texts;
    Py_ssize_t texts_len, texts_cap;
} Taken;

/* Run ``f`` on the engine's fast records under their lock (the GIL held: the pump's
 * thread never waits for the GIL while it holds the lock). */
static void
with_records(Engine *self, void (*f)(Engine *, Taken *), Taken *taken)
{
    records_lock(self);
    f(self, taken);
    records_unlock(self);
}

/* Copy the records out into ``t``'s buffers when they fit (else leave ``t->nfast`` at -1
 * with the sizes needed), and empty the engine's, keeping its buffers: room the pump
 * reserved for a record it is filing stays reserved. */
static void
records_take(Engine *self, Taken *t)
{
    if (self->nfast > t->fast_cap || self->texts_len > t->texts_cap) {
        t->nfast = -1;
        t->fast_cap = self->nfast;
        t->texts_cap = self->texts_len;
        return;
    }
    t->nfast = self->nfast;
    t->texts_len = self->texts_len;
    if (t->nfast > 0) {
        memcpy(t->fast, self->fast, t->nfast * sizeof(Fast));
        memcpy(t->texts, self->texts, t->texts_len);
    }
    __atomic_store_n(&self->nfast, 0, __ATOMIC_RELEASE);
    self->texts_len = 0;
}

/* Take the engine's fast records into ``t`` (buffers sized outside the lock, retried when
 * the pump filed more meanwhile): 0, or -1 with MemoryError. */
static int
take_records(Engine *self, Taken *t)
{
    Py_ssize_t records = __atomic_load_n(&self->nfast, __ATOMIC_RELAXED);
    Py_ssize_t bytes = __atomic_load_n(&self->texts_len, __ATOMIC_RELAXED);
    for (;;) {
        records = records + records / 2 + 16;
        bytes = bytes + bytes / 2 + 4096;
        Fast *fast = realloc(t->fast, records * sizeof(Fast));
        if (fast != NULL)
            t->fast = fast;
        char *texts = realloc(t->texts, bytes);
        if (texts != NULL)
            t->texts = texts;
        if (fast == NULL || texts == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        t->fast_cap = records;
        t->texts_cap = bytes;
        with_records(self, records_take, t);
        if (t->nfast >= 0)
            return 0;
        records = t->fast_cap;
        bytes = t->texts_cap;
    }
}

/* Put what a failed drain took back in front of what was filed since; when that cannot be
 * done (no memory), the records are lost, and said so. */
static void
records_put_back(Engine *self, Taken *t)
{
    if (t->nfast == 0)
        return;
    /* the engine's whole capacity on top: what the pump reserved in it stays reserved */
    if (grow((void **)&t->fast, &t->fast_cap, t->nfast + self->fast_cap + 1, sizeof(Fast)) < 0 ||
        grow((void **)&t->texts, &t->texts_cap, t->texts_len + self->texts_cap + 1, 1) < 0) {
        t->nfast = -t->nfast; /* cannot be kept: the caller reports it */
        return;
    }
    for (Py_ssize_t i = 0; i < self->nfast; i++) {
        t->fast[t->nfast + i] = self->fast[i];
        t->fast[t->nfast + i].text_at += t->texts_len;
    }
    if (self->texts_len > 0)
        memcpy(t->texts + t->texts_len, self->texts, self->texts_len);
    free(self->fast);
    free(self->texts);
    self->fast = t->fast;
    self->nfast = t->nfast + self->nfast;
    self->fast_cap = t->fast_cap;
    self->texts = t->texts;
    self->texts_len = t->texts_len + self->texts_len;
    self->texts_cap = t->texts_cap;
    t->fast = NULL;
    t->texts = NULL;
    t->nfast = 0;
}

static long long
row_seq(PyObject *row, Py_ssize_t field)
{
    return PyLong_AsLongLong(PyTuple_GET_ITEM(row, field));
}

/* Everything filed since the last drain, as ``(joined, array, events, count, first_seq,
 * last_seq, started_us)``: the distinct SQL texts as audit.events.batch_texts gives them
 * (each followed by a NUL, and as the binary text[] COPY sends), and the statements as the
 * UTF-8 of the JSON array of arrays audit.events.encode_batch writes (each text as its
 * index; out_fast leaves out the nulls a fast record's row would end with); ``encode`` is the JSON encoder of one value (audit.events.row_json). None when
 * nothing was filed.
 * The engine stays on the recorder's list while the pump watches it (the pump files
 * without the GIL) or while it holds records. */
static PyObject *
Engine_drain(Engine *self, PyObject *encode)
{
    Taken t = {0};
    if (take_records(self, &t) < 0) {
        free(t.fast);
        free(t.texts);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < t.nfast; i++) {
        Fast *r = &t.fast[i];
        if (!r->owned) {
            Py_INCREF(r->known);
            r->owned = 1;
        }
    }
    Py_ssize_t nrows = self->npyrows, count = nrows + t.nfast;
    Out o = {0};
    Texts texts = {0};
    PyObject *joined = NULL, *array = NULL, *result = NULL, *events = NULL;
    PyObject *fragment = NULL, *last_known = NULL;
    if (count == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (out_write(&o, "[", 1) < 0)
        goto done;
    if (self->fragments == NULL && (self->fragments = PyDict_New()) == NULL)
        goto done;
    long long first_seq = 0, last_seq = 0, started = 0;
    for (Py_ssize_t i = 0, j = 0; i < nrows || j < t.nfast;) {
        PyObject *row = i < nrows ? self->pyrows[i] : NULL;
        const Fast *r = j < t.nfast ? &t.fast[j] : NULL;
        long long seq = row != NULL ? row_seq(row, 0) : 0;
        if (row != NULL && r != NULL && r->seq < seq)
            row = NULL;
        if (row == NULL)
            seq = r->seq;
        if (i + j == 0) {
            first_seq = seq;
            started = row != NULL ? row_seq(row, 7) : r->started_us;
        }
        last_seq = seq;
        if (PyErr_Occurred() || (i + j > 0 && out_write(&o, ",", 1) < 0))
            goto done;
        Py_ssize_t index = row != NULL ? texts_index_str(&texts, PyTuple_GET_ITEM(row, 1))
                                       : texts_index(&texts, t.texts + r->text_at, r->text_len);
        if (index < 0)
            goto done;
        int rc;
        if (row != NULL) {
            PyObject *indexed = PyTuple_New(14), *number = PyLong_FromSsize_t(index);
            if (indexed == NULL || number == NULL) {
                Py_XDECREF(indexed);
                Py_XDECREF(number);
                goto done;
            }
            for (Py_ssize_t f = 0; f < 14; f++)
                PyTuple_SET_ITEM(indexed, f,
                                 f == 1 ? number : Py_NewRef(PyTuple_GET_ITEM(row, f)));
            rc = out_json(&o, encode, indexed);
            Py_DECREF(indexed);
            i++;
        }
        else {
            if (r->known != last_known) { /* a session's statements mostly share one */
                Py_XSETREF(fragment, known_fragment(self->fragments, encode, r->known));
                last_known = fragment != NULL ? r->known : NULL;
            }
            rc = fragment != NULL ? out_fast(&o, fragment, encode, r, index) : -1;
            j++;
        }
        if (rc < 0)
            goto done;
    }
    if (out_write(&o, "]", 1) < 0)
        goto done;
    events = PyBytes_FromStringAndSize(o.data, o.size);
    joined = PyBytes_FromStringAndSize(texts.joined.data, texts.joined.size);
    array = texts_array(&texts);
    if (events == NULL || joined == NULL || array == NULL)
        goto done;
    result = Py_BuildValue("(OOOnLLL)", joined, array, events, count, first_seq, last_seq,
                           started);
    if (result == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < nrows; i++)
        Py_CLEAR(self->pyrows[i]);
    if (self->npyrows > nrows) /* filed while encoding (it does not happen): kept */
        memmove(self->pyrows, self->pyrows + nrows, (self->npyrows - nrows) * sizeof(PyObject *));
    self->npyrows -= nrows;
done:
    PyMem_Free(o.data);
    texts_free(&texts);
    Py_XDECREF(fragment);
    Py_XDECREF(joined);
    Py_XDECREF(array);
    Py_XDECREF(events);
    if (result == NULL) {
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        with_records(self, records_put_back, &t);
        if (t.nfast < 0) {
            PyErr_Clear();
            fprintf(stderr, "jitgate: %zd audit records lost (no memory)\n", -t.nfast);
            t.nfast = -t.nfast;
        }
        PyErr_Restore(type, value, traceback);
    }
    for (Py_ssize_t i = 0; i < t.nfast; i++)
        record_release(&t.fast[i]);
    free(t.fast);
    free(t.texts);
    /* The recorder took the engine off its list (it puts it back itself when the drain
     * fails): back on it while the pump may file without the GIL or records are held. */
    self->listed = 0;
    if (result != NULL &&
        (self->watched || self->npyrows || __atomic_load_n(&self->nfast, __ATOMIC_ACQUIRE))) {
        if (PyDict_SetItem(self->dirty, (PyObject *)self, self->session) < 0)
            PyErr_Clear(); /* the next record filed lists it (the pump: with the GIL) */
        else
            self->listed = 1;
    }
    return result;
}

static PyObject *S_AVAILABLE;
static PyTypeObject PumpType;

static PyObject *
Engine_connect(Engine *self, PyObject *args, PyObject *kwds)
{
    PyObject *recorder, *client_write, *target_write, *client_fallback, *target_fallback;
    PyObject *pump = Py_None, *promote = Py_None, *handback = Py_None, *spool = Py_None;
    Py_buffer session_id = {0};
    static char *kwlist[] = {"recorder",        "client_write", "target_write",
                             "client_fallback", "target_fallback", "pump",
                             "promote",         "handback",     "spool",
                             "session_id",      NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOO|OOOOy*", kwlist, &recorder,
                                     &client_write, &target_write, &client_fallback,
                                     &target_fallback, &pump, &promote, &handback, &spool,
                                     &session_id))
        return NULL;
    int spool_ok = spool == Py_None || (PyObject_TypeCheck(spool, &SpoolType) &&
                                        session_id.buf != NULL && session_id.len == 16);
    if (spool_ok && spool != Py_None)
        memcpy(self->session_id, session_id.buf, 16);
    if (session_id.buf != NULL)
        PyBuffer_Release(&session_id);
    if (!spool_ok) {
        PyErr_SetString(PyExc_TypeError, "spool must be a Spool, given with a 16-byte session_id");
        return NULL;
    }
    if (spool != Py_None)
        Py_XSETREF(self->spool, (Spool *)Py_NewRef(spool));
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
        const unsigned char *p;
        Py_ssize_t n;
        if (up && bytes_arg(data, &p, &n)) {
            int taken = take_query(self, p, n, 1);
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
    const unsigned char *p;
    Py_ssize_t n;
    if (self->armed && self->inflight && bytes_arg(data, &p, &n)) {
        long status = read_answer(self, p, n, 1);
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
 * engine, and sends what the engine takes straight to the other socket. The engine's
 * common round trip needs no GIL (an admitted shape, a known row description, the audit
 * store up as ``Pump.available`` says); the rest is done with it. The first read the
 * engine declines, a send that would
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
    long long relayed, returned, gil_reads;
    int available; /* the audit store takes statements (kept by the server) */
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
        Engine **retired = realloc(pump->retired, cap * sizeof(Engine *));
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
        free(retired);
        return;
    }
    if (!holding_gil)
        pump_take_gil(pump);
    for (Py_ssize_t i = 0; i < n; i++)
        Py_DECREF(retired[i]);
    if (!holding_gil)
        pump_drop_gil(pump);
    free(retired);
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

/* Hand a read the engine declined back to the loop (the lock and the GIL held). */
static void
hand_back_read(Pump *pump, Engine *engine, int client, const char *data, ssize_t n)
{
    PyObject *read = PyBytes_FromStringAndSize(data, n);
    if (read == NULL) {
        PyErr_WriteUnraisable(NULL);
        hand_back(pump, engine, HANDBACK_CLOSED, NULL); /* cannot happen short of memory */
        return;
    }
    hand_back(pump, engine, client ? HANDBACK_CLIENT_READ : HANDBACK_TARGET_READ, read);
    Py_DECREF(read);
}

/* The engine's step for a read of ``side`` (the lock held; the GIL when ``gil``). */
static long
pump_step(Pump *pump, Engine *engine, Side *side, ssize_t got, int gil)
{
    const unsigned char *p = (const unsigned char *)pump->buffer;
    if (!engine->armed)
        return 0;
    if (!side->client)
        return engine->inflight ? read_answer(engine, p, got, gil) : 0;
    if (engine->inflight)
        return 0;
    if (!gil) {
        if (!__atomic_load_n(&pump->available, __ATOMIC_RELAXED))
            return NEED_GIL; /* the recorder's own word, below */
        return take_query(engine, p, got, 0);
    }
    int up = recorder_available(engine);
    return up > 0 ? take_query(engine, p, got, 1) : up;
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
    long taken = got > 0 ? pump_step(pump, engine, side, got, 0) : 0;
    if (taken <= 0) {
        pump_take_gil(pump);
        if (got <= 0) {
            hand_back(pump, engine, HANDBACK_CLOSED, NULL);
            pump_drop_gil(pump);
            return;
        }
        if (taken == NEED_GIL) {
            pump->gil_reads++;
            taken = pump_step(pump, engine, side, got, 1);
        }
        if (taken < 0) {
            PyErr_WriteUnraisable((PyObject *)engine);
            taken = 0;
        }
        if (!taken) {
            hand_back_read(pump, engine, side->client, pump->buffer, got);
            pump_drop_gil(pump);
            return;
        }
        pump_drop_gil(pump);
    }
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
    self->available = 1;
    self->buffer = malloc(PUMP_READ);
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
    free(self->buffer);
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

static PyObject *
Pump_get_gil_reads(Pump *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLongLong(self->gil_reads);
}

static PyObject *
Pump_get_available(Pump *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(__atomic_load_n(&self->available, __ATOMIC_RELAXED));
}

static int
Pump_set_available(Pump *self, PyObject *value, void *Py_UNUSED(closure))
{
    int up = value == NULL ? 0 : PyObject_IsTrue(value);
    if (up < 0)
        return -1;
    __atomic_store_n(&self->available, up, __ATOMIC_RELAXED);
    return 0;
}

static PyGetSetDef Pump_getset[] = {
    {"relayed", (getter)Pump_get_relayed, NULL, "Reads the pump relayed itself.", NULL},
    {"available", (getter)Pump_get_available, (setter)Pump_set_available,
     "Whether the audit store takes statements, as the server last said: while False, every "
     "statement the pump would take asks the recorder with the GIL.",
     NULL},
    {"returned", (getter)Pump_get_returned, NULL, "Times it handed a session back.", NULL},
    {"gil_reads", (getter)Pump_get_gil_reads, NULL,
     "Reads the engine could judge only with the GIL (a first sight, a store said down).",
     NULL},
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
    /* on the recorder's list while watched: the pump files without the GIL */
    if (engine_list(self) < 0)
        return NULL;
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
    if (!self->description_new || self->description_len < 0)
        Py_RETURN_NONE;
    self->description_new = 0;
    return PyBytes_FromStringAndSize(self->description, self->description_len);
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

/* When the statement in flight started (read while the pump may take the next one: then
 * a later start, whose statement's intent is in a segment not yet closed). */
/* Engine.take_done(): the done frame of the last statement the engine filed, not yet in
 * the spool (plaintext bytes), or None; the relay writes it with its own intents. */
static PyObject *
Engine_take_done(Engine *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->done_len)
        Py_RETURN_NONE;
    PyObject *done = PyBytes_FromStringAndSize((const char *)self->done, self->done_len);
    if (done != NULL)
        self->done_len = 0;
    return done;
}

static PyObject *
Engine_get_started(Engine *self, void *Py_UNUSED(closure))
{
    if (!self->inflight)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(self->started);
}

static PyObject *
Engine_get_extended(Engine *self, void *Py_UNUSED(closure))
{
    if (!self->inflight || !self->extended)
        Py_RETURN_NONE;
    return Py_BuildValue("(OiO)", self->described ? Py_True : Py_False, self->result_formats,
                         self->parsed ? Py_True : Py_False);
}

/* The statement the engine's extended round trips left the unnamed portal bound to, once. */
static PyObject *
Engine_take_unnamed(Engine *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->unnamed_new)
        Py_RETURN_NONE;
    PyObject *codes = PyTuple_New(self->unnamed_formats);
    if (codes == NULL)
        return NULL;
    for (int k = 0; k < self->unnamed_formats; k++) {
        PyObject *code = PyLong_FromLong(be16((const unsigned char *)self->bound_codes + 2 * k));
        if (code == NULL) {
            Py_DECREF(codes);
            return NULL;
        }
        PyTuple_SET_ITEM(codes, k, code);
    }
    PyObject *sql = PyUnicode_DecodeUTF8(self->unnamed, self->unnamed_len, "surrogateescape");
    if (sql == NULL) {
        Py_DECREF(codes);
        return NULL;
    }
    self->unnamed_new = 0;
    return Py_BuildValue("(NNy#)", sql, codes, self->bound, self->bound_len);
}

/* Let the engine bind the named statement ``name`` (its text ``sql``), or no longer (None). */
static PyObject *
Engine_prepare(Engine *self, PyObject *args)
{
    const char *name, *text;
    Py_ssize_t name_len, text_len;
    if (!PyArg_ParseTuple(args, "y#z#", &name, &name_len, &text, &text_len))
        return NULL;
    if (self->watched) {
        PyErr_SetString(PyExc_RuntimeError, "the pump watches this engine");
        return NULL;
    }
    if (name_len == 0) {
        PyErr_SetString(PyExc_ValueError, "the unnamed statement has no name to prepare");
        return NULL;
    }
    const Named *there = named_find(self, (const unsigned char *)name, name_len);
    if (there != NULL) { /* forget the one there was */
        Py_ssize_t i = there - self->named;
        free(self->named[i].name);
        free(self->named[i].text);
        free(self->named[i].codes);
        self->named[i] = self->named[--self->nnamed];
    }
    /* Beyond NAMED_MOST names, and for a text longer than any admitted one can be, Binds
     * of the name go through the Python relay. */
    if (text == NULL || self->nnamed >= NAMED_MOST || text_len > MAX_CACHED_LENGTH)
        Py_RETURN_NONE;
    if (grow((void **)&self->named, &self->named_cap, self->nnamed + 1, sizeof(Named)) < 0)
        return PyErr_NoMemory();
    Named s = {malloc(name_len), malloc(text_len ? text_len : 1), NULL, name_len, text_len, 0, -1};
    if (s.name == NULL || s.text == NULL) {
        free(s.name);
        free(s.text);
        return PyErr_NoMemory();
    }
    memcpy(s.name, name, name_len);
    memcpy(s.text, text, text_len);
    self->named[self->nnamed++] = s;
    Py_RETURN_NONE;
}

/* The relay's word that rows of the named statement ``name`` bound with result format codes
 * ``codes`` (2 bytes each, as a Bind sends them) hold ``columns`` values and need no
 * masking; ignored for a name the engine may not bind. */
static PyObject *
Engine_blank_binds(Engine *self, PyObject *args)
{
    const char *name, *codes;
    Py_ssize_t name_len, codes_len;
    int columns;
    if (!PyArg_ParseTuple(args, "y#y#i", &name, &name_len, &codes, &codes_len, &columns))
        return NULL;
    if (self->watched) {
        PyErr_SetString(PyExc_RuntimeError, "the pump watches this engine");
        return NULL;
    }
    if (codes_len % 2 != 0 || codes_len > 2 * 0xffff || columns < 0 || columns > 0xffff) {
        PyErr_SetString(PyExc_ValueError, "codes are 2 bytes each, columns at most 65535");
        return NULL;
    }
    Named *s = (Named *)named_find(self, (const unsigned char *)name, name_len);
    if (s == NULL)
        Py_RETURN_NONE;
    char *copy = malloc(codes_len ? codes_len : 1);
    if (copy == NULL)
        return PyErr_NoMemory();
    memcpy(copy, codes, codes_len);
    free(s->codes);
    s->codes = copy;
    s->codes_len = codes_len;
    s->columns = columns;
    Py_RETURN_NONE;
}

static PyObject *
Engine_forget_prepared(Engine *self, PyObject *Py_UNUSED(ignored))
{
    if (self->watched) {
        PyErr_SetString(PyExc_RuntimeError, "the pump watches this engine");
        return NULL;
    }
    named_forget(self);
    Py_RETURN_NONE;
}

static PyObject *
Engine_get_pending(Engine *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->npyrows + __atomic_load_n(&self->nfast, __ATOMIC_ACQUIRE));
}

static PyObject *
Engine_get_description(Engine *self, void *Py_UNUSED(closure))
{
    if (self->description_len < 0)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(self->description, self->description_len);
}

static PyGetSetDef Engine_getset[] = {
    {"inflight", (getter)Engine_get_inflight, NULL, "A fast-path query awaits its answer.",
     NULL},
    {"pending", (getter)Engine_get_pending, NULL, "Records filed and not yet drained.", NULL},
    {"started", (getter)Engine_get_started, NULL,
     "When the fast-path query in flight started (time.time()), else None.", NULL},
    {"extended", (getter)Engine_get_extended, NULL,
     "None, or for an extended round trip in flight (whether it described its portal, the "
     "number of result format codes its Bind sent, whether it parsed the unnamed statement "
     "rather than bound a named one).",
     NULL},
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
     "Take a client read that is one admitted simple Query, or one extended round trip of "
     "an admitted statement (Parse, Bind, Describe, Execute, Sync); True when taken."},
    {"take_unnamed", (PyCFunction)Engine_take_unnamed, METH_NOARGS,
     "(sql, result format codes (a tuple), statement name) of the statement the engine's "
     "extended round trips left the unnamed portal bound to (name b'': the unnamed statement, which "
     "they parsed), once; None when none since."},
    {"prepare", (PyCFunction)Engine_prepare, METH_VARARGS,
     "prepare(name, sql): the engine may bind the named statement ``name`` of text ``sql`` "
     "(bytes) in a round trip it takes; sql None: no longer."},
    {"blank_binds", (PyCFunction)Engine_blank_binds, METH_VARARGS,
     "blank_binds(name, codes, columns): rows of the named statement bound with these result "
     "format codes (bytes, 2 each) hold ``columns`` values and need no masking."},
    {"forget_prepared", (PyCFunction)Engine_forget_prepared, METH_NOARGS,
     "The engine binds no named statement any more (DEALLOCATE ALL, DISCARD ALL)."},
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
    {"take_done", (PyCFunction)Engine_take_done, METH_NOARGS,
     "The spool's done frame of the last statement filed here, not yet written, or None."},
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
        PyType_Ready(&PumpType) < 0 || PyType_Ready(&SpoolType) < 0)
        return NULL;
    S_ALLOW = PyUnicode_InternFromString("allow");
    S_OK = PyUnicode_InternFromString("ok");
    S_ERROR = PyUnicode_InternFromString("error");
    S_AVAILABLE = PyUnicode_InternFromString("available");
    if (!S_ALLOW || !S_OK || !S_ERROR || !S_AVAILABLE)
        return NULL;
    PyObject *module = PyModule_Create(&fastpath_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&StatsType);
    Py_INCREF(&EngineType);
    Py_INCREF(&PumpType);
    Py_INCREF(&SpoolType);
    if (PyModule_AddObject(module, "Stats", (PyObject *)&StatsType) < 0 ||
        PyModule_AddObject(module, "Engine", (PyObject *)&EngineType) < 0 ||
        PyModule_AddObject(module, "Pump", (PyObject *)&PumpType) < 0 ||
        PyModule_AddObject(module, "Spool", (PyObject *)&SpoolType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
