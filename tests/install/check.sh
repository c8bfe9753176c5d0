#!/usr/bin/env bash
# tests/install/check.sh - install taskwheel into a temporary prefix and
# build against that tree alone.
#
#   tests/install/check.sh BUILD_DIR SOURCE_DIR CC VERSION
#
# Run by ctest as "install_tree" (tests/CMakeLists.txt). Steps, each
# printed and each fatal:
#   1. cmake --install BUILD_DIR --prefix P (a new temporary directory);
#   2. pkg-config, pointed at P only for taskwheel, reports the version
#      and paths under P;
#   3. every installed header compiles on its own (-Wall -Wextra
#      -Werror), so each carries what it needs;
#   4. the examples/ plugins build with only
#      `pkg-config --cflags --libs taskwheel-handler`, and
#      tests/install/client.c with only `pkg-config --cflags --libs
#      taskwheel`, from copies outside the source tree;
#   5. the installed broker and worker run on ipc:// endpoints under P
#      (no ports), the worker loads the plugin built in 4, and the client
#      runs tasks through them.
# Everything it starts is stopped by pid; P is removed at the end.
set -euo pipefail

if (($# != 4)); then
    echo "usage: check.sh BUILD_DIR SOURCE_DIR CC VERSION" >&2
    exit 2
fi
build=$1 src=$2 cc=$3 version=$4

tmp=$(mktemp -d /tmp/tw-install.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
say() { printf 'install: %s\n' "$*"; }
fail() {
    printf 'install: FAILED: %s\n' "$*" >&2
    for f in "$tmp"/*.log; do
        [[ -f "$f" ]] || continue
        echo "--- $f" >&2
        tail -n 30 "$f" >&2
    done
    exit 1
}

prefix=$tmp/p
say "1. cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
    fail "cmake --install"
for f in bin/taskwheel bin/taskwheel-broker bin/taskwheel-worker \
    include/taskwheel/client.h include/taskwheel/handler.h \
    include/taskwheel/errors.h include/taskwheel/version.h \
    share/doc/taskwheel/HANDLERS.md; do
    [[ -e "$prefix/$f" ]] || fail "$f was not installed"
done
pcdir=$(dirname "$(find "$prefix" -name taskwheel.pc | head -n 1)")
[[ -f "$pcdir/taskwheel.pc" ]] || fail "taskwheel.pc was not installed"
[[ -f "$pcdir/taskwheel-handler.pc" ]] ||
    fail "taskwheel-handler.pc was not installed"
libdir=$(dirname "$pcdir")

say "2. pkg-config from $pcdir"
# The installed .pc files come first; msgpack's and libuv's come from the
# system's usual places.
export PKG_CONFIG_PATH=$pcdir
got=$(pkg-config --modversion taskwheel) || fail "pkg-config taskwheel"
[[ "$got" == "$version" ]] || fail "taskwheel.pc says $got, not $version"
incdir=$(cd "$(pkg-config --variable=includedir taskwheel)" && pwd -P)
[[ "$incdir" == "$(cd "$prefix/include" && pwd -P)" ]] ||
    fail "taskwheel.pc's includedir is $incdir, not under $prefix"
pclib=$(cd "$(pkg-config --variable=libdir taskwheel)" && pwd -P)
[[ "$pclib" == "$(cd "$libdir" && pwd -P)" ]] ||
    fail "taskwheel.pc's libdir is $pclib, not $libdir"
pkg-config --print-requires taskwheel | grep -qw msgpack ||
    fail "taskwheel.pc does not require msgpack"
read -r -a cflags <<<"$(pkg-config --cflags taskwheel)"
read -r -a libs <<<"$(pkg-config --libs taskwheel)"
read -r -a hflags <<<"$(pkg-config --cflags --libs taskwheel-handler)"

say "3. each installed header compiles alone"
mkdir -p "$tmp/work"
cd "$tmp/work"
for h in "$prefix"/include/taskwheel/*.h; do
    name=$(basename "$h")
    printf '#include <taskwheel/%s>\nint main(void) { return 0; }\n' \
        "$name" >"only-$name.c"
    "$cc" -std=gnu11 -Wall -Wextra -Werror "${hflags[@]}" \
        -c "only-$name.c" -o /dev/null >"$tmp/header.log" 2>&1 ||
        fail "taskwheel/$name does not compile on its own"
done

say "4. the examples and a client, built against $prefix only"
cp "$src/examples/plugin/example_plugin.c" "$src/examples/station/gnss_plugin.c" \
    "$src/tests/install/client.c" .
for p in example_plugin gnss_plugin; do
    "$cc" -shared -fPIC -Wall -Wextra -Werror "$p.c" -o "$p.so" \
        "${hflags[@]}" -lm >"$tmp/build.log" 2>&1 ||
        fail "examples: $p.c does not build with taskwheel-handler.pc"
done
"$cc" -Wall -Wextra -Werror client.c -o client "${cflags[@]}" \
    "${libs[@]}" >"$tmp/build.log" 2>&1 ||
    fail "client.c does not build with taskwheel.pc alone"

say "5. the installed broker and worker run the client's tasks"
front=ipc://$tmp/front back=ipc://$tmp/back status=ipc://$tmp/status
"$prefix/bin/taskwheel-broker" --version | grep -qx "taskwheel-broker $version" ||
    fail "taskwheel-broker --version"
# --handler-grace: a task for a handler no worker offers yet waits for the
# worker instead of being refused, so nothing here waits for a fixed time.
"$prefix/bin/taskwheel-broker" --frontend "$front" --backend "$back" \
    --status "$status" --data "$tmp/data" --handler-grace 60 \
    >"$tmp/broker.log" 2>&1 &
pids+=($!)
"$prefix/bin/taskwheel-worker" --broker "$back" --slots 2 \
    --plugin "$tmp/work/example_plugin.so" >"$tmp/worker.log" 2>&1 &
pids+=($!)
LD_LIBRARY_PATH=$libdir ./client "$front" "$version" >"$tmp/client.log" 2>&1 ||
    fail "the client's checks"
cat "$tmp/client.log"
grep -q "taskwheel-broker $version" "$tmp/broker.log" ||
    fail "the broker did not log its version at start"
grep -q "taskwheel-worker $version" "$tmp/worker.log" ||
    fail "the worker did not log its version at start"
say "all passed"
