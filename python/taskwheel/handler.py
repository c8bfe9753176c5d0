"""The child process that runs Python handlers.

    taskwheel-worker --proc 'python3 -m taskwheel.handler myapp.tasks'

A worker started with ``--proc`` runs this program a number of times and
speaks the process handler protocol with each copy over its stdin and
stdout (proto/PROTOCOL.md 15). The program imports every MODULE named on
its command line, offers every function they registered with ``@task``
(:mod:`taskwheel.task`), and then runs the calls the worker sends, one at a
time, for as long as the worker keeps it.

How a call reaches a function:

- a task ``h(*args, **kwargs)``: the arguments come from the task's value
  (an array is positional, a map keyword, nil none; docs/PYTHON.md,
  "Arguments"), and the function's return value is the result;
- a station iteration: the function gets the iteration's input as its one
  positional argument, and its return value is interpreted by the station's
  next mode (PROTOCOL.md 11): with ``next="result"`` it is the next input,
  and a dict with a true ``"stop"`` ends the station;
- a function with a parameter named ``ctx`` also gets a :class:`Context`;
- ``async def`` functions are run to completion with ``asyncio.run``.

An exception is the call's error: its first line is "Type: message" and
the traceback follows, which is what the submitter's
:class:`taskwheel.TaskFailed` shows as ``remote_type``, ``remote_message``
and ``remote_traceback``. A result msgpack cannot encode is an error too.

Cancellation. When the worker cancels the running call (the task was
cancelled, its timeout expired, its station was cancelled, or the worker
is stopping) this program raises :class:`Cancelled` in the function
within about 10 ms. The main thread reads every frame itself; while a call
runs, an interval timer (SIGALRM, ITIMER_REAL) makes it look at its input
between bytecodes, and a cancel found there raises the exception. The
signal also interrupts a ``time.sleep``, a lock wait or a blocking socket
read, so those are cancelled too. ``Cancelled`` derives from
BaseException, like KeyboardInterrupt, so that ``except Exception`` does
not swallow it; ``finally`` blocks and context managers run. Handlers must
leave SIGALRM (``signal.alarm``, ``signal.setitimer(ITIMER_REAL)``) to the
runtime. A function that ignores the cancel is stopped by the worker with
SIGTERM, then SIGKILL, after its grace (``proc-grace``, 1 s by default),
and this process is replaced. A call that ends within 5 ms costs two
setitimer calls: no thread, no hand-over between threads.

Output: anything the functions print goes to the worker's log (fd 1 is
pointed at stderr at start-up; the frames use a private copy of the
original stdout).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import platform
import select
import signal
import sys
import threading
import time
import traceback
from collections import deque
from typing import Any, Deque, Dict, List, Optional

from . import __version__
from ._calls import decode_call
from ._frames import FrameError, FrameReader, encode
from .errors import Cancelled, ChannelClosed, TaskwheelError
from .task import Task, registry

PROTO_VERSION = 1
N2S_KEEP = 1000     # n2s messages kept per station between iterations
FIRST_LOOK = 0.005  # s into a call before its input is first looked at
LOOK_EVERY = 0.01   # s between looks while it runs
MAIN = threading.get_ident()
_NO_N2S: Deque[Any] = deque(maxlen=0)  # a task's: n2s is for stations


class Context:
    """What a handler that asks for ``ctx`` gets.

    Attributes: ``kind`` ("task" or "station"), ``handler``; for a task
    ``task_id`` and ``attempt`` (1 on the first run); for a station
    iteration ``station`` (its id) and ``iteration`` (1 for its first ever);
    ``timeout`` (seconds, or None) and ``deadline`` (Unix time at which the
    worker cancels the call, or None); ``cancelled`` (True once the worker
    asked to cancel it).
    """

    def __init__(self, rt: "_Runtime", frame: Dict[str, Any]):
        self._rt = rt
        self.kind: str = frame.get("kind", "task")
        self.handler: str = frame.get("h", "")
        self.task_id: Optional[int] = frame.get("task")
        self.attempt: Optional[int] = frame.get("at")
        self.station: Optional[str] = frame.get("sid")
        self.iteration: Optional[int] = frame.get("it")
        to, dl = frame.get("to"), frame.get("dl")
        self.timeout: Optional[float] = to / 1000.0 if to else None
        self.deadline: Optional[float] = dl / 1000.0 if dl else None
        self.cancelled = False
        self._args: Any = frame.get("a")
        self._opened = False
        self._closed_by: Optional[str] = None
        self._n2s: Deque[Any] = rt.inbox(self.station) \
            if self.kind == "station" else _NO_N2S

    def __repr__(self) -> str:
        what = ("task %s attempt %s" % (self.task_id, self.attempt)
                if self.kind == "task" else
                "station %s iteration %s" % (self.station, self.iteration))
        return "<taskwheel.Context %s %s>" % (self.handler, what)

    # ---- the task's channel (PROTOCOL.md 14, S90-S93)
    def open(self, message: Any = None) -> None:
        """Open the channel to the submitter, with an optional first
        message. :meth:`send` and :meth:`request` open it when needed."""
        self._check_channel()
        frame: Dict[str, Any] = {"ev": "open"}
        if message is not None:
            frame["d"] = message
        self._rt.write(frame)
        self._opened = True

    def send(self, message: Any) -> None:
        """Send one message to the submitter's ``on_channel``."""
        if not self._opened:
            self.open()
        self._rt.write({"ev": "msg", "d": message})

    def request(self, message: Any, timeout: float = 30.0) -> Any:
        """Ask the submitter and wait for its answer (the return value of
        its ``on_channel``). Raises ChannelClosed when the submitter asked
        to close the channel (or is gone), TimeoutError when no answer came
        in ``timeout`` seconds (the worker enforces it)."""
        if not self._opened:
            self.open()
        return self._rt.request(message, timeout)

    def close(self) -> None:
        """Close the channel (it closes by itself when the call ends)."""
        if self._opened:
            self._rt.write({"ev": "close"})
            self._opened = False

    def _check_channel(self) -> None:
        if self.kind != "task":
            raise TaskwheelError("a station iteration has no task channel")
        if self._closed_by:
            raise ChannelClosed("the channel was closed: %s"
                                % self._closed_by)

    # ---- stations (PROTOCOL.md 11)
    def set_next(self, value: Any) -> None:
        """The next iteration's input, for a station whose next mode is
        "handler"."""
        self._station_only("set_next")
        self._rt.write({"ev": "next", "d": value})

    def stop(self) -> None:
        """End the station cleanly after this iteration."""
        self._station_only("stop")
        self._rt.write({"ev": "stop"})

    def emit(self, message: Any) -> None:
        """Publish an s2n message (``station tail`` shows it)."""
        self._station_only("emit")
        self._rt.write({"ev": "emit", "d": message})

    def receive(self, timeout: Optional[float] = None) -> Any:
        """The next n2s message sent to this station (``Station.send``),
        waiting up to ``timeout`` seconds (None: until one comes);
        TimeoutError if none came. The handler must be registered with
        ``n2s=True``. Messages not taken in an iteration wait for the
        station's next iteration in this process (at most 1000; the
        worker may send one just as an iteration ends)."""
        box = self._n2s
        deadline = None if timeout is None else time.monotonic() + timeout
        while not box:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("no n2s message within %s s" % timeout)
            self._rt.pump(left)
        return box.popleft()

    def messages(self) -> List[Any]:
        """The n2s messages that have come, without waiting."""
        self._rt.pump(0)
        out = list(self._n2s)
        self._n2s.clear()
        return out

    def _station_only(self, what: str) -> None:
        if self.kind != "station":
            raise TaskwheelError("ctx.%s is for station iterations" % what)


