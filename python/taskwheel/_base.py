"""The methods both clients share.

The blocking :class:`taskwheel.Client` and the asyncio
:class:`taskwheel.aio.Client` differ only in how they wait. Everything
else is written once here: submitting, the requests that are one round
trip each, task channels, and the views :class:`Pool`, :class:`Group` and
:class:`Station`. Their request methods return ``self._run(op)``: the
blocking client runs the request and returns the answer, the asyncio
client returns an awaitable of it.
"""

from __future__ import annotations

import os
import weakref
from typing import (Any, Awaitable, Callable, Dict, Iterable, List,
                    Optional, Sequence, TypeVar, Union)

import zmq

from . import _wire as w
from ._calls import (InvalidArgument, ItemEncoder, check_int, check_name,
                     decode_payload, encode_call, encode_value, groups_list,
                     item_encoder, task_fields)
from ._conn import Connection, broker_endpoint
from ._eplist import EndpointList
from ._engine import Engine, Options, TaskRecord
from ._events import status_endpoint
from ._ops import (Op, Steps, cancelled_ids, list_of, op_cancel, op_group,
                   op_pool, op_query, op_results, op_station, op_worker,
                   station_fields, steps_gather_and_close, steps_make_group,
                   steps_until_closed)
from ._records import (ChannelMessage, GroupInfo, PoolInfo, StationInfo,
                       TaskResult, WorkerInfo, from_map)
from .errors import EFULL, Refused, TaskwheelError, code_name, task_failed
from .keys import load as load_curve

T = TypeVar("T")
#: What a shared method returns: the value itself on a :class:`Client`, an
#: awaitable of it on an :class:`taskwheel.aio.Client`.
Result = Union[T, Awaitable[T]]

