# Sourced by build-book.sh and test.sh: make the project's virtual environment.
#
# Creates $CONVLAB_VENV (default: .venv in the repository) with ${PYTHON:-python3}
# (3.11 or newer) if it does not exist, and installs the project into it with
# `pip install -e ".[test,book]"`, which also compiles the Cython kernels in
# src/convlab/_fast/. The install is repeated only when pyproject.toml,
# setup.py or a kernel source changed since the last one (a stamp file in the
# venv remembers), or always with CONVLAB_REINSTALL=1. CONVLAB_SKIP_INSTALL=1
# uses the venv as it is (for a shared working tree whose extension someone
# else builds).
#
# Defines: ROOT, VENV, VPY (the venv's python).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CONVLAB_VENV:-$ROOT/.venv}"
VPY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

_convlab_fingerprint() {
    # Everything that decides what `pip install` produces: metadata and kernel sources
    # (.pyx, .pxd, .pxi and the C headers they include).
    (cd "$ROOT" && find pyproject.toml setup.py src/convlab/_fast -maxdepth 1 -type f \
        \( -name pyproject.toml -o -name setup.py -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' \) \
        -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

if [[ ! -x "$VPY" ]]; then
    python="${PYTHON:-python3}"
    if ! command -v "$python" >/dev/null; then
        echo "error: $python not found; install Python 3.11 or newer (or set PYTHON=...)" >&2
        exit 1
    fi
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "error: $python is Python $("$python" -c 'import platform; print(platform.python_version())'); convlab needs 3.11 or newer (set PYTHON=...)" >&2
        exit 1
    fi
    echo "== creating the virtual environment $VENV"
    "$python" -m venv "$VENV"
fi

if [[ "${CONVLAB_SKIP_INSTALL:-0}" != 1 ]]; then
    stamp="$VENV/.convlab-install-stamp"
    fingerprint="$(_convlab_fingerprint)"
    if [[ "${CONVLAB_REINSTALL:-0}" == 1 || ! -f "$stamp" || "$(cat "$stamp")" != "$fingerprint" ]]; then
        echo "== installing convlab and its test and book dependencies (compiles the Cython kernels)"
        pip_log="$(mktemp "${TMPDIR:-/tmp}/convlab-pip.XXXXXX")"
        if ! (cd "$ROOT" && "$VPY" -m pip install -e ".[test,book]") >"$pip_log" 2>&1; then
            cat "$pip_log" >&2
            echo "error: pip install failed (log above)" >&2
            rm -f "$pip_log"
            exit 1
        fi
        grep -E '^Successfully installed' "$pip_log" | cut -c1-300 || true
        rm -f "$pip_log"
        # Build matplotlib's font cache now, so that no notebook prints
        # "Matplotlib is building the font cache" on stderr the first time.
        "$VPY" -c "import matplotlib.pyplot"
        echo "$fingerprint" > "$stamp"
    fi
fi
