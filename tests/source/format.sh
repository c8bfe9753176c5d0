#!/bin/sh
# tests/source/format.sh - the files that follow .clang-format, checked
# (ctest "source_format").
#
# The house style (rule 29 of the style guide: 4-space indent, braces
# always, the return type of a definition on its own line...) is written
# down in .clang-format for clang-format 14. The tree is brought to it file
# by file: the files and directories listed below already follow it, and
# this check fails, naming each file and how many lines clang-format would
# change, when one of them drifts. Add a file here once it has been run
# through `clang-format -i`; new files should start here.
#
# Usage: tests/source/format.sh [SOURCE_DIR]   (default: this checkout)
#        tests/source/format.sh --count [SOURCE_DIR]
#            how many lines clang-format would change in every .c and .h
#            file git tracks (a measure, always exit 0)
# Exit status: 0 ok, 1 a file does not follow, 77 no clang-format (skip).
set -eu

count=0
if [ "${1:-}" = --count ]; then
    count=1
    shift
fi
src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$src"

cf=${CLANG_FORMAT:-}
if [ -z "$cf" ]; then
    for c in clang-format-14 clang-format; do
        if command -v "$c" >/dev/null 2>&1; then
            cf=$c
            break
        fi
    done
fi
if [ -z "$cf" ]; then
    echo "format.sh: no clang-format found: skipped" >&2
    exit 77
fi

# The files and directories (every .c and .h below them) that follow.
FOLLOW="
client/cli/cmd_cancel.c
client/cli/cmd_events.c
client/cli/cmd_keygen.c
client/cli/cmd_ping.c
client/cli/cmd_result.c
client/cli/cmd_station.c
client/cli/cmd_status.c
client/cli/cmd_submit.c
client/cli/commands.c
client/cli/commands.h
client/cli/global.c
client/cli/main.c
client/cli/sub.c
client/cli/sub.h
tests/unit/support/proto_msgs.c
tests/unit/support/proto_msgs.h
"

# Lines of file $1 that clang-format would change.
changed() {
    "$cf" --style=file "$1" | diff -U0 "$1" - | grep -c '^-[^-]' || true
}

if [ "$count" = 1 ]; then
    total=0 files=0 all=0
    for f in $(git ls-files '*.c' '*.h'); do
        n=$(changed "$f")
        all=$((all + 1))
        if [ "$n" -gt 0 ]; then
            files=$((files + 1))
            total=$((total + n))
        fi
    done
    echo "$total lines in $files of $all files would change"
    exit 0
fi

bad=0
checked=0
for entry in $FOLLOW; do
    if [ -d "$entry" ]; then
        list=$(find "$entry" -name '*.[ch]' | sort)
    elif [ -f "$entry" ]; then
        list=$entry
    else
        echo "format.sh: $entry is listed but does not exist" >&2
        bad=1
        continue
    fi
    for f in $list; do
        checked=$((checked + 1))
        n=$(changed "$f")
        if [ "$n" -gt 0 ]; then
            echo "$f: clang-format would change $n lines" \
                 "(run: $cf -i $f)" >&2
            bad=1
        fi
    done
done
[ "$bad" = 0 ] || exit 1
echo "format.sh: $checked files follow .clang-format"
