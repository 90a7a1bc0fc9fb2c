"""Fixtures of the hidden tests: seeded randomness, and the naive layers cut off from the fast ones."""

import os
import zlib

import numpy as np
import pytest

from convlab.instructor.guard import fast_layers_forbidden

# Exercises whose functions live in convlab.layers or convlab.conv_family, the oracle modules that
# never use the fast path.
NAIVE_EXERCISES = ("conv.", "pool.", "spatial_bn.", "conv_general.", "conv_transpose.", "avg_pool.")


@pytest.fixture
def rng(request):
    """A seeded generator: fixed in the project's own test runs; at grading, from the grading's secret seed.

    The grader draws ``CONVLAB_GRADE_SEED`` anew for every grading, so a
    submission cannot hard-code the outputs of the hidden tests.
    """
    secret = os.environ.get("CONVLAB_GRADE_SEED")
    if secret is None:
        return np.random.default_rng(1231)
    return np.random.default_rng([int(secret), zlib.crc32(request.node.nodeid.encode())])


@pytest.fixture(autouse=True)
def naive_means_naive(request):
    """Tests of a naive layer run with every fast layer and kernel raising."""
    exercises = [m.args[0] for m in request.node.iter_markers("exercise")]
    if any(e.startswith(NAIVE_EXERCISES) for e in exercises):
        import convlab.conv_family
        import convlab.layers

        with fast_layers_forbidden(also_in=[convlab.layers, convlab.conv_family]):
            yield
    else:
        yield
