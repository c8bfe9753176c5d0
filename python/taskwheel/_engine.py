"""The client side of the wire protocol, without I/O.

Both clients, :class:`taskwheel.Client` (blocking) and
:class:`taskwheel.aio.Client` (asyncio), own a ZeroMQ DEALER and feed what
it receives to one :class:`Engine`, which decides everything else: what to
send, which task or request a message answers, when the broker is lost and
what to resend. Keeping the protocol here, once, is what makes the two
clients behave the same, and the same as libtaskwheel (client/client.c):

    submit --> batch --seal--> out --(driver sends)--> broker
                 |                                       |
                 '--> keep (seq -> item bytes) until ACK |
    handles <-- on_message <--(driver receives)----------'
                  ACK, RESULT push/reply, REPLY, ERROR, CHAN, BYE, HEARTBEAT

Bookkeeping (PROTOCOL.md 5.11-5.13, 6.3, 7.6, 7.8):

- ``keep``: every submitted item's encoded bytes, by seq, until its ACK (or
  a refusal, or its final RESULT). After a reconnect they are resent, oldest
  first, with their ORIGINAL seq: a broker that kept the submission (the
  store) answers with the id it gave first; one that restarted empty
  enqueues it once.
- ``pending``: seq -> task record, until the task's outcome arrives.
- ``waiting``: task id -> seq, for acknowledged tasks without an outcome.
  After a reconnect each is asked about with a RESULT query (``requery``
  seqs): an ended task is delivered as if pushed, a pending or running one
  is waited for, and one the broker never had, or whose id now names
  another task (the seq tells), is delivered as ``lost``.
- ``requests``: seq -> request, for QUERY, CANCEL, STATION, GROUP, POOL,
  WORKER and RESULT queries. Several may be outstanding at once; replies
  are matched by seq, never by order (3.3).

Liveness: the engine pings an idle broker after ``heartbeat`` seconds of
silence and declares it lost after ``liveness`` heartbeats with a ping
unanswered for ``liveness - 1`` of them, or at once on BYE. The driver then
closes the socket; after a backoff (``reconnect_min`` doubling up to
``reconnect_max``, +-20 % jitter) it opens a new one with the SAME routing
id and calls :meth:`Engine.connected`. Requests outstanding across a loss
are not resent: they time out, as in libtaskwheel.

A broker pair (PROTOCOL.md 17.8): with two endpoints (``eps``,
taskwheel._eplist) every ping carries the highest fencing epoch seen and,
after a loss, the vote; a loss (or a dropped connection) moves the client
to the other broker, an ENOTACTIVE refusal to the one it names (or to ask
again), and an answer under an epoch below one seen is dropped and the
other broker tried; the driver sees each move as LOST.

Broker restarts that are too quick for the heartbeats to notice (libzmq
reconnects the DEALER silently, PROTOCOL.md 5.19): a message whose boot id
differs from the last one (:meth:`observe_boot`), and the socket monitor's
report that an established connection dropped (:meth:`link_event`), make
the engine resynchronise on the same socket exactly as after a reconnect
(:meth:`resync`).

Not thread-safe: the blocking client holds its lock around every call.
"""

from __future__ import annotations

import os
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

from . import _wire as w
from ._eplist import EndpointList
from .errors import ENOTACTIVE
from .errors import code_name

Frames = Tuple[bytes, bytes]


@dataclass
class Options:
    """Reconnection settings (seconds), as libtaskwheel's
    ``tw_client_opts_t``."""

    heartbeat: float = 1.0
    liveness: int = 3
    reconnect_min: float = 0.1
    reconnect_max: float = 5.0
    max_outbox: int = 1_000_000

    def check(self) -> None:
        """Raise ValueError for settings the engine cannot use."""
        if self.heartbeat <= 0 or self.liveness < 2:
            raise ValueError("heartbeat must be > 0 and liveness >= 2")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ValueError("need 0 < reconnect_min <= reconnect_max")
        if self.max_outbox < 1:
            raise ValueError("max_outbox must be >= 1")


