"""The requests a client makes, and how to read answers.

An :class:`Op` is one request: a command, a body (the client adds
``seq``) and a function that turns the answer into the caller's value. The
builders check their arguments, so a bad request raises before anything is
sent. Operations made of several requests (gather_and_close,
until_closed, following a deduplicated task, naming a map's group) are
generators that yield :class:`Op` and :class:`Sleep` and get each answer
sent back, or its BrokerError thrown in; each client drives them with its
own kind of waiting.
"""

from __future__ import annotations

from typing import (Any, Callable, Dict, Generator, Iterable, List,
                    Optional, TypeVar, Union)

from . import _wire as w
from ._calls import (InvalidArgument, check_int, check_name, encode_value,
                     task_fields, to_ms)
from ._engine import Request
from ._records import (GroupInfo, PoolInfo, StationInfo, TaskResult,
                       WorkerInfo, from_map)
from .errors import BrokerError, Unreachable, code_name

T = TypeVar("T")

# ------------------------------------------------------------- operations
class Op:
    """One request: ``cmd`` with ``body`` (seq is added), and ``decode``,
    which turns the REPLY's data (or a RESULT reply's items) into the
    caller's value."""

    __slots__ = ("cmd", "body", "decode")

    def __init__(self, cmd: int, body: Dict[str, Any],
                 decode: Callable[[Any], Any] = lambda d: d):
        self.cmd = cmd
        self.body = body
        self.decode = decode


