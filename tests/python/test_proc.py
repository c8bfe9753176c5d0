"""Python handlers end to end: a real broker, real workers running
``python3 -m taskwheel.handler py_tasks`` children (--proc), and the
Python client. What the worker does with a child (kill, timeout, cancel,
restart) and what reaches the Python function."""

import os
import signal
import subprocess
import threading
import time

import pytest

import taskwheel
from taskwheel import TaskCancelled, TaskFailed, TaskTimeout
from tw_cluster import PYTHON, ROOT, wait_for, wait_workers

PROC = "%s -m taskwheel.handler py_tasks" % PYTHON


def proc_worker(cluster, b, *extra, slots=2, count=None):
    args = ["--proc", PROC, "--proc-grace", "300"]
    if count is not None:
        args += ["--proc-count", str(count)]
    return cluster.worker(b, *(args + list(extra)), slots=slots)


@pytest.fixture
def trace(cluster, tmp_path):
    d = tmp_path / "trace"
    d.mkdir()
    cluster.env["TW_PY_TRACE"] = str(d)
    return d


@pytest.fixture
def pyc(cluster, trace):
    b = cluster.broker()
    w = proc_worker(cluster, b, count=1)  # a station stays in one child
    c = taskwheel.Client(b.frontend, status=b.status)
    wait_workers(c, 1, "py.echo")
    c.broker_proc = b
    c.worker_proc = w
    yield c
    c.close(wait_acks=None)


def test_calls_results_and_errors(pyc):
    assert pyc.submit("add", 2, 3).result(20) == 5
    assert pyc.submit("py.echo", 1, "a", k=[2]).result(20) == \
        {"args": [1, "a"], "kwargs": {"k": [2]}}
    assert pyc.send_task("py.echo", (), {"timeout": 1}).result(20) == \
        {"args": [], "kwargs": {"timeout": 1}}
    assert pyc.submit("py.async", 4).result(20) == 8
    info = pyc.submit("py.info", 7, timeout=9).result(20)
    assert info["kind"] == "task" and info["attempt"] == 1
    assert info["timeout"] == 9.0 and info["args"] == [7]
    assert abs(info["deadline"] - time.time()) < 10
    with pytest.raises(TaskFailed) as ei:
        pyc.submit("py.fail", "bad size").result(20)
    e = ei.value
    assert (e.remote_type, e.remote_message) == ("ValueError", "bad size")
    assert "py_tasks.py" in e.remote_traceback
    assert "raise ValueError(message)" in e.remote_traceback
    with pytest.raises(TaskFailed, match="cannot be sent"):
        pyc.submit("py.unencodable").result(20)
    # retries keep every attempt's first line (PROTOCOL.md 12.7)
    with pytest.raises(TaskFailed) as er:
        pyc.submit("py.fail", "again", retries=1).result(30)
    assert er.value.error.startswith("attempt 1: ValueError: again\n")
    assert "; attempt 2: ValueError: again" in er.value.error
    assert er.value.remote_type == "ValueError"  # of the last attempt


def test_print_lands_in_the_worker_log(pyc):
    h = pyc.submit("py.print", "a line from a python handler")
    assert h.result(20) == 28
    wait_for(lambda: "a line from a python handler" in
             pyc.worker_proc.log_text(), 10, "the line in the worker's log")


def test_channel_between_python_handler_and_python_client(pyc):
    seen = []

    def on_channel(msg):
        seen.append((msg.kind, msg.data))
        if msg.kind == "req":
            return {"yes": msg.data}

    assert pyc.submit("py.ask", "go?", on_channel=on_channel).result(20) \
        == {"answer": {"yes": "go?"}}
    assert seen[:3] == [("open", None), ("msg", "thinking"), ("req", "go?")]
    assert seen[-1][0] == "close"
    r = pyc.submit("py.ask", "x", on_channel=lambda m: 1 / 0).result(20)
    assert "closed" in r


def traced(trace, name):
    """What py_tasks wrote to the trace file `name` so far ("" if none)."""
    try:
        return (trace / name).read_text()
    except FileNotFoundError:
        return ""


