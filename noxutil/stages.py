"""Test stages as nox sessions, with the bookkeeping of a run.

A stage is a nox session (``nox -s NAME`` runs it alone) that uses the project's
one virtual environment, ``.venv`` (made by ``scripts/setup-env.sh``), instead of
a virtual environment of its own. Each stage's function returns a one-line detail
(or nothing) and ends early with ``fail(detail)`` or ``skip(reason)``; the commands
it runs through ``run`` are shown as they print and kept, so that pytest's closing
line (``=== 3 passed, 1 skipped in 2.0s ===``, or ``3 passed in 2.0s`` with -q)
gives the stage's counts. When the run ends, ``print_summary`` prints one line per
stage -- status, seconds, detail -- and the totals::

    ok     unit (312 s): 1502 passed, 12 skipped in 305.10s (0:05:05)
    FAILED browser (0 s): not run, the HTML build failed
    total: 1502 passed, 1 failed, 12 skipped

A failed stage counts at least one failure (a broken build, a pytest run that
collected no tests). Nox runs every selected stage even if an earlier one failed,
and exits non-zero if any did.
"""

import atexit
import functools
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("CONVLAB_VENV") or ROOT / ".venv")
VPY = VENV / "bin" / "python"
"""The venv's python (absolute, not resolved: resolving would leave the venv)."""


class StageFailed(Exception):
    """``fail(detail)``: the stage failed; ``detail`` is its summary line."""


class StageSkipped(Exception):
    """``skip(reason)``: the stage did not apply here; a skip does not fail the run."""


def fail(detail):
    raise StageFailed(detail)


def skip(reason):
    raise StageSkipped(reason)


@dataclass
class Counts:
    """pytest's counts of one closing line (errors count as failures)."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass
class Record:
    """One stage of the run: ``status`` is "ok", "FAILED" or "skip"."""

    name: str
    status: str
    seconds: int
    detail: str
    counts: Counts = field(default_factory=Counts)


@dataclass
class Declared:
    """A stage of the noxfile; ``off_by_default`` says why the default run leaves it out."""

    name: str
    off_by_default: str | None


declared = []
records = []
_transcript = []
"""The lines the running stage has shown (``run``, ``echo``), for pytest's closing line."""


# ---------------------------------------------------------------- running commands

def echo(text):
    """Print ``text`` (a line or several) now, and keep it in the stage's transcript."""
    text = text.rstrip("\n")
    if text:
        print(text, flush=True)
        _transcript.extend(text.splitlines())


