"""Chapter 3's timing claims hold on a busy machine.

Re-executes ``book/03-fast-layers.ipynb`` under ``pytest --nbval`` while two
other processes keep the processor busy (each spins in a loop, so on a 2-core
machine every core is shared), and requires every compared output, the
speedup checks included, to match the stored notebook.

Not part of a plain ``pytest tests/`` (``norecursedirs`` in
``pyproject.toml``): it takes one to three minutes and needs the machine for
itself apart from the load it makes. Run it explicitly::

    pytest tests/load

(``nox -s load`` does). Linux only: it reads ``/proc`` to show that the
load was real.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = ROOT / "book" / "03-fast-layers.ipynb"
BURNERS = 2
TIMEOUT = 170  # seconds; the chapter takes well under a minute on a quiet machine

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="needs Linux /proc to measure the load"
)


def cpu_seconds(pid):
    """Processor time (user + system) a process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def start_burner():
    """A process that spins on one core until it is killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def test_chapter_3_passes_while_two_processes_burn_cpu():
    burners = [start_burner() for _ in range(BURNERS)]
    try:
        time.sleep(1.0)  # let them start spinning
        burned_before = [cpu_seconds(p.pid) for p in burners]
        start = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env",
             "-p", "no:cacheprovider", "-q", str(CHAPTER)],
            cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
        )
        elapsed = time.monotonic() - start
        burned = [cpu_seconds(p.pid) - b for p, b in zip(burners, burned_before)]
        still_running = [p.poll() is None for p in burners]
    finally:
        for p in burners:
            p.kill()
        for p in burners:
            p.wait()

    assert run.returncode == 0, (
        f"chapter 3 failed under load (exit {run.returncode}):\n"
        f"{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    )
    assert all(still_running), "a CPU burner stopped early: the load was not there"
    # Each burner must have had a real share of a core during the run: on 2
    # idle cores with 3 busy processes each gets about two thirds of one, on
    # a machine that other programs share already, less.
    for seconds in burned:
        assert seconds >= 0.1 * elapsed, (
            f"a burner used only {seconds:.1f} s of processor time in {elapsed:.0f} s: "
            "the machine was not loaded"
        )
