"""Where the time of one training step goes: the layers of a recipe's ConvNet, timed one by one.

:func:`profile_step` runs a few training steps of a recipe's model on random
data with every layer function that :mod:`convlab.classifiers.airbench_convnet` calls
wrapped in a timer, and counts the multiply-adds of the convolutions.
``python -m convlab.train --recipe quick --profile`` prints the table.
"""

import time

import numpy as np

from convlab.augment import make_augment
from convlab.classifiers import airbench_convnet as cn
from convlab.optim import nesterov_sgd
from convlab.recipes import build_model, resolve_recipe

__all__ = ["profile_step"]


def profile_step(recipe_name, overrides=(), batch_size=None, repeats=3, seed=0):
    """Where the time of one training step goes, next to where the FLOPs go.

    Times one full step of the recipe's ConvNet on random data (augmentation,
    forward and backward, optimizer update) by wrapping the layer functions
    the model calls, and counts the multiply-adds of every convolution.

    Parameters
    ----------
    recipe_name : str
    overrides : sequence of "key=value" str
    batch_size : int or None
        Default: the recipe's.
    repeats : int
        Steps timed (after one warm-up step); the per-part medians are reported.

    Returns
    -------
    rows : list of (part, seconds, gflop) tuples
        ``gflop`` is None for parts without floating-point multiply-adds to count.
    total : float
        Median wall time of a whole step, in seconds.
    """
    recipe = resolve_recipe(recipe_name, overrides)
    if recipe["model"] != "convnet":
        raise ValueError("--profile needs a ConvNet recipe")
    B = int(batch_size or recipe["batch_size"])
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, B)
    model = build_model(recipe, seed, X)
    augment = make_augment(flip=bool(recipe["flip"]), max_shift=int(recipe["translate"]))
    timings, flops = {}, {}

    def timed(part, fn, count=None):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            result = fn(*args, **kwargs)
            timings[part] = timings.get(part, 0.0) + time.perf_counter() - t
            if count is not None:
                flops[part] = flops.get(part, 0.0) + count(args, result)
            return result
        return wrapper

    def conv_fwd_flops(args, result):
        w, out = args[1], result[0]
        return 2.0 * out.size * np.prod(w.shape[1:])

    def conv_bwd_flops(args, result):   # dx and dw: twice the forward
        dout, cache = args
        return 4.0 * dout.size * np.prod(cache[1].shape[1:])

    def conv_dw_flops(args, result):
        dout, cache = args
        return 2.0 * dout.size * np.prod(cache[1].shape[1:])

    patched = {
        "conv_forward_fast": ("conv forward (incl. whitening)", conv_fwd_flops),
        "conv_backward_fast": ("conv backward dx+dw", conv_bwd_flops),
        "conv_backward_weights_fast": ("conv backward dw only (first conv)", conv_dw_flops),
        "max_pool_floor_forward_fast": ("max pool forward", None),
        "max_pool_floor_backward_fast": ("max pool backward", None),
        "spatial_batchnorm_act_forward_fast": ("batch norm + activation forward", None),
        "spatial_batchnorm_act_backward_fast": ("batch norm + activation backward", None),
        "activation_forward_fast": ("activation after whitening", None),
        "global_max_pool_forward": ("global max pool + affine + loss", None),
        "global_max_pool_backward": ("global max pool + affine + loss", None),
        "affine_forward": ("global max pool + affine + loss", None),
        "affine_backward": ("global max pool + affine + loss", None),
        "softmax_loss": ("global max pool + affine + loss", None),
    }
    originals = {name: getattr(cn, name) for name in patched}
    totals, parts = [], []
    try:
        for name, (part, count) in patched.items():
            setattr(cn, name, timed(part, originals[name], count))
        configs = {name: {"learning_rate": 0.1, "momentum": 0.85, "weight_decay": 1e-3}
                   for name in model.params}
        for r in range(repeats + 1):
            timings.clear()
            flops.clear()
            t0 = time.perf_counter()
            xb = timed("augmentation (translate + flip)", augment)(X, rng)
            t1 = time.perf_counter()
            loss, grads = model.loss(xb, y)
            t2 = time.perf_counter()
            for name in model.params:
                model.params[name], configs[name] = nesterov_sgd(model.params[name], grads[name],
                                                                 configs[name])
            t3 = time.perf_counter()
            timings["optimizer update"] = t3 - t2
            timings["rest of forward/backward (Python, copies, crops)"] = (
                (t2 - t1) - sum(v for k, v in timings.items()
                                if k not in ("augmentation (translate + flip)", "optimizer update")))
            if r:
                totals.append(t3 - t0)
                parts.append(dict(timings))
    finally:
        for name, fn in originals.items():
            setattr(cn, name, fn)
    names = list(parts[0])
    rows = [(name, float(np.median([p.get(name, 0.0) for p in parts])),
             flops[name] / 1e9 if name in flops else None) for name in names]
    rows.sort(key=lambda row: -row[1])
    return rows, float(np.median(totals))
