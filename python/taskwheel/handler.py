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
and this process is replaced. The timer runs only while calls do: it is
armed when a busy spell starts and disarmed by its first tick that finds
no call running, so back-to-back calls, and spells a moment apart, cost no
setitimer at all; no thread, no hand-over
between threads. A call cancelled before it started is answered
"cancelled" without running.

Pipelining. With ``--pipeline N`` (default 4) the hello allows the worker
to send up to N calls ahead (PROTOCOL.md 15.9): when more calls wait than
the worker has idle children, a busy child gets the next call in its pipe,
so it starts it the moment it finishes the last one, and many calls cost
one read. Calls still run one at a time, in order. A call waiting behind a
long one waits for it, so a pool that mixes long and short tasks may
prefer ``--pipeline 1``.

n2s messages (stations whose handler is registered with ``n2s=True``):
what ``ctx.receive`` and ``ctx.messages`` hand out is acknowledged in the
iteration's outcome, and the worker gives the rest to the station's next
iteration, in order, in whichever child runs it (PROTOCOL.md 15.10).

Output: anything the functions print goes to the worker's log (fd 1 is
pointed at stderr at start-up; the frames use a private copy of the
original stdout).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import platform
import select
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Coroutine
from typing import Any, Deque, Dict, List, Optional

from . import __version__
from ._calls import decode_call
from ._frames import FrameError, FrameReader, encode, frame_of, packer
from .errors import Cancelled, ChannelClosed, TaskwheelError
from .task import Task, registry