# ------------------------------------------------------------ shared API
class ClientBase:
    """Methods shared by :class:`taskwheel.Client` and
    :class:`taskwheel.aio.Client`. Submitting returns a handle at once on
    both; the requests return their answer on the blocking client and an
    awaitable of it on the asyncio one.

    A subclass provides ``_engine``, ``_handle_class``, ``on_channel``,
    ``_closed`` and the four ways it differs: :meth:`_run` (one request),
    :meth:`_drive` (several), :meth:`_queue` (change the engine's state,
    then get what it queued sent) and :meth:`_deliver_chan` (run a
    channel callback)."""

    _engine: Engine
    _handle_class: type
    _closed: bool
    on_channel: Optional[Callable[[ChannelMessage], Any]]

    def __init__(self, broker: Optional[str] = None, *,
                 status: Optional[str] = None,
                 curve_secret: Optional[str] = None,
                 broker_key: Optional[str] = None,
                 timeout: float = 5.0, heartbeat: float = 1.0,
                 liveness: int = 3, reconnect_min: float = 0.1,
                 reconnect_max: float = 5.0, max_outbox: int = 1_000_000,
                 on_channel: Optional[Callable[[ChannelMessage], Any]] = None,
                 context: Optional[zmq.Context] = None):
        self.broker = broker_endpoint(broker)
        self._status_given = status
        self.timeout = timeout
        self.on_channel = on_channel
        self._curve = load_curve(curve_secret, broker_key)
        self._engine = Engine(Options(heartbeat, liveness, reconnect_min,
                                      reconnect_max, max_outbox))
        self._engine.on_channel = self._chan_item
        try:
            self._engine.eps = EndpointList(self.broker)
        except ValueError as exc:
            raise TaskwheelError("cannot use broker endpoint %r: %s"
                                 % (self.broker, exc)) from None
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        self._closed = False
        self._streams: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._init_io()
        try:
            self._conn = Connection(self._ctx, self.broker, self._engine,
                                    self._curve, self._on_conn_change)
        except zmq.ZMQError as exc:
            self._io_failed()
            raise TaskwheelError("cannot use broker endpoint %r: %s"
                                 % (self.broker, exc)) from None

    def _close_streams(self) -> None:
        """Close the event streams still open (a context cannot end with
        sockets open)."""
        for stream in list(self._streams):
            stream.close()

    def _init_io(self) -> None:
        """Set up what the subclass waits with (before the socket)."""

    def _io_failed(self) -> None:
        """Undo :meth:`_init_io` when the socket cannot be made."""

    def _on_conn_change(self) -> None:
        """The connection opened or closed its socket."""

    @property
    def status_endpoint(self) -> str:
        """The broker's status socket: the ``status`` argument, else
        $TASKWHEEL_STATUS, else what the broker names in its answer to a
        ping (PROTOCOL.md 5.8), else the frontend's port + 2."""
        return status_endpoint(self._status_given, self.broker,
                               self._engine.pub)

    def _status_unknown(self) -> bool:
        return not self._status_given and not self._engine.pub and \
            not os.environ.get("TASKWHEEL_STATUS")

    def _run(self, op: Op, timeout: Optional[float] = None) -> Any:
        raise NotImplementedError

    def _drive(self, steps: Steps, timeout: Optional[float]) -> Any:
        raise NotImplementedError

    def _queue(self, make: Callable[[], T]) -> T:
        raise NotImplementedError

    def _deliver_chan(self, cb: Callable[[ChannelMessage], Any],
                      msg: ChannelMessage) -> None:
        raise NotImplementedError

    # ---- submitting
    def _new_handle(self, handler: str, a: Optional[bytes],
                    enc: ItemEncoder,
                    on_channel: Optional[Callable[..., Any]]) -> Any:
        """Queue one task (inside :meth:`_queue`); ``enc`` encodes its
        item (:func:`item_encoder`)."""
        e = self._engine
        if self._closed:
            raise TaskwheelError("the client is closed")
        if e.outbox_full():
            raise TaskwheelError("%d submissions wait for their "
                                 "acknowledgement (max_outbox)"
                                 % len(e.keep), EFULL)
        h = self._handle_class(self, e.new_seq(), handler)
        h.on_channel = on_channel
        e.add_item(h, enc(h.seq, a))
        return h

    def submit(self, handler: str, *args: Any,
               timeout: Optional[float] = None, retries: int = 0,
               priority: int = 0, pool: Optional[str] = None,
               group: Union[None, str, Sequence[str]] = None,
               delay: Optional[float] = None, key: Optional[str] = None,
               at: Any = None, after: Any = None,
               after_any_end: bool = False, with_results: bool = False,
               on_channel: Optional[Callable[[ChannelMessage], Any]] = None,
               **kwargs: Any) -> Any:
        """Submit ``handler(*args, **kwargs)`` and return its handle at
        once (on both clients: this is not a coroutine).

        Options: ``timeout`` (seconds the worker lets it run), ``retries``
        (re-runs after an error or timeout, with backoff), ``priority``
        (higher first), ``pool`` and ``group`` (a name or a list: the
        groups whose limits apply), ``delay`` (seconds before it may
        start), ``key`` (deduplication: while the pool knows a task with
        this key, no new one is made and the handle follows the first),
        ``at`` (an aware datetime or epoch seconds before which it may not
        start), ``after`` (task ids or acknowledged handles it waits for:
        it runs when they all succeeded and is cancelled "upstream
        failed" otherwise), ``after_any_end`` (run once they ended,
        however), ``with_results`` (its arguments become their results,
        in order, then its own), ``on_channel`` (called with each
        :class:`ChannelMessage` the task sends). Keyword arguments named
        like an option go through :meth:`send_task`.

        Raises EncodeError (a TypeError) for arguments msgpack cannot
        encode and InvalidArgument (a ValueError) for bad options; nothing
        is sent then. The blocking client sends the task at once (inside
        ``with client.batch():`` at the end of the block); the asyncio
        client at the end of this turn of the event loop, with every other
        submission of the turn.
        """
        return self.send_task(handler, args, kwargs, timeout=timeout,
                              retries=retries, priority=priority, pool=pool,
                              group=group, delay=delay, key=key, at=at,
                              after=after, after_any_end=after_any_end,
                              with_results=with_results,
                              on_channel=on_channel)

    def send_task(self, handler: str, args: Sequence[Any] = (),
                  kwargs: Optional[Dict[str, Any]] = None,
                  **options: Any) -> Any:
        """Submit ``handler(*args, **kwargs)`` with ``options`` as in
        :meth:`submit` (Celery's ``send_task``)."""
        on_channel = options.pop("on_channel", None)
        check_name("handler", handler)
        a = encode_call(args, kwargs)
        enc = item_encoder(handler, task_fields(**options))
        return self._queue(lambda: self._new_handle(handler, a, enc,
                                                    on_channel))

    def submit_payload(self, handler: str, payload: Any,
                       **options: Any) -> Any:
        """Submit a task whose argument value is ``payload`` itself, not a
        call: for native handlers (``echo``, ``exec``...) that take one
        value."""
        on_channel = options.pop("on_channel", None)
        check_name("handler", handler)
        a = None if payload is None else encode_value("the payload", payload)
        enc = item_encoder(handler, task_fields(**options))
        return self._queue(lambda: self._new_handle(handler, a, enc,
                                                    on_channel))

    def submit_many(self, handler: str, calls: Iterable[Any],
                    star: bool = False, **options: Any) -> List[Any]:
        """Submit one task per element of ``calls`` in as few messages as
        possible: each element is the one argument of its call, or with
        ``star`` the tuple of its positional arguments. Everything is
        encoded before anything is queued: one bad element raises and
        sends nothing."""
        check_name("handler", handler)
        enc = item_encoder(handler, task_fields(**options))
        payloads = [encode_call(tuple(c) if star else (c,), None)
                    for c in calls]
        new = self._new_handle
        return self._queue(lambda: [new(handler, a, enc, None)
                                    for a in payloads])

    # ---- graphs in one request (PROTOCOL.md 18.9)
    def _graph(self, steps: Sequence[Any], parents: Sequence[List[int]],
               group: Optional[str], options: Dict[str, Any]) -> List[Any]:
        """Queue ``steps`` (each ``(handler, *args)`` or a handler name) as
        ONE SUBMIT in which step i waits for the steps ``parents[i]`` (by
        index, earlier ones only) and gets their results first in its
        arguments. Everything is checked and encoded first: a bad step
        raises and sends nothing."""
        for bad in ("after_any_end", "with_results"):
            if options.get(bad):
                raise InvalidArgument("%s: a chain or chord passes results "
                                      "and cancels on a failure itself"
                                      % bad)
        if not steps:
            raise InvalidArgument("a chain or chord needs at least one step")
        if len(steps) > 65536:
            raise InvalidArgument("at most 65536 tasks in one request")
        if group is not None:
            g = groups_list(options.pop("group", None))
            options["group"] = g + [check_name("group", group)]
        nodes = []
        for i, step in enumerate(steps):
            if isinstance(step, str):
                step = (step,)
            if not isinstance(step, (tuple, list)) or not step:
                raise InvalidArgument("step %d: (handler, *args) or a handler "
                                      "name" % (i + 1))
            handler = check_name("handler", step[0])
            a = encode_call(tuple(step[1:]), None)
            fields = task_fields(**options)
            if parents[i]:
                fields["wr"] = 1
            nodes.append((handler, a, fields, parents[i]))

        def make() -> List[Any]:
            e = self._engine
            if len(e.keep) + len(nodes) > e.opts.max_outbox:
                raise TaskwheelError("a graph of %d tasks does not fit the "
                                     "outbox (max_outbox)" % len(nodes),
                                     EFULL)
            e.seal()
            e.graph = True
            handles: List[Any] = []
            try:
                for handler, a, fields, par in nodes:
                    if par:
                        fields["as"] = [handles[k].seq for k in par]
                    handles.append(self._new_handle(
                        handler, a, item_encoder(handler, fields), None))
            finally:
                e.graph = False
            e.seal()
            return handles
        return self._queue(make)

    def chain(self, *steps: Any, group: Optional[str] = None,
              **options: Any) -> List[Any]:
        """Submit a chain in one request and return its handles at once:
        each step, ``(handler, *args)`` or a handler name, runs once the
        one before succeeded, with its result as the first argument. The
        broker accepts the whole chain or refuses every step (the handles
        then fail with Refused, the refused step's naming why). A step
        that fails cancels the rest ("upstream failed"). ``group``: every
        step joins it, so ``cancel_group`` cancels the chain; ``options``
        as in :meth:`submit` (timeout, retries...), for every step."""
        return self._graph(steps, [[i - 1] if i else []
                                   for i in range(len(steps))],
                           group, options)

    def chord(self, header: Sequence[Any], callback: Any,
              group: Optional[str] = None, **options: Any) -> List[Any]:
        """Submit a chord in one request: the ``header`` steps run in
        parallel and ``callback`` runs once they all succeeded, with their
        results, in order, before its own arguments. Returns the handles,
        the callback's last; all or nothing, ``group`` and ``options`` as
        in :meth:`chain`."""
        n = len(header)
        if n == 0:
            raise InvalidArgument("a chord needs at least one header task")
        return self._graph(list(header) + [callback],
                           [[] for _ in range(n)] + [list(range(n))],
                           group, options)

    def _map_submitter(self, handler: str, star: bool,
                       fields: Dict[str, Any]) -> Callable[[Any], Any]:
        """What a map submits for one item (inside :meth:`_queue`)."""
        enc = item_encoder(handler, fields)

        def one(item: Any) -> Any:
            a = encode_call(tuple(item) if star else (item,), None)
            return self._new_handle(handler, a, enc, None)
        return one

    def _make_group(self, kind: str, handler: str, group: Optional[str],
                    pool: Optional[str], limit: int) -> Result[str]:
        """Create a map's group with ``limit`` running tasks."""
        return self._drive(steps_make_group(kind, handler, group, pool,
                                            limit), None)

    # ---- task channels
    def _chan_item(self, rec: Optional[TaskRecord], item: Dict[str, Any]
                   ) -> None:
        """A CHAN item from the broker (engine callback)."""
        cb = (rec.on_channel if rec is not None and rec.on_channel
              else self.on_channel)
        if cb is not None:
            self._deliver_chan(cb, ChannelMessage(
                item.get("id", 0), item.get("ev", ""),
                decode_payload(item.get("d")), item.get("cr", 0), rec))

    def _chan_answer(self, msg: ChannelMessage, value: Any,
                     failed: bool) -> None:
        """Send what a channel callback returned (or its failure)."""
        if failed:
            self.close_channel(msg.task_id)
        elif msg.kind == "req":
            self.respond(msg.task_id, msg.cr, value)

    def respond(self, task_id: int, cr: int, value: Any) -> None:
        """Answer channel request ``cr`` of task ``task_id`` (normally the
        ``on_channel`` callback's return value does this)."""
        d = encode_value("the response", value)
        self._queue(lambda: self._engine.send(w.CHAN, {"items": [
            {"id": task_id, "ev": "resp", "cr": cr, "d": d}]}))

    def close_channel(self, task_id: int) -> None:
        """Ask a running task to close its channel: its waiting and later
        requests fail with ChannelClosed (S93)."""
        self._queue(lambda: self._engine.send(w.CHAN, {"items": [
            {"id": task_id, "ev": "closereq"}]}))

    # ---- state
    @property
    def routing_id(self) -> str:
        """This client's routing id, kept across reconnects."""
        return self._engine.rid.decode()

    @property
    def last_error(self) -> str:
        """The message of the last ERROR the broker sent this client."""
        return self._engine.last_error

    def _stats(self) -> Dict[str, int]:
        e = self._engine
        return dict(e.stats, unacked=len(e.keep), waiting=len(e.waiting),
                    outstanding=len(e.pending))

    # ---- the broker
    def status(self) -> Result[Dict[str, Any]]:
        """The broker's counters (QUERY "status", PROTOCOL.md 5.14)."""
        return self._run(op_query("status"))

    def workers(self) -> Result[List[WorkerInfo]]:
        """The registered workers, in joining order."""
        return self._run(op_query("workers", list_of(WorkerInfo)))

    def snapshot(self) -> Result[Dict[str, Any]]:
        """One consistent picture of the broker (QUERY "snapshot"): status,
        workers, stations by state, task counts, groups at their limit, and
        the last ``tseq`` of every status topic (8.2)."""
        return self._run(op_query("snapshot"))

    def drain_worker(self, name: Optional[str] = None,
                     wid: Optional[int] = None) -> Result[List[WorkerInfo]]:
        """Ask a worker (every live worker of that ``name``, or exactly
        ``wid``) to move its work away and exit (PROTOCOL.md 5.18)."""
        return self._run(op_worker("drain", name, wid))

    def resize_worker(self, slots: int, name: Optional[str] = None,
                      wid: Optional[int] = None) -> Result[List[WorkerInfo]]:
        """Give a running worker ``slots`` slots (1..65536); shrinking
        never kills a running task (PROTOCOL.md 5.18)."""
        return self._run(op_worker("resize", name, wid, slots))

    # ---- tasks by id
    def result(self, task_id: int) -> Result[TaskResult]:
        """The state and outcome of any task by id, now (a RESULT query).
        An id the broker has no record of comes back ``unknown``."""
        op = op_results([task_id])
        inner = op.decode
        op.decode = lambda items: inner(items)[0]
        return self._run(op)

    def results(self, task_ids: Iterable[int]) -> Result[List[TaskResult]]:
        """:meth:`result` for many ids in one request, in order."""
        return self._run(op_results(task_ids))

    def cancel(self, *task_ids: int, strict: bool = False
               ) -> Result[Dict[str, List[int]]]:
        """Cancel tasks by id. Returns {"cancelled": [...], "ended":
        [...], "unknown": [...]} (PROTOCOL.md 5.6): a pending task ends
        cancelled at once, a running one when its worker confirms. With
        ``strict``, all or nothing: BrokerError ENOENT, ECANCELED or
        EENDED names the first id that cannot be cancelled and nothing is
        (12.6)."""
        return self._run(op_cancel(task_ids, strict))

    def cancel_group(self, group: str, pool: Optional[str] = None
                     ) -> Result[List[int]]:
        """Cancel every task the group ever held (pending ones end at once,
        running ones are asked to stop) and forget the group (S58).
        Returns the ids this cancelled."""
        return self._run(op_pool("cancel_group", pool, cancelled_ids,
                                 group=check_name("group", group)))

    def cancel_all(self, pool: Optional[str] = None) -> Result[List[int]]:
        """Cancel every pending or running task of the pool (default
        "default") and forget its groups (S59). Returns the ids."""
        return self._run(op_pool("cancel_all", pool, cancelled_ids))

    # ---- groups and pools
    def pool(self, name: str = "default") -> "Pool":
        """A view of pool ``name`` (no request is made here)."""
        return Pool(self, check_name("pool", name))

    def group(self, name: str, pool: Optional[str] = None) -> "Group":
        """A view of group ``name`` of ``pool`` (no request here)."""
        return Group(self, pool, check_name("group", name))

    def group_limit(self, group: str, limit: Optional[int],
                    pool: Optional[str] = None,
                    full: Optional[str] = None) -> Result[GroupInfo]:
        """At most ``limit`` tasks of ``group`` run at once across the
        cluster (None removes the limit). ``full="reject"`` refuses tasks
        submitted while the group is at its limit (ELIMIT) instead of
        queueing them. Shortcut for ``group(g, pool).set(...)``."""
        if limit is None:
            return self._run(op_group("clear", pool, group))
        return self._run(op_group("set", pool, group, limit=limit,
                                  full=full))

    def groups(self, pool: Optional[str] = None) -> Result[List[GroupInfo]]:
        """Every group of the pool."""
        return self._run(op_group("list", pool, None, list_of(GroupInfo)))

    # ---- stations
    def add_station(self, sid: str, handler: str, args: Any = None, *,
                    next: str = "result", interval: Optional[float] = None,
                    timeout: Optional[float] = None,
                    code: Optional[str] = None,
                    tags: Optional[Dict[str, str]] = None,
                    placement: Optional[str] = None,
                    restart: Optional[str] = None) -> Result[StationInfo]:
        """Add station ``sid``: a loop running ``handler`` on one slot, its
        first input ``args``, each next input chosen by ``next`` ("same",
        "result" or "handler"), iterations ``interval`` seconds apart at
        most ``timeout`` seconds each (PROTOCOL.md 11.8). Returns where the
        broker placed it. BrokerError EEXIST if the id is taken, EHANDLER
        if no worker ever offered the handler."""
        f = station_fields(handler, args, next, interval, timeout, code,
                           tags, placement, restart)
        return self._run(op_station("add", sid, **f))

    def station(self, sid: str) -> "Station":
        """A view of station ``sid`` (no request is made here)."""
        return Station(self, check_name("station id", sid))

    def stations(self) -> Result[List[StationInfo]]:
        """A summary of every station, in the order they were added."""
        return self._run(op_station("list", decode=list_of(StationInfo)))

    def rebalance_stations(self) -> Result[int]:
        """Even out stations across workers; returns how many moves were
        started (PROTOCOL.md 11.8)."""
        return self._run(op_station("rebalance",
                                    decode=lambda d: d.get("moved", 0)))


