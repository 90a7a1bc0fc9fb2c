#!/usr/bin/env bash
# Re-execute book chapters in place, storing fresh outputs (for authors, after a
# change to the package or to a chapter).
#
#   bash scripts/execute-book.sh                                # every book/*.ipynb
#   bash scripts/execute-book.sh book/03-fast-layers.ipynb ...  # only these
#
# Runs in the project venv (.venv, or $CONVLAB_VENV), with the kernel of that
# venv, top to bottom, and without per-cell timing metadata so that a re-run
# only changes what really changed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CONVLAB_VENV:-$root/.venv}"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "error: no virtual environment at $venv; run 'bash scripts/build-book.sh' first" >&2
    exit 1
fi

cd "$root"
if [[ $# -eq 0 ]]; then
    set -- book/*.ipynb
fi

for notebook in "$@"; do
    echo "executing $notebook"
    start=$SECONDS
    PATH="$venv/bin:$PATH" "$venv/bin/python" -m jupyter nbconvert \
        --to notebook --execute --inplace \
        --ExecutePreprocessor.kernel_name=python3 \
        --ExecutePreprocessor.timeout=1800 \
        --ExecutePreprocessor.record_timing=False \
        --log-level=WARN \
        "$notebook"
    echo "  done in $((SECONDS - start)) s"
done
