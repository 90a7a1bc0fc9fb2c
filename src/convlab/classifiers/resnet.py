"""He et al.'s residual network for CIFAR-10 (6n + 2 layers), and its plain twin without shortcuts.

Architecture (``blocks_per_stage=n``, ``widths=(16, 32, 64)``)::

    stem:     conv 3x3 (16) -> BN -> ReLU                          32 x 32
    stage 1:  n residual blocks of 16 channels                     32 x 32
    stage 2:  n blocks of 32 channels, the first with stride 2     16 x 16
    stage 3:  n blocks of 64 channels, the first with stride 2      8 x  8
    head:     global average pool -> affine -> softmax

Each block is :func:`convlab.layer_utils.residual_block_forward`: two 3x3
convolutions with batch norm, added to a shortcut, then a ReLU. Where a block
changes the shape its shortcut is He et al.'s parameter-free "option A"
(``shortcut='pad'``: subsample, pad the channels with zeros) or a 1x1
convolution with batch norm (``'project'``, "option B"). With
``residual=False`` every block drops its shortcut: the *plain* network of the
same depth and width, the paper's control experiment. ``n = 3`` gives
ResNet-20 (:func:`convlab.architectures.resnet20` sizes it).

``loss(X)`` returns class scores (test mode: batch norm uses its running
statistics), ``loss(X, y)`` returns ``(loss, grads)``, as for every model of
:mod:`convlab.classifiers`; :meth:`ResNet.state_dict` holds the batch norms'
running statistics.
"""

import numpy as np

from convlab.fast_layers import (conv_backward_fast, conv_forward_fast,
                                 global_avg_pool_backward_fast, global_avg_pool_forward_fast,
                                 reuse_buffers, spatial_batchnorm_act_backward_fast,
                                 spatial_batchnorm_act_forward_fast)
from convlab.layer_utils import residual_block_backward, residual_block_forward
from convlab.layers import affine_backward, affine_forward, softmax_loss

__all__ = ["ResNet"]


