"""The temporary folder of the portability stages, and the copy of the sources in it.

Nothing in the repository is written: every build runs in a copy of the tracked
files and the untracked ones git does not ignore (so uncommitted work is checked
too), without .venv, build products or compiled kernels. The folder is made when
a stage first needs it, shared by the stages of one nox run (objdump's build is
reused by nehalem), and removed when the run ends; ``PORTABILITY_KEEP=1`` keeps it
(its path is printed).
"""

import atexit
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from noxutil.stages import ROOT

_at_exit = []


@cache
def work():
    """The run's temporary folder (made at the first call)."""
    folder = Path(tempfile.mkdtemp(prefix="convlab-portability.",
                                   dir=os.environ.get("TMPDIR") or None))
    atexit.register(_clean_up, folder)
    return folder


def at_exit(function):
    """Call ``function()`` when the run ends, before the folder is removed."""
    work()  # the clean-up that calls it is registered with the folder
    _at_exit.append(function)


def _clean_up(folder):
    for function in reversed(_at_exit):
        function()
    if os.environ.get("PORTABILITY_KEEP", "0") == "1":
        print(f"(kept {folder})", flush=True)
    else:
        shutil.rmtree(folder, ignore_errors=True)


@cache
def sources():
    """``work()/src``: the copy of the sources (made at the first call)."""
    copy = work() / "src"
    copy.mkdir()
    if _in_git_work_tree():
        listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"],
                                cwd=ROOT, capture_output=True, check=True).stdout
        for name in filter(None, listed.decode().split("\0")):
            _copy(ROOT / name, copy / name)
    else:
        shutil.copytree(ROOT, copy, dirs_exist_ok=True, symlinks=True,
                        ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.so"))
    for path in (copy / "src").rglob("*"):
        if path.suffix == ".so" or (path.suffix == ".c" and "_fast" in path.parts):
            path.unlink()
    return copy


def _in_git_work_tree():
    return subprocess.run(["git", "-C", ROOT, "rev-parse", "--is-inside-work-tree"],
                          capture_output=True).returncode == 0


def _copy(source, destination):
    """Copy one listed file (a deleted but still tracked file is left out)."""
    if not source.is_symlink() and not source.exists():
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, destination, follow_symlinks=False)
