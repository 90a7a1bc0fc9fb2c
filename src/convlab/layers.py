"""Naive, readable forward and backward passes for the layers of a ConvNet.

Every function here is written to be checked against the math by a student:
plain loops and NumPy, no cleverness. These layers are the *oracle* that the
fast layers in :mod:`convlab.fast_layers` are tested against, so this module
never imports the fast path.

Conventions (the CS231n lineage)
--------------------------------
* A forward pass returns ``(out, cache)``; the matching backward pass takes
  ``(dout, cache)`` and returns the gradients of its inputs.
* Images are laid out as ``(N, C, H, W)``: batch, channels, height, width.
  Convolution filters are ``(F, C, HH, WW)``.
* Bad input raises :class:`ValueError` naming the argument and the shapes.
"""

import math

import numpy as np

#: The largest stride, and the most pixels in one (padded) plane, that the
#: layers accept: 2**31 - 1, the largest C ``int``.  The fast kernels take
#: strides, pads and window sizes as C ints and record max pooling's winners
#: as int32 indices inside a plane; the naive layers refuse the same inputs,
#: so that the two agree on what is an error.
INDEX_MAX = 2**31 - 1


def conv_output_size(x_shape, w_shape, conv_param):
    """Spatial size of the output of a convolution, after checking the input.

    The output size along each axis is ``1 + (H + 2 * pad - HH) // stride``;
    this function insists that the division is exact, so that the filter
    tiles the padded input with no leftover rows or columns.

    Parameters
    ----------
    x_shape : tuple of int
        Shape ``(N, C, H, W)`` of the input.
    w_shape : tuple of int
        Shape ``(F, C, HH, WW)`` of the filters.
    conv_param : dict
        ``'stride'`` (positive int) and ``'pad'`` (non-negative int).

    Returns
    -------
    (H_out, W_out) : tuple of int

    Raises
    ------
    ValueError
        If a shape has the wrong number of dimensions, the channels of ``x``
        and ``w`` differ, the stride is not positive or above
        :data:`INDEX_MAX`, the pad is negative, a padded plane
        ``(H + 2 * pad) * (W + 2 * pad)`` has more than :data:`INDEX_MAX`
        pixels, a filter is larger than the padded input, or the filter does
        not tile the padded input with this stride, and a ``conv_param``
        that asks for a ``'dilation'`` or ``'groups'`` other than 1 (this
        convolution has neither; :mod:`convlab.conv_family` has both).
    """
    for key in ("dilation", "groups"):
        if conv_param.get(key, 1) != 1:
            raise ValueError(f"conv_param['{key}'] = {conv_param[key]!r}: this convolution has no {key}; "
                             f"convlab.conv_family.conv_general_forward_naive (and "
                             f"convlab.fast_layers.conv_general_forward_fast) take it")
    x_shape, w_shape = tuple(x_shape), tuple(w_shape)
    if len(x_shape) != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got shape {x_shape}")
    if len(w_shape) != 4:
        raise ValueError(f"w must have shape (F, C, HH, WW); got shape {w_shape}")
    stride, pad = _int_param(conv_param, "conv_param", "stride"), _int_param(conv_param, "conv_param", "pad")
    N, C, H, W = x_shape
    F, Cw, HH, WW = w_shape
    if C != Cw:
        raise ValueError(
            f"x and w must have the same number of channels: x has shape {x_shape} "
            f"({C} channels) but w has shape {w_shape} ({Cw} channels)"
        )
    if stride <= 0:
        raise ValueError(f"conv_param['stride'] must be positive; got {stride}")
    if stride > INDEX_MAX:
        raise ValueError(f"conv_param['stride'] must be at most 2**31 - 1; got {stride}")
    if pad < 0:
        raise ValueError(f"conv_param['pad'] must be non-negative; got {pad}")
    if HH <= 0 or WW <= 0:
        raise ValueError(f"w must have a non-empty filter; got shape {w_shape}")
    Hp, Wp = H + 2 * pad, W + 2 * pad
    if Hp * Wp > INDEX_MAX:
        source = f"conv_param['pad'] = {pad} pads x (shape {x_shape}) to" if pad else f"x has shape {x_shape}:"
        raise ValueError(f"{source} planes of {Hp} x {Wp} = {Hp * Wp} pixels; at most 2**31 - 1 "
                         f"pixels per padded plane are supported")
    if HH > Hp or WW > Wp:
        raise ValueError(
            f"filter of w (shape {w_shape}) is larger than the padded input "
            f"({Hp}, {Wp}) of x (shape {x_shape}, pad {pad})"
        )
    if (Hp - HH) % stride or (Wp - WW) % stride:
        raise ValueError(
            f"filter {HH}x{WW} with stride {stride} does not tile the padded input "
            f"{Hp}x{Wp} of x (shape {x_shape}, pad {pad}): need (H + 2*pad - HH) "
            f"and (W + 2*pad - WW) divisible by the stride"
        )
    return 1 + (Hp - HH) // stride, 1 + (Wp - WW) // stride


