"""Shared pytest fixtures for the convlab test suite."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A freshly seeded generator, so every test sees the same random numbers."""
    return np.random.default_rng(231)


@pytest.fixture
def one_openmp_thread():
    """Run the OpenMP fast kernels on a single thread for the duration of a test.

    Numeric gradient checks call the layers thousands of times on tiny
    arrays, where starting and synchronizing threads costs far more than the
    work (badly so on a busy machine). The results do not depend on it.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield
