"""What each portability stage builds and checks: the compiled kernels are portable.

They run on x86-64 CPUs without AVX, compile with other compilers and without
OpenMP, compile for aarch64 and pass the fast-layer tests there, and the wheel is
a self-contained manylinux wheel (``noxutil.wheels``). One function per stage; each installs the Debian
packages ``scripts/debian-packages.txt`` lists for it, returns the stage's one-line
detail, and ends with ``fail(detail)`` or ``skip(reason)``. The aarch64 run under
emulation is in ``noxutil.arm64``, the wheel in ``noxutil.wheels``.

Environment:
  PORTABILITY_KEEP=1       keep the temporary folder (its path is printed)
  PORTABILITY_PYTEST_ARGS  extra pytest arguments for the emulated runs
  PORTABILITY_EMULATED_K   pytest -k for the emulated runs (default: none, the whole
                           of tests/test_fast_layers.py). Under emulation the tests run
                           ~10x slower than natively (~80 s under -cpu Nehalem and on
                           aarch64 here); to trim them, e.g.
                           PORTABILITY_EMULATED_K='not one_and_two_threads and not x_shape5' (~40 s).

Measured on the 2-core machine (at times busy with other builds): objdump 2.5-4 min
(mostly the build, which nehalem reuses), nehalem 1.5-2 min, aarch64-cross 1.5-3 min,
wheel 2-5 min: the default run's variants 7-8 min. sanitize: 10 min with the machine at
load 7-12 (the -O1 build 6 min, the tests 3.5 min), 3.2 min of CPU time. avx512-on-avx2:
2.5 min on a quiet machine (the build 2 min, the tests 35 s).
"""

import os
import re
import shlex
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from noxutil import debian
from noxutil.builds import (FAST_LAYER_TESTS, JOBS, against, build, build_log, info, log, run,
                            venv_can_build)
from noxutil.stages import ROOT, VPY, capture, closing_line, echo, fail, skip
from noxutil.workspace import sources, work

CHECK_ISA = ROOT / "scripts" / "portability" / "check_isa.py"


def need_packages(stage):
    """Install the Debian packages of ``stage`` (missing ones only), or fail."""
    try:
        debian.install_packages(stage)
    except debian.PackagesMissing as error:
        packages = " ".join(debian.stage_packages(stage))
        fail(f"the Debian packages of the {stage} stage are missing ({packages}): {error}")


def emulated_pytest_args():
    """The test file, ``-k PORTABILITY_EMULATED_K`` and ``PORTABILITY_PYTEST_ARGS``."""
    args = [FAST_LAYER_TESTS]
    if os.environ.get("PORTABILITY_EMULATED_K"):
        args += ["-k", os.environ["PORTABILITY_EMULATED_K"]]
    return args + shlex.split(os.environ.get("PORTABILITY_PYTEST_ARGS", ""))


def pytest_against(name, lib, args, *, env=None, prefix=(), show_all=False):
    """Run pytest (``-p no:cacheprovider -q ARGS``) against the build ``lib``.

    ``prefix``: a command that runs the python (an emulator). Shows the output
    (all of it, or its last 3 lines), keeps it in ``work()/NAME-pytest.log``, and
    returns ``(exit status, closing line)``.
    """
    command = [*prefix, VPY, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]
    status, output = run(command, env=against(lib, env), cwd=sources(), show=show_all,
                         log=work() / f"{name}-pytest.log")
    if not show_all:
        echo("\n".join(output.splitlines()[-3:]))
    return status, closing_line(output) or "no summary"


def killed_by_sigill(status):
    """Whether an exit status is SIGILL's (illegal instruction): -4, or 132 from a shell."""
    return status in (-signal.SIGILL, 128 + signal.SIGILL)


# ---------------------------------------------------------------- variant builds

def tested_variant(name, env):
    """Build with ``env``, show its OpenMP lines and ``convlab.info``, require OpenMP off,
    and run the fast-layer and SIMD tests against it on this CPU.

    Returns ``(the build's OpenMP lines, its convlab.info, pytest's closing line)``.
    """
    lib = build(name, env)
    omp = "\n".join(line for line in build_log(name).splitlines()
                    if re.search(r"warning: OpenMP|compiling the kernels", line))
    echo(omp)
    about = info(lib)
    if "OpenMP:    off" not in about:
        state = next((line for line in about.splitlines() if "OpenMP:" in line), "")
        fail(f"the {name} build has OpenMP on: {state}")
    status, summary = pytest_against(name, lib, [FAST_LAYER_TESTS, "tests/test_simd.py"])
    if status != 0:
        fail(f"pytest against the {name} build: exit {status}, {summary}")
    return omp, about, summary


