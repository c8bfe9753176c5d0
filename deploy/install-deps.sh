#!/usr/bin/env bash
# deploy/install-deps.sh - install what taskwheel needs to build and test,
# on Debian 12, only if something is missing. Run as root (or with sudo
# available). Used by deploy/local-cluster.sh and tests/run.sh.
#
#   deploy/install-deps.sh            build and run dependencies
#   deploy/install-deps.sh --test     also what the tests and fuzzers use
set -euo pipefail

pkgs=(build-essential cmake ninja-build pkg-config
      libzmq3-dev libmsgpack-dev libuv1-dev libcmocka-dev liblmdb-dev
      libjansson-dev libmicrohttpd-dev python3 python3-zmq python3-msgpack
      tzdata)
if [[ "${1:-}" == "--test" ]]; then
    # stress-ng: tests/run.sh --stress runs the suite with a CPU hog on
    # every core, to find tests that depend on timing.
    pkgs+=(clang libclang-rt-dev valgrind tmux iproute2 procps curl
           python3-pytest stress-ng)
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi
echo "installing: ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
