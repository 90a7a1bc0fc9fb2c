"""Sandwich layers: fixed chains of layers with one forward and one backward function each.

These chains (affine - relu, conv - relu - pool, ...) are used together so
often that they get functions of their own; the residual block is such a
chain with a skip around it.

Each forward returns ``(out, cache)`` where ``cache`` is the tuple of the
inner layers' caches; each backward unwinds the chain in reverse order.
The convolutions and poolings run on the fast kernels of
:mod:`convlab.fast_layers` (tested against the naive layers of
:mod:`convlab.layers`, which the fully connected parts and the batch norm
come from).
"""

import numpy as np

from convlab.fast_layers import (
    activation_backward_fast,
    activation_forward_fast,
    conv_backward_fast,
    conv_forward_fast,
    max_pool_backward_fast,
    max_pool_forward_fast,
    spatial_batchnorm_act_backward_fast,
    spatial_batchnorm_act_forward_fast,
)
from convlab.layers import (
    affine_backward,
    affine_forward,
    relu_backward,
    relu_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)


def affine_relu_forward(x, w, b):
    """Affine layer followed by a ReLU.

    Parameters
    ----------
    x : ndarray of shape (N, d_1, ..., d_k)
    w : ndarray of shape (D, M), with ``D = d_1 * ... * d_k``
    b : ndarray of shape (M,)

    Returns
    -------
    out : ndarray of shape (N, M)
    cache : tuple
        For :func:`affine_relu_backward`.
    """
    a, affine_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (affine_cache, relu_cache)


def affine_relu_backward(dout, cache):
    """Backward pass of :func:`affine_relu_forward`.

    Parameters
    ----------
    dout : ndarray of shape (N, M)
    cache : tuple
        From :func:`affine_relu_forward`.

    Returns
    -------
    dx : ndarray of shape (N, d_1, ..., d_k)
    dw : ndarray of shape (D, M)
    db : ndarray of shape (M,)
    """
    affine_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return affine_backward(da, affine_cache)


def conv_relu_forward(x, w, b, conv_param):
    """Convolution followed by a ReLU.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    w : ndarray of shape (F, C, HH, WW)
    b : ndarray of shape (F,)
    conv_param : dict
        ``'stride'`` and ``'pad'``, as for :func:`convlab.layers.conv_forward_naive`.

    Returns
    -------
    out : ndarray of shape (N, F, H_out, W_out)
    cache : tuple
        For :func:`conv_relu_backward`.
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout, cache):
    """Backward pass of :func:`conv_relu_forward`.

    Parameters
    ----------
    dout : ndarray of shape (N, F, H_out, W_out)
    cache : tuple
        From :func:`conv_relu_forward`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    dw : ndarray of shape (F, C, HH, WW)
    db : ndarray of shape (F,)
    """
    conv_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return conv_backward_fast(da, conv_cache)


def conv_relu_pool_forward(x, w, b, conv_param, pool_param):
    """Convolution, ReLU, then max pooling.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    w : ndarray of shape (F, C, HH, WW)
    b : ndarray of shape (F,)
    conv_param : dict
        ``'stride'`` and ``'pad'``.
    pool_param : dict
        ``'pool_height'``, ``'pool_width'`` and ``'stride'``.

    Returns
    -------
    out : ndarray of shape (N, F, H_pool, W_pool)
    cache : tuple
        For :func:`conv_relu_pool_backward`.
    """
    # BEGIN SOLUTION sandwich.conv_relu_pool
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    s, relu_cache = relu_forward(a)
    out, pool_cache = max_pool_forward_fast(s, pool_param)
    return out, (conv_cache, relu_cache, pool_cache)
    # END SOLUTION


def conv_relu_pool_backward(dout, cache):
    """Backward pass of :func:`conv_relu_pool_forward`.

    Parameters
    ----------
    dout : ndarray of shape (N, F, H_pool, W_pool)
    cache : tuple
        From :func:`conv_relu_pool_forward`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    dw : ndarray of shape (F, C, HH, WW)
    db : ndarray of shape (F,)
    """
    conv_cache, relu_cache, pool_cache = cache
    # BEGIN SOLUTION sandwich.conv_relu_pool
    ds = max_pool_backward_fast(dout, pool_cache)
    da = relu_backward(ds, relu_cache)
    return conv_backward_fast(da, conv_cache)
    # END SOLUTION


def conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param):
    """Convolution, spatial batch normalization, then a ReLU.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    w : ndarray of shape (F, C, HH, WW)
    b : ndarray of shape (F,)
    gamma : ndarray of shape (F,)
        Batch-norm scale, one per output channel.
    beta : ndarray of shape (F,)
        Batch-norm shift, one per output channel.
    conv_param : dict
        ``'stride'`` and ``'pad'``.
    bn_param : dict
        As for :func:`convlab.layers.batchnorm_forward`; its running
        statistics are updated in place in train mode.

    Returns
    -------
    out : ndarray of shape (N, F, H_out, W_out)
    cache : tuple
        For :func:`conv_bn_relu_backward`.
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    an, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (conv_cache, bn_cache, relu_cache)