def openmp_off():
    """CONVLAB_OPENMP=0 gives kernels that need no OpenMP runtime at all
    (omp_compat.h stands in for omp_get_max_threads) and run on one thread."""
    need_packages("openmp-off")
    _, _, summary = tested_variant("openmp-off", {"CONVLAB_OPENMP": "0"})
    return f"serial build; {summary}"


def clang():
    """Debian's clang without libomp is what Apple's clang is: setup.py finds no
    OpenMP, prints one warning, and builds serial kernels that pass the tests."""
    need_packages("clang")
    if debian.installed("libomp-dev"):
        skip("libomp-dev is installed, so clang has OpenMP here")
    omp, about, summary = tested_variant("clang", {"CC": "clang"})
    if "warning: OpenMP was not found" not in omp:
        fail("no warning that OpenMP is missing")
    version = re.search(r"clang [0-9.]*", about)
    return f"{version.group(0) if version else 'clang'}, one OpenMP warning, serial build; {summary}"


# ---------------------------------------------------------------- sanitize

SANITIZE_TESTS = [FAST_LAYER_TESTS, "tests/test_winograd.py", "tests/test_fast_layer_caches.py"]
SANITIZER_REPORT = re.compile(r"ERROR: AddressSanitizer|runtime error:")
OUT_OF_BOUNDS_WRITE = """
import numpy as np
import convlab._fast.pool as pool
print("kernels from", pool.__file__, flush=True)
dout = np.ones((1, 1, 1, 1))
argmax = np.full((1, 1, 1, 1), 16, dtype=np.int32)  # one past the 4x4 plane
dx = np.zeros((1, 1, 4, 4))
pool.max_pool_backward(dout, argmax, dx, 1)
print("no report")
"""


