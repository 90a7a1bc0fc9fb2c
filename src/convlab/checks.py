"""Checked claims for the book: print a stable verdict, fail loudly when wrong.

Every time a chapter promises a magnitude ("the error should be around
1e-9", "the fast layer is at least 100 times faster", "training accuracy
reaches 40 %"), it calls one of these functions instead of printing the raw
number. Each prints one line whose text depends only on the claim and on
the measurement rounded to what the claim can distinguish (the decade of an
error, an accuracy in whole percents, a value to a tenth of its tolerance),
never on its last digits, so that ``pytest --nbval`` can compare it exactly
on any machine; and each raises
:class:`AssertionError` when the claim is false, so that the cell, and with it
the book's test run, fails. They return ``None``, so a check at the end of a
cell adds no raw number to the cell's output.

Lines look like::

    conv_forward_naive vs reference: error ~1e-08 (bound 1e-07) ok
    conv_forward_fast vs naive: error <= 1e-10 ok
    conv_forward_fast: speedup 60x or more (floor 15x) ok
    one-epoch training accuracy 47 % (floor 40 %) ok
    channel 0 mean 10.1 (target 10 ± 3) ok

``~1e-08`` names the decade of the error: ``1e-08 <= error < 1e-07``.

This module only judges and prints; the errors it judges are usually
computed by :mod:`convlab.gradient_check` (numeric gradients, ``rel_error``).
"""

import math

__all__ = [
    "order_of_magnitude",
    "report_error",
    "report_speedup",
    "speedup_level",
    "report_accuracy",
    "report_close",
    "best_time",
]


def order_of_magnitude(value):
    """The decade of a non-negative number, as a short string.

    Parameters
    ----------
    value : float
        A non-negative, finite number such as a relative error.

    Returns
    -------
    str
        ``'0'`` for zero, otherwise ``'1e-08'`` for any ``value`` with
        ``1e-08 <= value < 1e-07`` (and likewise for every decade).

    Raises
    ------
    ValueError
        If ``value`` is negative, infinite or NaN.
    """
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"value must be a finite non-negative number; got {value!r}")
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(value))
    # log10 rounds, so just below or above a power of ten it can land in the
    # neighbouring decade: make sure the decade really contains the value.
    if 10.0**exponent > value:
        exponent -= 1
    elif 10.0 ** (exponent + 1) <= value:
        exponent += 1
    return f"1e{exponent:+03d}"


def _bound_text(bound):
    return f"{float(bound):g}"


def report_error(label, error, bound, decade=True):
    """Print the decade of an error and check it against a bound.

    The decade is stable across machines when the error's size is set by the
    method, such as a finite-difference step or the number of digits a
    reference was printed with. When two computations differ by rounding
    alone (a BLAS product against a loop, two summation orders) the decade
    can change with the CPU: pass ``decade=False`` to print only the bound.

    Parameters
    ----------
    label : str
        What was compared, e.g. ``'dx error'``.
    error : float
        The measured error, usually a :func:`convlab.gradient_check.rel_error`.
    bound : float
        The largest acceptable error; the claim is ``error <= bound``.
    decade : bool, optional
        Print the error's decade (default) or only ``error <= bound``.

    Raises
    ------
    AssertionError
        If ``error`` exceeds ``bound`` or is NaN. The message gives the exact
        value.
    ValueError
        If ``bound`` is not positive.
    """
    bound = float(bound)
    if not bound > 0:
        raise ValueError(f"bound must be positive; got {bound!r}")
    error = float(error)
    if math.isnan(error) or error > bound:
        raise AssertionError(
            f"{label}: error {error!r} is above the bound {_bound_text(bound)}"
        )
    if decade:
        print(f"{label}: error ~{order_of_magnitude(error)} (bound {_bound_text(bound)}) ok")
    else:
        print(f"{label}: error <= {_bound_text(bound)} ok")


