"""The hidden tests' inputs: fixed in the project's own runs, drawn from the grading's secret seed at grading."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def draws(tmp_path, seed):
    """What the hidden tests' ``rng`` fixture draws first, in a pytest run with ``CONVLAB_GRADE_SEED=seed``."""
    folder = tmp_path / "hidden"
    if not folder.exists():
        folder.mkdir()
        shutil.copy2(ROOT / "tests/hidden/conftest.py", folder / "conftest.py")
        (folder / "test_draw.py").write_text("def test_draw(rng):\n    print('DRAW', rng.random())\n")
    env = {k: v for k, v in os.environ.items() if k != "CONVLAB_GRADE_SEED"}
    if seed is not None:
        env["CONVLAB_GRADE_SEED"] = str(seed)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(folder)],
                         env=env, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    return [line for line in run.stdout.splitlines() if line.startswith("DRAW")]


def test_grading_seeds_change_the_inputs_and_the_project_run_is_fixed(tmp_path):
    fixed = draws(tmp_path, None)
    assert fixed == draws(tmp_path, None)
    first, second = draws(tmp_path, 12345), draws(tmp_path, 67890)
    assert first != second and fixed not in (first, second)
    assert first == draws(tmp_path, 12345)
