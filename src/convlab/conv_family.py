"""Naive forward and backward passes for the convolution family.

The convolutions and poolings a student meets after the course's own layers
(:mod:`convlab.layers`). The convolutions are *built from* the course's naive
convolution, each by the identity that relates them -- a dilated filter is
a larger filter with zeros between its taps, a grouped convolution is one
convolution per slice of channels, a transposed convolution is a
convolution's backward pass -- so they hold no convolution arithmetic of
their own (and give nothing away of the course's exercises: with those
stubbed, they stop too). The poolings are plain loops:

* **1x1 convolution** needs nothing new: it is :func:`convlab.layers.conv_forward_naive`
  with ``HH = WW = 1``, a matrix product over the channels at every pixel;
* the **general convolution** :func:`conv_general_forward_naive`, whose
  ``conv_param`` gains ``'dilation'`` (the filter taps sit ``dilation``
  pixels apart: a wider receptive field for the same weights) and
  ``'groups'`` (the channels are split into ``groups`` slices, each
  convolved with its own filters; ``groups == C`` is the **depthwise**
  convolution, and a depthwise convolution followed by a 1x1 one is the
  depthwise-separable convolution);
* the **transposed convolution** :func:`conv_transpose_forward_naive`, the
  adjoint of a convolution: every input pixel scatters a copy of the
  filter, scaled by its value, into the output (``stride`` pixels apart),
  which upsamples. Its forward pass is exactly the ``dx`` of the
  convolution it transposes, and its ``dx`` is that convolution's forward
  pass;
* **average pooling** :func:`avg_pool_forward_naive` and **global average
  pooling** :func:`global_avg_pool_forward_naive` (the mean of each feature
  map, as a network's last layer before the classifier).

They are oracles like the course's layers and follow the same conventions:
forward passes return ``(out, cache)``, backward passes take ``(dout,
cache)``; images are ``(N, C, H, W)``; bad input is a :class:`ValueError`
naming the argument, raised before any work. They import only
:mod:`convlab.layers` and :mod:`convlab.validation`; their fast twins are in
:mod:`convlab.fast_layers`.
"""

import numpy as np

from convlab.layers import (INDEX_MAX, _check_dout, _float_dtype, conv_backward_naive,
                            conv_forward_naive, conv_output_size, pool_output_size)
from convlab.validation import check_int

# --------------------------------------------------------------------------
# The general convolution: dilation and groups
# --------------------------------------------------------------------------


def conv_general_settings(conv_param):
    """Read the four settings of a general convolution from ``conv_param``.

    Parameters
    ----------
    conv_param : dict
        ``'stride'`` (positive int) and ``'pad'`` (non-negative int), as for
        :func:`convlab.layers.conv_forward_naive`; optional ``'dilation'``
        and ``'groups'`` (positive ints, default 1).

    Returns
    -------
    (stride, pad, dilation, groups) : tuple of int

    Raises
    ------
    ValueError
        If a key is missing or a value is not an integer in its range
        (the message names ``conv_param['...']``).
    """
    stride, pad = _required_int(conv_param, "stride", 1), _required_int(conv_param, "pad", 0)
    dilation = check_int("conv_param['dilation']", conv_param.get("dilation", 1))
    groups = check_int("conv_param['groups']", conv_param.get("groups", 1))
    return stride, pad, dilation, groups


def _required_int(conv_param, key, minimum):
    """``conv_param[key]``, which must be present, as an int of at least ``minimum``."""
    if key not in conv_param:
        raise ValueError(f"conv_param must contain '{key}'; got keys {sorted(conv_param)}")
    return check_int(f"conv_param['{key}']", conv_param[key], minimum)


