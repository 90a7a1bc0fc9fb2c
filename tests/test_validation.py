"""The shared argument check: integers of at least a minimum, errors that name the argument."""

import numpy as np
import pytest

from convlab.validation import check_int


def test_integers_pass_as_python_ints():
    assert check_int("n", 3) == 3 and type(check_int("n", np.int64(3))) is int
    assert check_int("n", 0, minimum=0) == 0
    assert check_int("n", None, allow_none=True) is None


@pytest.mark.parametrize("value, minimum, message", [
    (0, 1, "n must be a positive integer; got 0"),
    (-1, 0, "n must be a non-negative integer; got -1"),
    (2, 3, "n must be an integer >= 3; got 2"),
    (2.0, 1, "n must be a positive integer; got 2.0"),
    (True, 1, "n must be a positive integer; got True"),
    (None, 1, "n must be a positive integer; got None"),
])
def test_everything_else_is_a_value_error_naming_the_argument(value, minimum, message):
    with pytest.raises(ValueError) as error:
        check_int("n", value, minimum=minimum)
    assert str(error.value) == message
