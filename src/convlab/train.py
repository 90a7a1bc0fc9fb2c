"""Train a CIFAR-10 classifier from the command line.

Usage::

    python -m convlab.train --recipe quick [--epochs N] [--seed S] [--out DIR] [--resume]

A *recipe* is a named set of choices -- model, optimizer, schedule,
augmentation, test-time augmentation -- listed in :data:`RECIPES`. ``--set
key=value`` overrides single entries (for ablations, e.g. ``--set
activation=relu``); ``--num-train``/``--num-val``/``--num-test`` shrink the
data (for smoke tests).

Everything the run produces goes to ``--out`` (default ``runs/<recipe>``):

- ``checkpoint_epoch_<e>.npz`` -- the Solver checkpoint after every epoch
  (``--resume`` continues from the latest one, exactly);
- ``model.npz`` -- the trained parameters and model state, plus the recipe;
- ``history.json`` -- per-epoch training loss, train/validation accuracy,
  learning rate and wall time, the final accuracies, the recipe, the command
  line and the machine.

The last two lines printed are ``val accuracy: 0.xxxx`` and
``test accuracy: 0.xxxx``. Data comes from
:func:`convlab.data_utils.get_CIFAR10_data` (so ``CONVLAB_DATA`` works): the
first 49,000 training images train, the next 1,000 validate, and the 10,000
test images test.
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from convlab import optim, schedules
from convlab.augment import make_augment, predict_tta
from convlab.solver import Solver, find_latest_checkpoint

__all__ = ["RECIPES", "build_model", "build_solver", "nesterov_sgd", "main"]

# Hyperparameters follow airbench94 (Keller Jordan, 2024) translated to a
# mean (not summed) loss and decoupled weight decay: the learning rate is per
# example times the batch size, and the BN shifts learn 64x faster.
_AIRBENCH = {
    "model": "convnet",
    "widths": (16, 64, 64),
    "whiten_kernel": 2,
    "activation": "gelu",
    "bn_scale": False,
    "bn_momentum": 0.6,
    "label_smoothing": 0.2,
    "logit_scale": 1.0 / 9.0,
    "convs_per_block": 2,
    "update_rule": "nesterov",
    "batch_size": 512,
    "learning_rate": 1.465e-3,          # per example: multiplied by batch_size
    "momentum": 0.85,
    "weight_decay": 0.0089,             # decoupled, per step: lr * wd * w
    "bias_lr_scale": 64.0,
    "schedule": {"name": "linear", "end": 0.07, "warmup": 0.23, "warmup_start": 0.2},
    "flip": True,
    "translate": 2,
    "tta": 2,
    "ema_decay": None,
    "epochs": 8,
}

#: The named recipes. ``epochs`` is the default of ``--epochs``.
RECIPES = {
    # The course's network and optimizer: conv7x7(32)-relu-pool-affine(500)-relu-affine.
    "three_layer": {
        "model": "three_layer", "num_filters": 32, "filter_size": 7, "hidden_dim": 500,
        "reg": 0.001, "weight_scale": 0.001, "update_rule": "adam", "learning_rate": 1e-3,
        "batch_size": 50, "schedule": {"name": "constant"}, "flip": False, "translate": 0,
        "tta": 0, "ema_decay": None, "epochs": 1,
    },
    # airbench-style, width x 0.25, 4 epochs of batch 256, flip TTA, weights
    # averaged with decay 0.95: the chapter's live run (about 3 minutes on a
    # quiet 2-core machine).  Batch 256 trains about as fast per epoch as 512
    # here and does twice as many updates, which is worth about a point of
    # accuracy in so short a run; the average added 0.2-0.7 test points.
    "quick": dict(_AIRBENCH, widths=(16, 64, 64), batch_size=256, epochs=4, tta=1, ema_decay=0.95),
    # airbench-style, width x 0.5, 22 epochs of batch 256, flip + translate
    # TTA, weights averaged as in quick: the long run (about 53 minutes on a
    # quiet 2-core machine).
    "best": dict(_AIRBENCH, widths=(32, 128, 128), batch_size=256, epochs=22, tta=2,
                 ema_decay=0.95),
    # A seconds-long recipe for smoke tests.
    "tiny": dict(_AIRBENCH, widths=(4, 8, 8), batch_size=64, epochs=1, tta=1),
}


# ----------------------------------------------------------------------
# Optimizer
# ----------------------------------------------------------------------

def nesterov_sgd(w, dw, config=None):
    """Nesterov SGD with decoupled weight decay and a per-parameter lr multiplier.

    The same as :func:`convlab.optim.sgd_momentum` with ``nesterov=True``,
    except that ``config['lr_scale']`` (default 1) multiplies the learning rate
    of this parameter while the absolute weight decay per step,
    ``learning_rate * weight_decay * w``, stays that of the base learning rate.
    (airbench lets batch-norm shifts learn 64 times faster this way.)

    Parameters
    ----------
    w, dw : ndarray of the same shape
    config : dict
        ``learning_rate``, ``momentum``, ``weight_decay``, ``lr_scale``,
        ``velocity``.

    Returns
    -------
    next_w : ndarray
    config : dict
    """
    config = dict(config or {})
    scale = float(config.pop("lr_scale", 1.0))
    lr = float(config.get("learning_rate", 1e-2))
    wd = float(config.get("weight_decay", 0.0))
    inner = dict(config, learning_rate=lr * scale, weight_decay=wd / scale, nesterov=True)
    next_w, inner = optim.sgd_momentum(w, dw, inner)
    inner.update(learning_rate=lr, weight_decay=wd, lr_scale=scale)
    return next_w, inner


# ----------------------------------------------------------------------
# Building a run
# ----------------------------------------------------------------------

def _parse_value(text):
    """A ``--set`` value: JSON if it parses (numbers, lists, null), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def resolve_recipe(name, overrides=(), epochs=None):
    """The recipe dict for ``name`` with ``key=value`` overrides applied.

    Parameters
    ----------
    name : str
        A key of :data:`RECIPES`.
    overrides : sequence of str
        ``"key=value"`` strings; values are parsed as JSON when possible.
    epochs : int or None
        Overrides the recipe's ``epochs``.

    Returns
    -------
    dict
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(RECIPES)}")
    recipe = dict(RECIPES[name])
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in recipe and key not in _AIRBENCH:
            raise ValueError(f"--set expects key=value with a recipe key "
                             f"({sorted(recipe)}), got {item!r}")
        recipe[key] = _parse_value(value)
    if epochs is not None:
        recipe["epochs"] = int(epochs)
    if recipe["epochs"] < 1:
        raise ValueError(f"epochs must be at least 1, got {recipe['epochs']}")
    return recipe


def build_model(recipe, seed, X_train):
    """The model a recipe describes (whitening initialised from ``X_train``)."""
    if recipe["model"] == "three_layer":
        from convlab.classifiers.cnn import ThreeLayerConvNet

        return ThreeLayerConvNet(num_filters=recipe["num_filters"],
                                 filter_size=recipe["filter_size"],
                                 hidden_dim=recipe["hidden_dim"], reg=recipe["reg"],
                                 weight_scale=recipe["weight_scale"], dtype=np.float32,
                                 seed=seed)
    from convlab.classifiers.convnet import ConvNet

    model = ConvNet(input_dim=X_train.shape[1:], widths=recipe["widths"],
                    convs_per_block=recipe["convs_per_block"],
                    whiten_kernel=recipe["whiten_kernel"], activation=recipe["activation"],
                    bn_scale=recipe["bn_scale"], bn_momentum=recipe["bn_momentum"],
                    label_smoothing=recipe["label_smoothing"],
                    logit_scale=recipe["logit_scale"], dtype=np.float32, seed=seed)
    if model.whiten_kernel is not None:
        model.init_whitening(X_train[:5000], seed=seed)
    return model


def build_solver(model, data, recipe, seed, out_dir, progress=True):
    """A :class:`~convlab.solver.Solver` configured by ``recipe``."""
    rule = recipe["update_rule"]
    batch = int(recipe["batch_size"])
    if rule == "nesterov":
        update_rule = nesterov_sgd
        optim_config = {"learning_rate": recipe["learning_rate"] * batch,
                        "momentum": recipe["momentum"],
                        "weight_decay": recipe["weight_decay"]}
    else:
        # Built-in rules take the learning rate as given (not per example).
        update_rule = rule
        optim_config = {"learning_rate": recipe["learning_rate"]}
        if rule in ("sgd", "sgd_momentum", "adam") and recipe.get("weight_decay"):
            optim_config["weight_decay"] = recipe["weight_decay"]
        if rule == "sgd_momentum" and "momentum" in recipe:
            optim_config["momentum"] = recipe["momentum"]
    augment = None
    if recipe["flip"] or recipe["translate"]:
        augment = make_augment(flip=bool(recipe["flip"]), max_shift=int(recipe["translate"]))
    solver = Solver(model, data, update_rule=update_rule, optim_config=optim_config,
                    batch_size=batch, num_epochs=recipe["epochs"], num_train_samples=1000,
                    print_every=10**9, verbose=False, progress=progress,
                    checkpoint_name=os.path.join(out_dir, "checkpoint"), seed=seed,
                    lr_schedule=schedules.from_spec(recipe["schedule"]), augment=augment,
                    ema_decay=recipe["ema_decay"])
    if rule == "nesterov":
        for name in model.params:
            if name.startswith("beta"):
                solver.optim_configs[name]["lr_scale"] = float(recipe["bias_lr_scale"])
    return solver


def load_data(num_train=49000, num_val=1000, num_test=10000):
    """CIFAR-10 as float32, centred on the training mean and scaled to unit variance."""
    from convlab.data_utils import get_CIFAR10_data

    data = get_CIFAR10_data(num_training=num_train, num_validation=num_val,
                            num_test=num_test, dtype=np.float32)
    scale = np.float32(1.0 / data["X_train"].std())
    for key in ("X_train", "X_val", "X_test"):
        data[key] *= scale
    return data


def _machine():
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), platform.processor())
    except OSError:
        cpu = platform.processor()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}, Python {platform.python_version()}"


def history_dict(solver, recipe, start_time, extra=None):
    """The JSON history: one entry per epoch (entry 0 is before training)."""
    ipe = solver.iterations_per_epoch
    epochs = []
    elapsed = 0.0
    for e in range(len(solver.val_acc_history)):
        entry = {"epoch": e, "train_acc": solver.train_acc_history[e],
                 "val_acc": solver.val_acc_history[e]}
        if e >= 1:
            losses = solver.loss_history[(e - 1) * ipe:e * ipe]
            entry["loss"] = float(np.mean(losses)) if losses else None
            entry["lr"] = solver.lr_history[e * ipe - 1] if len(solver.lr_history) >= e * ipe else None
            if e - 1 < len(solver.epoch_time_history):
                elapsed += solver.epoch_time_history[e - 1]
                entry["epoch_time"] = solver.epoch_time_history[e - 1]
                entry["train_time"] = elapsed
        epochs.append(entry)
    history = {"recipe": recipe, "epochs": epochs,
               "loss_history": solver.loss_history,
               "train_acc_history": solver.train_acc_history,
               "val_acc_history": solver.val_acc_history,
               "command": "python -m convlab.train " + " ".join(sys.argv[1:]),
               "machine": _machine(),
               "wall_time_so_far": time.perf_counter() - start_time}
    if extra:
        history.update(extra)
    return history


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=lambda o: list(o) if isinstance(o, tuple) else str(o))
    os.replace(tmp, path)


def evaluate(model, X, y, tta=0, batch_size=500):
    """Accuracy of ``model`` on ``(X, y)`` with test-time augmentation level ``tta``."""
    scores = predict_tta(model.loss, X, level=tta, batch_size=batch_size)
    return float(np.mean(np.argmax(scores, axis=1) == y)), scores


def run(recipe_name, epochs=None, seed=0, out=None, resume=False, overrides=(),
        num_train=49000, num_val=1000, num_test=10000, progress=True, data=None):
    """Train a recipe end to end; returns the history dict (see the module docstring)."""
    start = time.perf_counter()
    recipe = resolve_recipe(recipe_name, overrides, epochs)
    out = out or os.path.join("runs", recipe_name)
    os.makedirs(out, exist_ok=True)
    if data is None:
        data = load_data(num_train, num_val, num_test)
    model = build_model(recipe, seed, data["X_train"])
    solver = build_solver(model, data, recipe, seed, out, progress=progress)
    if resume:
        latest = find_latest_checkpoint(os.path.join(out, "checkpoint"))
        if latest is None:
            raise ValueError(f"--resume: no checkpoint found in {out}")
        solver.resume(latest)
    hist_path = os.path.join(out, "history.json")
    last = {k: v.copy() for k, v in model.params.items()}
    last_state = {}

    def keep_last(s):
        # the weights (and state) the solver evaluates: the moving averages with ema_decay
        with s._evaluation_params():
            last.clear()
            last.update({k: v.copy() for k, v in s.model.params.items()})
            if hasattr(s.model, "state_dict"):
                last_state.clear()
                last_state.update({k: np.array(v, copy=True) for k, v in s.model.state_dict().items()})
        _write_json(hist_path, history_dict(s, recipe, start))

    solver.epoch_callbacks.append(keep_last)
    solver.train()
    # The recipes train on a fixed schedule: evaluate the final weights (which
    # match the final batch-norm statistics), not the best-on-validation ones;
    # with ema_decay, the final moving averages of both.
    model.params.update(last)
    if last_state:
        model.load_state_dict(last_state)
    val_acc, _ = evaluate(model, data["X_val"], data["y_val"], tta=recipe["tta"])
    test_acc, test_scores = evaluate(model, data["X_test"], data["y_test"], tta=recipe["tta"])
    arrays = {f"params/{k}": v for k, v in model.params.items()}
    if hasattr(model, "state_dict"):
        arrays.update({f"state/{k}": v for k, v in model.state_dict().items()})
    arrays["recipe"] = np.array(json.dumps(recipe, default=list))
    np.savez(os.path.join(out, "model.npz"), **arrays)
    total = time.perf_counter() - start
    history = history_dict(solver, recipe, start, extra={
        "final_val_acc": val_acc, "final_test_acc": test_acc, "tta": recipe["tta"],
        "num_train": int(len(data["y_train"])), "num_val": int(len(data["y_val"])),
        "num_test": int(len(data["y_test"])), "seed": seed,
        "wall_time": total, "test_predictions": np.argmax(test_scores, 1).tolist(),
        "resumed": bool(resume)})
    _write_json(hist_path, history)
    return history


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
    from convlab.classifiers import convnet as cn

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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m convlab.train", description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="quick", choices=sorted(RECIPES))
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output directory (default runs/RECIPE)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe entry (repeatable)")
    parser.add_argument("--num-train", type=int, default=49000)
    parser.add_argument("--num-val", type=int, default=1000)
    parser.add_argument("--num-test", type=int, default=10000)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--profile", action="store_true",
                        help="time one training step part by part (random data) and exit")
    args = parser.parse_args(argv)
    if args.profile:
        rows, total = profile_step(args.recipe, args.set)
        total_gflop = sum(g for _, _, g in rows if g)
        print(f"one training step of recipe {args.recipe!r}: {total * 1e3:.0f} ms, "
              f"{total_gflop:.2f} GFLOP in convolutions")
        print(f"{'part':52s} {'ms':>8s} {'share':>6s} {'GFLOP':>7s} {'GFLOP/s':>8s}")
        for part, seconds, gflop in rows:
            rate = f"{gflop / seconds:8.1f}" if gflop and seconds > 0 else " " * 8
            g = f"{gflop:7.2f}" if gflop else " " * 7
            print(f"{part:52s} {seconds * 1e3:8.1f} {100 * seconds / total:5.1f}% {g} {rate}")
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            _write_json(os.path.join(args.out, "profile.json"), {
                "recipe": args.recipe, "overrides": args.set, "step_seconds": total,
                "parts": [{"part": p, "seconds": t, "gflop": g} for p, t, g in rows],
                "command": "python -m convlab.train " + " ".join(sys.argv[1:]),
                "machine": _machine()})
        return 0
    try:
        history = run(args.recipe, epochs=args.epochs, seed=args.seed, out=args.out,
                      resume=args.resume, overrides=args.set, num_train=args.num_train,
                      num_val=args.num_val, num_test=args.num_test,
                      progress=not args.no_progress)
    except ValueError as error:
        parser.error(str(error))
    for e in history["epochs"][1:]:
        print(f"epoch {e['epoch']:3d}  loss {e['loss']:.4f}  train acc {e['train_acc']:.4f}  "
              f"val acc {e['val_acc']:.4f}  lr {e['lr']:.4g}  time {e.get('train_time', 0):.1f}s")
    print(f"wall time: {history['wall_time']:.1f}s")
    print(f"val accuracy: {history['final_val_acc']:.4f}")
    print(f"test accuracy: {history['final_test_acc']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
