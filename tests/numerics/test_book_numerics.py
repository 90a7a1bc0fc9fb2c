"""Every chapter prints the same on other CPUs' numerics.

A reader's computer rounds differently from the one the stored notebooks
were made on: another BLAS kernel (OpenBLAS picks one per processor),
NumPy's own SIMD loops (chosen per processor), convlab's kernels on another
SIMD path (``portable`` has no fused multiply-add; ``avx2``/``avx512`` have),
another number of threads. Every output that ``pytest --nbval`` compares must
survive all of these. This test re-executes the chapters under several such
settings that one x86-64 machine can produce (see each :class:`Numerics`),
checks first that each setting really took effect, and runs the chapters
with ``CONVLAB_CHECK_MARGINS=1``, so that a printed figure that sits too close
to where it would print differently fails here even if this machine happens
to land on the stored side (:func:`convlab.checks.margin_problem`).

Not part of a plain ``pytest tests/`` (``norecursedirs``): it re-executes the
book several times (about ten minutes). Run it explicitly::

    pytest tests/numerics

``CONVLAB_NUMERICS=name,name`` runs only the named settings.
"""

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
ALL_CHAPTERS = sorted(p.name for p in BOOK.glob("[0-9][0-9]-*.ipynb"))
# Chapter 5 trains for 980 steps in a compared cell: where rounding adds up most, and
# the costliest chapter (minutes), so it runs under the setting least like the
# stored one. Chapter 7's live training run takes minutes more and its outputs are
# not compared (they print this computer's figures); its compared cells read
# stored records or print bounds, and the main run of the book checks their margins.
TRAINING = "05-three-layer-convnet.ipynb"
LIVE_RUN = "07-experiments.ipynb"
TIMEOUT = 1800  # seconds for one setting's chapters


@dataclass(frozen=True)
class Numerics:
    """One way of rounding that a reader's computer may have.

    Attributes
    ----------
    name : str
        Short name (pytest's id).
    simd : str
        ``CONVLAB_SIMD``: which path of convlab's kernels runs.
    blas : str
        ``OPENBLAS_CORETYPE``: which OpenBLAS kernel NumPy's BLAS uses.
    numpy_level : str
        The highest group of NumPy's dispatched SIMD loops left on
        (``'X86_V2'``: the baseline only; ``'X86_V3'``: AVX2).
    threads : int
        Threads for convlab's kernels and for the BLAS.
    chapters : tuple of str
        The chapters re-executed (by default all but chapters 5 and 7).
    """

    name: str
    simd: str
    blas: str
    numpy_level: str
    threads: int
    chapters: tuple = tuple(c for c in ALL_CHAPTERS if c not in (TRAINING, LIVE_RUN))


# The stored notebooks come from an AVX2 machine (convlab `avx2`, OpenBLAS
# `Haswell`/`Zen`, NumPy up to X86_V3). The book's main run (the `notebooks` stage of
# noxfile.py) re-executes them with whatever this machine has (on an AVX-512
# CPU: convlab `avx512`, OpenBLAS `SkylakeX`, NumPy's AVX-512 loops). These add
# the other ends: an old x86-64 or an arm64 laptop (no FMA in convlab, SSE3 BLAS,
# NumPy's baseline), an AVX2 machine, and the plain C kernels on one thread.
SETTINGS = [
    Numerics("sse-no-fma", simd="portable", blas="Prescott", numpy_level="X86_V2",
             threads=2, chapters=tuple(c for c in ALL_CHAPTERS if c != LIVE_RUN)),
    Numerics("avx2-machine", simd="avx2", blas="Haswell", numpy_level="X86_V3",
             threads=2),
    # Chapter 3 claims speedups of the vector kernels that every x86-64 and ARM
    # computer runs (the `portable` path at least); the plain C kernels, the
    # fallback for other processors, are too slow for those floors. Its
    # numerics on this path are checked by the chapter itself (every path vs naive).
    Numerics("plain-one-thread", simd="plain", blas="Sandybridge", numpy_level="X86_V2",
             threads=1, chapters=tuple(c for c in ALL_CHAPTERS
                                       if c not in (TRAINING, LIVE_RUN, "03-fast-layers.ipynb"))),
]

