"""Checking task options and encoding calls.

What a submission becomes on the wire (PROTOCOL.md 5.11, 12.2), checked
before anything is queued so that bad input raises and sends nothing:
names of 1 to 128 bytes, numbers in range, seconds as milliseconds, and
the task's value ``a``, one msgpack value.

How Python calls travel (docs/PYTHON.md, "Arguments"): ``submit(h, x,
y)`` sends the array ``[x, y]``, ``submit(h, k=v)`` the map ``{"k": v}``,
``submit(h)`` nothing (nil), and ``submit(h, x, k=v)`` the msgpack
extension type 1 holding ``[[x], {"k": v}]``. The handler runtime reverses
this with :func:`decode_call`.
"""

from __future__ import annotations

import datetime
from typing import (Any, Callable, Dict, List, Optional, Sequence, Tuple,
                    Union)

import msgpack

from . import _wire as w
from .errors import EINVAL, EncodeError, TaskwheelError

CALL_EXT = 1  # msgpack ext type of a call with positional and keyword args


class InvalidArgument(TaskwheelError, ValueError):
    """A bad name, option or number given to the client: nothing was
    sent."""

    code = EINVAL


# ------------------------------------------------------------------ checks
def check_name(what: str, name: Any, limit: int = w.MAX_NAME,
               empty: bool = False) -> str:
    """``name`` if it is a str of 1 (0 with ``empty``) to ``limit`` UTF-8
    bytes, else InvalidArgument."""
    if not isinstance(name, str):
        raise InvalidArgument("%s must be a str, not %s"
                              % (what, type(name).__name__))
    n = len(name.encode("utf-8", "surrogatepass"))
    if n > limit or (n == 0 and not empty):
        raise InvalidArgument("%s must be %d to %d bytes, not %d"
                              % (what, 0 if empty else 1, limit, n))
    return name


def to_ms(what: str, seconds: Optional[float]) -> int:
    """Seconds (int or float, None or 0 for none) as whole milliseconds."""
    if seconds is None:
        return 0
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise InvalidArgument("%s must be a number of seconds" % what)
    if seconds < 0 or seconds != seconds:
        raise InvalidArgument("%s must be >= 0 seconds" % what)
    ms = int(round(seconds * 1000))
    return min(ms, 2**64 - 1) if ms or not seconds else 1


def check_int(what: str, value: Any, lo: int, hi: int) -> int:
    """``value`` if it is an int in lo..hi, else InvalidArgument."""
    if isinstance(value, bool) or not isinstance(value, int) or \
            not lo <= value <= hi:
        raise InvalidArgument("%s must be an integer in %d..%d"
                              % (what, lo, hi))
    return value


def groups_list(group: Union[None, str, Sequence[str]]) -> List[str]:
    """The ``group=`` option as a list of checked names."""
    if group is None:
        return []
    names = [group] if isinstance(group, str) else list(group)
    if len(names) > 64:
        raise InvalidArgument("a task joins at most 64 groups")
    return [check_name("group", g) for g in names]


