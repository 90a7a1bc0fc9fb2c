"""Argument checks shared by the package: integer counts and sizes, with errors that name the argument."""

import numbers

import numpy as np

__all__ = ["check_int"]


def check_int(name, value, minimum=1, allow_none=False):
    """``value`` as a Python int, after checking that it is an integer of at least ``minimum``.

    Booleans are rejected (``True`` is an ``int`` to Python, but never a
    meant count); NumPy integers are accepted.

    Parameters
    ----------
    name : str
        The argument as the error message calls it (e.g. ``"num_filters"``).
    value : object
    minimum : int
    allow_none : bool
        Let ``None`` through (returned as None).

    Returns
    -------
    int or None

    Raises
    ------
    ValueError
        ``"<name> must be a positive integer; got <value>"`` (or "a
        non-negative integer", "an integer >= <minimum>").
    """
    if value is None and allow_none:
        return None
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer))
            or value < minimum):
        if minimum == 1:
            kind = "a positive integer"
        elif minimum == 0:
            kind = "a non-negative integer"
        else:
            kind = f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}; got {value!r}")
    return int(value)
