"""The convolution family on the existing kernels: no new kernel code.

The fast twins of the naive layers in :mod:`convlab.conv_family`, each
built from kernels the course's convolution already has:

* **groups** are a *batched GEMM over group slices*: the im2col columns of
  the whole input (:func:`convlab._fast.im2col.im2col`) are channel-major,
  so group ``g``'s rows are one contiguous slice, and ``np.matmul`` of the
  ``(G, F/G, K/G)`` filters with the ``(N, G, K/G, P)`` columns is one
  product per image and group; ``dx`` goes back through
  :func:`convlab._fast.im2col.col2im`. Without groups the blocked kernels
  of :func:`~convlab.fast_layers.conv_forward_fast` run unchanged.
* **dilation** is *space-to-batch*: the taps of a filter dilated by ``d``
  read pixels ``d`` apart, so regrouping the padded image into its
  subsampled copies ``frame[r * stride :: d, t * stride :: d]`` turns the
  dilated convolution into an ordinary one, stride ``stride / gcd(stride,
  d)``, on ``(d / gcd)**2`` images per input image, whose outputs
  interleave into the dilated output. Every kernel of the ordinary
  convolution (Winograd too) then applies as it is; the backward pass runs
  the same regrouping in reverse.
* the **transposed convolution** *is* the backward pass of the convolution
  it transposes: its forward pass is
  :func:`~convlab.fast_layers.conv_backward_input_fast`, and its backward
  pass is that convolution's forward pass (``dx``) and filter gradient
  (``dw``).
* **average pooling** and **global average pooling** are vectorised NumPy:
  one strided sum per window tap, one mean per map. They are memory-bound
  sums that a kernel would not make faster than NumPy's own loops.

Same conventions and errors as the rest of :mod:`convlab.fast_layers`:
float32 stays float32, anything else computes in float64, inputs need not
be contiguous, and every backward pass checks its cache before a kernel
reads it.
"""

import math

import numpy as np

from convlab._fast import im2col as _im2col
from convlab.conv_family import (_crop_rows, conv_general_output_size, conv_general_settings,
                                 conv_transpose_output_size, conv_transpose_settings)
from convlab.fast_layers import (conv_backward_fast, conv_backward_input_fast, conv_backward_weights_fast,
                                 conv_forward_fast)
from convlab.fast_layers.caches import (_avg_pool_cache, _cache_entries, _cached_dtype, _cached_int,
                                        _cached_shape, _grouped_conv_cache, _transposed_conv_cache)
from convlab.fast_layers.inputs import _real_dout, _real_dtype
from convlab.layers import conv_output_size, pool_output_size

__all__ = [
    "conv_general_forward_fast",
    "conv_general_backward_fast",
    "conv_transpose_forward_fast",
    "conv_transpose_backward_fast",
    "avg_pool_forward_fast",
    "avg_pool_backward_fast",
    "global_avg_pool_forward_fast",
    "global_avg_pool_backward_fast",
]


# --------------------------------------------------------------------------
# The general convolution: dilation and groups
# --------------------------------------------------------------------------


def conv_general_forward_fast(x, w, b, conv_param):
    """Forward pass of a convolution with dilation and groups.

    Same arguments, result and errors as
    :func:`convlab.conv_family.conv_general_forward_naive`.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    w : ndarray of shape (F, C / groups, HH, WW)
    b : ndarray of shape (F,)
    conv_param : dict
        ``'stride'``, ``'pad'``, optional ``'dilation'`` and ``'groups'``.

    Returns
    -------
    out : ndarray of shape (N, F, H_out, W_out)
        ``H_out = 1 + (H + 2 * pad - (HH - 1) * dilation - 1) // stride``,
        likewise ``W_out``; float32 if every input is float32 (or
        narrower), else float64.
    cache : tuple
        What :func:`conv_general_backward_fast` needs.

    Raises
    ------
    ValueError
        Everything :func:`convlab.conv_family.conv_general_output_size`
        rejects, a ``b`` not of shape ``(F,)``, and (without groups or
        dilation) what :func:`~convlab.fast_layers.conv_forward_fast` rejects.
    TypeError
        If ``x``, ``w`` or ``b`` is not real-valued.
    """
    x, w, b = np.asarray(x), np.asarray(w), np.asarray(b)
    H_out, W_out = conv_general_output_size(x.shape, w.shape, conv_param)
    stride, pad, dilation, groups = conv_general_settings(conv_param)
    F = w.shape[0]
    if b.shape != (F,):
        raise ValueError(f"b must have shape (F,) = ({F},) for w of shape {w.shape}; got shape {b.shape}")
    dtype = _real_dtype(x=x, w=w, b=b)
    x, w, b = (np.ascontiguousarray(a, dtype=dtype) for a in (x, w, b))
    if dilation == 1:
        out, inner = _undilated_forward(x, w, b, stride, pad, groups)
    else:
        out, inner = _dilated_forward(x, w, b, stride, pad, dilation, groups, H_out, W_out)
    return out, (inner, x.shape, w.shape, dtype, (stride, pad, dilation, groups))


