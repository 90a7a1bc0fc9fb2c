"""Choosing the kernels' SIMD path: CONVLAB_SIMD, set_simd_path and build_info.

That every path computes the right thing is tested where the layers are
(``test_fast_layers.py`` and the fused kernel tests run once per path);
here: that the choice is made as documented, and bad choices fail clearly.
"""

import os
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest

from convlab import fast_layers
from convlab._fast import choose_simd_path


@pytest.mark.parametrize("value, expected", [
    (None, "avx2"), ("", "avx2"), ("auto", "avx2"), ("AUTO", "avx2"),
    ("0", "portable"), ("portable", "portable"), ("plain", "plain"), ("avx2", "avx2"),
])
def test_choose_simd_path_follows_the_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("CONVLAB_SIMD", raising=False)
    else:
        monkeypatch.setenv("CONVLAB_SIMD", value)
    assert choose_simd_path(["avx2", "portable", "plain"]) == expected


def test_auto_takes_the_fastest_available_path(monkeypatch):
    monkeypatch.setenv("CONVLAB_SIMD", "auto")
    assert choose_simd_path(["portable", "plain"]) == "portable"


def test_choose_simd_path_rejects_unknown_and_unavailable_paths(monkeypatch):
    monkeypatch.setenv("CONVLAB_SIMD", "sse9")
    with pytest.raises(ValueError, match=r"CONVLAB_SIMD='sse9' is not a SIMD path"):
        choose_simd_path(["avx2", "portable", "plain"])
    monkeypatch.setenv("CONVLAB_SIMD", "avx2")
    with pytest.raises(ValueError, match=r"CONVLAB_SIMD='avx2': this CPU cannot run the avx2 kernels"):
        choose_simd_path(["portable", "plain"])


def _import_with(value):
    """Import the fast layers in a fresh interpreter with CONVLAB_SIMD=value."""
    env = dict(os.environ, CONVLAB_SIMD=value)
    code = "from convlab.fast_layers import build_info; print(build_info()['simd_path'])"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("value, expected", [("plain", "plain"), ("0", "portable")])