def _at_ms(at: Any) -> int:
    """``at``: an aware datetime, or seconds since the epoch; as ms."""
    if isinstance(at, datetime.datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise InvalidArgument("at needs a datetime with a time zone")
        return max(1, int(round(at.timestamp() * 1000)))
    if isinstance(at, bool) or not isinstance(at, (int, float)) or \
            at != at:
        raise InvalidArgument("at must be a datetime with a time zone or "
                              "seconds since the epoch")
    return max(1, int(round(at * 1000)))


def _after_ids(after: Any) -> List[int]:
    """``after``: task ids, or handles the broker has acknowledged."""
    if isinstance(after, (int, str, bytes)) or hasattr(after, "id"):
        after = [after]
    ids = []
    for p in after:
        tid = getattr(p, "id", p)
        if tid is None:
            raise InvalidArgument("after: a handle with no id yet (call "
                                  "its wait_id() first)")
        ids.append(check_int("after", tid, 1, 2**64 - 1))
    if len(ids) > 65536:
        raise InvalidArgument("after names at most 65536 tasks")
    return ids


def task_fields(timeout: Optional[float] = None, retries: int = 0,
                priority: int = 0, pool: Optional[str] = None,
                group: Union[None, str, Sequence[str]] = None,
                delay: Optional[float] = None,
                key: Optional[str] = None, at: Any = None,
                after: Any = None, after_any_end: bool = False,
                with_results: bool = False) -> Dict[str, Any]:
    """The SUBMIT item fields of the task options (PROTOCOL.md 5.11,
    12.2, 18.2), checked; options left at their defaults are left out."""
    f: Dict[str, Any] = {}
    to = to_ms("timeout", timeout)
    if to:
        f["to"] = min(to, 2**32 - 1)
    if retries:
        f["re"] = check_int("retries", retries, 0, 1000)
    if priority:
        f["pri"] = check_int("priority", priority, -2**31, 2**31 - 1)
    if pool is not None:
        f["pl"] = check_name("pool", pool)
    g = groups_list(group)
    if g:
        f["g"] = g
    dl = to_ms("delay", delay)
    if dl:
        f["dl"] = dl
    if key is not None:
        f["k"] = check_name("key", key)
    if at is not None:
        f["eta"] = _at_ms(at)
    if after is not None:
        ids = _after_ids(after)
        if ids:
            f["af"] = ids
    if after_any_end:
        f["am"] = 1
    if with_results:
        f["wr"] = 1
    return f


def _encode_error(what: str, exc: Exception) -> EncodeError:
    return EncodeError("%s cannot be encoded as msgpack (%s: %s); nothing "
                       "was sent" % (what, type(exc).__name__, exc))


def encode_value(what: str, value: Any) -> bytes:
    """One value as msgpack bytes, or EncodeError (E2BIG when too big)."""
    try:
        data = w.pack(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _encode_error(what, exc) from None
    if len(data) > w.MAX_ARGS:
        raise EncodeError("%s are %d bytes encoded; the limit is %d"
                          % (what, len(data), w.MAX_ARGS), -7)
    return data


def encode_call(args: Sequence[Any], kwargs: Optional[Dict[str, Any]]
                ) -> Optional[bytes]:
    """The ``a`` bytes of a call ``h(*args, **kwargs)`` (module doc), or
    None for no arguments at all."""
    if kwargs:
        for k in kwargs:
            if not isinstance(k, str):
                raise EncodeError("keyword argument names must be str")
    if not args and not kwargs:
        return None
    if not kwargs:
        return encode_value("arguments", list(args))
    if not args:
        return encode_value("arguments", kwargs)
    try:
        inner = w.pack([list(args), kwargs])
    except (TypeError, ValueError, OverflowError) as exc:
        raise _encode_error("arguments", exc) from None
    return encode_value("arguments", msgpack.ExtType(CALL_EXT, inner))


def decode_call(payload: Any) -> Tuple[list, Dict[str, Any]]:
    """The positional and keyword arguments of a decoded ``a`` value: an
    array is positional, a map with str keys is keyword, nil is none, the
    call extension is both, and any other value is one positional
    argument."""
    if payload is None:
        return [], {}
    if isinstance(payload, list):
        return payload, {}
    if isinstance(payload, dict) and all(isinstance(k, str)
                                         for k in payload):
        return [], payload
    if isinstance(payload, msgpack.ExtType) and payload.code == CALL_EXT:
        args, kwargs = w.unpack(payload.data)
        return list(args), dict(kwargs)
    return [payload], {}


ItemEncoder = Callable[[int, Optional[bytes]], bytes]


def item_encoder(handler: str, fields: Dict[str, Any]) -> ItemEncoder:
    """``encode(seq, a)``, the SUBMIT items {seq, h, fields..., a?} of
    tasks of ``handler`` with the option ``fields``: what they share is
    encoded once, so that a batch costs little more per task than its seq
    and arguments."""
    common = w.pack("h") + w.pack(handler) + b"".join(
        w.pack(k) + w.pack(v) for k, v in fields.items())
    count = 2 + len(fields)  # < 16: one fixmap byte
    head = bytes((0x80 | count,)) + b"\xa3seq"
    head_a = bytes((0x80 | (count + 1),)) + b"\xa3seq"
    tail = common + b"\xa1a"

    def encode(seq: int, a: Optional[bytes]) -> bytes:
        pk = w.packer()
        if a is None:
            return head + pk.pack(seq) + common
        return head_a + pk.pack(seq) + tail + pk.pack(a)
    return encode



def decode_payload(data: Optional[bytes]) -> Any:
    """A result, or channel data: None when absent or empty."""
    if not data:
        return None
    return w.unpack(data)
