"""Time the direct convolution kernels against Winograd F(2x2, 3x3) and F(4x4, 3x3), layer by layer.

Usage::

    python benchmarks/bench_winograd.py                 # all threads, wall time
    python benchmarks/bench_winograd.py --threads 1     # one thread, CPU time
    python benchmarks/bench_winograd.py --only best --dtype float32

The workloads are the stride-1 3x3 convolutions of the ``quick`` and ``best``
recipes (airbench-style networks at batch 256: whitening conv to 31 x 31,
then blocks of 31/15, 15/7, 7/3 maps) and the 64-channel 32 x 32 layer of
``bench_layers.py``.  For each, the forward pass (``conv_forward_fast``) and
the input gradient (``conv_backward_input_fast``) run with the algorithm
forced to ``"direct"``, ``"winograd"`` (F(2x2, 3x3)) and ``"winograd4"``
(F(4x4, 3x3)) (:func:`convlab.fast_layers.set_conv_algorithm`), alternating
call by call so that a change in machine load hits all alike.  The table
gives the direct kernels' time (fastest of ``--repeats`` calls) and the
ratios direct / F(2x2) and direct / F(4x4) (above 1: Winograd is faster);
the column ``auto`` says which one :func:`convlab.fast_layers.winograd_tile`
picks for the forward pass and for ``dx`` (``dir``, ``F2`` or ``F4``).

With ``--threads 1`` the clock is the process's CPU time
(``time.process_time``), which a busy machine disturbs less than wall time.
"""

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from convlab import fast_layers
from convlab.recipes import RECIPES
from machine import cpu_name  # benchmarks/machine.py

BATCH = 256


def recipe_convs(name):
    """The stride-1 3x3 convolutions of an airbench-style recipe: (label, C, K, H) at batch 256.

    The whitening conv (k = 2, no padding) maps 32 x 32 images to 31 x 31;
    each block is conv (pad 1) -> floor 2x2 pool -> conv, so its maps are
    H then H // 2.
    """
    recipe = RECIPES[name]
    channels = 2 * 3 * recipe.get("whiten_kernel", 2) ** 2
    H = 32 - recipe.get("whiten_kernel", 2) + 1
    convs = []
    for b, width in enumerate(recipe["widths"], start=1):
        convs.append((f"{name} b{b}.1", channels, width, H))
        H //= 2
        for j in range(2, recipe["convs_per_block"] + 1):
            convs.append((f"{name} b{b}.{j}", width, width, H))
        channels = width
    return [(label, C, K, H, BATCH) for label, C, K, H in convs]


def workloads():
    return (recipe_convs("quick") + recipe_convs("best")
            + [("conv 64->64 32x32", 64, 64, 32, 128)])


ALGORITHMS = ("direct", "winograd", "winograd4")
_ALGORITHM_NAMES = {0: "dir", 2: "F2", 4: "F4"}  # by winograd_tile's answer


def time_algorithms(run, repeats, clock):
    """Fastest of ``repeats`` calls of ``run()`` under each algorithm, alternating."""
    best = dict.fromkeys(ALGORITHMS, np.inf)
    for _ in range(repeats):
        for algorithm in ALGORITHMS:
            fast_layers.set_conv_algorithm(algorithm)
            t0 = clock()
            run()
            best[algorithm] = min(best[algorithm], clock() - t0)
    fast_layers.set_conv_algorithm("auto")
    return [best[a] for a in ALGORITHMS]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=0, help="OpenMP threads (default: all)")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per algorithm")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=None,
                        help="one dtype only (default: both)")
    parser.add_argument("--only", default=None, help="workloads whose label contains this text")
    args = parser.parse_args()
    clock = time.process_time if args.threads == 1 else time.perf_counter
    dtypes = [args.dtype] if args.dtype else ["float32", "float64"]
    info = fast_layers.build_info()
    threads = args.threads or info["threads"]
    print(f"CPU: {cpu_name()}; SIMD path {info['simd_path']}; {threads} thread(s); "
          f"{'CPU' if args.threads == 1 else 'wall'} time, fastest of {args.repeats}, ms")
    header = (f"{'workload':18} {'C':>4} {'K':>4} {'map':>5} {'N':>4} {'dtype':8} "
              f"{'fwd ms':>7} {'F2 x':>5} {'F4 x':>5} {'dx ms':>7} {'F2 x':>5} {'F4 x':>5} "
              f"{'auto fwd/dx':>12}")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    with threadpool_limits(limits=threads, user_api="openmp"):
        for label, C, K, H, N in workloads():
            if args.only and args.only not in label:
                continue
            for dtype in dtypes:
                x = rng.standard_normal((N, C, H, H)).astype(dtype)
                w = (rng.standard_normal((K, C, 3, 3)) / np.sqrt(9 * C)).astype(dtype)
                b = np.zeros(K, dtype=dtype)
                dout = rng.standard_normal((N, K, H, H)).astype(dtype)
                conv_param = {"stride": 1, "pad": 1}
                _, cache = fast_layers.conv_forward_fast(x, w, b, conv_param)
                fwd = time_algorithms(lambda: fast_layers.conv_forward_fast(x, w, b, conv_param),
                                      args.repeats, clock)
                dx = time_algorithms(lambda: fast_layers.conv_backward_input_fast(dout, cache),
                                     args.repeats, clock)
                auto = (_ALGORITHM_NAMES[fast_layers.winograd_tile(C, K, H, H, np.dtype(dtype))],
                        _ALGORITHM_NAMES[fast_layers.winograd_tile(K, C, H, H, np.dtype(dtype))])
                print(f"{label:18} {C:4d} {K:4d} {H:2d}x{H:<2d} {N:4d} {dtype:8} "
                      f"{fwd[0] * 1e3:7.1f} {fwd[0] / fwd[1]:5.2f} {fwd[0] / fwd[2]:5.2f} "
                      f"{dx[0] * 1e3:7.1f} {dx[0] / dx[1]:5.2f} {dx[0] / dx[2]:5.2f} "
                      f"{'/'.join(auto):>12}", flush=True)


if __name__ == "__main__":
    main()
