"""Checked claims for the book: print a stable verdict, fail loudly when wrong.

Every time a chapter promises a magnitude ("the error should be around
1e-9", "the fast layer is at least 100 times faster", "training accuracy
reaches 40 %"), it calls one of these functions instead of printing the raw
number. Each prints one line whose text depends only on the claim and on
the measurement rounded to what the claim can distinguish (the decade of an
error, a value to a tenth of its tolerance), or only on the verdict where
even that would depend on the machine (a speedup, an accuracy after
training), never on its last digits, so that ``pytest --nbval`` can compare
it exactly on any machine; and each raises
:class:`AssertionError` when the claim is false, so that the cell, and with it
the book's test run, fails. They return ``None``, so a check at the end of a
cell adds no raw number to the cell's output.

Lines look like::

    conv_forward_naive vs reference: error ~1e-08 (bound 1e-07) ok
    conv_forward_fast vs naive: error <= 1e-10 ok
    conv_forward_fast: speedup >= 15x ok
    one epoch: training accuracy >= 40 % ok
    overfit: final training accuracy 100 % (floor 90 %) ok
    channel 0 mean 10.1 (target 10 ± 3) ok
    plain network: first / last gradient norm >= 100x ok

``~1e-08`` names the decade of the error: ``1e-08 <= error < 1e-07``.

A printed figure is only stable if the measurement is far from the point
where it would print differently (an error of 1.02e-08 prints ``~1e-08``
here and may print ``~1e-09`` on a CPU that rounds differently). With the
environment variable ``CONVLAB_CHECK_MARGINS=1`` every function that prints
a measured figure also checks that margin (see :func:`margin_problem`) and
fails with a message naming the boundary; the book's tests re-execute the
chapters that way, under several CPUs' numerics.

This module only judges and prints; the errors it judges are usually
computed by :mod:`convlab.gradient_check` (numeric gradients, ``rel_error``).
"""

import math
import os

