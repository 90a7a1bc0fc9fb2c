"""The test stages name every Debian package they use.

``scripts/debian-packages.txt`` lists, per stage of ``noxfile.py``, the
packages to install (with ``--no-install-recommends``, so nothing comes along
that is not named or depended on) and the files the stage uses from them.
A machine where a package arrived by other means (a Recommends of an earlier
install, a package installed by hand) passes a stage that a fresh machine
fails. These tests catch that here: each file a stage uses must belong to a
package in the stage's list or in what that list Depends on (never what it
only Recommends), and every stage that installs packages must be in the list.

The ownership checks need Debian's ``dpkg`` and ``apt-cache``. A stage whose
packages are not all installed here (it never ran on this machine) is
skipped; once they are, every file the stage needs must be there.
``nox``'s stage ``package_lists`` runs these tests again after the portability
stages have installed their packages.
"""

import glob
import importlib.util
import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIST = ROOT / "scripts" / "debian-packages.txt"
NOXFILE = ROOT / "noxfile.py"
HELPERS = ROOT / "noxutil"
# the stages that install no Debian package: they run the project's venv only
NO_PACKAGES = {"unit", "portable", "pytorch", "notebooks", "numerics", "load", "html", "package_lists"}


def read_list(path=LIST):
    """``{stage: {"packages": [...], "needs": [...]}}`` from the package list."""
    stages = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].split()
        if not line:
            continue
        if len(line) < 3 or line[1] not in ("packages", "needs"):
            raise ValueError(f"{path}:{number}: expected 'STAGE packages|needs ITEM...'")
        stage = stages.setdefault(line[0], {"packages": [], "needs": []})
        stage[line[1]].extend(line[2:])
    return stages


STAGES = read_list()
STAGE_NAMES = sorted(STAGES)


def debian_module():
    """``noxutil/debian.py``, the stages' installer (it imports nothing of nox's)."""
    spec = importlib.util.spec_from_file_location("noxutil_debian", HELPERS / "debian.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nox_stages():
    """The stage names ``noxfile.py`` declares (``@stage("NAME"...)``)."""
    return re.findall(r'^@stage\("([^"]+)"', NOXFILE.read_text(), re.M)


def stage_code():
    """``{file name: its code without comments}`` of the noxfile and its helpers."""
    files = [NOXFILE, *sorted(HELPERS.glob("*.py")), *sorted((ROOT / "scripts").rglob("*.sh"))]
    return {f.name: "\n".join(line for line in f.read_text().splitlines()
                               if not line.lstrip().startswith("#"))
            for f in files}


def installed_by_the_stages():
    """The stage names the noxfile and its helpers install packages for."""
    calls = r'(?:need_packages|install_packages|_install_or_fail)\(\s*"([\w-]+)"\s*\)'
    return {name for code in stage_code().values() for name in re.findall(calls, code)}


def test_every_stage_has_packages_and_needs():
    for name, stage in STAGES.items():
        assert stage["packages"], f"{name}: no packages"
        assert stage["needs"], f"{name}: no files it needs: the list cannot be checked"


def test_every_stage_but_the_venv_ones_installs_its_listed_packages():
    declared = set(nox_stages())
    assert NO_PACKAGES < declared, f"not stages of the noxfile: {sorted(NO_PACKAGES - declared)}"
    installs = installed_by_the_stages()
    assert {"browser", "kit"} <= installs, f"the stages install only {sorted(installs)}"
    assert declared - NO_PACKAGES == installs, (
        f"stages that install no packages: {sorted(declared - NO_PACKAGES - installs)}; "
        f"installs for no stage: {sorted(installs - declared)}")
    missing = installs - set(STAGES)
    assert not missing, f"stages without a package list: {sorted(missing)}"


def test_scripts_install_only_through_the_list():
    # a package installed anywhere else would escape these tests
    for name, code in stage_code().items():
        if name == "debian.py":
            continue
        assert not re.search(r"apt-get\W+install", code), (
            f"{name} runs apt-get install itself: use need_packages(STAGE)")
        for call in re.findall(r"(?<!def )\b(?:need_packages|install_packages)\(([^)]*)\)", code):
            # a stage's name (a literal, or a helper's parameter), never package names
            call = call.strip()
            assert re.fullmatch(r'"[\w-]+"|[a-z_]+', call), (
                f"{name}: the packages come from the list, for one stage named there, not '{call}'")
            assert not call.startswith('"') or call.strip('"') in STAGES, (
                f"{name}: {call} is not a stage of {LIST.relative_to(ROOT)}")


def test_install_packages_refuses_an_unknown_stage():
    with pytest.raises(ValueError, match="no-such-stage"):
        debian_module().stage_packages("no-such-stage")


def test_stage_packages_lists_each_package_once():
    assert debian_module().stage_packages("openmp-off", "sanitize") == ["gcc", "libc6-dev"]


def test_the_installer_reads_the_list_as_these_tests_do():
    assert debian_module().read_list() == STAGES


# ---------------------------------------------------------------- ownership

def _have_debian_tools():
    return shutil.which("dpkg") and shutil.which("apt-cache")


@lru_cache(maxsize=None)
def depends_closure(packages):
    """Every package that installing ``packages`` without Recommends brings."""
    run = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
         "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *packages],
        capture_output=True, text=True, check=True)
    closure = set()
    for line in run.stdout.splitlines():
        line = line.strip()
        if line.startswith(("Depends:", "PreDepends:", "|Depends:", "|PreDepends:")):
            line = line.split(":", 1)[1].strip()
        if line and not line.startswith("<"):
            closure.add(line.split(":")[0])  # drop ":amd64"
    return closure


