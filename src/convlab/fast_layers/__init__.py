"""Fast layers backed by Cython kernels: convolution, max pooling, batch norm + activation.

Same API as the naive layers in :mod:`convlab.layers` and
:mod:`convlab.modern_layers` (which are the oracle these are tested
against): forward passes return ``(out, cache)``, backward passes take
``(dout, cache)``.  The heavy lifting happens in :mod:`convlab._fast`:

* convolution is an *im2col* matrix product computed by blocked kernels
  (:mod:`convlab._fast.conv`): the columns are generated block by block
  straight from the image into cache-sized panels and multiplied by a
  register-tiled micro-kernel, so the full ``cols`` array never exists.  The
  textbook version -- full im2col (:mod:`convlab._fast.im2col`), one BLAS
  product per image through NumPy, col2im -- is kept as
  :func:`conv_forward_im2col` / :func:`conv_backward_im2col` for comparison.
  Stride-1 3x3 convolutions with enough channels take Winograd's algorithm
  instead (:mod:`convlab._fast.winograd`: F(4x4, 3x3) in float32, 36
  products per 4 x 4 tile of outputs instead of 144; the more accurate
  F(2x2, 3x3) in float64), forward and ``dx``, where the fixed rule
  :func:`winograd_tile` says it is faster; :func:`set_conv_algorithm`
  forces either algorithm;
* max pooling is a direct loop in :mod:`convlab._fast.pool` that remembers
  each window's winner for the backward pass, with a special case for the
  common 2x2 window with stride 2 (which also pools odd-sized maps by
  dropping their last row or column: :func:`max_pool_floor_forward_fast`);
* batch norm and the activation after it are one fused pass over each
  channel in :mod:`convlab._fast.bn_act`
  (:func:`spatial_batchnorm_act_forward_fast`, and
  :func:`activation_forward_fast` for an activation alone).

The convolution family of :mod:`convlab.conv_family` -- dilated, grouped
(depthwise) and transposed convolution, average and global average
pooling -- is in :mod:`~convlab.fast_layers.conv_family`, on the kernels
above (no kernel of its own), and its layers are this package's too.

float32 inputs give float32 outputs and float64 stays float64; inputs need
not be contiguous.

This package is the only one that imports :mod:`convlab._fast`. Its
``__init__`` is the layers; beside them:

* :mod:`~convlab.fast_layers.simd`: which SIMD path the kernels take (plain
  C, portable vectors, AVX2, AVX-512), :func:`set_simd_path` and
  :func:`build_info`;
* :mod:`~convlab.fast_layers.calibration`: that path chosen by measuring,
  the first time a layer here runs, and cached per CPU model;
* :mod:`~convlab.fast_layers.algorithm`: direct or Winograd convolution,
  :func:`set_conv_algorithm`, :func:`winograd_pays` and :func:`winograd_tile`;
* :mod:`~convlab.fast_layers.inputs`: what a kernel can be handed (dtypes,
  C ints, plane and buffer sizes), checked before it runs;
* :mod:`~convlab.fast_layers.conv_family`: the convolution family's layers
  (groups as a batched GEMM, dilation as space-to-batch, the transposed
  convolution as the backward pass, average pooling in NumPy);
* :mod:`~convlab.fast_layers.buffers`: large freed arrays kept and handed
  out again (:func:`reuse_buffers`), so that a training step does not map
  fresh memory every time;
* :mod:`~convlab.fast_layers.caches`: every backward pass checks its cache
  (entry types, dtypes, every shape against the others and against
  ``dout``, the recorded pooling winners) before a kernel reads it, and
  raises ``ValueError`` or ``TypeError`` naming the entry: a cache that did
  not come unchanged from the matching forward pass is an error, never a
  crash or a silently wrong gradient.

The public functions of ``simd``, ``algorithm`` and ``buffers`` are this package's own
too: ``convlab.fast_layers.build_info()``.

**Processes and threads.**  The kernels run on OpenMP threads, which sleep
when idle (:mod:`convlab._fast` sets ``OMP_WAIT_POLICY=PASSIVE`` unless the
environment chose a policy: threads that spin while they wait slow
everything down on a machine busy with other programs).  GNU's OpenMP
runtime (libgomp, what GCC builds use) does not survive ``fork()``: a child
process that started a parallel region after its parent had used two or
more threads would wait forever.  So in a child made by ``fork()`` (also
``multiprocessing`` with its ``"fork"`` start method, Python's default on
Linux up to 3.13) every kernel runs on one thread: it gives the same
results, more slowly.  Worker processes that should use all cores are best
started with ``multiprocessing.get_context("forkserver")`` or ``"spawn"``,
which start a fresh interpreter.
"""

