#!/usr/bin/env bash
# Set up the project and render the book to HTML.
#
#   bash scripts/build-book.sh
#
# Creates .venv (Python 3.11+, or $PYTHON), installs convlab with
# `pip install -e ".[test,book]"` (compiling the Cython kernels), and renders
# every chapter listed in _toc.yml with Jupyter Book, treating every warning
# as an error. The chapters are shown with the outputs committed in the
# notebooks (re-execute them with scripts/execute-book.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"

cd "$ROOT"
echo "== rendering the book (jupyter-book build, warnings are errors)"
"$VENV/bin/jupyter-book" build --all . -W --keep-going --quiet
echo
echo "The book is at $ROOT/_build/html/index.html"
echo "Open it in a browser: file://$ROOT/_build/html/index.html"
