"""Time one training step of a recipe's network: convlab against PyTorch on the CPU.

Usage::

    python benchmarks/bench_train_step.py                    # the quick recipe
    python benchmarks/bench_train_step.py --recipe best --steps 5
    python benchmarks/bench_train_step.py --rounds 5          # more repeats on a busy machine
    python benchmarks/bench_train_step.py --batch-size 512  # another batch size
    python benchmarks/bench_train_step.py --recipe best --set "widths=[64,256,256]"  # full width

A *step* is what :class:`convlab.solver.Solver` does per minibatch: the
augmentation (random flip and translation), the forward and backward pass
through the network and the loss, and the Nesterov update of every parameter.
convlab runs the recipe's own model and Solver step.  PyTorch runs the same
architecture (frozen 2x2 whitening conv, three blocks of conv - max pool -
batch norm without scale - GELU - conv - batch norm - GELU, global max pool,
linear layer, label smoothing) with ``torch.optim.SGD(nesterov=True)``, in
float32, in both NCHW and channels-last layouts.  The data are random images
of CIFAR-10's shape: only the time is of interest here.

Each backend runs in its own subprocess, so thread pools never compete.  A
*round* times every backend once, one after the other; ``--rounds`` (default
3) repeats that, starting each round with the next backend, so that a burst of
other work on the machine cannot land on one backend only.  The table shows
each backend's best round (the median of its steps in that round), the time
per epoch of 49,000 images, and convlab's time relative to PyTorch's faster
layout; the line under it lists that ratio round by round, each from times
taken minutes apart at most.  PyTorch is an optional benchmark dependency
only; convlab never imports it.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from machine import describe  # benchmarks/machine.py

NUM_TRAIN = 49000
BACKENDS = ("convlab", "torch", "torch-nhwc")


def time_convlab(recipe_name, steps, warmup, overrides=()):
    from convlab import recipes

    recipe = recipes.resolve_recipe(recipe_name, overrides)
    B = int(recipe["batch_size"])
    rng = np.random.default_rng(0)
    data = {"X_train": rng.standard_normal((4 * B, 3, 32, 32)).astype(np.float32),
            "y_train": rng.integers(0, 10, 4 * B),
            "X_val": rng.standard_normal((10, 3, 32, 32)).astype(np.float32),
            "y_val": rng.integers(0, 10, 10)}
    model = recipes.build_model(recipe, 0, data["X_train"])
    solver = recipes.build_solver(model, data, recipe, 0, out_dir=os.devnull, progress=False)
    times = []
    for i in range(warmup + steps):
        batch = solver.rng.choice(data["X_train"].shape[0], B, replace=False)
        t = time.perf_counter()
        solver.step(batch)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return B, times


def time_torch(recipe_name, steps, warmup, channels_last, overrides=()):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from convlab import recipes

    recipe = recipes.resolve_recipe(recipe_name, overrides)
    B = int(recipe["batch_size"])
    widths = recipe["widths"]
    torch.manual_seed(0)

    def bn(c):
        layer = nn.BatchNorm2d(c, momentum=1 - recipe["bn_momentum"])
        layer.weight.requires_grad_(False)  # frozen scale, as in the recipe
        return layer

    layers = [nn.Conv2d(3, 24, 2, bias=False), nn.GELU()]
    layers[0].weight.requires_grad_(False)  # the frozen whitening conv
    c_in = 24
    for w in widths:
        layers += [nn.Conv2d(c_in, w, 3, padding=1, bias=False), nn.MaxPool2d(2), bn(w), nn.GELU(),
                   nn.Conv2d(w, w, 3, padding=1, bias=False), bn(w), nn.GELU()]
        c_in = w
    body = nn.Sequential(*layers)
    head = nn.Linear(c_in, 10, bias=False)
    model = nn.ModuleDict({"body": body, "head": head})
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=recipe["learning_rate"] * B, momentum=recipe["momentum"],
                          nesterov=True, weight_decay=recipe["weight_decay"])
    X = torch.randn(4 * B, 3, 32, 32)
    y = torch.randint(0, 10, (4 * B,))
    times = []
    for i in range(warmup + steps):
        idx = torch.randperm(4 * B)[:B]
        t = time.perf_counter()
        xb = X[idx]
        flip = torch.rand(B) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        xb = F.pad(xb, (2, 2, 2, 2), mode="reflect")
        dy, dx = np.random.randint(0, 5, 2)
        xb = xb[:, :, dy:dy + 32, dx:dx + 32]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        h = model["body"](xb)
        scores = model["head"](h.amax(dim=(2, 3))) * recipe["logit_scale"]
        loss = F.cross_entropy(scores, y[idx], label_smoothing=recipe["label_smoothing"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return B, times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="quick", help="a ConvNet recipe of convlab.recipes (default quick)")
    parser.add_argument("--batch-size", type=int, default=None, help="override the recipe's batch size")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe setting, as in python -m convlab.train (repeatable)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per backend (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of every backend in turn; the table keeps each one's best (default 3)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if it is installed")
    parser.add_argument("--backend", choices=BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name, value, least in (("--steps", args.steps, 1), ("--warmup", args.warmup, 0),
                               ("--rounds", args.rounds, 1)):
        if value < least:
            parser.error(f"{name} must be at least {least}, got {value}")
    overrides = args.set + ([f"batch_size={args.batch_size}"] if args.batch_size is not None else [])
    if not args.backend:  # check the recipe here, before any backend starts
        from convlab import recipes
        try:
            recipe = recipes.resolve_recipe(args.recipe, overrides)
        except ValueError as err:
            parser.error(f"--recipe/--set: {err}")
        if recipe["model"] != "convnet":
            parser.error(f"--recipe {args.recipe!r} is not a ConvNet recipe; "
                         f"choose one whose model is 'convnet', e.g. quick or best")

    if args.backend:  # child process: time one backend, print JSON
        if args.backend == "convlab":
            B, times = time_convlab(args.recipe, args.steps, args.warmup, overrides)
        else:
            B, times = time_torch(args.recipe, args.steps, args.warmup, args.backend == "torch-nhwc",
                                  overrides)
        json.dump({"batch_size": B, "times": times}, sys.stdout)
        return

    backends = ["convlab"]
    if not args.no_torch:
        try:
            import torch  # noqa: F401
            backends += ["torch", "torch-nhwc"]
        except ImportError:
            pass
    rounds = {backend: [] for backend in backends}      # median step time per round
    batch_size = {}
    for r in range(args.rounds):
        for backend in backends[r % len(backends):] + backends[:r % len(backends)]:
            cmd = [sys.executable, __file__, "--backend", backend, "--recipe", args.recipe,
                   "--steps", str(args.steps), "--warmup", str(args.warmup)]
            for item in overrides:
                cmd += ["--set", item]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"the {backend} backend failed:\n{done.stderr}")
            result = json.loads(done.stdout)
            batch_size[backend] = result["batch_size"]
            rounds[backend].append(statistics.median(result["times"]))

    settings = "".join(f" --set {item}" for item in overrides)
    print(f"training step of the {args.recipe!r} recipe{settings}: "
          f"median of {args.steps} steps, best of {args.rounds} round(s)")
    print(describe())
    print(f"{'backend':11s} {'batch':>5s} {'ms/step':>9s} {'s/epoch':>8s} {'vs torch':>9s}")
    best = {backend: min(times) for backend, times in rounds.items()}
    torch_backends = [b for b in ("torch", "torch-nhwc") if b in rounds]
    torch_best = min((best[b] for b in torch_backends), default=None)
    for backend, step in best.items():
        B = batch_size[backend]
        ratio = f"{step / torch_best:8.2f}x" if torch_best and backend == "convlab" else ""
        print(f"{backend:11s} {B:5d} {step * 1e3:9.1f} {step * (NUM_TRAIN // B):8.1f} {ratio:>9s}")
    if torch_backends:
        per_round = [rounds["convlab"][r] / min(rounds[b][r] for b in torch_backends)
                     for r in range(args.rounds)]
        print("convlab / faster PyTorch, round by round: "
              + " ".join(f"{ratio:.2f}x" for ratio in per_round))

if __name__ == "__main__":
    main()
