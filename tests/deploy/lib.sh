# tests/deploy/lib.sh - what the deploy/ and README checks share; sourced,
# never run. Each check is a ctest "deploy_<name>" run as
#
#   tests/deploy/<name>.sh BUILD_DIR SOURCE_DIR
#
# Helpers: a temporary directory removed at exit, processes started with
# tw_bg and stopped by pid at exit (whatever happens), three consecutive
# free TCP ports, and waits for a log line with a deadline (never a fixed
# sleep). tw_fail prints the logs under the temporary directory.
set -euo pipefail

if (($# != 2)); then
    echo "usage: $0 BUILD_DIR SOURCE_DIR" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
tw=$build/client/taskwheel
tw_name=$(basename "$0" .sh)
tmp=$(mktemp -d "/tmp/tw-$tw_name.XXXXXX")
tw_pids=()

tw_cleanup() {
    local p
    for p in "${tw_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${tw_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ -z "${TW_H_KEEP:-}" ]]; then
        rm -rf "$tmp"
    fi
}
trap tw_cleanup EXIT

tw_say() { printf '%s: %s\n' "$tw_name" "$*"; }

tw_fail() {
    printf '%s: FAILED: %s\n' "$tw_name" "$*" >&2
    local f
    while IFS= read -r f; do
        echo "--- $f" >&2
        tail -n 25 "$f" >&2
    done < <(find "$tmp" -name '*.log' | sort)
    exit 1
}

# Start "$@" in the background, output to $tmp/$log; its pid in $tw_last.
# Usage: tw_bg LOGNAME PROGRAM ARGS...
tw_bg() {
    local log=$1
    shift
    "$@" >"$tmp/$log" 2>&1 &
    tw_last=$!
    tw_pids+=("$tw_last")
}

# The first of three consecutive TCP ports on 127.0.0.1 that were free a
# moment ago.
tw_free_ports() {
    python3 - <<'PY'
import socket
for _ in range(200):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    base = s.getsockname()[1]
    socks = [s]
    try:
        for p in (base + 1, base + 2):
            t = socket.socket()
            socks.append(t)
            t.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        for t in socks:
            t.close()
    print(base)
    break
else:
    raise SystemExit("no three free ports")
PY
}

# Wait until $tmp/LOG holds a line matching the extended regex PATTERN.
# Returns 1 if process PID exits first or SECONDS pass.
# Usage: tw_wait_log LOG PATTERN PID SECONDS
tw_wait_log() {
    local log=$tmp/$1 pattern=$2 pid=$3 deadline=$((SECONDS + $4))
    while ((SECONDS < deadline)); do
        if grep -Eq -- "$pattern" "$log" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            grep -Eq -- "$pattern" "$log" 2>/dev/null
            return
        fi
        sleep 0.05
    done
    return 1
}

# The value of KEY in the JSON of `taskwheel --json status` at ENDPOINT.
# Usage: tw_status_field ENDPOINT KEY
tw_status_field() {
    "$tw" --broker "$1" --json status |
        python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}
