# cython: language_level=3
"""A NumPy memory handler that reuses large freed buffers (``buffer_cache.h``).

NumPy lets a program choose, per context (thread, task), the functions that
allocate array data: a *memory handler*, set with ``PyDataMem_SetHandler``
(NEP 49).  Every array remembers the handler that allocated it and is freed
through it, wherever it is freed.  :func:`reuse` installs this module's
handler for the arrays created inside a ``with`` block; its blocks go back
to one cache shared by all threads, up to :func:`limit` bytes, and the next
array of about the same size gets one of them instead of fresh pages.

:func:`convlab.fast_layers.reuse_buffers` is the public name of :func:`reuse`.
"""

import contextlib
import os

cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_New
from cpython.pythread cimport (PyThread_acquire_lock, PyThread_allocate_lock, PyThread_release_lock,
                               PyThread_type_lock, WAIT_LOCK)
from libc.stdint cimport uint8_t
from libc.string cimport strncpy

cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    ctypedef struct PyDataMemAllocator:
        void *ctx
        void *(*malloc)(void *ctx, size_t size) noexcept nogil
        void *(*calloc)(void *ctx, size_t nelem, size_t elsize) noexcept nogil
        void *(*realloc)(void *ctx, void *ptr, size_t new_size) noexcept nogil
        void (*free)(void *ctx, void *ptr, size_t size) noexcept nogil

    ctypedef struct PyDataMem_Handler:
        char name[127]
        uint8_t version
        PyDataMemAllocator allocator

    object PyDataMem_SetHandler(object handler)

cdef extern from "buffer_cache.h":
    ctypedef struct convlab_buffer_cache:
        void *lock
        void (*acquire)(void *lock) noexcept nogil
        void (*release)(void *lock) noexcept nogil
        int count
        size_t cached_bytes
        size_t limit_bytes
        long long hits, misses

    size_t CONVLAB_BUFFER_MIN_CACHED
    void *convlab_cache_malloc(void *ctx, size_t size) noexcept nogil
    void *convlab_cache_calloc(void *ctx, size_t nelem, size_t elsize) noexcept nogil
    void *convlab_cache_realloc(void *ctx, void *ptr, size_t new_size) noexcept nogil
    void convlab_cache_free(void *ctx, void *ptr, size_t size) noexcept nogil
    size_t convlab_cache_clear(convlab_buffer_cache *c) noexcept nogil

#: The bytes the cache holds at most unless :func:`set_limit` says otherwise.
DEFAULT_LIMIT = 2 * 1024 ** 3
#: Buffers smaller than this are never cached (malloc serves them well).
MIN_CACHED = CONVLAB_BUFFER_MIN_CACHED


cdef void _acquire(void *lock) noexcept nogil:
    PyThread_acquire_lock(<PyThread_type_lock>lock, WAIT_LOCK)


cdef void _release(void *lock) noexcept nogil:
    PyThread_release_lock(<PyThread_type_lock>lock)


cdef convlab_buffer_cache _cache
cdef PyDataMem_Handler _handler


cdef int _new_lock() except -1:
    _cache.lock = <void *>PyThread_allocate_lock()
    if _cache.lock == NULL:
        raise MemoryError("convlab._fast.buffers: cannot allocate a lock")
    return 0


_new_lock()
_cache.acquire = _acquire
_cache.release = _release
_cache.count = 0
_cache.cached_bytes = 0
_cache.limit_bytes = DEFAULT_LIMIT
_cache.hits = 0
_cache.misses = 0

strncpy(_handler.name, b"convlab_buffer_cache", 127)
_handler.version = 1
_handler.allocator.ctx = &_cache
_handler.allocator.malloc = convlab_cache_malloc
_handler.allocator.calloc = convlab_cache_calloc
_handler.allocator.realloc = convlab_cache_realloc
_handler.allocator.free = convlab_cache_free

_capsule = PyCapsule_New(&_handler, "mem_handler", NULL)
HANDLER_NAME = "convlab_buffer_cache"


def _after_fork_in_child():
    # The lock may have been held by a thread that the child does not have.
    _new_lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def reuse():
    """Inside the block, new NumPy arrays take their memory from the buffer cache.

    Nested blocks are fine; leaving one restores the handler that was in
    force before it.  Arrays keep working after the block (they are freed
    into the cache whenever they are freed).
    """
    previous = PyDataMem_SetHandler(_capsule)
    try:
        yield
    finally:
        PyDataMem_SetHandler(previous)


def limit():
    """The bytes the cache may hold (``int``)."""
    return int(_cache.limit_bytes)


def set_limit(nbytes):
    """Hold at most ``nbytes`` of freed buffers (0: cache nothing); frees the excess now.

    Raises
    ------
    ValueError
        If ``nbytes`` is negative or not an integer.
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"set_limit: nbytes must be a non-negative int, got {nbytes!r}")
    _cache.limit_bytes = nbytes
    if <size_t>_cache.cached_bytes > <size_t>nbytes:
        release()


def release():
    """Give every cached buffer back to the C library; returns the bytes freed (``int``)."""
    return int(convlab_cache_clear(&_cache))


def stats():
    """What the cache holds and did: a dict.

    Returns
    -------
    dict
        ``cached_bytes`` and ``cached_blocks`` (held now), ``hits`` (large
        requests served from the cache), ``misses`` (large requests that
        had to allocate), ``limit`` (:func:`limit`).
    """
    return {"cached_bytes": int(_cache.cached_bytes), "cached_blocks": int(_cache.count),
            "hits": int(_cache.hits), "misses": int(_cache.misses),
            "limit": int(_cache.limit_bytes)}
