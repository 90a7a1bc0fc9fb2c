"""Compiled kernels (Cython and C) behind :mod:`convlab.fast_layers`, and their SIMD path.

Every kernel with SIMD has a plain C version, a portable vector version
(SSE2 on x86-64, NEON on arm64) and, on x86-64, an AVX2 + FMA version; the
convolution's micro-kernels also have an AVX-512 version.  At import the
kernels take the widest path the CPU can run (CPUID's choice);
:mod:`convlab.fast_layers.calibration` replaces it by the fastest one,
measured, when the first fast layer runs.  The environment variable
``CONVLAB_SIMD`` overrides both:

=============  ==============================================================
``auto``       the widest path this CPU runs, then the calibrated one (the
               default, also when unset)
``avx512``     AVX-512F for the convolution's products (AVX2 for the rest);
               an error on a CPU without it
``avx2``       AVX2 + FMA; an error on a CPU without them
``portable``   the portable vector code (also ``0``): what any CPU of the
               architecture runs
``plain``      the plain C loops, the readable reference
=============  ==============================================================

The choice is one state for all the kernel modules, kept by
:mod:`convlab._fast._runtime` (with the flag that makes a forked child run
on one thread), and :func:`convlab.fast_layers.set_simd_path` changes it.

The files: a Cython module per kernel (``conv.pyx``, ``winograd.pyx``,
``pool.pyx``, ``bn_act.pyx``, ``im2col.pyx``); the C it calls in headers
(``*_kernels.h``, one function per SIMD path and a dispatcher, with the
dispatch macro and the CPU checks in ``simd.h`` and OpenMP's stand-in in
``omp_compat.h``), each declared to Cython once, in the ``.pxd`` of the same
name; the thread count policy in ``_threads.pxd``; ``_runtime``; and
``buffers`` (with ``buffer_cache.h``), the NumPy memory handler that keeps
large freed arrays for the next training step.
"""

import os

# Idle OpenMP threads sleep instead of spinning.  Between two parallel loops
# an OpenMP runtime keeps its idle threads spinning, by default, so that the
# next loop starts a few microseconds sooner; on a machine busy with other
# programs the spinning threads take the cores that the working ones need,
# and a training step of the book's network took 1.5 to 2 times as long as
# with sleeping threads (on a quiet machine the two were within the noise).
# The runtime reads this variable once, when it is loaded -- with the first
# kernel module, just after this file -- so it is set here, unless the user
# has chosen a policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SIMD_PATHS = ("avx512", "avx2", "portable", "plain")
_ALIASES = {"0": "portable", "": "auto"}


def choose_simd_path(available):
    """The SIMD path to use at import, by ``CONVLAB_SIMD`` and what this CPU can run.

    Parameters
    ----------
    available : list of str
        The paths this CPU can run, fastest first.

    Returns
    -------
    str
        One of ``available``.

    Raises
    ------
    ValueError
        If ``CONVLAB_SIMD`` names no path, or a path this CPU cannot run.
    """
    raw = os.environ.get("CONVLAB_SIMD", "auto")
    wanted = _ALIASES.get(raw.strip().lower(), raw.strip().lower())
    if wanted == "auto":
        return available[0]
    if wanted not in SIMD_PATHS:
        raise ValueError(f"CONVLAB_SIMD={raw!r} is not a SIMD path; use auto, "
                         f"{', '.join(SIMD_PATHS)} or 0 (= portable)")
    if wanted not in available:
        raise ValueError(f"CONVLAB_SIMD={raw!r}: this CPU cannot run the {wanted} kernels; "
                         f"it can run {', '.join(available)}")
    return wanted
