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
# Usage: tests/run.sh [--stress] [--repeat N] [normal] [asan] [fuzz]
#        (default: all three builds, once)
#
#   --stress    run every test with a CPU hog on every core: stress-ng
#               --cpu $(nproc) at TW_STRESS_LOAD percent (default 70, as
#               ../shared/tools/busy-clone-check), started before each
#               ctest run and stopped after it (by pid), so the builds are
#               not slowed. A test that passes only on a quiet machine
#               depends on timing; this finds it.
#   --repeat N  run the tests N times in a row (building once); every
#               round must pass. `tests/run.sh --stress --repeat 3` is the
#               busy-machine check.
#
# Environment: TW_BUILD_ROOT (where the build dirs go, default the repo
# root), JOBS (parallel build and unit-test jobs, default 2),
# TW_STRESS_LOAD (see --stress).
#
# Missing Debian packages are installed with apt-get (as root) only when
# dpkg says something is missing. Every build is attempted even if an
# earlier one failed; the script exits non-zero if any build fails, any
# test fails, or a ctest run executes no test at all (none found, or
# every one skipped): that is reported loudly, never as a pass. The last
# line is the total, "total: N passed, N failed".
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
BUILD_ROOT=${TW_BUILD_ROOT:-$ROOT}
JOBS=${JOBS:-2}

# Only the sanitizer builds read these.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

say() { printf 'run.sh: %s\n' "$*"; }

# ------------------------------------------------------------- the hog ---
STRESS=0
HOG=""
hog_start() {
    ((STRESS)) || return 0
    local n
    n=$(nproc)
    stress-ng --cpu "$n" --cpu-load "${TW_STRESS_LOAD:-70}" --quiet &
    HOG=$!
    say "stress: stress-ng (pid $HOG) on $n cores at ${TW_STRESS_LOAD:-70}%"
}
hog_stop() {
    [[ -n "$HOG" ]] || return 0
    kill "$HOG" 2>/dev/null
    wait "$HOG" 2>/dev/null
    HOG=""
}
trap hog_stop EXIT

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
    hog_start
    (cd "$dir" && ctest --output-on-failure --no-tests=error "$@") 2>&1 |
        tee "$log"
    local rc=${PIPESTATUS[0]}
    hog_stop
    local line pass=0 total=0 fail=0 skipped=0
    line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' \
           "$log" | tail -1)
    if [ -n "$line" ]; then
        fail=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
        total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
        pass=$((total - fail))
    fi
    # Skipped tests (a SKIP_RETURN_CODE, a missing tool) count as passed
    # in ctest's line; a run where every test skipped ran nothing.
    skipped=$(grep -cE '^[[:space:]]*[0-9]+ - .* \(Skipped\)$' "$log" || true)
    if grep -q 'No tests were found' "$log" || [ "$total" -eq 0 ] ||
        [ "$skipped" -ge "$total" ]; then
        say "$NAME: FAILED: NO TEST RAN ($total found, $skipped skipped)"
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
    local note=""
    if [ "$skipped" -gt 0 ]; then
        note=", $skipped skipped"
    fi
    RESULT[$NAME]="ok ($pass of $total tests passed$note)"
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
usage() {
    echo "usage: tests/run.sh [--stress] [--repeat N] [normal] [asan] [fuzz]" >&2
    exit 2
}
WANT=()
REPEAT=1
while [ $# -gt 0 ]; do
    case $1 in
    normal | asan | fuzz) WANT+=("$1") ;;
    --stress) STRESS=1 ;;
    --repeat)
        [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || usage
        REPEAT=$2
        shift
        ;;
    *) usage ;;
    esac
    shift
done
if [ ${#WANT[@]} -eq 0 ]; then
    WANT=(normal asan fuzz)
fi

START=$SECONDS
if ! install_missing; then
    say "FAILED: could not install the packages the build needs"
    exit 1
fi
mkdir -p "$BUILD_ROOT"

if ((STRESS)) && ! command -v stress-ng >/dev/null 2>&1; then
    say "FAILED: --stress needs stress-ng (deploy/install-deps.sh --test)"
    exit 1
fi

ROUNDS=()
for ((round = 1; round <= REPEAT; round++)); do
    for w in "${WANT[@]}"; do
        if ((REPEAT > 1)); then
            say "=== round $round of $REPEAT"
        fi
        "build_$w" || true
        key=$w
        if ((REPEAT > 1)); then
            key="$w/$round"
            RESULT[$key]=${RESULT[$w]:-}
            unset "RESULT[$w]"
        fi
        ROUNDS+=("$key")
    done
done

echo
say "summary ($((SECONDS - START)) s$( ((STRESS)) && echo ", under stress-ng at ${TW_STRESS_LOAD:-70}%")):"
for w in "${ROUNDS[@]}"; do
    printf 'run.sh:   %-9s %s\n' "$w" "${RESULT[$w]:-FAILED (not run)}"
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