class Pool:
    """Pool ``name``: its size, default group limit, lock and close, and
    cancelling its tasks (PROTOCOL.md 12.5). On an asyncio client every
    method returns an awaitable."""

    def __init__(self, client: ClientBase, name: str):
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return "Pool(%r)" % self.name

    def stats(self) -> Result[PoolInfo]:
        """The pool's settings and counters."""
        return self.client._run(op_pool("stats", self.name))

    def size(self, size: int) -> Result[PoolInfo]:
        """At most ``size`` tasks of the whole pool run at once (0: no
        limit)."""
        return self.client._run(op_pool(
            "size", self.name, limit=check_int("size", size, 0, 2**63 - 1)))

    def default_limit(self, limit: Optional[int]) -> Result[PoolInfo]:
        """The limit of every group of the pool that has none of its own
        (None clears it, S101)."""
        lim = None if limit is None else check_int("limit", limit, 0,
                                                   2**63 - 1)
        return self.client._run(op_pool("default_limit", self.name,
                                        limit=lim))

    def lock(self) -> Result[PoolInfo]:
        """Refuse new tasks (ELOCKED) until :meth:`unlock`."""
        return self.client._run(op_pool("lock", self.name))

    def unlock(self) -> Result[PoolInfo]:
        """Accept tasks again (not after :meth:`close`)."""
        return self.client._run(op_pool("unlock", self.name))

    def close(self) -> Result[PoolInfo]:
        """Refuse new tasks for good (ECLOSED); running ones go on."""
        return self.client._run(op_pool("close", self.name))

    def flush(self) -> Result[int]:
        """Forget the ended tasks of the pool; returns how many."""
        return self.client._run(op_pool("flush", self.name,
                                        lambda d: d.get("forgotten", 0)))

    def stop(self, n: Optional[int] = None) -> Result[List[int]]:
        """Cancel the ``n`` most recently started running tasks (all of
        them when None), newest first; returns their ids (S67-S68)."""
        count = 2**63 - 1 if n is None else check_int("n", n, 0, 2**63 - 1)
        return self.client._run(op_pool("stop", self.name, list,
                                        n=count or None))

    def cancel_all(self) -> Result[List[int]]:
        """Cancel every pending or running task of the pool."""
        return self.client.cancel_all(self.name)

    def group(self, name: str) -> "Group":
        """A view of group ``name`` of this pool."""
        return Group(self.client, self.name, check_name("group", name))

    def groups(self) -> Result[List[GroupInfo]]:
        """Every group of the pool."""
        return self.client.groups(self.name)

    def gather_and_close(self, timeout: Optional[float] = None,
                         poll: float = 0.05) -> Result[PoolInfo]:
        """Lock the pool, wait until none of its tasks is pending or
        running, then close it (S63). Finish this client's maps into the
        pool first: a locked pool refuses them. TimeoutError when
        ``timeout`` passes first (the pool then stays locked)."""
        return self.client._drive(steps_gather_and_close(self.name, poll),
                                  timeout)

    def until_closed(self, timeout: Optional[float] = None,
                     poll: float = 0.1) -> Result[PoolInfo]:
        """Wait until the pool is closed, by anyone (S64)."""
        return self.client._drive(steps_until_closed(self.name, poll),
                                  timeout)