class TaskRecord:
    """What the engine knows about one submitted task. The clients' task
    handles subclass it and override :meth:`_wake`."""

    __slots__ = ("seq", "handler", "id", "dup", "state", "code", "error",
                 "result_bytes", "worker", "attempt", "on_channel",
                 "_callbacks", "__weakref__")

    def __init__(self, seq: int, handler: str):
        self.seq = seq
        self.handler = handler
        self.id: Optional[int] = None
        self.dup = False
        self.state = "submitted"
        self.code = 0
        self.error = ""
        self.result_bytes: Optional[bytes] = None
        self.worker = 0
        self.attempt = 0
        self.on_channel: Optional[Callable[..., Any]] = None
        self._callbacks: Optional[list] = None

    # -- called by the engine ------------------------------------------
    def _acked(self, task_id: int, dup: bool) -> None:
        self.id = task_id
        self.dup = dup
        if self.state == "submitted":
            self.state = "pending"
        if dup:
            self._wake()  # its waiters go and ask about the first task

    def _refused(self, code: int, msg: str) -> None:
        self.state = "refused"
        self.code = code
        self.error = msg
        self._wake()

    def _ended(self, item: Dict[str, Any]) -> None:
        st = item.get("st", w.ST_UNKNOWN)
        self.state = (w.STATE_NAMES[st] if 0 <= st < len(w.STATE_NAMES)
                      else "error")
        self.id = item.get("id", self.id)
        self.result_bytes = item.get("r")
        self.error = item.get("err") or ""
        self.worker = item.get("w", 0)
        self.attempt = item.get("at", 0)
        self._wake()

    def _wake(self) -> None:
        """The task has its outcome, or turned out to be a duplicate;
        subclasses tell their waiters."""


class Request:
    """One request waiting for its REPLY, ERROR or RESULT reply. The
    clients subclass it and override :meth:`_wake`."""

    __slots__ = ("seq", "done", "data", "code", "message", "items")

    def __init__(self) -> None:
        self.seq = 0
        self.done = False
        self.data: Any = None
        self.code = 0
        self.message = ""
        self.items: Optional[list] = None

    def _finish(self, data: Any = None, code: int = 0, message: str = "",
                items: Optional[list] = None) -> None:
        if self.done:
            return
        self.done = True
        self.data = data
        self.code = code
        self.message = message
        self.items = items
        self._wake()

    def _wake(self) -> None:
        pass


LOST, CONNECT = "lost", "connect"
_EARLY_CHAN_MAX = 65536  # channel items held for tasks not yet acknowledged

_LOST_WHY = ("the broker has no record of this task (it restarted without "
             "its store?): it may or may not have run")