def conv_general_output_size(x_shape, w_shape, conv_param):
    """Spatial size of the output of a dilated and/or grouped convolution, after checking the input.

    A filter of ``HH`` taps dilated by ``d`` spans ``(HH - 1) * d + 1``
    pixels, so along each axis::

        H_out = 1 + (H + 2 * pad - ((HH - 1) * dilation + 1)) // stride

    and, as in :func:`convlab.layers.conv_output_size`, the division must be
    exact. With ``groups = G`` the ``C`` input channels are split into ``G``
    slices of ``C / G``, and the ``F`` filters into ``G`` sets of ``F / G``,
    each seeing only its own slice: ``w`` has ``C / G`` channels.

    Parameters
    ----------
    x_shape : tuple of int
        Shape ``(N, C, H, W)`` of the input.
    w_shape : tuple of int
        Shape ``(F, C / groups, HH, WW)`` of the filters.
    conv_param : dict
        ``'stride'``, ``'pad'``, and optional ``'dilation'``, ``'groups'``
        (see :func:`conv_general_settings`).

    Returns
    -------
    (H_out, W_out) : tuple of int

    Raises
    ------
    ValueError
        If a shape is not 4-D, a setting is out of range, ``groups`` does
        not divide ``C`` or ``F``, ``w`` does not have ``C / groups``
        channels, a filter is empty, or the dilated filter is larger than
        the padded input or does not tile it with this stride (and what
        :func:`convlab.layers.conv_output_size` rejects: strides and padded
        planes beyond :data:`convlab.layers.INDEX_MAX`).
    """
    x_shape, w_shape = tuple(x_shape), tuple(w_shape)
    if len(x_shape) != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got shape {x_shape}")
    if len(w_shape) != 4:
        raise ValueError(f"w must have shape (F, C / groups, HH, WW); got shape {w_shape}")
    stride, pad, dilation, groups = conv_general_settings(conv_param)
    N, C, H, W = x_shape
    F, C_group, HH, WW = w_shape
    if C % groups:
        raise ValueError(f"conv_param['groups'] = {groups} must divide the {C} channels of x (shape {x_shape})")
    if F % groups:
        raise ValueError(f"conv_param['groups'] = {groups} must divide the {F} filters of w (shape {w_shape})")
    if C_group * groups != C:
        raise ValueError(
            f"w must have C / groups = {C // groups} channels for x of shape {x_shape} and "
            f"conv_param['groups'] = {groups}; got shape {w_shape} ({C_group} channels)"
        )
    if HH <= 0 or WW <= 0:
        raise ValueError(f"w must have a non-empty filter; got shape {w_shape}")
    span = ((HH - 1) * dilation + 1, (WW - 1) * dilation + 1)
    try:
        return conv_output_size(x_shape, (F, C) + span, {"stride": stride, "pad": pad})
    except ValueError as error:
        if dilation == 1:
            raise
        raise ValueError(f"{error} (the filters of w, shape {w_shape}, dilated by conv_param['dilation'] = "
                         f"{dilation}, span {span[0]} x {span[1]} pixels)") from None


def _dilated_filters(w, dilation):
    """``w`` (F, C, HH, WW) with ``dilation - 1`` zeros between its taps: (F, C, (HH-1)d+1, (WW-1)d+1)."""
    F, C, HH, WW = w.shape
    dilated = np.zeros((F, C, (HH - 1) * dilation + 1, (WW - 1) * dilation + 1), dtype=w.dtype)
    dilated[:, :, ::dilation, ::dilation] = w
    return dilated


def conv_general_forward_naive(x, w, b, conv_param):
    """Naive forward pass of a convolution with dilation and groups.

    With ``d = dilation``, ``G = groups``, ``C_g = C / G`` input channels and
    ``F_g = F / G`` filters per group, filter ``f`` belongs to group
    ``g = f // F_g`` and sees only the channels ``g * C_g ... (g + 1) * C_g - 1``::

        out[n, f, i, j] = b[f] + sum over c < C_g, p < HH, q < WW of
            w[f, c, p, q] * x_padded[n, g * C_g + c, i * stride + p * d, j * stride + q * d]

    ``dilation = groups = 1`` is :func:`convlab.layers.conv_forward_naive`;
    ``groups = C`` (and ``F`` a multiple of ``C``) is the depthwise
    convolution.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
        Input images.
    w : ndarray of shape (F, C / groups, HH, WW)
        Filters.
    b : ndarray of shape (F,)
        Biases.
    conv_param : dict
        ``'stride'`` (positive int), ``'pad'`` (non-negative int), optional
        ``'dilation'`` and ``'groups'`` (positive ints, default 1).

    Returns
    -------
    out : ndarray of shape (N, F, H_out, W_out)
        ``H_out = 1 + (H + 2 * pad - (HH - 1) * dilation - 1) // stride``,
        likewise ``W_out``; in the NumPy result dtype of ``x``, ``w`` and ``b``.
    cache : tuple
        ``(x, w, b, conv_param)`` for :func:`conv_general_backward_naive`.

    Raises
    ------
    ValueError
        Everything :func:`conv_general_output_size` rejects, and ``b`` not
        of shape ``(F,)``.
    """
    x, w, b = np.asarray(x), np.asarray(w), np.asarray(b)
    H_out, W_out = conv_general_output_size(x.shape, w.shape, conv_param)
    stride, pad, d, groups = conv_general_settings(conv_param)
    N, C, H, W = x.shape
    F, C_g, HH, WW = w.shape
    if b.shape != (F,):
        raise ValueError(f"b must have shape ({F},) to match w of shape {w.shape}; got shape {b.shape}")
    out = np.zeros((N, F, H_out, W_out), dtype=_float_dtype(x, w, b))
    # BEGIN SOLUTION conv_general.forward
    F_g = F // groups
    dilated = _dilated_filters(w, d)
    for g in range(groups):
        channels, filters = slice(g * C_g, (g + 1) * C_g), slice(g * F_g, (g + 1) * F_g)
        # each group is an ordinary convolution of its channels with its dilated filters
        out[:, filters], _ = conv_forward_naive(x[:, channels], dilated[filters], b[filters],
                                                {"stride": stride, "pad": pad})
    # END SOLUTION
    return out, (x, w, b, conv_param)