import numpy as np

try:
    from convlab._fast import bn_act as _bn_act
    from convlab._fast import conv as _conv
    from convlab._fast import im2col as _im2col
    from convlab._fast import pool as _pool
    from convlab._fast import winograd as _winograd
except ImportError as error:  # the Cython extension was never compiled (or not for this Python)
    raise ImportError(
        f"convlab.fast_layers needs the compiled kernels of convlab._fast, which cannot be "
        f"imported ({error}). Build them from the root of the source tree with "
        f"`pip install -e .` or `python setup.py build_ext --inplace` (this needs a C compiler "
        f"and Cython), or install convlab from a wheel."
    ) from error
from convlab.fast_layers.algorithm import (_winograd_applies, conv_algorithm, set_conv_algorithm, winograd_pays,
                                           winograd_tile)
from convlab.fast_layers.buffers import (buffer_cache_stats, release_buffers, reuse_buffers,
                                         set_buffer_cache_limit)
from convlab.fast_layers.caches import _activation_cache, _bn_act_cache, _conv_cache, _im2col_cache, _pool_cache
from convlab.fast_layers.calibration import _ensure_decided
from convlab.fast_layers.inputs import (_activation_code, _check_padded_image, _check_pool_plane, _real_dout,
                                        _real_dtype)
from convlab.fast_layers.simd import build_info, set_simd_path, simd_paths
from convlab.layers import batchnorm_settings, conv_output_size, pool_output_size

__all__ = [
    "conv_forward_fast",
    "conv_backward_fast",
    "conv_backward_weights_fast",
    "conv_backward_input_fast",
    "max_pool_forward_fast",
    "max_pool_backward_fast",
    "conv_forward_im2col",
    "conv_backward_im2col",
    "max_pool_floor_forward_fast",
    "max_pool_floor_backward_fast",
    "activation_forward_fast",
    "activation_backward_fast",
    "spatial_batchnorm_act_forward_fast",
    "spatial_batchnorm_act_backward_fast",
    "build_info",
    "simd_paths",
    "set_simd_path",
    "conv_algorithm",
    "set_conv_algorithm",
    "winograd_pays",
    "winograd_tile",
    "reuse_buffers",
    "release_buffers",
    "buffer_cache_stats",
    "set_buffer_cache_limit",
    "conv_general_forward_fast",
    "conv_general_backward_fast",
    "conv_transpose_forward_fast",
    "conv_transpose_backward_fast",
    "avg_pool_forward_fast",
    "avg_pool_backward_fast",
    "global_avg_pool_forward_fast",
    "global_avg_pool_backward_fast",
]


def _conv_forward_into(x, w, b, out, stride, pad_h, pad_w):
    """Convolve ``x`` with ``w`` (+ ``b``, of shape (F,) or (0,)) into ``out``, by the
    algorithm :func:`_winograd_applies` picks.

    Winograd reports a non-finite output (an infinity or a NaN in ``x``,
    ``w`` or ``b``, or an overflow), which its transforms may have spread
    over a whole 2 x 2 tile; such a convolution is recomputed directly, so
    that infinities and NaNs land where the naive layer puts them.
    """
    F, C, HH, WW = w.shape
    tile = _winograd_applies(stride, HH, WW, C, F, out.shape[2], out.shape[3], out.dtype)
    if tile:
        if not _winograd.conv_forward(x, w, b, out, pad_h, pad_w, tile=tile):
            return
    _conv.conv_forward(x, w, b, out, stride, pad_h, pad_w)


