#!/bin/sh
# bench/compare.sh - no-op throughput of two builds, in one run.
#
# Alternates bench-throughput of build A and build B (each with its own
# broker and worker), ROUNDS rounds of RUNS runs each, the side that goes
# first alternating too, so that slow phases of a noisy machine hit both. Every run is also measured against the raw
# relay (docs/BENCHMARKS.md); the summary gives, for each build, the
# median over its rounds of the taskwheel rate and of the ratio to the
# relay, and the ratio B/A of those medians.
#
#   bench/compare.sh BUILD_A BUILD_B [ROUNDS [RUNS]]     (defaults 3 and 3)
#
# A build is a Release tree configured with -DTW_BUILD_BENCH=ON in which
# taskwheel-broker, taskwheel-worker and bench-throughput are built. To
# compare a change with the commit before it:
#
#   git archive REV | tar -x -C /tmp/a
#   cmake -S /tmp/a -B /tmp/a/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
#         -DTW_BUILD_TESTS=OFF -DTW_BUILD_BENCH=ON
#   ninja -C /tmp/a/build taskwheel-broker taskwheel-worker bench-throughput
set -eu

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
}
[ $# -ge 2 ] || usage
a=$1 b=$2 rounds=${3:-3} runs=${4:-3}
for d in "$a" "$b"; do
    [ -x "$d/bench/bench-throughput" ] || {
        echo "compare.sh: no $d/bench/bench-throughput" >&2; exit 2; }
done

model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "machine: $(nproc) cores, ${model:-unknown cpu}, Linux $(uname -r)," \
     "load $(cut -d' ' -f1-3 /proc/loadavg)"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
i=1
while [ "$i" -le "$rounds" ]; do
    order="A B"
    [ $((i % 2)) = 1 ] || order="B A"    # who goes first alternates too
    for side in $order; do
        if [ "$side" = A ]; then d=$a; else d=$b; fi
        line=$(TW_BROKER_BIN="$d/broker/taskwheel-broker" \
               TW_WORKER_BIN="$d/worker/taskwheel-worker" \
               "$d/bench/bench-throughput" --runs "$runs" 2>/dev/null |
               grep '^throughput:')
        echo "round $i $side: $line"
        echo "$side $line" >>"$out"
    done
    i=$((i + 1))
done

# "A throughput: taskwheel T tasks/s, relay R req/s, ratio X (...)"
awk -v n="$rounds" '
function median(arr, k,   i, j, t) {
    for (i = 1; i <= k; i++)
        for (j = i + 1; j <= k; j++)
            if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
    return k % 2 ? arr[(k + 1) / 2] : (arr[k / 2] + arr[k / 2 + 1]) / 2
}
{
    s = $1; c[s]++
    for (f = 1; f <= NF; f++) {
        if ($f == "taskwheel") rate[s, c[s]] = $(f + 1)
        if ($f == "ratio") ratio[s, c[s]] = $(f + 1) + 0
    }
}
END {
    for (k = 1; k <= 2; k++) {
        s = k == 1 ? "A" : "B"
        for (i = 1; i <= c[s]; i++) { r[i] = rate[s, i]; q[i] = ratio[s, i] }
        mr[s] = median(r, c[s]); mq[s] = median(q, c[s])
        printf "%s: taskwheel %.0f tasks/s, ratio to relay %.3f " \
               "(medians of %d rounds)\n", s, mr[s], mq[s], c[s]
    }
    printf "B/A: rate %.3f, ratio to relay %.3f\n", mr["B"] / mr["A"],
           mq["B"] / mq["A"]
}' "$out"
