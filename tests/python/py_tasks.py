"""tests/python/py_tasks.py - Python handlers the tests run.

Imported by ``python3 -m taskwheel.handler py_tasks`` inside workers
(test_proc.py) and inside the stand-in worker of test_handler.py. Handlers
that must leave a trace outside the process write files under the
directory named by $TW_PY_TRACE.
"""

import asyncio
import os
import time

from taskwheel import Cancelled, ChannelClosed, task


def _trace(name: str, text: str) -> None:
    d = os.environ.get("TW_PY_TRACE")
    if d:
        with open(os.path.join(d, name), "a") as f:
            f.write(text + "\n")


@task
def add(x, y):
    return x + y


@task("py.echo")
def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


@task("py.noop")
def noop(*args, **kwargs):
    return None


@task("py.fail")
def fail(message="bad size"):
    raise ValueError(message)


@task("py.unencodable")
def unencodable():
    return object()


@task("py.info")
def info(ctx, *args):
    return {"kind": ctx.kind, "task": ctx.task_id, "attempt": ctx.attempt,
            "timeout": ctx.timeout, "deadline": ctx.deadline,
            "args": list(args)}


@task("py.kwctx")
def kwctx(x, *, ctx):
    return [x, ctx.task_id]


@task("py.print")
def printer(text):
    print(text)
    return len(text)


@task("py.sleep")
def sleep(seconds, tag=""):
    _trace("started", "%s %s" % (tag, os.getpid()))
    try:
        time.sleep(seconds)
    except Cancelled:
        _trace("cancelled", "%s %s" % (tag, os.getpid()))
        raise
    finally:
        _trace("finally", "%s %s" % (tag, os.getpid()))
    return "slept"


@task("py.hang")
def hang(tag=""):
    """Ignores the cancel: only SIGTERM or SIGKILL ends it."""
    _trace("hang", "%s %s" % (tag, os.getpid()))
    while True:
        try:
            time.sleep(10)
        except Cancelled:
            _trace("ignored", "%s %s" % (tag, os.getpid()))


@task("py.suicide")
def suicide(tag=""):
    """Dies mid-task the first time it runs for ``tag``."""
    d = os.environ.get("TW_PY_TRACE", "/tmp")
    mark = os.path.join(d, "died-" + tag)
    if not os.path.exists(mark):
        open(mark, "w").close()
        os.kill(os.getpid(), 9)
    return "survived"


@task("py.pid")
def pid():
    return os.getpid()


@task("py.ask")
def ask(ctx, question="ok?", timeout=30.0):
    ctx.send("thinking")
    try:
        return {"answer": ctx.request(question, timeout=timeout)}
    except ChannelClosed as exc:
        return {"closed": str(exc)}
    except TimeoutError:
        return {"timeout": True}


@task("py.async")
async def coro(x):
    await asyncio.sleep(0.01)
    return x * 2


@task("py.count")
def count(n, ctx):
    """A station: emits its input, stops at 1000 (next mode result)."""
    ctx.emit({"n": n})
    if n >= 1000:
        ctx.stop()
    return n + 1


@task("py.steer")
def steer(n, ctx):
    """A station in next mode handler: the next input is n + 10."""
    ctx.set_next(n + 10)
    return "ignored"


@task("py.inbox", n2s=True)
def inbox(state, ctx):
    """A station that adds up the numbers sent to it (n2s): each iteration
    waits up to 0.5 s for one, then takes whatever else has come."""
    total = state or 0
    try:
        total += ctx.receive(timeout=0.5)
    except TimeoutError:
        return total
    for m in ctx.messages():
        total += m
    ctx.emit({"total": total})
    return total


@task("py.slowcount")
def slowcount(n, ctx):
    """A station that counts slowly, so that it can be moved mid-way."""
    time.sleep(0.05)
    return n + 1


@task("py.collect", n2s=True)
def collect(state, ctx):
    """A station that writes every n2s message it takes to the trace file
    "collected", one line each: "pid message iteration". Lines from every
    child of a worker land in one file, in the order the iterations took
    them."""
    got = ctx.messages()
    if got:
        fd = os.open(os.path.join(os.environ["TW_PY_TRACE"], "collected"),
                     os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, "".join("%d %s %d\n" % (os.getpid(), m, ctx.iteration)
                                 for m in got).encode())
        finally:
            os.close(fd)
    return state
