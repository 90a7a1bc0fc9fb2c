"""Naive forward and backward passes for the layers of a modern ConvNet.

The layers that the experiments chapter (chapter 7) adds to the course's
set in :mod:`convlab.layers`, for an airbench-style network
(:mod:`convlab.classifiers.airbench_convnet`):

* the **GELU** activation, ``x * Phi(x)``, and a named **activation** that
  picks one of identity, ReLU, leaky ReLU and GELU;
* **global max pooling**, the maximum of each feature map;
* spatial batch norm with a **frozen scale** (only the shift is learned),
  and spatial batch norm followed by a named activation;
* 2x2 max pooling that halves maps of odd size (**floor pooling**).

They are oracles like the course's layers, and follow the same conventions
(forward passes return ``(out, cache)``, images are ``(N, C, H, W)``, bad
input is a :class:`ValueError` naming the argument): plain NumPy, built on
:mod:`convlab.layers` and nothing else of convlab's. Their fast twins are in
:mod:`convlab.fast_layers`. Label smoothing is the ``label_smoothing``
argument of :func:`convlab.layers.softmax_loss`.
"""

import math

import numpy as np

from convlab.layers import (_check_dout, _float_dtype, leaky_relu_backward, leaky_relu_forward,
                            max_pool_backward_naive, max_pool_forward_naive, relu_backward,
                            relu_forward, spatial_batchnorm_backward, spatial_batchnorm_forward)

# --------------------------------------------------------------------------
# GELU, global max pooling, batch norm with a frozen scale
# --------------------------------------------------------------------------


def _erf(x):
    """Elementwise error function, with :func:`math.erf` (NumPy has none)."""
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def gelu_forward(x):
    """Forward pass of the Gaussian error linear unit, ``x * Phi(x)``.

    ``Phi`` is the standard normal CDF, ``Phi(x) = (1 + erf(x / sqrt(2))) / 2``:
    GELU weights its input by how likely a standard normal variable is to be
    below it -- close to ReLU for large ``|x|``, but smooth around zero.

    Parameters
    ----------
    x : ndarray of any shape

    Returns
    -------
    out : ndarray, same shape and dtype as ``x``
    cache : ndarray
        ``x``.
    """
    x = np.asarray(x)
    phi = 0.5 * (1.0 + _erf(x / np.sqrt(2.0)))
    return (x * phi).astype(_float_dtype(x), copy=False), x


def gelu_backward(dout, cache):
    """Backward pass of GELU: ``d/dx [x Phi(x)] = Phi(x) + x phi(x)``.

    Parameters
    ----------
    dout : ndarray, same shape as ``x``
    cache : ndarray
        ``x`` from :func:`gelu_forward`.

    Returns
    -------
    dx : ndarray, same shape as ``x``
    """
    x = cache
    _check_dout(dout, x.shape)
    cdf = 0.5 * (1.0 + _erf(x / np.sqrt(2.0)))
    pdf = np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)
    return (dout * (cdf + x * pdf)).astype(_float_dtype(x, dout), copy=False)


def global_max_pool_forward(x):
    """Forward pass of global max pooling: the maximum of each feature map.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)

    Returns
    -------
    out : ndarray of shape (N, C)
    cache : tuple
        ``(x_shape, argmax)`` with ``argmax`` of shape (N, C): the flat index
        ``h * W + w`` of the first maximum of each map (ties go to the first,
        as in :func:`convlab.layers.max_pool_forward_naive`).
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got shape {x.shape}")
    N, C, H, W = x.shape
    if H * W == 0:
        raise ValueError(f"x must have non-empty feature maps; got shape {x.shape}")
    flat = x.reshape(N, C, H * W)
    argmax = flat.argmax(axis=2)
    out = np.take_along_axis(flat, argmax[:, :, None], axis=2)[:, :, 0]
    return out, (x.shape, argmax)


def global_max_pool_backward(dout, cache):
    """Backward pass of global max pooling: route each gradient to its maximum.

    Parameters
    ----------
    dout : ndarray of shape (N, C)
    cache : tuple
        From :func:`global_max_pool_forward`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    """
    x_shape, argmax = cache
    N, C, H, W = x_shape
    _check_dout(dout, (N, C))
    dx = np.zeros((N, C, H * W), dtype=_float_dtype(dout))
    np.put_along_axis(dx, argmax[:, :, None], np.asarray(dout)[:, :, None], axis=2)
    return dx.reshape(x_shape)


def spatial_batchnorm_frozen_scale_forward(x, beta, bn_param, scale=1.0):
    """Spatial batch norm whose scale is a fixed constant, not a parameter.

    ``out = scale * xhat + beta``: only the shift ``beta`` is learned. After
    batch norm the next layer is usually linear, so a learned per-channel
    scale is redundant with that layer's weights; freezing it removes
    parameters that weight decay would otherwise fight with.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    beta : ndarray of shape (C,)
    bn_param : dict
        As for :func:`convlab.layers.spatial_batchnorm_forward`.
    scale : float
        The frozen scale.

    Returns
    -------
    out : ndarray of shape (N, C, H, W)
    cache : tuple
        For :func:`spatial_batchnorm_frozen_scale_backward`.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got shape {x.shape}")
    gamma = np.full(x.shape[1], scale, dtype=_float_dtype(x))
    return spatial_batchnorm_forward(x, gamma, beta, bn_param)


