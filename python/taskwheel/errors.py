"""The exceptions the taskwheel package raises.

Every exception is a :class:`TaskwheelError`. Those that come from the
broker carry its error ``code`` (a negative number from PROTOCOL.md 5.16)
and the code's ``name`` ("ENOENT", "EHANDLER"...); the message is the
broker's text. A task that did not end ``ok`` makes ``result()`` raise a
:class:`TaskFailed` (or one of its subclasses), which carries the remote
error text and, for Python handlers, the remote traceback.

    TaskwheelError
     +-- EncodeError          arguments msgpack cannot encode (also TypeError)
     +-- Unreachable          no answer from the broker in time
     +-- BrokerError          the broker answered ERROR
     +-- Refused              the broker refused a submission (in its ACK)
     +-- TaskFailed           the task ended error
          +-- TaskTimeout     ... timeout
          +-- TaskCancelled   ... cancelled
          +-- TaskLost        ... lost (given up after worker losses)
     +-- ChannelClosed        a handler's channel request after a close

``TimeoutError`` (the built-in) is raised when a wait such as
``TaskHandle.result(timeout=...)`` runs out before the task ends; the task
goes on.
"""

from __future__ import annotations

import re
from typing import Optional

# Error codes on the wire (PROTOCOL.md 5.16, common/error.h TW_ERRNO_MAP).
CODES = {
    -1: ("EPERM", "operation not permitted"),
    -2: ("ENOENT", "not found"),
    -5: ("EIO", "input/output error"),
    -7: ("E2BIG", "too big"),
    -11: ("EAGAIN", "resource temporarily unavailable"),
    -12: ("ENOMEM", "out of memory"),
    -17: ("EEXIST", "already exists"),
    -22: ("EINVAL", "invalid argument"),
    -110: ("ETIMEDOUT", "timed out"),
    -125: ("ECANCELED", "cancelled"),
    -4001: ("EPROTO", "malformed message"),
    -4002: ("EVERSION", "unsupported protocol version"),
    -4003: ("ECOMMAND", "unknown command"),
    -4004: ("EHANDLER", "unknown handler"),
    -4005: ("EFULL", "queue full"),
    -4006: ("EUNREACH", "broker unreachable"),
    -4007: ("EFAILED", "task failed"),
    -4008: ("ESTATE", "wrong state for this operation"),
    -4009: ("EWORKER", "unknown worker: send HELLO first"),
    -4010: ("ELOST", "task lost: retries exhausted after worker failures"),
    -4011: ("ELIMIT", "group limit reached"),
    -4012: ("ELOCKED", "pool is locked"),
    -4013: ("ECLOSED", "pool is closed"),
    -4014: ("EENDED", "task already ended"),
    -4017: ("ECLOSEREQ", "the submitter asked to close the channel"),
    -4020: ("ENOTACTIVE", "not the active broker of its pair"),
}

# The names as module constants: taskwheel.errors.ENOENT == -2.
ENOENT = -2
E2BIG = -7
EEXIST = -17
EINVAL = -22
ECANCELED = -125
EPROTO = -4001
EHANDLER = -4004
EFULL = -4005
EUNREACH = -4006
ESTATE = -4008
ELIMIT = -4011
ELOCKED = -4012
ECLOSED = -4013
EENDED = -4014
ECLOSEREQ = -4017
ENOTACTIVE = -4020


def code_name(code: int) -> str:
    """The name of a wire error code ("ENOENT"), or "E<code>" if unknown
    (a receiver treats unknown codes as a generic failure, 5.16)."""
    entry = CODES.get(code)
    return entry[0] if entry else "E%d" % code


class TaskwheelError(Exception):
    """Base class of every taskwheel exception.

    ``code`` is the wire error code (0 when none applies) and ``name``
    its symbolic name.
    """

    code: int = 0

    def __init__(self, message: str = "", code: Optional[int] = None):
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def name(self) -> str:
        """The code's name, e.g. "EHANDLER"."""
        return code_name(self.code)


