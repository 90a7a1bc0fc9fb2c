"""PyTorch as a second oracle in the tests: used where installed, required by ``nox -s pytorch``.

convlab never imports PyTorch. The tests that compare with it are marked
``pytorch`` and get it from :func:`import_torch`: skipped where it is not
installed, except with ``CONVLAB_REQUIRE_TORCH=1`` (the pytorch stage, which
installs it first), where a missing torch fails them instead of skipping.
"""

import os

import pytest


def import_torch():
    """The ``torch`` module; a skip without it (a failure with CONVLAB_REQUIRE_TORCH=1)."""
    if os.environ.get("CONVLAB_REQUIRE_TORCH") == "1":
        import torch   # noqa: PLC0415 -- an ImportError here fails the test, as it should

        return torch
    return pytest.importorskip("torch")
