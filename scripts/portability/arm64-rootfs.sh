#!/usr/bin/env bash
# Make (or reuse) a Debian 12 arm64 root file system for building and testing
# convlab under qemu-user emulation.
#
#   arm64-rootfs.sh DEST [PIP_REQUIREMENT...]
#
# 1. Debian 12 (bookworm) arm64 with Python 3.11, its headers, venv and gcc,
#    made with mmdebstrap (root mode; every arm64 program is run by
#    qemu-aarch64 through binfmt_misc, which the caller has registered) into
#    DEST.new and moved to DEST when complete, so that an interrupted run
#    leaves no half-made root. The mirrors are the host's own, read from apt
#    (`apt-get indextargets`), with apt's proxy, if one is set, passed on: the
#    bootstrap downloads from where `apt-get install` does.
# 2. A venv at DEST/opt/convlab-venv with PIP_REQUIREMENTs from PyPI (aarch64
#    wheels; Debian 12's Cython 0.29 and NumPy 1.24 are older than the
#    project's pyproject.toml asks for and do not compile its .pyx files).
#    pip inside the root trusts the host's CA bundle, as the host's pip does.
# Each part is redone only when its stamp (package list, requirements) changed.
set -euo pipefail

DEST="${1:?usage: arm64-rootfs.sh DEST [PIP_REQUIREMENT...]}"
shift
REQUIREMENTS=("$@")
PACKAGES=(python3 python3-dev python3-venv gcc libc6-dev ca-certificates)
# Bump when the recipe changes, so that caches are rebuilt.
RECIPE=2
base_stamp="recipe $RECIPE: bookworm arm64 ${PACKAGES[*]}"
venv_stamp="venv: ${REQUIREMENTS[*]}"

# run_in_root COMMAND: run a shell command in the root, in a private mount namespace.
run_in_root() {
    unshare --mount --propagation private /bin/bash -c '
        set -e
        r="$1"; shift
        mount -t proc proc "$r/proc"
        mount --rbind /dev "$r/dev"
        exec chroot "$r" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
            PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
            PIP_NO_INPUT=1 /bin/sh -c "$1"
    ' run_in_root "$DEST" "$1"
}

if [[ -f "$DEST/.convlab-rootfs-stamp" && "$(cat "$DEST/.convlab-rootfs-stamp")" == "$base_stamp" ]]; then
    echo "arm64 root file system: reusing $DEST"
else
    command -v mmdebstrap >/dev/null || { echo "error: mmdebstrap is not installed" >&2; exit 1; }
    # The host's Debian mirrors for bookworm (main, updates, security).
    mapfile -t sources < <(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' 2>/dev/null \
        | awk '$2 ~ /^bookworm(-updates|-security)?$/ {print "deb " $1 " " $2 " main"}' | sort -u)
    if [[ ${#sources[@]} -eq 0 ]]; then
        echo "note: apt names no bookworm mirror (no 'apt-get update' yet?); using deb.debian.org"
        sources=("deb http://deb.debian.org/debian bookworm main"
                 "deb http://deb.debian.org/debian bookworm-updates main"
                 "deb http://deb.debian.org/debian-security bookworm-security main")
    fi
    aptopts=(--aptopt='Acquire::Check-Valid-Until "false"' --aptopt='Acquire::Retries "3"')
    while read -r key value; do
        [[ -n "$value" ]] && aptopts+=(--aptopt="$key $value;")
    done < <(apt-config dump | grep -E '^Acquire::(https?|ftp)::Proxy ' | sed -E 's/;$//')

    echo "arm64 root file system: building $DEST with mmdebstrap from:"
    printf '  %s\n' "${sources[@]}"
    rm -rf "$DEST.new"
    mkdir -p "$(dirname "$DEST")"
    start=$SECONDS
    mmdebstrap --mode=root --arch=arm64 --variant=apt --include="$(IFS=,; echo "${PACKAGES[*]}")" \
        "${aptopts[@]}" bookworm "$DEST.new" "${sources[@]}" </dev/null
    echo "$base_stamp" > "$DEST.new/.convlab-rootfs-stamp"
    rm -rf "$DEST"
    mv "$DEST.new" "$DEST"
    echo "arm64 root file system: mmdebstrap took $((SECONDS - start)) s"
fi

if [[ -f "$DEST/.convlab-venv-stamp" && "$(cat "$DEST/.convlab-venv-stamp")" == "$venv_stamp" ]]; then
    echo "arm64 venv: reusing $DEST/opt/convlab-venv (${REQUIREMENTS[*]})"
else
    start=$SECONDS
    rm -f "$DEST/.convlab-venv-stamp"
    mkdir -p "$DEST/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$DEST/etc/ssl/certs/host-ca-certificates.crt"
    cp /etc/resolv.conf "$DEST/etc/resolv.conf" 2>/dev/null || true
    req=""
    for r in "${REQUIREMENTS[@]}"; do req+=" '$r'"; done
    echo "arm64 venv: pip install${req}"
    run_in_root "rm -rf /opt/convlab-venv && python3 -m venv /opt/convlab-venv && /opt/convlab-venv/bin/pip install -q $req"
    echo "$venv_stamp" > "$DEST/.convlab-venv-stamp"
    echo "arm64 venv: made in $((SECONDS - start)) s"
fi
echo "arm64 root file system: $(du -sh "$DEST" | cut -f1) at $DEST"
