"""Checking a cache before a kernel trusts it.

The kernels index their buffers with the shapes, strides and window
positions a cache holds, without bounds checks (that is what makes them
fast).  A cache that did not come unchanged from the matching forward pass
-- edited by hand, pickled and mangled, or simply another layer's -- could
make them read or write outside their buffers.  So every backward pass
first checks its cache: the entry types and dtypes, every shape against the
others and against ``dout``, and the recorded window positions of max
pooling, in O(1) or one vectorised pass over ``argmax``.  What this cannot
catch is a consistent forgery, say an ``argmax`` pointing at another pixel
of the same window: that is the gradient of some other input, computed
safely.
"""

import numbers

import numpy as np

from convlab.conv_family import conv_transpose_output_size
from convlab.fast_layers.inputs import (_ACTIVATION_CODES, _INT_MAX, _KERNEL_DTYPES, _check_padded_image,
                                        _check_pool_plane)
from convlab.layers import conv_output_size, pool_output_size


def _cache_entries(cache, length, layer):
    """``cache`` as a tuple of ``length`` entries, as ``layer`` returns it."""
    if not isinstance(cache, tuple):
        raise TypeError(f"cache must be the tuple returned by {layer}; got {type(cache).__name__}")
    if len(cache) != length:
        raise ValueError(f"cache must be the {length}-tuple returned by {layer}; got a tuple of "
                         f"{len(cache)} entries (the cache of another layer?)")
    return cache


def _cached_array(value, name, ndim, dtypes=_KERNEL_DTYPES):
    """Check that cache entry ``name`` is a C-contiguous ``ndim``-D array of one of ``dtypes``."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"cache entry {name} must be a NumPy array; got {type(value).__name__}")
    if value.ndim != ndim:
        raise ValueError(f"cache entry {name} must have {ndim} dimensions; got shape {value.shape}")
    if value.dtype not in dtypes:
        raise TypeError(f"cache entry {name} must have dtype "
                        f"{' or '.join(str(d) for d in dtypes)}; got {value.dtype}")
    if not value.flags.c_contiguous:
        raise ValueError(f"cache entry {name} must be C-contiguous, as the forward pass made it")
    return value


def _cached_int(value, name, least):
    """Check that cache entry ``name`` is an integer in ``[least, 2**31 - 1]``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"cache entry {name} must be an integer; got {value!r}")
    if not least <= value <= _INT_MAX:
        raise ValueError(f"cache entry {name} must be at least {least} (and fit a C int); got {value}")
    return int(value)


def _cached_shape(value, name):
    """Check that cache entry ``name`` is a shape ``(N, C, H, W)`` of non-negative integers."""
    if not isinstance(value, tuple) or len(value) != 4:
        raise TypeError(f"cache entry {name} must be a shape (N, C, H, W); got {value!r}")
    return tuple(_cached_int(v, name, 0) for v in value)


def _conv_sizes(x_shape, w_shape, stride, pad):
    """``(H_out, W_out)`` of a cached convolution, or a ValueError naming the cache."""
    try:
        return conv_output_size(x_shape, w_shape, {"stride": stride, "pad": pad})
    except ValueError as error:
        raise ValueError(f"cache is not a consistent convolution cache: {error}") from None


def _conv_cache(cache):
    """The checked cache of :func:`~convlab.fast_layers.conv_forward_fast`: ``(x, w, stride, pad, H_out, W_out)``."""
    x, w, stride, pad = _cache_entries(cache, 4, "conv_forward_fast")
    x = _cached_array(x, "x", 4)
    w = _cached_array(w, "w", 4)
    if w.dtype != x.dtype:
        raise TypeError(f"cache entries x and w must have one dtype; got {x.dtype} and {w.dtype}")
    stride = _cached_int(stride, "stride", 1)
    pad = _cached_int(pad, "pad", 0)
    H_out, W_out = _conv_sizes(x.shape, w.shape, stride, pad)
    _check_padded_image(x.shape, pad, x.itemsize, "cache entry pad")
    return x, w, stride, pad, H_out, W_out


def _im2col_cache(cache):
    """The checked cache of :func:`~convlab.fast_layers.conv_forward_im2col`: ``(x_shape, w, stride, pad, cols, H_out, W_out)``."""
    x_shape, w, stride, pad, cols = _cache_entries(cache, 5, "conv_forward_im2col")
    x_shape = _cached_shape(x_shape, "x_shape")
    w = _cached_array(w, "w", 4)
    stride = _cached_int(stride, "stride", 1)
    pad = _cached_int(pad, "pad", 0)
    H_out, W_out = _conv_sizes(x_shape, w.shape, stride, pad)
    cols = _cached_array(cols, "cols", 3, (w.dtype,))
    F, C, HH, WW = w.shape
    want = (x_shape[0], C * HH * WW, H_out * W_out)
    if cols.shape != want:
        raise ValueError(f"cache entry cols must have shape (N, C * HH * WW, H_out * W_out) = {want}; "
                         f"got {cols.shape}")
    return x_shape, w, stride, pad, cols, H_out, W_out


