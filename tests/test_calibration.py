"""Choosing the kernels' SIMD path by measuring it (convlab.fast_layers.calibration).

No test asserts on a time: the timing function is replaced by fake timings,
except in one test that calibrates for real and checks only that a valid path
is chosen and computes what the naive layer computes.
"""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import convlab
from convlab import fast_layers
from convlab._fast import _runtime
from convlab.fast_layers import calibration
from convlab.layers import conv_backward_naive, conv_forward_naive
from convlab.runs import folder as run_folder

# Two paths every CPU runs, so that a fake calibration can choose either.
BOTH = ["portable", "plain"]


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No decision yet, an empty cache directory, no path forced; everything restored afterwards."""
    saved = (calibration._choice, calibration._warned, _runtime.simd_path(),
             os.environ.get(calibration._INHERITED))
    for name in ("CONVLAB_SIMD", "CONVLAB_CALIBRATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONVLAB_CACHE_DIR", str(tmp_path / "cache"))
    os.environ.pop(calibration._INHERITED, None)
    calibration._choice, calibration._warned = None, False
    yield tmp_path / "cache"
    calibration._choice, calibration._warned = saved[0], saved[1]
    _runtime.set_simd_path(saved[2])
    if saved[3] is None:
        os.environ.pop(calibration._INHERITED, None)
    else:
        os.environ[calibration._INHERITED] = saved[3]


class FakeClock:
    """Stands in for one trial's timing: a fixed time per path, and a record of the calls."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.calls = []

    def __call__(self, path, work):
        self.calls.append(path)
        return self.seconds[path]


def _fake(monkeypatch, seconds, candidates=BOTH):
    clock = FakeClock(seconds)
    monkeypatch.setattr(calibration, "_time_trial", clock)
    monkeypatch.setattr(calibration, "_candidates", lambda available, default: list(candidates))
    return clock


def _forget():
    """As in a new process with the same environment: no decision in memory, none inherited."""
    calibration._choice = None
    os.environ.pop(calibration._INHERITED, None)


def test_calibration_avoids_a_slow_path_and_takes_the_fastest(fresh, monkeypatch):
    clock = _fake(monkeypatch, {"portable": 0.010, "plain": 0.002})   # the default is the slow one
    choice = calibration.simd_choice()
    assert choice["simd_path"] == "plain" and choice["how"] == "calibrated"
    assert _runtime.simd_path() == "plain"
    assert choice["times_ms"] == {"portable": 10.0, "plain": 2.0} and choice["default"] == "portable"
    assert set(clock.calls) == {"portable", "plain"}
    assert calibration.MIN_ROUNDS <= clock.calls.count("plain") <= calibration.ROUNDS


def test_a_path_much_slower_than_the_best_is_timed_once(fresh, monkeypatch):
    clock = _fake(monkeypatch, {"portable": 0.002, "plain": 0.010})
    choice = calibration.simd_choice()
    assert choice["simd_path"] == "portable"
    assert clock.calls.count("plain") == 1 and choice["dropped_ms"] == {"plain": 10.0}
    assert "plain" not in choice["times_ms"]


@pytest.mark.parametrize("plain_seconds, expected", [(0.0097, "portable"), (0.0096, "portable"),
                                                     (0.0094, "plain"), (0.0050, "plain")])
def test_the_margin_keeps_the_default_unless_another_path_is_clearly_faster(fresh, monkeypatch,
                                                                            plain_seconds, expected):
    _fake(monkeypatch, {"portable": 0.0100, "plain": plain_seconds})
    assert calibration.simd_choice()["simd_path"] == expected


def test_choose_fastest():
    assert calibration.choose_fastest({"avx512": 1.0, "avx2": 0.96}, "avx512") == "avx512"
    assert calibration.choose_fastest({"avx512": 1.0, "avx2": 0.90}, "avx512") == "avx2"
    assert calibration.choose_fastest({"avx512": 0.9, "avx2": 1.0}, "avx512") == "avx512"


