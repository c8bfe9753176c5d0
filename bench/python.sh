#!/bin/sh
# bench/python.sh - taskwheel from Python against Celery and RQ.
#
# Builds Release in build-bench/ (the broker, the worker and the CLI),
# installs what the comparison needs from Debian when it is missing
# (python3-celery, python3-rq, python3-redis, redis-server: benchmark
# dependencies only, never the tests'), and runs bench/tw_python.py with
# its defaults, or with the arguments given:
#
#   bench/python.sh
#   bench/python.sh --runs 5 --only throughput
#
# It never starts the system's redis service: the benchmark runs its own
# redis-server on a free loopback port and stops it by pid.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${TW_BENCH_BUILD:-$root/build-bench}

missing=""
for p in python3-zmq python3-msgpack python3-celery python3-rq \
         python3-redis redis-server; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >&2
fi

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DTW_BUILD_TESTS=OFF -DTW_BUILD_BENCH=ON >/dev/null
ninja -C "$build" taskwheel-broker taskwheel-worker taskwheel >/dev/null

TW_BROKER_BIN=$build/broker/taskwheel-broker \
TW_WORKER_BIN=$build/worker/taskwheel-worker \
TW_CLI_BIN=$build/client/taskwheel \
    exec /usr/bin/python3 "$root/bench/tw_python.py" "$@"
