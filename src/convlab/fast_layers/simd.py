"""Which SIMD path the fast kernels take, and how they were built.

Every vectorised kernel of :mod:`convlab._fast` exists as plain C loops, as
portable vector code (SSE2 on x86-64, NEON on arm64) and, on x86-64, as an
AVX2 + FMA version (the convolution's products also as AVX-512). Which one
runs is decided the first time a fast layer runs: the one the environment
variable ``CONVLAB_SIMD`` names, else the fastest by a short measurement
cached per CPU (:mod:`convlab.fast_layers.calibration`), else, with
``CONVLAB_CALIBRATE=0``, the widest path this CPU runs; :func:`set_simd_path`
changes it and :func:`build_info` reports it. All three are also
:mod:`convlab.fast_layers`'s own. The path is one state for every kernel
module, kept by :mod:`convlab._fast._runtime`.
"""

import platform

from convlab._fast import _runtime
from convlab.fast_layers import calibration

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

    The path chosen at first use (``CONVLAB_SIMD``, else calibration, see
    :mod:`convlab.fast_layers.calibration`) is replaced for the rest of the
    process, and no later calibration overrides it (for tests and
    benchmarks; not while another thread runs a kernel).

    Raises
    ------
    ValueError
        If ``name`` is not a SIMD path this CPU can run.
    """
    _runtime.set_simd_path(name)
    calibration._path_set_explicitly(name)


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
        test build whose "avx512" kernels are compiled for AVX2); and
        ``simd_choice``, how the path was chosen
        (:func:`convlab.fast_layers.calibration.simd_choice`: forced,
        calibrated, cached, ..., with the measured times and the cache file).
        Asking decides the path if no fast layer has run yet, so that what
        is reported is what the kernels run.
    """
    choice = calibration.simd_choice()
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
        "simd_choice": choice,
    }