def conv_forward_fast(x, w, b, conv_param):
    """Forward pass of a convolutional layer (blocked im2col matrix product).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
        Input images.
    w : ndarray of shape (F, C, HH, WW)
        Filters.
    b : ndarray of shape (F,)
        Biases.
    conv_param : dict
        ``'stride'``: positive int; ``'pad'``: non-negative int (zero padding
        on every side).

    Returns
    -------
    out : ndarray of shape (N, F, H_out, W_out)
        ``H_out = 1 + (H + 2 * pad - HH) // stride``, likewise ``W_out``.
        float32 if every input is float32 (or narrower), else float64.
    cache : tuple
        What :func:`conv_backward_fast` needs.

    Raises
    ------
    ValueError
        For the shape and parameter errors listed in
        :func:`convlab.layers.conv_output_size`, a bias that is not of
        shape ``(F,)``, or a padded image too large for the kernels' work
        buffers (see :func:`_check_padded_image`).
    TypeError
        If ``x``, ``w`` or ``b`` is not real-valued (complex, say).
    """
    _ensure_decided()
    x, w, b, stride, pad, H_out, W_out = _prepare_conv(x, w, b, conv_param)
    out = np.empty((x.shape[0], w.shape[0], H_out, W_out), dtype=x.dtype)
    _conv_forward_into(x, w, b, out, stride, pad, pad)
    return out, (x, w, stride, pad)


def conv_backward_fast(dout, cache):
    """Backward pass of a convolutional layer.

    Parameters
    ----------
    dout : ndarray of shape (N, F, H_out, W_out)
        Upstream gradient.
    cache : tuple
        From :func:`conv_forward_fast`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    dw : ndarray of shape (F, C, HH, WW)
    db : ndarray of shape (F,)

    Raises
    ------
    ValueError
        If ``dout`` does not have the shape of the forward output, or
        ``cache`` is not a consistent cache of :func:`conv_forward_fast`
        (see :func:`_conv_cache`).
    TypeError
        If ``dout`` is not real-valued, or an entry of ``cache`` has the
        wrong type or dtype.

    Notes
    -----
    ``dw`` is a blocked product of ``dout`` with the im2col columns of ``x``.
    ``dx`` is col2im of ``w.T @ dout``, one block of pixels at a time.  For
    stride 1 it is also the convolution of ``dout`` (padded by
    ``HH - 1 - pad``) with the flipped filters, their ``F`` and ``C`` axes
    swapped; that is used when it is cheaper: with fewer filters than
    channels (it generates fewer columns than col2im scatters), and with as
    many when the padded ``dout`` is small enough for the implicit GEMM
    (no columns at all; see :func:`convlab._fast.conv.implicit_gemm_pays`),
    and whenever that convolution is 3x3 and goes to Winograd (see
    :func:`set_conv_algorithm`).  The flipped convolution multiplies every filter tap by ``dout``'s zero
    padding too, which is harmless for finite filters; a filter holding an
    infinity or a NaN would turn those zeros into NaNs where col2im adds
    nothing, so such filters take col2im, which forms exactly the products
    of the naive layer.
    """
    _ensure_decided()
    checked = _conv_cache(cache)
    dout = _check_conv_dout(dout, checked)
    dw, db = _weight_gradients(dout, checked)
    return _input_gradient(dout, checked), dw, db


def conv_backward_input_fast(dout, cache):
    """The input gradient ``dx`` of a convolutional layer, without ``dw`` and ``db``.

    The ``dx`` of :func:`conv_backward_fast`, computed the same way (for
    benchmarks that time the two halves of the backward pass apart).

    Parameters
    ----------
    dout : ndarray of shape (N, F, H_out, W_out)
        Upstream gradient.
    cache : tuple
        From :func:`conv_forward_fast`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)

    Raises
    ------
    ValueError, TypeError
        As for :func:`conv_backward_fast`.
    """
    _ensure_decided()
    checked = _conv_cache(cache)
    return _input_gradient(_check_conv_dout(dout, checked), checked)


