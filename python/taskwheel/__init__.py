"""Submit and watch tasks, and write handlers, in Python.

taskwheel is a distributed task scheduler: a broker holds the queues,
workers on many hosts run the tasks, clients submit them and read their
results. This package speaks its wire protocol (proto/PROTOCOL.md) with
ZeroMQ and msgpack only, and runs Python functions as handlers in worker
processes.

Submitting and waiting::

    from taskwheel import Client

    with Client() as c:                      # $TASKWHEEL_BROKER or :7710
        h = c.submit("resize", "cat.png", width=200, timeout=30)
        print(h.result(timeout=60))
        for thumb in c.map("resize", paths, concurrency=8):
            ...

Writing handlers (run them with ``taskwheel-worker --proc 'python3 -m
taskwheel.handler myapp.tasks'``)::

    from taskwheel import task

    @task("resize")
    def resize(path, width=100):
        ...
        return {"path": out, "bytes": n}

The asyncio flavour is :class:`taskwheel.aio.Client`, with the same
methods as coroutines. Errors are in :mod:`taskwheel.errors`.
docs/PYTHON.md has a quickstart and a map from Celery and RQ.
"""

__version__ = "0.1.0"

from ._base import Group, Pool, Station
from ._calls import InvalidArgument
from ._records import (ChannelMessage, Event, GroupInfo, PoolInfo,
                       StationInfo, TaskResult, WorkerInfo)
from .client import Client, EventStream, MapIterator, TaskHandle
from .errors import (BrokerError, Cancelled, ChannelClosed, EncodeError,
                     Refused,
                     TaskCancelled, TaskFailed, TaskLost, TaskTimeout,
                     TaskwheelError, Unreachable)
from .task import Task, default_client, set_default_client, task

__all__ = [
    "Client", "TaskHandle", "MapIterator", "EventStream", "Event",
    "ChannelMessage", "Pool", "Group", "Station", "PoolInfo", "GroupInfo",
    "StationInfo", "WorkerInfo", "TaskResult", "TaskwheelError",
    "EncodeError", "InvalidArgument", "Unreachable", "BrokerError",
    "Refused", "TaskFailed", "TaskTimeout", "TaskCancelled", "TaskLost",
    "ChannelClosed", "Cancelled", "task", "Task", "default_client",
    "set_default_client",
]
