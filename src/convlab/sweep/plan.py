"""The trials of a sweep: a grid (or a random sample of it) of recipe overrides, times seeds.

A grid is never materialised: its points are numbered in ``itertools.product``
order (the last key varying fastest), a random sample draws numbers, and a
number is decoded into its point. A sweep has at most :data:`MAX_TRIALS`
trials, so that a typing slip (``--seeds 0-20000000``) is an error naming the
count rather than minutes of silence and gigabytes of memory.
"""

import dataclasses
import hashlib
import json
import math

import numpy as np

__all__ = ["MAX_TRIALS", "Trial", "parse_grid", "parse_seeds", "expand", "canonical_value"]

#: The most trials one sweep may plan.
MAX_TRIALS = 10_000


@dataclasses.dataclass(frozen=True)
class Trial:
    """One training run of a sweep.

    Attributes
    ----------
    recipe : str
        A key of :data:`convlab.recipes.RECIPES`.
    point : tuple of (key, value-text) pairs
        The grid point: the ``--set`` values this trial varies, in grid order.
    seed : int
    fixed : tuple of str
        Options every trial shares, as ``python -m convlab.train`` takes them
        (``--epochs 3``, ``--set tta=0``, ``--num-train 16384``, ...).
    version : str
        The convlab version the sweep was planned with.
    """

    recipe: str
    point: tuple
    seed: int
    fixed: tuple = ()
    version: str = ""

    @property
    def overrides(self):
        """The grid point as ``key=value`` strings."""
        return [f"{key}={value}" for key, value in self.point]

    @property
    def id(self):
        """A stable 12-hex-digit name: a hash of the recipe, the sorted overrides, the seed,
        the shared options and the convlab version."""
        text = json.dumps({"recipe": self.recipe, "overrides": sorted(self.overrides),
                           "seed": self.seed, "fixed": list(self.fixed),
                           "version": self.version}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def train_args(self, out):
        """The arguments of ``python -m convlab.train`` for this trial, writing into ``out``."""
        args = ["--recipe", self.recipe, "--seed", str(self.seed), *self.fixed]
        for item in self.overrides:
            args += ["--set", item]
        return args + ["--out", str(out), "--resume", "--no-progress"]

    def to_json(self):
        return {"id": self.id, "recipe": self.recipe, "point": dict(self.point),
                "seed": self.seed, "fixed": list(self.fixed), "version": self.version}


def canonical_value(text):
    """One spelling for each value a ``--set`` or ``--grid`` text can mean.

    A text that parses as JSON is written back compactly (``0.10`` and
    ``1e-1`` become ``0.1``, ``[8, 16]`` becomes ``[8,16]``, object keys are
    sorted); a string is written bare when the bare word means the same
    (``"relu"`` becomes ``relu``); any other text is kept. Equal values hence
    make one grid point, and one trial id.

    Parameters
    ----------
    text : str

    Returns
    -------
    str
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    if isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return value            # the bare word means this string too
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def parse_grid(items):
    """``["lr=0.1,0.2", "flip=true,false"]`` -> ``[("lr", ["0.1", "0.2"]), ("flip", [...])]``.

    Values stay text, as ``--set`` takes them (JSON or a bare word), in their
    :func:`canonical_value` spelling; a value holding commas (a JSON list or
    object) is written with ``;`` between values instead:
    ``widths=[8,16,16];[16,32,32]``.

    Raises
    ------
    ValueError
        Naming the ``--grid`` item: no ``=``, no value, a key given twice, a
        value given twice (however spelt: ``0.1,0.10``).
    """
    grid, seen = [], set()
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ValueError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        if key in seen:
            raise ValueError(f"--grid {key}: given twice")
        seen.add(key)
        parts = values.split(";") if ";" in values or values.lstrip()[:1] in "[{" else \
            values.split(",")
        parts = [canonical_value(p.strip()) for p in parts]
        if any(not p for p in parts) or len(set(parts)) != len(parts):
            raise ValueError(f"--grid {key}: empty or repeated value in {values!r}")
        grid.append((key, parts))
    return grid


def parse_seeds(text):
    """``"0-4"`` -> ``[0, 1, 2, 3, 4]``; ``"0,3,7"`` -> ``[0, 3, 7]``; ranges and lists mix.

    Raises
    ------
    ValueError
        ``--seeds: ...`` for anything else (negative, reversed range, repeats,
        more than :data:`MAX_TRIALS` seeds), before any list is built.
    """
    ranges = []
    for part in str(text).split(","):
        low, dash, high = part.strip().partition("-")
        try:
            low = int(low)
            high = int(high) if dash else low
        except ValueError:
            raise ValueError(f"--seeds expects ranges and lists such as 0-4 or 0,3,7; "
                             f"got {text!r}") from None
        if low < 0 or high < low:
            raise ValueError(f"--seeds: {part.strip()!r} is not a range of non-negative seeds")
        ranges.append((low, high))
    count = sum(high - low + 1 for low, high in ranges)
    if count > MAX_TRIALS:
        raise ValueError(f"--seeds: {text!r} names {count} seeds; a sweep has at most "
                         f"{MAX_TRIALS} trials")
    seeds = [seed for low, high in ranges for seed in range(low, high + 1)]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: {text!r} names a seed twice")
    return seeds


def _point(grid, index):
    """Grid point number ``index`` in ``itertools.product`` order (the last key fastest)."""
    values = []
    for _, options in reversed(grid):
        index, digit = divmod(index, len(options))
        values.append(options[digit])
    return tuple(zip([key for key, _ in grid], reversed(values)))


def expand(recipe, grid, seeds, fixed=(), random=None, sample_seed=0, version=""):
    """Every trial of a sweep, in a stable order (grid points, then seeds).

    Parameters
    ----------
    recipe : str
    grid : list of (key, list of str)
        From :func:`parse_grid`; an empty grid is the recipe alone.
    seeds : list of int
    fixed : sequence of str
        ``convlab.train`` options shared by every trial.
    random : int or None
        Take this many grid points, drawn without replacement by
        ``np.random.default_rng(sample_seed)`` among the point numbers,
        instead of all of them. The grid itself is never built, so its size
        does not matter.
    sample_seed : int
    version : str

    Returns
    -------
    list of Trial

    Raises
    ------
    ValueError
        If ``random`` is not in ``1..number of grid points``, or the sweep
        would have more than :data:`MAX_TRIALS` trials (the message gives
        the count).
    """
    grid = [(key, list(values)) for key, values in grid]
    size = math.prod(len(values) for _, values in grid)
    if random is not None:
        if not 1 <= random <= size:
            raise ValueError(f"--random: expected 1 to {size} (the grid's points), "
                             f"got {random}")
        if size > np.iinfo(np.int64).max:
            raise ValueError(f"--random: the grid has {size} points, too many to draw from; "
                             "give fewer --grid values")
    count = (size if random is None else random) * len(seeds)
    if count > MAX_TRIALS:
        what = "grid points" if random is None else "drawn grid points (--random)"
        raise ValueError(f"the sweep would have {count} trials ({count // len(seeds)} {what} "
                         f"x {len(seeds)} seeds); a sweep has at most {MAX_TRIALS}: use "
                         "--random, or fewer --grid values or --seeds")
    if random is None:
        numbers = range(size)
    else:
        numbers = sorted(int(i) for i in
                         np.random.default_rng(sample_seed).choice(size, random, replace=False))
    return [Trial(recipe, _point(grid, i), seed, tuple(fixed), version) for i in numbers
            for seed in seeds]