def pool_output_size(x_shape, pool_param):
    """Spatial size of the output of max pooling, after checking the input.

    Parameters
    ----------
    x_shape : tuple of int
        Shape ``(N, C, H, W)`` of the input.
    pool_param : dict
        ``'pool_height'``, ``'pool_width'`` and ``'stride'`` (positive ints).

    Returns
    -------
    (H_out, W_out) : tuple of int
        ``1 + (H - pool_height) // stride`` and ``1 + (W - pool_width) // stride``.

    Raises
    ------
    ValueError
        If ``x`` is not 4-D, a parameter is not positive, the stride is above
        :data:`INDEX_MAX`, the window is larger than the input, or the window
        does not tile the input with this stride.
    """
    x_shape = tuple(x_shape)
    if len(x_shape) != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got shape {x_shape}")
    ph = _int_param(pool_param, "pool_param", "pool_height")
    pw = _int_param(pool_param, "pool_param", "pool_width")
    stride = _int_param(pool_param, "pool_param", "stride")
    for name, value in (("pool_height", ph), ("pool_width", pw), ("stride", stride)):
        if value <= 0:
            raise ValueError(f"pool_param['{name}'] must be positive; got {value}")
    if stride > INDEX_MAX:
        raise ValueError(f"pool_param['stride'] must be at most 2**31 - 1; got {stride}")
    N, C, H, W = x_shape
    if ph > H or pw > W:
        raise ValueError(
            f"pooling window {ph}x{pw} is larger than the input {H}x{W} of x (shape {x_shape})"
        )
    if (H - ph) % stride or (W - pw) % stride:
        raise ValueError(
            f"pooling window {ph}x{pw} with stride {stride} does not tile the input "
            f"{H}x{W} of x (shape {x_shape}): need (H - pool_height) and "
            f"(W - pool_width) divisible by the stride"
        )
    return 1 + (H - ph) // stride, 1 + (W - pw) // stride


def _int_param(params, dict_name, key):
    """Read ``params[key]`` as an int, with a clear error if absent or not integral."""
    if key not in params:
        raise ValueError(f"{dict_name} must contain '{key}'; got keys {sorted(params)}")
    value = params[key]
    try:
        integral = not isinstance(value, (bool, np.bool_)) and int(value) == value
    except (TypeError, ValueError, OverflowError):  # None, a string, NaN, an infinity
        integral = False
    if not integral:
        raise ValueError(f"{dict_name}['{key}'] must be an integer; got {value!r}")
    return int(value)


def _check_dout(dout, expected_shape):
    """Check that ``dout`` has the shape of the forward pass's output."""
    expected_shape = tuple(expected_shape)
    if np.shape(dout) != expected_shape:
        raise ValueError(
            f"dout must have the shape of the forward output {expected_shape}; "
            f"got shape {np.shape(dout)}"
        )


def _float_dtype(*arrays):
    """The NumPy result dtype of ``arrays``, or float64 if that is not floating."""
    dtype = np.result_type(*arrays)
    return dtype if np.issubdtype(dtype, np.inexact) else np.dtype(np.float64)


# --------------------------------------------------------------------------
# Affine (fully connected) layer
# --------------------------------------------------------------------------


