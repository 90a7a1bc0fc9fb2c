"""Which SIMD path the fast kernels take, and how they were built.

Every vectorised kernel of :mod:`convlab._fast` exists as plain C loops, as
portable vector code (SSE2 on x86-64, NEON on arm64) and, on x86-64, as an
AVX2 + FMA version (the convolution's products also as AVX-512). The fastest
path this CPU runs is chosen when the kernels are imported, or the one the
environment variable ``CONVLAB_SIMD`` names; :func:`set_simd_path` changes it
and :func:`build_info` reports it. All three are also
:mod:`convlab.fast_layers`'s own. The path is one state for every kernel
module, kept by :mod:`convlab._fast._runtime`.
"""

import platform

from convlab._fast import _runtime

__all__ = ["simd_paths", "set_simd_path", "build_info"]


def simd_paths():
    """The SIMD paths the kernels can take on this CPU, fastest first.

    Returns
    -------
    list of str
        Some of ``"avx512"`` (AVX-512F for the convolution's products on
        wider tiles, AVX2 for the rest; x86-64 with GCC or Clang only),
        ``"avx2"`` (AVX2 + FMA, x86-64 only), ``"portable"`` (the
        vector code every CPU of the architecture runs: SSE2 on x86-64, NEON
        on arm64) and ``"plain"`` (plain C loops, the readable reference).
    """
    return _runtime.simd_paths()


def set_simd_path(name):
    """Make every kernel take the SIMD path ``name`` (one of :func:`simd_paths`).

    The choice at import is the fastest path, or the one the environment
    variable ``CONVLAB_SIMD`` names; this changes it for the rest of the
    process (for tests and benchmarks; not while another thread runs a
    kernel).

    Raises
    ------
    ValueError
        If ``name`` is not a SIMD path this CPU can run.
    """
    _runtime.set_simd_path(name)


def build_info():
    """How the fast kernels were built and how they run here.

    Returns
    -------
    dict
        ``machine`` (the CPU architecture), ``simd_path`` (the path the
        kernels take now), ``simd_paths`` (all this CPU can run), ``openmp``
        (whether the kernels were compiled with OpenMP), ``openmp_version``
        (as ``yyyymm``, 0 without OpenMP), ``threads`` (how many a parallel
        kernel may use: ``OMP_NUM_THREADS`` or the number of cores, 1 without
        OpenMP), ``compiler`` and ``avx512_on_avx2`` (True only for the
        test build whose "avx512" kernels are compiled for AVX2).
    """
    compiled = _runtime.compiled_with()
    return {
        "machine": platform.machine(),
        "simd_path": _runtime.simd_path(),
        "simd_paths": simd_paths(),
        "openmp": compiled["openmp"] > 0,
        "openmp_version": compiled["openmp"],
        "threads": compiled["max_threads"],
        "compiler": compiled["compiler"],
        "avx512_on_avx2": compiled["avx512_on_avx2"],
    }