class Sleep:
    """A pause inside a composite operation (the client keeps doing its
    I/O meanwhile)."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float):
        self.seconds = seconds


Steps = Generator[Union[Op, Sleep], Any, T]


class Drive:
    """Runs composite operation ``steps`` for a client that does the
    waiting: :meth:`advance` yields the next step into ``op`` or ``pause``
    (False when the operation is over, its value in ``result``); the
    client runs the request and sets ``value``, or ``error`` to its
    BrokerError, which is thrown into the steps. TimeoutError once
    ``timeout`` seconds (None: no limit) have passed."""

    def __init__(self, steps: Steps, timeout: Optional[float],
                 clock: Callable[[], float]):
        self.steps = steps
        self.timeout = timeout
        self.clock = clock
        self.deadline = None if timeout is None else clock() + timeout
        self.value: Any = None
        self.error: Optional[BrokerError] = None
        self.op: Optional[Op] = None
        self.pause: Optional[float] = None
        self.result: Any = None

    def left(self, cap: Optional[float] = None) -> Optional[float]:
        """Seconds left, at most ``cap``."""
        if self.deadline is None:
            return cap
        left = self.deadline - self.clock()
        return left if cap is None else min(left, cap)

    def advance(self) -> bool:
        try:
            if self.error is not None:
                step = self.steps.throw(self.error)
            else:
                step = self.steps.send(self.value)
        except StopIteration as stop:
            self.result = stop.value
            return False
        self.value, self.error = None, None
        left = self.left()
        if left is not None and left <= 0:
            raise TimeoutError("not done within %s s" % self.timeout)
        if isinstance(step, Sleep):
            self.op, self.pause = None, self.left(step.seconds)
        else:
            self.op, self.pause = step, None
        return True


def answer(req: Request, op: Op) -> Any:
    """The decoded answer of a finished request, or its BrokerError."""
    if req.code:
        raise BrokerError("%s: %s" % (code_name(req.code), req.message or
                                      "error"), req.code)
    return op.decode(req.items if op.cmd == w.RESULT else req.data)


def unreachable(op: Op, timeout: Optional[float]) -> Unreachable:
    return Unreachable("no answer from the broker to %s within %s s"
                       % (w.COMMAND_NAMES.get(op.cmd, op.cmd), timeout))


def list_of(cls: Any) -> Callable[[Any], List[Any]]:
    return lambda data: [from_map(cls, d) for d in data or ()]


def one_of(cls: Any) -> Callable[[Any], Any]:
    return lambda data: from_map(cls, data)


def _results(ids: List[int]):
    def decode(items):
        by_id = {it.get("id"): it for it in items or ()}
        return [TaskResult.from_item(by_id.get(i, {"id": i, "st": 7}))
                for i in ids]
    return decode


def _ids(what: str, ids: Iterable[int]) -> List[int]:
    out = [check_int(what, i, 0, 2**64 - 1) for i in ids]
    if len(out) > w.MAX_ITEMS:
        raise InvalidArgument("at most %d ids at once" % w.MAX_ITEMS)
    return out


def op_query(what: str, decode: Callable[[Any], Any] = lambda d: d) -> Op:
    return Op(w.QUERY, {"what": w.op_name(w.QUERY, what)}, decode)


def op_results(ids: Iterable[int]) -> Op:
    idl = _ids("task id", ids)
    return Op(w.RESULT, {"ids": idl}, _results(idl))


def op_cancel(ids: Iterable[int], strict: bool = False) -> Op:
    body: Dict[str, Any] = {"ids": _ids("task id", ids)}
    if strict:
        body["op"] = w.op_name(w.CANCEL, "strict")
    return Op(w.CANCEL, body)


def op_worker(op: str, name: Optional[str], wid: Optional[int],
              slots: Optional[int] = None) -> Op:
    body: Dict[str, Any] = {"op": w.op_name(w.WORKER, op)}
    if wid:
        body["wid"] = check_int("wid", wid, 1, 2**64 - 1)
    elif name is not None:
        body["name"] = check_name("worker name", name)
    else:
        raise InvalidArgument("give a worker name or wid")
    if slots is not None:
        body["slots"] = check_int("slots", slots, 1, 65536)
    return Op(w.WORKER, body,
              lambda d: [from_map(WorkerInfo, x) for x in d["workers"]])


def _named_op(cmd: int, op: str, key: str, what: str, name: Optional[str],
              decode: Callable[[Any], Any], fields: Dict[str, Any]) -> Op:
    """{op, key: name?, fields...} with the fields that are not None."""
    body: Dict[str, Any] = {"op": w.op_name(cmd, op)}
    if name is not None:
        body[key] = check_name(what, name)
    body.update({k: v for k, v in fields.items() if v is not None})
    return Op(cmd, body, decode)


def op_station(op: str, sid: Optional[str] = None,
               decode: Callable[[Any], Any] = one_of(StationInfo),
               **fields: Any) -> Op:
    return _named_op(w.STATION, op, "sid", "station id", sid, decode,
                     fields)


def station_fields(handler: str, args: Any, next: str = "result",
                   interval: Optional[float] = None,
                   timeout: Optional[float] = None,
                   code: Optional[str] = None,
                   tags: Optional[Dict[str, str]] = None,
                   placement: Optional[str] = None,
                   restart: Optional[str] = None) -> Dict[str, Any]:
    """The body fields of a STATION add (PROTOCOL.md 11.8), checked."""
    f: Dict[str, Any] = {"handler": check_name("handler", handler)}
    if args is not None:
        f["args"] = encode_value("station args", args)
    if next not in ("same", "result", "handler"):
        raise InvalidArgument("next must be same, result or handler")
    f["next"] = next
    iv, to = to_ms("interval", interval), to_ms("timeout", timeout)
    if iv:
        f["interval"] = iv
    if to:
        f["timeout"] = to
    if code is not None:
        f["stcode"] = check_name("code", code, empty=True)
    if tags:
        if len(tags) > w.MAX_TAGS:
            raise InvalidArgument("at most %d tags" % w.MAX_TAGS)
        f["tags"] = {check_name("tag key", k): check_name("tag value", v,
                                                           empty=True)
                     for k, v in tags.items()}
    if placement is not None:
        if placement not in ("any", "prefer", "pinned"):
            raise InvalidArgument("placement must be any, prefer or pinned")
        f["placement"] = placement
    if restart is not None:
        if restart not in ("never", "on-failure", "always"):
            raise InvalidArgument("restart must be never, on-failure or "
                                  "always")
        f["restart"] = restart
    return f


def op_group(op: str, pool: Optional[str], group: Optional[str],
             decode: Callable[[Any], Any] = one_of(GroupInfo),
             limit: Optional[int] = None, calls: Optional[int] = None,
             full: Optional[str] = None) -> Op:
    body: Dict[str, Any] = {"op": w.op_name(w.GROUP, op)}
    if pool is not None:
        body["pool"] = check_name("pool", pool)
    if group is not None:
        body["group"] = check_name("group", group)
    if limit is not None:
        body["limit"] = check_int("limit", limit, 0, 2**63 - 1)
    if calls is not None:
        body["calls"] = check_int("calls", calls, 1, 2**63 - 1)
    if full is not None:
        if full not in ("queue", "reject"):
            raise InvalidArgument("full must be queue or reject")
        body["full"] = full
    return Op(w.GROUP, body, decode)


def op_pool(op: str, pool: Optional[str],
            decode: Callable[[Any], Any] = one_of(PoolInfo),
            **fields: Any) -> Op:
    return _named_op(w.POOL, op, "pool", "pool", pool, decode, fields)


def op_schedule(op: str, name: Optional[str] = None,
                decode: Callable[[Any], Any] = lambda d: d,
                **fields: Any) -> Op:
    """A SCHEDULE request (PROTOCOL.md 18.11); the data comes back as the
    broker's maps."""
    return _named_op(w.SCHEDULE, op, "name", "schedule name", name, decode,
                     fields)


