"""A configurable deeper ConvNet in the style of the fast CIFAR-10 recipes.

Architecture (``widths=(w1, w2, w3)``, ``convs_per_block=2``)::

    [whiten]  frozen k x k conv, filters = whitening of image patches -> act
    block b:  conv 3x3 -> max pool 2x2 -> BN -> act -> conv 3x3 -> BN -> act
              (repeated for every width)
    head:     global max pool -> affine (no bias) -> * logit_scale -> softmax

This is the shape of Keller Jordan's *airbench94* network, which trains
CIFAR-10 to 94 % on a GPU in seconds, with its width left as a parameter so
that it fits a CPU budget. Every piece is a layer of the book:

* the **whitening conv** is a fixed first layer whose filters decorrelate
  the pixels of each k x k patch (the eigenvectors of the patch covariance,
  scaled by ``1 / sqrt(eigenvalue)``, with each filter also used negated so
  that the activation that follows loses nothing). It is computed once from
  training images and never trained;
* convolutions have no bias (batch norm's shift makes it redundant) and start
  close to the identity on their first input channels ("dirac" init), so the
  untrained network already passes its input through;
* pooling follows the *first* conv of a block, so the second conv of every
  block and all batch norms work on the smaller map. Maps of odd size lose
  their last row and column before pooling (floor pooling);
* batch norm by default has a **frozen scale of 1** (only the shift
  ``beta`` is learned) and is fused with the activation in one Cython kernel
  (:func:`convlab.fast_layers.spatial_batchnorm_act_forward_fast`);
* the head is a **global max pool** and a linear layer whose scores are
  multiplied by a constant ``logit_scale`` (1/9 in airbench), which keeps
  the initial softmax soft;
* the loss is softmax cross-entropy with optional **label smoothing**;
* ``loss`` runs inside :func:`convlab.fast_layers.reuse_buffers`, so each
  training step reuses the previous step's large arrays' memory.

``loss(X)`` returns class scores (test mode: batch norm uses running
statistics), ``loss(X, y)`` returns ``(loss, grads)`` (training mode), as for
every model of :mod:`convlab.classifiers`. Batch-norm running statistics and
the whitening filters are not parameters; :meth:`ConvNet.state_dict` and
:meth:`ConvNet.load_state_dict` save and restore them (the Solver's
checkpoints call these).
"""

import numpy as np

from convlab.fast_layers import (activation_forward_fast, conv_backward_fast,
                                 conv_backward_weights_fast, conv_forward_fast,
                                 max_pool_floor_backward_fast, max_pool_floor_forward_fast,
                                 reuse_buffers, spatial_batchnorm_act_backward_fast,
                                 spatial_batchnorm_act_forward_fast)
from convlab.layers import affine_backward, affine_forward, softmax_loss
from convlab.modern_layers import ACTIVATIONS, global_max_pool_backward, global_max_pool_forward

__all__ = ["ConvNet", "ACTIVATIONS", "whitening_filters"]


def whitening_filters(X, kernel_size=2, eps=5e-4, max_patches=200_000, seed=0):
    """Filters that whiten the ``k x k`` patches of a set of images.

    With ``Sigma = V diag(lam) V^T`` the covariance of the (flattened) patches,
    the filters are the rows of ``diag(1 / sqrt(lam + eps)) V^T``: convolving
    with them maps patches to uncorrelated coordinates of unit variance. Each
    filter is returned twice, as ``+f`` and ``-f``, so that an activation such
    as GELU after the convolution keeps both signs of every coordinate.

    Parameters
    ----------
    X : ndarray of shape (N, C, H, W)
        Training images (already preprocessed as the network will see them).
    kernel_size : int
        ``k``.
    eps : float
        Added to the eigenvalues (regularises the near-zero ones).
    max_patches : int
        At most this many patches (drawn at random) estimate the covariance.
    seed : int
        Seed for the patch subsample.

    Returns
    -------
    w : ndarray of shape (2 * C * k * k, C, k, k), float64
        Ordered by decreasing eigenvalue (the ``+f`` half, then ``-f``).
    """
    X = np.asarray(X)
    if X.ndim != 4:
        raise ValueError(f"X must have shape (N, C, H, W), got shape {X.shape}")
    N, C, H, W = X.shape
    k = int(kernel_size)
    if not 1 <= k <= min(H, W):
        raise ValueError(f"kernel_size must lie in [1, {min(H, W)}] for images of shape "
                         f"{X.shape[1:]}, got {kernel_size}")
    windows = np.lib.stride_tricks.sliding_window_view(X, (k, k), axis=(2, 3))
    # windows: (N, C, H-k+1, W-k+1, k, k) -> patches (M, C*k*k)
    patches = windows.transpose(0, 2, 3, 1, 4, 5).reshape(-1, C * k * k)
    rng = np.random.default_rng(seed)
    if patches.shape[0] > max_patches:
        patches = patches[rng.choice(patches.shape[0], max_patches, replace=False)]
    patches = patches.astype(np.float64)
    patches -= patches.mean(axis=0)
    cov = patches.T @ patches / patches.shape[0]
    lam, V = np.linalg.eigh(cov)              # ascending eigenvalues
    lam, V = lam[::-1], V[:, ::-1]
    filters = (V / np.sqrt(np.maximum(lam, 0.0) + eps)).T.reshape(-1, C, k, k)
    return np.concatenate([filters, -filters])


