#!/usr/bin/env bash
# Set up the project and run every test: the stages of noxfile.py, with nox.
#
#   bash scripts/test.sh [NOX_ARGUMENTS...]
#
# The same set-up as build-book.sh (.venv, `pip install -e ".[test,book]"`, which
# installs nox), then `nox` with the arguments given: none runs every stage of the
# default run and ends with a summary ("total: N passed, M failed, K skipped");
# `-s clang` runs one stage, `-l` lists them (noxfile.py says what each does).
# CIFAR-10 is found through CONVLAB_DATA (see README.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"
cd "$ROOT"
exec "$VENV/bin/nox" --noxfile "$ROOT/noxfile.py" "$@"
