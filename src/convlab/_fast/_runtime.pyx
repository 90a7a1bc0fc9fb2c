# cython: language_level=3
"""The kernels' run-time state, one copy for all kernel modules: the SIMD path and the fork flag.

Each kernel module (conv, winograd, pool, bn_act, im2col) is a shared library
of its own that compiles the C headers itself, so a global in a header would
be one copy per module.  The state lives here instead, in two ints:

* the SIMD path the kernels take (``simd.h``): chosen at import by
  :func:`convlab._fast.choose_simd_path` (``CONVLAB_SIMD``, else the fastest
  path this CPU runs) and changed by :func:`set_simd_path`;
* whether this process is a child made by ``fork()``, in which the kernels
  run on one thread (``omp_compat.h``): set by a hook registered with
  ``os.register_at_fork``.

Every kernel module points its headers at these ints when it is imported
(``share_runtime_state`` in ``_runtime.pxd``), so a path set here reaches
every kernel at once.
"""

import os

from convlab._fast import SIMD_PATHS, choose_simd_path

from convlab._fast.omp_compat cimport CONVLAB_OPENMP, omp_get_max_threads
from convlab._fast.simd cimport (CONVLAB_AVX512_ON_AVX2_BUILD, CONVLAB_COMPILER, CONVLAB_PATH_AVX2,
                                 CONVLAB_PATH_AVX512, CONVLAB_PATH_PLAIN, CONVLAB_PATH_PORTABLE,
                                 convlab_simd_path_available)

cdef int current_path = CONVLAB_PATH_PLAIN
cdef int in_forked_child = 0

_PATH_CODES = {"avx512": CONVLAB_PATH_AVX512, "avx2": CONVLAB_PATH_AVX2,
               "portable": CONVLAB_PATH_PORTABLE, "plain": CONVLAB_PATH_PLAIN}


cdef const int *simd_path_state() noexcept nogil:
    """The SIMD path of every kernel module (a ``CONVLAB_PATH_*`` code)."""
    return &current_path


cdef const int *forked_child_state() noexcept nogil:
    """1 in a child process made by ``fork()``, else 0."""
    return &in_forked_child


def simd_paths():
    """The SIMD paths the kernels can take on this CPU, fastest first.

    Returns
    -------
    list of str
        A subset of ``("avx512", "avx2", "portable", "plain")``; "portable"
        and "plain" are always there.
    """
    return [name for name in SIMD_PATHS if convlab_simd_path_available(_PATH_CODES[name])]


def simd_path():
    """The SIMD path the kernels take now ("avx512", "avx2", "portable" or "plain")."""
    for name, code in _PATH_CODES.items():
        if code == current_path:
            return name


def set_simd_path(name):
    """Make every kernel take the SIMD path ``name`` from now on.

    For tests and benchmarks: not while another thread runs a kernel.
    Raises ValueError if ``name`` is not a path or this CPU cannot run it.
    """
    global current_path
    if name not in _PATH_CODES:
        raise ValueError(f"set_simd_path: unknown SIMD path {name!r}; "
                         f"choose one of {', '.join(SIMD_PATHS)}")
    if not convlab_simd_path_available(_PATH_CODES[name]):
        raise ValueError(f"set_simd_path: this CPU cannot run the {name!r} kernels; "
                         f"it can run {', '.join(simd_paths())}")
    current_path = _PATH_CODES[name]


def compiled_with():
    """How the kernel modules were compiled (all alike, by ``setup.py``).

    Returns
    -------
    dict
        ``compiler`` (name and version), ``openmp`` (the OpenMP version as
        ``yyyymm``, or 0 for a build without OpenMP), ``max_threads``
        (the threads a parallel kernel may use: ``OMP_NUM_THREADS`` or the
        number of cores; 1 without OpenMP) and ``avx512_on_avx2`` (True
        for the test build whose "avx512" kernels are compiled for AVX2,
        see simd.h).
    """
    return {"compiler": CONVLAB_COMPILER.decode(), "openmp": CONVLAB_OPENMP,
            "max_threads": omp_get_max_threads(),
            "avx512_on_avx2": bool(CONVLAB_AVX512_ON_AVX2_BUILD)}


def _one_thread_after_fork():
    """Run every kernel on one thread from now on (called in a forked child)."""
    global in_forked_child
    in_forked_child = 1


set_simd_path(choose_simd_path(simd_paths()))
if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork()
    os.register_at_fork(after_in_child=_one_thread_after_fork)
