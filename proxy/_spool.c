/* The audit spool's writer: statements go to a local file before they go to the target.
 *
 * Every statement the relay forwards (the native fast path's here, without the GIL; the
 * Python relay's through Spool.write) is first appended to the current segment as an
 * "intent" frame: which session, when it started (microseconds since the epoch, the same
 * value its audit record will carry) and its SQL text. The segment is a file whose blocks
 * are reserved (audit/spool.py allocates it) and mapped shared: a frame copied into the
 * mapping is in the kernel's page cache at once, with no system call, so it outlives a kill
 * -9 at any moment, and the statement goes to the target only after it is there. No
 * fsync: the spool guards against the process dying, not the machine. Each append writes
 * the length word of its first frame last: a process killed mid-copy leaves a zero length
 * where the reader stops, never half a frame. A segment too full for an append refuses it
 * (ENOBUFS) until Spool.swap gives a new one.
 *
 * SQL texts may quote sensitive values, so frames are encrypted with ChaCha20 (RFC 8439)
 * under a key the gateway keeps in its store, never on the spool's disk. A frame on disk:
 * u32 LE length of what follows, 12-byte nonce (the spool's 4-byte prefix and a 64-bit LE
 * counter), ciphertext of a plaintext frame as audit/spool.py describes them (an intent;
 * a "done" frame with how a statement ended, written with the session's next intent).
 * audit/spool.py reads frames with the ``cryptography`` package, which holds this cipher
 * to the reference one.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "_spool.h"

#define ROTL(a, b) (((a) << (b)) | ((a) >> (32 - (b))))
#define QR(a, b, c, d)                                                                      \
    (a += b, d ^= a, d = ROTL(d, 16), c += d, b ^= c, b = ROTL(b, 12), a += b, d ^= a,      \
     d = ROTL(d, 8), c += d, b ^= c, b = ROTL(b, 7))

static uint32_t
le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void
put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void
put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

/* XOR ``n`` bytes at ``p`` with ChaCha20's key stream for ``key``/``nonce``, block 0 on. */
static void
chacha20_xor(const uint32_t key[8], const uint8_t nonce[12], uint8_t *p, Py_ssize_t n)
{
    uint32_t in[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};
    memcpy(in + 4, key, 32);
    in[12] = 0;
    in[13] = le32(nonce);
    in[14] = le32(nonce + 4);
    in[15] = le32(nonce + 8);
    for (Py_ssize_t at = 0; at < n; at += 64, in[12]++) {
        uint32_t x[16];
        memcpy(x, in, sizeof x);
        for (int i = 0; i < 10; i++) {
            QR(x[0], x[4], x[8], x[12]);
            QR(x[1], x[5], x[9], x[13]);
            QR(x[2], x[6], x[10], x[14]);
            QR(x[3], x[7], x[11], x[15]);
            QR(x[0], x[5], x[10], x[15]);
            QR(x[1], x[6], x[11], x[12]);
            QR(x[2], x[7], x[8], x[13]);
            QR(x[3], x[4], x[9], x[14]);
        }
        uint8_t stream[64];
        for (int i = 0; i < 16; i++)
            put_le32(stream + 4 * i, x[i] + in[i]);
        Py_ssize_t take = n - at < 64 ? n - at : 64;
        for (Py_ssize_t i = 0; i < take; i++)
            p[at + i] ^= stream[i];
    }
}

#define FRAME_HEAD 16 /* length and nonce */
#define INTENT_HEAD (1 + 16 + 8 + 4)

/* A frame's size in the segment: frames start on 4-byte boundaries (zeros between). */
static Py_ssize_t
padded(Py_ssize_t n)
{
    return (n + 3) & ~(Py_ssize_t)3;
}

/* Seal the ``n`` plaintext bytes at ``out + FRAME_HEAD`` into a frame (the lock held). */
static void
seal(Spool *s, uint8_t *out, Py_ssize_t n)
{
    put_le32(out, (uint32_t)(12 + n));
    memcpy(out + 4, s->prefix, 4);
    put_le64(out + 8, ++s->counter);
    chacha20_xor(s->key, out + 4, out + FRAME_HEAD, n);
}

