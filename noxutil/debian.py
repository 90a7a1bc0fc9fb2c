"""The Debian packages of the test stages, from ``scripts/debian-packages.txt``.

``stage_packages(*stages)`` lists what some stages need; ``install_packages(*stages)``
installs the missing ones with ``apt-get install --no-install-recommends`` (as root,
or through ``sudo -n``), printing what it installs, then checks every one with
``dpkg -s``. Nothing else in the stages installs a Debian package
(``tests/test_debian_packages.py`` checks it, importing this module, which needs
nothing but Python).
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

LIST = Path(__file__).resolve().parents[1] / "scripts" / "debian-packages.txt"


class PackagesMissing(Exception):
    """A stage's Debian packages are not all installed (and could not be)."""


def read_list(path=LIST):
    """``{stage: {"packages": [...], "needs": [...]}}`` from the package list."""
    stages = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) < 3 or words[1] not in ("packages", "needs"):
            raise ValueError(f"{path}:{number}: expected 'STAGE packages|needs ITEM...'")
        stage = stages.setdefault(words[0], {"packages": [], "needs": []})
        stage[words[1]].extend(words[2:])
    return stages


def stage_packages(*stages, path=LIST):
    """The packages ``stages`` need, each once, in the list's order.

    Raises ``ValueError`` naming a stage the list has no packages for.
    """
    listed = read_list(path)
    for stage in stages:
        if not listed.get(stage, {}).get("packages"):
            raise ValueError(f"{path} names no packages for the stage '{stage}'")
    return list(dict.fromkeys(p for stage in stages for p in listed[stage]["packages"]))


def installed(package):
    """Whether dpkg has ``package`` installed."""
    run = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                         capture_output=True, text=True)
    return run.returncode == 0 and "install ok installed" in run.stdout


def install_packages(*stages):
    """Install the missing packages of ``stages`` and check them all.

    Raises ``PackagesMissing`` with a message naming the packages when one is still
    missing (no dpkg, no root and no ``sudo -n``, apt-get failed).
    """
    packages = stage_packages(*stages)
    names = " ".join(stages)
    if not shutil.which("dpkg-query"):
        raise PackagesMissing(f"no dpkg-query: the stages {names} need Debian packages "
                              f"({' '.join(packages)}); install their equivalents by hand")
    missing = [p for p in packages if not installed(p)]
    if missing:
        _apt_get_install(missing, names)
    for package in packages:
        dpkg = subprocess.run(["dpkg", "-s", package], capture_output=True)
        if dpkg.returncode != 0 or not installed(package):
            raise PackagesMissing(f"Debian package {package} (needed by {names}) "
                                  "is not installed after apt-get install")


def _apt_get_install(missing, names):
    """``apt-get update`` and ``apt-get install`` ``missing`` (root, or ``sudo -n``)."""
    sudo = []
    if os.geteuid() != 0:
        if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"],
                                                   capture_output=True).returncode == 0:
            sudo = ["sudo", "-n"]
        else:
            raise PackagesMissing(f"missing Debian packages for {names}: {' '.join(missing)}; "
                                  f"run 'sudo apt-get install {' '.join(missing)}'")
    print(f"== apt-get install --no-install-recommends {' '.join(missing)} (for {names})", flush=True)
    apt = [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
    with tempfile.TemporaryFile(mode="w+") as log:
        for command in ([*apt, "update", "-qq"],
                        [*apt, "install", "-y", "-qq", "--no-install-recommends", *missing]):
            if subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
                log.seek(0)
                print(log.read(), end="", flush=True)
                raise PackagesMissing(f"apt-get install {' '.join(missing)} failed (log above)")