def affine_forward(x, w, b):
    """Forward pass of an affine (fully connected) layer: ``out = x w + b``.

    Each example is flattened into a row vector of length
    ``D = d_1 * ... * d_k`` before the product.

    Parameters
    ----------
    x : ndarray of shape (N, d_1, ..., d_k)
        Minibatch of ``N`` examples.
    w : ndarray of shape (D, M)
        Weights.
    b : ndarray of shape (M,)
        Biases.

    Returns
    -------
    out : ndarray of shape (N, M)
    cache : tuple
        ``(x, w, b)`` for :func:`affine_backward`.

    Raises
    ------
    ValueError
        If ``x`` has no batch axis, ``w`` is not 2-D, the flattened size of
        ``x`` differs from ``w.shape[0]`` or ``b`` is not of shape ``(M,)``.
    """
    x, w, b = np.asarray(x), np.asarray(w), np.asarray(b)
    if x.ndim < 1:
        raise ValueError(f"x must have shape (N, d_1, ..., d_k); got shape {x.shape}")
    if w.ndim != 2:
        raise ValueError(f"w must have shape (D, M); got shape {w.shape}")
    N = x.shape[0]
    D = int(np.prod(x.shape[1:]))
    if D != w.shape[0]:
        raise ValueError(
            f"x of shape {x.shape} flattens to (N, D) = ({N}, {D}) but w has shape "
            f"{w.shape}: need w.shape[0] == D"
        )
    if b.shape != (w.shape[1],):
        raise ValueError(f"b must have shape ({w.shape[1]},) to match w of shape {w.shape}; got shape {b.shape}")
    out = x.reshape(N, D) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """Backward pass of an affine layer.

    Parameters
    ----------
    dout : ndarray of shape (N, M)
        Upstream gradient.
    cache : tuple
        ``(x, w, b)`` from :func:`affine_forward`.

    Returns
    -------
    dx : ndarray of shape (N, d_1, ..., d_k)
    dw : ndarray of shape (D, M)
    db : ndarray of shape (M,)
    """
    x, w, b = cache
    N = x.shape[0]
    _check_dout(dout, (N, w.shape[1]))
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(N, -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


# --------------------------------------------------------------------------
# Nonlinearities
# --------------------------------------------------------------------------


def relu_forward(x):
    """Forward pass of a rectified linear unit: ``out = max(0, x)``.

    Parameters
    ----------
    x : ndarray of any shape

    Returns
    -------
    out : ndarray, same shape and dtype as ``x``
    cache : ndarray
        ``x`` itself, for :func:`relu_backward`.
    """
    x = np.asarray(x)
    out = np.maximum(x, 0).astype(x.dtype, copy=False)
    return out, x


def relu_backward(dout, cache):
    """Backward pass of a ReLU.

    The gradient passes where the input was strictly positive and is zero
    elsewhere (including at ``x == 0``).

    Parameters
    ----------
    dout : ndarray, same shape as the input ``x``
    cache : ndarray
        ``x`` from :func:`relu_forward`.

    Returns
    -------
    dx : ndarray, same shape as ``x``
    """
    x = cache
    _check_dout(dout, x.shape)
    return dout * (x > 0)


def leaky_relu_forward(x, alpha=0.01):
    """Forward pass of a leaky ReLU: ``out = x`` if ``x > 0`` else ``alpha * x``.

    Parameters
    ----------
    x : ndarray of any shape
    alpha : float
        Slope for negative inputs.

    Returns
    -------
    out : ndarray, same shape and dtype as ``x``
    cache : tuple
        ``(x, alpha)`` for :func:`leaky_relu_backward`.
    """
    x = np.asarray(x)
    out = np.where(x > 0, x, alpha * x).astype(x.dtype, copy=False)
    return out, (x, alpha)


def leaky_relu_backward(dout, cache):
    """Backward pass of a leaky ReLU (slope ``alpha`` where ``x <= 0``).

    Parameters
    ----------
    dout : ndarray, same shape as the input ``x``
    cache : tuple
        ``(x, alpha)`` from :func:`leaky_relu_forward`.

    Returns
    -------
    dx : ndarray, same shape as ``x``
    """
    x, alpha = cache
    _check_dout(dout, x.shape)
    return np.where(x > 0, dout, alpha * dout).astype(np.result_type(dout), copy=False)


# --------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------


def conv_forward_naive(x, w, b, conv_param):
    """Naive forward pass of a convolutional layer: plain loops over outputs.

    The input is zero-padded by ``pad`` on every side of both spatial axes;
    each filter then slides over it with step ``stride``::

        out[n, f, i, j] = b[f] + sum over c, p, q of
                          w[f, c, p, q] * x_padded[n, c, i*stride + p, j*stride + q]

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
        Input images.
    w : ndarray of shape (F, C, HH, WW)
        Filters.
    b : ndarray of shape (F,)
        Biases.
    conv_param : dict
        ``'stride'`` (positive int) and ``'pad'`` (non-negative int).

    Returns
    -------
    out : ndarray of shape (N, F, H_out, W_out)
        With ``H_out = 1 + (H + 2 * pad - HH) // stride`` and similarly for
        ``W_out``. Its dtype is the NumPy result type of ``x``, ``w`` and
        ``b`` (float32 inputs give a float32 output).
    cache : tuple
        ``(x, w, b, conv_param)`` for :func:`conv_backward_naive`.

    Raises
    ------
    ValueError
        Everything :func:`conv_output_size` rejects, and ``b`` not of shape ``(F,)``.
    """
    x, w, b = np.asarray(x), np.asarray(w), np.asarray(b)
    H_out, W_out = conv_output_size(x.shape, w.shape, conv_param)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    if b.shape != (F,):
        raise ValueError(f"b must have shape ({F},) to match w of shape {w.shape}; got shape {b.shape}")
    # BEGIN SOLUTION conv.forward
    stride, pad = int(conv_param["stride"]), int(conv_param["pad"])
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((N, F, H_out, W_out), dtype=_float_dtype(x, w, b))
    for n in range(N):
        for i in range(H_out):
            for j in range(W_out):
                top, left = i * stride, j * stride
                window = x_pad[n, :, top:top + HH, left:left + WW]  # (C, HH, WW)
                # One number per filter: the sum of the filter times the window.
                out[n, :, i, j] = np.sum(w * window, axis=(1, 2, 3)) + b
    return out, (x, w, b, conv_param)
    # END SOLUTION


def conv_backward_naive(dout, cache):
    """Naive backward pass of a convolutional layer.

    Each output ``out[n, f, i, j]`` used one window of the padded input and
    the whole filter ``w[f]``; its upstream gradient is sent back to both.

    Parameters
    ----------
    dout : ndarray of shape (N, F, H_out, W_out)
        Upstream gradient.
    cache : tuple
        ``(x, w, b, conv_param)`` from :func:`conv_forward_naive`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    dw : ndarray of shape (F, C, HH, WW)
    db : ndarray of shape (F,)
    """
    x, w, b, conv_param = cache
    H_out, W_out = conv_output_size(x.shape, w.shape, conv_param)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _check_dout(dout, (N, F, H_out, W_out))
    # BEGIN SOLUTION conv.backward
    stride, pad = int(conv_param["stride"]), int(conv_param["pad"])
    dtype = _float_dtype(x, w, b, dout)
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad = np.zeros(x_pad.shape, dtype=dtype)
    dw = np.zeros(w.shape, dtype=dtype)
    for n in range(N):
        for i in range(H_out):
            for j in range(W_out):
                top, left = i * stride, j * stride
                window = x_pad[n, :, top:top + HH, left:left + WW]  # (C, HH, WW)
                g = dout[n, :, i, j]  # (F,): one upstream gradient per filter
                dx_pad[n, :, top:top + HH, left:left + WW] += np.tensordot(g, w, axes=1)
                dw += g[:, None, None, None] * window
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    db = dout.sum(axis=(0, 2, 3)).astype(dtype, copy=False)
    return dx, dw, db
    # END SOLUTION


# --------------------------------------------------------------------------
# Max pooling
# --------------------------------------------------------------------------


def max_pool_forward_naive(x, pool_param):
    """Naive forward pass of max pooling: plain loops over outputs.

    ``out[n, c, i, j]`` is the maximum of the window
    ``x[n, c, i*stride : i*stride + pool_height, j*stride : j*stride + pool_width]``.
    Windows may overlap (``stride < pool size``) and need not be square.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    pool_param : dict
        ``'pool_height'``, ``'pool_width'`` and ``'stride'`` (positive ints).

    Returns
    -------
    out : ndarray of shape (N, C, H_out, W_out), same dtype as ``x``
        ``H_out = 1 + (H - pool_height) // stride``, similarly ``W_out``.
    cache : tuple
        ``(x, pool_param)`` for :func:`max_pool_backward_naive`.

    Raises
    ------
    ValueError
        Everything :func:`pool_output_size` rejects.
    """
    x = np.asarray(x)
    H_out, W_out = pool_output_size(x.shape, pool_param)
    N, C, H, W = x.shape
    # BEGIN SOLUTION pool.forward
    ph, pw, stride = int(pool_param["pool_height"]), int(pool_param["pool_width"]), int(pool_param["stride"])
    out = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    top, left = i * stride, j * stride
                    out[n, c, i, j] = np.max(x[n, c, top:top + ph, left:left + pw])
    return out, (x, pool_param)
    # END SOLUTION


def max_pool_backward_naive(dout, cache):
    """Naive backward pass of max pooling.

    Each window sends its upstream gradient to the input that was its
    maximum. **Ties:** when several inputs of a window share the maximum,
    the whole gradient goes to the *first* of them in row-major order
    within the window (the one ``np.argmax`` of the flattened window picks).
    The fast kernels follow the same rule. Where windows overlap, an input
    accumulates the gradients of every window it was the maximum of.

    Parameters
    ----------
    dout : ndarray of shape (N, C, H_out, W_out)
        Upstream gradient.
    cache : tuple
        ``(x, pool_param)`` from :func:`max_pool_forward_naive`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    """
    x, pool_param = cache
    H_out, W_out = pool_output_size(x.shape, pool_param)
    N, C, H, W = x.shape
    _check_dout(dout, (N, C, H_out, W_out))
    # BEGIN SOLUTION pool.backward
    ph, pw, stride = int(pool_param["pool_height"]), int(pool_param["pool_width"]), int(pool_param["stride"])
    dx = np.zeros(x.shape, dtype=_float_dtype(x, dout))
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    top, left = i * stride, j * stride
                    window = x[n, c, top:top + ph, left:left + pw]
                    p, q = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, top + p, left + q] += dout[n, c, i, j]
    return dx
    # END SOLUTION