def test_the_choice_is_cached_and_reused_without_measuring(fresh, monkeypatch):
    clock = _fake(monkeypatch, {"portable": 0.010, "plain": 0.002})
    first = calibration.simd_choice()
    files = list(fresh.glob("simd-*.json"))
    assert len(files) == 1 and first["cache_file"] == str(files[0])
    stored = json.loads(files[0].read_text())
    assert stored["simd_path"] == "plain" and stored["key"]["simd_paths"] == fast_layers.simd_paths()
    assert stored["key"]["convlab"] == convlab.__version__ and stored["key"]["cpu"]
    assert not list(fresh.glob("*.tmp"))                      # written through a temporary file
    _forget()
    _runtime.set_simd_path("portable")
    measured = len(clock.calls)
    again = calibration.simd_choice()
    assert len(clock.calls) == measured                       # not measured again
    assert again["how"] == "cached" and again["simd_path"] == "plain" and _runtime.simd_path() == "plain"
    assert again["times_ms"] == first["times_ms"]


@pytest.mark.parametrize("change", ["cpu", "version"])
def test_another_cpu_or_version_calibrates_again(fresh, monkeypatch, change):
    clock = _fake(monkeypatch, {"portable": 0.010, "plain": 0.002})
    calibration.simd_choice()
    _forget()
    if change == "cpu":
        monkeypatch.setattr(calibration, "_cpu_model", lambda: ("Another CPU (Linux x86_64)", "0123"))
    else:
        monkeypatch.setattr(convlab, "__version__", "99.0")
    clock.seconds = {"portable": 0.002, "plain": 0.010}
    measured = len(clock.calls)
    choice = calibration.simd_choice()
    assert len(clock.calls) > measured and choice["how"] == "calibrated"
    assert choice["simd_path"] == "portable"
    assert len(list(fresh.glob("simd-*.json"))) == 2          # one file per key: both stay


def test_a_corrupt_cache_is_ignored_with_one_warning_and_replaced(fresh, monkeypatch):
    clock = _fake(monkeypatch, {"portable": 0.010, "plain": 0.002})
    calibration.simd_choice()
    (cache_file,) = fresh.glob("simd-*.json")
    _forget()
    calibration._warned = False
    for damaged in ("{not json", json.dumps({"format": "convlab-simd-calibration", "version": 1,
                                             "key": {"cpu": "other"}, "simd_path": "plain"})):
        cache_file.write_text(damaged)
        calibration._choice, calibration._warned = None, False
        os.environ.pop(calibration._INHERITED, None)
        measured = len(clock.calls)
        with pytest.warns(calibration.CalibrationCacheWarning, match="ignored the SIMD calibration cache"):
            choice = calibration.simd_choice()
        assert choice["how"] == "calibrated" and len(clock.calls) > measured
        assert json.loads(cache_file.read_text())["simd_path"] == "plain"   # rewritten, valid


def test_an_unusable_cache_directory_is_tolerated_with_at_most_one_warning(fresh, monkeypatch):
    _fake(monkeypatch, {"portable": 0.010, "plain": 0.002})
    blocker = fresh.parent / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("CONVLAB_CACHE_DIR", str(blocker))     # reading and writing both fail
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        choice = calibration.simd_choice()
        _forget()
        again = calibration.simd_choice()                     # the next "process" measures too
    assert choice["simd_path"] == again["simd_path"] == "plain"
    assert choice["cache_file"] is None and again["how"] == "calibrated"
    cache_warnings = [w for w in caught if issubclass(w.category, calibration.CalibrationCacheWarning)]
    assert len(cache_warnings) == 1, [str(w.message) for w in caught]
    assert str(blocker) in str(cache_warnings[0].message)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs permissions that bind")
def test_a_read_only_cache_directory_works(fresh, monkeypatch):
    _fake(monkeypatch, {"portable": 0.010, "plain": 0.002})
    fresh.mkdir()
    fresh.chmod(0o500)
    try:
        with pytest.warns(calibration.CalibrationCacheWarning, match="cannot write"):
            choice = calibration.simd_choice()
    finally:
        fresh.chmod(0o700)
    assert choice["simd_path"] == "plain" and not list(fresh.iterdir())


def test_convlab_simd_forces_a_path_without_calibrating(fresh, monkeypatch):
    clock = _fake(monkeypatch, {"portable": 0.010, "plain": 0.002})
    monkeypatch.setenv("CONVLAB_SIMD", "portable")
    choice = calibration.simd_choice()
    assert (choice["simd_path"], choice["how"]) == ("portable", "forced by CONVLAB_SIMD=portable")
    assert clock.calls == [] and not fresh.exists() and calibration._INHERITED not in os.environ
    with pytest.raises(ValueError, match="CONVLAB_SIMD=portable forces the SIMD path"):
        calibration.recalibrate()


