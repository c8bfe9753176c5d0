#!/usr/bin/env bash
# tests/deploy/cluster-port-taken.sh - deploy/local-cluster.sh refuses to
# go on when its broker cannot start.
#
# Another broker already holds the ports. local-cluster.sh must say that
# its broker did not start (naming the cause and the ports), exit 1, and
# never run its demo against the broker that answers on those ports: that
# broker sees no worker and no submission.
. "$(dirname "$0")/lib.sh"

base=$(tw_free_ports)
front=tcp://127.0.0.1:$base
tw_bg other.log "$build/broker/taskwheel-broker" --frontend "$front" \
    --backend "tcp://127.0.0.1:$((base + 1))" \
    --status "tcp://127.0.0.1:$((base + 2))" --data "$tmp/other"
other=$tw_last
tw_wait_log other.log 'id=broker.start' "$other" 60 ||
    tw_fail "the other broker did not start"
tw_say "another broker holds ports $base-$((base + 2))"

rc=0
"$src/deploy/local-cluster.sh" --port "$base" --build "$build" \
    --var "$tmp/var" --for 30 >"$tmp/cluster.log" 2>&1 || rc=$?
cat "$tmp/cluster.log"
((rc == 1)) || tw_fail "local-cluster.sh exited $rc, not 1"
grep -q 'the broker did not start' "$tmp/cluster.log" ||
    tw_fail "no clear message"
grep -q 'Address already in use' "$tmp/cluster.log" ||
    tw_fail "the message does not give the cause"
grep -q "ports $base-$((base + 2))" "$tmp/cluster.log" ||
    tw_fail "the message does not name the ports"
! grep -q 'demo tasks' "$tmp/cluster.log" || tw_fail "the demo ran"

submitted=$(tw_status_field "$front" submitted)
workers=$(tw_status_field "$front" workers)
[[ "$submitted" == 0 && "$workers" == 0 ]] ||
    tw_fail "the other broker got $submitted task(s), $workers worker(s)"
kill -0 "$other" 2>/dev/null || tw_fail "the other broker is gone"
tw_say "ok: exit 1, a clear message, nothing sent to the other broker"