/* Append the sealed frames ``p[:n]`` to the segment (the lock held): 0, or -1 with errno
 * ENOBUFS (the segment is full) or EBADF (there is none). */
static int
append(Spool *s, const uint8_t *p, Py_ssize_t n)
{
    if (s->map == NULL) {
        errno = EBADF;
        return -1;
    }
    if (n > s->size - s->used) {
        errno = ENOBUFS;
        return -1;
    }
    uint8_t *at = s->map + s->used;
    memcpy(at + 4, p + 4, (size_t)n - 4);
    uint32_t length;
    memcpy(&length, p, 4);
    __atomic_store_n((uint32_t *)at, length, __ATOMIC_RELEASE); /* aligned: frames are */
    s->used += n;
    return 0;
}

static uint8_t *
put_short(uint8_t *p, const char *s, int n)
{
    n = n < 0 ? 0 : n > 255 ? 255 : n;
    *p++ = (uint8_t)n;
    memcpy(p, s, n);
    return p + n;
}

Py_ssize_t
spool_done(uint8_t out[DONE_MAX], const uint8_t session[16], long long started_us,
           long long duration_us, long long rows, const char *outcome, const char *tag,
           int tag_len, const char *state, int state_len)
{
    out[0] = 'D';
    memcpy(out + 1, session, 16);
    put_le64(out + 17, (uint64_t)started_us);
    put_le64(out + 25, (uint64_t)duration_us);
    put_le64(out + 33, (uint64_t)rows);
    uint8_t *p = put_short(out + 41, outcome, (int)strlen(outcome));
    p = put_short(p, tag, tag_len);
    p = put_short(p, state, state_len);
    return p - out;
}

int
spool_intent(Spool *s, const uint8_t session[16], long long started_us, const char *text,
             Py_ssize_t n, const uint8_t *done, Py_ssize_t done_len)
{
    uint8_t local[2 * FRAME_HEAD + DONE_MAX + INTENT_HEAD + 8192 + 8];
    Py_ssize_t done_size = done_len ? padded(FRAME_HEAD + done_len) : 0;
    Py_ssize_t size = done_size + padded(FRAME_HEAD + INTENT_HEAD + n);
    uint8_t *frames = size <= (Py_ssize_t)sizeof local ? local : malloc((size_t)size);
    if (frames == NULL)
        return -1;
    memset(frames, 0, (size_t)size);
    if (done_len)
        memcpy(frames + FRAME_HEAD, done, done_len);
    uint8_t *plain = frames + done_size + FRAME_HEAD;
    plain[0] = 'I';
    memcpy(plain + 1, session, 16);
    put_le64(plain + 17, (uint64_t)started_us);
    put_le32(plain + 25, (uint32_t)n);
    memcpy(plain + INTENT_HEAD, text, n);
    pthread_mutex_lock(&s->lock);
    if (done_len)
        seal(s, frames, done_len);
    seal(s, frames + done_size, INTENT_HEAD + n);
    int rc = append(s, frames, size);
    if (rc == 0)
        s->frames += done_len ? 2 : 1;
    pthread_mutex_unlock(&s->lock);
    if (frames != local)
        free(frames);
    return rc;
}

static int
Spool_init(Spool *self, PyObject *args, PyObject *kwds)
{
    Py_buffer key, prefix;
    static char *kwlist[] = {"key", "prefix", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*", kwlist, &key, &prefix))
        return -1;
    int ok = key.len == 32 && prefix.len == 4;
    if (ok) {
        for (int i = 0; i < 8; i++)
            self->key[i] = le32((const uint8_t *)key.buf + 4 * i);
        memcpy(self->prefix, prefix.buf, 4);
    }
    PyBuffer_Release(&key);
    PyBuffer_Release(&prefix);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "a spool takes a 32-byte key and a 4-byte prefix");
        return -1;
    }
    if (self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "a spool is initialised once");
        return -1;
    }
    pthread_mutex_init(&self->lock, NULL);
    self->ready = 1;
    self->fd = -1;
    return 0;
}