def conv_general_backward_naive(dout, cache):
    """Naive backward pass of :func:`conv_general_forward_naive`.

    Each output ``out[n, f, i, j]`` read the taps of one dilated window of
    its group's channels and the whole filter ``w[f]``; its upstream
    gradient goes back to both, tap by tap.

    Parameters
    ----------
    dout : ndarray of shape (N, F, H_out, W_out)
        Upstream gradient.
    cache : tuple
        ``(x, w, b, conv_param)`` from :func:`conv_general_forward_naive`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    dw : ndarray of shape (F, C / groups, HH, WW)
    db : ndarray of shape (F,)
    """
    x, w, b, conv_param = cache
    H_out, W_out = conv_general_output_size(x.shape, w.shape, conv_param)
    stride, pad, d, groups = conv_general_settings(conv_param)
    N, C, H, W = x.shape
    F, C_g, HH, WW = w.shape
    _check_dout(dout, (N, F, H_out, W_out))
    F_g = F // groups
    dtype = _float_dtype(x, w, b, dout)
    dilated = _dilated_filters(w, d)
    dx = np.zeros(x.shape, dtype=dtype)
    dw = np.zeros(w.shape, dtype=dtype)
    for g in range(groups):
        channels, filters = slice(g * C_g, (g + 1) * C_g), slice(g * F_g, (g + 1) * F_g)
        cache_g = (x[:, channels], dilated[filters], b[filters], {"stride": stride, "pad": pad})
        dx[:, channels], dw_dilated, _ = conv_backward_naive(dout[:, filters], cache_g)
        dw[filters] = dw_dilated[:, :, ::d, ::d]      # the gradient of the taps that exist
    db = dout.sum(axis=(0, 2, 3)).astype(dtype, copy=False)
    return dx, dw, db


# --------------------------------------------------------------------------
# Transposed convolution
# --------------------------------------------------------------------------


def conv_transpose_settings(conv_param):
    """Read the settings of a transposed convolution from ``conv_param``.

    Parameters
    ----------
    conv_param : dict
        ``'stride'`` (positive int), ``'pad'`` (non-negative int) and
        optional ``'output_padding'`` (non-negative int smaller than the
        stride, default 0).

    Returns
    -------
    (stride, pad, output_padding) : tuple of int

    Raises
    ------
    ValueError
        If a key is missing or a value is out of range (the message names
        ``conv_param['...']``).
    """
    stride, pad = _required_int(conv_param, "stride", 1), _required_int(conv_param, "pad", 0)
    output_padding = check_int("conv_param['output_padding']", conv_param.get("output_padding", 0), 0)
    if stride > INDEX_MAX:
        raise ValueError(f"conv_param['stride'] must be at most 2**31 - 1; got {stride}")
    if output_padding >= stride:
        raise ValueError(f"conv_param['output_padding'] must be smaller than conv_param['stride'] = {stride}; "
                         f"got {output_padding}")
    return stride, pad, output_padding


