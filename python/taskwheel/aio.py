"""The asyncio client.

:class:`Client` has the methods of :class:`taskwheel.Client`, as
coroutines: ``await c.status()``, ``await c.pool("web").stats()``; task
handles are awaitable (``await h`` or ``await h.result(timeout)``), and
``map``, ``events`` and a station's ``tail`` are async iterators::

    import asyncio
    from taskwheel.aio import Client

    async def main():
        async with Client() as c:
            h = c.submit("resize", "cat.png", width=200)
            print(await h)
            async for thumb in c.map("resize", paths, concurrency=8):
                ...

    asyncio.run(main())

The protocol, reconnection, resends and deduplication are the blocking
client's (the engine in ``taskwheel._engine``); only the waiting differs.
The client's DEALER joins the running event loop with ``add_reader`` on
its ZeroMQ file descriptor. That descriptor is edge-triggered, so after
every send and on every wake-up the client receives until the socket has
nothing more. Submissions made in one turn of the loop leave in one
message at the end of the turn; a timer runs the engine's heartbeats and
reconnection. A client belongs to the loop that first uses it.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import (Any, AsyncIterator, Callable, Dict, Iterable, List,
                    Optional, Sequence)

import zmq
import zmq.asyncio

from . import _wire as w
from ._base import ClientBase, HandleBase
from ._events import (TAIL_CHECK, TAIL_DATA, TAIL_ENDED, TAIL_STOP,
                      EventStreamBase, tail_prefixes, tail_step)
from ._feed import MapFeed
from ._ops import Drive, Op, Steps, answer, steps_outcome, unreachable
from ._records import ChannelMessage, Event
from ._calls import check_name, decode_payload, task_fields
from ._conn import RECV_BUDGET
from ._engine import Request
from .errors import BrokerError, TaskwheelError

class _AsyncRequest(Request):
    __slots__ = ("future",)

    def __init__(self, loop: asyncio.AbstractEventLoop):
        super().__init__()
        self.future: asyncio.Future = loop.create_future()

    def _wake(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class TaskHandle(HandleBase):
    """A submitted task; ``await handle`` is ``await handle.result()``.
    Attributes as :class:`taskwheel.TaskHandle`."""

    __slots__ = ("future", "_ack_waiters")

    def __init__(self, client: "Client", seq: int, handler: str):
        super().__init__(client, seq, handler)
        self.future: Optional[asyncio.Future] = None
        self._ack_waiters = 0

    def _acked(self, task_id: int, dup: bool) -> None:
        super()._acked(task_id, dup)
        if self._ack_waiters:
            self._wake()

    def _wake(self) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_result(None)
        if self._callbacks and self.done():
            self._run_callbacks()

    def __await__(self):
        return self.result().__await__()

    async def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until the task has an outcome; False on timeout."""
        loop = self.client._loop_now()
        deadline = None if timeout is None else loop.time() + timeout
        while not self.done() and not self.dup:
            if self.future is None or self.future.done():
                self.future = loop.create_future()
            left = None if deadline is None else \
                max(0.0, deadline - loop.time())
            try:
                await asyncio.wait_for(asyncio.shield(self.future), left)
            except asyncio.TimeoutError:
                return False
        if not self.done():
            # A duplicate: ask about the first task until it ends.
            left = None if deadline is None else \
                max(0.0, deadline - loop.time())
            try:
                self._apply(await self.client._drive(
                    steps_outcome(self.id, 0.05), left))
            except TimeoutError:
                return False
        return True

    async def result(self, timeout: Optional[float] = None) -> Any:
        """Wait for the task and return its result; raises as
        :meth:`taskwheel.TaskHandle.result` does."""
        if not await self.wait(timeout):
            raise TimeoutError("task %s (seq %d) has no outcome after %s s"
                               % (self.id, self.seq, timeout))
        return self._outcome()

    async def exception(self, timeout: Optional[float] = None
                        ) -> Optional[TaskwheelError]:
        """Wait, then the exception :meth:`result` would raise, or None."""
        if not await self.wait(timeout):
            raise TimeoutError("task %s has no outcome after %s s"
                               % (self.id, timeout))
        return self._exception()

    async def wait_id(self, timeout: Optional[float] = None) -> int:
        """Wait for the broker's acknowledgement; returns the task id."""
        c: Client = self.client
        timeout = c.timeout if timeout is None else timeout
        if self.id is None and not self.done():
            if self.future is None or self.future.done():
                self.future = c._loop_now().create_future()
            self._ack_waiters += 1
            try:
                await asyncio.wait_for(asyncio.shield(self.future), timeout)
            except asyncio.TimeoutError:
                raise TimeoutError("task (seq %d) was not acknowledged "
                                   "within %s s" % (self.seq, timeout)) \
                    from None
            finally:
                self._ack_waiters -= 1
        if self.id is None:
            self._outcome()  # raises Refused
        return self.id  # type: ignore[return-value]

    async def cancel(self, timeout: Optional[float] = None) -> bool:
        """Cancel the task; True if the broker cancelled it."""
        if self.done():
            return False
        task_id = await self.wait_id(timeout)
        return task_id in (await self.client.cancel(task_id))["cancelled"]

    async def refresh(self, timeout: Optional[float] = None) -> str:
        """Ask the broker for the task's state now."""
        if self.done() and self.id is None:
            return self.state
        await self.wait_id(timeout)
        return await self.client._run(self._refresh_op(), timeout)

    def add_done_callback(self, fn: Callable[["TaskHandle"], None]) -> None:
        """Call ``fn(handle)`` when the task has its outcome."""
        self._on_done(fn)


