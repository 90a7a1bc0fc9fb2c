"""Every test of convlab, in stages: ``nox`` runs them all, ``nox -s clang`` one.

``bash scripts/test.sh`` sets up ``.venv`` (scripts/setup-env.sh, which installs nox
with the ``test`` extra) and runs ``nox``; afterwards ``.venv/bin/nox -s NAME`` runs a
stage alone and ``nox -l`` lists them. The stages use that one venv (no virtual
environment of their own). In the order of the default run:

  unit            pytest tests/
  portable        the same with the kernels' portable vector code (CONVLAB_SIMD=portable)
  pytorch         the tests marked pytorch (PyTorch as a second oracle), torch installed first
  notebooks       every chapter re-executed and compared (nbval), CONVLAB_CHECK_MARGINS=1
  numerics        the chapters again under other CPUs' rounding (tests/numerics)
  load            chapter 3 while two processes burn CPU (tests/load), CONVLAB_CHECK_MARGINS=1
  html            jupyter-book build, warnings as errors
  browser         the built pages in headless Chromium (not run when html failed)
  kit             the course kit's round trip (tests/kit), in bubblewrap's sandbox
  openmp-off, clang, sanitize, avx512-on-avx2, objdump, nehalem, aarch64-cross,
  [aarch64-qemu,] wheel
                  the portability checks of the kernels (noxutil/portability.py says what
                  each proves); aarch64-qemu only with -s
  package_lists   tests/test_debian_packages.py, after the stages installed their packages

Every stage runs even if an earlier one failed; the run ends with a summary (one line
per stage, then ``total: N passed, M failed, K skipped``) and fails if any stage failed,
including a pytest run that collected no tests. Arguments after ``--`` replace the test
paths of a pytest stage: ``nox -s unit -- -x -q tests/test_layering.py``.

Environment: CONVLAB_DATA (CIFAR-10, see README.md), CONVLAB_VENV (default .venv),
CONVLAB_CACHE_DIR (set by this file: the SIMD calibration's cache, a temporary directory),
CONVLAB_CHROMIUM (a browser instead of Debian's chromium, which the browser stage
installs), CONVLAB_PORTABILITY=0 (the default run leaves out the portability checks
and package_lists), CONVLAB_ARM64_ROOT and PORTABILITY_* (see noxutil/portability.py
and noxutil/arm64.py). Debian packages come from scripts/debian-packages.txt.
"""

import atexit
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # nox does not put it there

from noxutil import arm64, portability, wheels
from noxutil.debian import PackagesMissing, install_packages
from noxutil.stages import (ROOT, VENV, VPY, echo, fail, pytest, run, shell_words, skip, stage,
                            status_of)

# Hermetic: the kernels' SIMD calibration (convlab.fast_layers.calibration) caches its
# choice in a directory of this run, shared by the stages that do not make their own
# (the notebooks, the HTML build), never in the user's ~/.cache; tests/conftest.py gives
# every pytest session under tests/ a directory of its own.
_CALIBRATION_CACHE = tempfile.mkdtemp(prefix="convlab-nox-cache-")
os.environ["CONVLAB_CACHE_DIR"] = _CALIBRATION_CACHE
os.environ.pop("_CONVLAB_SIMD_DECIDED", None)
atexit.register(shutil.rmtree, _CALIBRATION_CACHE, ignore_errors=True)

PORTABILITY = os.environ.get("CONVLAB_PORTABILITY", "1") != "0"
NOT_WITHOUT_PORTABILITY = None if PORTABILITY else "CONVLAB_PORTABILITY=0"


def _chromium_knob():
    """Stop at once, before any stage, if CONVLAB_CHROMIUM names no executable."""
    chromium = os.environ.get("CONVLAB_CHROMIUM")
    if chromium and not os.access(chromium, os.X_OK):
        print(f"error: CONVLAB_CHROMIUM={chromium} is not an executable", file=sys.stderr)
        sys.exit(2)


_chromium_knob()


@stage("unit")
def unit(session):
    """pytest tests/ (the fast-layer tests once per SIMD path of the kernels)."""
    return pytest(session.posargs or ["tests/"])


@stage("portable")
def portable(session):
    """The unit tests again with the kernels' portable vector code (CONVLAB_SIMD=portable)."""
    # instead of the fastest path (AVX2 here); the sweep tests orchestrate processes
    # (their trainer is a stand-in) and run once
    return pytest([*(session.posargs or ["tests/"]), "-p", "no:cacheprovider",
                   "--ignore=tests/test_sweep.py", "--ignore=tests/test_debian_packages.py"],
                  env={"CONVLAB_SIMD": "portable"})


#: PyTorch, a second oracle for the tests that compare with it; never a dependency of convlab
TORCH = "torch==2.13.0"


@stage("pytorch")
def pytorch(session):
    """The tests that compare with PyTorch, after installing it into the venv."""
    # the unit stages skip them where torch is missing; here a missing torch fails them
    # (CONVLAB_REQUIRE_TORCH=1), unless it cannot be installed on this machine at all
    status, output = run([VPY, "-m", "pip", "install", "--quiet", TORCH], show=False)
    if status != 0:
        skip(f"{TORCH} could not be installed here: {output.strip().splitlines()[-1:]}")
    return pytest(session.posargs or ["-m", "pytorch", "tests/"], env={"CONVLAB_REQUIRE_TORCH": "1"})