def conv_transpose_output_size(x_shape, w_shape, conv_param):
    """Spatial size of the output of a transposed convolution, after checking the input.

    Input pixel ``i`` scatters its filter onto the output rows
    ``i * stride - pad ... i * stride - pad + HH - 1``; the rows that no
    pixel reaches at the end are ``output_padding``::

        H_out = (H - 1) * stride - 2 * pad + HH + output_padding

    The convolution with the same ``w``, ``stride`` and ``pad`` maps an
    ``H_out x W_out`` image back to ``H x W`` (``output_padding < stride``
    picks one of the ``stride`` sizes it maps to ``H``).

    Parameters
    ----------
    x_shape : tuple of int
        Shape ``(N, C, H, W)`` of the input.
    w_shape : tuple of int
        Shape ``(C, F, HH, WW)`` of the filters: input channels first, as
        the ``w`` of the convolution this one transposes.
    conv_param : dict
        See :func:`conv_transpose_settings`.

    Returns
    -------
    (H_out, W_out) : tuple of int

    Raises
    ------
    ValueError
        If a shape is not 4-D, ``w`` does not have ``C`` rows, a filter is
        empty, a setting is out of range, the output would have fewer than
        one row or column (too much ``pad``), or its planes before cropping,
        ``((H - 1) * stride + HH) x ((W - 1) * stride + WW)``, have more than
        :data:`convlab.layers.INDEX_MAX` pixels.
    """
    x_shape, w_shape = tuple(x_shape), tuple(w_shape)
    if len(x_shape) != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got shape {x_shape}")
    if len(w_shape) != 4:
        raise ValueError(f"w must have shape (C, F, HH, WW); got shape {w_shape}")
    stride, pad, output_padding = conv_transpose_settings(conv_param)
    N, C, H, W = x_shape
    Cw, F, HH, WW = w_shape
    if Cw != C:
        raise ValueError(f"w must have shape (C, F, HH, WW) with C = {C}, the channels of x (shape {x_shape}); "
                         f"got shape {w_shape}")
    if HH <= 0 or WW <= 0:
        raise ValueError(f"w must have a non-empty filter; got shape {w_shape}")
    if H <= 0 or W <= 0:
        raise ValueError(f"x must have non-empty feature maps; got shape {x_shape}")
    full_h, full_w = (H - 1) * stride + HH, (W - 1) * stride + WW
    if full_h * full_w > INDEX_MAX:
        raise ValueError(f"x (shape {x_shape}) with conv_param['stride'] = {stride} and w (shape {w_shape}) "
                         f"scatters onto planes of {full_h} x {full_w} = {full_h * full_w} pixels; at most "
                         f"2**31 - 1 pixels per plane are supported")
    H_out, W_out = full_h - 2 * pad + output_padding, full_w - 2 * pad + output_padding
    if H_out < 1 or W_out < 1:
        raise ValueError(
            f"conv_param['pad'] = {pad} crops the output of the transposed convolution to {H_out} x {W_out}: "
            f"need (H - 1) * stride + HH - 2 * pad + output_padding >= 1 (and likewise for W) for x of "
            f"shape {x_shape} and w of shape {w_shape}"
        )
    return H_out, W_out


def _crop_rows(pad, size, full):
    """How many of ``size`` output rows the uncropped ``full`` rows reach, starting at ``pad``."""
    return min(size, full - pad)