def conv_general_backward_fast(dout, cache):
    """Backward pass of :func:`conv_general_forward_fast`.

    Parameters
    ----------
    dout : ndarray of shape (N, F, H_out, W_out)
        Upstream gradient.
    cache : tuple
        From :func:`conv_general_forward_fast`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    dw : ndarray of shape (F, C / groups, HH, WW)
    db : ndarray of shape (F,)

    Raises
    ------
    ValueError
        If ``dout`` does not have the shape of the forward output, or the
        cache is not a consistent cache of :func:`conv_general_forward_fast`.
    TypeError
        If ``dout`` is not real-valued, or an entry of the cache has the
        wrong type or dtype.
    """
    inner, x_shape, w_shape, dtype, settings = _cache_entries(cache, 5, "conv_general_forward_fast")
    x_shape, w_shape = _cached_shape(x_shape, "x_shape"), _cached_shape(w_shape, "w_shape")
    dtype = _cached_dtype(dtype)
    if not isinstance(settings, tuple) or len(settings) != 4:
        raise TypeError(f"cache entry settings must be (stride, pad, dilation, groups); got {settings!r}")
    stride, pad, dilation, groups = (_cached_int(value, "settings", least)
                                     for value, least in zip(settings, (1, 0, 1, 1)))
    try:
        H_out, W_out = conv_general_output_size(
            x_shape, w_shape, {"stride": stride, "pad": pad, "dilation": dilation, "groups": groups})
    except ValueError as error:
        raise ValueError(f"cache is not a consistent convolution cache: {error}") from None
    dout = _real_dout(dout, (x_shape[0], w_shape[0], H_out, W_out), dtype)
    if dilation == 1:
        dx, dw, db = _undilated_backward(dout, inner, groups)
    else:
        dx, dw, db = _dilated_backward(dout, inner, x_shape, w_shape, stride, pad, dilation, groups)
    if dx.shape != x_shape or dw.shape != w_shape:
        raise ValueError(f"cache is not a consistent convolution cache: its inner cache gives dx of shape "
                         f"{dx.shape} and dw of shape {dw.shape} for x_shape {x_shape} and w_shape {w_shape}")
    return dx, dw, db


def _undilated_forward(x, w, b, stride, pad, groups):
    """A convolution without dilation: the blocked kernels, or one batched GEMM per group."""
    if groups == 1:
        return conv_forward_fast(x, w, b, {"stride": stride, "pad": pad})
    return _grouped_forward(x, w, b, stride, pad, groups)


def _undilated_backward(dout, inner, groups):
    """The backward pass matching :func:`_undilated_forward`."""
    if groups == 1:
        return conv_backward_fast(dout, inner)
    return _grouped_backward(dout, inner)