class EncodeError(TaskwheelError, TypeError):
    """Arguments (or a result, or a channel message) that msgpack cannot
    encode: nothing was sent. Also a TypeError, as ``json.dumps`` raises
    for the same mistake."""

    code = EINVAL


class Unreachable(TaskwheelError, TimeoutError):
    """No answer came from the broker in time (it is down, unreachable, or
    refused our CURVE key, which looks the same from here)."""

    code = EUNREACH


class BrokerError(TaskwheelError):
    """The broker answered a request with ERROR ``code``."""


class Refused(TaskwheelError):
    """The broker refused a submission (its ACK item had a code): unknown
    handler (EHANDLER), pool closed or locked, group limit (ELIMIT),
    arguments too big (E2BIG), queue full (EFULL). Nothing was queued."""


class TaskFailed(TaskwheelError):
    """A task ended in a state other than ``ok``.

    Attributes: ``task_id``, ``state`` ("error", "timeout", "cancelled",
    "lost"), ``error`` (the broker's error text for the task, which holds
    every attempt's error after retries), ``remote_type`` and
    ``remote_message`` (for a Python handler: the exception's class name
    and message), ``remote_traceback`` (the handler's traceback text, or
    "").
    """

    code = -4007

    def __init__(self, task_id: int, state: str, error: str):
        self.task_id = task_id
        self.state = state
        self.error = error or ""
        self.remote_type, self.remote_message, self.remote_traceback = \
            parse_remote_error(self.error)
        first = self.remote_message if self.remote_type else self.error
        summary = first.splitlines()[0] if first else state
        if self.remote_type:
            summary = "%s: %s" % (self.remote_type, summary)
        super().__init__("task %d ended %s: %s" % (task_id, state, summary))


class TaskTimeout(TaskFailed):
    """The task's timeout expired on its worker."""


class TaskCancelled(TaskFailed):
    """The task was cancelled."""


class TaskLost(TaskFailed):
    """The task was given up after its workers were lost, or the broker has
    no record of it after a reconnect (it may or may not have run)."""


class ChannelClosed(TaskwheelError):
    """A handler's channel request failed: the submitter asked to close the
    channel (CloseRequestError), or the task is ending."""

    code = ECLOSEREQ


_FAILED = {"error": TaskFailed, "timeout": TaskTimeout,
           "cancelled": TaskCancelled, "lost": TaskLost}


def task_failed(task_id: int, state: str, error: str) -> TaskFailed:
    """The exception for a task that ended in ``state``."""
    return _FAILED.get(state, TaskFailed)(task_id, state, error)


def parse_remote_error(text: str):
    """Split a Python handler's error text into (type, message, traceback).

    The handler runtime reports an exception as "Type: message" and the
    traceback (PROTOCOL.md 15.3: ``msg``, a newline, ``tb``). After retries
    the broker's text is the history "attempt 1: ...; attempt 2: ..." with
    each attempt cut short (12.7); the last attempt is parsed then. Texts in
    any other form give ("", text, "").
    """
    marker = "Traceback (most recent call last):"
    if not text:
        return "", "", ""
    last = text
    hist = re.search(r"(?:^|; )attempt \d+: (?!.*; attempt \d+: )", text,
                     re.S)
    if hist:
        last = text[hist.end():]
    first, _, rest = last.partition("\n")
    name, sep, msg = first.partition(": ")
    if not sep or not re.fullmatch(r"[A-Za-z_][\w.]*", name):
        return "", text, ""
    tb = rest[rest.index(marker):].rstrip("\n") if marker in rest else ""
    return name, msg, tb


class Cancelled(BaseException):
    """Raised inside a Python handler whose call the worker cancelled (the
    task was cancelled or timed out, its station cancelled, the worker is
    stopping). A BaseException, like KeyboardInterrupt, so that ``except
    Exception`` does not swallow it (taskwheel.handler)."""