def sanitize():
    """The kernels compiled with GCC's -fsanitize=address,undefined run the fast-layer,
    Winograd and tampered-cache tests: an out-of-bounds read or write, a use after free
    or undefined behaviour in a kernel stops the run with a report, where a normal build
    might go on with a corrupted heap.

    Python itself is not instrumented, so the ASan runtime is preloaded (LD_PRELOAD),
    leak checking is off (the interpreter keeps memory until exit by design) and
    PYTHONMALLOC=malloc puts Python's objects in ASan's checked heap too. A self-test
    first proves that the build really checks: a kernel called directly (past the cache
    checks of convlab.fast_layers) with a pooling index one past the end of its output
    must die with ASan's heap-buffer-overflow report.
    """
    need_packages("sanitize")
    asan = capture(["gcc", "-print-file-name=libasan.so"])
    if not (asan.startswith("/") and Path(asan).exists()):
        fail("gcc has no AddressSanitizer runtime (libasan.so; Debian: libasan8)")
    lib = build("sanitize", {"CC": "gcc", "CONVLAB_SANITIZE": "1"})
    flags = [line for line in build_log("sanitize").splitlines() if "compiling the kernels" in line]
    echo("\n".join(flags))
    if not any(re.search(r"compiling the kernels with .*-fsanitize=address,undefined", line)
               for line in flags):
        fail("the build did not use the sanitizer flags")
    checked = {"LD_PRELOAD": asan, "PYTHONMALLOC": "malloc", "ASAN_OPTIONS": "detect_leaks=0",
               "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}

    log("self-test: an out-of-bounds write by the pooling kernel must be reported")
    status, output = run([VPY, "-c", OUT_OF_BOUNDS_WRITE], env=against(lib, checked),
                         cwd=sources(), show=False)
    if f"kernels from {lib}/" not in output:
        echo(output)
        fail("self-test: the kernels were not imported from the sanitizer build")
    if status == 0 or "ERROR: AddressSanitizer: heap-buffer-overflow" not in output:
        echo(output)
        fail(f"self-test: AddressSanitizer did not report the out-of-bounds write (exit {status})")
    echo(next(line for line in output.splitlines() if "ERROR: AddressSanitizer" in line))
    log(f"self-test ok: the write one past dx was reported (exit {status})")

    log(f"pytest {' '.join(SANITIZE_TESTS)} against the sanitizer build")
    status, summary = pytest_against("sanitize", lib, SANITIZE_TESTS, env=checked)
    output = (work() / "sanitize-pytest.log").read_text()
    reports = [i for i, line in enumerate(output.splitlines()) if SANITIZER_REPORT.search(line)]
    if reports:
        lines = output.splitlines()
        echo("\n".join("\n".join(lines[i:i + 13]) for i in reports[:5]))
        fail(f"{len(reports)} sanitizer report(s) during the tests; pytest: exit {status}, {summary}")
    if status != 0:
        echo("\n".join(output.splitlines()[-40:]))
        fail(f"pytest against the sanitizer build: exit {status}, {summary}")
    return f"ASan self-test ok; address+undefined sanitizers, no report: {summary}"


# ---------------------------------------------------------------- avx512-on-avx2

def avx512_on_avx2():
    """The AVX-512 kernels (6 x 32 float and 6 x 16 double tiles, conv_kernels.h) are
    written with vector extensions, so CONVLAB_AVX512_ON_AVX2=1 compiles the very same
    functions for AVX2 instead (see simd.h). On a CPU without AVX-512 that is how the
    "avx512" path -- the wide tiles and the convolution code that packs for them --
    runs the fast-layer, Winograd, cache and SIMD tests; test_simd.py also checks that it
    agrees bit for bit with the AVX2 path. (On a CPU with AVX-512 the normal build runs
    the same tests on the real path.)"""
    need_packages("avx512-on-avx2")
    if not re.search(r"\bavx2\b", Path("/proc/cpuinfo").read_text()):
        skip("this CPU has no AVX2")
    lib = build("avx512-on-avx2", {"CONVLAB_AVX512_ON_AVX2": "1"})
    # CPUID's choice: calibration (convlab.fast_layers.calibration) would rightly find this
    # build's "avx512" path slower than avx2 and take avx2
    about = info(lib, {"CONVLAB_CALIBRATE": "0"})
    if "SIMD path: avx512" not in about:
        fail("the test build's CPUID default is not the avx512 path")
    if "compiled for AVX2" not in about:
        fail("the test build does not say its avx512 kernels are compiled for AVX2")
    status, summary = pytest_against(
        "avx512-on-avx2", lib, ["-rs", "-k", "avx512", FAST_LAYER_TESTS, "tests/test_winograd.py",
                                "tests/test_fast_layer_caches.py", "tests/test_simd.py"])
    output = (work() / "avx512-on-avx2-pytest.log").read_text()
    if status != 0:
        echo("\n".join(output.splitlines()[-40:]))
        fail(f"pytest on the avx512 path: exit {status}, {summary}")
    if "cannot run the avx512" in output:
        fail(f"tests skipped the avx512 path: {summary}")
    return f"avx512 path (compiled for AVX2): {summary}"


# ---------------------------------------------------------------- objdump

def x86_build():
    """The extension as setup.py builds it with the venv's compiler flags (objdump and
    nehalem share it)."""
    venv_can_build()
    return build("x86-build", quiet=True)


def objdump():
    """No instruction needing AVX or later (any VEX/EVEX encoding) can run unless the
    code dispatched to it by name: every such instruction must be in a function whose
    symbol contains avx2/avx512. The checker first proves on a fixture library that it
    sees AVX at all and fails a -mavx2 plain function."""
    need_packages("objdump")
    log("self-test of the checker")
    if run([VPY, CHECK_ISA, "--selftest"])[0] != 0:
        fail("check_isa.py --selftest failed")
    lib = x86_build()
    status, output = run([VPY, CHECK_ISA, *sorted((lib / "convlab" / "_fast").glob("*.so"))])
    if status == 0:
        return output.strip().splitlines()[-1].removeprefix("total: ")
    if status == 1:
        forbidden = [line for line in output.splitlines() if line.startswith("  FORBIDDEN")]
        names = ", ".join(re.sub(r"^  FORBIDDEN +", "", line).split(":")[0][:48]
                          for line in forbidden[:5])
        total = re.search(r"^total:.*?(\d+) instruction", output, re.M)
        fail(f"{len(forbidden)} function(s) use AVX or later outside *avx2*/*avx512* functions "
             f"({total.group(1) if total else '?'} instructions), e.g. {names}")
    fail(f"check_isa.py could not check the libraries (exit {status})")


# ---------------------------------------------------------------- nehalem

AVX2_PROBE = r"""#include <immintrin.h>
#include <stdio.h>
int main(int argc, char **argv) {
    (void)argv;
    volatile float in[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    __m256 a = _mm256_loadu_ps((const float *)in);
    __m256i i = _mm256_add_epi32(_mm256_castps_si256(a), _mm256_set1_epi32(argc)); /* AVX2 */
    int out[8];
    _mm256_storeu_si256((__m256i *)out, i);
    printf("avx2 ran: %d\n", out[7] - 0x41000000);
    return 0;
}
"""
IMPORT_EVERY_MODULE = """
import importlib, sys
import convlab
print("convlab from", convlab.__file__)
for m in sys.argv[1:]:
    print("importing", m, flush=True)
    importlib.import_module(m)
print("all kernel modules imported")
"""


def nehalem():
    """The kernels import and compute correctly on an x86-64 CPU without AVX (Nehalem:
    SSE4.2, no AVX): the fast-layer tests run under qemu-user's CPU emulation. A
    self-test first checks that qemu really raises SIGILL for an AVX2 instruction under
    -cpu Nehalem (and runs it under -cpu max), so the stage cannot pass just because the
    emulator ignores the CPU model."""
    need_packages("nehalem")
    sigill_self_test()
    lib = x86_build()
    qemu = ["qemu-x86_64", "-cpu", "Nehalem"]
    # OpenMP threads spin while waiting; emulated, spinning is very slow.
    env = {"OMP_WAIT_POLICY": "passive"}
    if os.environ.get("OPENBLAS_CORETYPE"):
        # OpenBLAS would otherwise use the kernel named here (maybe AVX2) on the emulated CPU.
        log(f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} is set: "
            "using NEHALEM for the emulated commands only")
        env["OPENBLAS_CORETYPE"] = "NEHALEM"
    # Import every kernel module first: a SIGILL at import time is the usual failure.
    modules = sorted("convlab._fast." + so.name.split(".")[0]
                     for so in (lib / "convlab" / "_fast").glob("*.so"))
    status, output = run([*qemu, VPY, "-c", IMPORT_EVERY_MODULE, *modules],
                         env=against(lib, env), cwd=sources())
    if status == 0 and f"convlab from {lib}/" not in output:
        fail(f"convlab was not imported from the fresh build {lib}")
    if killed_by_sigill(status):
        last = [line for line in output.splitlines() if line.startswith("importing")][-1:]
        fail(f"SIGILL (illegal instruction) on a CPU without AVX while {' '.join(last)}")
    if status != 0:
        fail(f"importing the kernels under -cpu Nehalem failed (exit {status})")
    log(f"pytest {FAST_LAYER_TESTS} under qemu-x86_64 -cpu Nehalem")
    status, summary = pytest_against("nehalem", lib, emulated_pytest_args(), env=env,
                                     prefix=qemu, show_all=True)
    if killed_by_sigill(status):
        fail(f"SIGILL (illegal instruction) during the tests on a CPU without AVX; last: {summary}")
    if status != 0:
        fail(f"pytest under -cpu Nehalem: exit {status}, {summary}")
    return f"SIGILL self-test ok; under -cpu Nehalem: {summary}"


