"""Solution markers: stubbing, putting back, and the errors of a badly marked source."""

import pytest

from convlab.instructor.markers import MarkerError, find_blocks, release_text, solve_text

SOURCE = '''import numpy as np


def double(x):
    """Twice x."""
    x = np.asarray(x)
    # BEGIN SOLUTION demo.double
    return 2 * x
    # END SOLUTION


class Model:
    def loss(self, X):
        if X is None:
            raise ValueError("X is None")
        # BEGIN SOLUTION demo.loss
        # STUB: return 0.0
        return float(X.sum())
        # END SOLUTION
'''


def everything(exercise):
    return True


def test_blocks_know_their_exercise_function_and_indentation():
    blocks = find_blocks(SOURCE)
    assert [(b.exercise, b.function, b.indent) for b in blocks] == [
        ("demo.double", "double", "    "), ("demo.loss", "Model.loss", "        ")]
    assert blocks[1].stub_lines == ["return 0.0"]


def test_release_stubs_assigned_blocks_and_keeps_the_rest():
    released = release_text(SOURCE, {"demo.double"}.__contains__)
    assert '    raise NotImplementedError("demo.double: implement double")\n' in released
    assert "return 2 * x" not in released
    assert "        return float(X.sum())\n" in released  # unassigned: solution kept
    assert "SOLUTION" not in released and "STUB" not in released
    assert 'raise ValueError("X is None")' in released  # code outside the blocks stays


def test_stub_line_replaces_the_raise():
    released = release_text(SOURCE, everything)
    assert "        return 0.0\n" in released
    assert "demo.loss: implement" not in released


def test_solve_gives_back_the_source_byte_for_byte_whatever_the_student_wrote():
    for assigned in ({"demo.double"}.__contains__, everything):
        released = release_text(SOURCE, assigned)
        answered = released.replace('raise NotImplementedError("demo.double: implement double")', "return x + x")
        assert solve_text(released, SOURCE, assigned) == SOURCE
        assert solve_text(answered, SOURCE, assigned) == SOURCE


def test_solve_refuses_a_file_changed_outside_the_banners():
    released = release_text(SOURCE, everything).replace('"X is None"', '"no X"')
    with pytest.raises(MarkerError, match="changed outside"):
        solve_text(released, SOURCE, everything)


@pytest.mark.parametrize("text, match", [
    ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", "needs an exercise id"),
    ("# BEGIN SOLUTION Bad-Id\nx = 1\n# END SOLUTION\n", "needs an exercise id"),
    ("# BEGIN SOLUTION a.b\n# BEGIN SOLUTION a.c\n# END SOLUTION\n", "inside the block"),
    ("x = 1\n# END SOLUTION\n", "without a BEGIN"),
    ("# BEGIN SOLUTION a.b\nx = 1\n", "never closed"),
    ("x = 1  # END SOLUTION\n", "line of its own"),
])
def test_bad_markers_are_errors_naming_the_line(text, match):
    with pytest.raises(MarkerError, match=match):
        find_blocks(text, "demo.py")