class ResNet:
    """A CIFAR ResNet with ``6 * blocks_per_stage + 2`` weight layers, or its plain twin.

    Parameters
    ----------
    input_dim : tuple of int
        ``(C, H, W)`` of one image.
    blocks_per_stage : int
        ``n``: residual blocks in each of the three stages.
    widths : tuple of int
        Channels of the stem and the stages: ``(stem and stage 1, stage 2, stage 3)``,
        or one per stage when there are more.
    num_classes : int
    residual : bool
        False: no shortcuts (the plain network).
    shortcut : {'pad', 'project'}
        The shortcut of a block that changes the shape.
    label_smoothing : float
        See :func:`convlab.layers.softmax_loss`.
    dtype : numpy dtype
        float32 for training, float64 for gradient checks.
    seed : int
        Seed of the initial weights (He initialisation: normal with variance
        ``2 / fan_in``).

    Attributes
    ----------
    params : dict of ndarrays
        ``W0`` (widths[0], C, 3, 3), ``gamma0``, ``beta0``; per block ``s_b``
        (stage s, block b): ``W{s_b}_1``, ``gamma{s_b}_1``, ``beta{s_b}_1``,
        ``W{s_b}_2``, ``gamma{s_b}_2``, ``beta{s_b}_2`` and, for a projection
        shortcut, ``W{s_b}_s`` (F, C, 1, 1), ``gamma{s_b}_s``, ``beta{s_b}_s``;
        ``W_out`` (widths[-1], num_classes), ``b_out`` (num_classes,).
    bn_params : dict of dicts
        One ``bn_param`` per batch norm, keyed like the ``gamma`` it goes with.
    blocks : list of (key, stride, shortcut)
    """

    def __init__(self, input_dim=(3, 32, 32), blocks_per_stage=3, widths=(16, 32, 64),
                 num_classes=10, residual=True, shortcut="pad", label_smoothing=0.0,
                 dtype=np.float32, seed=0):
        if len(input_dim) != 3 or min(input_dim) < 1:
            raise ValueError(f"input_dim must be (C, H, W) of positive sizes, got {input_dim!r}")
        if not isinstance(blocks_per_stage, int) or blocks_per_stage < 1:
            raise ValueError(f"blocks_per_stage must be a positive integer, got {blocks_per_stage!r}")
        if len(widths) < 1 or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths must be positive integers, got {widths!r}")
        if shortcut not in ("pad", "project"):
            raise ValueError(f"shortcut must be 'pad' or 'project', got {shortcut!r}")
        self.input_dim, self.num_classes = tuple(input_dim), num_classes
        self.residual, self.shortcut = bool(residual), shortcut
        self.label_smoothing, self.dtype = label_smoothing, dtype
        rng = np.random.default_rng(seed)

        def he(shape):
            return (rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))).astype(dtype)

        self.params, self.bn_params, self.blocks = {}, {}, []
        C, width = input_dim[0], widths[0]
        self._norm("0", he((width, C, 3, 3)))
        C, H, W = width, input_dim[1], input_dim[2]
        for s, width in enumerate(widths, start=1):
            for b in range(1, blocks_per_stage + 1):
                stride = 2 if b == 1 and s > 1 else 1
                key = f"{s}_{b}"
                changes = stride != 1 or width != C
                kind = ("none" if not residual else
                        (shortcut if changes else "identity"))
                self._norm(f"{key}_1", he((width, C, 3, 3)))
                self._norm(f"{key}_2", he((width, width, 3, 3)))
                if kind == "project":
                    self._norm(f"{key}_s", he((width, C, 1, 1)))
                self.blocks.append((key, stride, kind))
                C, H, W = width, -(-H // stride), -(-W // stride)
        self.params["W_out"] = (rng.standard_normal((C, num_classes)) / np.sqrt(C)).astype(dtype)
        self.params["b_out"] = np.zeros(num_classes, dtype)

    def _norm(self, key, w):
        """Add a convolution's weights and the batch norm after it."""
        F = w.shape[0]
        self.params[f"W{key}"] = w
        self.params[f"gamma{key}"] = np.ones(F, self.dtype)
        self.params[f"beta{key}"] = np.zeros(F, self.dtype)
        self.bn_params[key] = {"momentum": 0.9, "running_mean": np.zeros(F),
                               "running_var": np.ones(F)}

    def batchnorm_shifts(self):
        """Names of the batch norms' shift parameters (``beta...``)."""
        return [f"beta{key}" for key in self.bn_params]

    def state_dict(self):
        """The batch norms' running statistics, as ``bn{key}_mean`` / ``bn{key}_var`` arrays."""
        state = {}
        for key, bn in self.bn_params.items():
            state[f"bn{key}_mean"] = bn["running_mean"].copy()
            state[f"bn{key}_var"] = bn["running_var"].copy()
        return state

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""
        if set(state) != set(self.state_dict()):
            raise ValueError(f"state has keys {sorted(state)}, expected {sorted(self.state_dict())}")
        for key, bn in self.bn_params.items():
            for stat, suffix in (("running_mean", "mean"), ("running_var", "var")):
                value = np.asarray(state[f"bn{key}_{suffix}"], dtype=np.float64)
                if value.shape != bn[stat].shape:
                    raise ValueError(f"state['bn{key}_{suffix}'] has shape {value.shape}, "
                                     f"expected {bn[stat].shape}")
                bn[stat] = value.copy()

    def _block_params(self, key):
        """The block's parameters under the names residual_block_forward uses."""
        names = {"w1": f"W{key}_1", "gamma1": f"gamma{key}_1", "beta1": f"beta{key}_1",
                 "w2": f"W{key}_2", "gamma2": f"gamma{key}_2", "beta2": f"beta{key}_2",
                 "ws": f"W{key}_s", "gammas": f"gamma{key}_s", "betas": f"beta{key}_s"}
        return {short: name for short, name in names.items() if name in self.params}

    def loss(self, X, y=None):
        """Class scores (``y`` None, test mode) or ``(loss, grads)`` (training).

        Parameters
        ----------
        X : ndarray of shape (N, C, H, W)
        y : ndarray of shape (N,) or None

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
        mode = "train" if y is not None else "test"
        for bn_param in self.bn_params.values():
            bn_param["mode"] = mode
        p = self.params
        F0 = p["W0"].shape[0]
        h, stem_conv = conv_forward_fast(X, p["W0"], np.zeros(F0, self.dtype), {"stride": 1, "pad": 1})
        h, stem_bn = spatial_batchnorm_act_forward_fast(h, p["gamma0"], p["beta0"],
                                                        self.bn_params["0"], "relu")
        caches = []
        for key, stride, kind in self.blocks:
            names = self._block_params(key)
            bn = {"1": self.bn_params[f"{key}_1"], "2": self.bn_params[f"{key}_2"],
                  "s": self.bn_params.get(f"{key}_s")}
            h, cache = residual_block_forward(h, {k: p[n] for k, n in names.items()}, bn,
                                              stride, kind)
            caches.append((names, cache))
        feats, gap_cache = global_avg_pool_forward_fast(h)
        scores, aff_cache = affine_forward(feats, p["W_out"], p["b_out"])
        if y is None:
            return scores

        loss, dscores = softmax_loss(scores, y, label_smoothing=self.label_smoothing)
        grads = {}
        dfeats, grads["W_out"], grads["b_out"] = affine_backward(dscores, aff_cache)
        dh = global_avg_pool_backward_fast(dfeats.astype(self.dtype, copy=False), gap_cache)
        for names, cache in reversed(caches):
            dh, block_grads = residual_block_backward(dh, cache)
            for short, g in block_grads.items():
                grads[names[short]] = g.astype(self.dtype, copy=False)
        dh, grads["gamma0"], grads["beta0"] = spatial_batchnorm_act_backward_fast(dh, stem_bn)
        _, grads["W0"], _ = conv_backward_fast(dh, stem_conv)
        grads = {k: np.asarray(v, dtype=self.dtype) for k, v in grads.items()}
        return float(loss), grads