def sigill_self_test():
    """An AVX2 probe runs under ``qemu-x86_64 -cpu max`` and dies with SIGILL under Nehalem."""
    probe = work() / "avx-probe"
    probe.with_suffix(".c").write_text(AVX2_PROBE)
    if run(["gcc", "-O1", "-mavx2", "-o", probe, probe.with_suffix(".c")])[0] != 0:
        fail("self-test: gcc could not compile the AVX2 probe")
    status = run(["qemu-x86_64", "-cpu", "max", probe], show=False)[0]
    if status != 0:
        fail(f"self-test: the AVX2 probe failed under qemu-x86_64 -cpu max (exit {status})")
    status = run(["qemu-x86_64", "-cpu", "Nehalem", probe], show=False)[0]
    if not killed_by_sigill(status):
        fail(f"self-test: the AVX2 probe did not die with SIGILL under -cpu Nehalem (exit {status}):"
             " this qemu cannot prove anything")
    log("self-test ok: the AVX2 probe runs under -cpu max and dies with SIGILL under -cpu Nehalem")


# ---------------------------------------------------------------- aarch64-cross

CYTHON_DIRECTIVES = "boundscheck=False,wraparound=False,cdivision=True,initializedcheck=False"
OPENMP_VARIANTS = {"omp": ["-O2", "-fopenmp"], "noomp": ["-O2"]}


