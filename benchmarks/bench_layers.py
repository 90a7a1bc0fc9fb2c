"""Time the naive, fast and (if installed) PyTorch CPU conv and max-pool layers.

Usage::

    python benchmarks/bench_layers.py            # full run, a few minutes
    python benchmarks/bench_layers.py --quick    # fewer repeats, smaller naive runs

Each backend runs in its own subprocess (so thread pools never compete), and
the backends take turns for ``--rounds`` rounds, so that a change in machine
load during the run hits all of them alike.  For every workload the script
prints the median forward and backward times in milliseconds over all
repeats of all rounds, the convolution throughput in GFLOP/s, and the ratios
fast / PyTorch (forward + backward) and naive / fast.

PyTorch runs twice: in its default NCHW layout (``torch``) and on
channels-last tensors (``torch-nhwc``), which is often much faster on the CPU;
the fast / PyTorch ratio is taken against the faster of the two, so that
convlab is compared with what a user would actually get.

PyTorch is an optional *benchmark* dependency only; convlab never imports it.
The naive layers are timed on the course workloads only (the others would
take minutes per call).
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

from machine import describe  # benchmarks/machine.py

# name, kind, x shape, w shape or pool window, stride, pad, dtypes, naive?
WORKLOADS = [
    ("course conv", "conv", (100, 3, 31, 31), (25, 3, 3, 3), 2, 1, ["float64"], True),
    ("course pool", "pool", (100, 3, 32, 32), (2, 2), 2, 0, ["float64"], True),
    ("conv 64->64 3x3", "conv", (128, 64, 32, 32), (64, 64, 3, 3), 1, 1, ["float32", "float64"], False),
    ("conv 3->32 7x7", "conv", (128, 3, 32, 32), (32, 3, 7, 7), 1, 3, ["float32", "float64"], False),
    ("pool 64ch 2x2/2", "pool", (128, 64, 32, 32), (2, 2), 2, 0, ["float32", "float64"], False),
]

BACKENDS = ("naive", "fast", "torch", "torch-nhwc")
TORCH_BACKENDS = ("torch", "torch-nhwc")


# --------------------------------------------------------------------------
# One backend, in a subprocess
# --------------------------------------------------------------------------


def make_layer(backend, kind, w_shape, stride, pad):
    """Return ``(forward, backward)`` closures for one backend and layer kind."""
    if backend in TORCH_BACKENDS:
        import torch
        import torch.nn.functional as F

        def forward(arrays):
            x, *params = [a.requires_grad_(True) for a in arrays]
            if kind == "conv":
                out = F.conv2d(x, params[0], params[1], stride=stride, padding=pad)
            else:
                out = F.max_pool2d(x, w_shape, stride=stride)
            return out, (x, *params)

        def backward(dout, state):
            out, inputs = state
            return torch.autograd.grad(out, inputs, dout)

        return forward, backward

    if backend == "naive":
        from convlab import layers as mod

        conv_fwd, conv_bwd = mod.conv_forward_naive, mod.conv_backward_naive
        pool_fwd, pool_bwd = mod.max_pool_forward_naive, mod.max_pool_backward_naive
    else:
        from convlab import fast_layers as mod

        conv_fwd, conv_bwd = mod.conv_forward_fast, mod.conv_backward_fast
        pool_fwd, pool_bwd = mod.max_pool_forward_fast, mod.max_pool_backward_fast

    if kind == "conv":
        conv_param = {"stride": stride, "pad": pad}
        return (lambda arrays: conv_fwd(*arrays, conv_param)), (lambda dout, state: conv_bwd(dout, state[1]))
    pool_param = {"pool_height": w_shape[0], "pool_width": w_shape[1], "stride": stride}
    return (lambda arrays: pool_fwd(arrays[0], pool_param)), (lambda dout, state: pool_bwd(dout, state[1]))


def to_torch(backend, arrays, dout):
    """The inputs as PyTorch tensors in the backend's memory layout.

    ``"torch"`` keeps PyTorch's default NCHW layout; ``"torch-nhwc"`` hands it
    channels-last tensors, converted before the clock starts (a network keeps
    its activations in one layout), which lets oneDNN pick its fastest
    convolution and pooling kernels on this CPU.
    """
    import torch

    def convert(a):
        t = torch.from_numpy(a)
        if backend == "torch-nhwc" and t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    return [convert(a) for a in arrays], convert(dout)


def output_shape(kind, x_shape, w_shape, stride, pad):
    N, C, H, W = x_shape
    if kind == "conv":
        F, _, HH, WW = w_shape
        return (N, F, 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride)
    ph, pw = w_shape
    return (N, C, 1 + (H - ph) // stride, 1 + (W - pw) // stride)


def time_backend(backend, repeats, warmup, only):
    """Time every workload for one backend; return a list of result dicts."""
    results = []
    for name, kind, x_shape, w_shape, stride, pad, dtypes, with_naive in WORKLOADS:
        if backend == "naive" and not with_naive:
            continue
        if only and only not in name:
            continue
        for dtype in dtypes:
            rng = np.random.default_rng(0)
            arrays = [rng.standard_normal(x_shape).astype(dtype)]
            if kind == "conv":
                arrays += [rng.standard_normal(w_shape).astype(dtype), rng.standard_normal(w_shape[0]).astype(dtype)]
            dout = rng.standard_normal(output_shape(kind, x_shape, w_shape, stride, pad)).astype(dtype)
            forward, backward = make_layer(backend, kind, w_shape, stride, pad)
            if backend in TORCH_BACKENDS:
                arrays, dout = to_torch(backend, arrays, dout)
            fwd_times, bwd_times = [], []
            n_rep = repeats if backend != "naive" else max(1, repeats // 3)
            n_warm = warmup if backend != "naive" else 0
            for i in range(n_warm + n_rep):
                t0 = time.perf_counter()
                state = forward(arrays)
                t1 = time.perf_counter()
                backward(dout, state)
                t2 = time.perf_counter()
                del state
                if i >= n_warm:
                    fwd_times.append(t1 - t0)
                    bwd_times.append(t2 - t1)
            results.append({"workload": name, "dtype": dtype, "fwd": fwd_times, "bwd": bwd_times})
    return results


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------


def conv_gflop(name):
    """Forward GFLOP of a conv workload (the backward pass does twice as much)."""
    for wname, kind, x_shape, w_shape, stride, pad, _, _ in WORKLOADS:
        if wname == name and kind == "conv":
            N, F, H_out, W_out = output_shape(kind, x_shape, w_shape, stride, pad)
            _, C, HH, WW = w_shape
            return 2.0 * N * F * H_out * W_out * C * HH * WW / 1e9
    return None


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def run_subprocess(backend, args):
    cmd = [sys.executable, __file__, "--backend", backend, "--repeats", str(args.repeats),
           "--warmup", str(args.warmup)]
    if args.only:
        cmd += ["--only", args.only]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the {backend} backend failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and rounds")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per round (default 5, quick 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before timing")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of alternating backends (default 3, quick 1)")
    parser.add_argument("--no-naive", action="store_true", help="skip the (slow) naive layers")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if it is installed")
    parser.add_argument("--only", default=None, help="run only workloads whose name contains this text")
    parser.add_argument("--backend", choices=BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3

    if args.backend:  # child process: time one backend, print JSON
        json.dump(time_backend(args.backend, args.repeats, args.warmup, args.only), sys.stdout)
        return

    backends = ["fast"]
    if not args.no_naive:
        backends.insert(0, "naive")
    if not args.no_torch and torch_available():
        backends += ["torch", "torch-nhwc"]
    samples = {}  # (backend, workload, dtype) -> {"fwd": [...], "bwd": [...]}
    for round_ in range(args.rounds):
        for backend in backends:
            if backend == "naive" and round_ > 0:
                continue  # the naive layers are slow and their ratio is huge anyway
            for r in run_subprocess(backend, args):
                s = samples.setdefault((backend, r["workload"], r["dtype"]), {"fwd": [], "bwd": []})
                s["fwd"] += r["fwd"]
                s["bwd"] += r["bwd"]

    print(f"convlab layer benchmark: {args.rounds} round(s) x {args.repeats} repeats, medians in ms")
    print(describe())
    header = (f"{'workload':18} {'dtype':8} {'backend':10} {'fwd ms':>9} {'bwd ms':>9} {'total':>9} "
              f"{'GFLOP/s':>8} {'vs torch':>9} {'naive/fast':>10}")
    print("'vs torch' divides fast's fwd + bwd time by that of PyTorch's faster layout.")
    print(header)
    print("-" * len(header))
    for name, kind, *_rest in WORKLOADS:
        for dtype in _rest[4]:
            med = {}
            for backend in backends:
                s = samples.get((backend, name, dtype))
                if s:
                    med[backend] = (statistics.median(s["fwd"]) * 1e3, statistics.median(s["bwd"]) * 1e3)
            gflop = conv_gflop(name)
            for backend, (f_ms, b_ms) in med.items():
                total = f_ms + b_ms
                rate = f"{3 * gflop / (total / 1e3):8.1f}" if gflop else f"{'-':>8}"
                torch_best = min((sum(med[t]) for t in TORCH_BACKENDS if t in med), default=None)
                vs_torch = f"{total / torch_best:8.2f}x" if torch_best and backend == "fast" else ""
                speedup = f"{sum(med['naive']) / total:9.0f}x" if "naive" in med and backend == "fast" else ""
                print(f"{name:18} {dtype:8} {backend:10} {f_ms:9.2f} {b_ms:9.2f} {total:9.2f} "
                      f"{rate} {vs_torch:>9} {speedup:>10}")


if __name__ == "__main__":
    main()
