"""Shared pytest fixtures for the convlab test suite."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A freshly seeded generator, so every test sees the same random numbers."""
    return np.random.default_rng(231)
