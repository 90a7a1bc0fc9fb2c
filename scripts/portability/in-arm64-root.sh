#!/usr/bin/env bash
# Build convlab's extension with setup.py and run the fast-layer tests inside
# an arm64 root file system (see arm64-rootfs.sh), under qemu-user emulation.
#
#   in-arm64-root.sh ROOTFS DIR [PYTEST_ARGS...]
#
# DIR is a copy of the repository at ROOTFS/DIR. The chroot runs in a private
# mount namespace, so /proc and /dev are unmounted when it ends, however it ends.
# Prints "arm64: built ..." once the extension is built. With DIR/.convlab-prebuilt
# present, the .so files already in DIR/src/convlab/_fast are used as they are.
set -euo pipefail

ROOTFS="${1:?usage: in-arm64-root.sh ROOTFS DIR [PYTEST_ARGS...]}"
DIR="${2:?usage: in-arm64-root.sh ROOTFS DIR [PYTEST_ARGS...]}"
shift 2

# The script run inside the root (by the arm64 /bin/sh).
cat > "$ROOTFS$DIR/.run-arm64.sh" <<'EOF'
set -eu
cd "$1"; shift
PATH="/opt/convlab-venv/bin:$PATH"   # the root's venv (arm64-rootfs.sh): NumPy, Cython, pytest
echo "arm64: $(uname -m), $(python3 --version), $(python3 -c 'import numpy, Cython; print("NumPy", numpy.__version__, "Cython", Cython.__version__)'), $(gcc --version | head -n 1)"
start=$(date +%s)
if [ -f .convlab-prebuilt ]; then
    how="reused from the build cache (same sources, same root)"
else
    python3 setup.py -q build_ext --inplace -j "$(nproc)" > build.log 2>&1 || { tail -n 40 build.log; echo "arm64: build failed"; exit 1; }
    how="setup.py build_ext in $(( $(date +%s) - start )) s"
fi
ls src/convlab/_fast/*.so > /dev/null
echo "arm64: built $(ls src/convlab/_fast/*.so | wc -l) modules ($(ls src/convlab/_fast/*.so | head -n 1 | sed 's/.*\.cpython/cpython/')), $how"
# convlab from this copy's src/ (not installed); print where it comes from.
export PYTHONPATH="$PWD/src"
python3 -c 'import convlab._fast.conv as c; print("arm64: kernels from", c.__file__)'
exec python3 -m pytest -p no:cacheprovider -q "$@"
EOF

# OpenMP threads spin while they wait; emulated, that spinning costs a lot.
exec unshare --mount --propagation private /bin/bash -c '
    set -e
    r="$1"; d="$2"; shift 2
    mount -t proc proc "$r/proc"
    mount --rbind /dev "$r/dev"
    mount -t tmpfs tmpfs "$r/dev/shm" 2>/dev/null || true
    exec chroot "$r" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
        OMP_WAIT_POLICY=passive PYTHONDONTWRITEBYTECODE=1 /bin/sh "$d/.run-arm64.sh" "$d" "$@"
' in-arm64-root "$ROOTFS" "$DIR" "$@"