def _input_gradient(dout, checked):
    """``dx`` from a ``dout`` checked by :func:`_check_conv_dout` and a cache checked by
    :func:`_conv_cache` (``checked``); see :func:`conv_backward_fast`."""
    x, w, stride, pad, _, _ = checked
    F, C, HH, WW = w.shape
    dx = np.empty(x.shape, dtype=x.dtype)
    flipped_winograd = _winograd_applies(stride, HH, WW, F, C, x.shape[2], x.shape[3], x.dtype)
    if (stride == 1 and pad <= HH - 1 and pad <= WW - 1
            and (flipped_winograd or _flipped_dx_pays(dout, w, pad)) and np.isfinite(w).all()):
        w_flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        _conv_forward_into(dout, w_flipped, _NO_BIAS[x.dtype.type], dx, 1, HH - 1 - pad, WW - 1 - pad)
    else:
        _conv.conv_backward_input_col2im(dout, w, dx, stride, pad)
    return dx


def _flipped_dx_pays(dout, w, pad):
    """Whether a stride-1 ``dx`` is cheaper as a flipped convolution than by col2im.

    The flipped convolution reads ``dout`` (F channels) and writes ``dx``
    (C channels) with the forward kernel, col2im multiplies by the filters
    and scatters C * HH * WW column entries per pixel.  Timed on the layers
    of ``benchmarks/bench_layers.py`` and of the airbench-style nets, that
    makes it the faster route with fewer filters than channels; with as
    many, only when ``dout`` padded by ``HH - 1 - pad`` is small enough for
    the implicit GEMM; never with more filters than channels.
    """
    F, H_out, W_out = dout.shape[1:]
    C, HH, WW = w.shape[1], w.shape[2], w.shape[3]
    if F != C:
        return F < C
    Hp, Wp = H_out + 2 * (HH - 1 - pad), W_out + 2 * (WW - 1 - pad)
    return _conv.implicit_gemm_pays(F, Hp, Wp, 1, dout.itemsize)


def conv_forward_im2col(x, w, b, conv_param):
    """Forward pass of a convolution the textbook way: full im2col, then one GEMM per image.

    Same parameters, result and errors as :func:`conv_forward_fast`.  It
    builds the whole ``cols`` array of shape ``(N, C * HH * WW, H_out * W_out)``
    with :func:`convlab._fast.im2col.im2col` and multiplies with NumPy's BLAS;
    it is kept to show the idea (and its memory cost) next to the blocked
    kernels of :func:`conv_forward_fast`.
    """
    x, w, b, stride, pad, H_out, W_out = _prepare_conv(x, w, b, conv_param)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    cols = np.empty((N, C * HH * WW, H_out * W_out), dtype=x.dtype)
    _im2col.im2col(x, cols, HH, WW, stride, pad)
    out = np.matmul(w.reshape(F, -1), cols)  # (N, F, H_out * W_out)
    out += b[:, None]
    return out.reshape(N, F, H_out, W_out), (x.shape, w, stride, pad, cols)


