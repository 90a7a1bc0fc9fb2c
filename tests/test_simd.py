"""Choosing the kernels' SIMD path: CONVLAB_SIMD, set_simd_path and build_info.

That every path computes the right thing is tested where the layers are
(``test_fast_layers.py`` and the fused kernel tests run once per path);
here: that the choice is made as documented, and bad choices fail clearly.
"""

import os
import subprocess
import sys

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