class Engine:
    """The protocol state of one client connection (see the module doc)."""

    def __init__(self, options: Optional[Options] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.opts = options or Options()
        self.opts.check()
        self.clock = clock
        self.rid = b"c-" + os.urandom(8).hex().encode()
        self.next_seq = 1
        self.batch: List[bytes] = []
        self.batch_bytes = 0
        self.graph = False  # adding a graph's items: one SUBMIT
        self.out: Deque[Frames] = deque()
        self.keep: Dict[int, bytes] = {}
        self.pending: Dict[int, TaskRecord] = {}
        self.waiting: Dict[int, int] = {}
        self.requery: Set[int] = set()
        self.requests: Dict[int, Request] = {}
        self.pings: List[Request] = []
        self.on_channel: Optional[Callable[..., Any]] = None
        self.early_chan: Dict[int, List[Dict[str, Any]]] = {}
        self.early_count = 0
        self.on_event: Optional[Callable[[Dict[str, Any]], None]] = None
        self.last_error = ""
        self.link_error = ""     # the socket monitor's last complaint
        self.pub: Optional[str] = None  # the status endpoint, from a ping
        self.boot: Any = None
        self.up = False
        self.relinked = False
        self.connected = True
        now = clock()
        self.last_recv = now
        self.ping_at = 0.0
        self.bye = False
        self.reconnect_at = 0.0
        self.backoff = self.opts.reconnect_min
        # The brokers (taskwheel._eplist), set by the driver; with a pair,
        # a refusal or an old epoch makes the driver move (``move``: True
        # to another broker soon, False to ask the same one again later).
        self.eps: Optional[EndpointList] = None
        self.move: Optional[bool] = None
        self.rng = random.Random(os.urandom(8))
        self.stats = {"lost": 0, "reconnects": 0, "relinks": 0, "resends": 0,
                      "requeries": 0, "unknown": 0, "pings": 0}

    # ------------------------------------------------------------ sending
    def new_seq(self) -> int:
        """A fresh sequence number (tasks and requests share them)."""
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def add_item(self, rec: TaskRecord, item: bytes) -> None:
        """Queue one encoded SUBMIT item for task ``rec``."""
        self.keep[rec.seq] = item
        self.pending[rec.seq] = rec
        if self.connected:
            self._batch_add(item)

    def _batch_add(self, item: bytes) -> None:
        # A graph (chain, chord) is never split: its items name earlier
        # items of the same SUBMIT (PROTOCOL.md 18.9).
        if self.batch and not self.graph and (
                len(self.batch) >= w.BATCH_ITEMS or
                self.batch_bytes + len(item) > w.BATCH_BYTES):
            self.seal()
        self.batch.append(item)
        self.batch_bytes += len(item)

    def outbox_full(self) -> bool:
        """True when ``max_outbox`` submissions wait for their ACK."""
        return len(self.keep) >= self.opts.max_outbox

    def seal(self) -> None:
        """Close the batch of items into one SUBMIT message."""
        if self.batch:
            self.out.append((w.header(w.SUBMIT), w.submit_body(self.batch)))
            self.batch = []
            self.batch_bytes = 0

    def send(self, cmd: int, body: Dict[str, Any]) -> None:
        """Queue a message behind the submissions made before it."""
        self.seal()
        self.out.append(w.encode(cmd, body))

    def request(self, req: Request, cmd: int, body: Dict[str, Any]) -> int:
        """Queue a request; its answer will finish ``req``. Returns seq."""
        req.seq = self.new_seq()
        body["seq"] = req.seq
        self.requests[req.seq] = req
        self.send(cmd, body)
        return req.seq

    def forget(self, req: Request) -> None:
        """Stop waiting for ``req`` (it timed out); a late answer is
        ignored."""
        self.requests.pop(req.seq, None)
        if req in self.pings:
            self.pings.remove(req)

    def ping(self, req: Optional[Request] = None) -> None:
        """Send HEARTBEAT; ``req`` (if any) finishes on the answer."""
        if req is not None:
            self.pings.append(req)
        # With a broker pair (PROTOCOL.md 17.8): the highest fencing epoch
        # seen, and after losing a broker the vote.
        self.send(w.HEARTBEAT, self.eps.ping_body() if self.eps else {})

    # ---------------------------------------------------------- receiving
    def on_message(self, frames: List[bytes]) -> bool:
        """Handle one message from the broker. Returns False if it was
        dropped (malformed, or a command a broker never sends a client)."""
        now = self.clock()
        self.last_recv = now
        self.ping_at = 0.0
        self.backoff = self.opts.reconnect_min
        try:
            cmd, body = w.decode(frames)
        except Exception:  # noqa: BLE001 - whatever the decoder raises
            return False
        ha = body.get("ha")
        if self.eps is not None and isinstance(ha, int) and \
                not (cmd == w.ERROR and body.get("code") == ENOTACTIVE) \
                and not self.eps.served(ha):
            # A deposed active (PROTOCOL.md 17.8): nothing it says counts.
            self.last_error = ("the broker answered under epoch %d, below "
                               "%d: another broker took over from it"
                               % (ha, self.eps.ha))
            self.move = True
            return False
        if "boot" in body:
            self.observe_boot(body["boot"])
        handler = self._dispatch.get(cmd)
        if handler is None:
            return False
        try:
            handler(self, body)
        except (KeyError, TypeError, AttributeError, IndexError,
                ValueError):
            return False  # a body of the wrong shape: ignore it
        return True

    def _on_ack(self, body: Dict[str, Any]) -> None:
        for it in body.get("items") or ():
            seq = it.get("seq", 0)
            if not seq or self.keep.pop(seq, None) is None:
                continue  # acknowledged before: a resend answered again
            rec = self.pending.get(seq)
            code = it.get("code", 0)
            if code:
                self.pending.pop(seq, None)
                if rec is not None:
                    rec._refused(code, it.get("err") or it.get("msg") or
                                 code_name(code))
                continue
            task_id = it.get("id", 0)
            if not task_id:
                continue
            dup = bool(it.get("dup", 0))
            if dup:
                self.pending.pop(seq, None)
            elif rec is not None:
                self.waiting[task_id] = seq
            if rec is not None:
                rec._acked(task_id, dup)
            if self.early_chan and not dup:
                self._release_early(task_id, rec)
        if self.early_chan and not self.keep:
            for task_id in list(self.early_chan):
                self._release_early(task_id, None)

    def _on_result(self, body: Dict[str, Any]) -> None:
        items = body.get("items") or []
        if "seq" in body:
            seq = body["seq"]
            if seq in self.requery:
                self.requery.discard(seq)
                self._on_requery(items)
                return
            req = self.requests.pop(seq, None)
            if req is not None:
                req._finish(items=items)
            return
        for it in items:
            self._deliver(it)

    def _deliver(self, it: Dict[str, Any]) -> None:
        seq, st = it.get("seq", 0), it.get("st", w.ST_UNKNOWN)
        if not seq or st > w.ST_LOST:
            return
        self.waiting.pop(it.get("id", 0), None)
        self.keep.pop(seq, None)
        rec = self.pending.pop(seq, None)
        if rec is not None:
            rec._ended(it)

    def _on_requery(self, items: list) -> None:
        for it in items:
            task_id = it.get("id", 0)
            seq = self.waiting.get(task_id)
            if seq is None:
                continue  # its outcome came meanwhile
            st = it.get("st", w.ST_UNKNOWN)
            same = it.get("seq", 0) == seq
            if same and st in (w.ST_PENDING, w.ST_RUNNING, w.ST_BLOCKED):
                continue  # the broker has it: its push will come
            if not (same and st <= w.ST_LOST):
                self.stats["unknown"] += 1
                it = {"id": task_id, "seq": seq, "st": w.ST_LOST,
                      "err": _LOST_WHY}
            self._deliver(it)

    def _on_reply(self, body: Dict[str, Any]) -> None:
        seq = body.get("seq", 0)
        if seq == 0:
            data = body.get("data")
            if self.on_event is not None and isinstance(data, dict):
                self.on_event(data)
            return
        req = self.requests.pop(seq, None)
        if req is not None:
            req._finish(data=body.get("data"))

    def _on_error(self, body: Dict[str, Any]) -> None:
        code = body.get("code", -5)
        msg = body.get("msg") or ""
        self.last_error = msg
        seq = body.get("seq", 0)
        if code == ENOTACTIVE:
            # A broker of a pair that is not the active one: go where it
            # points, or ask it again (PROTOCOL.md 17.8).
            req = self.requests.pop(seq, None) if seq else None
            if req is not None:
                req._finish(code=code, message=msg)
            if self.eps is not None:
                active = body.get("active")
                self.move = self.eps.not_active(
                    active if isinstance(active, str) else None,
                    bool(body.get("live")), int(body.get("ha") or 0))
            else:
                self.move = False
            return
        if not seq:
            return
        if seq in self.requery:
            self.requery.discard(seq)  # the push or a later query answers
            return
        req = self.requests.pop(seq, None)
        if req is not None:
            req._finish(code=code, message=msg)
            return
        rec = self.pending.pop(seq, None)
        if rec is not None:
            self.keep.pop(seq, None)
            rec._refused(code, msg)

    def _on_chan(self, body: Dict[str, Any]) -> None:
        for it in body.get("items") or ():
            task_id = it.get("id", 0)
            seq = self.waiting.get(task_id)
            if seq is None and self.keep and \
                    self.early_count < _EARLY_CHAN_MAX:
                # A task's channel items can overtake its ACK (a broker
                # with a store sends ACKs once the batch is written, and
                # CHAN at once): hold them until the ACK names the task.
                self.early_chan.setdefault(task_id, []).append(it)
                self.early_count += 1
                continue
            self._chan_deliver(self.pending.get(seq) if seq else None, it)

    def _chan_deliver(self, rec: Optional[TaskRecord],
                      it: Dict[str, Any]) -> None:
        if self.on_channel is not None:
            self.on_channel(rec, it)

    def _release_early(self, task_id: int, rec: Optional[TaskRecord]
                       ) -> None:
        for it in self.early_chan.pop(task_id, ()):
            self.early_count -= 1
            self._chan_deliver(rec, it)

    def _on_bye(self, body: Dict[str, Any]) -> None:
        self.bye = True

    def _on_heartbeat(self, body: Dict[str, Any]) -> None:
        pub = body.get("pub")
        if isinstance(pub, str) and pub:
            self.pub = pub
        pings, self.pings = self.pings, []
        for req in pings:
            req._finish()

    _dispatch = {
        w.ACK: _on_ack, w.RESULT: _on_result, w.REPLY: _on_reply,
        w.ERROR: _on_error, w.CHAN: _on_chan, w.BYE: _on_bye,
        w.HEARTBEAT: _on_heartbeat,
    }

    # -------------------------------------------------- liveness, resync
    def tick(self) -> Optional[str]:
        """What the driver must do now: CONNECT (open a new socket, then
        call :meth:`reconnected`), LOST (close the socket, then call
        :meth:`lost`) or None. Queues a ping when one is due."""
        now = self.clock()
        hb, liv = self.opts.heartbeat, self.opts.liveness
        if not self.connected:
            return CONNECT if now >= self.reconnect_at else None
        if self.move is not None or self.bye or (self.ping_at and now - self.last_recv >= liv * hb
                        and now - self.ping_at >= (liv - 1) * hb):
            return LOST
        if not self.ping_at and now - self.last_recv >= hb:
            self.ping_at = now
            self.stats["pings"] += 1
            self.ping()
        return None

    def due(self) -> float:
        """Seconds until :meth:`tick` has something to do."""
        now = self.clock()
        hb, liv = self.opts.heartbeat, self.opts.liveness
        if not self.connected:
            at = self.reconnect_at
        elif self.bye or self.move is not None:
            at = now
        elif not self.ping_at:
            at = self.last_recv + hb
        else:
            at = max(self.last_recv + liv * hb, self.ping_at + (liv - 1) * hb)
        return max(0.0, at - now)

    def lost(self) -> None:
        """The broker is lost and the socket closed: drop everything
        queued for it (``keep`` holds the submissions) and schedule a new
        connection after the backoff: to the next broker of a pair (whose
        first message votes), or, after a refusal or an old epoch, where
        ``eps`` points now."""
        now = self.clock()
        move, self.move = self.move, None
        if move is None:
            self.stats["lost"] += 1
            if self.eps is not None:
                self.eps.lost()
        elif move:
            self.backoff = self.opts.reconnect_min
        self.bye = False
        self.connected = False
        self.out.clear()
        self.batch = []
        self.batch_bytes = 0
        self.requery.clear()
        self.ping_at = 0.0
        self.up = False
        delay = self.backoff * self.rng.uniform(0.8, 1.2)
        self.backoff = min(self.backoff * 2, self.opts.reconnect_max)
        self.reconnect_at = now + delay

    def connect_failed(self) -> None:
        """Opening the new socket failed: try again after the backoff."""
        self.reconnect_at = self.clock() + self.backoff

    def reconnected(self) -> None:
        """A new socket is connected: resend, re-ask, and ping."""
        self.stats["reconnects"] += 1
        self.connected = True
        self.last_recv = self.clock()
        # The ping first: with a pair it carries the epoch and the vote, so
        # a broker that must not take the rest refuses it before.
        self.ping_at = self.last_recv
        self.stats["pings"] += 1
        self.ping()
        self.resync()

    def resync(self) -> None:
        """Resend every submission not acknowledged yet, with its seq, and
        ask about every acknowledged task without an outcome."""
        for item in self.keep.values():
            self._batch_add(item)
        self.stats["resends"] += len(self.keep)
        self.seal()
        ids = list(self.waiting)
        for off in range(0, len(ids), w.MAX_ITEMS):
            seq = self.new_seq()
            self.requery.add(seq)
            self.send(w.RESULT, {"seq": seq,
                                 "ids": ids[off:off + w.MAX_ITEMS]})
        self.stats["requeries"] += len(ids)

    def observe_boot(self, boot: Any) -> None:
        """A message carried the broker's boot id (PROTOCOL.md 5.19). A
        new one means the broker restarted since we last heard it, however
        quickly: what it had not stored is gone, so resynchronise as after
        a reconnect (unless a dropped connection just did)."""
        if not boot:
            return
        if self.boot and boot != self.boot and not self.relinked and \
                self.connected:
            self.stats["relinks"] += 1
            self.resync()
            self.ping()
        self.boot = boot
        self.relinked = False

    def link_event(self, kind: str, line: str) -> None:
        """What the socket monitor saw (taskwheel._link): UP, DOWN (an
        established connection dropped: messages in it may be lost, so
        resynchronise at once, 5.19) or PROBLEM (kept in ``link_error``
        to explain a request that gets no answer)."""
        if kind == "up":
            self.up = True
            self.link_error = ""
        elif kind == "down" and self.up and self.eps is not None and \
                len(self.eps) > 1:
            # One of a pair: a broker process that dies closes its
            # connections, and the other one is where to go now.
            self.up = False
            self.bye = True
        elif kind == "down" and self.up:
            # A BYE that came over the dropped connection is answered by
            # this resync: the socket reconnects by itself, no new one.
            self.up = False
            self.bye = False
            self.relinked = True
            if self.connected:
                self.stats["relinks"] += 1
                self.resync()
                self.ping()
        else:
            self.link_error = line
