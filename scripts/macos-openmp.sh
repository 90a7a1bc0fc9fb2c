#!/usr/bin/env bash
# cibuildwheel's before-build on macOS (see [tool.cibuildwheel.macos] in pyproject.toml):
# put conda-forge's llvm-openmp, the OpenMP runtime the wheel bundles, in $CONVLAB_OPENMP_PREFIX.
#
# Why not Homebrew's libomp: Homebrew builds it for the macOS of the machine that installs it
# (macOS 15 on the last Intel runner), and delocate refuses to copy a library whose minimum macOS
# is newer than the wheel's MACOSX_DEPLOYMENT_TARGET; the wheel would have to require macOS 15.
# conda-forge builds llvm-openmp for old macOS releases (10.13 on x86-64, 11.0 on arm64), as
# scikit-learn's wheels use it. setup.py finds the runtime through CONDA_PREFIX (set to the same
# folder in pyproject.toml), links it with an rpath to it, and delocate copies it into the wheel.
#
# Needs: $CONVLAB_OPENMP_PREFIX, $CONVLAB_OPENMP_PLATFORM (osx-64 or osx-arm64: the wheel's
# architecture, not necessarily the runner's), $MACOSX_DEPLOYMENT_TARGET; micromamba, or Homebrew
# to install it (micromamba itself is not bundled, so its own macOS target does not matter).
# Runs before every build; the runtime is installed once per prefix.
set -euo pipefail

prefix="${CONVLAB_OPENMP_PREFIX:?set CONVLAB_OPENMP_PREFIX}"
platform="${CONVLAB_OPENMP_PLATFORM:?set CONVLAB_OPENMP_PLATFORM (osx-64 or osx-arm64)}"
target="${MACOSX_DEPLOYMENT_TARGET:?set MACOSX_DEPLOYMENT_TARGET}"
version="${CONVLAB_LLVM_OPENMP:-20.1}"     # a conda version spec: 20.1 means 20.1.*

if [[ ! -f "$prefix/lib/libomp.dylib" ]]; then
    if ! command -v micromamba >/dev/null; then
        echo "== brew install micromamba (to fetch conda-forge's llvm-openmp)"
        brew install micromamba
    fi
    echo "== conda-forge llvm-openmp=$version for $platform into $prefix"
    micromamba create --yes --quiet --prefix "$prefix" --platform "$platform" \
        --override-channels --channel conda-forge "llvm-openmp=$version"
fi

# The runtime must not need a newer macOS than the wheel promises (delocate would refuse it,
# or, with an older delocate, the wheel would fail to load there).
minos="$(otool -l "$prefix/lib/libomp.dylib" | awk '/LC_BUILD_VERSION/ {b = 1} b && $1 == "minos" {print $2; exit}
                                                    /LC_VERSION_MIN_MACOSX/ {v = 1} v && $1 == "version" {print $2; exit}')"
[[ -n "$minos" ]] || { echo "error: cannot read the minimum macOS of $prefix/lib/libomp.dylib" >&2; exit 1; }
if ! python3 -c 'import sys; v = lambda s: tuple(int(p) for p in s.split(".")); sys.exit(v(sys.argv[1]) > v(sys.argv[2]))' \
        "$minos" "$target"; then
    echo "error: $prefix/lib/libomp.dylib needs macOS $minos, newer than MACOSX_DEPLOYMENT_TARGET=$target" >&2
    exit 1
fi
echo "== conda-forge libomp for $platform in $prefix: minimum macOS $minos (the wheel's: $target)"