class MapIterator:
    """The async iterator of :meth:`Client.map` (see
    :class:`taskwheel.MapIterator`). ``group`` is known after the first
    ``__anext__`` (or ``await it.start()``)."""

    def __init__(self, client: "Client", handler: str, items: Iterable[Any],
                 star: bool, concurrency: int, ordered: bool,
                 group: Optional[str], pool: Optional[str],
                 return_exceptions: bool, timeout: Optional[float],
                 options: Dict[str, Any]):
        self.client = client
        self.handler = handler
        self.items = items
        self.star = star
        self.concurrency = concurrency
        self.ordered = ordered
        self.group = group
        self.pool = pool
        self.return_exceptions = return_exceptions
        self.timeout = timeout
        self.options = options
        self.feed: Optional[MapFeed] = None
        self._want_group = group

    async def start(self) -> str:
        """Create the map's group and start feeding; returns its name."""
        if self.feed is None:
            c = self.client
            name = await c._make_group("starmap" if self.star else "map",
                                       self.handler, self._want_group,
                                       self.pool, self.concurrency)
            one = c._map_submitter(self.handler, self.star, task_fields(
                pool=self.pool, group=name, **self.options))
            self.group = name
            self.feed = MapFeed(self.items, one, 2 * self.concurrency,
                                self.ordered)
        return self.group or ""

    def __aiter__(self) -> "MapIterator":
        return self

    async def __anext__(self) -> Any:
        await self.start()
        feed = self.feed
        assert feed is not None
        while True:
            feed.fill()
            self.client._kick()
            h = feed.next_ready()
            if h is not None:
                break
            if feed.finished():
                raise StopAsyncIteration
            if feed.ordered:
                fut = self.client._when_done([feed.inflight[0]])
            else:
                fut = self.client._loop_now().create_future()
                feed.notify = lambda: fut.done() or fut.set_result(None)
            try:
                await asyncio.wait_for(fut, self.timeout)
            except asyncio.TimeoutError:
                raise TimeoutError("no map result within %s s"
                                   % self.timeout) from None
        if self.return_exceptions:
            exc = h._exception()
            return exc if exc is not None else decode_payload(h.result_bytes)
        return h._outcome()

    async def cancel(self) -> List[int]:
        """Stop feeding and cancel the map's group; returns the ids."""
        if self.feed is not None:
            self.feed.stop()
        if self.group is None:
            return []
        return await self.client.cancel_group(self.group, self.pool)


class EventStream(EventStreamBase):
    """The async iterator of :meth:`Client.events` (see
    :class:`taskwheel.EventStream`)."""

    def __init__(self, client: "Client", prefixes: Sequence[str],
                 resync: bool, timeout: Optional[float]):
        actx = zmq.asyncio.Context.shadow(client._ctx.underlying)
        super().__init__(client, actx.socket(zmq.SUB), prefixes, resync,
                         timeout)

    async def _recv(self, timeout: Optional[float]) -> Optional[Event]:
        try:
            frames = await asyncio.wait_for(self.sock.recv_multipart(),
                                            timeout)
        except asyncio.TimeoutError:
            return None
        return self._parse(frames)

    async def _put(self, ev: Event) -> None:
        if self._admit(ev):
            self.pending.append(self._snapshot_event(
                await self.client.snapshot()))

    async def _start(self) -> None:
        self._connect(await self.client._status())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout()
        while not self.live:
            ev = await self._recv(max(0.0, deadline - loop.time()))
            if ev is None:
                raise self._not_live()
            self._probe(ev)
        if self.resync:
            self.pending.append(self._snapshot_event(
                await self.client.snapshot()))
        held, self.held = self.held, []
        for ev in held:
            await self._put(ev)

    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> Event:
        if not self.live:
            await self._start()
        while not self.pending:
            ev = await self._recv(self.timeout)
            if ev is None:
                raise StopAsyncIteration
            await self._put(ev)
        return self.pending.popleft()

    async def __aenter__(self) -> "EventStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