def test_convlab_calibrate_0_takes_the_cpuid_default(fresh, monkeypatch):
    clock = _fake(monkeypatch, {"portable": 0.010, "plain": 0.002})
    monkeypatch.setenv("CONVLAB_CALIBRATE", "0")
    choice = calibration.simd_choice()
    assert choice["simd_path"] == fast_layers.simd_paths()[0] == _runtime.simd_path()
    assert choice["how"] == "CPUID default (CONVLAB_CALIBRATE=0)" and clock.calls == []
    assert not fresh.exists()


def test_a_bad_convlab_calibrate_is_an_error_naming_it(fresh, monkeypatch):
    monkeypatch.setenv("CONVLAB_CALIBRATE", "maybe")
    with pytest.raises(ValueError, match=r"CONVLAB_CALIBRATE='maybe': use 1 .* or 0"):
        calibration.simd_choice()


def test_the_first_fast_layer_decides_and_set_simd_path_is_never_overridden(fresh, monkeypatch, rng):
    clock = _fake(monkeypatch, {"portable": 0.010, "plain": 0.002})
    x, w = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    fast_layers.conv_forward_fast(x, w, np.zeros(3), {"stride": 1, "pad": 1})
    assert calibration._choice["how"] == "calibrated" and _runtime.simd_path() == "plain"
    _forget()
    calls = len(clock.calls)
    fast_layers.set_simd_path("portable")                     # before any layer ran in this "process"
    fast_layers.conv_forward_fast(x, w, np.zeros(3), {"stride": 1, "pad": 1})
    assert _runtime.simd_path() == "portable" and len(clock.calls) == calls
    assert fast_layers.build_info()["simd_choice"]["how"] == "set by set_simd_path"


def test_a_run_records_the_path_the_kernels_take(fresh, monkeypatch):
    """build_info() decides before it reports, so the run's fingerprint names the calibrated path."""
    _fake(monkeypatch, {"portable": 0.010, "plain": 0.002})
    recorded = run_folder.numerics(convlab.build_info())
    assert recorded["simd_path"] == "plain" == _runtime.simd_path()


def test_a_decision_is_inherited_by_worker_processes(fresh, monkeypatch):
    _fake(monkeypatch, {"portable": 0.010, "plain": 0.002})
    calibration.simd_choice()
    calibration._choice = None                                 # in-process, via the environment
    assert calibration.simd_choice()["how"] == "inherited from the parent process"
    code = ("from convlab.fast_layers import build_info; c = build_info()['simd_choice']; "
            "print(c['simd_path'], c['how'])")
    # a spawned worker (a fresh interpreter) would measure for real: here it must not
    child = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True,
                           text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "plain inherited from the parent process"


def test_a_forked_child_keeps_the_parents_path(fresh, monkeypatch):
    if not hasattr(os, "fork"):
        pytest.skip("no fork() here")
    clock = _fake(monkeypatch, {"portable": 0.010, "plain": 0.002})
    calibration.simd_choice()
    calls = len(clock.calls)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                               # the child
        os.close(read)
        info = fast_layers.build_info()
        os.write(write, f"{info['simd_path']} {len(clock.calls)}".encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        said = f.read()
    os.waitpid(pid, 0)
    assert said == f"plain {calls}"


def _info(*args, **env):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("CONVLAB_SIMD", "CONVLAB_CALIBRATE", calibration._INHERITED)}
    return subprocess.run([sys.executable, "-m", "convlab.info", *args], env=dict(environment, **env),
                          capture_output=True, text=True, timeout=120)


