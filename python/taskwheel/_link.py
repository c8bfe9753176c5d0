"""What ZeroMQ's socket monitor says about the link.

libzmq reconnects a DEALER by itself and tells nobody: a broker restarted
within the heartbeat window, a refused port, a peer of the wrong socket
kind and a refused CURVE key all look like silence from the socket. Its
socket monitor reports them as events on an inproc PAIR socket; this module
starts that monitor, turns its events into a few kinds and words each one
as a line naming the endpoint, as common/zmon.c does for the C programs:

    UP        the handshake completed
    DOWN      an established connection dropped (messages in it may be
              lost: the client resends, PROTOCOL.md 5.19)
    PROBLEM   a connect attempt failed, or the handshake was refused
"""

from __future__ import annotations

import itertools
from typing import List, Optional, Tuple

import zmq
from zmq.utils.monitor import recv_monitor_message

UP, DOWN, PROBLEM = "up", "down", "problem"

EVENTS = (zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_DISCONNECTED |
          zmq.EVENT_HANDSHAKE_SUCCEEDED |
          zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL |
          zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL |
          zmq.EVENT_HANDSHAKE_FAILED_AUTH)

_MISMATCH = {getattr(zmq, n) for n in (
    "PROTOCOL_ERROR_ZMTP_INVALID_METADATA",
    "PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH") if hasattr(zmq, n)}
_ids = itertools.count(1)


def describe(event: int, value: int, endpoint: str,
             what: str = "broker frontend") -> Tuple[str, str]:
    """(kind, line) for one monitor event."""
    if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
        return UP, "connected to %s" % endpoint
    if event == zmq.EVENT_DISCONNECTED:
        return DOWN, "the connection to %s dropped" % endpoint
    if event == zmq.EVENT_CONNECT_RETRIED:
        return PROBLEM, ("nothing accepts connections at %s (connection "
                         "refused or host unreachable): is the broker "
                         "running, and is this its %s?" % (endpoint, what))
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return PROBLEM, ("%s refused this peer's CURVE key (ZAP status %d): "
                         "its public key is not in the broker's key "
                         "directory for this role" % (endpoint, value))
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value in _MISMATCH:
        return PROBLEM, ("%s is not a %s, or uses another security "
                         "mechanism (CURVE on one side, plaintext on the "
                         "other; see docs/SECURITY.md)" % (endpoint, what))
    return PROBLEM, ("%s closed the connection during the ZeroMQ "
                     "handshake: it is not a %s, or it expects other CURVE "
                     "keys" % (endpoint, what))


class Monitor:
    """The monitor of one socket: :meth:`read` returns its events."""

    def __init__(self, sock: zmq.Socket, endpoint: str):
        self.endpoint = endpoint
        self.sock = sock
        self.pair: Optional[zmq.Socket] = None
        try:
            addr = "inproc://taskwheel-monitor-%d" % next(_ids)
            self.pair = sock.get_monitor_socket(EVENTS, addr)
        except zmq.ZMQError:
            self.pair = None  # no monitor: heartbeats still find a loss

    def read(self) -> List[Tuple[str, str]]:
        """Every event queued now, as (kind, line)."""
        out: List[Tuple[str, str]] = []
        while self.pair is not None:
            try:
                m = recv_monitor_message(self.pair, zmq.NOBLOCK)
            except zmq.Again:
                break
            except (zmq.ZMQError, ValueError):
                break
            ep = m.get("endpoint", b"")
            ep = ep.decode("utf-8", "replace") if isinstance(ep, bytes) \
                else str(ep)
            out.append(describe(m["event"], m.get("value", 0),
                                self.endpoint or ep))
        return out

    def close(self) -> None:
        """Stop monitoring (before the socket is closed)."""
        if self.pair is not None:
            try:
                self.sock.disable_monitor()
            except zmq.ZMQError:
                pass
            self.pair.close(0)
            self.pair = None