class _Request:
    __slots__ = ("done", "value", "error")

    def __init__(self) -> None:
        self.done = False
        self.value: Any = None
        self.error: Optional[str] = None


class _Runtime:
    """One child: the frames and the calls, all on the main thread.

    The main thread reads every frame. While it is idle it waits for the
    next one; while a call runs, an interval timer (SIGALRM, first after
    5 ms, then every 10 ms) lets it look at its input between bytecodes:
    a cancel there raises Cancelled in the function. A call that ends
    within the first 5 ms costs two setitimer calls and nothing else: no
    thread, no hand-over between threads. ctx.request and ctx.receive read
    the input themselves while they wait."""

    def __init__(self, rfd: int, wfd: int, tasks: Dict[str, Task]):
        self.tasks = tasks
        self.rfd = rfd
        self.reader = FrameReader(rfd)
        self.wfd = wfd
        self.wlock = threading.Lock()
        self.current: Optional[Context] = None   # the call last read
        self.running: Optional[Context] = None   # the call being run
        self.reading = False                     # inside a frame read
        self.eof = False
        self.shutdown = False
        self.requests: Dict[int, _Request] = {}
        self.next_req = 1
        self.inboxes: Dict[Optional[str], Deque[Any]] = {}

    def inbox(self, sid: Optional[str]) -> Deque[Any]:
        """The n2s messages of station ``sid`` not taken yet."""
        box = self.inboxes.get(sid)
        if box is None:
            box = self.inboxes[sid] = deque(maxlen=N2S_KEEP)
        return box

    # ---- writing (any thread of the handler may send channel frames)
    def write(self, frame: Dict[str, Any]) -> None:
        self.write_bytes(encode(frame))

    def write_bytes(self, data: bytes) -> None:
        with self.wlock:
            view = memoryview(data)
            while view:
                n = os.write(self.wfd, view)
                view = view[n:]

    def hello(self) -> None:
        names = sorted(self.tasks)
        flags = {n: ["n2s"] for n in names if self.tasks[n].n2s}
        frame: Dict[str, Any] = {
            "ev": "hello", "v": PROTO_VERSION, "handlers": names,
            "rt": "python %s, taskwheel %s" % (platform.python_version(),
                                               __version__)}
        if flags:
            frame["flags"] = flags
        self.write(frame)

    # ---- reading (the main thread only)
    def pump(self, timeout: Optional[float]) -> bool:
        """Read and handle the frames that come within ``timeout`` seconds
        (None: wait for one; 0: only what is there). False at the end of
        the input."""
        if threading.get_ident() != MAIN:
            raise RuntimeError("ctx.request and ctx.receive must be called "
                               "from the handler's own thread")
        first = True
        while not self.eof:
            if not self.reader.buf and not (first and timeout is None):
                wait = timeout if first else 0
                try:
                    ready, _, _ = select.select([self.rfd], [], [], wait)
                except InterruptedError:
                    ready = []
                if not ready:
                    return True
            first = False
            self.reading = True
            try:
                frame = self.reader.read()
            except (FrameError, OSError) as exc:
                sys.stderr.write("taskwheel.handler: %s\n" % exc)
                frame = None
            finally:
                self.reading = False
            if frame is None:
                self.eof = True
                self.cancel_running()
                return False
            self.on_frame(frame)
            if frame["ev"] == "call":
                return True
        return False

    def on_frame(self, frame: Dict[str, Any]) -> None:
        ev = frame["ev"]
        if ev == "call":
            self.current = Context(self, frame)
        elif ev == "cancel":
            self.cancel_running()
        elif ev in ("resp", "error"):
            self.on_answer(frame)
        elif ev == "n2s":
            # Also when the function has just returned: the worker sends
            # it while it has not read the outcome (the next iteration of
            # the station in this process takes it).
            ctx = self.current
            if ctx is not None and ctx.kind == "station":
                self.inbox(ctx.station).append(frame.get("d"))
        elif ev == "shutdown":
            self.shutdown = True

    def cancel_running(self) -> None:
        ctx = self.current
        if ctx is not None and self.running is ctx:
            ctx.cancelled = True

    def on_answer(self, frame: Dict[str, Any]) -> None:
        rid = frame.get("id")
        req = self.requests.pop(rid, None) if rid is not None else None
        if req is None:
            # An error about open, msg, close, next or emit.
            ctx = self.current
            if frame["ev"] == "error" and ctx is not None and \
                    frame.get("err") == "ECLOSEREQ":
                ctx._closed_by = "the submitter asked to close it"
            return
        req.done = True
        if frame["ev"] == "resp":
            req.value = frame.get("d")
        else:
            req.error = str(frame.get("err") or "EIO")

    def request(self, message: Any, timeout: float) -> Any:
        req = _Request()
        rid = self.next_req
        self.next_req += 1
        self.requests[rid] = req
        self.write({"ev": "req", "d": message, "id": rid,
                    "timeout": max(1, int(timeout * 1000))})
        # The worker answers ETIMEDOUT at the timeout; wait a little
        # longer for that answer before giving up here.
        deadline = time.monotonic() + timeout + 5.0
        while not req.done:
            left = deadline - time.monotonic()
            ctx = self.running
            if ctx is not None and ctx.cancelled:
                raise Cancelled("the call was cancelled")
            if left <= 0 or not self.pump(left):
                self.requests.pop(rid, None)
                if self.eof:
                    raise ChannelClosed("the worker went away")
                raise TimeoutError("no answer within %s s" % timeout)
        if req.error is None:
            return req.value
        if req.error == "ECLOSEREQ":
            ctx = self.current
            if ctx is not None:
                ctx._closed_by = "the submitter asked to close it"
            raise ChannelClosed("the submitter asked to close the channel")
        if req.error == "ETIMEDOUT":
            raise TimeoutError("no answer within %s s" % timeout)
        raise TaskwheelError("channel request failed: %s" % req.error)

    # ---- calls
    def _on_alarm(self, signum: int, frame: Any) -> None:
        ctx = self.running
        if ctx is None:
            return
        if not self.reading:
            self.pump(0)
        if ctx.cancelled and self.running is ctx:
            raise Cancelled("the call was cancelled")

    def invoke(self, ctx: Context) -> Any:
        t = self.tasks.get(ctx.handler)
        if t is None:
            raise TaskwheelError("no handler %r in this process"
                                 % ctx.handler)
        a = ctx._args
        if ctx.kind == "station":
            args: List[Any] = [a]
            kwargs: Dict[str, Any] = {}
        else:
            args, kwargs = decode_call(a)
        if t.wants_ctx:
            if t.ctx_index is not None and t.ctx_index <= len(args):
                args = list(args)
                args.insert(t.ctx_index, ctx)
            else:
                kwargs["ctx"] = ctx
        value = t.fn(*args, **kwargs)
        if inspect.iscoroutine(value):
            value = asyncio.run(value)
        return value

    def run_call(self, ctx: Context) -> None:
        try:
            try:
                self.running = ctx
                signal.setitimer(signal.ITIMER_REAL, FIRST_LOOK, LOOK_EVERY)
                value = self.invoke(ctx)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                self.running = None
            if ctx._opened:
                ctx.close()
            try:
                frame = encode({"ev": "result", "r": value})
            except (TypeError, ValueError, OverflowError, FrameError) as exc:
                raise TaskwheelError(
                    "the result (%s) cannot be sent: %s"
                    % (type(value).__name__, exc)) from None
        except Cancelled:
            frame = encode({"ev": "error", "msg": "cancelled"})
        except BaseException as exc:  # noqa: BLE001 - the call's error
            frame = encode(error_frame(exc))
        self.write_bytes(frame)

    def serve(self) -> None:
        signal.signal(signal.SIGALRM, self._on_alarm)
        self.hello()
        last = None
        while not self.shutdown:
            # The last call stays current while idle: an n2s frame the
            # worker sent before it read that call's outcome goes to its
            # station's inbox.
            if not self.pump(None):
                return
            ctx = self.current
            if ctx is not None and ctx is not last and not self.shutdown:
                last = ctx
                self.run_call(ctx)


