"""The extension built with ``setup.py`` in the copy of the sources, and runs against it.

``build(name, env)`` builds the whole package (pure Python and the kernels' .so
files) with the venv's python and these environment settings (``CC=clang``,
``CONVLAB_OPENMP=0``, ...) into ``work()/name/lib``; the commands here run from the
copy of the sources with ``PYTHONPATH`` on that folder, so that ``import convlab``
finds the build, not the repository's in-place one.
"""

import os

from noxutil import stages
from noxutil.stages import VPY, echo, fail
from noxutil.workspace import sources, work

JOBS = str(os.cpu_count() or 1)
FAST_LAYER_TESTS = "tests/test_fast_layers.py"
QUIET_PYTHON = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1",
                "PYTHONDONTWRITEBYTECODE": "1"}
"""Set for every command of the portability stages."""

_built = {}


def run(command, *, env=QUIET_PYTHON, **options):
    """``stages.run`` with QUIET_PYTHON as the environment added unless ``env`` is given."""
    return stages.run(command, env=env, **options)


def run_or_fail(command, failure, **options):
    """``run`` that ends the stage with ``fail(failure)`` if ``command`` fails."""
    status, output = run(command, **options)
    if status != 0:
        fail(f"{failure} (exit {status})")
    return output


def log(text):
    echo(f"-- {text}")


def build(name, env=None, *, quiet=False):
    """Build the package with ``env`` into ``work()/name/lib`` once per run; return that folder.

    The build's output goes to ``work()/name.log``, whose last 40 lines are shown
    if it fails. ``quiet``: ``setup.py -q``.
    """
    if name in _built:
        return _built[name]
    env = env or {}
    lib = work() / name / "lib"
    settings = " ".join(f"{k}={v}" for k, v in env.items()) or "the default settings"
    log(f"building with {settings} (setup.py build, -j {JOBS}) into {lib}")
    command = [VPY, "setup.py", *(["-q"] if quiet else []), "build",
               "--build-base", work() / name, "--build-lib", lib, "-j", JOBS]
    status, output = run(command, env={**QUIET_PYTHON, **env}, cwd=sources(), show=False,
                         log=work() / f"{name}.log")
    if status != 0:
        echo("\n".join(output.splitlines()[-40:]))
        fail(f"setup.py build with {settings} failed")
    if not list((lib / "convlab" / "_fast").glob("*.so")):
        fail(f"setup.py build with {settings} produced no convlab/_fast/*.so")
    _built[name] = lib
    return lib


def build_log(name):
    """The output of ``build(name, ...)``."""
    return (work() / f"{name}.log").read_text()


def against(lib, extra=None):
    """The environment that makes ``python`` import convlab from the build ``lib``."""
    return {**QUIET_PYTHON, "PYTHONPATH": str(lib), **(extra or {})}


def info(lib, env=None):
    """``python -m convlab.info`` of the build ``lib`` (with ``env`` added), shown and returned."""
    status, output = run([VPY, "-m", "convlab.info"], env=against(lib, env), cwd=sources())
    if status != 0:
        fail(f"python -m convlab.info failed against {lib} (exit {status})")
    return output


def venv_can_build():
    """Fail unless the venv's python can import what building the extension needs."""
    status, _ = run([VPY, "-c", "import Cython, numpy, setuptools"], show=False)
    if status != 0:
        fail(f"{VPY} cannot import Cython, numpy and setuptools (needed to build the extension)")