class ConvNet:
    """Whitening conv, blocks of conv-pool-BN-act, global max pool, linear.

    Parameters
    ----------
    input_dim : tuple (C, H, W)
        Shape of one input image.
    widths : sequence of int
        Channels of every block; each block halves the spatial size.
    num_classes : int
    convs_per_block : int
        Convolutions per block (>= 1); the first is followed by the pooling.
    whiten_kernel : int or None
        Kernel size of the frozen whitening conv; None: no whitening layer
        (the first block then reads the image directly).
    activation : {'gelu', 'relu', 'leaky_relu', 'identity'}
    leaky_alpha : float
        Slope of the leaky ReLU for negative inputs.
    bn_scale : bool
        Learn the batch-norm scale ``gamma``; False freezes it at 1.
    bn_momentum, bn_eps : float
        Running statistics ``r <- momentum * r + (1 - momentum) * batch``;
        ``eps`` is added to the variance.
    label_smoothing : float in [0, 1)
    logit_scale : float
        Constant multiplying the class scores.
    dirac_init : bool
        Start each conv as the identity on its first ``min(C_in, C_out)``
        channels (plus the usual random filters elsewhere).
    reg : float
        L2 regularisation ``0.5 * reg * sum(w**2)`` over all conv and affine
        weights, added to the loss (0 when the optimizer does weight decay).
    dtype : numpy dtype
        float32 for training, float64 for gradient checks.
    seed : int
        Seed of the initial weights.
    """

    def __init__(self, input_dim=(3, 32, 32), widths=(16, 64, 64), num_classes=10,
                 convs_per_block=2, whiten_kernel=2, activation="gelu", leaky_alpha=0.1,
                 bn_scale=False, bn_momentum=0.6, bn_eps=1e-5, label_smoothing=0.0,
                 logit_scale=1.0 / 9.0, dirac_init=True, reg=0.0, dtype=np.float32,
                 seed=0):
        if len(input_dim) != 3 or min(input_dim) < 1:
            raise ValueError(f"input_dim must be (C, H, W) with positive entries, got {input_dim}")
        widths = tuple(int(w) for w in widths)
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if convs_per_block < 1:
            raise ValueError(f"convs_per_block must be at least 1, got {convs_per_block}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        C, H, W = (int(d) for d in input_dim)
        self.input_dim = (C, H, W)
        self.widths = widths
        self.num_classes = int(num_classes)
        self.convs_per_block = int(convs_per_block)
        self.activation = activation
        self.leaky_alpha = float(leaky_alpha)
        self.bn_scale = bool(bn_scale)
        self.bn_momentum = float(bn_momentum)
        self.bn_eps = float(bn_eps)
        self.label_smoothing = float(label_smoothing)
        self.logit_scale = float(logit_scale)
        self.reg = float(reg)
        rng = np.random.default_rng(seed)

        # The frozen whitening conv; identity-like until init_whitening is called.
        self.whiten_kernel = None if whiten_kernel is None else int(whiten_kernel)
        if self.whiten_kernel is not None:
            k = self.whiten_kernel
            if not 1 <= k <= min(H, W):
                raise ValueError(f"whiten_kernel must lie in [1, {min(H, W)}], got {whiten_kernel}")
            K = C * k * k
            eye = np.eye(K).reshape(K, C, k, k)
            self.whiten_w = np.concatenate([eye, -eye]).astype(self.dtype)
            C, H, W = 2 * K, H - k + 1, W - k + 1

        self.params = {}
        self.conv_names = []          # (block, j) -> parameter name, in order
        self.spatial = []             # input (H, W) of each conv
        for b, width in enumerate(widths, start=1):
            for j in range(1, self.convs_per_block + 1):
                name = f"W{b}_{j}"
                fan_in = C * 9
                bound = 1.0 / np.sqrt(fan_in)
                w = rng.uniform(-bound, bound, size=(width, C, 3, 3))
                if dirac_init:
                    n = min(C, width)
                    w[:n] = 0.0
                    w[np.arange(n), np.arange(n), 1, 1] = 1.0
                self.params[name] = w.astype(self.dtype)
                self.params[f"beta{b}_{j}"] = np.zeros(width, dtype=self.dtype)
                if self.bn_scale:
                    self.params[f"gamma{b}_{j}"] = np.ones(width, dtype=self.dtype)
                self.conv_names.append((b, j))
                self.spatial.append((H, W))
                if j == 1:
                    if H < 2 or W < 2:
                        raise ValueError(f"input_dim {input_dim} is too small for {len(widths)} "
                                         f"blocks: block {b} would pool a {H}x{W} map")
                    H, W = H // 2, W // 2
                C = width
        bound = 1.0 / np.sqrt(C)
        self.params["W_out"] = rng.uniform(-bound, bound, size=(C, self.num_classes)).astype(self.dtype)
        self._zeros = {w: np.zeros(w, dtype=self.dtype) for w in set(widths)}

        # One bn_param per batch norm (see convlab.layers.batchnorm_forward);
        # loss() sets its 'mode'.
        self.bn_params = {
            f"{b}_{j}": {"eps": self.bn_eps, "momentum": self.bn_momentum,
                         "running_mean": np.zeros(self.params[f"beta{b}_{j}"].shape, np.float64),
                         "running_var": np.ones(self.params[f"beta{b}_{j}"].shape, np.float64)}
            for b, j in self.conv_names}

    # ------------------------------------------------------------------
    # Whitening and state
    # ------------------------------------------------------------------

    def init_whitening(self, X, eps=5e-4, seed=0):
        """Set the whitening filters from training images ``X`` (N, C, H, W)."""
        if self.whiten_kernel is None:
            raise ValueError("this ConvNet has no whitening layer (whiten_kernel=None)")
        if tuple(np.shape(X)[1:]) != self.input_dim:
            raise ValueError(f"X must have shape (N, {', '.join(map(str, self.input_dim))}), "
                             f"got shape {np.shape(X)}")
        self.whiten_w = whitening_filters(X, self.whiten_kernel, eps=eps, seed=seed).astype(self.dtype)

    def batchnorm_shifts(self):
        """Names of the batch norms' shift parameters (``beta``), one per convolution.

        Returns
        -------
        list of str
            E.g. ``['beta1_1', 'beta1_2', ...]``; recipes let them learn faster
            (``bias_lr_scale``).
        """
        return [f"beta{b}_{j}" for b, j in self.conv_names]

    def state_dict(self):
        """Non-parameter state: batch-norm running statistics and whitening filters.

        Returns
        -------
        dict of str -> ndarray
        """
        state = {}
        for key, bn in self.bn_params.items():
            state[f"bn{key}_mean"] = bn["running_mean"].copy()
            state[f"bn{key}_var"] = bn["running_var"].copy()
        if self.whiten_kernel is not None:
            state["whiten_w"] = self.whiten_w.copy()
        return state

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""
        expected = set(self.state_dict())
        if set(state) != expected:
            raise ValueError(f"state has keys {sorted(state)}, expected {sorted(expected)}")
        for key, bn in self.bn_params.items():
            for stat, suffix in (("running_mean", "mean"), ("running_var", "var")):
                value = np.asarray(state[f"bn{key}_{suffix}"], dtype=np.float64)
                if value.shape != bn[stat].shape:
                    raise ValueError(f"state['bn{key}_{suffix}'] has shape {value.shape}, "
                                     f"expected {bn[stat].shape}")
                bn[stat] = value.copy()
        if self.whiten_kernel is not None:
            value = np.asarray(state["whiten_w"])
            if value.shape != self.whiten_w.shape:
                raise ValueError(f"state['whiten_w'] has shape {value.shape}, "
                                 f"expected {self.whiten_w.shape}")
            self.whiten_w = value.astype(self.dtype)

    # ------------------------------------------------------------------
    # Forward and backward
    # ------------------------------------------------------------------

    def _whiten(self, X):
        """The frozen first layer: whitening conv followed by the activation."""
        w = self.whiten_w
        z, _ = conv_forward_fast(X, w, np.zeros(w.shape[0], self.dtype), {"stride": 1, "pad": 0})
        out, _ = activation_forward_fast(z, self.activation, self.leaky_alpha)
        return out

    def _gamma(self, key):
        if self.bn_scale:
            return self.params[f"gamma{key}"]
        return np.ones_like(self.params[f"beta{key}"])

    def loss(self, X, y=None):
        """Class scores (``y`` None, test mode) or ``(loss, grads)`` (training).

        Parameters
        ----------
        X : ndarray of shape (N, C, H, W)
        y : ndarray of shape (N,) or None
            Integer labels in ``[0, num_classes)``.

        Returns
        -------
        scores : ndarray of shape (N, num_classes), if ``y`` is None
        loss : float and grads : dict of arrays shaped like ``params``, otherwise
        """
        with reuse_buffers():  # the step's large arrays reuse the last step's memory
            return self._loss(X, y)

    def _loss(self, X, y):
        """:meth:`loss`, computed."""
        X = np.asarray(X)
        if X.ndim != 4 or X.shape[1:] != self.input_dim:
            raise ValueError(f"X must have shape (N, {', '.join(map(str, self.input_dim))}), "
                             f"got shape {X.shape}")
        X = np.ascontiguousarray(X, dtype=self.dtype)
        train = y is not None
        for bn_param in self.bn_params.values():
            bn_param["mode"] = "train" if train else "test"
        h = self._whiten(X) if self.whiten_kernel is not None else X
        caches = []
        conv_param = {"stride": 1, "pad": 1}
        for b, j in self.conv_names:
            w = self.params[f"W{b}_{j}"]
            h, conv_cache = conv_forward_fast(h, w, self._zeros[w.shape[0]], conv_param)
            pool_cache = None
            if j == 1:
                h, pool_cache = max_pool_floor_forward_fast(h)
            key = f"{b}_{j}"
            h, bn_cache = spatial_batchnorm_act_forward_fast(
                h, self._gamma(key), self.params[f"beta{key}"], self.bn_params[key],
                self.activation, self.leaky_alpha)
            caches.append((conv_cache, pool_cache, bn_cache))
        feats, gmp_cache = global_max_pool_forward(h)
        raw, aff_cache = affine_forward(feats, self.params["W_out"],
                                        np.zeros(self.num_classes, self.dtype))
        scores = raw * self.logit_scale
        if not train:
            return scores

        loss, dscores = softmax_loss(scores, y, label_smoothing=self.label_smoothing)
        grads = {}
        dfeats, grads["W_out"], _ = affine_backward(dscores * self.logit_scale, aff_cache)
        dh = global_max_pool_backward(dfeats, gmp_cache).astype(self.dtype, copy=False)
        for (b, j), (conv_cache, pool_cache, bn_cache) in zip(reversed(self.conv_names),
                                                              reversed(caches)):
            dh, dgamma, dbeta = spatial_batchnorm_act_backward_fast(dh, bn_cache)
            grads[f"beta{b}_{j}"] = dbeta
            if self.bn_scale:
                grads[f"gamma{b}_{j}"] = dgamma
            if pool_cache is not None:
                dh = max_pool_floor_backward_fast(dh, pool_cache)
            if (b, j) == self.conv_names[0] and self.whiten_kernel is not None:
                # Nothing below the first trainable conv learns: skip its dx.
                dw, _ = conv_backward_weights_fast(dh, conv_cache)
            else:
                dh, dw, _ = conv_backward_fast(dh, conv_cache)
            grads[f"W{b}_{j}"] = dw.astype(self.dtype, copy=False)
        if self.reg:
            for name, w in self.params.items():
                if name.startswith("W"):
                    loss += 0.5 * self.reg * float(np.sum(w.astype(np.float64) ** 2))
                    grads[name] = grads[name] + self.reg * w
        return loss, grads
