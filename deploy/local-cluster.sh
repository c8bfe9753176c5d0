#!/usr/bin/env bash
# deploy/local-cluster.sh - build taskwheel and run a local cluster: one
# broker and two workers (named w1 and w2) on loopback, a few demo tasks,
# then it waits.
#
#   deploy/local-cluster.sh               run until Ctrl-C
#   deploy/local-cluster.sh --for 30      run 30 seconds, then stop
#   deploy/local-cluster.sh --slots 8     slots per worker (default 4)
#   deploy/local-cluster.sh --port 7810   ports 7810-7812 (default 7710)
#   deploy/local-cluster.sh --var DIR     logs and state in DIR (./var)
#   deploy/local-cluster.sh --build DIR   use the programs built in DIR;
#                                         install and build nothing
#
# Logs and state go under ./var (var/log/*.log; the broker's store in
# var/taskwheel, so a second run picks up where the first stopped; remove
# the directory to start empty). If the broker does not start (a port in
# use, another broker on the store), or a worker does not register, the
# script says so and exits 1 without running anything. Everything started
# here is stopped by pid when the script ends, however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

for_secs=0
slots=4
port=7710
var=var
build=""
while (($#)); do
    case "$1" in
    --for) for_secs=${2:?--for needs SECONDS}; shift 2 ;;
    --slots) slots=${2:?--slots needs N}; shift 2 ;;
    --port) port=${2:?--port needs a port}; shift 2 ;;
    --var) var=${2:?--var needs a directory}; shift 2 ;;
    --build) build=${2:?--build needs a build directory}; shift 2 ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "local-cluster.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65533)); then
    echo "local-cluster.sh: --port needs a number from 1 to 65533" >&2
    exit 2
fi

if [[ -z "$build" ]]; then
    deploy/install-deps.sh
    if [[ ! -f build/build.ninja ]]; then
        cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    fi
    ninja -C build taskwheel-broker taskwheel-worker taskwheel >/dev/null
    build=build
fi
bin=$(cd "$build" && pwd)
for p in broker/taskwheel-broker worker/taskwheel-worker client/taskwheel; do
    if [[ ! -x "$bin/$p" ]]; then
        echo "local-cluster.sh: $bin/$p is not built" >&2
        exit 1
    fi
done

mkdir -p "$var/taskwheel" "$var/log"
front=tcp://127.0.0.1:$port
back=tcp://127.0.0.1:$((port + 1))
status=tcp://127.0.0.1:$((port + 2))
export TASKWHEEL_BROKER=$front
export TASKWHEEL_STATUS=$status
tw="$bin/client/taskwheel"

pids=()
sleeper=""
stop_all() {
    trap - EXIT INT TERM
    [[ -z "$sleeper" ]] || kill "$sleeper" 2>/dev/null || true
    echo
    echo "stopping the cluster..." >&2
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    echo "stopped." >&2
}
trap stop_all EXIT
trap 'exit 0' INT TERM

# Say why and stop, before anything talks to a broker that is not ours.
give_up() {
    echo "local-cluster.sh: $*" >&2
    exit 1
}

"$bin/broker/taskwheel-broker" --frontend "$front" --backend "$back" \
    --status "$status" --data "$var/taskwheel" >"$var/log/broker.log" 2>&1 &
broker=$!
pids+=("$broker")

# The broker logs broker.start once all three sockets are bound; until
# then a broker answering on the port may be another one. If ours exits
# first (a port in use, a store another broker holds), say so and stop.
started=0
for _ in $(seq 300); do
    if grep -q 'id=broker.start' "$var/log/broker.log" 2>/dev/null; then
        started=1
        break
    fi
    kill -0 "$broker" 2>/dev/null || break
    sleep 0.1
done
if ((!started)); then
    why=$(grep -E 'level=(err|warn)' "$var/log/broker.log" 2>/dev/null |
        tail -n 1 | sed -E 's/.* msg="?//; s/"$//')
    if kill -0 "$broker" 2>/dev/null; then
        give_up "the broker did not finish starting within 30 s" \
            "(log: $var/log/broker.log)"
    fi
    give_up "the broker did not start: ${why:-see $var/log/broker.log}." \
        "Is another broker using ports $port-$((port + 2)) or" \
        "$var/taskwheel? Stop it, or pick other ports with --port."
fi

for i in 1 2; do
    "$bin/worker/taskwheel-worker" --broker "$back" \
        --slots "$slots" --name "w$i" >"$var/log/worker-$i.log" 2>&1 &
    pids+=($!)
done

# Wait until both workers have registered.
n=0
for _ in $(seq 300); do
    n=$("$tw" --json workers 2>/dev/null | grep -o '"id"' | wc -l || true)
    [[ "$n" -ge 2 ]] && break
    sleep 0.1
done
if [[ "$n" -lt 2 ]]; then
    give_up "$n of 2 workers registered within 30 s (logs: $var/log/)"
fi

echo "broker   frontend $front  backend :$((port + 1))  status :$((port + 2))"
echo "workers  w1, w2: $slots slots each; logs in $var/log/"
echo
echo "demo tasks:"
demo() {
    echo "\$ taskwheel $*"
    "$tw" "$@" || echo "  (exit status $?: the task failed, as it should)"
}
demo submit echo '{"hello": "taskwheel"}' --wait
demo submit exec '["uname", "-sr"]' --wait
demo submit sleep '0.2' --wait
demo submit fail '"a failure, on purpose"' --wait
echo
"$tw" workers
echo
cat <<MSG
try, in another terminal (export TASKWHEEL_BROKER=$front
     TASKWHEEL_STATUS=$status):
  build/client/taskwheel submit echo '[1, 2, 3]' --wait
  build/client/taskwheel status
  build/client/taskwheel workers resize w1 8
  build/client/taskwheel events            # live status stream, Ctrl-C ends
  examples/monitor.py                      # the same from Python (python3-zmq)
or any command of README.md's "Running it by hand".
MSG
# Sleep in the background and wait: bash runs the INT/TERM trap at once
# during `wait`, but only after a foreground sleep has ended.
if ((for_secs > 0)); then
    echo "running for $for_secs s..."
    sleep "$for_secs" &
    sleeper=$!
    wait $!
else
    echo "running; Ctrl-C stops the cluster."
    while :; do
        sleep 3600 &
        sleeper=$!
        wait $!
    done
fi