def schedule_fields(cron: str, handler: str, a: Optional[bytes],
                    tz: Optional[str] = None, overlap: Optional[str] = None,
                    catch_up: Optional[str] = None,
                    **options: Any) -> Dict[str, Any]:
    """The body fields of a SCHEDULE add: the expression, zone, policies
    and the task template, checked (the broker judges the expression and
    the zone)."""
    if not isinstance(cron, str) or not cron or len(cron) > 256:
        raise InvalidArgument("cron must be 1-256 characters")
    if overlap not in (None, "skip", "queue", "cancel-previous"):
        raise InvalidArgument("overlap must be skip, queue or "
                              "cancel-previous")
    if catch_up not in (None, "none", "last", "all"):
        raise InvalidArgument("catch_up must be none, last or all")
    if options.get("key") is not None or options.get("after") is not None:
        raise InvalidArgument("a scheduled task has no key and no after")
    item: Dict[str, Any] = {"h": check_name("handler", handler)}
    if a is not None:
        item["a"] = a
    item.update(task_fields(**options))
    return {"cron": cron, "tz": None if tz is None else check_name("tz", tz),
            "overlap": overlap, "catchup": catch_up, "items": [item]}


def cancelled_ids(data: Any) -> List[int]:
    return list(data.get("cancelled", ()))


def steps_gather_and_close(pool: str, poll: float) -> Steps[PoolInfo]:
    """Lock the pool, wait until none of its tasks is pending or running,
    then close it (S63)."""
    yield op_pool("lock", pool)
    while True:
        info = yield op_pool("stats", pool)
        if info.running == 0 and info.pending == 0:
            break
        yield Sleep(poll)
    return (yield op_pool("close", pool))


def steps_until_closed(pool: str, poll: float) -> Steps[PoolInfo]:
    """Wait until the pool is closed, whoever closes it (S64)."""
    while True:
        info = yield op_pool("stats", pool)
        if info.closed:
            return info
        yield Sleep(poll)


def steps_outcome(task_id: int, poll: float) -> Steps[TaskResult]:
    """Ask about a task until it has ended (for a deduplicated submission,
    whose outcome is pushed to the first submitter only)."""
    delay = poll
    while True:
        (res,) = yield op_results([task_id])
        if res.state in w.FINAL_STATES or res.state == "unknown":
            return res
        yield Sleep(delay)
        delay = min(delay * 2, 1.0)


def steps_make_group(kind: str, handler: str, group: Optional[str],
                     pool: Optional[str], limit: int) -> Steps[str]:
    """Create a map's group: ``group`` (EEXIST if it exists, S46), else
    "<kind>-<handler>-group-<i>" with the first free i (S45)."""
    if group is not None:
        yield op_group("create", pool, group, limit=limit)
        return group
    i = 0
    while True:
        name = check_name("map group name",
                          "%s-%s-group-%d" % (kind, handler, i))
        try:
            yield op_group("create", pool, name, limit=limit)
            return name
        except BrokerError as exc:
            if exc.code != -17:  # EEXIST: try the next index
                raise
        i += 1
