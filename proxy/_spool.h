/* The audit spool's writer (proxy/_spool.c), as the engine (proxy/_fastpath.c) uses it. */
#ifndef JITGATE_SPOOL_H
#define JITGATE_SPOOL_H

#include <Python.h>
#include <pthread.h>
#include <stdint.h>

typedef struct Spool {
    PyObject_HEAD
    pthread_mutex_t lock; /* held for a frame's counter and copy: frames never interleave */
    int ready;            /* the lock is initialised */
    int fd;               /* the current segment, -1: none */
    uint8_t *map;         /* the segment, mapped shared; NULL: none */
    Py_ssize_t size, used;
    uint32_t key[8];
    uint8_t prefix[4];
    uint64_t counter;
    long long frames; /* appended to the current segment */
} Spool;

extern PyTypeObject SpoolType;

/* The most a done frame's plaintext takes. */
#define DONE_MAX (41 + 3 * 256)

/* A done frame's plaintext at ``out``: how the statement that started at ``started_us``
 * ended (outcome "ok" or "error", a command tag and SQLSTATE of the given lengths, -1 for
 * none); its length. */
Py_ssize_t spool_done(uint8_t out[DONE_MAX], const uint8_t session[16], long long started_us,
                      long long duration_us, long long rows, const char *outcome,
                      const char *tag, int tag_len, const char *state, int state_len);

/* Append a done frame (``done_len`` 0: none) and an intent frame, no GIL needed: 0, or -1
 * when the spool cannot take them (errno ENOBUFS: the segment is full). */
int spool_intent(Spool *s, const uint8_t session[16], long long started_us, const char *text,
                 Py_ssize_t n, const uint8_t *done, Py_ssize_t done_len);

#endif