PROTO_VERSION = 1
N2S_KEEP = 1000     # n2s messages kept per station (older workers only)
LOOK_EVERY = 0.01   # s between looks at the input while calls run
PIPELINE = 4        # calls the worker may send ahead (PROTOCOL.md 15.9)
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
        self._f = frame
        self.cancelled = False
        self._opened = False
        self._closed_by: Optional[str] = None
        self._done = False  # its outcome is written
        # n2s (PROTOCOL.md 15.10): with "n2s" in the call the worker takes
        # back what the outcome does not acknowledge, so the messages are
        # this call's own; from an older worker they are the station's and
        # wait here for its next iteration.
        self._acks = frame.get("n2s") is True
        self._taken = 0  # the seq of the last n2s message handed out
        self._n2s: Deque[Any] = _NO_N2S
        if frame.get("kind") == "station":
            self._n2s = deque() if self._acks else rt.inbox(self.station)

    kind = property(lambda self: self._f.get("kind", "task"))
    handler = property(lambda self: self._f.get("h", ""))
    task_id = property(lambda self: self._f.get("task"))
    attempt = property(lambda self: self._f.get("at"))
    station = property(lambda self: self._f.get("sid"))
    iteration = property(lambda self: self._f.get("it"))

    @property
    def timeout(self) -> Optional[float]:
        to = self._f.get("to")
        return to / 1000.0 if to else None

    @property
    def deadline(self) -> Optional[float]:
        dl = self._f.get("dl")
        return dl / 1000.0 if dl else None

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
        ``n2s=True``. Messages not taken in an iteration are given to the
        station's next iteration, in order, in whichever process of the
        worker runs it."""
        box = self._n2s
        deadline = None if timeout is None else time.monotonic() + timeout
        while not box:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("no n2s message within %s s" % timeout)
            if not self._rt.pump(left):
                raise TimeoutError("no n2s message: the worker went away")
        self._taken, value = box.popleft()
        return value

    def messages(self) -> List[Any]:
        """The n2s messages that have come, without waiting."""
        self._rt.pump(0)
        box = self._n2s
        if not box:
            return []
        self._taken = box[-1][0]
        out = [d for _, d in box]
        box.clear()
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


# The fixed parts of outcome frames (PROTOCOL.md 15.3).
_RESULT = b"\x82\xa2ev\xa6result\xa1r"        # {"ev": "result", "r": ...
_RESULT_ACK = b"\x83\xa2ev\xa6result\xa1r"    # ... and "n2s" after "r"
_N2S_KEY = b"\xa3n2s"
_CANCELLED = {"ev": "error", "msg": "cancelled"}


class _Runtime:
    """One child: the frames and the calls, all on the main thread.

    The main thread reads every frame. While it is idle it waits for the
    next one; while calls run, an interval timer (SIGALRM, every 10 ms)
    lets it look at its input between bytecodes: a cancel there raises
    Cancelled in the function, and calls the worker sends ahead
    (``pipeline``, PROTOCOL.md 15.9) are queued. The timer is armed when
    the first call of a busy spell starts and disarmed by its first tick
    that finds no call running: a child that waits a moment between calls
    keeps it, and calls that follow each other cost no system call of
    their own but the read that brought them and the write of their
    outcome; an idle child is woken once more, then not at all. No
    thread, no hand-over between threads. ctx.request and
    ctx.receive read the input themselves while they wait."""

    def __init__(self, rfd: int, wfd: int, tasks: Dict[str, Task],
                 pipeline: int = 1):
        self.tasks = tasks
        self.rfd = rfd
        self.reader = FrameReader(rfd)
        self.wfd = wfd
        self.wlock = threading.Lock()
        self.pipeline = pipeline
        self.calls: Deque[Context] = deque()     # read, not started yet
        self.current: Optional[Context] = None   # the call last read
        self.running: Optional[Context] = None   # the call being run
        self.pumping = False                     # inside pump()
        self.reading = False                     # waiting in it for input
        self.timer = False                       # the look timer is armed
        self.eof = False
        self.shutdown = False
        self.requests: Dict[int, _Request] = {}
        self.next_req = 1
        self.inboxes: Dict[Optional[str], Deque[Any]] = {}

    def inbox(self, sid: Optional[str]) -> Deque[Any]:
        """The n2s messages of station ``sid`` not taken yet, kept across
        its iterations for a worker older than PROTOCOL.md 15.10."""
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
        if self.pipeline > 1:
            frame["pipeline"] = self.pipeline
        self.write(frame)

    # ---- reading (the main thread only)
    def pump(self, timeout: Optional[float]) -> bool:
        """Handle the frames read and not handled yet; if there were none,
        wait up to ``timeout`` seconds (None: as long as it takes; 0: not
        at all) for more and handle those. False at the end of the
        input."""
        if threading.get_ident() != MAIN:
            raise RuntimeError("ctx.request and ctx.receive must be called "
                               "from the handler's own thread")
        # Not re-entered from the look timer: frames are handled in order.
        self.pumping = True
        try:
            return self._pump(timeout)
        finally:
            self.pumping = False

    def _pump(self, timeout: Optional[float]) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.eof:
            if self._drain():
                return not self.eof
            # Only while waiting here may the look timer raise Cancelled:
            # no frame is half handled then.
            self.reading = True
            try:
                if deadline is not None:
                    left = max(0.0, deadline - time.monotonic())
                    if not select.select([self.rfd], [], [], left)[0]:
                        return True
                more = self.reader.fill()
            except OSError as exc:
                sys.stderr.write("taskwheel.handler: %s\n" % exc)
                more = False
            finally:
                self.reading = False
            if not more:
                if self.reader.pending():
                    sys.stderr.write("taskwheel.handler: the input ended "
                                     "inside a frame\n")
                self._ended()
        return False

    def _drain(self) -> bool:
        """Handle every complete frame read so far; True if any."""
        n = 0
        while True:
            try:
                frame = self.reader.next()
            except FrameError as exc:
                sys.stderr.write("taskwheel.handler: %s\n" % exc)
                self._ended()
                return True
            if frame is None:
                return n > 0
            n += 1
            self.on_frame(frame)

    def _ended(self) -> None:
        """The input is over: the worker is gone."""
        self.eof = True
        if self.running is not None:
            self.running.cancelled = True
        self.calls.clear()

    def on_frame(self, frame: Dict[str, Any]) -> None:
        ev = frame["ev"]
        if ev == "call":
            ctx = Context(self, frame)
            self.current = ctx
            self.calls.append(ctx)
        elif ev == "cancel":
            self.on_cancel(frame.get("task"))
        elif ev in ("resp", "error"):
            self.on_answer(frame)
        elif ev == "n2s":
            self.on_n2s(frame)
        elif ev == "shutdown":
            self.shutdown = True

    def on_cancel(self, task: Any) -> None:
        """A cancel: of the call of task ``task``, running or queued, or
        without a task of the oldest call here. One for a call that has
        ended crossed its outcome: ignored."""
        run = self.running
        for ctx in ([run] if run is not None else []) + list(self.calls):
            if task is None or (ctx.task_id == task and
                                ctx.kind == "task"):
                ctx.cancelled = True
                return

    def on_n2s(self, frame: Dict[str, Any]) -> None:
        # n2s frames are about the station call last read: a station call
        # is alone in this child (15.9).
        ctx = self.current
        if ctx is None or ctx.kind != "station":
            return
        item = (frame.get("seq", 0), frame.get("d"))
        if not ctx._done:
            ctx._n2s.append(item)
        elif not ctx._acks:
            # An older worker sent it before it read the outcome: the
            # station's next iteration in this process takes it.
            self.inbox(ctx.station).append(item)
        # Otherwise the worker gives it again with the next iteration.

    def on_answer(self, frame: Dict[str, Any]) -> None:
        rid = frame.get("id")
        req = self.requests.pop(rid, None) if rid is not None else None
        if req is None:
            # An error about open, msg, close, next or emit, or an answer
            # to a request given up (request ids are never reused).
            ctx = self.running
            if frame["ev"] == "error" and ctx is not None and \
                    rid is None and frame.get("err") == "ECLOSEREQ":
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
            ctx = self.running
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
            self._look(False)  # between calls, or idle: nothing to look at
            return
        if not self.pumping:
            self.pump(0)
        if ctx.cancelled and self.running is ctx and \
                (self.reading or not self.pumping):
            raise Cancelled("the call was cancelled")

    def _look(self, on: bool) -> None:
        """Arm (or disarm) the timer that looks at the input while calls
        run."""
        if on != self.timer:
            signal.setitimer(signal.ITIMER_REAL, LOOK_EVERY if on else 0,
                             LOOK_EVERY)
            self.timer = on

    def invoke(self, ctx: Context) -> Any:
        f = ctx._f
        t = self.tasks.get(f.get("h"))
        if t is None:
            raise TaskwheelError("no handler %r in this process"
                                 % ctx.handler)
        a = f.get("a")
        if f.get("kind") == "station":
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
        if isinstance(value, Coroutine):
            value = asyncio.run(value)
        return value

    def run_call(self, ctx: Context) -> None:
        try:
            if ctx.cancelled:
                raise Cancelled("cancelled before it started")
            try:
                # Running first: a tick that finds no call running stops
                # the timer, and this call needs it.
                self.running = ctx
                self._look(True)
                value = self.invoke(ctx)
            finally:
                self.running = None
            if ctx._opened:
                ctx.close()
            try:
                r = packer().pack(value)
            except (TypeError, ValueError, OverflowError) as exc:
                raise TaskwheelError(
                    "the result (%s) cannot be sent: %s"
                    % (type(value).__name__, exc)) from None
            if ctx._acks:
                data = frame_of(_RESULT_ACK + r + _N2S_KEY +
                                packer().pack(ctx._taken))
            else:
                data = frame_of(_RESULT + r)
        except Cancelled:
            data = self._error(ctx, _CANCELLED)
        except BaseException as exc:  # noqa: BLE001 - the call's error
            data = self._error(ctx, error_frame(exc))
        ctx._done = True
        self.write_bytes(data)

    @staticmethod
    def _error(ctx: Context, frame: Dict[str, Any]) -> bytes:
        if ctx._acks:
            frame = dict(frame, n2s=ctx._taken)
        return encode(frame)

    def serve(self) -> None:
        signal.signal(signal.SIGALRM, self._on_alarm)
        self.hello()
        try:
            while True:
                if self.calls:
                    self.run_call(self.calls.popleft())
                    continue
                # Nothing to run: wait for the next frame (the timer
                # stops itself at its next tick if none comes).
                if self.shutdown or self.eof:
                    return
                self.pump(None)
        finally:
            self._look(False)


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


USAGE = """usage: python3 -m taskwheel.handler [--list] [--pipeline N] MODULE...

Runs the @task functions of the MODULEs as a proc child of a taskwheel
worker (proto/PROTOCOL.md 15):

    taskwheel-worker --proc 'python3 -m taskwheel.handler myapp.tasks'

--list prints the handlers the modules register and exits.
--pipeline N lets the worker send up to N calls ahead when more calls wait
than it has idle children (default %d; 1: one call at a time).
""" % PIPELINE


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stderr.write(USAGE)
        return 0 if args else 2
    listing = args[0] == "--list"
    if listing:
        args = args[1:]
    pipeline = PIPELINE
    if args and args[0].startswith("--pipeline"):
        opt = args.pop(0)
        value = opt.partition("=")[2] if "=" in opt else \
            (args.pop(0) if args else "")
        if not value.isdigit() or not 1 <= int(value) <= 16:
            sys.stderr.write("taskwheel.handler: --pipeline takes a number "
                             "from 1 to 16\n")
            return 2
        pipeline = int(value)
    if not args:
        sys.stderr.write(USAGE)
        return 2
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
        _Runtime(0, out, tasks, pipeline).serve()
    except BrokenPipeError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