# NumPy's dispatch groups above each level (NumPy 2.4 names; unknown names are ignored)
_NUMPY_ABOVE = {
    "X86_V2": ["X86_V3", "X86_V4", "AVX512_ICL", "AVX512_SPR"],
    "X86_V3": ["X86_V4", "AVX512_ICL", "AVX512_SPR"],
}

# OpenBLAS builds without its oldest kernels serve Prescott with the generic SSE
# ("Katmai") kernels; either is far from the AVX2 and AVX-512 ones
_BLAS_ALIASES = {"prescott": {"prescott", "katmai"}}

_PROBE = """
import json, numpy, threadpoolctl
from numpy._core import _multiarray_umath as m
import convlab.fast_layers as fl
from convlab.info import build_info
blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
print(json.dumps({
    "simd": build_info()["simd_path"],
    "blas": blas[0].get("architecture") if blas else None,
    "numpy": [k for k in m.__cpu_dispatch__ if m.__cpu_features__.get(k)],
    "threads": build_info().get("threads"),
}))
"""


def _selected():
    wanted = os.environ.get("CONVLAB_NUMERICS")
    if not wanted:
        return SETTINGS
    names = {n.strip() for n in wanted.split(",") if n.strip()}
    unknown = names - {s.name for s in SETTINGS}
    if unknown:
        raise pytest.UsageError(
            f"CONVLAB_NUMERICS names unknown settings {sorted(unknown)}; "
            f"known: {[s.name for s in SETTINGS]}")
    return [s for s in SETTINGS if s.name in names]


def environment(numerics):
    """The process environment that gives ``numerics`` (with margins checked)."""
    env = dict(os.environ)
    env.update(
        CONVLAB_SIMD=numerics.simd,
        OPENBLAS_CORETYPE=numerics.blas,
        NPY_DISABLE_CPU_FEATURES=" ".join(_NUMPY_ABOVE[numerics.numpy_level]),
        OMP_NUM_THREADS=str(numerics.threads),
        OPENBLAS_NUM_THREADS=str(numerics.threads),
        CONVLAB_CHECK_MARGINS="1",
    )
    # a stale L2 size for another core type would only slow the forced kernel down
    env.pop("OPENBLAS_L2_SIZE", None)
    return env


def probe(env):
    """What a Python started with ``env`` really runs (SIMD path, BLAS kernel, NumPy loops)."""
    run = subprocess.run([sys.executable, "-c", _PROBE], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    return run, (json.loads(run.stdout.splitlines()[-1]) if run.returncode == 0 else None)


@pytest.mark.parametrize("numerics", _selected(), ids=lambda n: n.name)
def test_chapters_print_the_same_under_other_numerics(numerics):
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        pytest.skip("the settings name x86-64 kernels (OpenBLAS core types, NumPy groups)")
    env = environment(numerics)
    run, seen = probe(env)
    if run.returncode != 0 and "cannot run" in run.stderr:
        pytest.skip(f"this CPU cannot run convlab's {numerics.simd} path")
    assert seen is not None, f"probe failed:\n{run.stdout}\n{run.stderr}"
    # the setting must really be in force, or this test would compare nothing new
    assert seen["simd"] == numerics.simd, seen
    expected = _BLAS_ALIASES.get(numerics.blas.lower(), {numerics.blas.lower()})
    assert (seen["blas"] or "").lower() in expected, (
        f"OpenBLAS runs {seen['blas']!r}, not {numerics.blas!r}: "
        "OPENBLAS_CORETYPE was not honoured")
    assert not set(seen["numpy"]) & set(_NUMPY_ABOVE[numerics.numpy_level]), seen
    print(f"{numerics.name}: {seen}")

    chapters = [str(BOOK / c) for c in numerics.chapters]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env",
         "-p", "no:cacheprovider", "-q", *chapters],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert run.returncode == 0, (
        f"chapters print differently under {numerics} (exit {run.returncode}):\n"
        + "\n".join(what_failed(run.stdout)) + f"\n\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    )


def what_failed(output):
    """The lines of pytest's output that say which cell failed and how."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    keep = re.compile(r"^(FAILED |_+ .* _+$|[A-Za-z]*Error: |\s+[-+] )")
    return [line for line in plain.splitlines() if keep.search(line)]