class Client(ClientBase):
    """A connection to a taskwheel broker, for asyncio. The arguments are
    those of :class:`taskwheel.Client`; ``on_channel`` may also be a
    coroutine function. Use ``async with`` or ``await client.close()``."""

    _handle_class = TaskHandle

    def _init_io(self) -> None:
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        self._kicked = False
        self._tasks: set = set()
        self._fds: List[int] = []

    def _on_conn_change(self) -> None:
        self._attach()

    def __repr__(self) -> str:
        return "<taskwheel.aio.Client %s %s>" % (
            self.broker, self._engine.rid.decode())

    async def __aenter__(self) -> "Client":
        self._loop_now()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self, wait_acks: Optional[float] = 2.0) -> None:
        """Send what is queued and close; with ``wait_acks`` first wait
        that long for every submission's acknowledgement."""
        if self._closed:
            return
        if wait_acks and self._engine.keep:
            loop = self._loop_now()
            self._kick()
            deadline = loop.time() + wait_acks
            while self._engine.keep and loop.time() < deadline:
                await asyncio.sleep(0.005)
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._conn.close()
        self._close_streams()
        for t in list(self._tasks):
            t.cancel()
        if self._own_ctx:
            self._ctx.term()

    @property
    def stats(self) -> Dict[str, int]:
        """As :attr:`taskwheel.Client.stats`."""
        return self._stats()

    # ------------------------------------------------------------- I/O
    def _loop_now(self) -> asyncio.AbstractEventLoop:
        """The client's loop, attaching the socket on first use."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._attach()
            self._schedule()
        return self._loop

    def _attach(self) -> None:
        """Watch the file descriptors of the current socket and monitor
        (called whenever the connection changes them)."""
        if self._loop is None:
            return
        for fd in self._fds:
            try:
                self._loop.remove_reader(fd)
            except (ValueError, OSError):
                pass
        conn = self._conn
        self._fds = []
        for s in (conn.sock, conn.monitor.pair if conn.monitor else None):
            if s is not None and not self._closed:
                fd = s.getsockopt(zmq.FD)
                self._loop.add_reader(fd, self._io)
                self._fds.append(fd)

    def _schedule(self) -> None:
        if self._loop is None or self._closed:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(self._engine.due(), self._io)

    def _kick(self) -> None:
        """Send what is queued at the end of this turn of the loop."""
        if not self._kicked and not self._closed:
            self._kicked = True
            self._loop_now().call_soon(self._io)

    def _io(self) -> None:
        """One I/O turn; again at once if the budget ran out, and on the
        engine's timer. Every socket operation happens here, so the
        edge-triggered descriptors are always drained."""
        self._kicked = False
        if self._closed:
            return
        if self._conn.turn() == RECV_BUDGET:
            self._loop_now().call_soon(self._io)
        elif self._conn.blocked:
            self._loop_now().call_later(0.001, self._io)
        self._schedule()

    def _queue(self, make: Callable[[], Any]) -> Any:
        value = make()
        self._kick()
        return value

    def _deliver_chan(self, cb: Callable[[ChannelMessage], Any],
                      msg: ChannelMessage) -> None:
        try:
            value = cb(msg)
        except Exception:  # noqa: BLE001 - the callback asks to close
            self._chan_answer(msg, None, True)
            return
        if inspect.isawaitable(value):
            t = self._loop_now().create_task(self._finish_chan(msg, value))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        else:
            self._chan_answer(msg, value, False)

    async def _finish_chan(self, msg: ChannelMessage, pending: Any) -> None:
        try:
            value, failed = await pending, False
        except Exception:  # noqa: BLE001 - the callback asks to close
            value, failed = None, True
        self._chan_answer(msg, value, failed)

    # -------------------------------------------------------- requests
    async def _await(self, req: _AsyncRequest, op: Op,
                     timeout: Optional[float]) -> None:
        """Send what is queued and wait for ``req``'s answer, or forget it
        and raise Unreachable after ``timeout`` (default: the client's)."""
        self._kick()
        timeout = self.timeout if timeout is None else timeout
        try:
            await asyncio.wait_for(asyncio.shield(req.future), timeout)
        except asyncio.TimeoutError:
            self._engine.forget(req)
            raise unreachable(op, timeout) from None

    async def _arun(self, op: Op, timeout: Optional[float]) -> Any:
        req = _AsyncRequest(self._loop_now())
        self._engine.request(req, op.cmd, dict(op.body))
        await self._await(req, op, timeout)
        return answer(req, op)

    def _run(self, op: Op, timeout: Optional[float] = None) -> Any:
        return self._arun(op, timeout)

    async def _adrive(self, steps: Steps, timeout: Optional[float]) -> Any:
        d = Drive(steps, timeout, self._loop_now().time)
        while d.advance():
            if d.op is None:
                await asyncio.sleep(d.pause or 0)
                continue
            try:
                d.value = await self._arun(d.op, d.left(self.timeout))
            except BrokerError as exc:
                d.error = exc
        return d.result

    def _drive(self, steps: Steps, timeout: Optional[float]) -> Any:
        return self._adrive(steps, timeout)

    async def ping(self, timeout: Optional[float] = None) -> float:
        """Round trip to the broker in seconds, or Unreachable."""
        loop = self._loop_now()
        req = _AsyncRequest(loop)
        t0 = loop.time()
        self._engine.ping(req)
        await self._await(req, Op(w.HEARTBEAT, {}), timeout)
        return loop.time() - t0

    # ---------------------------------------------------------- tasks
    async def flush(self) -> None:
        """Send queued submissions now."""
        self._loop_now()
        self._io()

    def _when_done(self, handles: List[TaskHandle]) -> "asyncio.Future":
        """A future done when every one of ``handles`` has its outcome."""
        fut = self._loop_now().create_future()
        left = [len(handles)]

        def one(_h: TaskHandle) -> None:
            left[0] -= 1
            if left[0] <= 0 and not fut.done():
                fut.set_result(None)
        for h in handles:
            h._on_done(one)
        if not handles:
            fut.set_result(None)
        return fut

    async def wait(self, handles: Iterable[TaskHandle],
                   timeout: Optional[float] = None) -> bool:
        """Wait until every handle has its outcome; False on timeout."""
        hs = [h for h in handles if not h.done()]
        dups = [h for h in hs if h.dup]
        waits = [h.wait() for h in dups]
        waits.append(self._when_done([h for h in hs if not h.dup]))
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def as_completed(self, handles: Iterable[TaskHandle],
                           timeout: Optional[float] = None
                           ) -> AsyncIterator[TaskHandle]:
        """Yield the handles as their tasks end."""
        hs = list(handles)
        ended: "asyncio.Queue[TaskHandle]" = asyncio.Queue()
        for h in hs:
            h._on_done(ended.put_nowait)
        for n in range(len(hs)):
            try:
                yield await asyncio.wait_for(ended.get(), timeout)
            except asyncio.TimeoutError:
                raise TimeoutError("%d tasks without an outcome after %s s"
                                   % (len(hs) - n, timeout)) from None

    def map(self, handler: str, iterable: Iterable[Any], *,
            concurrency: int = 16, ordered: bool = True, star: bool = False,
            group: Optional[str] = None, pool: Optional[str] = None,
            return_exceptions: bool = False,
            result_timeout: Optional[float] = None,
            **options: Any) -> MapIterator:
        """As :meth:`taskwheel.Client.map`, as an async iterator."""
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        check_name("handler", handler)
        task_fields(**options)  # bad options fail here, not at iteration
        return MapIterator(self, handler, iterable, star, concurrency,
                           ordered, group, pool, return_exceptions,
                           result_timeout, options)

    def starmap(self, handler: str, iterable: Iterable[Sequence[Any]],
                **options: Any) -> MapIterator:
        """As :meth:`taskwheel.Client.starmap`, as an async iterator."""
        return self.map(handler, iterable, star=True, **options)

    # --------------------------------------------------------- events
    async def _status(self) -> str:
        if self._status_unknown():
            await self.ping()
        return self.status_endpoint

    def events(self, *prefixes: str, resync: bool = True,
               timeout: Optional[float] = None) -> EventStream:
        """As :meth:`taskwheel.Client.events`, as an async iterator."""
        return EventStream(self, prefixes, resync, timeout)

    async def _tail(self, sid: str, timeout: Optional[float]
                    ) -> AsyncIterator[Any]:
        stream = EventStream(self, tail_prefixes(sid), False, timeout)
        try:
            await stream._start()  # live before the state is read
            if (await self.station(sid).show()).state in TAIL_ENDED:
                return  # (an unknown station raises ENOENT)
            async for ev in stream:
                step = tail_step(sid, ev)
                if step == TAIL_DATA:
                    yield ev.data.get("data")
                elif step == TAIL_STOP or (
                        step == TAIL_CHECK and
                        (await self.station(sid).show()).state in (
                            "done", "failed")):
                    return
        finally:
            stream.close()
