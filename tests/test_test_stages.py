"""The test stages' bookkeeping (noxfile.py, noxutil/stages.py).

CI's log reader relies on the run's last line, ``total: N passed, M failed[, K
skipped]``: it must add up pytest's counts of every stage, count a failed stage
at least once (a build that broke, a pytest run that collected nothing) and make
nox exit non-zero.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from noxutil import stages  # noqa: E402  (the noxfile's helpers, beside noxfile.py)

VERBOSE = """\
tests/test_a.py ..s                                                      [100%]
=============================== warnings summary ===============================
tests/test_a.py::test_b
  DeprecationWarning: 3 passed in 1.0s is not a closing line here
============= 1 failed, 10 passed, 2 skipped, 1 error, 3 warnings in 2.50s (0:00:02) =============
"""
QUIET = "..s\n12 passed, 1 skipped in 0.31s\n"


def test_closing_line_of_a_verbose_and_a_quiet_run():
    assert stages.closing_line(VERBOSE) == (
        "1 failed, 10 passed, 2 skipped, 1 error, 3 warnings in 2.50s (0:00:02)")
    assert stages.closing_line(QUIET) == "12 passed, 1 skipped in 0.31s"
    assert stages.closing_line("== no tests ran in 0.01s ==") == "no tests ran in 0.01s"
    assert stages.closing_line("building...\nerror: no compiler\n") == ""


def test_errors_count_as_failures():
    counts = stages.counts_of(stages.closing_line(VERBOSE))
    assert (counts.passed, counts.failed, counts.skipped) == (10, 2, 2)


@pytest.fixture
def fresh_run(monkeypatch):
    monkeypatch.setattr(stages, "records", [])
    monkeypatch.setattr(stages, "declared", [stages.Declared("unit", None),
                                             stages.Declared("slow", "an hour")])
    monkeypatch.setattr(stages, "_transcript", [])
    monkeypatch.setattr(stages.atexit, "register", lambda function: None)


def record(name, status, shown, detail=None):
    stages._transcript[:] = shown.splitlines()
    stages._record(name, status, time.monotonic(), detail)


def test_the_summary_adds_the_stages_up(fresh_run, capsys):
    record("unit", "ok", QUIET)
    record("kit", "FAILED", "", "not run, its Debian packages are missing")
    record("clang", "FAILED", VERBOSE, "pytest against the clang build: exit 1")
    record("browser", "skip", QUIET, "a student's copy")
    stages.print_summary()
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "total: 22 passed, 3 failed, 3 skipped"
    assert "ok     unit (0 s): 12 passed, 1 skipped in 0.31s" in lines
    assert "FAILED kit (0 s): not run, its Debian packages are missing" in lines
    assert "FAILED clang (0 s): pytest against the clang build: exit 1" in lines
    assert "skip   browser: a student's copy" in lines


def test_a_run_without_skips_prints_no_skipped_count(fresh_run, capsys):
    record("unit", "ok", "3 passed in 0.1s")
    stages.print_summary()
    assert capsys.readouterr().out.splitlines()[-1] == "total: 3 passed, 0 failed"


def test_the_default_run_names_the_stages_it_leaves_out(fresh_run, capsys):
    record("unit", "ok", "3 passed in 0.1s")
    stages.print_summary()
    assert "skip   slow: not in the default run: an hour" in capsys.readouterr().out


def test_a_run_of_chosen_stages_names_no_left_out_stage(fresh_run, capsys):
    stages.declared.append(stages.Declared("html", None))
    record("unit", "ok", "3 passed in 0.1s")
    stages.print_summary()
    assert "slow" not in capsys.readouterr().out


def nox(*arguments, venv=sys.prefix):
    """``nox ARGUMENTS`` on the project's noxfile with ``venv`` as the project's venv."""
    env = {**os.environ, "CONVLAB_VENV": str(venv)}
    env.pop("CONVLAB_CHROMIUM", None)
    return subprocess.run(
        [sys.executable, "-m", "nox", "--noxfile", str(ROOT / "noxfile.py"), *arguments],
        cwd=ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)


def nox_unit(tmp_path, test_code):
    """``nox -s unit`` on one test file, with this venv."""
    test_file = tmp_path / "test_one.py"
    test_file.write_text(test_code)
    return nox("-s", "unit", "--", "-q", "-p", "no:cacheprovider", str(test_file))


def test_nox_reports_a_stage_that_passes(tmp_path):
    run = nox_unit(tmp_path, "import pytest\ndef test_a(): pass\n"
                             "def test_b(): pytest.skip('no')\n")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == "total: 1 passed, 0 failed, 1 skipped"


def test_nox_fails_when_pytest_collects_nothing(tmp_path):
    run = nox_unit(tmp_path, "# no test here\n")
    assert run.returncode != 0
    assert run.stdout.splitlines()[-1] == "total: 0 passed, 1 failed"
    assert "FAILED unit" in run.stdout


def test_the_browser_stage_does_not_run_after_a_failed_html_build(tmp_path):
    # a venv whose jupyter-book fails at once (the browser stage fails before it needs python)
    bin_ = tmp_path / "venv" / "bin"
    bin_.mkdir(parents=True)
    (bin_ / "python").symlink_to(sys.executable)
    (bin_ / "jupyter-book").write_text("#!/bin/sh\necho 'no book here' >&2\nexit 3\n")
    (bin_ / "jupyter-book").chmod(0o755)
    run = nox("-s", "html", "browser", venv=tmp_path / "venv")
    assert run.returncode != 0
    lines = run.stdout.splitlines()
    assert "FAILED html (0 s): exit code 3" in lines
    assert "FAILED browser (0 s): not run, the HTML build failed" in lines
    assert lines[-1] == "total: 0 passed, 2 failed"
