"""Learning-rate schedules.

A schedule is a function ``schedule(iteration, num_iterations) -> multiplier``:
the learning rate used at a step is the optimizer's base ``learning_rate``
times this multiplier. That is exactly the ``lr_schedule`` hook of
:class:`convlab.solver.Solver`, so every factory below returns something the
solver can call directly::

    solver = Solver(model, data, optim_config={'learning_rate': 0.2},
                    lr_schedule=warmup(cosine(), fraction=0.1))

``iteration`` counts from 0 to ``num_iterations - 1``. All schedules are pure
functions of their two arguments, so a resumed run reproduces the learning
rates of an uninterrupted one.
"""

import math


def _check_progress(iteration, num_iterations):
    if num_iterations <= 0:
        raise ValueError(f"num_iterations must be positive, got {num_iterations}")
    if iteration < 0:
        raise ValueError(f"iteration must be non-negative, got {iteration}")
    return min(iteration / num_iterations, 1.0)


def constant():
    """The multiplier 1 at every step (no schedule)."""
    def schedule(iteration, num_iterations):
        _check_progress(iteration, num_iterations)
        return 1.0
    return schedule


def step(drop_at=(0.5, 0.75), factor=0.1):
    """Piecewise-constant decay: multiply by ``factor`` at each milestone.

    Parameters
    ----------
    drop_at : sequence of float in (0, 1)
        Fractions of training after which the rate drops.
    factor : float
        Multiplier applied at each milestone (``0 < factor``).
    """
    drop_at = tuple(sorted(drop_at))
    if any(not 0.0 < d < 1.0 for d in drop_at):
        raise ValueError(f"drop_at must lie in (0, 1), got {drop_at}")
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}")

    def schedule(iteration, num_iterations):
        t = _check_progress(iteration, num_iterations)
        return factor ** sum(t >= d for d in drop_at)
    return schedule


def linear(end=0.0):
    """Linear decay from 1 at the first step to ``end`` at the last."""
    def schedule(iteration, num_iterations):
        t = _check_progress(iteration, num_iterations)
        return 1.0 + (end - 1.0) * t
    return schedule


def cosine(end=0.0):
    """Half-cosine decay from 1 to ``end``: slow at first, slow at the end."""
    def schedule(iteration, num_iterations):
        t = _check_progress(iteration, num_iterations)
        return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * t))
    return schedule


def warmup(after=None, fraction=0.1, start=0.0):
    """Linear warm-up from ``start`` to 1 over the first ``fraction`` of training.

    Large learning rates at the very start, when the weights are random and
    batch-norm statistics are wild, can throw a network into a bad region;
    ramping up avoids that. After the warm-up, the multiplier follows the
    schedule ``after`` (constant 1 if None) rescaled to the remaining steps,
    so ``warmup(linear())`` is the "triangle" (one-cycle) schedule.

    Parameters
    ----------
    after : callable or None
        Schedule for the remaining ``1 - fraction`` of training.
    fraction : float in [0, 1)
        Share of the iterations spent warming up.
    start : float
        Multiplier at iteration 0.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must lie in [0, 1), got {fraction}")
    after = constant() if after is None else after

    def schedule(iteration, num_iterations):
        t = _check_progress(iteration, num_iterations)
        if t < fraction:
            return start + (1.0 - start) * t / fraction
        # Map the rest of training onto a fresh 0..1 range for ``after``.
        rest = num_iterations * (1.0 - fraction)
        return after(max(iteration - num_iterations * fraction, 0.0) * 1.0,
                     rest) if rest > 0 else after(0, 1)
    return schedule


_NAMED = {"constant": constant, "step": step, "linear": linear, "cosine": cosine}


def from_spec(spec):
    """Build a schedule from a small dict (used by the training recipes).

    Parameters
    ----------
    spec : dict
        ``{'name': 'linear'|'cosine'|'step'|'constant', 'warmup': float,
        'warmup_start': float, **kwargs}``; ``kwargs`` go to the factory.

    Returns
    -------
    callable ``(iteration, num_iterations) -> float``
    """
    spec = dict(spec)
    name = spec.pop("name", "constant")
    warm = spec.pop("warmup", 0.0)
    warm_start = spec.pop("warmup_start", 0.0)
    if name not in _NAMED:
        raise ValueError(f"unknown schedule name {name!r}; choose from {sorted(_NAMED)}")
    base = _NAMED[name](**spec)
    return warmup(base, fraction=warm, start=warm_start) if warm > 0 else base