def speedup_level(speedup, floor):
    """The coarse level a speedup is reported at: ``floor`` times a power of two.

    Parameters
    ----------
    speedup : float
        A measured speedup at or above ``floor``.
    floor : float
        The smallest acceptable speedup (positive).

    Returns
    -------
    float
        The largest of ``floor``, ``2 * floor`` and ``4 * floor`` that is at
        most ``speedup``.
    """
    level = float(floor)
    for _ in range(2):
        if speedup >= 2 * level:
            level *= 2
    return level


def report_speedup(label, speedup, floor):
    """Check that a speedup clears a stated floor; print a coarse measured level.

    A timing varies from run to run and from machine to machine by tens of
    percent, so printing it with any digits would make the line differ
    between runs. The line gives instead the *level* the measurement reached
    (see :func:`speedup_level`): the floor doubled as often as the
    measurement allows, at most twice. With a floor of 30x::

        conv_forward_fast: speedup 120x or more (floor 30x) ok   # 150x measured
        conv_forward_fast: speedup 60x or more (floor 30x) ok    # 70x measured

    The printed level is always at or below the measured speedup and at or
    above the floor, so the line never overstates the measurement. It is the
    same on every machine that reaches four times the floor: choose the floor
    about five or more times below the speedup you measure (on one thread,
    see :func:`best_time`), so that slower machines and noise move the
    measurement, but not the printed line. Raw timings belong in a cell whose
    output is not compared (nbval tag ``nbval-ignore-output``).

    Parameters
    ----------
    label : str
        What was timed, e.g. ``'conv_forward_fast'``.
    speedup : float
        Time of the slow version divided by the time of the fast one.
    floor : float
        The smallest acceptable speedup; the claim is ``speedup >= floor``.

    Raises
    ------
    AssertionError
        If ``speedup`` is below ``floor`` or is NaN. The message gives the
        measured value.
    ValueError
        If ``floor`` is not positive.
    """
    floor = float(floor)
    if not floor > 0:
        raise ValueError(f"floor must be positive; got {floor!r}")
    speedup = float(speedup)
    if math.isnan(speedup) or speedup < floor:
        raise AssertionError(
            f"{label}: speedup {speedup:.1f}x is below the floor {_bound_text(floor)}x"
        )
    level = speedup_level(speedup, floor)
    print(
        f"{label}: speedup {_bound_text(level)}x or more "
        f"(floor {_bound_text(floor)}x) ok"
    )


def _decimals(step):
    """How many decimals a number needs to show differences of size ``step``.

    One decimal more than the step's own leading digit: a tolerance of 3 is
    shown with 1 decimal, 0.01 with 3, 1e-4 with 5.
    """
    return max(0, 1 - math.floor(math.log10(step)))


def _fixed(value, decimals):
    """``value`` rounded to ``decimals`` places, never printed as ``-0``."""
    text = f"{value:.{decimals}f}"
    if text.lstrip("-").strip("0.") == "":
        text = text.lstrip("-")
    return text


def _short(value, decimals):
    """Like :func:`_fixed`, without trailing zeros: 10.0 -> '10', 2.30 -> '2.3'."""
    text = _fixed(value, decimals)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _percent_decimals(floor):
    """Decimals of ``floor`` written as a percentage: 0.4 -> 0, 0.755 -> 1."""
    text = f"{100 * floor:.10g}"
    return len(text.split(".")[1]) if "." in text else 0


