"""Fixtures of the hidden tests: seeded randomness, and the naive layers cut off from the fast ones."""

import numpy as np
import pytest

from convlab.instructor.guard import fast_layers_forbidden

# Exercises whose functions live in convlab.layers, the oracle module that never uses the fast path.
NAIVE_EXERCISES = ("conv.", "pool.", "spatial_bn.")


@pytest.fixture
def rng():
    """A freshly seeded generator, so a failure replays exactly."""
    return np.random.default_rng(1231)


@pytest.fixture(autouse=True)
def naive_means_naive(request):
    """Tests of a naive layer run with every fast layer and kernel raising."""
    exercises = [m.args[0] for m in request.node.iter_markers("exercise")]
    if any(e.startswith(NAIVE_EXERCISES) for e in exercises):
        import convlab.layers

        with fast_layers_forbidden(also_in=[convlab.layers]):
            yield
    else:
        yield