# --------------------------------------------------------------------------
# Batch normalization
# --------------------------------------------------------------------------


def batchnorm_settings(bn_param, D, dtype):
    """Read and check ``bn_param``, creating the running statistics on first use.

    Parameters
    ----------
    bn_param : dict
        As for :func:`batchnorm_forward`.
    D : int
        Number of features (channels).
    dtype : numpy dtype
        Of running statistics created here (zeros and ones).

    Returns
    -------
    (mode, eps, momentum) : tuple of (str, float, float)
        Afterwards ``bn_param`` holds ``'running_mean'`` and
        ``'running_var'`` of shape ``(D,)``.
    """
    mode = bn_param.get("mode")
    if mode not in ("train", "test"):
        raise ValueError(f"bn_param['mode'] must be 'train' or 'test'; got {mode!r}")
    eps = _float_param(bn_param, "eps", 1e-5)
    momentum = _float_param(bn_param, "momentum", 0.9)
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"bn_param['eps'] must be positive and finite; got {eps}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"bn_param['momentum'] must be in [0, 1]; got {momentum}")
    if "running_mean" not in bn_param:
        bn_param["running_mean"] = np.zeros(D, dtype=dtype)
    if "running_var" not in bn_param:
        bn_param["running_var"] = np.ones(D, dtype=dtype)
    for key in ("running_mean", "running_var"):
        if np.shape(bn_param[key]) != (D,):
            raise ValueError(
                f"bn_param['{key}'] must have shape ({D},) to match the {D} features of x; "
                f"got shape {np.shape(bn_param[key])}"
            )
    return mode, eps, momentum