def error_frame(exc: BaseException) -> Dict[str, Any]:
    """The ``error`` frame of an exception: "Type: message" and the
    traceback (without this module's own frames)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals.get("__name__") == \
            __name__:
        tb = tb.tb_next
    msg = traceback.format_exception_only(type(exc), exc)[-1].strip()
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return {"ev": "error", "msg": msg.splitlines()[0] if msg else
            type(exc).__name__, "tb": text[-60000:]}


def load(modules: List[str]) -> Dict[str, Task]:
    """Import the modules; returns the handlers they registered."""
    for name in modules:
        importlib.import_module(name)
    return registry()


USAGE = """usage: python3 -m taskwheel.handler [--list] MODULE...

Runs the @task functions of the MODULEs as a proc child of a taskwheel
worker (proto/PROTOCOL.md 15):

    taskwheel-worker --proc 'python3 -m taskwheel.handler myapp.tasks'

--list prints the handlers the modules register and exits.
"""


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stderr.write(USAGE)
        return 0 if args else 2
    listing = args[0] == "--list"
    if listing:
        args = args[1:]
    version = os.environ.get("TASKWHEEL_PROC", str(PROTO_VERSION))
    if not version.isdigit() or int(version) < PROTO_VERSION:
        sys.stderr.write("taskwheel.handler: the worker speaks process "
                         "protocol %s; this child speaks %d\n"
                         % (version, PROTO_VERSION))
        return 2
    # Frames go to a private copy of stdout; fd 1 becomes stderr so that
    # print() in a handler lands in the worker's log.
    out = os.dup(1)
    if not listing:
        os.dup2(2, 1)
    try:
        sys.stdout.reconfigure(  # type: ignore[attr-defined]
            line_buffering=True)
    except (AttributeError, ValueError):
        pass
    try:
        tasks = load(args)
    except Exception:  # noqa: BLE001 - report any import failure
        traceback.print_exc()
        sys.stderr.write("taskwheel.handler: cannot load %s\n"
                         % " ".join(args))
        return 2
    if listing:
        for name, t in sorted(tasks.items()):
            print("%s\t%s.%s%s" % (name, t.fn.__module__, t.fn.__qualname__,
                                   "\tn2s" if t.n2s else ""))
        return 0
    if not tasks:
        sys.stderr.write("taskwheel.handler: %s register no handler (use "
                         "@taskwheel.task)\n" % " ".join(args))
        return 2
    if len(tasks) > 1024:
        sys.stderr.write("taskwheel.handler: %d handlers; a child offers at "
                         "most 1024\n" % len(tasks))
        return 2
    try:
        _Runtime(0, out, tasks).serve()
    except BrokenPipeError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
