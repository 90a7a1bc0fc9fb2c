"""Where the time of one training step goes: the layers of a recipe's ConvNet, timed one by one.

:func:`profile_step` runs a few training steps of a recipe on random data --
the very step training takes (:meth:`convlab.solver.Solver.step`, with the
recipe's optimizer, learning-rate schedule and moving average) -- and times
every call of the layer functions the model uses, and counts the multiply-adds
of the convolutions.  It watches the calls through
Python's profiling hook (:func:`sys.setprofile`), so the model and the layer
modules run unchanged: nothing is replaced or wrapped.
``python -m convlab.train --recipe quick --profile`` prints the table.
"""

import sys
import tempfile
import time

import numpy as np

from convlab import fast_layers, layers, modern_layers, solver as solver_module
from convlab.recipes import build_model, build_solver, resolve_recipe

__all__ = ["profile_step", "format_profile"]


def profile_step(recipe_name, overrides=(), batch_size=None, repeats=3, seed=0):
    """Where the time of one training step goes, next to where the FLOPs go.

    Times the Solver's training step on random data (augmentation, forward
    and backward, the optimizer with the scheduled learning rate, the moving
    average of the weights), each call of a layer function the model makes
    seen through :func:`sys.setprofile`, and counts the
    multiply-adds of every convolution.  The hook costs a little time on
    every Python call, which the "rest" row absorbs.

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
    recipe["batch_size"] = B = int(batch_size or recipe["batch_size"])
    recipe["epochs"] = repeats + 1     # one step per epoch: the schedule spans the steps run
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, B)
    data = {"X_train": X, "y_train": y, "X_val": X[:1], "y_val": y[:1]}
    model = build_model(recipe, seed, X)
    with tempfile.TemporaryDirectory() as out_dir:   # the step writes nothing; build_solver asks
        solver = build_solver(model, data, recipe, seed, out_dir, progress=False)
    timings, flops = {}, {}

    def conv_fwd_flops(args, result):
        return 2.0 * result[0].size * np.prod(args["w"].shape[1:])

    def conv_bwd_flops(args, result):   # dx and dw: twice the forward
        return 4.0 * args["dout"].size * np.prod(args["cache"][1].shape[1:])

    def conv_dw_flops(args, result):
        return 2.0 * args["dout"].size * np.prod(args["cache"][1].shape[1:])

    head = "global max pool + affine + loss"
    parts_of = {  # the functions a step calls: (part, multiply-add counter)
        fast_layers.conv_forward_fast: ("conv forward (incl. whitening)", conv_fwd_flops),
        fast_layers.conv_backward_fast: ("conv backward dx+dw", conv_bwd_flops),
        fast_layers.conv_backward_weights_fast: ("conv backward dw only (first conv)", conv_dw_flops),
        fast_layers.max_pool_floor_forward_fast: ("max pool forward", None),
        fast_layers.max_pool_floor_backward_fast: ("max pool backward", None),
        fast_layers.spatial_batchnorm_act_forward_fast: ("batch norm + activation forward", None),
        fast_layers.spatial_batchnorm_act_backward_fast: ("batch norm + activation backward", None),
        fast_layers.activation_forward_fast: ("activation after whitening", None),
        modern_layers.global_max_pool_forward: (head, None),
        modern_layers.global_max_pool_backward: (head, None),
        layers.affine_forward: (head, None),
        layers.affine_backward: (head, None),
        layers.softmax_loss: (head, None),
        solver.update_rule: ("optimizer update", None),
        solver_module._update_average: ("moving average of the weights", None),
    }
    if solver.augment is not None:
        parts_of[solver.augment] = ("augmentation (translate + flip)", None)
    by_code = {fn.__code__: part for fn, part in parts_of.items()}
    active = []  # (frame, part, counter, arguments, start) of the call being timed

    def hook(frame, event, arg):
        """sys.setprofile hook: time the outermost call of each function of parts_of."""
        if event == "call" and not active and frame.f_code in by_code:
            part, count = by_code[frame.f_code]
            arguments = dict(frame.f_locals) if count is not None else None
            active.append((frame, part, count, arguments, time.perf_counter()))
        elif event == "return" and active and frame is active[0][0]:
            frame_, part, count, arguments, start = active.pop()
            timings[part] = timings.get(part, 0.0) + time.perf_counter() - start
            if count is not None:
                flops[part] = flops.get(part, 0.0) + count(arguments, arg)

    totals, parts = [], []
    previous = sys.getprofile()  # put back whatever profiler was there (normally none)
    batch = np.arange(B)
    for r in range(repeats + 1):
        timings.clear()
        flops.clear()
        sys.setprofile(hook)
        try:
            t0 = time.perf_counter()
            solver.step(batch)
            t1 = time.perf_counter()
        finally:
            sys.setprofile(previous)
        timings["rest (Python, copies, crops, the schedule)"] = (t1 - t0) - sum(timings.values())
        if r:
            totals.append(t1 - t0)
            parts.append(dict(timings))
    names = list(parts[0])
    rows = [(name, float(np.median([p.get(name, 0.0) for p in parts])),
             flops[name] / 1e9 if name in flops else None) for name in names]
    rows.sort(key=lambda row: -row[1])
    return rows, float(np.median(totals))


def format_profile(recipe_name, rows, total):
    """The table ``python -m convlab.train --profile`` prints, as one string.

    Parameters
    ----------
    recipe_name : str
    rows, total
        What :func:`profile_step` returns.
    """
    total_gflop = sum(g for _, _, g in rows if g)
    lines = [f"one training step of recipe {recipe_name!r}: {total * 1e3:.0f} ms, "
             f"{total_gflop:.2f} GFLOP in convolutions",
             f"{'part':52s} {'ms':>8s} {'share':>6s} {'GFLOP':>7s} {'GFLOP/s':>8s}"]
    for part, seconds, gflop in rows:
        rate = f"{gflop / seconds:8.1f}" if gflop and seconds > 0 else " " * 8
        g = f"{gflop:7.2f}" if gflop else " " * 7
        lines.append(f"{part:52s} {seconds * 1e3:8.1f} {100 * seconds / total:5.1f}% {g} {rate}")
    return "\n".join(lines)
