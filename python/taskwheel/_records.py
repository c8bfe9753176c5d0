"""What the broker's answers and messages become.

Plain data classes built from the broker's maps (PROTOCOL.md 5.13-5.14,
11.8, 12.4-12.5, 14, 8): unknown keys are ignored and missing ones take
their defaults, so a newer broker's extra keys change nothing here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from . import _wire as w
from ._calls import decode_payload
from ._engine import TaskRecord
from .errors import TaskwheelError, task_failed

# ----------------------------------------------------------------- records
def from_map(cls, data: Any) -> Any:
    """An instance of dataclass ``cls`` from a broker map; unknown keys are
    ignored and missing ones take their defaults."""
    if not isinstance(data, dict):
        raise TaskwheelError("unexpected answer from the broker: %r"
                             % (data,))
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class GroupInfo:
    """A group's settings and counters (PROTOCOL.md 12.4). ``limit`` and
    ``calls`` are None when not set."""

    pool: str = ""
    group: str = ""
    limit: Optional[int] = None
    calls: Optional[int] = None
    full: str = "queue"
    running: int = 0
    pending: int = 0
    ended: int = 0
    cancelled: int = 0
    admitted: int = 0


@dataclass
class PoolInfo:
    """A pool's settings and counters (PROTOCOL.md 12.5). ``size`` 0 is
    unlimited, and then ``free`` is None."""

    pool: str = ""
    default_limit: Optional[int] = None
    size: int = 0
    free: Optional[int] = None
    running: int = 0
    pending: int = 0
    ended: int = 0
    cancelled: int = 0
    locked: bool = False
    closed: bool = False
    groups: int = 0


@dataclass
class StationInfo:
    """A station as the broker describes it (PROTOCOL.md 11.8). State
    replies fill the first fields, ``list`` the summary fields and ``show``
    all of them; the rest stay None."""

    station: str = ""
    state: str = ""
    wanted: Optional[str] = None
    worker: Optional[int] = None
    slot: Optional[int] = None
    reason: Optional[str] = None
    handler: Optional[str] = None
    iterations: Optional[int] = None
    last_error: Optional[str] = None
    epoch: Optional[int] = None
    checkpoint: Any = None
    next: Optional[str] = None
    interval_ms: Optional[int] = None
    timeout_ms: Optional[int] = None
    placement: Optional[str] = None
    restart: Optional[str] = None
    restarts: Optional[int] = None
    n2s_queued: Optional[int] = None
    n2s_dropped: Optional[int] = None
    code: Optional[str] = None
    tags: Optional[Dict[str, str]] = None
    error: Optional[str] = None


@dataclass
class WorkerInfo:
    """A registered worker (PROTOCOL.md 5.14, ``what: "workers"``)."""

    id: int = 0
    name: str = ""
    host: str = ""
    pid: int = 0
    slots: int = 0
    running: int = 0
    credit: int = 0
    done: int = 0
    handlers: List[str] = field(default_factory=list)
    age_ms: int = 0
    stations: int = 0
    state: str = "ready"


@dataclass
class TaskResult:
    """A task's state and outcome from a RESULT query (PROTOCOL.md 5.13).

    ``state`` is one of ok, error, timeout, cancelled, lost, pending,
    running, unknown. ``value()`` returns the result or raises the task's
    :class:`TaskFailed`."""

    id: int
    state: str
    seq: int = 0
    result_bytes: Optional[bytes] = None
    error: str = ""
    worker: int = 0
    attempt: int = 0

    @property
    def done(self) -> bool:
        """True once the task has ended (any final state)."""
        return self.state in w.FINAL_STATES

    def value(self) -> Any:
        """The result of a task that ended ok; raises TaskFailed for the
        other final states and TaskwheelError for one that has not ended."""
        if self.state == "ok":
            return decode_payload(self.result_bytes)
        if self.state in w.FINAL_STATES:
            raise task_failed(self.id, self.state, self.error)
        raise TaskwheelError("task %d has not ended (%s)"
                             % (self.id, self.state))

    @classmethod
    def from_item(cls, item: Dict[str, Any]) -> "TaskResult":
        st = item.get("st", w.ST_UNKNOWN)
        return cls(id=item.get("id", 0),
                   state=(w.STATE_NAMES[st] if 0 <= st < len(w.STATE_NAMES)
                          else "unknown"),
                   seq=item.get("seq", 0), result_bytes=item.get("r"),
                   error=item.get("err") or "", worker=item.get("w", 0),
                   attempt=item.get("at", 0))


@dataclass
class ChannelMessage:
    """One item of a running task's channel (PROTOCOL.md 14), handed to an
    ``on_channel`` callback. ``kind`` is "open", "msg", "req" or "close";
    ``data`` the decoded message. For "req", the callback's return value
    is sent back as the answer; if it raises, the client asks the task to
    close its channel (the handler's request fails with ChannelClosed)."""

    task_id: int
    kind: str
    data: Any = None
    cr: int = 0
    handle: Optional[TaskRecord] = None


@dataclass
class Event:
    """One status message (PROTOCOL.md 8), or a snapshot: ``topic`` is
    then "snapshot" and ``data`` the QUERY snapshot map. ``pseq`` and
    ``tseq`` are the broker's publish numbers (0 for a snapshot's tseq)."""

    topic: str
    data: Dict[str, Any]
    pseq: int = 0
    tseq: int = 0
