#!/bin/sh
# tests/source/layers.sh - the broker's layers, checked (ctest
# "source_layers").
#
# broker/ is built in layers, lowest first: out/ (sending), state/ (records
# and tables), core/ (the broker's state as a whole and the rules that
# change it), cmd/ (one file per command family), and the loop in broker/
# itself. broker/broker.h draws the picture. This check fails, naming the
# file and the line, when
#
#   - a file includes a broker header of a higher layer;
#   - out/ or state/ names the broker struct (they get the parts they need);
#   - two modules (x.c with x.h) include each other, directly or round a
#     longer cycle (tsort finds it);
#   - a file sits in a directory this script does not know (give it a
#     layer here first).
#
# Usage: tests/source/layers.sh [SOURCE_DIR]   (default: this checkout)
set -eu

src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$src"

# The layer of a path under broker/, or "?".
layer() {
    case $1 in
    broker/out/*) echo 0 ;;
    broker/state/*) echo 1 ;;
    broker/core/*) echo 2 ;;
    broker/cmd/*) echo 3 ;;
    broker/*/*) echo "?" ;;
    broker/*) echo 4 ;;
    *) echo "?" ;;
    esac
}

# The name of layer number $1.
name() {
    case $1 in
    0) echo out ;;
    1) echo state ;;
    2) echo core ;;
    3) echo cmd ;;
    *) echo loop ;;
    esac
}

# Upward includes allowed for now, each with the reason it is not fixed
# yet. Keep this empty.
allowed=""
fail=0
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT

for f in $(find broker -name '*.[ch]' | sort); do
    lf=$(layer "$f")
    if [ "$lf" = "?" ]; then
        echo "$f: not in a layer directory (out/ state/ core/ cmd/ or" \
             "broker/ itself); give its directory a layer in $0" >&2
        fail=1
        continue
    fi
    mod=${f%.*}
    grep -n '^#include "broker/' "$f" | while IFS=: read -r line text; do
        inc=$(printf '%s\n' "$text" | sed 's/^#include "\([^"]*\)".*/\1/')
        li=$(layer "$inc")
        if [ "$li" = "?" ] || [ ! -f "$inc" ]; then
            echo "$f:$line: includes $inc, which is not a broker header" \
                 "in a layer" >&2
            echo FAIL
        elif [ "$li" -gt "$lf" ] && \
             ! printf ' %s ' "$allowed" | grep -q " $f:$inc "; then
            echo "$f:$line: the $(name "$lf") layer includes $inc of the" \
                 "$(name "$li") layer above it" >&2
            echo FAIL
        fi
        [ "${inc%.*}" = "$mod" ] || echo "EDGE $mod ${inc%.*}"
    done
done > "$edges"

if grep -q '^FAIL$' "$edges"; then
    fail=1
fi
for f in $(find broker/out broker/state -name '*.[ch]' | sort); do
    if grep -n -E '\btw_broker_t\b|struct tw_broker\b' "$f" >&2; then
        echo "$f: a lower layer names the broker struct; pass it the" \
             "parts it needs" >&2
        fail=1
    fi
done

# Modules must form a directed acyclic graph. tsort prints a cycle's
# members on stderr and exits 1.
if ! grep '^EDGE ' "$edges" | cut -d' ' -f2,3 | tsort >/dev/null 2>"$edges.err"
then
    echo "modules that include each other (a cycle):" >&2
    cat "$edges.err" >&2
    fail=1
fi
rm -f "$edges.err"

if [ "$fail" -ne 0 ]; then
    echo "layers: FAILED (the picture is in broker/broker.h)" >&2
    exit 1
fi
echo "layers: ok ($(grep -c '^EDGE ' "$edges") includes between modules," \
     "no cycle, none upward but the $(echo "$allowed" | wc -w) allowed above)"
