"""Reusing large array buffers from one training step to the next.

A training step allocates the same large arrays every time -- layer
outputs, caches, gradients -- and frees them before the next step.  The C
library hands blocks of more than a few hundred KiB back to the operating
system at once, so each step pays again for mapping them: one page fault
per 4 KiB page, in which the kernel zeroes the page.  For the book's small
network that was a sixth of a step.

:func:`reuse_buffers` keeps such blocks instead: inside it, new NumPy
arrays take their memory from a cache of freed buffers
(:mod:`convlab._fast.buffers`, a NumPy memory handler), which holds at most
a limit of bytes (2 GiB unless :func:`set_buffer_cache_limit` says
otherwise).  The models of :mod:`convlab.classifiers` that run on the fast
layers compute their ``loss`` inside it.  Values are unaffected: only where
the memory comes from changes (and ``np.empty`` may hold old numbers rather
than zeros, as it may anyway).
"""

from convlab._fast import buffers as _buffers

__all__ = ["reuse_buffers", "release_buffers", "buffer_cache_stats", "set_buffer_cache_limit"]


def reuse_buffers():
    """A context manager: arrays created inside take memory from the buffer cache.

    Nested uses are fine; leaving restores the allocator in force before.
    The arrays stay valid after the block and return their memory to the
    cache whenever they are freed.  Each thread (each context) has its own
    allocator setting, so another thread's arrays are not affected.

    Examples
    --------
    >>> with reuse_buffers():
    ...     loss, grads = model.loss(X, y)        # doctest: +SKIP
    """
    return _buffers.reuse()


def release_buffers():
    """Give every cached buffer back to the operating system.

    Returns
    -------
    int
        The bytes freed.
    """
    return _buffers.release()


def buffer_cache_stats():
    """What the buffer cache holds and has done.

    Returns
    -------
    dict
        ``cached_bytes``, ``cached_blocks`` (held now), ``hits`` and
        ``misses`` (large requests served from the cache, or freshly
        allocated), ``limit`` (bytes).
    """
    return _buffers.stats()


def set_buffer_cache_limit(nbytes):
    """Let the cache hold at most ``nbytes`` (0: keep nothing); frees the excess at once.

    Raises
    ------
    ValueError
        If ``nbytes`` is not a non-negative int.
    """
    _buffers.set_limit(nbytes)