def spatial_batchnorm_frozen_scale_backward(dout, cache):
    """Backward pass of :func:`spatial_batchnorm_frozen_scale_forward`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    dbeta : ndarray of shape (C,)
    """
    dx, _, dbeta = spatial_batchnorm_backward(dout, cache)
    return dx, dbeta


# --------------------------------------------------------------------------
# The naive twins of the network's special fast layers: a named activation,
# batch norm followed by an activation, and 2x2 pooling of odd-sized maps
# --------------------------------------------------------------------------

#: The activations :func:`activation_forward` knows, by name.
ACTIVATIONS = ("identity", "relu", "leaky_relu", "gelu")


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}; got {activation!r}")


def activation_forward(x, activation="relu", alpha=0.01):
    """Forward pass of the activation named ``activation``.

    Parameters
    ----------
    x : ndarray of any shape
    activation : {'identity', 'relu', 'leaky_relu', 'gelu'}
    alpha : float
        Slope of the leaky ReLU for negative inputs (unused by the others).

    Returns
    -------
    out : ndarray, same shape as ``x``
    cache : tuple
        ``(activation, cache of that activation)`` for :func:`activation_backward`.
    """
    _check_activation(activation)
    if activation == "relu":
        out, cache = relu_forward(x)
    elif activation == "leaky_relu":
        out, cache = leaky_relu_forward(x, alpha)
    elif activation == "gelu":
        out, cache = gelu_forward(x)
    else:
        out, cache = np.asarray(x), np.shape(x)
    return out, (activation, cache)


def activation_backward(dout, cache):
    """Backward pass of :func:`activation_forward`.

    Parameters
    ----------
    dout : ndarray, same shape as the input ``x``
    cache : tuple
        From :func:`activation_forward`.

    Returns
    -------
    dx : ndarray, same shape as ``x``
    """
    activation, act_cache = cache
    if activation == "relu":
        return relu_backward(dout, act_cache)
    if activation == "leaky_relu":
        return leaky_relu_backward(dout, act_cache)
    if activation == "gelu":
        return gelu_backward(dout, act_cache)
    _check_dout(dout, act_cache)
    return np.asarray(dout)


def spatial_batchnorm_act_forward(x, gamma, beta, bn_param, activation="relu", alpha=0.01):
    """Spatial batch normalization followed by an activation.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    gamma, beta : ndarray of shape (C,)
    bn_param : dict
        As for :func:`convlab.layers.spatial_batchnorm_forward`.
    activation, alpha
        As for :func:`activation_forward`.

    Returns
    -------
    out : ndarray of shape (N, C, H, W)
    cache : tuple
        For :func:`spatial_batchnorm_act_backward`.
    """
    _check_activation(activation)
    normed, bn_cache = spatial_batchnorm_forward(x, gamma, beta, bn_param)
    out, act_cache = activation_forward(normed, activation, alpha)
    return out, (bn_cache, act_cache)


def spatial_batchnorm_act_backward(dout, cache):
    """Backward pass of :func:`spatial_batchnorm_act_forward`.

    Parameters
    ----------
    dout : ndarray of shape (N, C, H, W)
    cache : tuple
        From :func:`spatial_batchnorm_act_forward`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    dgamma, dbeta : ndarray of shape (C,)
    """
    bn_cache, act_cache = cache
    return spatial_batchnorm_backward(activation_backward(dout, act_cache), bn_cache)


_POOL_2X2 = {"pool_height": 2, "pool_width": 2, "stride": 2}


def max_pool_floor_forward_naive(x):
    """2x2 max pooling with stride 2 that drops an odd last row or column.

    A map of odd height (width) has no partner for its last row (column):
    this crops it away and pools the rest with
    :func:`convlab.layers.max_pool_forward_naive`, so any map of at least 2x2
    can be halved.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), with H, W >= 2

    Returns
    -------
    out : ndarray of shape (N, C, H // 2, W // 2)
    cache : tuple
        ``(x.shape, cache of the pooling)`` for :func:`max_pool_floor_backward_naive`.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got shape {x.shape}")
    N, C, H, W = x.shape
    out, pool_cache = max_pool_forward_naive(x[:, :, :H - H % 2, :W - W % 2], _POOL_2X2)
    return out, (x.shape, pool_cache)


def max_pool_floor_backward_naive(dout, cache):
    """Backward pass of :func:`max_pool_floor_forward_naive`.

    Parameters
    ----------
    dout : ndarray of shape (N, C, H // 2, W // 2)
    cache : tuple
        From :func:`max_pool_floor_forward_naive`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
        The gradient of the cropped input, and zero on a dropped last row or column.
    """
    x_shape, pool_cache = cache
    dcropped = max_pool_backward_naive(dout, pool_cache)
    dx = np.zeros(x_shape, dtype=dcropped.dtype)
    dx[:, :, :dcropped.shape[2], :dcropped.shape[3]] = dcropped
    return dx