def owner(path):
    """The Debian package that installed ``path`` (dpkg -S), following symlinks."""
    for candidate in dict.fromkeys([path, os.path.realpath(path)]):
        run = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if run.returncode == 0:
            return run.stdout.splitlines()[0].split(":")[0].split(",")[0].strip()
    return None


def installed(package):
    run = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                         capture_output=True, text=True)
    return run.returncode == 0 and "install ok installed" in run.stdout


@pytest.mark.skipif(not _have_debian_tools(), reason="needs Debian's dpkg and apt-cache")
@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_every_file_a_stage_needs_comes_from_its_packages(stage):
    packages = STAGES[stage]["packages"]
    missing = [p for p in packages if not installed(p)]
    if missing:
        pytest.skip(f"{stage}: its packages are not installed here: {missing}")
    closure = depends_closure(tuple(packages))
    for pattern in STAGES[stage]["needs"]:
        paths = glob.glob(pattern)
        assert paths, (
            f"{stage}: {pattern} is missing although {' '.join(packages)} are installed: "
            f"a package that brings it is missing from {LIST.relative_to(ROOT)}")
        for path in paths:
            package = owner(path)
            assert package is not None, f"{stage}: no Debian package owns {path}"
            assert package in closure, (
                f"{stage}: {path} comes from {package}, which the stage's packages "
                f"({' '.join(packages)}) do not depend on: add it to "
                f"{LIST.relative_to(ROOT)}")


def test_the_check_catches_a_recommends_only_package(tmp_path):
    # the failure that happened: gcc-aarch64-linux-gnu only Recommends the
    # arm64 C library headers, so a list without libc6-dev-arm64-cross is wrong
    if not _have_debian_tools():
        pytest.skip("needs Debian's dpkg and apt-cache")
    closure = depends_closure(("gcc-aarch64-linux-gnu",))
    if not closure:
        pytest.skip("apt has no package lists here (apt-get update)")
    assert "libc6-dev-arm64-cross" not in closure
    assert "libc6-dev-arm64-cross" in depends_closure(
        tuple(STAGES["aarch64-cross"]["packages"]))