__all__ = [
    "order_of_magnitude",
    "margin_problem",
    "report_error",
    "report_speedup",
    "report_accuracy",
    "report_close",
    "report_ratio",
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


#: How far a measurement must stay from the nearest value that would print
#: differently, for each kind of printed figure (used by :func:`margin_problem`).
#: A decade: a factor 1.5 from either power of ten (a gradient check's error
#: moves by tens of percent with the rounding of its two sides). A rounded
#: value: a hundred-thousandth of its size (or of the printed step, if larger)
#: from the rounding midpoint. That is some 170 units in the last place of a
#: float32, more than another summation order moves one forward pass or one
#: statistic, and far less than what many steps of training move: a figure
#: reached by training cannot be printed stably at any margin.
DECADE_MARGIN = 1.5
ROUNDING_MARGIN = 1e-5


def _margins_checked():
    return os.environ.get("CONVLAB_CHECK_MARGINS", "0") not in ("", "0")


def margin_problem(value, *, decade=False, decimals=None):
    """Why a printed figure of ``value`` might differ on another machine, or ``None``.

    Two CPUs that round differently give measurements a few units in the
    last place apart (after many steps of training, far more). A printed
    figure is stable only if no such change can cross the point where the
    printed text changes. This function says whether ``value`` is too close
    to such a point:

    - ``decade=True``: the figure is the decade of ``value``; the value must
      lie a factor :data:`DECADE_MARGIN` inside its decade
      (``1.5e-09 <= value < 6.7e-09`` prints a stable ``~1e-09``).
    - ``decimals=d``: the figure is ``value`` rounded to ``d`` decimals; the
      value must be at least :data:`ROUNDING_MARGIN` times
      ``max(abs(value), 10**-d)`` away from the midpoint where rounding goes
      the other way.

    Parameters
    ----------
    value : float
        The measurement as printed (an accuracy already in percent).
    decade : bool, optional
        Check the margin of a printed decade.
    decimals : int, optional
        Check the margin of ``value`` rounded to this many decimals.

    Returns
    -------
    str or None
        A sentence naming the boundary that is too close, or ``None`` when
        the printed figure cannot change with the machine's rounding.
    """
    value = float(value)
    if decade:
        if value == 0:
            return None
        low = 10.0 ** int(order_of_magnitude(value)[2:])
        high = 10 * low
        if value < DECADE_MARGIN * low:
            return f"{value:.3g} is within a factor {DECADE_MARGIN} of the decade boundary {low:g}"
        if value * DECADE_MARGIN >= high:
            return f"{value:.3g} is within a factor {DECADE_MARGIN} of the decade boundary {high:g}"
        return None
    if decimals is not None:
        step = 10.0 ** -decimals
        midpoint = (math.floor(value / step) + 0.5) * step
        margin = ROUNDING_MARGIN * max(abs(value), step)
        if abs(value - midpoint) < margin:
            return (f"{value!r} is within {margin:.2g} of {midpoint:.{decimals + 1}f},"
                    f" where rounding to {decimals} decimals changes")
    return None


def _check_margin(label, value, **kind):
    """Raise if margins are checked and ``value``'s printed figure is not stable."""
    if _margins_checked():
        problem = margin_problem(value, **kind)
        if problem:
            raise AssertionError(
                f"{label}: the printed figure could differ on another machine: {problem}"
                " (choose another seed, or print only the verdict)")


def report_error(label, error, bound, decade=True):
    """Print the decade of an error and check it against a bound.

    The decade is stable across machines when the error's size is set by the
    method, such as a finite-difference step or the number of digits a
    reference was printed with. When two computations differ by rounding
    alone (a BLAS product against a loop, two summation orders) the decade
    can change with the CPU: pass ``decade=False`` to print only the bound.
    Even a method-set error must not lie near a power of ten (see
    :func:`margin_problem`): choose the seed so that it does not.

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
        _check_margin(label, error, decade=True)
        print(f"{label}: error ~{order_of_magnitude(error)} (bound {_bound_text(bound)}) ok")
    else:
        print(f"{label}: error <= {_bound_text(bound)} ok")


def report_speedup(label, speedup, floor):
    """Check that a speedup clears a stated floor; print the verdict.

    A timing varies from run to run and from machine to machine by tens of
    percent, and by far more between a new laptop and an old one, so the
    printed line names only the floor::

        conv_forward_fast: speedup >= 15x ok

    Choose the floor about five or more times below the speedup you measure
    (on one thread, see :func:`best_time`), so that slower machines, busy
    machines and noise move the measurement but not the verdict. The
    measured speedups belong in a cell whose output is not compared (nbval
    tag ``nbval-ignore-output``).

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
    print(f"{label}: speedup >= {_bound_text(floor)}x ok")


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


def report_accuracy(label, accuracy, floor, value=True):
    """Check that an accuracy reaches a stated floor; print it next to the floor.

    The accuracy is printed in percent with as many decimals as the floor has
    (whole percents for a floor such as 40 %), e.g.
    ``overfit: final training accuracy 100 % (floor 90 %) ok``. A chapter that
    prints an accuracy this way must choose its seeds so that the measured
    accuracy is not within rounding distance of the next printed figure,
    or the line could change from one machine to the next.

    An accuracy reached by training (many steps in float32) differs between
    CPUs by tenths of a percent or more: no seed keeps its rounded figure the
    same everywhere. Pass ``value=False`` to print only the verdict,
    ``one epoch: training accuracy >= 40 % ok``, and show the figure itself
    in an output that is not compared.

    Parameters
    ----------
    label : str
        Which accuracy, e.g. ``'training accuracy after one epoch'``.
    accuracy : float
        A fraction in ``[0, 1]``.
    floor : float
        The smallest acceptable accuracy, also a fraction in ``(0, 1]``;
        printed as a percentage.
    value : bool, optional
        Print the measured accuracy (default) or only ``>= floor``.

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
    if not value:
        print(f"{label} >= {_fixed(100 * floor, decimals)} % ok")
        return
    _check_margin(label, 100 * accuracy, decimals=decimals)
    print(f"{label} {_fixed(100 * accuracy, decimals)} % "
          f"(floor {_fixed(100 * floor, decimals)} %) ok")


def report_close(label, value, target, tol):
    """Check that a value lies within ``tol`` of a target; print both.

    The value is rounded to one decimal place finer than the tolerance's
    leading digit (a tolerance of 3 shows one decimal, 0.01 three), which is
    as fine as the bound can distinguish, and printed next to the target,
    e.g. ``channel 0 mean 10.1 (target 10 ± 3) ok``. A chapter must choose
    its seeds so that the value is not within rounding distance of the next
    printed figure (see :func:`margin_problem`). For a difference that should be zero up to rounding,
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
    _check_margin(label, value, decimals=decimals)
    print(f"{label} {_fixed(value, decimals)} "
          f"(target {_short(target, decimals)} ± {_bound_text(tol)}) ok")


def report_ratio(label, ratio, floor=None, ceiling=None):
    """Check that a ratio of two measurements lies above a floor and/or below a ceiling.

    Only the bounds are printed, as for :func:`report_speedup`: a ratio that
    grows as a product of many factors (a gradient through many layers, a
    loss after training) moves by more than its last digits between CPUs, and
    the claim a chapter makes of it is an order, such as "more than a hundred
    times". Choose the bounds well away from the measured ratio::

        plain network: first / last gradient norm >= 100x ok
        residual network: first / last gradient norm <= 10x ok

    Parameters
    ----------
    label : str
        What the ratio compares, e.g. ``'plain: first / last gradient norm'``.
    ratio : float
        The measured ratio.
    floor, ceiling : float or None
        The claim is ``floor <= ratio <= ceiling``; give at least one.

    Raises
    ------
    AssertionError
        If the ratio is outside the bounds or NaN. The message gives the
        measured value.
    ValueError
        If neither bound is given, or a bound is not positive and finite.
    """
    if floor is None and ceiling is None:
        raise ValueError("give a floor, a ceiling or both")
    for name, bound in (("floor", floor), ("ceiling", ceiling)):
        if bound is not None and not (float(bound) > 0 and math.isfinite(float(bound))):
            raise ValueError(f"{name} must be positive and finite; got {bound!r}")
    ratio = float(ratio)
    if (math.isnan(ratio) or (floor is not None and ratio < float(floor))
            or (ceiling is not None and ratio > float(ceiling))):
        raise AssertionError(f"{label}: ratio {ratio!r} is outside the bounds "
                             f"(floor {floor!r}, ceiling {ceiling!r})")
    claims = []
    if floor is not None:
        claims.append(f">= {_bound_text(float(floor))}x")
    if ceiling is not None:
        claims.append(f"<= {_bound_text(float(ceiling))}x")
    print(f"{label} {' and '.join(claims)} ok")


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