@stage("notebooks")
def notebooks(session):
    """Every chapter re-executed and compared with its stored outputs (nbval)."""
    # CONVLAB_CHECK_MARGINS=1: a printed figure too close to where it would print
    # differently on another CPU fails (convlab.checks.margin_problem)
    return pytest(["--nbval", "--nbval-current-env", *(session.posargs or ["book/"])],
                  env={"CONVLAB_CHECK_MARGINS": "1"})


@stage("numerics")
def numerics(session):
    """The chapters again under other processors' rounding (tests/numerics)."""
    return pytest([*(session.posargs or ["tests/numerics"]), "-p", "no:cacheprovider"])


@stage("load")
def load(session):
    """Chapter 3 again while two processes keep every core busy (tests/load)."""
    return pytest(session.posargs or ["tests/load"], env={"CONVLAB_CHECK_MARGINS": "1"})


@stage("html")
def html(session):
    """The HTML build (jupyter-book), warnings as errors."""
    command = [VENV / "bin" / "jupyter-book", "build", "--all", ".", "-W", "--keep-going", "--quiet"]
    echo(f"== {shell_words(command)}")
    status, _ = run(command)
    if status != 0:
        fail(f"exit code {status}")


@stage("browser")
def browser(session):
    """Every built page in headless Chromium (tests/browser)."""
    if status_of("html") == "FAILED":
        fail("not run, the HTML build failed")
    if not os.environ.get("CONVLAB_CHROMIUM"):
        _install_or_fail("browser")
    return pytest(session.posargs or ["tests/browser"])


@stage("kit")
def kit(session):
    """The course kit's round trip (tests/kit), student code in bubblewrap's sandbox."""
    if not (ROOT / "src" / "convlab" / "instructor").is_dir():
        skip("no src/convlab/instructor (a student's copy)")
    # the kit grades student code inside bubblewrap's sandbox; CONVLAB_ISOLATION=bwrap:
    # a sandbox that does not start is an error here, not a quiet fallback
    _install_or_fail("kit")
    return pytest([*(session.posargs or ["tests/kit"]), "-p", "no:cacheprovider"],
                  env={"CONVLAB_ISOLATION": "bwrap"})


def _install_or_fail(stage_name):
    try:
        install_packages(stage_name)
    except PackagesMissing as error:
        fail(f"not run, its Debian packages are missing: {error}")


@stage("openmp-off", off_by_default=NOT_WITHOUT_PORTABILITY)
def openmp_off(session):
    """Kernels built with CONVLAB_OPENMP=0 pass the fast-layer tests on one thread."""
    return portability.openmp_off()


@stage("clang", off_by_default=NOT_WITHOUT_PORTABILITY)
def clang(session):
    """Kernels built with clang and no OpenMP runtime: one warning, tests pass."""
    return portability.clang()


@stage("sanitize", off_by_default=NOT_WITHOUT_PORTABILITY)
def sanitize(session):
    """Kernels built with -fsanitize=address,undefined: no report in their tests."""
    return portability.sanitize()


@stage("avx512-on-avx2", off_by_default=NOT_WITHOUT_PORTABILITY)
def avx512_on_avx2(session):
    """The avx512 path compiled for AVX2 passes its tests, bit for bit as AVX2."""
    return portability.avx512_on_avx2()


@stage("objdump", off_by_default=NOT_WITHOUT_PORTABILITY)
def objdump(session):
    """No AVX instruction outside functions named *avx2* or *avx512*."""
    return portability.objdump()


@stage("nehalem", off_by_default=NOT_WITHOUT_PORTABILITY)
def nehalem(session):
    """The fast-layer tests pass under qemu-x86_64 -cpu Nehalem (no AVX)."""
    return portability.nehalem()


@stage("aarch64-cross", off_by_default=NOT_WITHOUT_PORTABILITY)
def aarch64_cross(session):
    """Every kernel module compiles for aarch64, with and without OpenMP."""
    return portability.aarch64_cross()


@stage("aarch64-qemu", off_by_default=arm64.WHY_NOT_BY_DEFAULT)
def aarch64_qemu(session):
    """Built and tested in a Debian arm64 root under qemu-user (slow; root)."""
    return arm64.aarch64_qemu()


@stage("wheel", off_by_default=NOT_WITHOUT_PORTABILITY)
def wheel(session):
    """A manylinux wheel (build, auditwheel) passes the tests installed in a fresh venv."""
    return wheels.wheel()


@stage("package_lists", off_by_default=NOT_WITHOUT_PORTABILITY)
def package_lists(session):
    """Every file a stage uses comes from its packages in debian-packages.txt."""
    # the stages above installed their Debian packages: check the lists against them
    return pytest([*(session.posargs or ["tests/test_debian_packages.py"]), "-p", "no:cacheprovider"])

