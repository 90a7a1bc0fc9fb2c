"""Tests for convlab.checks: the stable verdict lines the book prints."""

import math

import pytest

from convlab import checks


@pytest.mark.parametrize(
    "value, expected",
    [
        (0.0, "0"),
        (2.2121476417505994e-08, "1e-08"),
        (1e-08, "1e-08"),
        (9.999999999999999e-09, "1e-09"),
        (1.0000000000000002e-08, "1e-08"),
        (3.2756356911410603e-12, "1e-12"),
        (0.5, "1e-01"),
        (1.0, "1e+00"),
        (763.085, "1e+02"),
    ],
)
def test_order_of_magnitude_names_the_decade(value, expected):
    assert checks.order_of_magnitude(value) == expected


@pytest.mark.parametrize("value", [-1e-9, math.nan, math.inf])
def test_order_of_magnitude_rejects_bad_values(value):
    with pytest.raises(ValueError, match="value"):
        checks.order_of_magnitude(value)


def test_report_error_prints_decade_and_bound(capsys):
    assert checks.report_error("dx error", 1.47e-09, 1e-08) is None
    assert capsys.readouterr().out == "dx error: error ~1e-09 (bound 1e-08) ok\n"


def test_report_error_accepts_zero_and_the_bound_itself(capsys):
    checks.report_error("db error", 0.0, 1e-10)
    checks.report_error("edge", 1e-08, 1e-08)
    assert capsys.readouterr().out.splitlines() == [
        "db error: error ~0 (bound 1e-10) ok",
        "edge: error ~1e-08 (bound 1e-08) ok",
    ]


@pytest.mark.parametrize("error", [1.5e-08, math.nan, math.inf])
def test_report_error_fails_above_bound(error, capsys):
    with pytest.raises(AssertionError, match="dx error"):
        checks.report_error("dx error", error, 1e-08)
    assert capsys.readouterr().out == ""


def test_report_error_without_decade_prints_only_the_bound(capsys):
    checks.report_error("fast vs naive", 3.1e-16, 1e-12, decade=False)
    assert capsys.readouterr().out == "fast vs naive: error <= 1e-12 ok\n"
    with pytest.raises(AssertionError, match="fast vs naive"):
        checks.report_error("fast vs naive", 2e-12, 1e-12, decade=False)


def test_report_error_output_ignores_last_digits(capsys):
    checks.report_error("e", 2.1e-10, 1e-08)
    checks.report_error("e", 8.7e-10, 1e-08)
    first, second = capsys.readouterr().out.splitlines()
    assert first == second


@pytest.mark.parametrize("bound", [0, -1e-8, math.nan])
def test_report_error_rejects_bad_bound(bound):
    with pytest.raises(ValueError, match="bound"):
        checks.report_error("e", 1e-9, bound)


@pytest.mark.parametrize("speedup", [30.0, 59.9, 120.0, 3000.0])
def test_report_speedup_prints_only_the_floor(capsys, speedup):
    # the line must be the same on a fast machine and a slow one
    assert checks.report_speedup("conv_forward_fast", speedup, 30) is None
    assert capsys.readouterr().out == "conv_forward_fast: speedup >= 30x ok\n"


def test_report_speedup_fails_below_the_floor():
    with pytest.raises(AssertionError, match=r"12\.0x is below the floor 300x"):
        checks.report_speedup("conv_forward_fast", 12.0, 300)
    with pytest.raises(AssertionError):
        checks.report_speedup("conv_forward_fast", math.nan, 300)
    with pytest.raises(ValueError, match="floor"):
        checks.report_speedup("conv_forward_fast", 10.0, 0)


def test_report_accuracy_prints_the_measurement_next_to_the_floor(capsys):
    assert checks.report_accuracy("training accuracy", 0.437, 0.4) is None
    checks.report_accuracy("one-epoch training accuracy", 0.4695, 0.4)
    checks.report_accuracy("edge", 0.4, 0.4)
    assert capsys.readouterr().out.splitlines() == [
        "training accuracy 44 % (floor 40 %) ok",
        "one-epoch training accuracy 47 % (floor 40 %) ok",
        "edge 40 % (floor 40 %) ok",
    ]


