"""The Python handler runtime (``python3 -m taskwheel.handler``) against a
stand-in worker speaking the process handler protocol (PROTOCOL.md 15)
over real pipes: every frame the child sends and answers."""

import os
import signal
import subprocess
import sys
import time

import msgpack
import pytest

from taskwheel import _frames
from tw_cluster import HERE, PYDIR, wait_for


class Child:
    """A ``taskwheel.handler`` child and our end of its pipes."""

    def __init__(self, tmp, *modules, env=None):
        self.env = dict(os.environ, TASKWHEEL_PROC="1", TW_PY_TRACE=str(tmp),
                        PYTHONPATH=os.pathsep.join([PYDIR, HERE]))
        self.env.update(env or {})
        self.p = subprocess.Popen(
            [sys.executable, "-m", "taskwheel.handler"] +
            list(modules or ["py_tasks"]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=self.env)
        self.reader = _frames.FrameReader(self.p.stdout.fileno())

    def send(self, frame):
        self.p.stdin.write(_frames.encode(frame))
        self.p.stdin.flush()

    def read(self, timeout=20):
        import select
        deadline = time.monotonic() + timeout
        while True:
            frame = self.reader.next()
            if frame is not None:
                return frame
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.p.stdout], [], [], max(0, left))
            assert r, "no frame from the child within %s s" % timeout
            if not self.reader.fill():
                return None

    def call(self, h, a=None, kind="task", **extra):
        f = {"ev": "call", "kind": kind, "h": h}
        if kind == "task":
            f.update(task=extra.pop("task", 7), at=extra.pop("at", 1))
        f.update(extra)
        f["a"] = a
        self.send(f)

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(10)
        return self.p.stderr.read().decode(errors="replace")


@pytest.fixture
def child(tmp_path):
    c = Child(tmp_path)
    yield c
    c.close()


def test_hello(child):
    h = child.read()
    assert h["ev"] == "hello" and h["v"] == 1
    assert h["handlers"] == sorted(h["handlers"])
    assert {"add", "py.echo", "py.count", "py.inbox"} <= set(h["handlers"])
    assert h["flags"] == {"py.inbox": ["n2s"], "py.collect": ["n2s"]}
    assert h["pipeline"] == 4
    assert h["rt"].startswith("python 3.")


def test_arguments_and_results(child):
    child.read()
    child.call("add", [2, 3])
    assert child.read() == {"ev": "result", "r": 5}
    child.call("py.echo", {"k": "v"})
    assert child.read()["r"] == {"args": [], "kwargs": {"k": "v"}}
    child.call("py.echo", None)
    assert child.read()["r"] == {"args": [], "kwargs": {}}
    child.call("py.echo", "scalar")
    assert child.read()["r"] == {"args": ["scalar"], "kwargs": {}}
    both = msgpack.ExtType(1, msgpack.packb([[1, 2], {"z": 3}]))
    child.call("py.echo", both)
    assert child.read()["r"] == {"args": [1, 2], "kwargs": {"z": 3}}
    child.call("py.async", [21])
    assert child.read()["r"] == 42
    child.call("py.kwctx", [5], task=99)
    assert child.read()["r"] == [5, 99]


def test_context(child):
    child.read()
    child.call("py.info", [1, 2], task=42, at=3, to=30000, dl=1700000030000)
    r = child.read()["r"]
    assert r == {"kind": "task", "task": 42, "attempt": 3, "timeout": 30.0,
                 "deadline": 1700000030.0, "args": [1, 2]}


def test_errors_carry_type_message_and_traceback(child):
    child.read()
    child.call("py.fail", ["bad size"])
    e = child.read()
    assert e["ev"] == "error" and e["msg"] == "ValueError: bad size"
    assert e["tb"].startswith("Traceback (most recent call last):")
    assert "py_tasks.py" in e["tb"] and 'raise ValueError' in e["tb"]
    assert "handler.py" not in e["tb"]  # the runtime's own frames are cut
    child.call("py.unencodable")
    e = child.read()
    assert e["ev"] == "error" and "cannot be sent" in e["msg"]
    child.call("no.such.handler")
    assert "no handler 'no.such.handler'" in child.read()["msg"]
    child.call("add", [1])  # a TypeError is the call's error too
    assert child.read()["msg"].startswith("TypeError")
    child.call("add", [1, 1])
    assert child.read()["r"] == 2  # and the child goes on


def test_print_goes_to_stderr(child):
    child.read()
    child.call("py.print", ["hello from the handler"])
    assert child.read() == {"ev": "result", "r": 22}
    child.send({"ev": "shutdown"})
    assert child.p.wait(10) == 0
    assert "hello from the handler" in child.p.stderr.read().decode()


def test_cancel_raises_in_the_function(child, tmp_path):
    child.read()
    child.send({"ev": "cancel"})  # no call runs: ignored
    child.call("py.sleep", [30, "c1"])
    wait_for(lambda: (tmp_path / "started").exists(), 20, "the call to start")
    t0 = time.monotonic()
    child.send({"ev": "cancel"})
    e = child.read(10)
    assert e == {"ev": "error", "msg": "cancelled"}
    assert time.monotonic() - t0 < 15  # not the 30 s sleep run out
    assert (tmp_path / "cancelled").read_text().startswith("c1 ")
    assert (tmp_path / "finally").read_text().startswith("c1 ")
    child.call("add", [1, 2])
    assert child.read()["r"] == 3


