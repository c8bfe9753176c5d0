"""The status socket: subscriptions and resync.

Status messages (PROTOCOL.md 8) are ``[topic][msgpack map]`` on the
broker's XPUB socket; each map holds ``pseq`` (global) and ``tseq`` (per
topic). The clone pattern (8.2): subscribe, take a QUERY snapshot, apply
only messages whose ``tseq`` is above the snapshot's for their topic, and
take a new snapshot after a gap. Both clients' event streams and station
tails are built on what is here.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

from zmq import LINGER as zmq_LINGER, SUBSCRIBE as zmq_SUBSCRIBE
from zmq import UNSUBSCRIBE as zmq_UNSUBSCRIBE

from . import _wire as w
from ._records import Event

# --------------------------------------------------------------- events
def status_endpoint(explicit: Optional[str], broker: str,
                    pub: Optional[str] = None) -> str:
    """The status socket: ``explicit``, else $TASKWHEEL_STATUS, else what
    the broker said in its answer to a ping (``pub``, 5.8; a wildcard host
    is replaced by the one the broker was reached at), else the broker's
    host with its port + 2 (7710 -> 7712, the defaults)."""
    if explicit:
        return explicit
    env = os.environ.get("TASKWHEEL_STATUS")
    if env:
        return env
    host, sep, port = broker.rpartition(":")
    if pub:
        phost, psep, pport = pub.rpartition(":")
        if psep and phost in ("tcp://0.0.0.0", "tcp://*", "tcp://[::]") \
                and host.startswith("tcp://"):
            return "%s:%s" % (host, pport)
        return pub
    if sep and port.isdigit() and host.startswith("tcp://"):
        return "%s:%d" % (host, int(port) + 2)
    return "tcp://127.0.0.1:7712"


class EventStreamBase:
    """What both clients' event streams share: the SUB socket's
    subscriptions, decoding, and the clone pattern's bookkeeping. The
    subclasses receive and take snapshots, each in its own way.

    A stream delivers nothing before its subscriptions are known to be in
    force (PROTOCOL.md 8.2): after its prefixes it subscribes to a
    ``welcome.<token>`` topic, which the broker answers at once, and, for
    brokers older than that answer, to "stats" (published every second)
    unless a prefix covers it. Subscriptions travel in order, so the first
    message on either means every prefix is live; both probes are then
    dropped. With ``resync`` the stream then takes its first snapshot, so
    no message published after it can be missed."""

    def __init__(self, client: Any, sock: Any, prefixes: Sequence[str],
                 resync: bool, timeout: Optional[float]):
        self.client = client
        self.prefixes = list(prefixes) or [""]
        self.resync = resync
        self.timeout = timeout
        self.tracker = Resync()
        self.pending: Deque[Event] = deque()
        self.held: List[Event] = []
        self.sock = sock
        self.token = "welcome." + os.urandom(8).hex()
        self.stats_probe = not any("stats".startswith(p)
                                   for p in self.prefixes)
        sock.setsockopt(zmq_LINGER, 0)
        if client._curve is not None:
            client._curve.apply(sock)
        for p in self.prefixes:
            sock.setsockopt(zmq_SUBSCRIBE, p.encode("utf-8"))
        sock.setsockopt(zmq_SUBSCRIBE, self.token.encode())
        if self.stats_probe:
            sock.setsockopt(zmq_SUBSCRIBE, b"stats")
        self.endpoint: Optional[str] = None
        self.live = False
        client._streams.add(self)  # closed with the client

    def _connect(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.sock.connect(endpoint)

    def _probe(self, ev: Event) -> bool:
        """Hold ``ev`` until the stream is live; True once it is."""
        if ev.topic == self.token or (self.stats_probe and
                                      ev.topic == "stats"):
            self.sock.setsockopt(zmq_UNSUBSCRIBE, self.token.encode())
            if self.stats_probe:
                self.sock.setsockopt(zmq_UNSUBSCRIBE, b"stats")
            self.live = True
            return True
        self.held.append(ev)
        return False

    def _not_live(self) -> Exception:
        from .errors import Unreachable
        return Unreachable("no message from the status endpoint %s: is it "
                           "the broker's status socket (and are this "
                           "client's CURVE keys among its monitors)?"
                           % self.endpoint)

    def _start_timeout(self) -> float:
        return self.client.timeout + 1.5  # "stats" come every second

    @staticmethod
    def _parse(frames: List[bytes]) -> Event:
        """A status message as an Event (topic "" if it is not one)."""
        if len(frames) != 2:
            return Event("", {})
        try:
            data = w.unpack(frames[1])
        except Exception:  # noqa: BLE001 - a bad body is skipped
            return Event("", {})
        if not isinstance(data, dict):
            data = {"value": data}
        return Event(bytes(frames[0]).decode("utf-8", "replace"), data,
                     data.get("pseq", 0), data.get("tseq", 0))

    def _admit(self, ev: Event) -> bool:
        """Queue ``ev`` if it is wanted and new; True when a gap means a
        new snapshot is due."""
        if not ev.topic or ev.topic.startswith("welcome.") or not any(
                ev.topic.startswith(p) for p in self.prefixes):
            return False
        deliver, gap = self.tracker.accept(ev.topic, ev.tseq)
        if deliver:
            self.pending.append(ev)
        return gap and self.resync

    def _snapshot_event(self, snap: Dict[str, Any]) -> Event:
        self.tracker.snapshot(snap.get("tseq", {}))
        return Event("snapshot", snap, snap.get("pseq", 0), 0)

    @property
    def gaps(self) -> int:
        """Gaps seen in topic numbers (messages lost at the high-water
        mark); :attr:`lost` counts the messages missing in them."""
        return self.tracker.gaps

    @property
    def lost(self) -> int:
        return self.tracker.lost

    def close(self) -> None:
        """Close the subscription."""
        self.sock.close(0)


class Resync:
    """The clone pattern of PROTOCOL.md 8.2 over one subscription: drop
    what a snapshot already holds, notice gaps in a topic's ``tseq``.

    Feed it the snapshot's ``tseq`` map with :meth:`snapshot`, then each
    message with :meth:`accept`, which says whether to deliver it and
    whether a gap was seen (then take a new snapshot). A ``tseq`` that goes
    down is a broker restart (or a station's topic begun again), not a
    gap."""

    def __init__(self) -> None:
        self.last: Dict[str, int] = {}
        self.floor: Dict[str, int] = {}
        self.gaps = 0
        self.lost = 0

    def snapshot(self, tseq: Dict[Any, Any]) -> None:
        """Messages up to these numbers are in the snapshot: drop them."""
        self.floor = {(k.decode("utf-8", "replace") if isinstance(k, bytes)
                       else str(k)): v for k, v in (tseq or {}).items()}
        self.last = {}

    def accept(self, topic: str, tseq: Any) -> Tuple[bool, bool]:
        """(deliver, gap) for a message of ``topic`` numbered ``tseq``."""
        if not isinstance(tseq, int) or tseq == 0:
            return True, False  # a topic the broker does not number
        floor = self.floor.get(topic)
        if floor is not None:
            if tseq <= floor:
                return False, False  # already part of the snapshot
            del self.floor[topic]
            last: Optional[int] = floor
        else:
            last = self.last.get(topic)
        self.last[topic] = tseq
        if last is None or tseq <= last + 1:
            return True, False  # new topic, in order, or a restart
        self.gaps += 1
        self.lost += tseq - last - 1
        return True, True


TAIL_END = ("stopped", "cancelled", "removed")
#: States in which a station tail ends at once (the station has ended).
TAIL_ENDED = ("stopped", "done", "failed", "cancelled")


def tail_prefixes(sid: str) -> Tuple[str, str]:
    return "s2n." + sid, "station." + sid + "."


TAIL_DATA, TAIL_STOP, TAIL_CHECK = "data", "stop", "check"


def tail_step(sid: str, ev: "Event") -> Optional[str]:
    """What a station tail does with ``ev``: TAIL_DATA (yield its data),
    TAIL_STOP (the station ended), TAIL_CHECK (it ended done or failed:
    ask the broker whether a restart made it pending again, as the CLI
    does) or None (not this station's)."""
    if ev.topic == "s2n." + sid and ev.data.get("station") == sid:
        return TAIL_DATA
    kind = tail_event(sid, ev.topic, ev.data)
    if kind in TAIL_END:
        return TAIL_STOP
    if kind in ("done", "failed"):
        return TAIL_CHECK
    return None


def tail_event(sid: str, topic: str, data: Dict[str, Any]) -> Optional[str]:
    """The event of a ``station.<sid>.<event>`` message of this station,
    or None (sids may hold dots: the body's ``station`` decides)."""
    prefix = "station." + sid + "."
    if not topic.startswith(prefix) or data.get("station") != sid:
        return None
    ev = topic[len(prefix):]
    return None if "." in ev else ev