class Group:
    """Group ``name`` of a pool: its limit, calls cap and mode, its
    counters and task ids (PROTOCOL.md 12.4). On an asyncio client every
    method returns an awaitable."""

    def __init__(self, client: ClientBase, pool: Optional[str], name: str):
        self.client = client
        self.pool = pool
        self.name = name

    def __repr__(self) -> str:
        return "Group(%r, pool=%r)" % (self.name, self.pool)

    def create(self, limit: Optional[int] = None, calls: Optional[int] = None,
               full: Optional[str] = None) -> Result[GroupInfo]:
        """Create the group; BrokerError EEXIST if it exists (S46)."""
        return self.client._run(op_group("create", self.pool, self.name,
                                         limit=limit, calls=calls,
                                         full=full))

    def set(self, limit: Optional[int] = None, calls: Optional[int] = None,
            full: Optional[str] = None) -> Result[GroupInfo]:
        """Change the settings given (creating the group if needed):
        ``limit`` running tasks at most, ``calls`` admissions in its life,
        ``full`` "queue" or "reject"."""
        return self.client._run(op_group("set", self.pool, self.name,
                                         limit=limit, calls=calls,
                                         full=full))

    def clear(self) -> Result[Optional[GroupInfo]]:
        """Remove the group's own limit (None if there is no group)."""
        return self.client._run(op_group(
            "clear", self.pool, self.name,
            lambda d: None if d is None else from_map(GroupInfo, d)))

    def info(self) -> Result[GroupInfo]:
        """The group's settings and counters; a group that does not exist
        reads as an empty one (S98)."""
        return self.client._run(op_group("get", self.pool, self.name))

    def ids(self) -> Result[List[int]]:
        """Every task id the group ever held, in admission order (S60);
        BrokerError ENOENT if the group does not exist."""
        return self.client._run(op_group("ids", self.pool, self.name, list))

    def cancel(self) -> Result[List[int]]:
        """Cancel the group's tasks and forget the group (S58)."""
        return self.client.cancel_group(self.name, self.pool)