def _float_param(bn_param, key, default):
    """``bn_param[key]`` (or ``default``) as a float, with an error naming the key."""
    value = bn_param.get(key, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"bn_param['{key}'] must be a real number; got {value!r}") from None


def batchnorm_forward(x, gamma, beta, bn_param):
    """Forward pass of batch normalization over the features of ``x``.

    In ``'train'`` mode each feature is normalized with the mean and (biased)
    variance of the minibatch, then scaled by ``gamma`` and shifted by
    ``beta``; exponential running averages of the statistics are kept::

        running_mean = momentum * running_mean + (1 - momentum) * batch_mean
        running_var  = momentum * running_var  + (1 - momentum) * batch_var

    In ``'test'`` mode the running averages are used instead of the batch
    statistics, and they are not updated.

    Parameters
    ----------
    x : ndarray of shape (N, D)
    gamma : ndarray of shape (D,)
        Scale.
    beta : ndarray of shape (D,)
        Shift.
    bn_param : dict
        ``'mode'`` (``'train'`` or ``'test'``, required), ``'eps'`` (positive
        and finite, default 1e-5), ``'momentum'`` (in [0, 1], default 0.9),
        ``'running_mean'`` and
        ``'running_var'`` (arrays of shape ``(D,)``). The running statistics
        are created on first use (zeros and ones, in the dtype of ``x``) and
        the updated ones are stored back into ``bn_param``.

    Returns
    -------
    out : ndarray of shape (N, D)
    cache : dict
        Intermediate values for :func:`batchnorm_backward` and
        :func:`batchnorm_backward_alt`.

    Raises
    ------
    ValueError
        If ``x`` is not 2-D, ``gamma`` or ``beta`` is not of shape ``(D,)``,
        or ``bn_param`` has an unknown mode, an ``eps`` that is not positive
        and finite (NaN, an infinity, zero), a ``momentum`` outside [0, 1], or
        running statistics of the wrong shape.
    """
    x, gamma, beta = np.asarray(x), np.asarray(gamma), np.asarray(beta)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (N, D); got shape {x.shape}")
    N, D = x.shape
    for name, value in (("gamma", gamma), ("beta", beta)):
        if value.shape != (D,):
            raise ValueError(
                f"{name} must have shape ({D},) to match x of shape {x.shape}; got shape {value.shape}"
            )
    mode, eps, momentum = batchnorm_settings(bn_param, D, x.dtype)
    if mode == "train":
        if N < 1:
            raise ValueError(f"x must hold at least one example in train mode; got shape {x.shape}")
        mean = x.mean(axis=0)
        xmu = x - mean
        var = (xmu**2).mean(axis=0)
        running_mean, running_var = bn_param["running_mean"], bn_param["running_var"]
        bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mean
        bn_param["running_var"] = momentum * running_var + (1 - momentum) * var
    else:
        xmu = x - bn_param["running_mean"]
        var = bn_param["running_var"]
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = xmu * inv_std
    out = gamma * x_hat + beta
    cache = {"mode": mode, "x_hat": x_hat, "xmu": xmu, "inv_std": inv_std, "std": std,
             "var": var, "eps": eps, "gamma": gamma}
    return out, cache


