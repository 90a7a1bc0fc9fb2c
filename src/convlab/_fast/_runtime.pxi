# Included by every kernel module with SIMD (conv, pool, bn_act): which SIMD
# path its kernels take, how it was compiled, and the choice at import.
#
# Each module keeps its own copy of the chosen path (a C global of simd.h);
# convlab._fast.choose_simd_path applies the same rule (CONVLAB_SIMD, else
# the fastest path the CPU runs) to all of them.

cdef extern from "simd.h":
    int CONVLAB_PATH_PLAIN
    int CONVLAB_PATH_PORTABLE
    int CONVLAB_PATH_AVX2
    int CONVLAB_PATH_AVX512
    int convlab_simd_path
    int convlab_simd_path_available(int path) noexcept nogil
    const char *convlab_compiler
    const int convlab_avx512_on_avx2

cdef extern from "omp_compat.h":
    int CONVLAB_OPENMP
    int omp_get_max_threads() noexcept nogil
    void convlab_mark_forked_child() noexcept nogil

import os

from convlab._fast import SIMD_PATHS, choose_simd_path

_PATH_CODES = {"avx512": CONVLAB_PATH_AVX512, "avx2": CONVLAB_PATH_AVX2,
               "portable": CONVLAB_PATH_PORTABLE, "plain": CONVLAB_PATH_PLAIN}


def simd_paths():
    """The SIMD paths this module's kernels can take on this CPU, fastest first.

    Returns
    -------
    list of str
        A subset of ``("avx512", "avx2", "portable", "plain")``; "portable"
        and "plain" are always there.
    """
    return [name for name in SIMD_PATHS if convlab_simd_path_available(_PATH_CODES[name])]


def simd_path():
    """The SIMD path this module's kernels take now ("avx512", "avx2", "portable" or "plain")."""
    for name, code in _PATH_CODES.items():
        if code == convlab_simd_path:
            return name


def set_simd_path(name):
    """Make this module's kernels take the SIMD path ``name`` from now on.

    For tests and benchmarks: not while another thread runs a kernel.
    Raises ValueError if ``name`` is not a path or this CPU cannot run it.
    """
    global convlab_simd_path
    if name not in _PATH_CODES:
        raise ValueError(f"set_simd_path: unknown SIMD path {name!r}; "
                         f"choose one of {', '.join(SIMD_PATHS)}")
    if not convlab_simd_path_available(_PATH_CODES[name]):
        raise ValueError(f"set_simd_path: this CPU cannot run the {name!r} kernels; "
                         f"it can run {', '.join(simd_paths())}")
    convlab_simd_path = _PATH_CODES[name]


def compiled_with():
    """How this module was compiled.

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
    return {"compiler": convlab_compiler.decode(), "openmp": CONVLAB_OPENMP,
            "max_threads": omp_get_max_threads(),
            "avx512_on_avx2": bool(convlab_avx512_on_avx2)}


def _one_thread_after_fork():
    """Run this module's kernels on one thread from now on (called in a forked child)."""
    convlab_mark_forked_child()


set_simd_path(choose_simd_path(simd_paths()))
if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork()
    os.register_at_fork(after_in_child=_one_thread_after_fork)