def test_cancel_reaches_the_python_function(pyc, trace):
    h = pyc.submit("py.sleep", 60, "cx")
    wait_for(lambda: (trace / "started").exists(), 20, "the task to run")
    t0 = time.monotonic()
    assert h.cancel() is True
    with pytest.raises(TaskCancelled):
        h.result(20)
    # The outcome can come before the function has unwound: wait for
    # what its except and finally write, not only for the files.
    wait_for(lambda: traced(trace, "cancelled").startswith("cx "), 10,
             "Cancelled raised in the function")
    wait_for(lambda: traced(trace, "finally").startswith("cx "), 10,
             "the function's finally")
    assert time.monotonic() - t0 < 30  # not the 60 s sleep run out
    assert pyc.submit("add", 1, 1).result(20) == 2


def test_timeout_reaches_the_function_and_the_child_stays(cluster, trace):
    b = cluster.broker()
    proc_worker(cluster, b, slots=1, count=1)
    with taskwheel.Client(b.frontend) as c:
        wait_workers(c, 1, "py.pid")
        before = c.submit("py.pid").result(20)
        with pytest.raises(TaskTimeout):
            c.submit("py.sleep", 30, "t1", timeout=0.5).result(20)
        wait_for(lambda: (trace / "cancelled").exists(), 10,
                 "Cancelled raised at the timeout")
        assert c.submit("py.pid").result(20) == before  # answered in time


def test_child_hanging_past_its_timeout_is_replaced(cluster, trace):
    b = cluster.broker()
    proc_worker(cluster, b, slots=1, count=1)
    with taskwheel.Client(b.frontend) as c:
        wait_workers(c, 1, "py.pid")
        before = c.submit("py.pid").result(20)
        t0 = time.monotonic()
        with pytest.raises(TaskTimeout):
            c.submit("py.hang", "h1", timeout=0.5).result(20)
        assert time.monotonic() - t0 < 10
        wait_for(lambda: (trace / "ignored").exists(), 10,
                 "the cancel to reach the hung function")
        # it ignored the cancel: SIGTERM, a new child
        after = c.submit("py.pid").result(30)
        assert after != before
        wait_for(lambda: not _alive(before), 10, "the hung child to exit")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of someone else's counts as gone
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_child_killed_mid_task(cluster, trace):
    b = cluster.broker()
    w = proc_worker(cluster, b, slots=1, count=1)
    with taskwheel.Client(b.frontend) as c:
        wait_workers(c, 1, "py.suicide")
        with pytest.raises(TaskFailed) as ei:
            c.submit("py.suicide", "k1").result(30)
        assert "signal 9" in ei.value.error or "SIGKILL" in ei.value.error
        # retries follow the task's policy: the second attempt runs in the
        # restarted child and succeeds
        h = c.submit("py.suicide", "k2", retries=1)
        assert h.result(30) == "survived" and h.attempt == 2
        assert c.submit("add", 2, 2).result(20) == 4
        assert w.alive()


def test_python_stations(pyc):
    st = pyc.station("cnt")
    pyc.add_station("cnt", "py.count", 900, interval=0.02)
    got = [v["n"] for v in st.tail(timeout=20)]
    assert got and got[-1] == 1000
    assert got == list(range(got[0], 1001))  # every s2n, in order
    info = st.show()
    assert info.state == "done" and info.checkpoint == 1001
    pyc.add_station("steer", "py.steer", 1, next="handler", interval=0.01)
    wait_for(lambda: (pyc.station("steer").show().checkpoint or 0) >= 41,
             20, "next mode handler")
    assert (pyc.station("steer").show().checkpoint - 1) % 10 == 0
    pyc.station("steer").cancel()
    pyc.add_station("inbox", "py.inbox", 0, interval=0.01)
    box = pyc.station("inbox")
    wait_for(lambda: box.show().state == "running", 20, "running")
    totals = []

    def tail():
        for v in box.tail(timeout=20):
            totals.append(v["total"])
            if v["total"] == 6:
                box.stop()

    t = threading.Thread(target=tail)
    t.start()
    time.sleep(0.5)
    for n in (1, 2, 3):
        box.send(n)
    t.join(30)
    assert totals and totals[-1] == 6
    wait_for(lambda: box.show().checkpoint == 6, 10, "the checkpoint")


PERL = "perl -I %s %s" % (
    os.path.join(ROOT, "examples", "proc"),
    os.path.join(ROOT, "tests", "integration", "proc", "child.pl"))


