"""The test scripts name every Debian package they use.

``scripts/debian-packages.txt`` lists, per stage of ``scripts/test.sh``, the
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
``scripts/test.sh`` runs these tests again after the portability stages have
installed their packages.
"""

import glob
import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIST = ROOT / "scripts" / "debian-packages.txt"
PORTABILITY = ROOT / "scripts" / "check-portability.sh"


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


def portability_stages():
    """The stage names of check-portability.sh (its STAGES array)."""
    match = re.search(r"^STAGES=\(([^)]*)\)", PORTABILITY.read_text(), re.M)
    return match.group(1).split()


def test_every_stage_has_packages_and_needs():
    for name, stage in STAGES.items():
        assert stage["packages"], f"{name}: no packages"
        assert stage["needs"], f"{name}: no files it needs: the list cannot be checked"


def test_every_portability_stage_and_the_browser_are_listed():
    missing = (set(portability_stages()) | {"browser"}) - set(STAGES)
    assert not missing, f"stages without a package list: {sorted(missing)}"


def test_the_test_script_installs_the_browser_and_the_kit_packages():
    # the course kit grades student code inside bubblewrap (convlab.instructor.isolation)
    installs = set(re.findall(r"^\s*(?:if\s+)?install_packages\s+([\w-]+)",
                              (ROOT / "scripts" / "test.sh").read_text(), re.M))
    assert {"browser", "kit"} <= installs, f"test.sh installs only {sorted(installs)}"
    assert installs <= set(STAGES), f"not in the list: {sorted(installs - set(STAGES))}"


def test_scripts_install_only_through_the_list():
    # a package installed anywhere else would escape these tests
    for script in (ROOT / "scripts").rglob("*.sh"):
        if script.name == "debian-packages.sh":
            continue
        code = "\n".join(line for line in script.read_text().splitlines()
                         if not line.lstrip().startswith("#"))
        assert not re.search(r"apt-get\s+install", code), (
            f"{script.name} runs apt-get install itself: use install_packages STAGE")
        for call in re.findall(r"^\s*need_packages\b(?!\(\))(.*)$", code, re.M):
            assert not call.strip(), (
                f"{script.name}: need_packages takes its packages from the list, not '{call.strip()}'")


def test_install_packages_refuses_an_unknown_stage():
    run = subprocess.run(
        ["bash", "-c", f'source "{ROOT}/scripts/debian-packages.sh"; stage_packages no-such-stage'],
        capture_output=True, text=True)
    assert run.returncode == 2
    assert "no-such-stage" in run.stderr


def test_stage_packages_prints_each_package_once():
    run = subprocess.run(
        ["bash", "-c", f'source "{ROOT}/scripts/debian-packages.sh"; stage_packages openmp-off sanitize'],
        capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["gcc", "libc6-dev"]


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