class Station:
    """Station ``sid``: control, n2s messages in and s2n messages out
    (PROTOCOL.md 11). On an asyncio client every method returns an
    awaitable, and :meth:`tail` an async iterator."""

    def __init__(self, client: ClientBase, sid: str):
        self.client = client
        self.sid = sid

    def __repr__(self) -> str:
        return "Station(%r)" % self.sid

    def _op(self, op: str, **fields: Any) -> Any:
        return self.client._run(op_station(op, self.sid, **fields))

    def show(self) -> Result[StationInfo]:
        """Every detail of the station, its checkpoint included."""
        return self._op("show")

    def pause(self) -> Result[StationInfo]:
        """Suspend its iterations; it keeps its slot."""
        return self._op("pause")

    def resume(self) -> Result[StationInfo]:
        """Continue a paused station, or start an ended one again from its
        checkpoint (the protocol's "continue")."""
        return self._op("continue")

    def stop(self) -> Result[StationInfo]:
        """End the station after its current iteration."""
        return self._op("stop")

    def cancel(self) -> Result[StationInfo]:
        """End the station now, aborting its current iteration."""
        return self._op("cancel")

    def remove(self) -> Result[StationInfo]:
        """Stop the station and forget it."""
        return self._op("remove")

    def send(self, message: Any) -> Result[Dict[str, Any]]:
        """Queue one n2s message for the station; returns {"station",
        "seq", "queued"}. BrokerError EFULL when its backlog is full."""
        return self.client._run(op_station(
            "send", self.sid, decode=lambda d: d,
            payload=encode_value("the message", message)))

    def tail(self, timeout: Optional[float] = None) -> Any:
        """The station's s2n messages (decoded values) from now on, until
        it stops, is cancelled or removed, or ends for good."""
        return self.client._tail(self.sid, timeout)