def aarch64_cross():
    """The kernels have a portable C path: the Cython output (Cython from the venv, the
    .pyx include path covering src/convlab/_fast/*.h) compiles with aarch64-linux-gnu-gcc
    -march=armv8-a, with -fopenmp and without. Python's and NumPy's headers are the
    host's (LP64 on both, so their sizes agree)."""
    need_packages("aarch64-cross")
    src = sources()
    out = work() / "cython-c"
    out.mkdir(exist_ok=True)
    if run([VPY, "-c", "import Cython, numpy"], show=False)[0] != 0:
        fail(f"{VPY} cannot import Cython and numpy")
    python_include = capture([VPY, "-c", 'import sysconfig; print(sysconfig.get_paths()["include"])'])
    numpy_include = capture([VPY, "-c", "import numpy; print(numpy.get_include())"])
    log(f"cythonize (Cython {capture([VPY, '-c', 'import Cython; print(Cython.__version__)'])})")
    for pyx in sorted((src / "src" / "convlab" / "_fast").glob("*.pyx")):
        status, _ = run([VPY, "-m", "cython", "-3", "--directive", CYTHON_DIRECTIVES,
                         "-I", ".", "-I", "convlab/_fast", "-o", out / f"{pyx.stem}.c",
                         f"convlab/_fast/{pyx.name}"], cwd=src / "src")
        if status != 0:
            fail(f"cython failed on {pyx.name}")
    cc = ["aarch64-linux-gnu-gcc", "-march=armv8-a", "-fPIC", "-Wall", "-Wno-unused-function",
          "-DNPY_NO_DEPRECATED_API=NPY_1_7_API_VERSION",
          "-I", src / "src" / "convlab" / "_fast", "-I", python_include, "-I", numpy_include]
    sources_c = sorted(out.glob("*.c"))
    log(f"compiling {len(sources_c)} modules with {cc[0]} (-O2 -fopenmp, and -O2 without OpenMP)")
    jobs = [(c, variant) for c in sources_c for variant in OPENMP_VARIANTS]

    def compile_one(job):
        c, variant = job
        status, output = run([*cc, *OPENMP_VARIANTS[variant], "-c", c,
                              "-o", c.with_suffix(f".{variant}.o")], show=False)
        print(f"  {'ok    ' if status == 0 else 'FAILED'} {c.name} ({variant})", flush=True)
        return job, status, output

    with ThreadPoolExecutor(max_workers=int(JOBS)) as pool:
        results = list(pool.map(compile_one, jobs))
    failed = []
    for (c, variant), status, output in results:
        if status != 0 or re.search(r"(error|Error):", output):
            failed.append(f"{c.stem}.{variant}")
            errors = [line for line in output.splitlines() if "error" in line][:10]
            echo(f"== {c.stem}.{variant}.log\n" + "\n".join(errors or output.splitlines()[-20:]))
    if failed:
        fail(f"aarch64 compile errors in: {' '.join(failed)}")
    # Without -fopenmp the objects must not need libgomp: a module that calls
    # omp_* directly would fail to import where OpenMP is absent.
    omp_undefined = []
    for obj in sorted(out.glob("*.noomp.o")):
        for line in capture(["aarch64-linux-gnu-nm", "-u", obj]).splitlines():
            symbol = line.split()[-1]
            if symbol.startswith(("omp_", "GOMP_")):
                omp_undefined.append(f"{obj.name.removesuffix('.noomp.o')}:{symbol}")
    detail = f"{len(sources_c)} modules compile for aarch64 (armv8-a) with and without -fopenmp"
    if omp_undefined:
        detail += f"; note: without OpenMP still calls {' '.join(omp_undefined)}"
    return detail