def _pool_cache(cache):
    """The checked cache of a max pooling forward pass: ``(x_shape, argmax, dtype)``.

    The cache is ``(x_shape, argmax, dtype, (pool_height, pool_width, stride))``.
    A ``uint8`` ``argmax`` is the 2x2 stride-2 kernel's: positions 0 to 3 in
    each window of a map floor-halved from ``x_shape``.  An ``int32`` one
    holds flat in-plane indices, and each must lie in its own window.
    """
    x_shape, argmax, dtype, window = _cache_entries(cache, 4, "max_pool_forward_fast")
    N, C, H, W = _cached_shape(x_shape, "x_shape")
    argmax = _cached_array(argmax, "argmax", 4, (np.dtype(np.uint8), np.dtype(np.int32)))
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"cache entry dtype must be float32 or float64; got {dtype!r}") from None
    if dtype not in _KERNEL_DTYPES:
        raise TypeError(f"cache entry dtype must be float32 or float64; got {dtype}")
    if not isinstance(window, tuple) or len(window) != 3:
        raise TypeError(f"cache entry window must be (pool_height, pool_width, stride); got {window!r}")
    ph, pw, stride = (_cached_int(v, "window", 1) for v in window)
    if argmax.dtype == np.uint8:
        if (ph, pw, stride) != (2, 2, 2):
            raise ValueError(f"cache entry argmax of dtype uint8 belongs to 2x2 stride-2 pooling; "
                             f"got window {window}")
        want = (N, C, H // 2, W // 2)
    else:
        _check_pool_plane((N, C, H, W), "cache entry x_shape")
        try:
            want = (N, C) + pool_output_size((N, C, H, W), {"pool_height": ph, "pool_width": pw,
                                                            "stride": stride})
        except ValueError as error:
            raise ValueError(f"cache is not a consistent pooling cache: {error}") from None
    if argmax.shape != want:
        raise ValueError(f"cache entry argmax must have shape {want} for x_shape {(N, C, H, W)} "
                         f"and window {(ph, pw, stride)}; got {argmax.shape}")
    if argmax.size == 0:
        return (N, C, H, W), argmax, dtype
    if argmax.dtype == np.uint8:
        if argmax.max() > 3:
            raise ValueError(f"cache entry argmax holds window positions 0 to 3; found {argmax.max()}")
    else:
        # one pass: the row and column of every winner must lie in its window
        H_out, W_out = argmax.shape[2:]
        row, col = np.divmod(argmax, W)
        top = (np.arange(H_out) * stride)[:, None]
        left = np.arange(W_out) * stride
        inside = (row >= top) & (row < top + ph) & (col >= left) & (col < left + pw)
        if not inside.all():
            raise ValueError(f"cache entry argmax must index a pixel of each window; "
                             f"{argmax.size - np.count_nonzero(inside)} entries do not")
    return (N, C, H, W), argmax, dtype


def _cached_rows(x3, code, alpha, shape):
    """Check the entries shared by the activation and batch norm caches; return them cleaned."""
    x3 = _cached_array(x3, "x3", 3)
    code = _cached_int(code, "activation code", 0)
    if code not in _ACTIVATION_CODES.values():
        raise ValueError(f"cache entry activation code must be one of "
                         f"{sorted(_ACTIVATION_CODES.values())}; got {code}")
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"cache entry alpha must be a real number; got {alpha!r}")
    shape = _cached_shape(shape, "shape")
    N, C, H, W = shape
    if x3.shape != (N, C, H * W):
        raise ValueError(f"cache entry x3 must have shape (N, C, H * W) = {(N, C, H * W)} for "
                         f"shape {shape}; got {x3.shape}")
    return x3, code, float(alpha), shape


def _activation_cache(cache):
    """The checked cache of :func:`~convlab.fast_layers.activation_forward_fast`: ``(x3, code, alpha, shape)``."""
    return _cached_rows(*_cache_entries(cache, 4, "activation_forward_fast"))


def _bn_act_cache(cache):
    """The checked cache of :func:`~convlab.fast_layers.spatial_batchnorm_act_forward_fast`.

    ``(mode, x3, mean, invstd, weight, shift, code, alpha, shape)``: ``mean``
    and ``invstd`` float64 of shape (C,), ``weight`` and ``shift`` (gamma
    and beta in train mode, scale and shift in test mode) of shape (C,) in
    the dtype of ``x3``.
    """
    mode, x3, mean, invstd, weight, shift, code, alpha, shape = _cache_entries(
        cache, 9, "spatial_batchnorm_act_forward_fast")
    if not isinstance(mode, str) or mode not in ("train", "test"):
        raise ValueError(f"cache entry mode must be 'train' or 'test'; got {mode!r}")
    x3, code, alpha, shape = _cached_rows(x3, code, alpha, shape)
    C = x3.shape[1]
    for name, value, dtype in (("mean", mean, np.dtype(np.float64)), ("invstd", invstd, np.dtype(np.float64)),
                               ("gamma/scale", weight, x3.dtype), ("beta/shift", shift, x3.dtype)):
        _cached_array(value, name, 1, (dtype,))
        if value.shape != (C,):
            raise ValueError(f"cache entry {name} must have shape ({C},) to match x3 of shape "
                             f"{x3.shape}; got {value.shape}")
    return mode, x3, mean, invstd, weight, shift, code, alpha, shape