def test_info_shows_what_was_measured_chosen_and_cached(tmp_path):
    first = _info(CONVLAB_CACHE_DIR=str(tmp_path))
    assert first.returncode == 0, first.stderr
    lines = dict(line.split(":", 1) for line in first.stdout.splitlines() if ":" in line)
    path = lines["SIMD path"].split()[0]
    if len([p for p in fast_layers.simd_paths() if p != "plain"]) == 1:
        assert lines["chosen"].strip() == "CPUID default (the only vector path)"
        return
    assert lines["chosen"].strip().startswith(f"calibrated: {path}, ")
    assert "ms" in lines["measured"] and fast_layers.simd_paths()[0] in lines["measured"]
    (cache_file,) = tmp_path.glob("simd-*.json")
    assert lines["cache"].strip() == str(cache_file)
    second = _info(CONVLAB_CACHE_DIR=str(tmp_path))
    assert f"chosen:    cached: {path}, " in second.stdout
    again = _info("--recalibrate", CONVLAB_CACHE_DIR=str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "chosen:    calibrated: " in again.stdout


def test_info_says_when_the_path_is_forced_or_calibration_is_off(tmp_path):
    forced = _info(CONVLAB_CACHE_DIR=str(tmp_path), CONVLAB_SIMD="portable")
    assert forced.returncode == 0, forced.stderr
    assert "chosen:    forced by CONVLAB_SIMD=portable" in forced.stdout
    off = _info(CONVLAB_CACHE_DIR=str(tmp_path), CONVLAB_CALIBRATE="0")
    assert "chosen:    CPUID default (CONVLAB_CALIBRATE=0)" in off.stdout
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("env, message", [
    ({"CONVLAB_SIMD": "portable"}, "--recalibrate: CONVLAB_SIMD=portable forces the SIMD path"),
    ({"CONVLAB_CALIBRATE": "0"}, "--recalibrate: CONVLAB_CALIBRATE=0 switches calibration off"),
    ({"CONVLAB_CALIBRATE": "sometimes"}, "CONVLAB_CALIBRATE='sometimes': use 1"),
])
def test_info_refuses_to_recalibrate_in_one_line(tmp_path, env, message):
    done = _info("--recalibrate", CONVLAB_CACHE_DIR=str(tmp_path), **env)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("python -m convlab.info: error: ")
    assert message in done.stderr


def test_a_real_calibration_chooses_a_valid_path_whose_kernels_agree_with_naive(fresh, monkeypatch, rng):
    """Measures for real (the times are not checked), with the portable path among the candidates."""
    available = fast_layers.simd_paths()
    candidates = list(dict.fromkeys([available[0], "portable"]))
    monkeypatch.setattr(calibration, "_candidates", lambda available, default: candidates)
    choice = calibration.recalibrate()
    assert choice["simd_path"] in candidates and _runtime.simd_path() == choice["simd_path"]
    assert set(choice["times_ms"]) | set(choice["dropped_ms"]) == set(candidates)
    assert all(t > 0 for t in [*choice["times_ms"].values(), *choice["dropped_ms"].values()])
    x, w, b = rng.standard_normal((2, 3, 7, 7)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    conv_param = {"stride": 1, "pad": 1}
    out, cache = fast_layers.conv_forward_fast(x, w, b, conv_param)
    want, naive_cache = conv_forward_naive(x, w, b, conv_param)
    np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    for got, expected in zip(fast_layers.conv_backward_fast(dout, cache), conv_backward_naive(dout, naive_cache)):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("field, value", [("times_ms", {"portable": "fast"}), ("times_ms", {}),
                                          ("dropped_ms", {"neon": 1.0}), ("simd_path", "sse9"),
                                          ("format", "something else")])
def test_a_cache_file_with_a_bad_entry_is_ignored(fresh, monkeypatch, field, value):
    clock = _fake(monkeypatch, {"portable": 0.010, "plain": 0.002})
    calibration.simd_choice()
    (cache_file,) = fresh.glob("simd-*.json")
    stored = json.loads(cache_file.read_text())
    cache_file.write_text(json.dumps(dict(stored, **{field: value})))
    _forget()
    measured = len(clock.calls)
    with pytest.warns(calibration.CalibrationCacheWarning, match="not a calibration of this CPU"):
        assert calibration.simd_choice()["how"] == "calibrated"
    assert len(clock.calls) > measured


def test_the_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CONVLAB_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert calibration.cache_dir() == str(tmp_path / "home" / ".cache" / "convlab")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")           # ignored, as XDG says
    assert calibration.cache_dir() == str(tmp_path / "home" / ".cache" / "convlab")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert calibration.cache_dir() == str(tmp_path / "xdg" / "convlab")
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert calibration.cache_dir() == os.path.join(str(tmp_path / "local"), "convlab")
    monkeypatch.setenv("CONVLAB_CACHE_DIR", str(tmp_path / "mine"))
    assert calibration.cache_dir() == str(tmp_path / "mine")


def test_the_test_suite_never_uses_the_users_cache():
    """tests/conftest.py points the cache at a directory of this test run (and so its subprocesses)."""
    here = os.path.realpath(calibration.cache_dir())
    assert os.path.basename(here).startswith("convlab-test-cache-")
    assert not here.startswith(os.path.realpath(os.path.expanduser("~/.cache")))
