"""Shared pytest fixtures for the convlab test suite."""

import atexit
import os
import shutil
import tempfile

import numpy as np
import pytest

# Hermetic: the kernels' SIMD calibration (convlab.fast_layers.calibration) caches its choice
# in a directory of this test run, never in the user's ~/.cache, and no decision is inherited
# from whatever started pytest; the processes the tests start inherit both. Calibration stays
# on, as on a user's machine: it only chooses between vector paths (never plain), the avx2 and
# avx512 paths give bit-identical results, and a test that needs a path forces it.
_CALIBRATION_CACHE = tempfile.mkdtemp(prefix="convlab-test-cache-")
os.environ["CONVLAB_CACHE_DIR"] = _CALIBRATION_CACHE
os.environ.pop("_CONVLAB_SIMD_DECIDED", None)
atexit.register(shutil.rmtree, _CALIBRATION_CACHE, ignore_errors=True)

# the course kit's `exercise` mark, and skips for tests that need a not-yet-implemented exercise
from convlab.submit.pytest_plugin import (  # noqa: E402, F401
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_make_collect_report,
    pytest_runtest_makereport,
)


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


def pytest_report_header(config):
    """Name the SIMD path the kernels take and the ones this CPU can run, atop every run."""
    from convlab import fast_layers

    info = fast_layers.build_info()
    note = ", a test build: avx512 compiled for AVX2" if info["avx512_on_avx2"] else ""
    return (f"convlab kernels: SIMD path {info['simd_path']} "
            f"(this CPU can run: {', '.join(info['simd_paths'])}{note})")


@pytest.fixture(scope="module", params=["avx512", "avx2", "portable", "plain"])
def simd_path(request):
    """Run every test of a module once per SIMD path of the kernels (skipped where the CPU lacks it).

    Module-scoped, so pytest runs the module's tests path by path and hypothesis
    tests may use it. The path chosen at import is restored afterwards.
    """
    from convlab import fast_layers

    if request.param not in fast_layers.simd_paths():
        pytest.skip(f"this CPU cannot run the {request.param} kernels")
    before = fast_layers.build_info()["simd_path"]
    fast_layers.set_simd_path(request.param)
    yield request.param
    fast_layers.set_simd_path(before)
