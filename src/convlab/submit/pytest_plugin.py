"""pytest plugin of the course kit: the ``exercise`` mark, and stubs that are not a test's fault.

``@pytest.mark.exercise("conv.forward", points=2)`` says that a test grades an
exercise and what it is worth. With ``CONVLAB_ASSIGNED_ONLY=1`` only the tests
of the assigned exercises run.

In a released assignment, a test that is *not* about exercise ``X`` but calls
its still-stubbed function (for example a fast-layer test that uses the naive
layer as its oracle) would fail for a reason the student already knows about.
Such a test (or a test module that calls the stub when it is imported) is
reported as skipped, with the reason "needs exercise X", and runs normally
once ``X`` is implemented. A test marked with ``X`` fails as usual.
"""

import os
import re

import pytest

from convlab.submit import assignment

_STUB_MESSAGE = re.compile(r"^(?P<id>[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+): implement ")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "exercise(id, points=1): the test grades exercise `id` and is worth `points`")


def pytest_collection_modifyitems(config, items):
    """With CONVLAB_ASSIGNED_ONLY=1 (set by ``python -m convlab.submit check``), keep only the
    tests of the assigned exercises."""
    released = assignment()
    if os.environ.get("CONVLAB_ASSIGNED_ONLY") != "1" or released is None:
        return
    keep = [item for item in items if graded_exercises(item) & set(released["exercises"])]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


def graded_exercises(item):
    """The exercise ids that the marks of test ``item`` name."""
    return {mark.args[0] for mark in item.iter_markers("exercise") if mark.args}


def stubbed_exercise(excinfo):
    """The exercise id of a NotImplementedError raised by a released stub, or None."""
    if excinfo is None or not excinfo.errisinstance(NotImplementedError):
        return None
    match = _STUB_MESSAGE.match(str(excinfo.value))
    released = assignment()
    if match and released and match["id"] in released["exercises"]:
        return match["id"]
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A test module that calls a stub when it is imported (to build reference arrays, say) is skipped."""
    outcome = yield
    report = outcome.get_result()
    released = assignment()
    if not report.failed or released is None:
        return
    match = re.search(r"NotImplementedError: (?P<id>[a-z][a-z0-9_.]*): implement ", report.longreprtext)
    if match and match["id"] in released["exercises"]:
        report.outcome = "skipped"
        report.longrepr = (str(collector.path), 0,
                           f"Skipped: needs exercise {match['id']}, which is not implemented yet")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.when not in ("setup", "call") or not report.failed:
        return
    exercise = stubbed_exercise(call.excinfo)
    if exercise and exercise not in graded_exercises(item):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0,
                           f"Skipped: needs exercise {exercise}, which is not implemented yet")
