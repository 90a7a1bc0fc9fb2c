"""The trials of a sweep: a grid (or a random sample of it) of recipe overrides, times seeds."""

import dataclasses
import hashlib
import itertools
import json

import numpy as np

__all__ = ["Trial", "parse_grid", "parse_seeds", "expand"]


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


def parse_grid(items):
    """``["lr=0.1,0.2", "flip=true,false"]`` -> ``[("lr", ["0.1", "0.2"]), ("flip", [...])]``.

    Values stay text, exactly as ``--set`` takes them (JSON or a bare word);
    a value holding commas (a JSON list or object) is written with ``;``
    between values instead: ``widths=[8,16,16];[16,32,32]``.

    Raises
    ------
    ValueError
        Naming the ``--grid`` item: no ``=``, no value, a key given twice.
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
        parts = [p.strip() for p in parts]
        if any(not p for p in parts) or len(set(parts)) != len(parts):
            raise ValueError(f"--grid {key}: empty or repeated value in {values!r}")
        grid.append((key, parts))
    return grid


def parse_seeds(text):
    """``"0-4"`` -> ``[0, 1, 2, 3, 4]``; ``"0,3,7"`` -> ``[0, 3, 7]``; ranges and lists mix.

    Raises
    ------
    ValueError
        ``--seeds: ...`` for anything else (negative, reversed range, repeats).
    """
    seeds = []
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
        seeds.extend(range(low, high + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: {text!r} names a seed twice")
    return seeds


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
        ``np.random.default_rng(sample_seed)``, instead of all of them.
    sample_seed : int
    version : str

    Returns
    -------
    list of Trial

    Raises
    ------
    ValueError
        If ``random`` is not in ``1..number of grid points``.
    """
    keys = [key for key, _ in grid]
    points = [tuple(zip(keys, values)) for values in itertools.product(*[v for _, v in grid])]
    if random is not None:
        if not 1 <= random <= len(points):
            raise ValueError(f"--random: expected 1 to {len(points)} (the grid's points), "
                             f"got {random}")
        chosen = np.random.default_rng(sample_seed).choice(len(points), random, replace=False)
        points = [points[i] for i in sorted(chosen)]
    return [Trial(recipe, point, seed, tuple(fixed), version) for point in points
            for seed in seeds]