def test_convlab_simd_picks_the_path_at_import(value, expected):
    result = _import_with(value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_a_bad_convlab_simd_fails_the_import_with_its_name():
    result = _import_with("avx9000")
    assert result.returncode != 0
    assert "CONVLAB_SIMD='avx9000' is not a SIMD path" in result.stderr


def test_set_simd_path_switches_every_kernel_module_and_rejects_bad_names():
    before = fast_layers.build_info()["simd_path"]
    try:
        for name in fast_layers.simd_paths():
            fast_layers.set_simd_path(name)
            assert fast_layers.build_info()["simd_path"] == name
        with pytest.raises(ValueError, match="unknown SIMD path 'neon'"):
            fast_layers.set_simd_path("neon")
    finally:
        fast_layers.set_simd_path(before)


# Outputs that differ between the plain and the AVX2 path (whose kernels fuse each multiply-add
# into one rounding), one per kernel module: the float32 GELU rows of bn_act, a float32 direct
# convolution and a float32 F(4x4, 3x3) Winograd convolution; and the direct convolution's tile
# width, wider on the avx512 path.
_PATH_PROBE = """
import numpy as np
from convlab._fast import bn_act, conv, winograd

def probe():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 41)).astype(np.float32)
    act = np.empty_like(x)
    bn_act.scale_shift_act(x, np.full(3, 1.3, np.float32), np.full(3, 0.2, np.float32), 3, 0.0, act)
    image = rng.standard_normal((1, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    direct, wino = np.empty((2, 1, 5, 9, 9), np.float32)
    conv.conv_forward(image, w, np.zeros(0, np.float32), direct, 1, 1, 1)
    winograd.conv_forward(image, w, np.zeros(0, np.float32), wino, 1, 1, tile=4)
    return {"bn_act": act.tobytes().hex(), "conv": direct.tobytes().hex(),
            "winograd": wino.tobytes().hex(), "tile_columns": conv.tile_columns(4)}
"""


def test_a_path_set_once_reaches_every_kernel_module():
    """The path is one state (convlab._fast._runtime), which every kernel module reads: switching
    it changes every module's results, and a path set later gives what the same path chosen
    at import (CONVLAB_SIMD, in a fresh process) gives."""
    namespace = {}
    exec(_PATH_PROBE, namespace)
    before = fast_layers.build_info()["simd_path"]
    results = {}
    try:
        for name in fast_layers.simd_paths():
            fast_layers.set_simd_path(name)
            results[name] = namespace["probe"]()
            env = dict(os.environ, CONVLAB_SIMD=name)
            fresh = subprocess.run([sys.executable, "-c", _PATH_PROBE + "print(repr(probe()))"], env=env,
                                   capture_output=True, text=True, timeout=120)
            assert fresh.returncode == 0, fresh.stderr
            assert fresh.stdout.strip() == repr(results[name]), f"the {name} path set later differs"
    finally:
        fast_layers.set_simd_path(before)
    if "avx2" in results:
        for module in ("bn_act", "conv", "winograd"):
            assert results["avx2"][module] != results["plain"][module], f"{module} ignored the path"
    if "avx512" in results:
        assert (results["avx512"]["tile_columns"], results["avx2"]["tile_columns"]) == (32, 16)


def test_a_path_set_before_a_kernel_module_is_imported_reaches_it():
    paths = fast_layers.simd_paths()
    if "avx512" not in paths:
        pytest.skip("needs the avx512 path, whose tiles are wider than the default's")
    code = ("from convlab._fast import _runtime; _runtime.set_simd_path('avx2'); "
            "from convlab._fast import conv; print(conv.tile_columns(4))")
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, CONVLAB_SIMD="avx512"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "16"


def test_build_info_describes_the_build():
    info = fast_layers.build_info()
    assert info["simd_path"] in info["simd_paths"]
    assert info["simd_paths"][-2:] == ["portable", "plain"]  # always available
    assert info["openmp"] == (info["openmp_version"] > 0)
    assert info["threads"] >= 1 and (info["openmp"] or info["threads"] == 1)
    assert isinstance(info["compiler"], str) and info["compiler"]


def test_info_command_prints_the_path():
    result = subprocess.run([sys.executable, "-m", "convlab.info"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "SIMD path: " in result.stdout and "OpenMP:" in result.stdout


@contextmanager
def _kernels(simd_path, conv_algorithm="auto"):
    """Run the kernels on this SIMD path and convolution algorithm, then restore both."""
    before = (fast_layers.build_info()["simd_path"], fast_layers.conv_algorithm())
    fast_layers.set_simd_path(simd_path)
    fast_layers.set_conv_algorithm(conv_algorithm)
    try:
        yield
    finally:
        fast_layers.set_simd_path(before[0])
        fast_layers.set_conv_algorithm(before[1])


def _conv_results(dtype, shape, stride, pad, rng):
    """Forward and backward of one direct convolution on the current path."""
    from convlab.fast_layers import conv_backward_fast, conv_forward_fast

    N, C, H, W, F, HH = shape
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, HH, HH)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    conv_param = {"stride": stride, "pad": pad}
    out, cache = conv_forward_fast(x, w, b, conv_param)
    dout = rng.standard_normal(out.shape).astype(dtype)
    return (out,) + tuple(conv_backward_fast(dout, cache))


# shapes (N, C, H, W, F, HH): tiles cut at every edge (F, taps and pixels not
# multiples of 32), the implicit and the packed GEMM, dw with few and many filters
WIDE_TILE_SHAPES = [
    ((2, 3, 9, 11, 5, 3), 1, 1),
    ((2, 16, 15, 15, 64, 3), 1, 1),
    ((1, 64, 32, 32, 40, 3), 1, 1),   # padded image over the implicit GEMM's limit
    ((3, 7, 13, 11, 33, 5), 2, 2),    # stride 2: packed columns
    ((2, 12, 8, 8, 17, 1), 1, 0),
    ((2, 24, 31, 31, 16, 3), 1, 1),   # 16 filters: dw takes the narrow tile on the AVX-512 path
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, stride, pad", WIDE_TILE_SHAPES)
def test_avx512_tiles_agree_bit_for_bit_with_avx2(dtype, shape, stride, pad):
    """The 6 x 32 (6 x 16) AVX-512 tiles sum the same fused products as AVX2's 6 x 16 (6 x 8)."""
    paths = fast_layers.simd_paths()
    if "avx512" not in paths:
        pytest.skip("this CPU cannot run the avx512 kernels")
    from convlab._fast import conv as _conv

    results, widths = {}, {}
    for name in ("avx2", "avx512"):
        with _kernels(name, "direct"):  # Winograd keeps the narrow tiles on every path
            widths[name] = _conv.tile_columns(np.dtype(dtype).itemsize)
            results[name] = _conv_results(dtype, shape, stride, pad, np.random.default_rng(7))
    assert widths["avx512"] == 2 * widths["avx2"]
    for got, want, what in zip(results["avx512"], results["avx2"], ("out", "dx", "dw", "db")):
        np.testing.assert_array_equal(got, want, err_msg=f"{what} differs between the paths")


def test_tile_columns_follow_the_path_and_reject_bad_sizes():
    from convlab._fast import conv as _conv

    for name in fast_layers.simd_paths():
        with _kernels(name):
            wide = name == "avx512"
            assert (_conv.tile_columns(4), _conv.tile_columns(8)) == ((32, 16) if wide else (16, 8))
    with pytest.raises(ValueError, match="itemsize must be 4 or 8, got 2"):
        _conv.tile_columns(2)
