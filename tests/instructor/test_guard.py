"""The guard that keeps a naive layer from handing its work to the fast kernels."""

import numpy as np
import pytest

import convlab.fast_layers
import convlab.layers
from convlab.instructor.guard import FastLayerUsed, fast_layers_forbidden, fast_modules

X, W, B, PARAM = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), np.zeros(1), {"stride": 1, "pad": 1}


def test_naive_layer_runs_and_a_delegating_one_is_caught(monkeypatch):
    prebound = convlab.fast_layers.conv_forward_fast
    monkeypatch.setattr(convlab.layers, "cheat", prebound, raising=False)
    with fast_layers_forbidden(also_in=[convlab.layers]):
        out, _ = convlab.layers.conv_forward_naive(X, W, B, PARAM)
        with pytest.raises(FastLayerUsed, match="conv_forward_fast"):
            convlab.fast_layers.conv_forward_fast(X, W, B, PARAM)
        with pytest.raises(FastLayerUsed):
            convlab.layers.cheat(X, W, B, PARAM)  # imported by name before the guard
        with pytest.raises(FastLayerUsed):
            prebound(X, W, B, PARAM)  # the fast layer reaches its kernel through the module: caught there
    assert np.array_equal(convlab.fast_layers.conv_forward_fast(X, W, B, PARAM)[0], out)  # restored


def test_the_guarded_modules_are_found_in_the_package_not_listed_by_hand():
    """Every compiled kernel module (the Winograd one too) is guarded, and nothing that is not one."""
    import importlib.machinery
    from pathlib import Path

    import convlab._fast

    built = {path.name.split(".")[0] for path in Path(convlab._fast.__path__[0]).iterdir()
             if path.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))}
    assert "winograd" in built
    assert set(fast_modules()) == {"convlab.fast_layers"} | {f"convlab._fast.{name}" for name in built}


def test_the_fast_layers_controls_defined_in_their_submodules_are_guarded_too():
    """``convlab.fast_layers`` is a package: what it re-exports from its submodules is its own, and guarded."""
    with fast_layers_forbidden():
        for name in ("build_info", "set_simd_path", "set_conv_algorithm", "winograd_pays"):
            with pytest.raises(FastLayerUsed, match=f"convlab.fast_layers.{name}"):
                getattr(convlab.fast_layers, name)()
        assert convlab.fast_layers.conv_output_size is convlab.layers.conv_output_size  # the oracle's helpers stay
