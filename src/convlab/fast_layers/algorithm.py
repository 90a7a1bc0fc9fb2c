"""Which algorithm convolves: the direct (im2col) kernels or Winograd's.

Stride-1 3x3 convolutions can take Winograd's F(4x4, 3x3) or F(2x2, 3x3)
(:mod:`convlab._fast.winograd`: 36 products per 4 x 4 tile of outputs
instead of 144, or 16 per 2 x 2 instead of 36) where the fixed rule
:func:`winograd_tile` says it is faster;
:func:`set_conv_algorithm` forces one algorithm for the whole process. The
forward pass and the input gradient of :mod:`convlab.fast_layers` ask
:func:`_winograd_applies` which one to run. The public functions are also
:mod:`convlab.fast_layers`'s own.
"""

import numpy as np

from convlab._fast import conv as _conv

__all__ = ["conv_algorithm", "set_conv_algorithm", "winograd_pays", "winograd_tile"]

_CONV_ALGORITHMS = ("auto", "direct", "winograd", "winograd4")
_conv_algorithm = "auto"   # set by set_conv_algorithm


def conv_algorithm():
    """The convolution algorithm in force: ``"auto"``, ``"direct"``, ``"winograd"`` or ``"winograd4"``."""
    return _conv_algorithm


def set_conv_algorithm(name):
    """Choose how :func:`convlab.fast_layers.conv_forward_fast` and its backward pass convolve.

    ``"auto"`` (the default) takes Winograd's algorithm
    (:mod:`convlab._fast.winograd`) for the stride-1 3x3 convolutions where
    :func:`winograd_tile` says it is faster -- F(4x4, 3x3) in float32,
    F(2x2, 3x3) in float64 -- and the direct blocked kernels everywhere
    else; ``"direct"`` never takes Winograd; ``"winograd"`` takes F(2x2,
    3x3) for every stride-1 3x3 convolution (for tests and benchmarks);
    ``"winograd4"`` takes the larger F(4x4, 3x3) for them instead (36
    products per 4 x 4 outputs instead of 144, at about four times the
    float32 rounding error of the direct sums).  Other convolutions always
    run directly.  The forward pass and the input
    gradient ``dx`` (a stride-1 3x3 convolution too) follow the choice; the
    filter gradient is always direct.

    Raises
    ------
    ValueError
        If ``name`` is not one of the four.
    """
    global _conv_algorithm
    if name not in _CONV_ALGORITHMS:
        raise ValueError(f"set_conv_algorithm: unknown algorithm {name!r}; "
                         f"choose one of {', '.join(_CONV_ALGORITHMS)}")
    _conv_algorithm = name


def winograd_pays(C, K, H_out, W_out, dtype):
    """Whether Winograd's algorithm beats the direct kernels on this stride-1 3x3 shape.

    A fixed rule on the shape, never a timing, so that results are the
    same on every run: :func:`winograd_tile` (same parameters) is not 0.

    Returns
    -------
    bool
    """
    return winograd_tile(C, K, H_out, W_out, dtype) != 0


def winograd_tile(C, K, H_out, W_out, dtype):
    """The Winograd output tile m that ``"auto"`` gives this stride-1 3x3 shape: 4, 2 or 0 (direct).

    In **float32**, the dtype of training, F(4x4, 3x3) wherever it is
    faster than the direct kernels:

    * ``C K >= 12 (C + K)``: per 4 x 4 tile of outputs the transforms cost
      about ``36 (C + K)`` additions against ``108 C K`` multiply-adds saved
      (36 products instead of 144), and the 36 short matrix products (each
      ``C`` long) keep the micro-kernel busy only with enough channels.
      This takes every layer of the airbench-style recipes but the first
      (24 -> 16 channels) and ``quick``'s 16 -> 16;
    * maps of at least 3 x 3 (smaller ones are mostly padding in a tile).

    Its float32 error is about four times the direct kernel's (about 1e-6
    relative instead of 3e-7), which training does not notice.

    In **float64**, the dtype of checking, only the more accurate F(2x2,
    3x3), and only where it clearly pays:

    * at least 64 input and 64 output channels: each tile's transforms cost
      about ``16 (C + K)`` additions and copies, against ``20 C K`` saved
      multiply-adds, and below 64 channels the short matrix products (one per
      position, ``C`` long) also run the micro-kernel less efficiently;
    * maps of at least 7 x 7: a 3 x 3 map is computed as 4 x 4 (two tiles
      each way), wasting most of the saving;
    * and either 128 channels on one side, or a padded input larger than the
      direct kernel's implicit GEMM takes
      (:func:`convlab._fast.conv.implicit_gemm_pays`), where the direct
      kernel must pack its columns.

    The measurements behind the rule (``benchmarks/bench_winograd.py``) are
    in the book's performance appendix, section "Winograd's algorithm for
    3x3 convolutions".

    Parameters
    ----------
    C, K : int
        Input and output channels.
    H_out, W_out : int
        Output map size (with pad 1, also the input's).
    dtype : numpy dtype
        float32 or float64.

    Returns
    -------
    int
        4, 2 or 0.
    """
    if np.dtype(dtype) == np.float32:
        return 4 if C * K >= 12 * (C + K) and min(H_out, W_out) >= 3 else 0
    if min(C, K) < 64 or min(H_out, W_out) < 7:
        return 0
    itemsize = np.dtype(dtype).itemsize
    pays = max(C, K) >= 128 or not _conv.implicit_gemm_pays(C, H_out + 2, W_out + 2, 1, itemsize)
    return 2 if pays else 0


def _winograd_applies(stride, HH, WW, C, K, H_out, W_out, dtype):
    """The output tile m of the Winograd F(m x m, 3x3) that the algorithm in force sends
    this convolution to (2 or 4), or 0 for the direct kernels."""
    if stride != 1 or HH != 3 or WW != 3 or _conv_algorithm == "direct":
        return 0
    if _conv_algorithm == "winograd4":
        return 4
    if _conv_algorithm == "winograd":
        return 2
    return winograd_tile(C, K, H_out, W_out, dtype)
