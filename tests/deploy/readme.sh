#!/usr/bin/env bash
# tests/deploy/readme.sh - the commands README.md prints work as printed.
#
# Two code blocks are run, line by line, each line exactly as README.md
# has it (continuation lines joined):
#
#   "Running it by hand"  against deploy/local-cluster.sh (workers w1 and
#       w2) on free ports, from a directory where build/ is this build.
#       The lines that build, start the broker or start w1 and w2 are what
#       the local cluster does, so they are left out; another worker line
#       runs in the background, pointed at the cluster's moved backend,
#       and the next line waits until that worker has registered. Every other line must
#       exit 0 within 60 s; a line ending in '&' runs in the background
#       and must still run, or have exited 0, at the end; `events` and
#       `station tail` stream until stopped, so for them running on at the
#       timeout (10 s) counts too.
#   "Security"  in an empty directory with the programs on PATH: keys are
#       made, the broker and worker lines run in the background with the
#       ports moved to free ones (and "broker" as 127.0.0.1; the CLI's
#       default endpoint moves with them through TASKWHEEL_BROKER), and
#       the CURVE client's `status` must answer.
#
# A block that cannot be found fails the test, so renaming a section
# cannot silently skip it. First, the "Layout" table must have one row for
# each top-level folder git tracks (but hidden ones), and no other.
. "$(dirname "$0")/lib.sh"

# The sh block under heading $1, one command per line.
readme_block() {
    python3 - "$src/README.md" "$1" <<'PY'
import sys
text = open(sys.argv[1]).read().split("\n")
head = sys.argv[2]
try:
    i = text.index(head)
    i = text.index("```sh", i)
    j = text.index("```", i + 1)
except ValueError:
    raise SystemExit("README.md: no sh block under '%s'" % head)
cmd = ""
for line in text[i + 1:j]:
    if line.endswith("\\"):
        cmd += line[:-1]
        continue
    cmd += line
    print(cmd)
    cmd = ""
PY
}