def run(command, *, env=None, cwd=ROOT, show=True, log=None):
    """Run ``command`` (a list) with ``env`` added to this process's environment.

    Its output (stdout and stderr together) is shown line by line as it comes when
    ``show`` (and then kept in the stage's transcript), and written to the file
    ``log`` if given. Returns ``(returncode, output)``; fails the stage if the program
    does not exist.
    """
    full_env = {**os.environ, **(env or {})}
    lines = []
    try:
        process = subprocess.Popen([str(c) for c in command], cwd=cwd, env=full_env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except FileNotFoundError:
        fail(f"{command[0]}: no such program")
    with process:
        for raw in process.stdout:
            line = raw.decode(errors="replace")
            lines.append(line)
            if show:
                sys.stdout.write(line)
                sys.stdout.flush()
    output = "".join(lines)
    if show:
        _transcript.extend(output.splitlines())
    if log is not None:
        Path(log).write_text(output)
    return process.returncode, output


def capture(command, *, env=None, cwd=ROOT):
    """The stripped stdout of ``command``, which must succeed (a helper's answer)."""
    return subprocess.run([str(c) for c in command], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, check=True).stdout.strip()


_CLOSING = re.compile(r"^((\d+ [a-z]+|no tests ran)(, \d+ [a-z]+)*) in [0-9.]+s\b.*$")


def closing_line(text):
    """pytest's last closing line in ``text`` without its ``===``, or ``""``."""
    found = ""
    for line in text.splitlines():
        line = line.strip().strip("=").strip()
        if _CLOSING.match(line):
            found = line
    return found


def counts_of(line):
    """The ``Counts`` of a pytest closing line."""

    def count(pattern):
        return sum(int(n) for n in re.findall(rf"(\d+) (?:{pattern})\b", line))

    return Counts(passed=count("passed"), failed=count("failed|errors?"), skipped=count("skipped"))


def pytest(args, *, env=None, cwd=ROOT):
    """Run the venv's pytest with ``args`` (shown); fail with its closing line if it fails.

    Returns pytest's closing line.
    """
    command = [VPY, "-m", "pytest", *args]
    echo(f"== {shell_words(command, env)}")
    status, output = run(command, env=env, cwd=cwd)
    last = closing_line(output)
    if status != 0:
        fail(last or f"exit code {status}")
    return last


def shell_words(command, env=None):
    """``command`` with the settings ``env`` before it, as a shell would take it."""
    return shlex.join([*(f"{k}={v}" for k, v in (env or {}).items()), *map(str, command)])


# ---------------------------------------------------------------- stages

def stage(name, *, off_by_default=None):
    """Declare the decorated function ``f(session)`` a stage: the nox session ``name``.

    ``off_by_default``: why the default run (``nox`` alone) leaves the stage out, or
    None. The session uses no virtual environment of its own (the commands name the
    venv's programs). Its result is recorded for the summary.
    """
    declared.append(Declared(name, off_by_default))

    def decorate(function):
        @nox.session(name=name, venv_backend="none", default=off_by_default is None)
        @functools.wraps(function)
        def run_stage(session):
            _transcript.clear()
            start = time.monotonic()
            try:
                _require_venv()
                detail = function(session)
            except StageSkipped as skipped:
                _record(name, "skip", start, str(skipped))
                session.skip(str(skipped))
            except StageFailed as failed:
                _record(name, "FAILED", start, str(failed))
                session.error(str(failed))
            except KeyboardInterrupt:
                raise
            except BaseException as error:
                _record(name, "FAILED", start, f"{type(error).__name__}: {error}")
                raise
            _record(name, "ok", start, detail)

        return run_stage

    return decorate


def _require_venv():
    if not os.access(VPY, os.X_OK):
        fail(f"no {VPY}: run `bash scripts/test.sh` (or source scripts/setup-env.sh) first")


def _record(name, status, start, detail):
    last = closing_line("\n".join(_transcript))
    counts = counts_of(last) if status != "skip" else Counts()
    if status == "FAILED" and counts.failed == 0:
        counts.failed = 1
    if not records:
        atexit.register(print_summary)
    records.append(Record(name, status, round(time.monotonic() - start),
                          detail or last or "done", counts))


def status_of(name):
    """The status of stage ``name`` in this run ("ok", "FAILED", "skip"), or None."""
    return next((r.status for r in records if r.name == name), None)


def left_out_of_default_run():
    """Records "skip" for the stages the default run leaves out, if this was the default run."""
    ran = {r.name for r in records}
    if not all(d.name in ran for d in declared if d.off_by_default is None):
        return []
    return [Record(d.name, "skip", 0, f"not in the default run: {d.off_by_default}")
            for d in declared if d.off_by_default is not None and d.name not in ran]


def print_summary():
    """One line per stage, then ``total: N passed, M failed[, K skipped]``."""
    lines = records + left_out_of_default_run()
    total = Counts(*(sum(getattr(r.counts, k) for r in lines) for k in ("passed", "failed", "skipped")))
    print("\n== summary")
    for r in lines:
        time_ = f" ({r.seconds} s)" if r.status != "skip" or r.seconds else ""
        print(f"{r.status:<6} {r.name}{time_}: {r.detail}")
    skipped = f", {total.skipped} skipped" if total.skipped else ""
    print(f"total: {total.passed} passed, {total.failed} failed{skipped}", flush=True)