static void
Spool_dealloc(Spool *self)
{
    if (self->ready)
        pthread_mutex_destroy(&self->lock);
    if (self->map != NULL)
        munmap(self->map, (size_t)self->size);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Spool.write(plains): seal each plaintext frame (bytes, built by audit/spool.py) and
 * append them all at once. */
static PyObject *
Spool_write(Spool *self, PyObject *plains)
{
    if (!PyList_Check(plains)) {
        PyErr_SetString(PyExc_TypeError, "write takes a list of plaintext frames");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(plains), size = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *plain = PyList_GET_ITEM(plains, i);
        if (!PyBytes_Check(plain)) {
            PyErr_SetString(PyExc_TypeError, "a plaintext frame is bytes");
            return NULL;
        }
        size += padded(FRAME_HEAD + PyBytes_GET_SIZE(plain));
    }
    if (count == 0)
        Py_RETURN_NONE;
    uint8_t *frames = PyMem_Calloc((size_t)size, 1);
    if (frames == NULL)
        return PyErr_NoMemory();
    uint8_t *at = frames;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *plain = PyList_GET_ITEM(plains, i);
        memcpy(at + FRAME_HEAD, PyBytes_AS_STRING(plain), PyBytes_GET_SIZE(plain));
        at += padded(FRAME_HEAD + PyBytes_GET_SIZE(plain));
    }
    int rc, error;
    Py_BEGIN_ALLOW_THREADS;
    pthread_mutex_lock(&self->lock);
    at = frames;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t n = PyBytes_GET_SIZE(PyList_GET_ITEM(plains, i));
        seal(self, at, n);
        at += padded(FRAME_HEAD + n);
    }
    rc = append(self, frames, size);
    error = errno;
    if (rc == 0)
        self->frames += count;
    pthread_mutex_unlock(&self->lock);
    Py_END_ALLOW_THREADS;
    PyMem_Free(frames);
    if (rc < 0) {
        errno = error;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

/* Spool.swap(fd, size): append to the segment ``fd`` (``size`` bytes, allocated) from now
 * on, mapped; -1 for none. The previous segment's fd, to close. */
static PyObject *
Spool_swap(Spool *self, PyObject *args)
{
    int fd;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "in", &fd, &size))
        return NULL;
    uint8_t *map = NULL;
    if (fd >= 0) {
        if (size < 64 || size % 4) {
            PyErr_SetString(PyExc_ValueError, "a segment is at least 64 bytes, a multiple of 4");
            return NULL;
        }
        map = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
            return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_BEGIN_ALLOW_THREADS;
    pthread_mutex_lock(&self->lock);
    Py_END_ALLOW_THREADS;
    int old = self->fd;
    uint8_t *old_map = self->map;
    Py_ssize_t old_size = self->size;
    self->fd = fd;
    self->map = map;
    self->size = map != NULL ? size : 0;
    self->used = 0;
    self->frames = 0;
    pthread_mutex_unlock(&self->lock);
    if (old_map != NULL)
        munmap(old_map, (size_t)old_size);
    return PyLong_FromLong(old);
}

static PyObject *
Spool_get_frames(Spool *self, void *closure)
{
    return PyLong_FromLongLong(self->frames);
}

static PyObject *
Spool_get_used(Spool *self, void *closure)
{
    return PyLong_FromSsize_t(self->used);
}

static PyMethodDef Spool_methods[] = {
    {"write", (PyCFunction)Spool_write, METH_O,
     "write(plains): seal the plaintext frames and append them at once; OSError ENOBUFS "
     "when the segment is full, EBADF when there is none."},
    {"swap", (PyCFunction)Spool_swap, METH_VARARGS,
     "swap(fd, size): append to the allocated segment fd from now on; the previous fd."},
    {NULL},
};

static PyGetSetDef Spool_getset[] = {
    {"frames", (getter)Spool_get_frames, NULL, "frames written to the current segment", NULL},
    {"used", (getter)Spool_get_used, NULL, "bytes of the current segment in use", NULL},
    {NULL},
};

PyTypeObject SpoolType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "proxy._fastpath.Spool",
    .tp_basicsize = sizeof(Spool),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The audit spool's segment writer (see audit/spool.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Spool_init,
    .tp_dealloc = (destructor)Spool_dealloc,
    .tp_methods = Spool_methods,
    .tp_getset = Spool_getset,
};