def conv_transpose_forward_naive(x, w, b, conv_param):
    """Naive forward pass of a transposed convolution: every input pixel scatters its filter.

    Before cropping, the output is::

        full[n, f, i * stride + p, j * stride + q] += x[n, c, i, j] * w[c, f, p, q]

    summed over ``c``, ``i``, ``j``, ``p``, ``q``; then ``pad`` rows and
    columns are cropped on every side (zero rows are added at the end if
    ``output_padding`` asks for more than the crop left) and the bias added.
    This is the ``dx`` of :func:`convlab.layers.conv_backward_naive` for the
    convolution with filters ``w``: the transposed convolution maps like
    the adjoint (the transposed matrix) of that convolution.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
        Input.
    w : ndarray of shape (C, F, HH, WW)
        Filters, input channels first (PyTorch's ``conv_transpose2d`` layout).
    b : ndarray of shape (F,)
        Biases.
    conv_param : dict
        ``'stride'`` (positive int), ``'pad'`` (non-negative int), optional
        ``'output_padding'`` (``0 <= output_padding < stride``, default 0).

    Returns
    -------
    out : ndarray of shape (N, F, H_out, W_out)
        ``H_out = (H - 1) * stride - 2 * pad + HH + output_padding``,
        likewise ``W_out``; in the NumPy result dtype of ``x``, ``w``, ``b``.
    cache : tuple
        ``(x, w, b, conv_param)`` for :func:`conv_transpose_backward_naive`.

    Raises
    ------
    ValueError
        Everything :func:`conv_transpose_output_size` rejects, and ``b``
        not of shape ``(F,)``.
    """
    x, w, b = np.asarray(x), np.asarray(w), np.asarray(b)
    H_out, W_out = conv_transpose_output_size(x.shape, w.shape, conv_param)
    stride, pad, _ = conv_transpose_settings(conv_param)
    N, C, H, W = x.shape
    _, F, HH, WW = w.shape
    if b.shape != (F,):
        raise ValueError(f"b must have shape ({F},) to match w of shape {w.shape}; got shape {b.shape}")
    # BEGIN SOLUTION conv_transpose.forward
    dtype = _float_dtype(x, w, b)
    # the uncropped output is the input gradient of a convolution with filters w, stride
    # `stride` and no padding, whose output gradient is x
    V_h, V_w = (H - 1) * stride + HH, (W - 1) * stride + WW
    full, _, _ = conv_backward_naive(x, (np.zeros((N, F, V_h, V_w), dtype), w, np.zeros(C, dtype),
                                         {"stride": stride, "pad": 0}))
    rows, cols = _crop_rows(pad, H_out, V_h), _crop_rows(pad, W_out, V_w)
    out = np.zeros((N, F, H_out, W_out), dtype=dtype)
    out[:, :, :rows, :cols] = full[:, :, pad:pad + rows, pad:pad + cols]
    out += b[:, None, None]
    # END SOLUTION
    return out, (x, w, b, conv_param)


def conv_transpose_backward_naive(dout, cache):
    """Naive backward pass of :func:`conv_transpose_forward_naive`.

    ``dout`` is padded back to the uncropped output; then each input pixel
    ``x[n, :, i, j]`` collects the window of it that its filter was
    scattered onto -- which makes ``dx`` the *convolution* of ``dout`` with
    ``w`` (stride ``stride``, pad ``pad``) -- and ``dw`` is that window
    times the pixel's values.

    Parameters
    ----------
    dout : ndarray of shape (N, F, H_out, W_out)
        Upstream gradient.
    cache : tuple
        ``(x, w, b, conv_param)`` from :func:`conv_transpose_forward_naive`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    dw : ndarray of shape (C, F, HH, WW)
    db : ndarray of shape (F,)
    """
    x, w, b, conv_param = cache
    H_out, W_out = conv_transpose_output_size(x.shape, w.shape, conv_param)
    stride, pad, _ = conv_transpose_settings(conv_param)
    N, C, H, W = x.shape
    _, F, HH, WW = w.shape
    _check_dout(dout, (N, F, H_out, W_out))
    dtype = _float_dtype(x, w, b, dout)
    dout_full = np.zeros((N, F, (H - 1) * stride + HH, (W - 1) * stride + WW), dtype=dtype)
    rows, cols = _crop_rows(pad, H_out, dout_full.shape[2]), _crop_rows(pad, W_out, dout_full.shape[3])
    dout_full[:, :, pad:pad + rows, pad:pad + cols] = dout[:, :, :rows, :cols]
    no_bias = np.zeros(C, dtype)
    # dx: the convolution of the uncropped dout with w; dw: that convolution's weight gradient
    dx, _ = conv_forward_naive(dout_full, w, no_bias, {"stride": stride, "pad": 0})
    _, dw, _ = conv_backward_naive(x, (dout_full, w, no_bias, {"stride": stride, "pad": 0}))
    db = dout.sum(axis=(0, 2, 3)).astype(dtype, copy=False)
    return dx, dw, db


# --------------------------------------------------------------------------
# Average pooling and global average pooling
# --------------------------------------------------------------------------