# --------------------------------------------------------------------------
# The convolution family (convlab.fast_layers.conv_family)
# --------------------------------------------------------------------------


def _cached_dtype(dtype):
    """Check that cache entry ``dtype`` is float32 or float64; return it as a NumPy dtype."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"cache entry dtype must be float32 or float64; got {dtype!r}") from None
    if dtype not in _KERNEL_DTYPES:
        raise TypeError(f"cache entry dtype must be float32 or float64; got {dtype}")
    return dtype


def _grouped_conv_cache(cache):
    """The checked cache of a grouped convolution by im2col and batched GEMM.

    ``(x_shape, w, stride, pad, groups, cols)``: ``w`` of shape
    ``(F, C / groups, HH, WW)``, ``cols`` the im2col columns of the whole
    input, ``(N, C * HH * WW, H_out * W_out)`` in the dtype of ``w``.
    Returns them with ``H_out, W_out``.
    """
    x_shape, w, stride, pad, groups, cols = _cache_entries(cache, 6, "a grouped convolution")
    x_shape = _cached_shape(x_shape, "x_shape")
    w = _cached_array(w, "w", 4)
    stride = _cached_int(stride, "stride", 1)
    pad = _cached_int(pad, "pad", 0)
    groups = _cached_int(groups, "groups", 1)
    F, C_group, HH, WW = w.shape
    C = x_shape[1]
    if C != C_group * groups or F % groups:
        raise ValueError(f"cache is not a consistent grouped convolution cache: w of shape {w.shape} in "
                         f"{groups} groups does not fit x_shape {x_shape}")
    H_out, W_out = _conv_sizes(x_shape, (F, C, HH, WW), stride, pad)
    cols = _cached_array(cols, "cols", 3, (w.dtype,))
    want = (x_shape[0], C * HH * WW, H_out * W_out)
    if cols.shape != want:
        raise ValueError(f"cache entry cols must have shape (N, C * HH * WW, H_out * W_out) = {want}; "
                         f"got {cols.shape}")
    return x_shape, w, stride, pad, groups, cols, H_out, W_out


def _transposed_conv_cache(cache):
    """The checked cache of :func:`~convlab.fast_layers.conv_transpose_forward_fast`.

    ``(x, w, stride, pad, output_padding)``, ``x`` and ``w`` C-contiguous of
    one dtype; returned with ``H_out, W_out``.
    """
    x, w, stride, pad, output_padding = _cache_entries(cache, 5, "conv_transpose_forward_fast")
    x = _cached_array(x, "x", 4)
    w = _cached_array(w, "w", 4)
    if w.dtype != x.dtype:
        raise TypeError(f"cache entries x and w must have one dtype; got {x.dtype} and {w.dtype}")
    params = {"stride": _cached_int(stride, "stride", 1), "pad": _cached_int(pad, "pad", 0),
              "output_padding": _cached_int(output_padding, "output_padding", 0)}
    try:
        H_out, W_out = conv_transpose_output_size(x.shape, w.shape, params)
    except ValueError as error:
        raise ValueError(f"cache is not a consistent transposed convolution cache: {error}") from None
    return x, w, params["stride"], params["pad"], params["output_padding"], H_out, W_out


def _avg_pool_cache(cache):
    """The checked cache of :func:`~convlab.fast_layers.avg_pool_forward_fast`.

    ``(x_shape, dtype, (pool_height, pool_width, stride))``; returned as
    ``(x_shape, dtype, ph, pw, stride, H_out, W_out)``.
    """
    x_shape, dtype, window = _cache_entries(cache, 3, "avg_pool_forward_fast")
    x_shape = _cached_shape(x_shape, "x_shape")
    dtype = _cached_dtype(dtype)
    if not isinstance(window, tuple) or len(window) != 3:
        raise TypeError(f"cache entry window must be (pool_height, pool_width, stride); got {window!r}")
    ph, pw, stride = (_cached_int(v, "window", 1) for v in window)
    try:
        H_out, W_out = pool_output_size(x_shape, {"pool_height": ph, "pool_width": pw, "stride": stride})
    except ValueError as error:
        raise ValueError(f"cache is not a consistent pooling cache: {error}") from None
    return x_shape, dtype, ph, pw, stride, H_out, W_out
