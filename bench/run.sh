#!/bin/sh
# bench/run.sh - build Release in build-bench/ and run every benchmark.
#
# Prints the machine, then one summary line per benchmark (per-run lines go
# to stderr). The whole thing takes about two and a half minutes on a
# 2-core machine, most of it bench-assign's 200,000 station adds, one
# request round trip each (so it makes one run of each measure here; the
# median of 3 in docs/BENCHMARKS.md comes from `bench-assign --runs 3`).
# The taskwheel benchmarks are skipped, with a note, when the broker,
# worker or client library is not part of the build yet.
#
#   bench/run.sh                      everything with the defaults
#   TW_BENCH_BUILD=/tmp/b bench/run.sh  another build directory
#   TW_BENCH_KEEP=1 bench/run.sh       keep the broker and worker logs
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${TW_BENCH_BUILD:-$root/build-bench}
bin=$build/bench

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DTW_BUILD_TESTS=OFF -DTW_BUILD_BENCH=ON >/dev/null
targets=bench-relay
if ninja -C "$build" -t targets all | grep -q '^bench-throughput:'; then
    targets="$targets bench-throughput bench-latency bench-stations"
    targets="$targets bench-assign bench-curve bench-pools bench-durable"
    targets="$targets bench-failover bench-schedules bench-pair bench-keep"
fi
if ninja -C "$build" -t targets all | grep -q '^bench-place:'; then
    targets="$targets bench-place bench-engines bench-records"
fi
ninja -C "$build" $targets >/dev/null

model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "machine: $(nproc) cores, ${model:-unknown cpu}, Linux $(uname -r)"

status=0
run() {
    "$@" || { echo "FAILED: $*" >&2; status=1; }
}

run "$bin/bench-relay" --mode throughput --n 1000000 --window 1000 \
    --runs 5
run "$bin/bench-relay" --mode latency --n 10000 --runs 3
if [ -x "$bin/bench-place" ]; then
    run "$bin/bench-place" -n 10000 -w 20 -c 2000 -r 5
    run "$bin/bench-engines" --schedules 10000 --seconds 60 --parents 10000
    run "$bin/bench-records" -n 1000000 -r 20
fi
if [ -x "$bin/bench-throughput" ]; then
    run "$bin/bench-throughput" --n 200000 --window 20000 --runs 5
    run "$bin/bench-latency" --n 10000 --runs 3
    run "$bin/bench-stations" --stations 10000 --window-ms 5000 --windows 3
    run "$bin/bench-assign" --stations 100000 --workers 20 --slots 5000 \
        --runs 1
    run "$bin/bench-curve" --n 200000 --window 20000 --runs 5
    run "$bin/bench-pools" --n 200000 --window 400 --limit 400 --runs 3 \
        --lat-n 2000
    run "$bin/bench-durable" --n 200000 --window 20000 --runs 5 \
        --fsync everysec
    run "$bin/bench-failover" --stations 200 --heartbeat 300 --liveness 2 \
        --runs 5
    run "$bin/bench-schedules" --schedules 10000 --seconds 60
    run "$bin/bench-pair" --n 100000 --window 20000 --runs 7 --heartbeat 300 \
        --failovers 5
    run "$bin/bench-keep" --n 200000 --window 20000 --runs 5 --keep 1000000
else
    echo "throughput/latency/stations/assign/curve/pools/failover: taskwheel not" \
         "built yet" \
         "(broker, worker or client library missing)"
fi
exit $status