# Run one README line in the current directory.
run_line() {
    local line=$1 n=$((++nline)) rc=0 limit=60 stream=0
    if [[ "$line" =~ taskwheel\ (events|station\ tail) ]]; then
        limit=10 stream=1
    fi
    if [[ "$line" =~ ^(.*[^[:space:]])[[:space:]]*\&[[:space:]]*(#.*)?$ ]]; then
        tw_say "\$ $line"
        tw_bg "line-$n.log" bash -c "${BASH_REMATCH[1]}"
        background+=("$tw_last:$n")
        return
    fi
    tw_say "\$ $line"
    timeout "$limit" bash -c "$line" >"$tmp/line-$n.log" 2>&1 </dev/null ||
        rc=$?
    if ((rc == 124 && stream)); then
        return
    fi
    ((rc == 0)) || tw_fail "exit $rc: $line"
}

# The number of workers the broker at $TASKWHEEL_BROKER knows.
count_workers() {
    "$tw" --json workers 2>/dev/null | grep -o '"id"' | wc -l
}

# A README line that starts a worker ("... &"): run it in the background
# with --broker BACKEND added, and wait until it has registered.
start_worker() {
    local line=$1 backend=$2 n=$((++nline)) before
    line=${line%%#*}
    line=${line%"${line##*[![:space:]]}"}
    line=${line%&}
    line=${line%"${line##*[![:space:]]}"}
    before=$(count_workers)
    tw_say "\$ $line --broker $backend &"
    tw_bg "line-$n.log" bash -c "$line --broker $backend"
    background+=("$tw_last:$n")
    local deadline=$((SECONDS + 60))
    while (($(count_workers) <= before)); do
        ((SECONDS < deadline)) || tw_fail "the worker of line $n did not register"
        kill -0 "$tw_last" 2>/dev/null || tw_fail "the worker of line $n exited"
        sleep 0.05
    done
}

# Background lines: still running, or exited 0.
check_background() {
    local b pid n rc
    for b in "${background[@]}"; do
        pid=${b%%:*} n=${b##*:}
        if ! kill -0 "$pid" 2>/dev/null; then
            rc=0
            wait "$pid" || rc=$?
            ((rc == 0)) || tw_fail "background line $n exited $rc"
        fi
    done
}

# Start a block's commands: the CLI's endpoints at ports BASE.. (the
# defaults, moved), an empty directory DIR under $tmp as the current one.
begin_block() {
    export TASKWHEEL_BROKER=tcp://127.0.0.1:$2
    export TASKWHEEL_STATUS=tcp://127.0.0.1:$(($2 + 2))
    mkdir -p "$tmp/$1"
    cd "$tmp/$1"
    background=()
    ran=0
}

nline=0

# ---- Layout --------------------------------------------------------------
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    # Hidden folders (.ci) are tooling, not part of the layout.
    tracked=$(git -C "$src" ls-files | sed -n 's|^\([^/.][^/]*\)/.*|\1|p' |
        sort -u | sed '/^include$/s|$|/taskwheel|')
    listed=$(sed -n '/^## Layout/,/^## /s#^| `\([^`]*\)/` |.*#\1#p' \
        "$src/README.md" | sort -u)
    [[ "$tracked" == "$listed" ]] ||
        tw_fail "README's layout table lists '$(echo $listed)', git has" \
            "'$(echo $tracked)'"
    tw_say "ok: the layout table lists every folder"
fi

# ---- Running it by hand --------------------------------------------------
mapfile -t lines < <(readme_block "## Running it by hand")
((${#lines[@]} > 5)) || tw_fail "the block 'Running it by hand' is empty"
base=$(tw_free_ports)
tw_bg cluster.log "$src/deploy/local-cluster.sh" --port "$base" \
    --build "$build" --var "$tmp/var" --for 900
cluster=$tw_last
tw_wait_log cluster.log '^running for' "$cluster" 180 ||
    tw_fail "the local cluster did not come up"
begin_block hand "$base"
ln -s "$build" build
ln -s "$src/examples" examples
for line in "${lines[@]}"; do
    case "$line" in
    "" | "#"*) continue ;;
    cmake\ * | ninja\ * | build/broker/taskwheel-broker* | \
        build/worker/taskwheel-worker*--name\ w[12]\ *)
        continue ;; # what local-cluster.sh did
    build/worker/taskwheel-worker*)
        start_worker "$line" "tcp://127.0.0.1:$((base + 1))"
        ran=$((ran + 1))
        continue
        ;;
    esac
    run_line "$line"
    ran=$((ran + 1))
done
check_background
tw_say "ok: $ran commands of 'Running it by hand'"
kill -TERM "$cluster"
rc=0
wait "$cluster" || rc=$?
((rc == 0)) || tw_fail "local-cluster.sh exited $rc after SIGTERM"

# ---- Security ------------------------------------------------------------
mapfile -t lines < <(readme_block "## Security")
((${#lines[@]} > 5)) || tw_fail "the block 'Security' is empty"
base=$(tw_free_ports)
export PATH=$build/client:$build/broker:$build/worker:$PATH
begin_block sec "$base"
for line in "${lines[@]}"; do
    case "$line" in
    "" | "#"*) continue ;;
    esac
    line=${line//:7710/:$base}
    line=${line//:7711/:$((base + 1))}
    line=${line//:7712/:$((base + 2))}
    line=${line//tcp:\/\/broker:/tcp:\/\/127.0.0.1:}
    case "$line" in
    taskwheel-broker\ * | taskwheel-worker\ *)
        n=$((++nline))
        tw_say "\$ $line &"
        tw_bg "line-$n.log" bash -c "$line"
        background+=("$tw_last:$n")
        if [[ "$line" == taskwheel-broker* ]]; then
            tw_wait_log "line-$n.log" 'id=broker.start' "$tw_last" 60 ||
                tw_fail "the CURVE broker did not start"
        fi
        ;;
    *) run_line "$line" ;;
    esac
    ran=$((ran + 1))
done
check_background
tw_say "ok: $ran commands of 'Security'"
