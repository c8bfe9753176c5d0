"""The blocking client.

A :class:`Client` is one connection (a ZeroMQ DEALER) to a broker's
frontend. It speaks proto/PROTOCOL.md through the engine in
``taskwheel._engine``, the same state machine the asyncio client uses, and
does its I/O in the calling thread, inside the calls that wait (a handle's
``result()``, ``wait``, ``as_completed``, iterating a ``map`` or an event
stream, and every request); nothing runs in the background and no thread is
started. ``submit`` sends at once; inside ``with client.batch():`` tasks go
out together, up to 1000 per message.

Threads may share one client. Every call takes the client's lock for a few
microseconds; one waiting thread at a time does the socket I/O for all of
them (it gives the socket up as soon as its own wait is over), the others
wait on a condition it signals. Callbacks (``on_channel``, done callbacks)
run in the thread doing the I/O, outside the lock, and must not wait on the
client themselves (RuntimeError).

Reconnection follows libtaskwheel exactly (PROTOCOL.md 6.3, 7.8): after
``heartbeat`` seconds of silence the client pings, after ``liveness``
heartbeats it declares the broker lost (at once on the broker's BYE),
reconnects with backoff under the same routing id, resends every
unacknowledged submission with its original seq and asks about every task
without an outcome.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Optional,
                    Sequence)

import zmq

from . import _wire as w
from ._base import ClientBase, HandleBase
from ._events import (TAIL_CHECK, TAIL_DATA, TAIL_ENDED, TAIL_STOP,
                      EventStreamBase, tail_prefixes, tail_step)
from ._feed import MapFeed
from ._ops import Drive, Op, Steps, answer, steps_outcome, unreachable
from ._records import ChannelMessage, Event
from ._calls import check_name, decode_payload, task_fields
from ._engine import Request
from .errors import BrokerError, TaskwheelError

_HWM = 100000


class _SyncRequest(Request):
    __slots__ = ()


class TaskHandle(HandleBase):
    """A submitted task. ``id`` is None until the broker acknowledged it;
    ``state`` is "submitted", then "pending" (queued or running: call
    :meth:`refresh` to ask which), then how it ended: "ok", "error",
    "timeout", "cancelled", "lost", or "refused" when the broker did not
    accept it. ``dup`` is True when the submission's ``key`` named a task
    the pool already had: the handle then follows that task."""

    __slots__ = ()

    def _wake(self) -> None:
        self.client._fired(self)

    def result(self, timeout: Optional[float] = None) -> Any:
        """Wait for the task and return its result. Raises TimeoutError if
        ``timeout`` seconds pass first (the task goes on), Refused if the
        broker refused it, TaskFailed (TaskTimeout, TaskCancelled,
        TaskLost) if it did not end ok."""
        self.wait(timeout, _raise=True)
        return self._outcome()

    def exception(self, timeout: Optional[float] = None
                  ) -> Optional[TaskwheelError]:
        """Wait, then the exception :meth:`result` would raise, or None."""
        self.wait(timeout, _raise=True)
        return self._exception()

    def wait(self, timeout: Optional[float] = None,
             _raise: bool = False) -> bool:
        """Wait until the task has an outcome; False on timeout."""
        c: Client = self.client
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = c._wait(lambda: self.done() or self.dup, timeout)
        if ok and not self.done():
            # A duplicate: its outcome is pushed to the first submitter
            # only, so ask the broker about that task until it ends.
            left = None if deadline is None else \
                max(0.0, deadline - time.monotonic())
            try:
                self._apply(c._drive(steps_outcome(self.id, 0.05), left))
            except TimeoutError:
                ok = False
        if not ok and _raise:
            raise TimeoutError("task %s (seq %d) has no outcome after %s s"
                               % (self.id, self.seq, timeout))
        return ok

    def wait_id(self, timeout: Optional[float] = None) -> int:
        """Wait for the broker's acknowledgement and return the task's id.
        Raises Refused if the broker refused the task, TimeoutError if no
        acknowledgement came within ``timeout`` (default: the client's)."""
        c: Client = self.client
        timeout = c.timeout if timeout is None else timeout
        if not c._wait(lambda: self.id is not None or self.done(), timeout):
            raise TimeoutError("task (seq %d) was not acknowledged within "
                               "%s s" % (self.seq, timeout))
        if self.id is None:
            self._outcome()  # raises Refused
        return self.id  # type: ignore[return-value]

    def cancel(self, timeout: Optional[float] = None) -> bool:
        """Cancel the task; True if the broker cancelled it (a running task
        then ends cancelled when its worker confirms), False if it had
        already ended or was refused. Waits for its acknowledgement
        first."""
        if self.done():
            return False
        task_id = self.wait_id(timeout)
        return task_id in self.client.cancel(task_id)["cancelled"]

    def refresh(self, timeout: Optional[float] = None) -> str:
        """Ask the broker for the task's state now ("pending", "running",
        or how it ended) and return it; the handle's ``state`` stays what
        this client has received. Waits for the acknowledgement first."""
        if self.done() and self.id is None:
            return self.state
        self.wait_id(timeout)
        return self.client._run(self._refresh_op(), timeout)

    def add_done_callback(self, fn: Callable[["TaskHandle"], None]) -> None:
        """Call ``fn(handle)`` when the task has its outcome (at once if it
        has). It runs in the thread doing the client's I/O."""
        with self.client._lock:
            self._on_done(fn)


class MapIterator(Iterator[Any]):
    """The results of :meth:`Client.map`, in input order (or as they come
    with ``ordered=False``). ``group`` is the map's group. Iterating feeds
    the map: at most ``2 * concurrency`` tasks are submitted and not yet
    handed out. A failed task raises its TaskFailed where its result would
    be, unless ``return_exceptions`` was set."""

    def __init__(self, client: "Client", feed: MapFeed, group: str,
                 pool: Optional[str], return_exceptions: bool,
                 timeout: Optional[float]):
        self.client = client
        self.feed = feed
        self.group = group
        self.pool = pool
        self.return_exceptions = return_exceptions
        self.timeout = timeout

    def __iter__(self) -> "MapIterator":
        return self

    def __next__(self) -> Any:
        c = self.client
        while True:
            with c._lock:
                c._batching += 1
                try:
                    self.feed.fill()
                finally:
                    c._batching -= 1
                    c._flush()
                h = self.feed.next_ready()
                if h is None and self.feed.finished():
                    raise StopIteration
            if h is None:
                if not c._wait(self.feed.has_ready, self.timeout):
                    raise TimeoutError("no map result within %s s"
                                       % self.timeout)
                continue
            if self.return_exceptions:
                exc = h._exception()
                return exc if exc is not None else decode_payload(
                    h.result_bytes)
            return h._outcome()

    def cancel(self) -> List[int]:
        """Stop feeding and cancel the map's group; returns the ids."""
        self.feed.stop()
        return self.client.cancel_group(self.group, self.pool)


class EventStream(EventStreamBase, Iterator[Event]):
    """Status messages from the broker's status socket (PROTOCOL.md 8), as
    :class:`Event` objects. With ``resync`` the first event is a
    "snapshot" and messages it already holds are dropped; after a gap in
    a topic's numbers a new snapshot is taken and delivered (the clone
    pattern, 8.2). Iteration ends after ``timeout`` seconds without a
    message (None: never). Close it (or use ``with``) when done."""

    def __init__(self, client: "Client", prefixes: Sequence[str],
                 resync: bool, timeout: Optional[float]):
        sock = client._ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, _HWM)
        super().__init__(client, sock, prefixes, resync, timeout)

    def _recv(self, timeout: Optional[float]) -> Optional[Event]:
        if not self.sock.poll(None if timeout is None
                              else max(0, int(timeout * 1000))):
            return None
        return self._parse(self.sock.recv_multipart())

    def _put(self, ev: Event) -> None:
        if self._admit(ev):
            self.pending.append(self._snapshot_event(self.client.snapshot()))

    def _start(self) -> None:
        self._connect(self.client._status())
        deadline = time.monotonic() + self._start_timeout()
        while not self.live:
            ev = self._recv(max(0.0, deadline - time.monotonic()))
            if ev is None:
                raise self._not_live()
            self._probe(ev)
        if self.resync:
            self.pending.append(self._snapshot_event(self.client.snapshot()))
        held, self.held = self.held, []
        for ev in held:
            self._put(ev)

    def __iter__(self) -> "EventStream":
        return self

    def __next__(self) -> Event:
        if not self.live:
            self._start()
        while not self.pending:
            ev = self._recv(self.timeout)
            if ev is None:
                raise StopIteration
            self._put(ev)
        return self.pending.popleft()

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Client(ClientBase):
    """A connection to a taskwheel broker, for blocking code.

    ``broker`` is the frontend endpoint (default $TASKWHEEL_BROKER, else
    tcp://127.0.0.1:7710), or both of a broker pair, comma-separated: the
    client then uses the active one and follows a failover as libtaskwheel
    does (docs/HA.md); ``status`` the status socket for events and
    station tails (see :attr:`status_endpoint`). With ``curve_secret``
    (this client's ``.key`` file) and ``broker_key`` (the broker's
    ``.pub``), or $TASKWHEEL_CURVE_SECRET and $TASKWHEEL_BROKER_KEY, every
    connection uses CURVE. ``timeout`` is the default for requests, in
    seconds. ``heartbeat``, ``liveness``, ``reconnect_min``,
    ``reconnect_max`` and ``max_outbox`` tune reconnection as
    libtaskwheel's options do. ``on_channel`` receives the channel items
    of every task without its own callback.

    Use it as a context manager, or call :meth:`close`.
    """

    _handle_class = TaskHandle

    def _init_io(self) -> None:
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._pumper: Optional[int] = None
        self._batching = 0
        self._deferred: List[Callable[[], None]] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def _io_failed(self) -> None:
        self._close_fds()

    # ------------------------------------------------------------ life
    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<taskwheel.Client %s %s>" % (
            self.broker, self._engine.rid.decode())

    def close(self, wait_acks: Optional[float] = 2.0) -> None:
        """Send what is queued and close. With ``wait_acks`` (seconds,
        None: no wait) first wait that long for the broker to acknowledge
        every submission, so that none is lost with the socket."""
        if self._closed:
            return
        if wait_acks:
            with self._lock:
                self._flush()
            self._wait(lambda: not self._engine.keep, wait_acks)
        with self._lock:
            self._closed = True
            self._conn.close()
        self._close_streams()
        self._close_fds()
        if self._own_ctx:
            self._ctx.term()

    def _close_fds(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    @property
    def stats(self) -> Dict[str, int]:
        """What reconnection did so far (lost: brokers declared lost;
        reconnects: new sockets after that; relinks: resynchronisations on
        the same socket after a dropped connection or a new boot id;
        resends, requeries, unknown, pings) and what is outstanding now
        (unacked, waiting, outstanding)."""
        with self._lock:
            return self._stats()

    # ------------------------------------------------------------- I/O
    def _fired(self, h: TaskHandle) -> None:
        """A handle got its outcome (engine, lock held)."""
        if h._callbacks and h.done():
            self._deferred.append(h._run_callbacks)

    def _deliver_chan(self, cb: Callable[[ChannelMessage], Any],
                      msg: ChannelMessage) -> None:
        # Engine callback, lock held: run it after the I/O turn.
        def run() -> None:
            try:
                value, failed = cb(msg), False
            except Exception:  # noqa: BLE001 - the callback asks to close
                value, failed = None, True
            self._chan_answer(msg, value, failed)
        self._deferred.append(run)

    def _queue(self, make: Callable[[], Any]) -> Any:
        with self._lock:
            self._batching += 1
            try:
                return make()
            finally:
                self._batching -= 1
                self._flush()

    def _flush(self) -> None:
        """Send what is queued now (lock held), or wake the thread doing
        the I/O to send it."""
        if self._batching:
            return
        e = self._engine
        e.seal()
        if not e.out:
            return
        if self._pumper is not None:
            try:
                os.write(self._wake_w, b"\0")
            except BlockingIOError:
                pass
            return
        self._send_queued()

    def _send_queued(self) -> None:
        self._conn.send_queued()

    def _io(self) -> int:
        """One I/O turn (lock held); the number of messages handled."""
        return self._conn.turn()

    def _run_deferred(self) -> None:
        while True:
            with self._lock:
                todo, self._deferred = self._deferred, []
            if not todo:
                return
            for fn in todo:
                fn()

    def _pump(self, left: Optional[float]) -> None:
        """Do I/O for up to ``left`` seconds or until something arrived
        (this thread holds the pumper role, not the lock)."""
        with self._lock:
            got = self._io()
            self._cv.notify_all()
            conn = self._conn
            sock = conn.sock
            pair = conn.monitor.pair if conn.monitor is not None else None
            due = self._engine.due()
            pollout = conn.blocked
        self._run_deferred()
        if got:
            return
        wait = due if left is None else min(left, due)
        poller = zmq.Poller()
        if sock is not None:
            poller.register(sock, zmq.POLLIN | (zmq.POLLOUT if pollout
                                                 else 0))
        if pair is not None:
            poller.register(pair, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        try:
            poller.poll(max(0, int(wait * 1000 + 0.999)))
        except zmq.ZMQError:
            pass
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
        with self._lock:
            self._io()
            self._cv.notify_all()
        self._run_deferred()

    def _wait(self, pred: Callable[[], Any], timeout: Optional[float]
              ) -> bool:
        """Do I/O (or let another thread do it) until ``pred()`` is true or
        ``timeout`` seconds (None: no limit) pass. Returns pred's truth."""
        me = threading.get_ident()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self._closed:
                    raise TaskwheelError("the client is closed")
                self._flush()
                if pred():
                    return True
                left = None if deadline is None else \
                    max(0.0, deadline - time.monotonic())
                if left == 0:
                    return False
                if self._pumper == me:
                    raise RuntimeError("a taskwheel callback must not wait "
                                       "on its client")
                if self._pumper is not None:
                    self._cv.wait(0.05 if left is None else min(left, 0.05))
                    continue
                self._pumper = me
            try:
                self._pump(left)
            finally:
                with self._lock:
                    self._pumper = None
                    self._cv.notify_all()

    # -------------------------------------------------------- requests
    def _await(self, req: Request, op: Op, timeout: Optional[float]
               ) -> None:
        """Send what is queued and wait for ``req``'s answer, or forget it
        and raise Unreachable after ``timeout`` (default: the client's)."""
        timeout = self.timeout if timeout is None else timeout
        with self._lock:
            self._flush()
        if not self._wait(lambda: req.done, timeout):
            with self._lock:
                self._engine.forget(req)
            raise unreachable(op, timeout)

    def _run(self, op: Op, timeout: Optional[float] = None) -> Any:
        req = _SyncRequest()
        with self._lock:
            self._engine.request(req, op.cmd, dict(op.body))
        self._await(req, op, timeout)
        return answer(req, op)

    def _drive(self, steps: Steps, timeout: Optional[float]) -> Any:
        d = Drive(steps, timeout, time.monotonic)
        while d.advance():
            if d.op is None:
                self._wait(lambda: False, d.pause)
                continue
            try:
                d.value = self._run(d.op, d.left(self.timeout))
            except BrokerError as exc:
                d.error = exc
        return d.result

    def ping(self, timeout: Optional[float] = None) -> float:
        """Round trip to the broker; returns its time in seconds, or
        raises Unreachable."""
        req = _SyncRequest()
        t0 = time.monotonic()
        with self._lock:
            self._engine.ping(req)
        self._await(req, Op(w.HEARTBEAT, {}), timeout)
        return time.monotonic() - t0

    # ---------------------------------------------------------- tasks
    @contextmanager
    def batch(self) -> Iterator["Client"]:
        """Inside ``with client.batch():`` submissions are queued and sent
        together when the block ends (or every 1000 tasks)."""
        with self._lock:
            self._batching += 1
        try:
            yield self
        finally:
            with self._lock:
                self._batching -= 1
                self._flush()

    def flush(self) -> None:
        """Send queued submissions now."""
        with self._lock:
            self._flush()

    def wait(self, handles: Iterable[TaskHandle],
             timeout: Optional[float] = None) -> bool:
        """Wait until every handle has its outcome; False on timeout."""
        hs = list(handles)
        return self._wait(lambda: all(h.done() for h in hs), timeout)

    def as_completed(self, handles: Iterable[TaskHandle],
                     timeout: Optional[float] = None
                     ) -> Iterator[TaskHandle]:
        """Yield the handles as their tasks end. TimeoutError if
        ``timeout`` seconds pass with none ending."""
        left = list(handles)
        while left:
            if not self._wait(lambda: any(h.done() for h in left), timeout):
                raise TimeoutError("%d tasks without an outcome after %s s"
                                   % (len(left), timeout))
            done = [h for h in left if h.done()]
            left = [h for h in left if not h.done()]
            yield from done

    def map(self, handler: str, iterable: Iterable[Any], *,
            concurrency: int = 16, ordered: bool = True,
            star: bool = False, group: Optional[str] = None,
            pool: Optional[str] = None, return_exceptions: bool = False,
            result_timeout: Optional[float] = None,
            **options: Any) -> MapIterator:
        """Run ``handler(item)`` for each item (``handler(*item)`` with
        ``star``, or use :meth:`starmap`) and iterate over the results.

        The items are read lazily: at most ``2 * concurrency`` tasks are
        submitted and not yet handed out, and at most ``concurrency`` run
        at once across the cluster, enforced by the broker through the
        map's group (``group``, else "map-<handler>-group-<i>" with the
        first free i, created with that limit). Results come in input
        order, or as they end with ``ordered=False``. Other options as in
        :meth:`submit`. ``result_timeout`` bounds the wait for each result
        (TimeoutError).
        """
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        check_name("handler", handler)
        name = self._make_group("starmap" if star else "map", handler, group,
                                pool, concurrency)
        one = self._map_submitter(handler, star,
                                  task_fields(pool=pool, group=name,
                                              **options))
        feed = MapFeed(iterable, one, 2 * concurrency, ordered)
        return MapIterator(self, feed, name, pool, return_exceptions,
                           result_timeout)

    def starmap(self, handler: str, iterable: Iterable[Sequence[Any]],
                **options: Any) -> MapIterator:
        """:meth:`map` where each item is the tuple of positional
        arguments of its call."""
        return self.map(handler, iterable, star=True, **options)

    # --------------------------------------------------------- events
    def _status(self) -> str:
        """The status endpoint, asking the broker for it if need be."""
        if self._status_unknown():
            self.ping()
        return self.status_endpoint

    def events(self, *prefixes: str, resync: bool = True,
               timeout: Optional[float] = None) -> EventStream:
        """Subscribe to the status topics starting with ``prefixes`` (all
        of them when none): "task.", "worker.", "station.<sid>.",
        "s2n.<sid>", "group.", "stats"... See :class:`EventStream`."""
        return EventStream(self, prefixes, resync, timeout)

    def _tail(self, sid: str, timeout: Optional[float]) -> Iterator[Any]:
        stream = EventStream(self, tail_prefixes(sid), False, timeout)
        try:
            stream._start()  # live before the state is read
            if self.station(sid).show().state in TAIL_ENDED:
                return  # (an unknown station raises ENOENT)
            for ev in stream:
                step = tail_step(sid, ev)
                if step == TAIL_DATA:
                    yield ev.data.get("data")
                elif step == TAIL_STOP or (
                        step == TAIL_CHECK and
                        self.station(sid).show().state in ("done",
                                                           "failed")):
                    return
        finally:
            stream.close()
