"""Numeric gradients by centered differences, for checking backward passes.

A backward pass is checked by comparing the gradient it computes with the
slope measured numerically: nudge one input entry by ``+h`` and ``-h``,
evaluate the function at both points, and take

    (f(x + h e_i) - f(x - h e_i)) / (2 h),

whose error is ``O(h**2)``. Do this in float64: with float32 the rounding
error of ``f`` swamps the difference for any useful ``h``.

All functions nudge ``x`` *in place* (so that a closure over a model's
parameter array sees the change) and restore every entry afterwards.

This module computes; :mod:`convlab.checks` turns a computed error into the
book's printed, checked verdict.
"""

import numpy as np


def rel_error(x, y):
    """Largest elementwise relative error between two arrays.

    ``max |x - y| / max(1e-8, |x| + |y|)``, the measure used throughout the
    book: about 1e-7 or below means the two agree to the precision that a
    float64 numeric gradient can resolve.

    Parameters
    ----------
    x, y : array_like of the same shape

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``x`` and ``y`` have different shapes.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape; got shapes {x.shape} and {y.shape}")
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def scaled_error(a, b):
    """The largest difference of ``a`` and ``b`` relative to their largest entry (0 when both are all zero).

    Unlike :func:`rel_error`, which divides each difference by the size of its
    own entry, this measure does not blow up on an entry that happens to be
    near zero: a correct gradient on random inputs scores about 1e-10 against
    a numeric one, a wrong one about 1, whatever the draw.

    Parameters
    ----------
    a, b : array_like
        Of the same shape.

    Returns
    -------
    float
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    return 0.0 if scale == 0 else float(np.max(np.abs(a - b), initial=0.0) / scale)


def _check_point(x, h):
    """Refuse a point the centered difference cannot perturb faithfully.

    The difference adds ``h`` to one entry of ``x`` in place: an integer
    array would round it away (or scale the result wrongly) and float16's
    spacing near 1 is about 1e-3, so ``x + h`` would equal ``x``.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a NumPy array (it is perturbed in place); "
                        f"got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.floating) or x.dtype == np.float16:
        raise TypeError(f"x must be a float32 or float64 array; got dtype {x.dtype}. "
                        "Convert it first, e.g. x = x.astype(np.float64)")
    if not (isinstance(h, (int, float, np.floating, np.integer)) and not isinstance(h, bool)
            and np.isfinite(h) and h > 0):
        raise ValueError(f"h must be a positive finite number; got {h!r}")
    if x.dtype.type(1) + x.dtype.type(h) == x.dtype.type(1):
        raise ValueError(f"h={h!r} is below the spacing of {x.dtype} near 1; use a larger h "
                         "or a float64 x")


def _centered_difference(f, x, index, h):
    """``(f(x + h e_index) - f(x - h e_index)) / (2 h)``; ``x`` is restored."""
    old = x[index]
    try:
        x[index] = old + h
        f_plus = np.array(f(x), dtype=np.float64, copy=True)
        x[index] = old - h
        f_minus = np.array(f(x), dtype=np.float64, copy=True)
    finally:
        x[index] = old
    return f_plus, f_minus


def eval_numerical_gradient(f, x, verbose=True, h=1e-5):
    """Numeric gradient of a scalar function ``f`` at ``x``.

    Parameters
    ----------
    f : callable
        ``f(x)`` returns a scalar. It may ignore its argument and read ``x``
        through a closure (for example a model's parameter array).
    x : float32 or float64 ndarray of any shape
        The point; modified in place during the computation and restored.
    verbose : bool
        If true, print each index and its gradient entry as it is computed.
    h : float
        Step of the centered difference.

    Returns
    -------
    grad : ndarray of the same shape as ``x`` (float64)

    Raises
    ------
    TypeError
        If ``x`` is not a float32 or float64 array (see :func:`_check_point`).
    """
    _check_point(x, h)
    grad = np.zeros(x.shape, dtype=np.float64)
    for index in np.ndindex(x.shape):
        f_plus, f_minus = _centered_difference(f, x, index, h)
        grad[index] = (f_plus - f_minus) / (2 * h)
        if verbose:
            print(index, grad[index])
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Numeric gradient at ``x`` of an array-valued ``f``, contracted with ``df``.

    Computes the gradient of ``sum(f(x) * df)``, i.e. what a backward pass
    returns when given the upstream gradient ``df``.

    Parameters
    ----------
    f : callable
        ``f(x)`` returns an array of the same shape as ``df``.
    x : float32 or float64 ndarray of any shape
        Modified in place during the computation and restored.
    df : ndarray
        Upstream gradient, shape of ``f(x)``.
    h : float
        Step of the centered difference.

    Returns
    -------
    grad : ndarray of the same shape as ``x`` (float64)

    Raises
    ------
    TypeError
        If ``x`` is not a float32 or float64 array.
    ValueError
        If ``f(x)`` and ``df`` have different shapes.
    """
    _check_point(x, h)
    df = np.asarray(df, dtype=np.float64)
    grad = np.zeros(x.shape, dtype=np.float64)
    for index in np.ndindex(x.shape):
        f_plus, f_minus = _centered_difference(f, x, index, h)
        if f_plus.shape != df.shape:
            raise ValueError(f"df must have the shape of f(x) {f_plus.shape}; got shape {df.shape}")
        grad[index] = np.sum((f_plus - f_minus) * df) / (2 * h)
    return grad


def grad_check_sparse(f, x, analytic_grad, num_checks=10, h=1e-5, seed=None, verbose=False):
    """Compare an analytic gradient with numeric ones at a few random entries.

    Useful when ``x`` is too large to difference every entry.

    Parameters
    ----------
    f : callable
        ``f(x)`` returns a scalar.
    x : float32 or float64 ndarray of any shape
        Modified in place during the computation and restored.
    analytic_grad : ndarray, same shape as ``x``
    num_checks : int
        How many entries (drawn uniformly, with replacement) to check.
    h : float
        Step of the centered difference.
    seed : int or None
        Seed of ``np.random.default_rng`` choosing the entries.
    verbose : bool
        If true, print one line per entry: numeric, analytic, relative error.

    Returns
    -------
    errors : ndarray of shape (num_checks,)
        ``|numeric - analytic| / max(1e-8, |numeric| + |analytic|)`` per entry.

    Raises
    ------
    TypeError
        If ``x`` is not a float32 or float64 array.
    ValueError
        If ``analytic_grad`` and ``x`` have different shapes.
    """
    _check_point(x, h)
    if np.shape(analytic_grad) != x.shape:
        raise ValueError(
            f"analytic_grad must have the shape of x {x.shape}; got shape {np.shape(analytic_grad)}"
        )
    rng = np.random.default_rng(seed)
    errors = np.zeros(num_checks)
    for k in range(num_checks):
        index = tuple(int(rng.integers(n)) for n in x.shape)
        f_plus, f_minus = _centered_difference(f, x, index, h)
        numeric = float((f_plus - f_minus) / (2 * h))
        analytic = float(analytic_grad[index])
        errors[k] = abs(numeric - analytic) / max(1e-8, abs(numeric) + abs(analytic))
        if verbose:
            print(f"numerical: {numeric:f} analytic: {analytic:f}, relative error: {errors[k]:e}")
    return errors
