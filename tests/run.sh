#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions are called as "build_$name"
# tests/run.sh - build taskwheel three ways and run every test.
#
#   build/       RelWithDebInfo: unit suites, integration tests, and the
#                unit suites again under valgrind (label memcheck)
#   build-asan/  -DTW_SANITIZE=ON (ASan + UBSan): unit + integration
#   build-fuzz/  CC=clang -DTW_BUILD_FUZZERS=ON: only the fuzz targets and
#                their bounded smoke run over the seed corpus
#
# Usage: tests/run.sh [normal] [asan] [fuzz]    (default: all three)
# Environment: TW_BUILD_ROOT (where the build dirs go, default the repo
# root), JOBS (parallel build and unit-test jobs, default 2).
#
# Missing Debian packages are installed with apt-get (as root) only when
# dpkg says something is missing. Every build is attempted even if an
# earlier one failed; the script exits non-zero if any build fails, any
# test fails, or a ctest run finds no test at all. The last line is the
# total, "total: N passed, N failed".
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
BUILD_ROOT=${TW_BUILD_ROOT:-$ROOT}
JOBS=${JOBS:-2}

# Only the sanitizer builds read these.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

say() { printf 'run.sh: %s\n' "$*"; }

# ------------------------------------------------------------ packages ---
# One list of packages for the whole project: deploy/install-deps.sh.
install_missing() {
    "$ROOT/deploy/install-deps.sh" --test
}

# ------------------------------------------------------------- results ---
declare -A RESULT    # build -> one-line summary
TOTAL_PASS=0
TOTAL_FAIL=0
FAILED=0

# Run ctest in $1 with the remaining arguments, log to $1/ctest.log, and
# record the outcome under the name $NAME.
run_ctest() {
    local dir=$1
    shift
    local log=$dir/ctest.log
    (cd "$dir" && ctest --output-on-failure --no-tests=error "$@") 2>&1 |
        tee "$log"
    local rc=${PIPESTATUS[0]}
    local line pass=0 total=0 fail=0
    line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' \
           "$log" | tail -1)
    if [ -n "$line" ]; then
        fail=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
        total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
        pass=$((total - fail))
    fi
    if grep -q 'No tests were found' "$log" || [ "$total" -eq 0 ]; then
        say "$NAME: FAILED: ctest found no tests to run"
        RESULT[$NAME]="FAILED (no tests ran)"
        FAILED=1
        TOTAL_FAIL=$((TOTAL_FAIL + 1))
        return 1
    fi
    TOTAL_PASS=$((TOTAL_PASS + pass))
    TOTAL_FAIL=$((TOTAL_FAIL + fail))
    if [ "$rc" -ne 0 ] || [ "$fail" -ne 0 ]; then
        RESULT[$NAME]="FAILED ($pass of $total tests passed)"
        FAILED=1
        return 1
    fi
    RESULT[$NAME]="ok ($pass of $total tests passed)"
    return 0
}

# Configure and build. $1 = build dir, then cmake arguments; the targets
# to build come from $TARGETS (empty = all).
configure_build() {
    local dir=$1
    shift
    local t0=$SECONDS
    if ! cmake -S "$ROOT" -B "$dir" -G Ninja "$@" >"$dir.configure.log" 2>&1
    then
        cat "$dir.configure.log"
        say "$NAME: FAILED: cmake configure (log: $dir.configure.log)"
        RESULT[$NAME]="FAILED (configure)"
        FAILED=1
        TOTAL_FAIL=$((TOTAL_FAIL + 1))
        return 1
    fi
    # shellcheck disable=SC2086
    if ! ninja -C "$dir" -j "$JOBS" $TARGETS; then
        say "$NAME: FAILED: build"
        RESULT[$NAME]="FAILED (build)"
        FAILED=1
        TOTAL_FAIL=$((TOTAL_FAIL + 1))
        return 1
    fi
    say "$NAME: built in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- builds ---
build_normal() {
    NAME=normal TARGETS=""
    local dir=$BUILD_ROOT/build
    say "=== $NAME build in $dir"
    configure_build "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DTW_BUILD_TESTS=ON -DTW_SANITIZE=OFF -DTW_BUILD_FUZZERS=OFF \
        -DTW_MEMCHECK=ON || return 1
    run_ctest "$dir" -j "$JOBS"
}

build_asan() {
    NAME=asan TARGETS=""
    local dir=$BUILD_ROOT/build-asan
    say "=== $NAME build in $dir"
    configure_build "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DTW_BUILD_TESTS=ON -DTW_SANITIZE=ON -DTW_BUILD_FUZZERS=OFF \
        -DTW_MEMCHECK=OFF -DTW_BUILD_BENCH=OFF || return 1
    run_ctest "$dir" -j "$JOBS"
}

build_fuzz() {
    NAME=fuzz TARGETS="tw_fuzzers"
    local dir=$BUILD_ROOT/build-fuzz
    say "=== $NAME build in $dir"
    configure_build "$dir" -DCMAKE_C_COMPILER=clang \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTW_BUILD_TESTS=OFF \
        -DTW_BUILD_FUZZERS=ON -DTW_SANITIZE=OFF -DTW_BUILD_BENCH=OFF ||
        return 1
    run_ctest "$dir" -L fuzz
}

# ------------------------------------------------------------------ main ---
WANT=("$@")
if [ ${#WANT[@]} -eq 0 ]; then
    WANT=(normal asan fuzz)
fi
for w in "${WANT[@]}"; do
    case $w in
    normal | asan | fuzz) ;;
    *)
        echo "usage: tests/run.sh [normal] [asan] [fuzz]" >&2
        exit 2
        ;;
    esac
done

START=$SECONDS
if ! install_missing; then
    say "FAILED: could not install the packages the build needs"
    exit 1
fi
mkdir -p "$BUILD_ROOT"

for w in "${WANT[@]}"; do
    "build_$w" || true
done

echo
say "summary ($((SECONDS - START)) s):"
for w in "${WANT[@]}"; do
    printf 'run.sh:   %-7s %s\n' "$w" "${RESULT[$w]:-FAILED (not run)}"
    if [ -z "${RESULT[$w]:-}" ]; then
        FAILED=1
    fi
done
if [ "$FAILED" -ne 0 ]; then
    say "FAILED"
else
    say "all builds passed"
fi
echo "total: $TOTAL_PASS passed, $TOTAL_FAIL failed"
exit "$FAILED"