def conv_backward_im2col(dout, cache):
    """Backward pass matching :func:`conv_forward_im2col` (GEMMs, then col2im).

    Same parameters, results and errors as :func:`conv_backward_fast`.
    """
    x_shape, w, stride, pad, cols, H_out, W_out = _im2col_cache(cache)
    N, C, H, W = x_shape
    F, _, HH, WW = w.shape
    dout = _real_dout(dout, (N, F, H_out, W_out), w.dtype)
    dout3 = dout.reshape(N, F, H_out * W_out)
    db = dout3.sum(axis=(0, 2))
    dw = np.matmul(dout3, cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    dcols = np.matmul(w.reshape(F, -1).T, dout3)  # (N, C * HH * WW, H_out * W_out)
    dx = np.empty(x_shape, dtype=w.dtype)
    _im2col.col2im(dcols, dx, HH, WW, stride, pad)
    return dx, dw, db


def _prepare_conv(x, w, b, conv_param):
    """Validate a convolution's inputs; return contiguous arrays of one float dtype."""
    x, w, b = np.asarray(x), np.asarray(w), np.asarray(b)
    H_out, W_out = conv_output_size(x.shape, w.shape, conv_param)
    F = w.shape[0]
    if b.shape != (F,):
        raise ValueError(f"b must have shape (F,) = ({F},) for w of shape {w.shape}; got shape {b.shape}")
    dtype = _real_dtype(x=x, w=w, b=b)
    pad = int(conv_param["pad"])
    _check_padded_image(x.shape, pad, dtype.itemsize, "conv_param['pad']")
    x = np.ascontiguousarray(x, dtype=dtype)
    w = np.ascontiguousarray(w, dtype=dtype)
    b = np.ascontiguousarray(b, dtype=dtype)
    return x, w, b, int(conv_param["stride"]), pad, H_out, W_out


_NO_BIAS = {np.float32: np.empty(0, dtype=np.float32), np.float64: np.empty(0, dtype=np.float64)}


def conv_backward_weights_fast(dout, cache):
    """The filter and bias gradients of a convolutional layer, without ``dx``.

    A network whose first trainable convolution reads a frozen input (an
    image, or a fixed whitening layer) needs no gradient below it; this
    skips the input-gradient half of :func:`conv_backward_fast`.

    Parameters
    ----------
    dout : ndarray of shape (N, F, H_out, W_out)
        Upstream gradient.
    cache : tuple
        From :func:`conv_forward_fast`.

    Returns
    -------
    dw : ndarray of shape (F, C, HH, WW)
    db : ndarray of shape (F,)

    Raises
    ------
    ValueError, TypeError
        As for :func:`conv_backward_fast`.
    """
    _ensure_decided()
    checked = _conv_cache(cache)
    return _weight_gradients(_check_conv_dout(dout, checked), checked)


def _weight_gradients(dout, checked):
    """``(dw, db)`` from a ``dout`` checked by :func:`_check_conv_dout` and a cache checked
    by :func:`_conv_cache` (``checked``)."""
    x, w, stride, pad, _, _ = checked
    dw, db = _conv.conv_backward_weights(x, dout, w.shape[2], w.shape[3], stride, pad)
    return dw.reshape(w.shape), db


def _check_conv_dout(dout, checked):
    """``dout`` as a C-contiguous array of the forward output's shape and dtype, for a cache
    checked by :func:`_conv_cache` (``checked``)."""
    x, w, stride, pad, H_out, W_out = checked
    return _real_dout(dout, (x.shape[0], w.shape[0], H_out, W_out), x.dtype)


def max_pool_forward_fast(x, pool_param):
    """Forward pass of max pooling.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
        Input.
    pool_param : dict
        ``'pool_height'``, ``'pool_width'``, ``'stride'``: positive ints.
        Windows may overlap (stride smaller than the window).

    Returns
    -------
    out : ndarray of shape (N, C, H_out, W_out)
        ``H_out = 1 + (H - pool_height) // stride``, likewise ``W_out``;
        same dtype as ``x`` (float32 or float64).
    cache : tuple
        What :func:`max_pool_backward_fast` needs.

    Raises
    ------
    ValueError
        For the errors listed in :func:`convlab.layers.pool_output_size`, or
        (any window but 2x2 with stride 2) planes of more than 2**31 - 1
        pixels: see :func:`_check_pool_plane`.
    TypeError
        If ``x`` is not real-valued.
    """
    _ensure_decided()
    x = np.asarray(x)
    H_out, W_out = pool_output_size(x.shape, pool_param)
    dtype = _real_dtype(x=x)
    ph, pw, stride = int(pool_param["pool_height"]), int(pool_param["pool_width"]), int(pool_param["stride"])
    if (ph, pw, stride) != (2, 2, 2):
        _check_pool_plane(x.shape, "x")
    x = np.ascontiguousarray(x, dtype=dtype)
    N, C, H, W = x.shape
    out = np.empty((N, C, H_out, W_out), dtype=dtype)
    if ph == pw == stride == 2:
        argmax = np.empty((N, C, H_out, W_out), dtype=np.uint8)
        _pool.max_pool_forward_2x2(x, out, argmax)
    else:
        argmax = np.empty((N, C, H_out, W_out), dtype=np.int32)
        _pool.max_pool_forward(x, out, argmax, ph, pw, stride)
    return out, (x.shape, argmax, dtype, (ph, pw, stride))


def max_pool_backward_fast(dout, cache):
    """Backward pass of max pooling.

    Parameters
    ----------
    dout : ndarray of shape (N, C, H_out, W_out)
        Upstream gradient.
    cache : tuple
        From :func:`max_pool_forward_fast`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
        Each upstream gradient added to the input position of its window's
        maximum (the first one, in row-major order, if there is a tie).

    Raises
    ------
    ValueError
        If ``dout`` does not have the shape of the forward output, or
        ``cache`` is not a consistent cache of a max pooling forward pass
        (see :func:`_pool_cache`).
    TypeError
        If ``dout`` is not real-valued, or an entry of ``cache`` has the
        wrong type or dtype.
    """
    _ensure_decided()
    x_shape, argmax, dtype = _pool_cache(cache)
    dout = _real_dout(dout, argmax.shape, dtype)
    dx = np.empty(x_shape, dtype=dtype)
    if argmax.dtype == np.uint8:  # the 2x2 stride-2 fast path
        _pool.max_pool_backward_2x2(dout, argmax, dx)
    else:
        _pool.max_pool_backward(dout, argmax, dx)
    return dx


def max_pool_floor_forward_fast(x):
    """2x2 max pooling with stride 2 that drops an odd last row or column.

    The same as :func:`convlab.modern_layers.max_pool_floor_forward_naive`, without
    the crop: the 2x2 kernel simply never reads the last row (column) of an
    odd map.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), with H, W >= 2

    Returns
    -------
    out : ndarray of shape (N, C, H // 2, W // 2)
        Same dtype as ``x`` (float32 or float64).
    cache : tuple
        What :func:`max_pool_floor_backward_fast` needs.
    """
    _ensure_decided()
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[2] < 2 or x.shape[3] < 2:
        raise ValueError(f"x must have shape (N, C, H, W) with H, W >= 2; got shape {x.shape}")
    dtype = _real_dtype(x=x)
    x = np.ascontiguousarray(x, dtype=dtype)
    N, C, H, W = x.shape
    out = np.empty((N, C, H // 2, W // 2), dtype=dtype)
    argmax = np.empty(out.shape, dtype=np.uint8)
    _pool.max_pool_forward_2x2(x, out, argmax)
    return out, (x.shape, argmax, dtype, (2, 2, 2))


def max_pool_floor_backward_fast(dout, cache):
    """Backward pass of :func:`max_pool_floor_forward_fast`.

    Parameters
    ----------
    dout : ndarray of shape (N, C, H // 2, W // 2)
    cache : tuple
        From :func:`max_pool_floor_forward_fast`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
        ``dout`` routed to each window's maximum; zero elsewhere, including
        on a dropped last row or column.

    Raises
    ------
    ValueError, TypeError
        As for :func:`max_pool_backward_fast`.
    """
    return max_pool_backward_fast(dout, cache)


def _channel_rows(x):
    """``x`` of shape (N, C, H, W) as a C-contiguous (N, C, H * W) array of a kernel dtype."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got shape {x.shape}")
    dtype = _real_dtype(x=x)
    N, C, H, W = x.shape
    return np.ascontiguousarray(x, dtype=dtype).reshape(N, C, H * W)  # not -1: N or C may be 0


def activation_forward_fast(x, activation="relu", alpha=0.01):
    """Forward pass of the activation named ``activation`` on images.

    Same as :func:`convlab.modern_layers.activation_forward` for 4-D input; GELU in
    float32 uses the kernel's rational approximation of ``erf`` (accurate to
    float32 rounding).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    activation : {'identity', 'relu', 'leaky_relu', 'gelu'}
    alpha : float
        Slope of the leaky ReLU for negative inputs.

    Returns
    -------
    out : ndarray of shape (N, C, H, W), float32 or float64
    cache : tuple
        What :func:`activation_backward_fast` needs.
    """
    _ensure_decided()
    code = _activation_code(activation)
    x3 = _channel_rows(x)
    C = x3.shape[1]
    ones, zeros = np.ones(C, x3.dtype), np.zeros(C, x3.dtype)
    out = np.empty_like(x3)
    _bn_act.scale_shift_act(x3, ones, zeros, code, alpha, out)
    return out.reshape(np.shape(x)), (x3, code, alpha, np.shape(x))


def activation_backward_fast(dout, cache):
    """Backward pass of :func:`activation_forward_fast`.

    Parameters
    ----------
    dout : ndarray of shape (N, C, H, W)
    cache : tuple
        From :func:`activation_forward_fast`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)

    Raises
    ------
    ValueError, TypeError
        For a ``dout`` of the wrong shape or a complex one, and for a cache
        that is not a consistent cache of :func:`activation_forward_fast`
        (see :func:`_activation_cache`).
    """
    _ensure_decided()
    x3, code, alpha, shape = _activation_cache(cache)
    d3 = _check_rows_dout(dout, x3, shape)
    C = x3.shape[1]
    dx = np.empty_like(x3)
    _bn_act.act_backward(d3, x3, np.ones(C, x3.dtype), np.zeros(C, x3.dtype), code, alpha, dx)
    return dx.reshape(shape)


def _check_rows_dout(dout, x3, shape):
    """``dout`` of the forward output's ``shape``, as rows like ``x3``."""
    return _real_dout(dout, shape, x3.dtype).reshape(x3.shape)


def spatial_batchnorm_act_forward_fast(x, gamma, beta, bn_param, activation="relu", alpha=0.01):
    """Spatial batch normalization followed by an activation, fused in one kernel.

    Same arguments and results as
    :func:`convlab.modern_layers.spatial_batchnorm_act_forward`. In ``'train'``
    mode the kernel returns each channel's batch mean and ``1 / sqrt(var +
    eps)`` in float64; the running statistics are updated from them (and
    created in float64 on first use).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    gamma, beta : ndarray of shape (C,)
    bn_param : dict
        ``'mode'`` (``'train'`` or ``'test'``), ``'eps'``, ``'momentum'``,
        ``'running_mean'``, ``'running_var'``, as for
        :func:`convlab.layers.batchnorm_forward`.
    activation : {'identity', 'relu', 'leaky_relu', 'gelu'}
    alpha : float
        Slope of the leaky ReLU for negative inputs.

    Returns
    -------
    out : ndarray of shape (N, C, H, W), float32 or float64
    cache : tuple
        What :func:`spatial_batchnorm_act_backward_fast` needs.
    """
    _ensure_decided()
    code = _activation_code(activation)
    x3 = _channel_rows(x)
    N, C = x3.shape[:2]
    dtype = x3.dtype
    gamma = np.asarray(gamma)
    beta = np.asarray(beta)
    for name, value in (("gamma", gamma), ("beta", beta)):
        if value.shape != (C,):
            raise ValueError(f"{name} must have shape ({C},) to match the channels of x of "
                             f"shape {np.shape(x)}; got shape {value.shape}")
        _real_dtype(**{name: value})
    gamma = np.ascontiguousarray(gamma, dtype=dtype)
    beta = np.ascontiguousarray(beta, dtype=dtype)
    mode, eps, momentum = batchnorm_settings(bn_param, C, np.float64)
    out = np.empty_like(x3)
    if mode == "train":
        if N * x3.shape[2] == 0:
            raise ValueError(f"x must hold at least one example in train mode; got shape {np.shape(x)}")
        mean, invstd = np.empty(C), np.empty(C)
        _bn_act.bn_act_forward_train(x3, gamma, beta, eps, code, alpha, out, mean, invstd)
        # a channel whose variance overflowed (a diverging run) has invstd 0 and
        # var inf, as in the naive layer; the Solver reports the divergence
        with np.errstate(divide="ignore"):
            var = 1.0 / invstd**2 - eps
        bn_param["running_mean"] = momentum * bn_param["running_mean"] + (1 - momentum) * mean
        bn_param["running_var"] = momentum * bn_param["running_var"] + (1 - momentum) * var
        cache = (mode, x3, mean, invstd, gamma, beta, code, alpha, np.shape(x))
    else:
        # Test mode: a fixed affine map per channel, then the activation.
        mean = np.asarray(bn_param["running_mean"], dtype=np.float64)
        std = np.sqrt(bn_param["running_var"] + eps)
        invstd = 1.0 / std
        scale = gamma / std
        shift = beta - bn_param["running_mean"] * scale
        scale, shift = scale.astype(dtype), shift.astype(dtype)
        _bn_act.scale_shift_act(x3, scale, shift, code, alpha, out)
        cache = (mode, x3, mean, invstd, scale, shift, code, alpha, np.shape(x))
    return out.reshape(np.shape(x)), cache


def spatial_batchnorm_act_backward_fast(dout, cache):
    """Backward pass of :func:`spatial_batchnorm_act_forward_fast`.

    Parameters
    ----------
    dout : ndarray of shape (N, C, H, W)
    cache : tuple
        From :func:`spatial_batchnorm_act_forward_fast`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    dgamma, dbeta : ndarray of shape (C,)
        All three in the dtype of the forward output.

    Raises
    ------
    ValueError, TypeError
        For a ``dout`` of the wrong shape or a complex one, and for a cache
        that is not a consistent cache of
        :func:`spatial_batchnorm_act_forward_fast` (see :func:`_bn_act_cache`).

    Notes
    -----
    In ``'test'`` mode batch norm is the fixed affine map
    ``scale * x + shift`` per channel, so ``dx`` is the activation's gradient
    times ``scale``.
    """
    _ensure_decided()
    mode, x3, mean, invstd, weight, shift, code, alpha, shape = _bn_act_cache(cache)
    d3 = _check_rows_dout(dout, x3, shape)
    C = x3.shape[1]
    dx = np.empty_like(x3)
    if mode == "train":
        gamma, beta = weight, shift
        dgamma, dbeta = np.empty(C), np.empty(C)
        _bn_act.bn_act_backward(d3, x3, mean, invstd, gamma, beta, code, alpha, dx, dgamma, dbeta)
    else:
        scale = weight
        _bn_act.act_backward(d3, x3, scale, shift, code, alpha, dx)   # dx = dy, before the scale
        xhat = (x3 - mean[:, None]) * invstd[:, None]
        dbeta = dx.sum(axis=(0, 2), dtype=np.float64)
        dgamma = (dx * xhat).sum(axis=(0, 2))
        dx *= scale[:, None]
    return dx.reshape(shape), dgamma.astype(x3.dtype), dbeta.astype(x3.dtype)


# The convolution family is built on the layers above, so it is imported once they exist.
from convlab.fast_layers.conv_family import (avg_pool_backward_fast, avg_pool_forward_fast,  # noqa: E402
                                             conv_general_backward_fast, conv_general_forward_fast,
                                             conv_transpose_backward_fast, conv_transpose_forward_fast,
                                             global_avg_pool_backward_fast, global_avg_pool_forward_fast)
