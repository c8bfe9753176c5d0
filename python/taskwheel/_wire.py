"""The constants and frame codec of proto/PROTOCOL.md.

Everything the Python client needs to speak the wire protocol, version 1:
the 4-octet header frame (``"TW"``, version, command), the command ids of
section 4.6, the task state codes of section 4.8, the limits the broker
enforces, and the two helpers that turn a message into its two frames and
back. Bodies are msgpack maps with string keys; payloads (task arguments,
results, channel data) are ``bin`` values holding one complete msgpack
value each (section 4.7), which is why :func:`pack` is used twice for a
SUBMIT item: once for the arguments, once for the item around them.

This module does no I/O; its one state is a msgpack packer per thread,
which :func:`pack` reuses (a new packer per value, as ``msgpack.packb``
makes, costs more than the packing of a small value).
"""

from __future__ import annotations

import struct
import threading
from typing import Any, Dict, Tuple

import msgpack

VERSION = 1
SIGNATURE = b"TW"

# Command ids (PROTOCOL.md 4.6).
HELLO = 1
WELCOME = 2
READY = 3
TASKS = 4
DONE = 5
CANCEL = 6
HEARTBEAT = 7
BYE = 8
ERROR = 9
SUBMIT = 10
ACK = 11
RESULT = 12
QUERY = 13
REPLY = 14
ASSIGN = 15
RELEASE = 16
CONTROL = 17
N2S = 18
STATION = 19
S2N = 20
GROUP = 21
POOL = 22
WORKER = 23
CHAN = 24
SCHEDULE = 30

COMMAND_NAMES = {
    HELLO: "HELLO", WELCOME: "WELCOME", READY: "READY", TASKS: "TASKS",
    DONE: "DONE", CANCEL: "CANCEL", HEARTBEAT: "HEARTBEAT", BYE: "BYE",
    ERROR: "ERROR", SUBMIT: "SUBMIT", ACK: "ACK", RESULT: "RESULT",
    QUERY: "QUERY", REPLY: "REPLY", ASSIGN: "ASSIGN", RELEASE: "RELEASE",
    CONTROL: "CONTROL", N2S: "N2S", STATION: "STATION", S2N: "S2N",
    GROUP: "GROUP", POOL: "POOL", WORKER: "WORKER", CHAN: "CHAN",
    SCHEDULE: "SCHEDULE",
}

# The operations a client names in the "op" of STATION, GROUP, POOL,
# WORKER, SCHEDULE and a strict CANCEL, and in QUERY's "what" (PROTOCOL.md
# 4.9): the client-to-broker rows of the codec's table, proto/ops.h, which
# tests/python/test_ops.py compares with this one. The package sends no
# TASK requests.
OPS = {
    STATION: ("add", "remove", "pause", "continue", "stop", "cancel",
              "send", "list", "show", "rebalance"),
    GROUP: ("create", "set", "clear", "get", "ids", "list"),
    POOL: ("size", "default_limit", "stats", "lock", "unlock", "close",
           "flush", "stop", "cancel_group", "cancel_all"),
    WORKER: ("drain", "resize"),
    CANCEL: ("strict",),
    QUERY: ("status", "workers", "snapshot", "tasks", "task", "pools",
            "groups", "queues"),
    SCHEDULE: ("add", "list", "show", "pause", "resume", "remove",
               "run-now"),
}


def op_name(cmd: int, op: str) -> str:
    """``op`` if it is an operation of command ``cmd`` in :data:`OPS`;
    a ValueError otherwise (a mistake in this package, not the caller's)."""
    if op not in OPS.get(cmd, ()):
        raise ValueError("%s has no operation %r"
                         % (COMMAND_NAMES.get(cmd, cmd), op))
    return op


# Task states (PROTOCOL.md 4.8): the code on the wire and its name.
ST_OK = 0
ST_ERROR = 1
ST_TIMEOUT = 2
ST_CANCELLED = 3
ST_LOST = 4
ST_PENDING = 5
ST_RUNNING = 6
ST_UNKNOWN = 7
ST_BLOCKED = 8

STATE_NAMES = ("ok", "error", "timeout", "cancelled", "lost", "pending",
               "running", "unknown", "blocked")
FINAL_STATES = frozenset(STATE_NAMES[:5])

# Limits the client checks before anything reaches the wire, the same as
# libtaskwheel's (client/internal.h, proto/proto.h).
MAX_NAME = 128                 # handler, pool, group, station and tag names
MAX_ITEMS = 65536              # elements of "items" or "ids"
MAX_TAGS = 64
MAX_ARGS = (16 << 20) - 4096   # one payload must fit a 16 MiB frame
BATCH_ITEMS = 1000             # items in one SUBMIT message
BATCH_BYTES = 4 << 20          # start a new SUBMIT past this

# The head of a SUBMIT body: {"items": array32 of N maps}; the count is
# written when the batch is sealed, as libtaskwheel does.
_ITEMS_HEAD = b"\x81\xa5items\xdd"
_COUNT = struct.Struct(">I")

_HEADERS = {cmd: SIGNATURE + bytes((VERSION, cmd)) for cmd in COMMAND_NAMES}


def header(cmd: int) -> bytes:
    """Frame 0 of a message of command ``cmd``."""
    return _HEADERS[cmd]


_tls = threading.local()


def packer() -> msgpack.Packer:
    """This thread's packer: str as str, bytes as bin, tuples as arrays."""
    try:
        return _tls.packer
    except AttributeError:
        _tls.packer = msgpack.Packer(use_bin_type=True)
        return _tls.packer


def pack(value: Any) -> bytes:
    """One msgpack value: str as str, bytes as bin, tuples as arrays.

    Raises TypeError (or ValueError, OverflowError) for what msgpack cannot
    encode; callers turn that into :class:`taskwheel.EncodeError`.
    """
    return packer().pack(value)


def unpack(data: bytes) -> Any:
    """The one msgpack value in ``data`` (str as str, bin as bytes)."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False,
                           use_list=True)


def encode(cmd: int, body: Dict[str, Any]) -> Tuple[bytes, bytes]:
    """The two frames of a message: its header and its msgpack body."""
    return _HEADERS[cmd], pack(body)


def submit_body(items: list) -> bytes:
    """A SUBMIT body around already encoded items (each one msgpack map)."""
    return _ITEMS_HEAD + _COUNT.pack(len(items)) + b"".join(items)


def decode(frames: list) -> Tuple[int, Dict[str, Any]]:
    """The command and body of a two-frame message from the broker.

    Raises ValueError for anything that is not two frames, a version-1
    header and one msgpack map: the caller drops such a message, as
    PROTOCOL.md 4.2 asks of every receiver.
    """
    if len(frames) != 2:
        raise ValueError("expected 2 frames, got %d" % len(frames))
    hdr = bytes(frames[0])
    if len(hdr) != 4 or hdr[:2] != SIGNATURE or hdr[2] != VERSION:
        raise ValueError("bad header %r" % hdr)
    body = unpack(bytes(frames[1]))
    if not isinstance(body, dict):
        raise ValueError("body is not a map")
    return hdr[3], body

