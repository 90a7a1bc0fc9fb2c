#!/usr/bin/env bash
# Set up the project and run every test.
#
#   bash scripts/test.sh
#
# After the same set-up as build-book.sh (.venv, `pip install -e ".[test,book]"`),
# and installing Debian's chromium (scripts/debian-packages.sh: apt-get, root or
# sudo) unless it is there, it runs, in order:
#   1. unit tests                 pytest tests/
#   2. unit tests, portable path  CONVLAB_SIMD=portable pytest tests/
#   3. the book's notebooks       pytest --nbval --nbval-current-env book/, with
#                                 CONVLAB_CHECK_MARGINS=1 (no printed figure near a
#                                 point where another CPU would print it differently)
#   4. other numerics             pytest tests/numerics (the chapters again under other
#                                 CPUs' rounding: SIMD paths, BLAS kernels, NumPy loops,
#                                 threads)
#   5. chapter 3 under load       pytest tests/load (two CPU-burning processes run
#                                 while chapter 3 is re-executed and compared)
#   6. the HTML build             jupyter-book build --all . -W --keep-going
#   7. the browser test           pytest tests/browser
#   8. course kit                 pytest tests/kit (release every exercise, check the student's
#                                 tree and chapters, solve, grade planted bad submissions;
#                                 installs bubblewrap, the graders' sandbox, first; skipped
#                                 in a student's copy, which has no convlab.instructor)
#   9. portability                bash scripts/check-portability.sh (other builds of
#                                 the kernels: no OpenMP, clang, an old CPU, aarch64,
#                                 the wheel; CONVLAB_PORTABILITY=0 skips it), then
#                                 tests/test_debian_packages.py against the Debian
#                                 packages its stages installed
# Every stage runs even if an earlier one failed (the browser test is skipped
# when the build failed); the script ends with a summary and fails if any
# stage failed, including a pytest run that collected no tests (exit code 5).
# CIFAR-10 is found through CONVLAB_DATA (see README.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"
cd "$ROOT"

# Debian packages: the browser test's chromium and fonts now (unless CONVLAB_CHROMIUM
# names another browser); the portability stages install their own when they run.
# scripts/debian-packages.txt lists them all.
source "$ROOT/scripts/debian-packages.sh"
CHROMIUM="${CONVLAB_CHROMIUM:-/usr/bin/chromium}"
if [[ -z "${CONVLAB_CHROMIUM:-}" ]]; then
    install_packages browser
elif [[ ! -x "$CHROMIUM" ]]; then
    echo "error: CONVLAB_CHROMIUM=$CHROMIUM is not an executable" >&2
    exit 1
fi

logdir="$(mktemp -d "${TMPDIR:-/tmp}/convlab-test.XXXXXX")"
summary=()
failed=0
total_passed=0 total_failed=0 total_skipped=0

# count N from "N word" in pytest's closing line, 0 if absent
_count() { grep -oE "[0-9]+ $1" <<<"$2" | grep -oE '^[0-9]+' || echo 0; }

# run_stage NAME COMMAND...: run, show output, remember status, time and pytest's last line
run_stage() {
    local name="$1"; shift
    local log="$logdir/${name// /-}.log" start=$SECONDS status=0
    echo
    echo "== $name: $*"
    "$@" 2>&1 | tee "$log" || status=${PIPESTATUS[0]}
    local last
    last="$(grep -E '^=+ .* in [0-9.]+s' "$log" | tail -1 | sed -E 's/^=+ (.*) =+$/\1/' || true)"
    local stage_failed=0
    if [[ -n "$last" ]]; then
        total_passed=$((total_passed + $(_count passed "$last")))
        stage_failed=$(( $(_count failed "$last") + $(_count 'errors?' "$last") ))
        total_skipped=$((total_skipped + $(_count skipped "$last")))
    else
        last="exit code $status"
    fi
    # a failed stage counts at least once (a broken build, or pytest collecting no tests)
    if [[ $status -ne 0 && $stage_failed -eq 0 ]]; then
        stage_failed=1
    fi
    total_failed=$((total_failed + stage_failed))
    if [[ $status -eq 0 ]]; then
        summary+=("ok     $name ($((SECONDS - start)) s): $last")
    else
        summary+=("FAILED $name ($((SECONDS - start)) s): $last")
        failed=1
    fi
    return "$status"
}

run_stage "unit tests" "$VPY" -m pytest tests/ || true
# the same with the kernels' portable vector code instead of the fastest path (AVX2 here);
# the sweep tests orchestrate processes (their trainer is a stand-in) and run once
run_stage "unit tests (CONVLAB_SIMD=portable)" env CONVLAB_SIMD=portable "$VPY" -m pytest tests/ \
    -p no:cacheprovider --ignore=tests/test_sweep.py --ignore=tests/test_debian_packages.py || true
# CONVLAB_CHECK_MARGINS=1: a printed figure too close to where it would print
# differently on another CPU fails (convlab.checks.margin_problem)
run_stage "notebooks" env CONVLAB_CHECK_MARGINS=1 "$VPY" -m pytest --nbval --nbval-current-env book/ || true
run_stage "notebooks under other numerics" "$VPY" -m pytest tests/numerics -p no:cacheprovider || true
run_stage "chapter 3 under load" env CONVLAB_CHECK_MARGINS=1 "$VPY" -m pytest tests/load || true
if run_stage "html build" "$VENV/bin/jupyter-book" build --all . -W --keep-going --quiet; then
    run_stage "browser test" "$VPY" -m pytest tests/browser || true
else
    summary+=("FAILED browser test: not run, the HTML build failed")
    failed=1
    total_failed=$((total_failed + 1))
fi

if [[ -d src/convlab/instructor ]]; then
    # the kit grades student code inside bubblewrap's sandbox (the stage "kit" of the package list);
    # CONVLAB_ISOLATION=bwrap: a sandbox that does not start is an error here, not a quiet fallback
    if install_packages kit; then
        run_stage "course kit" env CONVLAB_ISOLATION=bwrap "$VPY" -m pytest tests/kit -p no:cacheprovider || true
    else
        summary+=("FAILED course kit: not run, its Debian packages are missing (above)")
        failed=1
        total_failed=$((total_failed + 1))
    fi
else
    summary+=("skip   course kit: no src/convlab/instructor (a student's copy)")
fi

if [[ "${CONVLAB_PORTABILITY:-1}" != 0 ]]; then
    run_stage "portability" bash scripts/check-portability.sh "$VPY" "$ROOT" || true
    # the stages above installed their Debian packages: check the lists against them
    run_stage "package lists" "$VPY" -m pytest tests/test_debian_packages.py -p no:cacheprovider || true
else
    summary+=("skip   portability: CONVLAB_PORTABILITY=0")
fi

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
skipped_text=""
[[ $total_skipped -eq 0 ]] || skipped_text=", $total_skipped skipped"
echo "total: $total_passed passed, $total_failed failed$skipped_text"
rm -rf "$logdir"
exit "$failed"
