"""The aarch64-qemu stage: the package builds and passes the fast-layer tests on aarch64.

A Debian 12 arm64 root file system (its gcc, Python 3.11, NumPy and Cython), every
aarch64 process run by qemu-user through binfmt_misc (the build starts compilers,
so explicit qemu calls would not do). The root is made and entered by the bash
scripts in ``scripts/portability/`` (``arm64-rootfs.sh``, ``in-arm64-root.sh``: a
chroot in a private mount namespace); this module registers the emulator, copies
the sources in, and caches the emulated build.

Not in the default run: ~29 min from nothing (mmdebstrap ~13 min, the root's venv
~5, the emulated -O3 build ~10-18, tests ~1.5), ~1.5 min with everything cached.

Environment:
  CONVLAB_ARM64_ROOT   cache of the root file system
                       (default ${XDG_CACHE_HOME:-$HOME/.cache}/convlab/arm64-root)
  PORTABILITY_NO_BUILD_CACHE=1  rebuild even if the sources did not change
"""

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from noxutil.builds import log, run
from noxutil.portability import emulated_pytest_args, need_packages
from noxutil.stages import ROOT, VPY, capture, closing_line, fail, skip
from noxutil.workspace import at_exit, sources, work

SCRIPTS = ROOT / "scripts" / "portability"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
WHY_NOT_BY_DEFAULT = "~30 min from nothing, ~1.5 min cached; nox -s aarch64-qemu runs it"


def root_file_system():
    """Where the arm64 root is cached."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(os.environ.get("CONVLAB_ARM64_ROOT") or Path(cache) / "convlab" / "arm64-root")


def aarch64_qemu():
    """Make the root (or reuse it), copy the sources in, build and test there."""
    if os.geteuid() != 0:
        skip("needs root (chroot, binfmt_misc)")
    need_packages("aarch64-qemu")
    register_emulator()
    root = root_file_system()
    start = time.monotonic()
    # The root's venv gets the NumPy and Cython versions of the project's venv.
    numpy = capture([VPY, "-c", "import numpy; print(numpy.__version__)"])
    cython = capture([VPY, "-c", "import Cython; print(Cython.__version__)"])
    if run([SCRIPTS / "arm64-rootfs.sh", root, f"numpy=={numpy}", f"Cython=={cython}",
            "setuptools", "pytest", "hypothesis", "threadpoolctl"])[0] != 0:
        fail("could not build the arm64 root file system (see above)")
    log(f"root file system ready in {round(time.monotonic() - start)} s: {root}")

    inner = f"/tmp/convlab-portability-{os.getpid()}"
    copy = Path(f"{root}{inner}")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(sources(), copy, symlinks=True)
    try:
        return build_and_test(root, inner, copy)
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def build_and_test(root, inner, copy):
    """Build in the copy ``root/inner`` (or reuse a cached build) and run the tests there.

    The emulated -O3 build takes long (10-18 min here): its .so files are kept beside
    the root, keyed by the sources and the root's stamps, and reused while neither
    changes (PORTABILITY_NO_BUILD_CACHE=1: always build).
    """
    cache = Path(f"{root}.build-cache") / build_key(root)
    fast = copy / "src" / "convlab" / "_fast"
    prebuilt = os.environ.get("PORTABILITY_NO_BUILD_CACHE", "0") != "1" and any(cache.glob("*.so"))
    if prebuilt:
        for so in cache.glob("*.so"):
            shutil.copy2(so, fast)
        (copy / ".convlab-prebuilt").touch()
        log(f"reusing the arm64 build in {cache}")
    start = time.monotonic()
    status, output = run([SCRIPTS / "in-arm64-root.sh", root, inner, *emulated_pytest_args()],
                         log=work() / "arm64.log")
    built = [line for line in output.splitlines() if line.startswith("arm64: built")]
    if not built:
        fail(f"the build under aarch64 emulation failed (exit {status})")
    if not prebuilt:
        shutil.rmtree(cache.parent, ignore_errors=True)
        cache.mkdir(parents=True)
        for so in fast.glob("*.so"):
            shutil.copy2(so, cache)
    summary = closing_line(output) or "no summary"
    if status != 0:
        fail(f"pytest on aarch64 (emulated): exit {status}, {summary}")
    seconds = round(time.monotonic() - start)
    return f"{built[-1].removeprefix('arm64: ')}; {summary} (build+tests {seconds} s)"


def build_key(root):
    """16 hex digits naming the build: the sources that decide it and the root's stamps.

    The digest of ``sha256sum`` lines of setup.py, pyproject.toml and
    src/convlab/_fast/*, in byte order, followed by the stamps' text (the key the
    bash version of this stage used, so that its cached builds are still found).
    """
    src = sources()
    files = [src / "setup.py", src / "pyproject.toml",
             *(p for p in (src / "src" / "convlab" / "_fast").rglob("*") if p.is_file())]
    listing = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(src)}\n"
                      for p in sorted(files, key=lambda p: str(p.relative_to(src)).encode()))
    stamps = b"".join(s.read_bytes() for s in sorted(root.glob(".convlab-*-stamp")))
    return hashlib.sha256(listing.encode() + stamps).hexdigest()[:16]


def register_emulator():
    """Register qemu-aarch64 with binfmt_misc (removed again when the run ends), or skip.

    The F flag of Debian's registration opens the interpreter now, so it also works
    inside the chroot.
    """
    if not (BINFMT / "register").exists():
        mount = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", BINFMT],
                               capture_output=True, text=True)
        if mount.returncode != 0:
            skip(f"binfmt_misc is not available: mount: {mount.stderr.strip()}")
    handler = BINFMT / "qemu-aarch64"
    if not handler.exists():
        conf = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
        if not conf.is_file():
            skip(f"no {conf} from qemu-user-static")
        try:
            (BINFMT / "register").write_text(conf.read_text())
        except OSError as error:
            skip(f"cannot register qemu-aarch64 with binfmt_misc: {error}")
        at_exit(unregister_emulator)
        log("registered qemu-aarch64 with binfmt_misc (removed again at exit)")
    if not re.search(r"\benabled\b", handler.read_text()):
        skip("the qemu-aarch64 binfmt handler is disabled")


def unregister_emulator():
    handler = BINFMT / "qemu-aarch64"
    if handler.exists():
        try:
            handler.write_text("-1")
        except OSError:
            pass
