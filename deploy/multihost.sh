#!/usr/bin/env bash
# deploy/multihost.sh - a taskwheel cluster spread over several "hosts" on
# one machine: each host is a network namespace (with its own hostname)
# plugged by a veth link into a bridge, like machines on one LAN.
#
#   broker host   10.77.0.1     taskwheel-broker on :7710 :7711 :7712
#   monitor host  10.77.0.2     a status monitor (examples/monitor.py)
#   backup host   10.77.0.3     with --pair: the second broker of a pair
#   worker hosts  10.77.0.11..  one taskwheel-worker each (w1, w2, ...)
#
# With --pair the broker host runs the primary and the backup host the
# backup of a broker pair (docs/HA.md), peer sockets on :7713, each with
# its own store; workers and the CLI are given both endpoints.
#
# The bridge lives in a namespace of its own, so nothing changes in the
# machine's own network. Needs root, iproute2 and util-linux (unshare).
#
# Usage: deploy/multihost.sh [OPTIONS] COMMAND [ARGS]
#
#   up [N]                 create the hosts, start the broker, N workers
#                          (default 3) and the monitor, then return
#   run [N]                up, then wait until Ctrl-C (or --for S), down
#   demo [N]               up, show stations and tasks moving as workers
#                          come and go, then wait like run
#   add-worker             add one worker host; prints its name (w4...)
#   remove-worker [HOST]   drain a worker host through the broker
#                          (`taskwheel workers drain HOST`, or SIGTERM if
#                          that fails: its stations move to the others,
#                          running tasks finish), wait for the worker to
#                          exit, check it exited 0, delete the host;
#                          default: the newest worker host
#   status                 hosts, processes, workers, stations, monitor
#   cli ARGS...            run the taskwheel CLI on the monitor host
#   exec HOST CMD...       run a command on a host (broker, monitor, w1..)
#   cut A B                cut the links between hosts A and B both ways
#                          (blackhole routes: packets vanish, nothing
#                          closes); A or B may be "workers" (every worker
#                          host) or "brokers" (broker and backup)
#   heal A B               undo cut A B
#   kill-broker [HOST] [SIG]  send SIG (default KILL) to the broker on HOST
#                          (default broker) and wait until it is gone
#   start-broker [HOST]    start the broker on HOST again, as `up` did (on
#                          its store, with --data or --pair)
#   wipe [HOST]            delete the stopped broker's data directory on
#                          HOST (default broker)
#   logs [LINES]           the tail of every log
#   down                   stop every process, delete every host
#
# Options:
#   --name TAG       cluster name, a prefix of its namespaces (default twmh)
#   --state DIR      logs and settings (default /run/taskwheel-multihost/TAG)
#   --bin DIR        a build directory holding broker/, worker/, client/
#                    (default: the repository's build/, else $PATH); the
#                    variables TW_BROKER_BIN, TW_WORKER_BIN and TW_CLI_BIN
#                    name single programs and win over both
#   --slots N        slots per worker (default 4)
#   --heartbeat MS   the broker's heartbeat interval (default 1000)
#   --data           give the broker a store ($STATE/data/HOST), so that
#                    kill-broker and start-broker keep its state
#   --pair           a broker pair: primary on the broker host, backup on
#                    the backup host (implies --data)
#   --replicate M    with --pair: sync (default) or async
#   --for S          run, demo: stop after S seconds instead of Ctrl-C
#
# Exit status: 0 ok, 1 failure, 2 usage error, 77 skipped (not root, or
# network namespaces cannot be created here). `run` and `demo` tear the
# cluster down however they end; after `up`, call `down`.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
prog=multihost.sh

TAG=twmh
STATE=""
BIN_DIR=""
SLOTS=4
HEARTBEAT=1000
FOR_SECS=0
DATA=0
PAIR=0
REPLICATE=sync
NET=10.77.0
PORTS=(7710 7711 7712 7713)
BROKER_IP=$NET.1
MONITOR_IP=$NET.2
BACKUP_IP=$NET.3
STATUS=tcp://$BROKER_IP:${PORTS[2]}
MAX_WORKERS=200
SLEEPER=""

say() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { say "$*"; exit 1; }
usage_error() { say "$*"; echo "try: $prog --help" >&2; exit 2; }
skip() {
    say "SKIP: $*"
    exit 77
}
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# ------------------------------------------------------------- settings ---

parse_options() {
    ARGS=()
    while (($#)); do
        # Everything after "cli" or "exec" belongs to that command.
        if ((${#ARGS[@]})) &&
            [[ "${ARGS[0]}" == cli || "${ARGS[0]}" == exec ]]; then
            ARGS+=("$@")
            break
        fi
        case "$1" in
        --name) TAG=${2:?--name needs TAG}; shift 2 ;;
        --state) STATE=${2:?--state needs DIR}; shift 2 ;;
        --bin) BIN_DIR=${2:?--bin needs DIR}; shift 2 ;;
        --slots) SLOTS=${2:?--slots needs N}; shift 2 ;;
        --heartbeat) HEARTBEAT=${2:?--heartbeat needs MS}; shift 2 ;;
        --data) DATA=1; shift ;;
        --pair) PAIR=1; DATA=1; shift ;;
        --replicate) REPLICATE=${2:?--replicate needs sync or async}
                     shift 2 ;;
        --for) FOR_SECS=${2:?--for needs SECONDS}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        -*) usage_error "unknown option '$1'" ;;
        *) ARGS+=("$1"); shift ;;
        esac
    done
    [[ "$TAG" =~ ^[a-z0-9][a-z0-9-]{0,23}$ ]] ||
        usage_error "--name: use 1-24 of a-z, 0-9 and '-'"
    [[ "$SLOTS" =~ ^[0-9]+$ && "$SLOTS" -ge 1 ]] ||
        usage_error "--slots: a whole number >= 1"
    [[ "$HEARTBEAT" =~ ^[0-9]+$ ]] || usage_error "--heartbeat: milliseconds"
    [[ "$FOR_SECS" =~ ^[0-9]+$ ]] || usage_error "--for: whole seconds"
    [[ "$REPLICATE" == sync || "$REPLICATE" == async ]] ||
        usage_error "--replicate: sync or async"
    if [[ -n "$BIN_DIR" ]]; then
        BIN_DIR=$(cd "$BIN_DIR" && pwd) || usage_error "--bin: no $BIN_DIR"
    fi
    STATE=${STATE:-/run/taskwheel-multihost/$TAG}
    SW=$TAG-sw
}

# Where a program is: $TW_*_BIN, then --bin, then build/, then $PATH.
find_program() {
    local override=$1 rel=$2 name=$3
    if [[ -n "$override" ]]; then
        echo "$override"
    elif [[ -n "$BIN_DIR" ]]; then
        echo "$BIN_DIR/$rel"
    elif [[ -x "$top/build/$rel" ]]; then
        echo "$top/build/$rel"
    else
        command -v "$name" || echo "$name"
    fi
}

resolve_programs() {
    BROKER_BIN=$(find_program "${TW_BROKER_BIN:-}" \
        broker/taskwheel-broker taskwheel-broker)
    WORKER_BIN=$(find_program "${TW_WORKER_BIN:-}" \
        worker/taskwheel-worker taskwheel-worker)
    CLI_BIN=$(find_program "${TW_CLI_BIN:-}" client/taskwheel taskwheel)
}

# Settings chosen at `up` are saved so that later commands use the same.
save_settings() {
    mkdir -p "$STATE/log"
    {
        printf 'BROKER_BIN=%q\n' "$BROKER_BIN"
        printf 'WORKER_BIN=%q\n' "$WORKER_BIN"
        printf 'CLI_BIN=%q\n' "$CLI_BIN"
        printf 'SLOTS=%q\n' "$SLOTS"
        printf 'HEARTBEAT=%q\n' "$HEARTBEAT"
        printf 'DATA=%q\n' "$DATA"
        printf 'PAIR=%q\n' "$PAIR"
        printf 'REPLICATE=%q\n' "$REPLICATE"
    } >"$STATE/settings"
}