def test_report_accuracy_shows_as_many_decimals_as_the_floor(capsys):
    checks.report_accuracy("quick: validation accuracy", 0.8123, 0.755)
    assert capsys.readouterr().out == "quick: validation accuracy 81.2 % (floor 75.5 %) ok\n"


def test_report_accuracy_fails_below_the_floor_and_rejects_bad_input(capsys):
    with pytest.raises(AssertionError, match=r"39\.9% is below the floor 40%"):
        checks.report_accuracy("training accuracy", 0.399, 0.4)
    with pytest.raises(AssertionError):
        checks.report_accuracy("training accuracy", math.nan, 0.4)
    with pytest.raises(ValueError, match="accuracy"):
        checks.report_accuracy("training accuracy", 43.7, 0.4)
    with pytest.raises(ValueError, match="floor"):
        checks.report_accuracy("training accuracy", 0.5, 40)
    assert capsys.readouterr().out == ""


def test_report_close_prints_the_value_rounded_to_the_tolerance(capsys):
    assert checks.report_close("initial loss", 2.3025855, math.log(10), 0.05) is None
    checks.report_close("channel 0 mean", 10.0812, 10, 3)
    checks.report_close("channel 0 std", 3.96, 4, 2)
    checks.report_close("penalty", 0.20621, 0.20623, 1e-4)
    assert capsys.readouterr().out.splitlines() == [
        "initial loss 2.303 (target 2.303 ± 0.05) ok",
        "channel 0 mean 10.1 (target 10 ± 3) ok",
        "channel 0 std 4.0 (target 4 ± 2) ok",
        "penalty 0.20621 (target 0.20623 ± 0.0001) ok",
    ]


def test_report_close_never_prints_minus_zero(capsys):
    checks.report_close("test mode: channel 0 mean", -0.004, 0, 0.1)
    assert capsys.readouterr().out == "test mode: channel 0 mean 0.00 (target 0 ± 0.1) ok\n"


def test_report_close_output_ignores_digits_below_the_tolerance(capsys):
    checks.report_close("m", 10.081, 10, 3)
    checks.report_close("m", 10.119, 10, 3)
    first, second = capsys.readouterr().out.splitlines()
    assert first == second


def test_report_close_fails_outside_the_tolerance(capsys):
    with pytest.raises(AssertionError, match="initial loss"):
        checks.report_close("initial loss", 2.5, math.log(10), 0.05)
    with pytest.raises(AssertionError, match="initial loss"):
        checks.report_close("initial loss", math.nan, math.log(10), 0.05)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("tol", [0, -0.1, math.nan, math.inf])
def test_report_close_rejects_bad_tolerance(tol):
    with pytest.raises(ValueError, match="tol"):
        checks.report_close("initial loss", 2.3, math.log(10), tol)


def test_best_time_returns_minimum_and_last_result():
    calls = []

    def fn():
        calls.append(None)
        return len(calls)

    seconds, result = checks.best_time(fn, repeat=4)
    assert len(calls) == 4
    assert result == 4
    assert 0 <= seconds < 1
    with pytest.raises(ValueError, match="repeat"):
        checks.best_time(fn, repeat=0)


def test_best_time_reads_the_given_clock():
    ticks = iter([0.0, 5.0, 10.0, 12.0, 20.0, 27.0])
    seconds, result = checks.best_time(lambda: "done", repeat=3, clock=lambda: next(ticks))
    assert seconds == 2.0
    assert result == "done"


def test_report_accuracy_without_value_prints_only_the_verdict(capsys):
    checks.report_accuracy("one epoch: training accuracy", 0.4449, 0.4, value=False)
    checks.report_accuracy("one epoch: training accuracy", 0.4551, 0.4, value=False)
    checks.report_accuracy("quick: validation accuracy", 0.8123, 0.755, value=False)
    assert capsys.readouterr().out.splitlines() == [
        "one epoch: training accuracy >= 40 % ok",
        "one epoch: training accuracy >= 40 % ok",
        "quick: validation accuracy >= 75.5 % ok",
    ]
    with pytest.raises(AssertionError, match="below the floor"):
        checks.report_accuracy("one epoch", 0.39, 0.4, value=False)


