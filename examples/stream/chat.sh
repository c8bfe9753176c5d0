#!/usr/bin/env bash
# examples/stream/chat.sh - a program to run as a "stream" station.
#
# The stream handler runs it as a long-lived child: each line it prints is
# an s2n message, each n2s string arrives as a line on its stdin, and its
# exit ends the station's iteration (0: the station starts it again after
# its interval; anything else: the station fails with the end of stderr).
#
#   taskwheel station add chat stream '["bash", "/path/to/chat.sh", "2"]' \
#       --interval 5
#   taskwheel station tail chat &
#   taskwheel station send chat '"hello"'     -> echo: hello
#   taskwheel station send chat '"quit"'      -> bye (restarts in 5 s)
#   taskwheel station send chat '"fail"'      -> the station fails
#
# Argument: seconds between "tick" lines (default 1).
period=${1:-1}
n=0
echo "ready pid=$$"
while :; do
    if IFS= read -r -t "$period" line; then
        case $line in
        quit) echo "bye"; exit 0 ;;
        fail) echo "failing on request" >&2; exit 3 ;;
        *) echo "echo: $line" ;;
        esac
    elif [ $? -gt 128 ]; then
        n=$((n + 1))
        echo "tick $n"
    else
        exit 0 # stdin closed: the station is going away
    fi
done
