"""The client's DEALER, its monitor, and one I/O turn.

Both clients own one :class:`Connection`: the DEALER (routing id from the
engine, kept across sockets; high-water marks 100000; linger 0; frames
over 64 MiB refused), its socket monitor (taskwheel._link), and
:meth:`Connection.turn`, which does everything a client does when it gets
the chance: tell the engine what the monitor saw, let it decide on
liveness (close the socket when the broker is lost, open a new one when
the backoff is over), send what it queued, and hand it what arrived. The
blocking client runs a turn inside its waiting calls; the asyncio client
whenever the socket's file descriptor wakes its loop, after a submission,
and on a timer.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

import zmq

from ._engine import CONNECT, LOST, Engine
from ._link import DOWN, Monitor
from .keys import Curve

DEFAULT_BROKER = "tcp://127.0.0.1:7710"
HWM = 100000
RECV_BUDGET = 256


def broker_endpoint(broker: Optional[str] = None) -> str:
    """``broker``, else $TASKWHEEL_BROKER, else tcp://127.0.0.1:7710."""
    return broker or os.environ.get("TASKWHEEL_BROKER") or DEFAULT_BROKER


def open_dealer(ctx: zmq.Context, endpoint: str, rid: bytes,
                curve: Optional[Curve]) -> zmq.Socket:
    """A DEALER with routing id ``rid``, connected to ``endpoint``."""
    sock = ctx.socket(zmq.DEALER)
    try:
        sock.setsockopt(zmq.ROUTING_ID, rid)
        sock.setsockopt(zmq.SNDHWM, HWM)
        sock.setsockopt(zmq.RCVHWM, HWM)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, 64 << 20)
        if curve is not None:
            curve.apply(sock)
        sock.connect(endpoint)
    except zmq.ZMQError:
        sock.close(0)
        raise
    return sock


class Connection:
    """One client's link to its broker."""

    def __init__(self, ctx: zmq.Context, endpoint: str, engine: Engine,
                 curve: Optional[Curve],
                 on_change: Optional[Callable[[], None]] = None):
        self.ctx = ctx
        self.endpoint = endpoint
        self.engine = engine
        self.curve = curve
        self.on_change = on_change
        self.sock: Optional[zmq.Socket] = None
        self.monitor: Optional[Monitor] = None
        self.blocked = False  # the socket refused a send: wait for POLLOUT
        self.open()

    def open(self) -> None:
        """A new socket (raises zmq.ZMQError for a bad endpoint), to the
        broker the engine's endpoint list names now."""
        if self.engine.eps is not None:
            self.endpoint = self.engine.eps.current
        self.sock = open_dealer(self.ctx, self.endpoint, self.engine.rid,
                                self.curve)
        self.monitor = Monitor(self.sock, self.endpoint)
        if self.on_change is not None:
            self.on_change()

    def close(self) -> None:
        """Close the socket and its monitor."""
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None
        if self.on_change is not None:
            self.on_change()

    def send_queued(self) -> None:
        """Send what the engine queued until the socket refuses."""
        out, sock = self.engine.out, self.sock
        if sock is None:
            return
        while out:
            try:
                sock.send_multipart(out[0], zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self.blocked = True
                return
            out.popleft()
        self.blocked = False

    def _recv(self, budget: Optional[int]) -> int:
        e, n = self.engine, 0
        while self.sock is not None and (budget is None or n < budget):
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            e.on_message(frames)
            n += 1
            e.seal()
            self.send_queued()  # answers to channel requests, resends
        return n

    def _watch(self) -> None:
        """Tell the engine what the monitor saw. Before a dropped link
        makes it resend what has no ACK, every message that came over the
        link is taken: ACKs already received must not be taken for lost
        (a resent item the broker no longer remembers would run twice)."""
        events = self.monitor.read() if self.monitor is not None else []
        if any(kind == DOWN for kind, _ in events):
            self._recv(None)
        for kind, line in events:
            self.engine.link_event(kind, line)

    def turn(self) -> int:
        """One I/O turn (see the module doc). Returns the number of
        messages handled; RECV_BUDGET means more may be waiting."""
        e = self.engine
        act = e.tick()
        if act == LOST:
            self._recv(None)
            self.close()
            e.lost()
        elif act == CONNECT:
            try:
                self.open()
                e.reconnected()
            except zmq.ZMQError:
                e.connect_failed()
        e.seal()
        self.send_queued()
        n = self._recv(RECV_BUDGET)
        self._watch()
        if e.bye and e.tick() == LOST:
            # The broker said BYE: find the next one now, before the caller
            # queues anything more for this socket.
            self.close()
            e.lost()
        e.seal()
        self.send_queued()
        return n
