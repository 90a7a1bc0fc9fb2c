"""Train a CIFAR-10 classifier from the command line.

Usage::

    python -m convlab.train --recipe quick [--epochs N] [--seed S] [--out DIR] [--resume]

A *recipe* is a named set of choices -- model, optimizer, schedule,
augmentation, test-time augmentation -- listed in
:data:`convlab.recipes.RECIPES`. ``--set key=value`` overrides single entries
(for ablations, e.g. ``--set activation=relu``);
``--num-train``/``--num-val``/``--num-test`` shrink the data (for smoke
tests); ``--profile`` times one training step part by part instead
(:func:`convlab.profiling.profile_step`).

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

from convlab.augment import predict_tta
from convlab.checkpoint import atomic_savez, atomic_write_text, find_latest_checkpoint
from convlab.optim import nesterov_sgd
from convlab.profiling import profile_step
from convlab.recipes import RECIPES, build_model, build_solver, load_data, resolve_recipe

# The recipes and their builders live in convlab.recipes, the update rule in
# convlab.optim; they are importable from here as before.
__all__ = ["RECIPES", "resolve_recipe", "load_data", "build_model", "build_solver",
           "nesterov_sgd", "run", "evaluate", "main"]


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
    text = json.dumps(obj, indent=1, default=lambda o: list(o) if isinstance(o, tuple) else str(o))
    atomic_write_text(path, text)


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
        with s.evaluation_params():
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
    atomic_savez(os.path.join(out, "model.npz"), arrays)
    total = time.perf_counter() - start
    history = history_dict(solver, recipe, start, extra={
        "final_val_acc": val_acc, "final_test_acc": test_acc, "tta": recipe["tta"],
        "num_train": int(len(data["y_train"])), "num_val": int(len(data["y_val"])),
        "num_test": int(len(data["y_test"])), "seed": seed,
        "wall_time": total, "test_predictions": np.argmax(test_scores, 1).tolist(),
        "resumed": bool(resume)})
    _write_json(hist_path, history)
    return history


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
