#!/usr/bin/env bash
# deploy/local-cluster.sh - build taskwheel and run a local cluster: one
# broker and two workers on loopback, a few demo tasks, then it waits.
#
#   deploy/local-cluster.sh               run until Ctrl-C
#   deploy/local-cluster.sh --for 30      run 30 seconds, then stop
#   deploy/local-cluster.sh --slots 8     slots per worker (default 4)
#
# Logs and state go under ./var (var/log/*.log; the broker's store in
# var/taskwheel, so a second run picks up where the first stopped; remove
# the directory to start empty). Everything started here is
# stopped by pid when the script ends, however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

for_secs=0
slots=4
while (($#)); do
    case "$1" in
    --for) for_secs=${2:?--for needs SECONDS}; shift 2 ;;
    --slots) slots=${2:?--slots needs N}; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "local-cluster.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

deploy/install-deps.sh
if [[ ! -f build/build.ninja ]]; then
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
ninja -C build taskwheel-broker taskwheel-worker taskwheel >/dev/null

bin="$top/build"
mkdir -p var/taskwheel var/log
export TASKWHEEL_BROKER=tcp://127.0.0.1:7710
export TASKWHEEL_STATUS=tcp://127.0.0.1:7712
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

"$bin/broker/taskwheel-broker" --data var/taskwheel >var/log/broker.log 2>&1 &
pids+=($!)
for i in 1 2; do
    "$bin/worker/taskwheel-worker" --broker tcp://127.0.0.1:7711 \
        --slots "$slots" --name "local-$i" >"var/log/worker-$i.log" 2>&1 &
    pids+=($!)
done

# Wait until both workers have registered.
for _ in $(seq 100); do
    n=$("$tw" --json workers 2>/dev/null | grep -o '"id"' | wc -l || true)
    [[ "$n" -ge 2 ]] && break
    sleep 0.1
done

echo "broker   frontend tcp://127.0.0.1:7710  backend :7711  status :7712"
echo "workers  2 x $slots slots; logs in var/log/"
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
cat <<'MSG'
try, in another terminal (export TASKWHEEL_BROKER=tcp://127.0.0.1:7710):
  build/client/taskwheel submit echo '[1, 2, 3]' --wait
  build/client/taskwheel status
  build/client/taskwheel events            # live status stream, Ctrl-C ends
  examples/monitor.py                      # the same from Python (python3-zmq)
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