@pytest.mark.parametrize(
    "value, kind, problem",
    [
        (3e-9, {"decade": True}, False),
        (1.4e-9, {"decade": True}, True),      # a factor 1.4 above 1e-09
        (7e-9, {"decade": True}, True),        # a factor 1.43 below 1e-08
        (1.6e-9, {"decade": True}, False),
        (0.0, {"decade": True}, False),
        (44.49999, {"decimals": 0}, True),     # 1e-05 from 44.5 (margin 4.4e-04)
        (44.4994, {"decimals": 0}, False),     # 6e-04 from 44.5
        (44.5004, {"decimals": 0}, True),
        (2.302585, {"decimals": 3}, False),    # log(10): 8.5e-05 from 2.3025
        (2.30249, {"decimals": 3}, True),      # 1e-05 from 2.3025 (margin 2.3e-05)
        (4.0479, {"decimals": 1}, False),
        (100.0, {"decimals": 0}, False),
        (-0.0500001, {"decimals": 1}, True),   # 1e-07 from -0.05 (margin 1e-06)
        (-0.051, {"decimals": 1}, False),
    ],
)
def test_margin_problem_finds_figures_near_a_boundary(value, kind, problem):
    found = checks.margin_problem(value, **kind)
    assert (found is not None) == problem, found


def test_reports_check_margins_only_when_asked(monkeypatch, capsys):
    monkeypatch.delenv("CONVLAB_CHECK_MARGINS", raising=False)
    checks.report_error("dx", 1.02e-9, 1e-8)
    checks.report_close("mean", 10.04999, 10, 3)
    checks.report_accuracy("acc", 0.445001, 0.4)
    assert len(capsys.readouterr().out.splitlines()) == 3
    monkeypatch.setenv("CONVLAB_CHECK_MARGINS", "1")
    with pytest.raises(AssertionError, match=r"dx: the printed figure could differ.*1e-09"):
        checks.report_error("dx", 1.02e-9, 1e-8)
    with pytest.raises(AssertionError, match=r"mean: the printed figure could differ"):
        checks.report_close("mean", 10.04999, 10, 3)
    with pytest.raises(AssertionError, match=r"acc: the printed figure could differ"):
        checks.report_accuracy("acc", 0.445001, 0.4)
    # what prints no measured figure has no margin to keep
    checks.report_error("fast vs naive", 1.02e-9, 1e-8, decade=False)
    checks.report_accuracy("acc", 0.445001, 0.4, value=False)
    checks.report_speedup("conv", 15.01, 15)
    checks.report_error("dx", 3e-9, 1e-8)
    assert capsys.readouterr().out.splitlines() == [
        "fast vs naive: error <= 1e-08 ok",
        "acc >= 40 % ok",
        "conv: speedup >= 15x ok",
        "dx: error ~1e-09 (bound 1e-08) ok",
    ]


def test_report_ratio_prints_only_the_bounds(capsys):
    checks.report_ratio("plain: first / last", 1105.5, floor=100)
    checks.report_ratio("residual: first / last", 2.78, ceiling=10)
    checks.report_ratio("both", 5.0, floor=2, ceiling=10)
    assert capsys.readouterr().out.splitlines() == [
        "plain: first / last >= 100x ok", "residual: first / last <= 10x ok",
        "both >= 2x and <= 10x ok"]


@pytest.mark.parametrize("ratio, bounds", [(99.0, {"floor": 100}), (11.0, {"ceiling": 10}),
                                           (float("nan"), {"floor": 1}),
                                           (1.0, {"floor": 2, "ceiling": 10})])
def test_report_ratio_fails_outside_its_bounds(ratio, bounds):
    with pytest.raises(AssertionError, match=repr(ratio)):
        checks.report_ratio("r", ratio, **bounds)


@pytest.mark.parametrize("bounds", [{}, {"floor": 0}, {"ceiling": -1}, {"floor": float("inf")}])
def test_report_ratio_refuses_bad_bounds(bounds):
    with pytest.raises(ValueError):
        checks.report_ratio("r", 1.0, **bounds)
