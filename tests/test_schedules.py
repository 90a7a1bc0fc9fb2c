"""Learning-rate schedules: values at known points and input checks."""

import math

import pytest

from convlab import schedules


def test_constant_linear_cosine_endpoints():
    n = 100
    assert schedules.constant()(37, n) == 1.0
    lin = schedules.linear(end=0.1)
    assert lin(0, n) == 1.0
    assert lin(50, n) == pytest.approx(0.55)
    assert lin(100, n) == pytest.approx(0.1)
    cos = schedules.cosine()
    assert cos(0, n) == 1.0
    assert cos(50, n) == pytest.approx(0.5)
    assert cos(25, n) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert cos(100, n) == pytest.approx(0.0, abs=1e-15)


def test_step_drops_at_milestones():
    s = schedules.step(drop_at=(0.5, 0.75), factor=0.1)
    assert [s(i, 8) for i in range(8)] == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])


def test_warmup_ramps_then_follows_the_schedule():
    s = schedules.warmup(schedules.linear(end=0.0), fraction=0.25, start=0.2)
    n = 100
    assert s(0, n) == pytest.approx(0.2)
    assert s(12.5, n) == pytest.approx(0.6)
    assert s(25, n) == pytest.approx(1.0)
    # After the warm-up, the linear decay covers the remaining 75 steps.
    assert s(25 + 37.5, n) == pytest.approx(0.5)
    assert s(100, n) == pytest.approx(0.0, abs=1e-12)
    values = [s(i, n) for i in range(n)]
    assert max(values) == pytest.approx(1.0)
    assert all(0 <= v <= 1 for v in values)


def test_from_spec_builds_the_named_schedule():
    s = schedules.from_spec({"name": "cosine", "warmup": 0.1, "end": 0.05})
    assert s(0, 10) == 0.0
    assert s(1, 10) == pytest.approx(1.0)
    assert s(10, 10) == pytest.approx(0.05)
    assert schedules.from_spec({"name": "linear"})(5, 10) == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [
    lambda: schedules.step(drop_at=(1.5,)),
    lambda: schedules.step(factor=0),
    lambda: schedules.warmup(fraction=1.0),
    lambda: schedules.from_spec({"name": "exponential"}),
    lambda: schedules.linear()(0, 0),
    lambda: schedules.cosine()(-1, 10),
])
def test_bad_arguments_raise_value_error(bad):
    with pytest.raises(ValueError):
        bad()