def avg_pool_forward_naive(x, pool_param):
    """Naive forward pass of average pooling: the mean of every window.

    ``out[n, c, i, j]`` is the mean of
    ``x[n, c, i*stride : i*stride + pool_height, j*stride : j*stride + pool_width]``.
    Windows may overlap and need not be square; as for max pooling, they
    must tile the input exactly.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    pool_param : dict
        ``'pool_height'``, ``'pool_width'`` and ``'stride'`` (positive ints).

    Returns
    -------
    out : ndarray of shape (N, C, H_out, W_out)
        ``H_out = 1 + (H - pool_height) // stride``, likewise ``W_out``; in
        the dtype of ``x`` if it is floating, else float64.
    cache : tuple
        ``(x, pool_param)`` for :func:`avg_pool_backward_naive`.

    Raises
    ------
    ValueError
        Everything :func:`convlab.layers.pool_output_size` rejects.
    """
    x = np.asarray(x)
    H_out, W_out = pool_output_size(x.shape, pool_param)
    N, C, H, W = x.shape
    ph, pw, stride = int(pool_param["pool_height"]), int(pool_param["pool_width"]), int(pool_param["stride"])
    # BEGIN SOLUTION avg_pool.forward
    out = np.zeros((N, C, H_out, W_out), dtype=_float_dtype(x))
    for row in range(H_out):
        for col in range(W_out):
            # one window of every image and channel at once
            window = x[:, :, row * stride:row * stride + ph, col * stride:col * stride + pw]
            out[:, :, row, col] = window.mean(axis=(2, 3))
    # END SOLUTION
    return out, (x, pool_param)


def avg_pool_backward_naive(dout, cache):
    """Naive backward pass of average pooling.

    Every input of a window contributed ``1 / (pool_height * pool_width)``
    of its mean, so each receives that share of the window's upstream
    gradient; where windows overlap, an input adds up the shares of every
    window it is in.

    Parameters
    ----------
    dout : ndarray of shape (N, C, H_out, W_out)
        Upstream gradient.
    cache : tuple
        ``(x, pool_param)`` from :func:`avg_pool_forward_naive`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    """
    x, pool_param = cache
    H_out, W_out = pool_output_size(x.shape, pool_param)
    N, C, H, W = x.shape
    _check_dout(dout, (N, C, H_out, W_out))
    ph, pw, stride = int(pool_param["pool_height"]), int(pool_param["pool_width"]), int(pool_param["stride"])
    dx = np.zeros(x.shape, dtype=_float_dtype(x, dout))
    # BEGIN SOLUTION avg_pool.backward
    for row in range(H_out):
        for col in range(W_out):
            # every pixel of the window gets an equal share of its output's gradient
            share = dout[:, :, row, col] / (ph * pw)
            dx[:, :, row * stride:row * stride + ph, col * stride:col * stride + pw] += share[:, :, None, None]
    # END SOLUTION
    return dx


def _check_maps(x):
    """``x`` as an array of shape (N, C, H, W) with non-empty feature maps."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got shape {x.shape}")
    if x.shape[2] * x.shape[3] == 0:
        raise ValueError(f"x must have non-empty feature maps; got shape {x.shape}")
    return x


def global_avg_pool_forward_naive(x):
    """Forward pass of global average pooling: the mean of each feature map.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)

    Returns
    -------
    out : ndarray of shape (N, C)
        ``out[n, c] = sum of x[n, c] / (H * W)``; in the dtype of ``x`` if
        it is floating, else float64.
    cache : tuple
        ``x_shape`` for :func:`global_avg_pool_backward_naive`.

    Raises
    ------
    ValueError
        If ``x`` is not 4-D or its maps are empty.
    """
    x = _check_maps(x)
    N, C, H, W = x.shape
    out = np.zeros((N, C), dtype=_float_dtype(x))
    for n in range(N):
        for c in range(C):
            out[n, c] = np.sum(x[n, c]) / (H * W)
    return out, (x.shape,)


def global_avg_pool_backward_naive(dout, cache):
    """Backward pass of global average pooling: an even share of ``dout`` to every pixel.

    Parameters
    ----------
    dout : ndarray of shape (N, C)
    cache : tuple
        From :func:`global_avg_pool_forward_naive`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
        ``dx[n, c, h, w] = dout[n, c] / (H * W)``.
    """
    (x_shape,) = cache
    N, C, H, W = x_shape
    _check_dout(dout, (N, C))
    dx = np.zeros(x_shape, dtype=_float_dtype(dout))
    for n in range(N):
        for c in range(C):
            dx[n, c] = dout[n, c] / (H * W)
    return dx