def report_accuracy(label, accuracy, floor):
    """Check that an accuracy reaches a stated floor; print it next to the floor.

    The accuracy is printed in percent with as many decimals as the floor has
    (whole percents for a floor such as 40 %), e.g.
    ``one-epoch training accuracy 47 % (floor 40 %) ok``. A chapter that
    prints an accuracy this way must choose its seeds so that the measured
    accuracy is not within rounding distance of the next printed figure,
    or the line could change from one machine to the next.

    Parameters
    ----------
    label : str
        Which accuracy, e.g. ``'training accuracy after one epoch'``.
    accuracy : float
        A fraction in ``[0, 1]``.
    floor : float
        The smallest acceptable accuracy, also a fraction in ``(0, 1]``;
        printed as a percentage.

    Raises
    ------
    AssertionError
        If ``accuracy`` is below ``floor`` or is NaN.
    ValueError
        If ``accuracy`` is outside ``[0, 1]`` or ``floor`` outside ``(0, 1]``.
    """
    floor = float(floor)
    if not 0 < floor <= 1:
        raise ValueError(f"floor must be a fraction in (0, 1]; got {floor!r}")
    accuracy = float(accuracy)
    if not math.isnan(accuracy) and not 0 <= accuracy <= 1:
        raise ValueError(f"accuracy must be a fraction in [0, 1]; got {accuracy!r}")
    if math.isnan(accuracy) or accuracy < floor:
        raise AssertionError(
            f"{label}: {100 * accuracy:.1f}% is below the floor {100 * floor:g}%"
        )
    decimals = _percent_decimals(floor)
    print(f"{label} {_fixed(100 * accuracy, decimals)} % "
          f"(floor {_fixed(100 * floor, decimals)} %) ok")


def report_close(label, value, target, tol):
    """Check that a value lies within ``tol`` of a target; print both.

    The value is rounded to one decimal place finer than the tolerance's
    leading digit (a tolerance of 3 shows one decimal, 0.01 three), which is
    as fine as the bound can distinguish, and printed next to the target,
    e.g. ``channel 0 mean 10.1 (target 10 ± 3) ok``. A chapter must choose
    its seeds so that the value is not within rounding distance of the next
    printed figure. For a difference that should be zero up to rounding,
    use :func:`report_error` with ``decade=False`` instead.

    Parameters
    ----------
    label : str
        What was measured, e.g. ``'initial loss'``.
    value : float
        The measurement.
    target : float
        The value the theory predicts, e.g. ``math.log(10)``.
    tol : float
        The largest acceptable ``abs(value - target)``.

    Raises
    ------
    AssertionError
        If ``abs(value - target) > tol`` or ``value`` is NaN.
    ValueError
        If ``tol`` is not positive and finite.
    """
    tol = float(tol)
    if not (tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be positive and finite; got {tol!r}")
    value, target = float(value), float(target)
    if math.isnan(value) or abs(value - target) > tol:
        raise AssertionError(
            f"{label}: {value!r} is not within {_bound_text(tol)} of {target!r}"
        )
    decimals = _decimals(tol)
    print(f"{label} {_fixed(value, decimals)} "
          f"(target {_short(target, decimals)} ± {_bound_text(tol)}) ok")


def best_time(fn, repeat=3, clock=None):
    """Time of the fastest of ``repeat`` calls of ``fn()``.

    Taking the minimum filters out the slow runs caused by other processes
    on a busy machine; it is the usual estimate of what the code itself costs.
    By default the clock is the wall clock (``time.perf_counter``). Pass
    ``clock=time.process_time`` to count the processor time of this process
    instead: time spent waiting while other programs use the processor is
    then not counted at all, which makes a single-threaded measurement
    nearly independent of the machine's load (with several threads it would
    add up their times).

    Parameters
    ----------
    fn : callable
        Called with no arguments.
    repeat : int, optional
        Number of calls (at least 1).
    clock : callable, optional
        A function returning seconds as a float, read before and after each
        call; ``time.perf_counter`` when ``None``.

    Returns
    -------
    seconds : float
        The shortest of the measured times.
    result : object
        What the last call of ``fn`` returned.

    Raises
    ------
    ValueError
        If ``repeat`` is smaller than 1.
    """
    import time

    if repeat < 1:
        raise ValueError(f"repeat must be at least 1; got {repeat!r}")
    if clock is None:
        clock = time.perf_counter
    best = math.inf
    result = None
    for _ in range(repeat):
        start = clock()
        result = fn()
        best = min(best, clock() - start)
    return best, result