def batchnorm_backward(dout, cache):
    """Backward pass of batch normalization, one node of the graph at a time.

    The training-mode forward pass is the chain ``mean -> xmu = x - mean ->
    var = mean(xmu**2) -> std = sqrt(var + eps) -> inv_std = 1 / std ->
    x_hat = xmu * inv_std -> out = gamma * x_hat + beta``; this function
    walks it backwards, applying the chain rule at each node. (In test mode
    the statistics are constants, so only the last two nodes matter.)

    Parameters
    ----------
    dout : ndarray of shape (N, D)
    cache : dict
        From :func:`batchnorm_forward`.

    Returns
    -------
    dx : ndarray of shape (N, D)
    dgamma : ndarray of shape (D,)
    dbeta : ndarray of shape (D,)
    """
    x_hat, xmu, inv_std = cache["x_hat"], cache["xmu"], cache["inv_std"]
    _check_dout(dout, x_hat.shape)
    N = x_hat.shape[0]
    # out = gamma * x_hat + beta
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * cache["gamma"]
    if cache["mode"] == "test":
        return dx_hat * inv_std, dgamma, dbeta
    # x_hat = xmu * inv_std   (xmu feeds two nodes; accumulate its gradient)
    dxmu = dx_hat * inv_std
    dinv_std = (dx_hat * xmu).sum(axis=0)
    # inv_std = 1 / std
    dstd = -dinv_std / cache["std"] ** 2
    # std = sqrt(var + eps)
    dvar = dstd * 0.5 / cache["std"]
    # var = mean(xmu ** 2)
    dxmu = dxmu + 2.0 * xmu * dvar / N
    # xmu = x - mean   (x feeds xmu directly and through the mean)
    dx = dxmu.copy()
    dmean = -dxmu.sum(axis=0)
    # mean = sum(x) / N
    dx += dmean / N
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout, cache):
    """Backward pass of batch normalization in simplified closed form.

    Collapsing the graph of :func:`batchnorm_backward` by hand gives, per
    feature (sums over the batch axis)::

        dx = gamma * inv_std / N * (N * dout - sum(dout) - x_hat * sum(dout * x_hat))

    Parameters
    ----------
    dout : ndarray of shape (N, D)
    cache : dict
        From :func:`batchnorm_forward`.

    Returns
    -------
    dx : ndarray of shape (N, D)
    dgamma : ndarray of shape (D,)
    dbeta : ndarray of shape (D,)
    """
    x_hat, inv_std, gamma = cache["x_hat"], cache["inv_std"], cache["gamma"]
    _check_dout(dout, x_hat.shape)
    N = x_hat.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    if cache["mode"] == "test":
        return dout * gamma * inv_std, dgamma, dbeta
    dx = (gamma * inv_std / N) * (N * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


def _channels_last(x):
    """(N, C, H, W) -> (N*H*W, C): one row per pixel, one column per channel."""
    N, C, H, W = x.shape
    return x.transpose(0, 2, 3, 1).reshape(N * H * W, C)


def _channels_first(rows, shape):
    """Inverse of :func:`_channels_last` for an input of shape ``shape``."""
    N, C, H, W = shape
    return rows.reshape(N, H, W, C).transpose(0, 3, 1, 2)


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Forward pass of spatial batch normalization.

    Each channel is normalized with statistics over the batch *and* the
    spatial axes ``(N, H, W)``: the input is viewed as ``N * H * W``
    examples of ``C`` features and handed to :func:`batchnorm_forward`.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    gamma : ndarray of shape (C,)
    beta : ndarray of shape (C,)
    bn_param : dict
        As for :func:`batchnorm_forward`; running statistics have shape ``(C,)``.

    Returns
    -------
    out : ndarray of shape (N, C, H, W)
    cache : tuple
        For :func:`spatial_batchnorm_backward`.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got shape {x.shape}")
    C = x.shape[1]
    for name, value in (("gamma", gamma), ("beta", beta)):
        if np.shape(value) != (C,):
            raise ValueError(
                f"{name} must have shape ({C},) to match the channels of x of shape {x.shape}; "
                f"got shape {np.shape(value)}"
            )
    # BEGIN SOLUTION spatial_bn.forward
    out_rows, bn_cache = batchnorm_forward(_channels_last(x), gamma, beta, bn_param)
    return _channels_first(out_rows, x.shape), (bn_cache, x.shape)
    # END SOLUTION


def spatial_batchnorm_backward(dout, cache):
    """Backward pass of spatial batch normalization.

    Parameters
    ----------
    dout : ndarray of shape (N, C, H, W)
    cache : tuple
        From :func:`spatial_batchnorm_forward`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    dgamma : ndarray of shape (C,)
    dbeta : ndarray of shape (C,)
    """
    bn_cache, x_shape = cache
    _check_dout(dout, x_shape)
    # BEGIN SOLUTION spatial_bn.backward
    drows, dgamma, dbeta = batchnorm_backward_alt(_channels_last(dout), bn_cache)
    return _channels_first(drows, x_shape), dgamma, dbeta
    # END SOLUTION


# --------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------


def dropout_forward(x, dropout_param):
    """Forward pass of inverted dropout.

    In ``'train'`` mode each input is kept with probability ``p`` and the
    kept ones are divided by ``p``, so that the expected output equals the
    input; ``'test'`` mode is then the identity.

    Parameters
    ----------
    x : ndarray of any shape
    dropout_param : dict
        ``'p'``: probability of *keeping* each input, in ``(0, 1]``;
        ``'mode'``: ``'train'`` or ``'test'``; optional ``'seed'``: if given,
        the mask is drawn from ``np.random.default_rng(seed)``, so every call
        with the same seed drops the same inputs (handy for gradient checks).

    Returns
    -------
    out : ndarray, same shape and dtype as ``x``
    cache : tuple
        ``(dropout_param, mask)``; ``mask`` (same shape as ``x``, values 0 or
        ``1/p``) is ``None`` in test mode.

    Raises
    ------
    ValueError
        If ``p`` is missing or outside ``(0, 1]`` or the mode is unknown.
    """
    x = np.asarray(x)
    if "p" not in dropout_param:
        raise ValueError(f"dropout_param must contain 'p'; got keys {sorted(dropout_param)}")
    p = float(dropout_param["p"])
    if not 0.0 < p <= 1.0:
        raise ValueError(f"dropout_param['p'] (keep probability) must be in (0, 1]; got {p}")
    mode = dropout_param.get("mode")
    if mode not in ("train", "test"):
        raise ValueError(f"dropout_param['mode'] must be 'train' or 'test'; got {mode!r}")
    if mode == "test":
        return x.copy(), (dropout_param, None, x.shape)
    rng = np.random.default_rng(dropout_param.get("seed"))
    mask = ((rng.random(x.shape) < p) / p).astype(_float_dtype(x), copy=False)
    return (x * mask).astype(x.dtype, copy=False), (dropout_param, mask, x.shape)


def dropout_backward(dout, cache):
    """Backward pass of inverted dropout.

    Parameters
    ----------
    dout : ndarray, same shape as the input ``x``
    cache : tuple
        From :func:`dropout_forward`.

    Returns
    -------
    dx : ndarray, same shape as ``x``
    """
    _, mask, x_shape = cache
    _check_dout(dout, x_shape)
    return np.array(dout, copy=True) if mask is None else dout * mask


# --------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------


def _check_scores_labels(x, y):
    """Validate class scores ``x`` (N, C) and integer labels ``y`` (N,) in [0, C)."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (N, C) of class scores; got shape {x.shape}")
    N, C = x.shape
    if y.shape != (N,):
        raise ValueError(f"y must have shape ({N},) to match x of shape {x.shape}; got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold integer class labels; got dtype {y.dtype}")
    if N and (y.min() < 0 or y.max() >= C):
        raise ValueError(
            f"y must hold labels in [0, {C}) for x of shape {x.shape}; "
            f"got labels from {y.min()} to {y.max()}"
        )
    if N == 0:
        raise ValueError(f"x must hold at least one example; got shape {x.shape}")
    return x, y


def softmax_loss(x, y, label_smoothing=0.0):
    """Softmax (cross-entropy) loss and its gradient.

    ``loss = -mean over n of log(exp(x[n, y[n]]) / sum over c of exp(x[n, c]))``,
    computed stably by subtracting each row's maximum first.

    Parameters
    ----------
    x : ndarray of shape (N, C)
        Class scores.
    y : ndarray of shape (N,)
        Integer labels, ``0 <= y[n] < C``.
    label_smoothing : float in [0, 1), default 0.0
        With ``eps = label_smoothing`` the target distribution is
        ``(1 - eps) * onehot(y) + eps / C`` instead of the one-hot vector, and
        the loss is its cross-entropy with the softmax,
        ``-mean over n of sum over c of target[n, c] * log p[n, c]``.

    Returns
    -------
    loss : float
    dx : ndarray of shape (N, C)
        Gradient of the loss with respect to ``x``, in the dtype of ``x``:
        ``(p - target) / N``.

    Raises
    ------
    ValueError
        If ``x`` is not 2-D, ``y`` is not of shape ``(N,)``, not integer, or
        holds a label outside ``[0, C)``.
    """
    x, y = _check_scores_labels(x, y)
    eps = float(label_smoothing)
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1); got {label_smoothing!r}")
    N, C = x.shape
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -(1 - eps) * log_probs[np.arange(N), y].mean()
    if eps:
        loss -= eps / C * log_probs.sum(axis=1).mean()
    dx = np.exp(log_probs)
    dx[np.arange(N), y] -= 1 - eps
    if eps:
        dx -= eps / C
    dx /= N
    return float(loss), dx


def svm_loss(x, y):
    """Multiclass SVM (hinge) loss with margin 1, and its gradient.

    ``loss = mean over n of sum over c != y[n] of max(0, x[n, c] - x[n, y[n]] + 1)``.

    Parameters
    ----------
    x : ndarray of shape (N, C)
        Class scores.
    y : ndarray of shape (N,)
        Integer labels, ``0 <= y[n] < C``.

    Returns
    -------
    loss : float
    dx : ndarray of shape (N, C)

    Raises
    ------
    ValueError
        As for :func:`softmax_loss`.
    """
    x, y = _check_scores_labels(x, y)
    N = x.shape[0]
    rows = np.arange(N)
    margins = np.maximum(0, x - x[rows, y][:, None] + 1)
    margins[rows, y] = 0
    loss = margins.sum() / N
    positive = (margins > 0).astype(_float_dtype(x))
    dx = positive
    dx[rows, y] = -positive.sum(axis=1)
    dx /= N
    return float(loss), dx