def conv_bn_relu_backward(dout, cache):
    """Backward pass of :func:`conv_bn_relu_forward`.

    Parameters
    ----------
    dout : ndarray of shape (N, F, H_out, W_out)
    cache : tuple
        From :func:`conv_bn_relu_forward`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    dw : ndarray of shape (F, C, HH, WW)
    db : ndarray of shape (F,)
    dgamma : ndarray of shape (F,)
    dbeta : ndarray of shape (F,)
    """
    conv_cache, bn_cache, relu_cache = cache
    dan = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = spatial_batchnorm_backward(dan, bn_cache)
    dx, dw, db = conv_backward_fast(da, conv_cache)
    return dx, dw, db, dgamma, dbeta


# ----------------------------------------------------------------------
# The residual block: a sandwich with a skip
# ----------------------------------------------------------------------

SHORTCUTS = ("identity", "pad", "project", "none")


def _conv_rounding_down(x, w, stride, pad):
    """A convolution whose output size rounds down, as in most frameworks.

    :func:`convlab.layers.conv_output_size` insists that the filter tiles the
    padded input exactly; a 3x3 filter of stride 2 on a 32x32 map with pad 1
    does not (``(32 + 2 - 3) / 2`` is not whole). Frameworks then drop the
    rows the last window cannot reach. Here the input is padded (or cut) to
    exactly the rows the windows reach, and convolved with pad 0.

    Returns
    -------
    out : ndarray of shape (N, F, (H + 2 pad - k) // stride + 1, ...)
    cache : tuple
    """
    N, C, H, W = x.shape
    k = w.shape[2]
    reach = [((n + 2 * pad - k) // stride) * stride + k for n in (H, W)]   # rows the windows use
    after = [r - n - pad for r, n in zip(reach, (H, W))]                  # padding (or cut) at the end
    xp = np.pad(x, ((0, 0), (0, 0), (pad, max(after[0], 0)), (pad, max(after[1], 0))))
    xp = xp[:, :, :reach[0], :reach[1]]
    out, cache = conv_forward_fast(xp, w, np.zeros(w.shape[0], x.dtype), {"stride": stride, "pad": 0})
    return out, (cache, pad, (H, W))


def _conv_rounding_down_backward(dout, cache):
    """dx, dw of :func:`_conv_rounding_down` (the zero bias's gradient is dropped)."""
    conv_cache, pad, (H, W) = cache
    dxp, dw, _ = conv_backward_fast(dout, conv_cache)
    N, C, Hp, Wp = dxp.shape
    dx = np.zeros((N, C, H, W), dxp.dtype)
    h, w_ = min(H, Hp - pad), min(W, Wp - pad)
    dx[:, :, :h, :w_] = dxp[:, :, pad:pad + h, pad:pad + w_]
    return dx, dw


def residual_block_forward(x, params, bn_params, stride=1, shortcut="identity"):
    """A residual block (He et al., 2016): two convolutions added to a shortcut, then a ReLU.

    ::

        main      conv 3x3 (stride) -> BN -> ReLU -> conv 3x3 -> BN
        shortcut  'identity': x
                  'pad':      x[:, :, ::stride, ::stride] in the first C channels, zeros in
                              the other F - C (option A of He et al.)
                  'project':  conv 1x1 (stride) -> BN
                  'none':     0 (the *plain* block, the residual block's twin without a skip)
        out       ReLU(main + shortcut)

    The convolutions have no bias (batch norm's shift replaces it) and round
    their output size down (a stride-2 block halves a 32x32 map to 16x16).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    params : dict of ndarrays
        ``'w1'`` (F, C, 3, 3), ``'gamma1'``, ``'beta1'`` (F,), ``'w2'``
        (F, F, 3, 3), ``'gamma2'``, ``'beta2'`` (F,); with ``'project'`` also
        ``'ws'`` (F, C, 1, 1), ``'gammas'``, ``'betas'`` (F,).
    bn_params : dict of dicts
        ``'1'``, ``'2'`` (and ``'s'`` with ``'project'``): the batch norms'
        ``bn_param`` dicts (see :func:`convlab.layers.batchnorm_forward`).
    stride : int
        1, or 2 to halve the map.
    shortcut : {'identity', 'pad', 'project', 'none'}
        'identity' needs ``stride == 1`` and ``F == C``.

    Returns
    -------
    out : ndarray of shape (N, F, ceil(H / stride), ceil(W / stride))
    cache : tuple
        For :func:`residual_block_backward`.
    """
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {', '.join(SHORTCUTS)}; got {shortcut!r}")
    F, C = params["w1"].shape[:2]
    if shortcut == "identity" and (stride != 1 or F != C):
        raise ValueError(f"shortcut 'identity' needs stride 1 and as many filters as input "
                         f"channels; got stride {stride}, {F} filters, {C} channels "
                         "(use 'pad' or 'project')")
    if shortcut == "pad" and F < C:
        raise ValueError(f"shortcut 'pad' needs at least as many filters ({F}) as input "
                         f"channels ({C})")
    # BEGIN SOLUTION residual.forward
    h, conv1 = _conv_rounding_down(x, params["w1"], stride, 1)
    h, bn1 = spatial_batchnorm_act_forward_fast(h, params["gamma1"], params["beta1"],
                                                bn_params["1"], "relu")
    h, conv2 = _conv_rounding_down(h, params["w2"], 1, 1)
    h, bn2 = spatial_batchnorm_act_forward_fast(h, params["gamma2"], params["beta2"],
                                                bn_params["2"], "identity")
    if shortcut == "none":
        out, act = activation_forward_fast(h, "relu")
        return out, (shortcut, conv1, bn1, conv2, bn2, None, act)
    if shortcut == "identity":
        skip, skip_cache = x, None
    elif shortcut == "pad":
        skip = np.zeros_like(h)
        skip[:, :C] = x[:, :, ::stride, ::stride]
        skip_cache = (x.shape, stride)
    else:
        s, convs = _conv_rounding_down(x, params["ws"], stride, 0)
        skip, bns = spatial_batchnorm_act_forward_fast(s, params["gammas"], params["betas"],
                                                       bn_params["s"], "identity")
        skip_cache = (convs, bns)
    out, act = activation_forward_fast(h + skip, "relu")
    return out, (shortcut, conv1, bn1, conv2, bn2, skip_cache, act)
    # END SOLUTION


def residual_block_backward(dout, cache):
    """Backward pass of :func:`residual_block_forward`.

    The gradient reaching the block's output flows down both paths and the
    two input gradients add: through the identity shortcut it arrives
    unchanged, which is why deep stacks of these blocks still train.

    Parameters
    ----------
    dout : ndarray of shape (N, F, H_out, W_out)
    cache : tuple
        From :func:`residual_block_forward`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)
    grads : dict of ndarrays
        The gradient of every entry of ``params``, under the same keys.
    """
    # BEGIN SOLUTION residual.backward
    shortcut, conv1, bn1, conv2, bn2, skip_cache, act = cache
    da = activation_backward_fast(dout, act)
    grads = {}
    dh, grads["gamma2"], grads["beta2"] = spatial_batchnorm_act_backward_fast(da, bn2)
    dh, grads["w2"] = _conv_rounding_down_backward(dh, conv2)
    dh, grads["gamma1"], grads["beta1"] = spatial_batchnorm_act_backward_fast(dh, bn1)
    dx, grads["w1"] = _conv_rounding_down_backward(dh, conv1)
    if shortcut == "identity":
        dx += da
    elif shortcut == "none":
        pass
    elif shortcut == "pad":
        shape, stride = skip_cache
        dx[:, :, ::stride, ::stride] += da[:, :shape[1]]
    else:
        convs, bns = skip_cache
        ds, grads["gammas"], grads["betas"] = spatial_batchnorm_act_backward_fast(da, bns)
        dxs, grads["ws"] = _conv_rounding_down_backward(ds, convs)
        dx += dxs
    return dx, grads
    # END SOLUTION