load_settings() {
    if [[ -f "$STATE/settings" ]]; then
        # shellcheck disable=SC1091
        . "$STATE/settings"
    else
        resolve_programs
    fi
}

# ------------------------------------------------------------ privileges ---

require_netns() {
    if [[ $(id -u) -ne 0 ]]; then
        skip "network namespaces need root; run: sudo $0 ${ARGS[*]}"
    fi
    command -v ip >/dev/null || skip "'ip' (iproute2) is not installed"
    command -v unshare >/dev/null ||
        skip "'unshare' (util-linux) is not installed"
    local probe=$TAG-probe err
    if ! err=$(ip netns add "$probe" 2>&1); then
        skip "cannot create a network namespace here: $err"
    fi
    ip netns del "$probe" 2>/dev/null || true
}

# ------------------------------------------------------------ the hosts ---

ns_of() { echo "$TAG-$1"; }
ns_exists() { [[ -e "/run/netns/$1" ]]; }

# Every namespace of this cluster, the switch last.
cluster_namespaces() {
    local n
    for n in $(ip netns list 2>/dev/null | awk '{print $1}'); do
        case "$n" in
        "$TAG"-broker | "$TAG"-backup | "$TAG"-monitor | "$TAG"-w[0-9]*)
            echo "$n" ;;
        esac
    done
    ns_exists "$SW" && echo "$SW"
    return 0
}

worker_hosts() {
    local n
    for n in $(ip netns list 2>/dev/null | awk '{print $1}' | sort -V); do
        [[ "$n" =~ ^$TAG-(w[0-9]+)$ ]] && echo "${BASH_REMATCH[1]}"
    done
    return 0
}

make_switch() {
    ip netns add "$SW"
    ip -n "$SW" link set lo up
    ip -n "$SW" link add br0 type bridge
    ip -n "$SW" link set br0 type bridge forward_delay 0 2>/dev/null || true
    ip -n "$SW" link set br0 up
}

# make_host HOST ADDRESS: a namespace with eth0 on the bridge.
make_host() {
    local host=$1 addr=$2 ns
    ns=$(ns_of "$host")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$SW" link add "p-$host" type veth peer name eth0 netns "$ns"
    ip -n "$SW" link set "p-$host" master br0 up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
}

# start_on HOST NAME CMD...: start CMD on HOST in its own session, with the
# hostname HOST, output to $STATE/log/NAME.log; its pid goes to
# $STATE/NAME.pid. The pid is CMD's own (ip, unshare and sh all exec).
start_on() {
    local host=$1 name=$2
    shift 2
    # shellcheck disable=SC2016  # $0 and $@ belong to the inner sh
    setsid ip netns exec "$(ns_of "$host")" unshare --uts \
        sh -c 'hostname "$0" && exec "$@"' "$host" "$@" \
        </dev/null >>"$STATE/log/$name.log" 2>&1 &
    echo $! >"$STATE/$name.pid"
}

on_host() {
    local host=$1
    shift
    ip netns exec "$(ns_of "$host")" "$@"
}

# The CLI as a user on the monitor host would run it (given both brokers
# of a pair).
cli() {
    on_host monitor env TASKWHEEL_BROKER="$(frontends)" \
        TASKWHEEL_STATUS="$STATUS" "$CLI_BIN" "$@"
}

# The CLI on the monitor host, for the broker on HOST alone.
cli_at() {
    local host=$1
    shift
    on_host monitor env TASKWHEEL_BROKER="tcp://$(host_ip "$host"):${PORTS[0]}" \
        TASKWHEEL_STATUS="tcp://$(host_ip "$host"):${PORTS[2]}" \
        "$CLI_BIN" "$@"
}

broker_hosts() {
    echo broker
    ((PAIR)) && echo backup
    return 0
}

