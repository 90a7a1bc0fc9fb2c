"""Grafting one exercise of a submission onto the reference module."""

import pytest

from convlab.instructor.splice import SpliceError, chunks, splice

REFERENCE = '''"""Reference."""
import numpy as np


def forward(x):
    return 2 * x


def backward(d):
    return 2 * d
'''


def run(source):
    namespace = {}
    exec(compile(source, "spliced", "exec"), namespace)
    return namespace


def test_only_the_exercise_function_comes_from_the_submission():
    submission = REFERENCE.replace("return 2 * x", "return _helper(x)").replace("return 2 * d", "return 0")
    submission += "\n\ndef _helper(x):\n    return x + x + 1\n"
    namespace = run(splice(REFERENCE, submission, ["forward"], "demo.py"))
    assert namespace["forward"](1) == 3  # the submission's forward, with its new helper
    assert namespace["backward"](1) == 2  # the reference's backward


def test_a_syntax_error_elsewhere_in_the_file_costs_nothing():
    submission = REFERENCE.replace("return 2 * d", "return (2 * d")
    assert [c.kind for c in chunks(submission)][-1] == "broken"
    assert run(splice(REFERENCE, submission, ["forward"], "demo.py"))["forward"](2) == 4
    with pytest.raises(SpliceError, match="backward does not parse"):
        splice(REFERENCE, submission, ["backward"], "demo.py")


def test_a_missing_function_is_an_error():
    with pytest.raises(SpliceError, match="no definition of forward"):
        splice(REFERENCE, "import numpy as np\n", ["forward"], "demo.py")
