"""A three-layer convolutional network: the first model of the book.

Architecture::

    conv - relu - 2x2 max pool - affine - relu - affine - softmax

The convolution keeps the spatial size for odd filter sizes (stride 1,
``pad = (filter_size - 1) // 2``); the pool then halves it. The size of the
flattened pool output that feeds the first affine layer is computed from
``input_dim``, so any input size whose conv output the pool tiles works.
"""

import numpy as np

from convlab.layer_utils import (
    affine_relu_backward,
    affine_relu_forward,
    conv_relu_pool_backward,
    conv_relu_pool_forward,
)
from convlab.layers import affine_backward, affine_forward, conv_output_size, pool_output_size, softmax_loss
from convlab.validation import check_int


class ThreeLayerConvNet:
    """conv - relu - 2x2 max pool - affine - relu - affine - softmax.

    The network works on minibatches of shape ``(N, C, H, W)``.

    Parameters
    ----------
    input_dim : tuple of int
        ``(C, H, W)``, the shape of one input image.
    num_filters : int
        Number of convolution filters ``F``.
    filter_size : int
        Height and width ``K`` of each filter.
    hidden_dim : int
        Number of units in the hidden affine layer.
    num_classes : int
        Number of scores produced by the last affine layer.
    weight_scale : float
        Standard deviation of the normal distribution weights are drawn from;
        biases start at zero.
    reg : float
        Strength of the L2 penalty ``0.5 * reg * sum(W**2)`` on the weights
        ``W1``, ``W2``, ``W3`` (not the biases).
    dtype : numpy dtype
        Floating dtype of the parameters and of every computation; float64
        for gradient checking, float32 (the default) for speed.
    seed : int or None
        Seed of ``np.random.default_rng`` for the initial weights.

    Attributes
    ----------
    params : dict of ndarray
        ``W1`` of shape (F, C, K, K), ``b1`` (F,): convolution;
        ``W2`` (F * H_pool * W_pool, hidden_dim), ``b2`` (hidden_dim,): hidden affine;
        ``W3`` (hidden_dim, num_classes), ``b3`` (num_classes,): output affine.
    conv_param, pool_param : dict
        The fixed convolution and pooling settings.
    reg : float
    dtype : numpy dtype

    Raises
    ------
    ValueError
        If a size is not a positive integer, ``dtype`` is not floating, the
        filter is larger than the padded input, or the 2x2 pool does not tile
        the convolution's output (for example ``input_dim=(3, 15, 15)`` with
        an odd ``filter_size``).
    """

    def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7, hidden_dim=100,
                 num_classes=10, weight_scale=1e-3, reg=0.0, dtype=np.float32, seed=None):
        if len(tuple(input_dim)) != 3:
            raise ValueError(f"input_dim must be (C, H, W); got {input_dim!r}")
        C, H, W = (check_int("input_dim entries", d) for d in input_dim)
        F = check_int("num_filters", num_filters)
        K = check_int("filter_size", filter_size)
        hidden_dim = check_int("hidden_dim", hidden_dim)
        num_classes = check_int("num_classes", num_classes)
        if not weight_scale >= 0:
            raise ValueError(f"weight_scale must be non-negative; got {weight_scale!r}")
        if not reg >= 0:
            raise ValueError(f"reg must be non-negative; got {reg!r}")
        self.dtype = np.dtype(dtype)
        if not np.issubdtype(self.dtype, np.floating):
            raise ValueError(f"dtype must be a floating dtype; got {self.dtype}")
        self.input_dim = (C, H, W)
        self.reg = reg
        self.conv_param = {"stride": 1, "pad": (K - 1) // 2}
        self.pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}

        # Follow one image through the layers to find the flattened size.
        try:
            H_conv, W_conv = conv_output_size((1, C, H, W), (F, C, K, K), self.conv_param)
        except ValueError as err:
            raise ValueError(
                f"input_dim {self.input_dim} does not fit filter_size {K} "
                f"(stride 1, pad {self.conv_param['pad']}): {err}"
            ) from None
        try:
            H_pool, W_pool = pool_output_size((1, F, H_conv, W_conv), self.pool_param)
        except ValueError:
            raise ValueError(
                f"input_dim {self.input_dim} with filter_size {K} (stride 1, pad "
                f"{self.conv_param['pad']}) gives a {H_conv}x{W_conv} conv output, which the "
                f"2x2 max pool with stride 2 does not tile: its height and width must be even"
            ) from None

        rng = np.random.default_rng(seed)
        shapes = {
            "W1": (F, C, K, K), "b1": (F,),
            "W2": (F * H_pool * W_pool, hidden_dim), "b2": (hidden_dim,),
            "W3": (hidden_dim, num_classes), "b3": (num_classes,),
        }
        self.params = {}
        for name, shape in shapes.items():
            if name.startswith("W"):
                value = weight_scale * rng.standard_normal(shape)
            else:
                value = np.zeros(shape)
            self.params[name] = value.astype(self.dtype)

    def loss(self, X, y=None):
        """Class scores, or the loss and its gradients.

        Parameters
        ----------
        X : ndarray of shape (N, C, H, W)
            Minibatch of images, ``(C, H, W) == input_dim``; cast to ``dtype``.
        y : ndarray of shape (N,) or None
            Integer labels in ``[0, num_classes)``.

        Returns
        -------
        scores : ndarray of shape (N, num_classes)
            If ``y`` is None.
        (loss, grads) : (float, dict of ndarray)
            Otherwise: the softmax loss plus the L2 penalty, and the gradient
            of that loss for every entry of ``params`` (same keys, shapes
            and dtype).

        Raises
        ------
        ValueError
            If ``X`` does not have shape ``(N,) + input_dim``, or ``y`` is
            not a valid label vector for ``X``.
        """
        X = np.asarray(X, dtype=self.dtype)
        if X.ndim != 4 or X.shape[1:] != self.input_dim:
            raise ValueError(
                f"X must have shape (N, {', '.join(map(str, self.input_dim))}) to match "
                f"input_dim {self.input_dim}; got shape {X.shape}"
            )
        W1, b1, W2, b2, W3, b3 = (self.params[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))

        # BEGIN SOLUTION three_layer.loss
        pooled, cache1 = conv_relu_pool_forward(X, W1, b1, self.conv_param, self.pool_param)
        hidden, cache2 = affine_relu_forward(pooled, W2, b2)
        scores, cache3 = affine_forward(hidden, W3, b3)
        if y is None:
            return scores

        data_loss, dscores = softmax_loss(scores, y)
        reg_loss = 0.5 * self.reg * sum(float(np.sum(W * W)) for W in (W1, W2, W3))

        grads = {}
        dhidden, grads["W3"], grads["b3"] = affine_backward(dscores, cache3)
        dpooled, grads["W2"], grads["b2"] = affine_relu_backward(dhidden, cache2)
        _, grads["W1"], grads["b1"] = conv_relu_pool_backward(dpooled, cache1)
        for name in ("W1", "W2", "W3"):
            grads[name] = grads[name] + self.reg * self.params[name]
        grads = {name: g.astype(self.dtype, copy=False) for name, g in grads.items()}
        return data_loss + reg_loss, grads
        # END SOLUTION