# --------------------------------------------------------------- handles
class HandleBase(TaskRecord):
    """What both clients' task handles share: the task's id and state as
    far as this client knows them, and its outcome."""

    __slots__ = ("client",)

    def __init__(self, client: Any, seq: int, handler: str):
        super().__init__(seq, handler)
        self.client = client

    def __repr__(self) -> str:
        return "<%s %s id=%s seq=%d %s>" % (
            type(self).__name__, self.handler, self.id, self.seq, self.state)

    def done(self) -> bool:
        """True once the task has an outcome here: it ended (ok, error,
        timeout, cancelled, lost) or the broker refused it."""
        return self.state not in ("submitted", "pending")

    def _run_callbacks(self) -> None:
        callbacks, self._callbacks = self._callbacks, None
        for cb in callbacks or ():
            cb(self)

    def _on_done(self, cb: Callable[[Any], None]) -> None:
        if self.done():
            cb(self)
        else:
            if self._callbacks is None:
                self._callbacks = []
            self._callbacks.append(cb)

    def _apply(self, res: TaskResult) -> None:
        """Take the outcome a RESULT query found (a deduplicated task)."""
        self._ended({"id": res.id, "st": w.STATE_NAMES.index(res.state)
                     if res.state in w.STATE_NAMES else w.ST_UNKNOWN,
                     "r": res.result_bytes, "err": res.error,
                     "w": res.worker, "at": res.attempt})

    def _refresh_op(self) -> Op:
        return Op(w.RESULT, {"ids": [self.id]},
                  lambda items: TaskResult.from_item(items[0]).state)

    def _outcome(self) -> Any:
        """The result of an ended task, or its exception raised."""
        exc = self._exception()
        if exc is not None:
            raise exc
        return decode_payload(self.result_bytes)

    def _exception(self) -> Optional[TaskwheelError]:
        if self.state == "ok":
            return None
        if self.state == "refused":
            return Refused("task refused by the broker: %s (%s)"
                           % (self.error or code_name(self.code),
                              code_name(self.code)), self.code)
        return task_failed(self.id or 0, self.state, self.error)