# The brokers' endpoints on port index $1, comma-separated.
endpoints() {
    local port=${PORTS[$1]} list="" h
    for h in $(broker_hosts); do
        list+=${list:+,}tcp://$(host_ip "$h"):$port
    done
    echo "$list"
}
frontends() { endpoints 0; }
backends() { endpoints 1; }

host_ip() {
    case "$1" in
    broker) echo "$BROKER_IP" ;;
    monitor) echo "$MONITOR_IP" ;;
    backup) echo "$BACKUP_IP" ;;
    w[0-9]*) echo "$NET.$((10 + ${1#w}))" ;;
    *) return 1 ;;
    esac
}

# A pid that exists and is not a zombie (our own children stay zombies
# until this script ends).
pid_alive() {
    local st
    [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null || return 1
    st=$(sed 's/.*) //; s/ .*//' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ "$st" != Z ]]
}
pid_of() { cat "$STATE/$1.pid" 2>/dev/null || true; }

# wait_for SECONDS CMD...: retry CMD every 0.1 s until it succeeds.
wait_for() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

worker_count() {
    cli --json workers 2>/dev/null | grep -o '"id"' | wc -l
}

workers_at_least() { [[ $(worker_count) -ge $1 ]]; }

# start_broker [HOST]: the broker on HOST (broker or backup), answering
# within 10 s; on its store with --data or --pair.
start_broker() {
    local host=${1:-broker} ip extra=() peer
    ip=$(host_ip "$host")
    # Plaintext on a non-loopback address may need an explicit opt-in.
    if "$BROKER_BIN" --help 2>/dev/null | grep -q -- '--insecure'; then
        extra+=(--insecure)
    fi
    if ((DATA)); then
        mkdir -p "$STATE/data"
        extra+=(--data "$STATE/data/$host")
    fi
    if ((PAIR)); then
        if [[ "$host" == broker ]]; then peer=$BACKUP_IP; else peer=$BROKER_IP; fi
        extra+=(--role "$(role_of "$host")"
            --peer-bind "tcp://$ip:${PORTS[3]}"
            --peer "tcp://$peer:${PORTS[3]}" --replicate "$REPLICATE")
    fi
    start_on "$host" "$host" "$BROKER_BIN" --frontend "tcp://$ip:${PORTS[0]}" \
        --backend "tcp://$ip:${PORTS[1]}" --status "tcp://$ip:${PORTS[2]}" \
        --heartbeat "$HEARTBEAT" "${extra[@]}"
    # A broker of a pair answers `status` whether active or passive; a
    # single broker answers ping.
    local probe=ping
    ((PAIR)) && probe=status
    if ! wait_for 10 cli_at "$host" "$probe"; then
        tail -n 20 "$STATE/log/$host.log" >&2 || true
        die "the broker on $host ($ip) does not answer"
    fi
}

role_of() {
    if [[ "$1" == broker ]]; then echo primary; else echo backup; fi
}

# The broker of a pair must know --role (docs/HA.md).
require_pair_broker() {
    "$BROKER_BIN" --help 2>&1 | grep -q -- '--role' ||
        die "$BROKER_BIN has no --role: this build cannot run a broker pair"
}

# start_worker HOST: like start_on, but a shell stays behind the worker to
# write its exit status to $STATE/HOST.exit, so that remove-worker can tell
# a clean drain (0) from a forced stop. $STATE/HOST.pid is the worker's own
# pid, written by that shell.
start_worker() {
    local host=$1 i
    rm -f "$STATE/$host.pid" "$STATE/$host.exit"
    # shellcheck disable=SC2016  # $0 and $@ belong to the inner sh
    setsid ip netns exec "$(ns_of "$host")" unshare --uts \
        sh -c 'f=$1; shift; hostname "$0" || exit 1
               "$@" </dev/null & p=$!
               echo $p >"$f.pid.new" && mv "$f.pid.new" "$f.pid"
               wait $p; echo $? >"$f.exit.new" && mv "$f.exit.new" "$f.exit"' \
        "$host" "$STATE/$host" "$WORKER_BIN" --broker "$(backends)" \
        --slots "$SLOTS" --name "$host" \
        </dev/null >>"$STATE/log/$host.log" 2>&1 &
    for ((i = 0; i < 50; i++)); do
        [[ -s "$STATE/$host.pid" ]] && return 0
        sleep 0.1
    done
    die "worker host $host: the worker did not start ($STATE/log/$host.log)"
}