def _wakeups(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches for %d" % pid)


def test_look_timer_stops_when_idle_and_rearms(child):
    """The look timer (SIGALRM every 10 ms while calls run) stops itself
    once the child is idle, and the next call arms it again: a cancel
    still reaches that call's function."""
    child.read()
    for spell in range(3):
        for k in range(20):
            child.call("py.noop", [k], task=100 * spell + k)
        for k in range(20):
            assert child.read() == {"ev": "result", "r": None}
        # Idle: the first tick stops the timer; after it nothing wakes
        # the child (with the timer it would wake 100 times a second).
        time.sleep(0.1)
        before = _wakeups(child.p.pid)
        time.sleep(0.5)
        assert _wakeups(child.p.pid) - before <= 3
    child.call("py.sleep", [30, "c2"], task=900)
    time.sleep(0.2)
    t0 = time.monotonic()
    child.send({"ev": "cancel", "task": 900})
    assert child.read(10) == {"ev": "error", "msg": "cancelled"}
    assert time.monotonic() - t0 < 5


def test_channel_frames(child):
    child.read()
    child.call("py.ask", ["really?"])
    assert child.read() == {"ev": "open"}
    assert child.read() == {"ev": "msg", "d": "thinking"}
    req = child.read()
    assert req["ev"] == "req" and req["d"] == "really?"
    assert req["timeout"] == 30000 and req["id"] >= 1
    child.send({"ev": "resp", "d": {"yes": True}, "id": req["id"]})
    assert child.read() == {"ev": "close"}
    assert child.read()["r"] == {"answer": {"yes": True}}
    child.call("py.ask", ["again?"])
    child.read(), child.read()
    req = child.read()
    child.send({"ev": "error", "err": "ECLOSEREQ", "id": req["id"]})
    child.read()  # close
    assert "closed" in child.read()["r"]
    child.call("py.ask", ["late?", 0.5])
    child.read(), child.read()
    req = child.read()
    assert req["timeout"] == 500
    child.send({"ev": "error", "err": "ETIMEDOUT", "id": req["id"]})
    child.read()
    assert child.read()["r"] == {"timeout": True}


def test_station_frames(child):
    child.read()
    child.call("py.count", 5, kind="station", sid="s1", it=1)
    assert child.read() == {"ev": "emit", "d": {"n": 5}}
    assert child.read() == {"ev": "result", "r": 6}
    child.call("py.count", 1000, kind="station", sid="s1", it=2)
    assert child.read()["ev"] == "emit"
    assert child.read() == {"ev": "stop"}
    assert child.read()["r"] == 1001
    child.call("py.steer", 1, kind="station", sid="s2", it=1)
    assert child.read() == {"ev": "next", "d": 11}
    child.read()
    # n2s messages follow the call; the handler waits for them
    child.call("py.inbox", 10, kind="station", sid="s3", it=1)
    child.send({"ev": "n2s", "seq": 1, "d": 5})
    child.send({"ev": "n2s", "seq": 2, "d": 7})
    first = child.read()
    assert first["ev"] == "emit" and first["d"]["total"] in (15, 22)
    assert child.read()["ev"] == "result"
    child.call("py.inbox", 0, kind="station", sid="s3", it=2)
    assert child.read() == {"ev": "result", "r": 0}  # none came
    # one sent after the outcome, which the worker had not read yet:
    # the station's next iteration in this child takes it
    child.send({"ev": "n2s", "seq": 3, "d": 4})
    child.call("py.inbox", 0, kind="station", sid="s3", it=3)
    assert child.read() == {"ev": "emit", "d": {"total": 4}}
    assert child.read() == {"ev": "result", "r": 4}
    child.call("py.count", [5])  # station calls in a task
    e = child.read()
    assert e["ev"] == "error" and "is for station iterations" in e["msg"]
    child.call("py.ask", [], kind="station", sid="s5", it=1)
    e = child.read()
    assert e["ev"] == "error" and "no task channel" in e["msg"]


def test_eof_and_shutdown_end_the_child(tmp_path):
    c = Child(tmp_path)
    c.read()
    c.p.stdin.close()
    assert c.p.wait(10) == 0
    c.close()
    c = Child(tmp_path)
    c.read()
    c.call("py.sleep", [30, "eof"])
    wait_for(lambda: (tmp_path / "started").exists(), 20, "the call to start")
    c.p.stdin.close()  # the worker went away during a call
    assert c.p.wait(10) == 0
    c.close()


def test_bad_modules_and_versions(tmp_path):
    c = Child(tmp_path, "no_such_module_xyz")
    assert c.p.wait(10) == 2
    assert "No module named 'no_such_module_xyz'" in c.close()
    c = Child(tmp_path, "os")
    assert c.p.wait(10) == 2
    assert "register no handler" in c.close()
    c = Child(tmp_path, env={"TASKWHEEL_PROC": "0"})
    assert c.p.wait(10) == 2
    assert "speaks process protocol 0" in c.close()
    r = subprocess.run([sys.executable, "-m", "taskwheel.handler", "--list",
                        "py_tasks"], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                           [PYDIR, HERE])), timeout=30)
    assert r.returncode == 0 and "py.inbox\tpy_tasks.inbox\tn2s" in r.stdout


def test_sigterm_ends_a_hung_child(child, tmp_path):
    child.read()
    child.call("py.hang", ["h1"])
    wait_for(lambda: (tmp_path / "hang").exists(), 20, "the call to start")
    child.send({"ev": "cancel"})
    wait_for(lambda: (tmp_path / "ignored").exists(), 20, "the cancel")
    assert child.p.poll() is None  # it ignored the cancel
    os.kill(child.p.pid, signal.SIGTERM)
    assert child.p.wait(10) == -signal.SIGTERM