@pytest.mark.parametrize("lang", ["py", "pl"])
def test_n2s_exactly_once_in_order_across_children(cluster, trace, lang):
    """PROTOCOL.md 15.10: a station with a steady n2s stream whose
    iterations run in several children of one worker gets every message
    exactly once, in order, although the worker sends some while a child
    has finished its iteration and the next runs elsewhere."""
    b = cluster.broker()
    cmd = PROC if lang == "py" else PERL
    cluster.worker(b, "--proc", cmd, "--proc-count", "3", "--proc-grace",
                   "300", slots=5)
    n = 400
    with taskwheel.Client(b.frontend) as c:
        wait_workers(c, 1, lang + ".collect")
        c.add_station("col", lang + ".collect", 0, interval=0)
        box = c.station("col")
        wait_for(lambda: box.show().state == "running", 20, "running")
        # Tasks keep every child busy by turns, so that each iteration
        # runs in whichever child is free first.
        stop = threading.Event()

        def load():
            with taskwheel.Client(b.frontend) as lc:
                hs = [lc.submit(lang + ".sleep", 0.002 * (k + 1))
                      for k in range(3)]
                while not stop.is_set():
                    done = next(lc.as_completed(hs, timeout=30))
                    hs.remove(done)
                    hs.append(lc.submit(lang + ".sleep", 0.002 * len(hs)))

        t = threading.Thread(target=load)
        t.start()
        path = trace / "collected"

        def lines():
            return path.read_text().splitlines() if path.exists() else []

        # Which child runs an iteration is up to the scheduler: on a busy
        # machine one stream may stay in one child, so send more rounds
        # (up to five) until the iterations have moved.
        sent = 0
        try:
            for _ in range(5):
                for i in range(sent, sent + n):
                    box.send(i)
                    if i % 4 == 3:
                        time.sleep(0.004)  # a stream, not one burst
                sent += n
                try:
                    wait_for(lambda: len(lines()) >= sent, 60,
                             "%d messages collected" % sent)
                except AssertionError:
                    break  # the comparison below names what is missing
                if len({line.split()[0] for line in lines()}) > 1:
                    break
        finally:
            stop.set()
            t.join(30)
        got = lines()
        values = [int(line.split()[1]) for line in got]
        bad = [i for i, v in enumerate(values) if i and v <= values[i - 1]]
        assert values == list(range(sent)), (
            "lost: %s; out of order or twice: %s" % (
                sorted(set(range(sent)) - set(values))[:20],
                got[max(0, bad[0] - 5):bad[0] + 5] if bad else "none"))
        pids = {line.split()[0] for line in got}
        assert len(pids) > 1, "the iterations never left one child"


def test_python_station_moves_with_its_checkpoint(cluster, trace):
    b = cluster.broker("--heartbeat", "200")
    wa = proc_worker(cluster, b, slots=1, count=1)
    with taskwheel.Client(b.frontend) as c:
        wait_workers(c, 1, "py.slowcount")
        c.add_station("mover", "py.slowcount", 0, interval=0.01)
        st = c.station("mover")
        wait_for(lambda: (st.show().checkpoint or 0) >= 10, 20,
                 "iterations on the first worker")
        first = st.show().worker
        wb = proc_worker(cluster, b, slots=1, count=1)
        wait_workers(c, 2, "py.slowcount")
        children = _children(wa.pid)
        assert children, "the first worker's proc child"
        before = st.show().checkpoint
        wa.kill_group()  # SIGKILL the worker; its child is on its own
        wait_for(lambda: st.show().worker not in (None, first), 30,
                 "the station to move")
        moved = st.show()
        assert moved.checkpoint >= before  # resumed, not restarted at 0
        wait_for(lambda: st.show().checkpoint > moved.checkpoint + 3, 20,
                 "iterations on the second worker")
        # the orphaned child saw its stdin end and left
        wait_for(lambda: not any(_alive(p) for p in children), 10,
                 "the dead worker's child to exit")
        assert wb.alive()


def _children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)],
                         capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_proc_worker_from_a_config_file(cluster, tmp_path):
    b = cluster.broker()
    conf = tmp_path / "worker.conf"
    conf.write_text("proc %s\nproc-count 1\n" % PROC)
    cluster.worker(b, "--config", str(conf))
    with taskwheel.Client(b.frontend) as c:
        wait_workers(c, 1, "py.echo")
        assert c.submit("add", 20, 22).result(20) == 42
        os.kill(cluster.procs[-1].pid, signal.SIGTERM)
        wait_for(lambda: not c.workers(), 20, "the worker to leave")
