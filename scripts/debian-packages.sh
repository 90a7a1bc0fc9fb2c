# Sourced by test.sh and check-portability.sh: install the Debian packages that
# scripts/debian-packages.txt names for some stages, and check them.
#
#   stage_packages STAGE...     print the packages those stages need, one per line
#   install_packages STAGE...   apt-get install the missing ones (root, or sudo -n),
#                               printing what it installs, then check every one with
#                               dpkg -s; returns non-zero with an error naming the
#                               package (and the stage) when one is still missing

DEBIAN_PACKAGES_LIST="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/debian-packages.txt"

stage_packages() {
    local stage
    for stage in "$@"; do
        if ! awk -v s="$stage" '$1 == s && $2 == "packages" {found = 1} END {exit !found}' "$DEBIAN_PACKAGES_LIST"; then
            echo "error: $DEBIAN_PACKAGES_LIST names no packages for the stage '$stage'" >&2
            return 2
        fi
    done
    for stage in "$@"; do
        awk -v s="$stage" '$1 == s && $2 == "packages" {for (i = 3; i <= NF; i++) print $i}' "$DEBIAN_PACKAGES_LIST"
    done | awk '!seen[$0]++'
}

_package_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

install_packages() {
    local packages missing=() p sudo_=()
    packages="$(stage_packages "$@")" || return 2
    command -v dpkg-query >/dev/null || {
        echo "error: no dpkg-query: the stages $* need Debian packages ($(echo $packages)); install their equivalents by hand" >&2
        return 1
    }
    for p in $packages; do
        _package_installed "$p" || missing+=("$p")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        if [[ $(id -u) -ne 0 ]]; then
            if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
                sudo_=(sudo -n)
            else
                echo "error: missing Debian packages for $*: ${missing[*]}; run 'sudo apt-get install ${missing[*]}'" >&2
                return 1
            fi
        fi
        echo "== apt-get install --no-install-recommends ${missing[*]} (for $*)"
        local log
        log="$(mktemp "${TMPDIR:-/tmp}/convlab-apt.XXXXXX")"
        if ! { "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
               && "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive \
                  apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
            cat "$log" >&2
            rm -f "$log"
            echo "error: apt-get install ${missing[*]} failed (log above)" >&2
            return 1
        fi
        rm -f "$log"
    fi
    for p in $packages; do
        if ! dpkg -s "$p" >/dev/null 2>&1 || ! _package_installed "$p"; then
            echo "error: Debian package $p (needed by $*) is not installed after apt-get install" >&2
            return 1
        fi
    done
}