def _grouped_forward(x, w, b, stride, pad, groups):
    """A grouped convolution: im2col of the whole input, then one GEMM per image and group.

    Parameters
    ----------
    x : C-contiguous ndarray of shape (N, C, H, W)
    w : C-contiguous ndarray of shape (F, C / groups, HH, WW), the dtype of ``x``
    b : ndarray of shape (F,), the dtype of ``x``
    stride, pad, groups : int
        Checked by the caller.

    Returns
    -------
    out : ndarray of shape (N, F, H_out, W_out)
    cache : tuple
        ``(x_shape, w, stride, pad, groups, cols)``, ``cols`` of shape
        ``(N, C * HH * WW, H_out * W_out)`` (see :func:`_grouped_conv_cache`).
    """
    N, C, H, W = x.shape
    F, C_group, HH, WW = w.shape
    H_out, W_out = conv_output_size(x.shape, (F, C, HH, WW), {"stride": stride, "pad": pad})
    K_group, P = C_group * HH * WW, H_out * W_out
    cols = np.empty((N, C * HH * WW, P), dtype=x.dtype)
    _im2col.im2col(x, cols, HH, WW, stride, pad)
    # cols' rows run over (channel, tap): group g's channels are the rows g * K_group ... (g + 1) * K_group - 1
    out = np.matmul(w.reshape(groups, F // groups, K_group), cols.reshape(N, groups, K_group, P))
    out = out.reshape(N, F, H_out, W_out)
    out += b[:, None, None]
    return out, (x.shape, w, stride, pad, groups, cols)


def _grouped_backward(dout, cache):
    """The backward pass of :func:`_grouped_forward`: batched GEMMs, then col2im."""
    x_shape, w, stride, pad, groups, cols, H_out, W_out = _grouped_conv_cache(cache)
    N, C, H, W = x_shape
    F, C_group, HH, WW = w.shape
    dout = _real_dout(dout, (N, F, H_out, W_out), w.dtype)
    K_group, P = C_group * HH * WW, H_out * W_out
    dout_groups = dout.reshape(N, groups, F // groups, P)
    cols_groups = cols.reshape(N, groups, K_group, P)
    dw = np.matmul(dout_groups, cols_groups.transpose(0, 1, 3, 2)).sum(axis=0).reshape(w.shape)
    dcols = np.matmul(w.reshape(groups, F // groups, K_group).transpose(0, 2, 1), dout_groups)
    dx = np.empty(x_shape, dtype=w.dtype)
    _im2col.col2im(np.ascontiguousarray(dcols.reshape(N, C * HH * WW, P)), dx, HH, WW, stride, pad)
    return dx, dw, dout.sum(axis=(0, 2, 3))


def _space_to_batch_geometry(x_shape, w_shape, stride, pad, dilation, H_out, W_out):
    """How a dilated convolution splits into ordinary ones on subsampled copies of its input.

    Output row ``i = k * phases + r`` reads the padded rows
    ``i * stride + p * dilation = r * stride + dilation * (k * inner_stride + p)``
    with ``phases = dilation / gcd(stride, dilation)`` and
    ``inner_stride = stride / gcd(stride, dilation)``: row ``k * inner_stride + p``
    of the subsampled copy ``frame[r * stride :: dilation]``. So phase ``r``
    is an ordinary convolution with stride ``inner_stride`` of ``rows``
    subsampled rows, giving ``outs`` output rows (every phase gets as many;
    up to ``phases - 1`` extra rows at the end, read from a zero ``frame``
    larger than the padded input, are dropped).

    Returns
    -------
    phases, inner_stride : int
    (outs_h, rows_h, frame_h), (outs_w, rows_w, frame_w) : tuple of int
    """
    g = math.gcd(stride, dilation)
    phases, inner_stride = dilation // g, stride // g

    def axis(out_size, taps):
        outs = -(-out_size // phases)
        rows = (outs - 1) * inner_stride + taps
        frame = (outs * phases - 1) * stride + (taps - 1) * dilation + 1
        return outs, rows, frame

    return phases, inner_stride, axis(H_out, w_shape[2]), axis(W_out, w_shape[3])


def _dilated_forward(x, w, b, stride, pad, dilation, groups, H_out, W_out):
    """A dilated convolution as ordinary ones on the input's subsampled copies (space-to-batch)."""
    N, C, H, W = x.shape
    F = w.shape[0]
    phases, inner_stride, (outs_h, rows_h, frame_h), (outs_w, rows_w, frame_w) = _space_to_batch_geometry(
        x.shape, w.shape, stride, pad, dilation, H_out, W_out)
    frame = np.zeros((N, C, frame_h, frame_w), dtype=x.dtype)
    frame[:, :, pad:pad + H, pad:pad + W] = x
    batch = np.empty((phases, phases, N, C, rows_h, rows_w), dtype=x.dtype)
    for r in range(phases):
        for t in range(phases):
            batch[r, t] = frame[:, :, r * stride::dilation, t * stride::dilation][:, :, :rows_h, :rows_w]
    out, inner = _undilated_forward(batch.reshape(phases * phases * N, C, rows_h, rows_w), w, b,
                                    inner_stride, 0, groups)
    # phase (r, t)'s output (k, l) is the dilated output (k * phases + r, l * phases + t)
    out = out.reshape(phases, phases, N, F, outs_h, outs_w).transpose(2, 3, 4, 0, 5, 1)
    out = out.reshape(N, F, outs_h * phases, outs_w * phases)[:, :, :H_out, :W_out]
    return np.ascontiguousarray(out), inner


def _dilated_backward(dout, inner, x_shape, w_shape, stride, pad, dilation, groups):
    """The backward pass of :func:`_dilated_forward`: its regrouping, in reverse."""
    N, C, H, W = x_shape
    F = w_shape[0]
    H_out, W_out = dout.shape[2:]
    phases, inner_stride, (outs_h, rows_h, frame_h), (outs_w, rows_w, frame_w) = _space_to_batch_geometry(
        x_shape, w_shape, stride, pad, dilation, H_out, W_out)
    dout_phases = np.zeros((N, F, outs_h * phases, outs_w * phases), dtype=dout.dtype)
    dout_phases[:, :, :H_out, :W_out] = dout   # the dropped extra outputs get no gradient
    dout_phases = dout_phases.reshape(N, F, outs_h, phases, outs_w, phases).transpose(3, 5, 0, 1, 2, 4)
    dbatch, dw, db = _undilated_backward(
        np.ascontiguousarray(dout_phases).reshape(phases * phases * N, F, outs_h, outs_w), inner, groups)
    if dbatch.shape != (phases * phases * N, C, rows_h, rows_w):
        raise ValueError(f"cache is not a consistent convolution cache: its inner cache gives a gradient of "
                         f"shape {dbatch.shape} for x_shape {x_shape} and w_shape {w_shape}")
    dbatch = dbatch.reshape(phases, phases, N, C, rows_h, rows_w)
    dframe = np.zeros((N, C, frame_h, frame_w), dtype=dout.dtype)
    for r in range(phases):
        for t in range(phases):
            dframe[:, :, r * stride::dilation, t * stride::dilation][:, :, :rows_h, :rows_w] += dbatch[r, t]
    return np.ascontiguousarray(dframe[:, :, pad:pad + H, pad:pad + W]), dw, db


# --------------------------------------------------------------------------
# Transposed convolution
# --------------------------------------------------------------------------


def conv_transpose_forward_fast(x, w, b, conv_param):
    """Forward pass of a transposed convolution: the input gradient of the convolution it transposes.

    The convolution with filters ``w`` (shape ``(C, F, HH, WW)``: ``C``
    filters of ``F`` channels), stride ``stride`` and no padding maps an
    image of ``(H - 1) * stride + HH`` rows to one of ``H`` rows; the
    transposed convolution maps back, and is exactly that convolution's
    :func:`~convlab.fast_layers.conv_backward_input_fast` with ``x`` as the
    upstream gradient. The result is then cropped by ``pad`` (and extended
    by ``output_padding``) like the naive layer's.

    Same arguments, result and errors as
    :func:`convlab.conv_family.conv_transpose_forward_naive`.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    w : ndarray of shape (C, F, HH, WW)
    b : ndarray of shape (F,)
    conv_param : dict
        ``'stride'``, ``'pad'``, optional ``'output_padding'``.

    Returns
    -------
    out : ndarray of shape (N, F, H_out, W_out)
        ``H_out = (H - 1) * stride - 2 * pad + HH + output_padding``,
        likewise ``W_out``; float32 if every input is float32, else float64.
    cache : tuple
        ``(x, w, stride, pad, output_padding)`` for
        :func:`conv_transpose_backward_fast`.

    Raises
    ------
    ValueError
        Everything :func:`convlab.conv_family.conv_transpose_output_size`
        rejects, and ``b`` not of shape ``(F,)``.
    TypeError
        If ``x``, ``w`` or ``b`` is not real-valued.
    """
    x, w, b = np.asarray(x), np.asarray(w), np.asarray(b)
    H_out, W_out = conv_transpose_output_size(x.shape, w.shape, conv_param)
    stride, pad, output_padding = conv_transpose_settings(conv_param)
    N, C, H, W = x.shape
    _, F, HH, WW = w.shape
    if b.shape != (F,):
        raise ValueError(f"b must have shape (F,) = ({F},) for w of shape {w.shape}; got shape {b.shape}")
    dtype = _real_dtype(x=x, w=w, b=b)
    x, w, b = (np.ascontiguousarray(a, dtype=dtype) for a in (x, w, b))
    # The input of the convolution being transposed: its input gradient depends on its shape and
    # dtype only, which is all conv_backward_input_fast reads of it (its values are never set).
    conv_input = np.empty((N, F, (H - 1) * stride + HH, (W - 1) * stride + WW), dtype=dtype)
    full = conv_backward_input_fast(x, (conv_input, w, stride, 0))
    rows, cols = _crop_rows(pad, H_out, full.shape[2]), _crop_rows(pad, W_out, full.shape[3])
    out = np.empty((N, F, H_out, W_out), dtype=dtype)
    out[...] = b[:, None, None]
    out[:, :, :rows, :cols] += full[:, :, pad:pad + rows, pad:pad + cols]
    return out, (x, w, stride, pad, output_padding)


def conv_transpose_backward_fast(dout, cache):
    """Backward pass of a transposed convolution: the forward pass and ``dw`` of a convolution.

    ``dout``, padded back to the uncropped output, is convolved with ``w``
    (:func:`~convlab.fast_layers.conv_forward_fast`, stride ``stride``, no
    padding): that is ``dx``. The filter gradient of that same convolution,
    with ``x`` as its upstream gradient
    (:func:`~convlab.fast_layers.conv_backward_weights_fast`), is ``dw``.

    Parameters
    ----------
    dout : ndarray of shape (N, F, H_out, W_out)
        Upstream gradient.
    cache : tuple
        From :func:`conv_transpose_forward_fast`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    dw : ndarray of shape (C, F, HH, WW)
    db : ndarray of shape (F,)

    Raises
    ------
    ValueError
        If ``dout`` does not have the shape of the forward output, or the
        cache is not a consistent cache of :func:`conv_transpose_forward_fast`.
    TypeError
        If ``dout`` is not real-valued, or an entry of the cache has the
        wrong type or dtype.
    """
    x, w, stride, pad, _, H_out, W_out = _transposed_conv_cache(cache)
    N, C, H, W = x.shape
    _, F, HH, WW = w.shape
    dout = _real_dout(dout, (N, F, H_out, W_out), x.dtype)
    dout_full = np.zeros((N, F, (H - 1) * stride + HH, (W - 1) * stride + WW), dtype=x.dtype)
    rows, cols = _crop_rows(pad, H_out, dout_full.shape[2]), _crop_rows(pad, W_out, dout_full.shape[3])
    dout_full[:, :, pad:pad + rows, pad:pad + cols] = dout[:, :, :rows, :cols]
    dx, conv_cache = conv_forward_fast(dout_full, w, np.zeros(C, dtype=x.dtype), {"stride": stride, "pad": 0})
    dw, _ = conv_backward_weights_fast(x, conv_cache)
    return dx, dw, dout.sum(axis=(0, 2, 3))


# --------------------------------------------------------------------------
# Average pooling and global average pooling
# --------------------------------------------------------------------------


def _tap(H_out, W_out, stride, p, q):
    """The (rows, columns) of the input that tap ``(p, q)`` of every window reads."""
    return (slice(p, p + (H_out - 1) * stride + 1, stride), slice(q, q + (W_out - 1) * stride + 1, stride))


def avg_pool_forward_fast(x, pool_param):
    """Forward pass of average pooling, one strided sum per tap of the window.

    Same arguments, result and errors as
    :func:`convlab.conv_family.avg_pool_forward_naive`.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    pool_param : dict
        ``'pool_height'``, ``'pool_width'``, ``'stride'``: positive ints.

    Returns
    -------
    out : ndarray of shape (N, C, H_out, W_out)
        ``H_out = 1 + (H - pool_height) // stride``, likewise ``W_out``;
        float32 for float32 input, else float64.
    cache : tuple
        ``(x_shape, dtype, (pool_height, pool_width, stride))`` for
        :func:`avg_pool_backward_fast`.

    Raises
    ------
    ValueError
        Everything :func:`convlab.layers.pool_output_size` rejects.
    TypeError
        If ``x`` is not real-valued.
    """
    x = np.asarray(x)
    H_out, W_out = pool_output_size(x.shape, pool_param)
    dtype = _real_dtype(x=x)
    ph, pw, stride = int(pool_param["pool_height"]), int(pool_param["pool_width"]), int(pool_param["stride"])
    out = np.zeros(x.shape[:2] + (H_out, W_out), dtype=dtype)
    for p in range(ph):
        for q in range(pw):
            rows, cols = _tap(H_out, W_out, stride, p, q)
            out += x[:, :, rows, cols]
    out /= ph * pw
    return out, (x.shape, dtype, (ph, pw, stride))


def avg_pool_backward_fast(dout, cache):
    """Backward pass of :func:`avg_pool_forward_fast`: each tap adds its share of ``dout``.

    Parameters
    ----------
    dout : ndarray of shape (N, C, H_out, W_out)
    cache : tuple
        From :func:`avg_pool_forward_fast`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)

    Raises
    ------
    ValueError, TypeError
        For a ``dout`` of the wrong shape or a complex one, and for a cache
        that is not a consistent cache of :func:`avg_pool_forward_fast`.
    """
    x_shape, dtype, ph, pw, stride, H_out, W_out = _avg_pool_cache(cache)
    dout = _real_dout(dout, x_shape[:2] + (H_out, W_out), dtype)
    share = dout / dtype.type(ph * pw)
    dx = np.zeros(x_shape, dtype=dtype)
    for p in range(ph):
        for q in range(pw):
            rows, cols = _tap(H_out, W_out, stride, p, q)
            dx[:, :, rows, cols] += share
    return dx


def global_avg_pool_forward_fast(x):
    """Forward pass of global average pooling: one mean per feature map.

    Same arguments, result and errors as
    :func:`convlab.conv_family.global_avg_pool_forward_naive`.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)

    Returns
    -------
    out : ndarray of shape (N, C)
        float32 for float32 input, else float64.
    cache : tuple
        ``(x_shape, dtype)`` for :func:`global_avg_pool_backward_fast`.

    Raises
    ------
    ValueError
        If ``x`` is not 4-D or its maps are empty.
    TypeError
        If ``x`` is not real-valued.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got shape {x.shape}")
    N, C, H, W = x.shape
    if H * W == 0:
        raise ValueError(f"x must have non-empty feature maps; got shape {x.shape}")
    dtype = _real_dtype(x=x)
    out = np.asarray(x, dtype=dtype).reshape(N, C, H * W).mean(axis=2, dtype=dtype)
    return out, (x.shape, dtype)


def global_avg_pool_backward_fast(dout, cache):
    """Backward pass of :func:`global_avg_pool_forward_fast`: ``dout / (H * W)`` at every pixel.

    Parameters
    ----------
    dout : ndarray of shape (N, C)
    cache : tuple
        From :func:`global_avg_pool_forward_fast`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)

    Raises
    ------
    ValueError, TypeError
        For a ``dout`` of the wrong shape or a complex one, and for a
        malformed cache.
    """
    x_shape, dtype = _cache_entries(cache, 2, "global_avg_pool_forward_fast")
    N, C, H, W = _cached_shape(x_shape, "x_shape")
    dtype = _cached_dtype(dtype)
    if H * W == 0:
        raise ValueError(f"cache entry x_shape must have non-empty feature maps; got {(N, C, H, W)}")
    dout = _real_dout(dout, (N, C), dtype)
    dx = np.empty((N, C, H, W), dtype=dtype)
    dx[...] = (dout / dtype.type(H * W))[:, :, None, None]
    return dx