start_monitor() {
    local py=/usr/bin/python3
    if [[ -x $py ]] && $py -c 'import zmq, msgpack' 2>/dev/null; then
        start_on monitor monitor $py -u "$top/examples/monitor.py" \
            --endpoint "$STATUS" worker. station.
        # It prints this once the broker confirmed its subscriptions
        # (PROTOCOL.md 8.2): what happens after `up` is in its log.
        wait_for 30 grep -q "subscribed at" "$STATE/log/monitor.log" ||
            say "the monitor did not subscribe within 30 s"
    else
        start_on monitor monitor "$CLI_BIN" --status "$STATUS" events \
            worker. station.
    fi
}

next_worker_index() {
    local n=1 f=$STATE/next-worker
    [[ -f $f ]] && n=$(cat "$f")
    echo $((n + 1)) >"$f"
    echo "$n"
}

# add_worker_host: prints the new host's name.
add_worker_host() {
    local k host
    k=$(next_worker_index)
    ((k <= MAX_WORKERS)) || die "at most $MAX_WORKERS worker hosts"
    host=w$k
    make_host "$host" "$NET.$((10 + k))"
    start_worker "$host"
    echo "$host"
}

# ------------------------------------------------------------- teardown ---

# stop_pids SECONDS PID...: SIGTERM, wait, then SIGKILL what is left.
stop_pids() {
    local secs=$1 p i alive
    shift
    (($#)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        alive=0
        for p in "$@"; do pid_alive "$p" && alive=1; done
        ((alive)) || return 0
        sleep 0.1
    done
    kill -KILL "$@" 2>/dev/null || true
    return 0
}

down_all() {
    local ns p pids=() n=0
    for ns in $(cluster_namespaces); do
        # Every process on the host, except this script and whoever ran it
        # from there (a shell on the monitor host, a test that joined it).
        for p in $(ip netns pids "$ns" 2>/dev/null || true); do
            [[ "$p" == "$$" || "$p" == "$PPID" ]] || pids+=("$p")
        done
        n=$((n + 1))
    done
    stop_pids 15 "${pids[@]}"
    for ns in $(cluster_namespaces); do
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -f "$STATE"/*.pid "$STATE"/*.exit "$STATE/next-worker" \
        2>/dev/null || true
    ((n == 0)) ||
        say "down: $TAG stopped (${#pids[@]} processes, $n namespaces)"
}

# ------------------------------------------------------------- commands ---

cmd_up() {
    local n=${1:-3} i host
    [[ "$n" =~ ^[0-9]+$ ]] || usage_error "up: N is a number of worker hosts"
    require_netns
    if ns_exists "$SW"; then
        die "cluster '$TAG' is already up (use down first, or --name)"
    fi
    resolve_programs
    local b
    for b in "$BROKER_BIN" "$WORKER_BIN" "$CLI_BIN"; do
        [[ -x "$b" ]] || die "$b: not found (build first, or use --bin DIR)"
    done
    ((PAIR)) && require_pair_broker
    rm -rf "$STATE/log" "$STATE/data"
    save_settings
    # Half a cluster is worse than none.
    trap 'say "up failed, tearing down"; down_all' EXIT
    if ! make_switch 2>"$STATE/log/switch.err"; then
        local err
        err=$(cat "$STATE/log/switch.err")
        down_all
        trap - EXIT
        skip "cannot build the bridge and veth links: $err"
    fi
    make_host broker "$BROKER_IP"
    make_host monitor "$MONITOR_IP"
    ((PAIR)) && make_host backup "$BACKUP_IP"
    local h
    for h in $(broker_hosts); do
        start_broker "$h"
    done
    start_monitor
    # One at a time, so that worker ids follow the host numbers.
    for ((i = 1; i <= n; i++)); do
        host=$(add_worker_host)
        wait_for 15 workers_at_least "$i" ||
            die "worker host $host did not register ($STATE/log/$host.log)"
        echo "worker host $host at $NET.$((10 + ${host#w}))" >&2
    done
    trap - EXIT
    local pair=""
    ((PAIR)) && pair=", backup $BACKUP_IP (a pair, $REPLICATE)"
    cat >&2 <<EOF
$prog: cluster '$TAG' is up: broker $BROKER_IP (hostname broker)$pair, $n worker
  host(s), monitor $MONITOR_IP. Logs in $STATE/log/.
  $0 --name $TAG cli workers
  $0 --name $TAG status
  $0 --name $TAG down
EOF
}

cmd_add_worker() {
    require_cluster
    local host before
    before=$(worker_count)
    host=$(add_worker_host)
    if ! wait_for 15 workers_at_least $((before + 1)); then
        tail -n 20 "$STATE/log/$host.log" >&2 || true
        die "worker host $host did not register"
    fi
    say "added worker host $host ($NET.$((10 + ${host#w})))"
    echo "$host"
}

cmd_remove_worker() {
    require_cluster
    local host=${1:-} pid t0 i code="" ok=1
    if [[ -z "$host" ]]; then
        host=$(worker_hosts | tail -n 1)
        [[ -n "$host" ]] || die "no worker host to remove"
    fi
    [[ "$host" =~ ^w[0-9]+$ ]] || host=w$host
    ns_exists "$(ns_of "$host")" || die "no worker host $host"
    pid=$(pid_of "$host")
    t0=$SECONDS
    if pid_alive "$pid"; then
        # The operator's path (docs/OPERATIONS.md): the broker stops
        # giving the worker work at once and tells it to drain; the
        # worker releases its stations, finishes its tasks, says BYE and
        # exits 0. SIGTERM does the same from the worker's side, without
        # the broker knowing until the BYE: the fallback.
        say "draining $host: taskwheel workers drain $host"
        if ! cli workers drain "$host" >&2; then
            say "workers drain failed; SIGTERM to $host (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
        fi
        # The worker's drain-timeout is 10 s by default; leave room for
        # the stations' last iterations.
        for ((i = 0; i < 300; i++)); do
            pid_alive "$pid" || break
            sleep 0.1
        done
        if pid_alive "$pid"; then
            say "$host did not stop within 30 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            ok=0
        fi
        for ((i = 0; i < 20; i++)); do
            [[ -s "$STATE/$host.exit" ]] && break
            sleep 0.1
        done
        code=$(cat "$STATE/$host.exit" 2>/dev/null || true)
        if [[ "$code" != 0 ]]; then
            say "the worker on $host exited with status ${code:-unknown}"
            ok=0
        else
            say "the worker on $host drained and exited 0"
        fi
    fi
    # shellcheck disable=SC2046
    stop_pids 5 $(ip netns pids "$(ns_of "$host")" 2>/dev/null || true)
    ip netns del "$(ns_of "$host")"
    rm -f "$STATE/$host.pid"
    say "removed worker host $host after $((SECONDS - t0)) s"
    ((ok)) || return 1
}

# The hosts a name stands for: "workers", "brokers" or one host.
hosts_of() {
    case "$1" in
    workers) worker_hosts ;;
    brokers) broker_hosts ;;
    *)
        if ! host_ip "$1" >/dev/null || ! ns_exists "$(ns_of "$1")"; then
            die "no host $1"
        fi
        echo "$1"
        ;;
    esac
}

# cut_links add|del A B: a blackhole route to each B host on each A host
# and back. A packet to a blackhole vanishes; established connections
# stay open and hear nothing, as behind a dead switch port.
cut_links() {
    local op=$1 a b n=0
    for a in $(hosts_of "$2"); do
        for b in $(hosts_of "$3"); do
            [[ "$a" != "$b" ]] || continue
            if [[ "$op" == add ]]; then
                on_host "$a" ip route replace blackhole "$(host_ip "$b")/32"
                on_host "$b" ip route replace blackhole "$(host_ip "$a")/32"
            else
                on_host "$a" ip route del blackhole "$(host_ip "$b")/32" \
                    2>/dev/null || true
                on_host "$b" ip route del blackhole "$(host_ip "$a")/32" \
                    2>/dev/null || true
            fi
            n=$((n + 1))
        done
    done
    ((n > 0)) || die "no link between '$2' and '$3'"
}

cmd_cut() {
    require_cluster
    [[ $# -eq 2 ]] || usage_error "cut A B"
    hosts_of "$1" >/dev/null
    hosts_of "$2" >/dev/null
    cut_links add "$1" "$2"
    say "cut: $1 <-/-> $2"
}

cmd_heal() {
    require_cluster
    [[ $# -eq 2 ]] || usage_error "heal A B"
    hosts_of "$1" >/dev/null
    hosts_of "$2" >/dev/null
    cut_links del "$1" "$2"
    say "healed: $1 <---> $2"
}

# A broker host of this cluster.
broker_host_arg() {
    local host=${1:-broker}
    [[ "$host" == broker || ("$host" == backup && $PAIR -eq 1) ]] ||
        die "no broker on host '$host'"
    echo "$host"
}

cmd_kill_broker() {
    require_cluster
    local host sig=${2:-KILL} pid i
    host=$(broker_host_arg "${1:-}")
    pid=$(pid_of "$host")
    pid_alive "$pid" || die "the broker on $host is not running"
    kill -s "$sig" "$pid" || die "kill -s $sig $pid failed"
    for ((i = 0; i < 150; i++)); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    pid_alive "$pid" && die "the broker on $host (pid $pid) is still running"
    rm -f "$STATE/$host.pid"
    say "the broker on $host (pid $pid) is gone (SIG$sig)"
}

cmd_start_broker() {
    require_cluster
    local host
    host=$(broker_host_arg "${1:-}")
    pid_alive "$(pid_of "$host")" && die "the broker on $host is running"
    start_broker "$host"
    say "the broker on $host runs again (pid $(pid_of "$host"))"
}

cmd_wipe() {
    require_cluster
    local host
    host=$(broker_host_arg "${1:-}")
    pid_alive "$(pid_of "$host")" &&
        die "the broker on $host is running; kill-broker $host first"
    ((DATA)) || die "the brokers of '$TAG' have no store (up --data)"
    rm -rf "${STATE:?}/data/$host"
    say "wiped $STATE/data/$host"
}

require_cluster() {
    [[ $(id -u) -eq 0 ]] || skip "network namespaces need root"
    ns_exists "$SW" || die "cluster '$TAG' is not up (run: $0 --name $TAG up)"
    load_settings
}

cmd_status() {
    require_cluster
    local host ns pid state
    printf '%-8s %-12s %-8s %s\n' HOST ADDRESS PID PROCESS
    for host in $(broker_hosts) monitor $(worker_hosts); do
        ns=$(ns_of "$host")
        pid=$(pid_of "$host")
        state=stopped
        pid_alive "$pid" && state=$(ps -o args= -p "$pid" | cut -c1-60)
        printf '%-8s %-12s %-8s %s\n' "$host" \
            "$(ip -n "$ns" -4 -o addr show dev eth0 2>/dev/null |
                awk '{sub("/.*", "", $4); print $4}')" "${pid:--}" "$state"
    done
    echo
    cli workers || true
    echo
    cli station list || true
    echo
    cli status || true
    if [[ -s "$STATE/log/monitor.log" ]]; then
        echo
        echo "monitor (last lines of $STATE/log/monitor.log):"
        tail -n 8 "$STATE/log/monitor.log"
    fi
}

cmd_logs() {
    local lines=${1:-20} f
    for f in "$STATE"/log/*.log; do
        [[ -e "$f" ]] || continue
        echo "----- $f -----"
        tail -n "$lines" "$f"
    done
}

# Wait until Ctrl-C, SIGTERM or --for seconds; the EXIT trap tears down.
hold() {
    # sleep in the background and wait for it: bash runs a trap at once
    # during `wait`, but only after a foreground command has finished.
    if ((FOR_SECS > 0)); then
        say "running for $FOR_SECS s"
        sleep "$FOR_SECS" &
        SLEEPER=$!
        wait $!
    else
        say "running; Ctrl-C tears the cluster down"
        while :; do
            sleep 3600 &
            SLEEPER=$!
            wait $!
        done
    fi
}

# The EXIT trap of run and demo.
finish() {
    [[ -z "$SLEEPER" ]] || kill "$SLEEPER" 2>/dev/null || true
    down_all
}

cmd_run() {
    cmd_up "${1:-3}"
    trap finish EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    hold
}

demo_step() {
    if [[ -t 1 ]]; then
        printf '\n\033[1m== %s\033[0m\n' "$*"
    else
        printf '\n== %s\n' "$*"
    fi
}

# Show "station list" and, for each station, the host it runs on.
demo_stations() {
    cli station list || true
}

cmd_demo() {
    local n=${1:-3} i new
    cmd_up "$n"
    trap finish EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    demo_step "workers on $n hosts, seen from the monitor host"
    cli workers
    demo_step "tasks: 'hostname' runs on whichever worker host has room"
    for i in 1 2 3 4 5 6; do
        echo "\$ taskwheel submit exec '[\"hostname\"]' --wait"
        cli submit exec '["hostname"]' --wait || true
    done
    demo_step "six counting stations (incr, --next result) over the hosts"
    for i in 1 2 3 4 5 6; do
        cli station add "count-$i" incr 0 --next result --interval 0.5 \
            >/dev/null
    done
    sleep 2
    demo_stations
    demo_step "a new worker host joins; new stations go to it"
    new=$(cmd_add_worker)
    for i in 7 8; do
        cli station add "count-$i" incr 0 --next result --interval 0.5 \
            >/dev/null
    done
    sleep 2
    demo_stations
    demo_step "worker host w1 is drained: its stations move to the others"
    cmd_remove_worker w1
    sleep 2
    demo_stations
    demo_step "what the monitor host saw (examples/monitor.py)"
    tail -n 15 "$STATE/log/monitor.log" || true
    cat >&2 <<EOF

$prog: try, in another terminal:
  $0 --name $TAG cli station show count-1
  $0 --name $TAG cli events station.count-1.
  $0 --name $TAG add-worker ; $0 --name $TAG remove-worker $new
  $0 --name $TAG status
EOF
    hold
}

main() {
    parse_options "$@"
    set -- "${ARGS[@]+"${ARGS[@]}"}"
    local cmd=${1:-}
    [[ -n "$cmd" ]] || { usage >&2; exit 2; }
    shift
    case "$cmd" in
    up) cmd_up "$@" ;;
    run) cmd_run "$@" ;;
    demo) cmd_demo "$@" ;;
    add-worker) cmd_add_worker ;;
    remove-worker) cmd_remove_worker "$@" ;;
    status) cmd_status ;;
    cli) require_cluster; cli "$@" ;;
    exec)
        require_cluster
        [[ $# -ge 2 ]] || usage_error "exec HOST CMD..."
        ns_exists "$(ns_of "$1")" || die "no host $1"
        on_host "$@"
        ;;
    cut) cmd_cut "$@" ;;
    heal) cmd_heal "$@" ;;
    kill-broker) cmd_kill_broker "$@" ;;
    start-broker) cmd_start_broker "$@" ;;
    wipe) cmd_wipe "$@" ;;
    logs) cmd_logs "$@" ;;
    down)
        [[ $(id -u) -eq 0 ]] || skip "network namespaces need root"
        command -v ip >/dev/null || skip "'ip' (iproute2) is not installed"
        down_all
        ;;
    *) usage_error "unknown command '$cmd'" ;;
    esac
}

main "$@"
