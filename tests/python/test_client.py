"""The blocking client against a real broker and worker: every call.

The worker offers only its built-in handlers here (noop, echo, sleep,
fail, incr, mirror, ticker, ask); Python handlers are in test_proc.py.
"""

import datetime
import os
import threading
import time

import pytest

import taskwheel
from taskwheel import (BrokerError, EncodeError, InvalidArgument, Refused,
                       TaskCancelled, TaskFailed, TaskTimeout)
from taskwheel.errors import code_name
from tw_cluster import wait_for, wait_workers


def test_ping_status_workers_snapshot(client):
    assert client.ping() < 5
    st = client.status()
    assert st["workers"] == 1 and "submitted" in st
    (w,) = client.workers()
    assert w.slots == 4 and "echo" in w.handlers and w.state == "ready"
    snap = client.snapshot()
    assert set(snap) >= {"pseq", "tseq", "status", "workers", "stations",
                         "tasks", "groups"}
    assert client.routing_id.startswith("c-")


def test_submit_args_kwargs_and_payload(client):
    # echo returns its argument value byte for byte: the encoding shows.
    assert client.submit("echo").result(10) is None
    assert client.submit("echo", 1, "two").result(10) == [1, "two"]
    assert client.submit("echo", x=1).result(10) == {"x": 1}
    mixed = client.submit("echo", 1, x=2).result(10)
    assert mixed.code == 1  # the call extension: [[1], {"x": 2}]
    assert taskwheel._calls.decode_call(mixed) == ([1], {"x": 2})
    assert client.submit_payload("echo", {"k": [1, 2]}).result(10) == \
        {"k": [1, 2]}
    assert client.send_task("echo", (1,), {"timeout": 3}).result(10) == \
        taskwheel._wire.unpack(taskwheel._calls.encode_call(
            (1,), {"timeout": 3}))
    b = b"\x00\xffbin"
    assert client.submit_payload("echo", b).result(10) == b


def test_handle_state_and_done(client):
    h = client.submit("sleep", 1.5)
    assert h.state == "submitted" and not h.done() and h.id is None
    wait_for(lambda: h.refresh() == "running", 10, "the task to run")
    assert h.id is not None and h.state == "pending"
    assert h.result(10) is None
    assert h.done() and h.state == "ok" and h.worker > 0 and h.attempt == 1
    assert h.exception() is None


def test_result_timeout_leaves_task_running(client):
    h = client.submit("sleep", 1)
    with pytest.raises(TimeoutError):
        h.result(timeout=0.05)
    assert h.result(10) is None


def test_failure_timeout_and_retries(client):
    with pytest.raises(TaskFailed) as ei:
        client.submit_payload("fail", "boom").result(10)
    assert ei.value.state == "error" and "boom" in ei.value.error
    with pytest.raises(TaskTimeout) as et:
        client.submit("sleep", 5, timeout=0.2).result(10)
    assert et.value.state == "timeout"
    h = client.submit_payload("fail", "again", retries=2)
    exc = h.exception(20)
    assert isinstance(exc, TaskFailed)
    assert exc.error.count("again") == 3 and h.attempt == 3


def test_refused_and_bad_input_send_nothing(client):
    with pytest.raises(Refused) as ei:
        client.submit("no-such-handler").result(10)
    assert ei.value.name == "EHANDLER"
    before = client.status()["submitted"]
    with pytest.raises(EncodeError) as ee:
        client.submit("echo", object())
    assert isinstance(ee.value, TypeError)
    assert "cannot be encoded" in str(ee.value)
    with pytest.raises(EncodeError):
        client.submit("echo", x={1, 2})
    with pytest.raises(EncodeError):
        client.submit("echo", **{"x": 2**70})
    with pytest.raises(EncodeError):
        client.submit_many("echo", [1, object(), 3])
    with pytest.raises(InvalidArgument):
        client.submit("")
    with pytest.raises(InvalidArgument):
        client.submit("h" * 129)
    with pytest.raises(InvalidArgument):
        client.submit("echo", timeout=-1)
    with pytest.raises(InvalidArgument):
        client.submit("echo", group=["ok", ""])
    with pytest.raises(InvalidArgument):
        client.submit("echo", priority=2**40)
    with pytest.raises(EncodeError) as big:
        client.submit_payload("echo", b"x" * (17 << 20))
    assert big.value.name == "E2BIG"
    assert client.stats["unacked"] == 0 and client.stats["outstanding"] == 0
    # A good task after all that still gets through, and nothing else did.
    assert client.submit("echo", 1).result(10) == [1]
    assert client.status()["submitted"] == before + 1


def test_cancel_by_handle_and_ids(client):
    h = client.submit("sleep", 30)
    wait_for(lambda: h.refresh() == "running", 10, "the task to run")
    assert h.cancel() is True
    with pytest.raises(TaskCancelled):
        h.result(10)
    assert h.cancel() is False
    done = client.submit("noop")
    done.result(10)
    q = client.submit("sleep", 30, delay=30)
    q.wait_id()
    r = client.cancel(q.id, done.id, 10**9)
    assert r["cancelled"] == [q.id] and r["ended"] == [done.id]
    assert r["unknown"] == [10**9]
    with pytest.raises(TaskCancelled):
        q.result(10)
    with pytest.raises(BrokerError) as ei:
        client.cancel(done.id, strict=True)
    assert ei.value.name == "EENDED"


def test_results_by_id(client):
    h = client.submit("echo", 5)
    h.result(10)
    r = client.result(h.id)
    assert r.state == "ok" and r.value() == [5] and r.done
    assert client.result(10**9).state == "unknown"
    f = client.submit_payload("fail", "x")
    f.exception(10)
    rs = client.results([h.id, f.id])
    assert [x.state for x in rs] == ["ok", "error"]
    with pytest.raises(TaskFailed):
        rs[1].value()


def test_delay_priority_and_dedup_key(client):
    t0 = time.monotonic()
    client.submit("noop", delay=0.4).result(10)
    assert time.monotonic() - t0 >= 0.35
    a = client.submit_payload("echo", "first", key="k-1", delay=0.3)
    b = client.submit_payload("echo", "second", key="k-1")
    assert b.result(10) == "first"
    assert b.dup and b.id == a.id
    assert a.result(10) == "first"


def test_submit_many_batch_wait_and_as_completed(client):
    hs = client.submit_many("echo", range(50))
    assert client.wait(hs, 20)
    assert [h.result() for h in hs] == [[i] for i in range(50)]
    with client.batch():
        more = [client.submit("echo", i) for i in range(10)]
        assert all(h.id is None for h in more)
    got = sorted(h.result() for h in client.as_completed(more, 20))
    assert got == [[i] for i in range(10)]
    star = client.submit_many("echo", [(1, 2), (3,)], star=True)
    assert [h.result(10) for h in star] == [[1, 2], [3]]


def test_map_is_lazy_ordered_and_limited(client):
    taken = []

    def items():
        for i in range(40):
            taken.append(i)
            yield i

    it = client.map("echo", items(), concurrency=3)
    assert it.group.startswith("map-echo-group-")
    info = client.group(it.group).info()
    assert info.limit == 3
    first = next(it)
    assert first == [0]
    assert len(taken) <= 2 * 3 + 1  # lazy: one window, not the input
    rest = list(it)
    assert rest == [[i] for i in range(1, 40)]
    assert client.group(it.group).info().admitted == 40
    un = sorted(client.map("echo", range(10), concurrency=4, ordered=False))
    assert un == [[i] for i in range(10)]
    assert list(client.starmap("echo", [(1, 2), (3, 4)])) == [[1, 2], [3, 4]]
    out = list(client.map("fail", ["a", "b"], return_exceptions=True))
    assert all(isinstance(e, TaskFailed) for e in out)
    with pytest.raises(TaskFailed):
        list(client.map("fail", ["c"]))


def test_map_concurrency_holds_across_the_cluster(cluster, broker, client):
    cluster.worker(broker, slots=4)
    wait_workers(client, 2)
    samples = []
    stop = threading.Event()

    def watch():  # another thread on the same client
        while not stop.is_set():
            try:
                samples.append(client.group("capped").info().running)
            except BrokerError:
                pass  # not created yet

    t = threading.Thread(target=watch)
    t.start()
    t0 = time.monotonic()
    out = list(client.map("sleep", [0.1] * 12, concurrency=2,
                          group="capped"))
    took = time.monotonic() - t0
    stop.set()
    t.join()
    assert len(out) == 12
    assert 1 <= max(samples) <= 2  # 8 slots, but the group holds 2
    assert took >= 6 * 0.1 * 0.9


def test_groups(client):
    g = client.group("g1")
    info = g.create(limit=2, calls=5)
    assert (info.limit, info.calls, info.full) == (2, 5, "queue")
    with pytest.raises(BrokerError) as ei:
        g.create()
    assert ei.value.name == "EEXIST"
    assert client.group_limit("g1", 1).limit == 1
    hs = [client.submit("noop", group="g1") for _ in range(3)]
    client.wait(hs, 10)
    assert g.ids() == [h.id for h in hs]
    assert g.info().admitted == 3
    assert client.group_limit("g1", None).limit is None
    assert "g1" in [x.group for x in client.groups()]
    assert client.group("never-made").clear() is None
    empty = client.group("never-made").info()  # reads as empty (S98)
    assert (empty.limit, empty.admitted) == (None, 0)
    with pytest.raises(BrokerError) as ne:
        client.group("never-made").ids()
    assert ne.value.name == "ENOENT"
    # reject mode: the group at its limit refuses at submission
    client.group("r").set(limit=1, full="reject")
    busy = client.submit("sleep", 1, group="r")
    with pytest.raises(Refused) as rej:
        client.submit("noop", group="r").result(10)
    assert rej.value.name == "ELIMIT"
    busy.result(10)
    # calls cap
    client.group("c", pool="capp").set(calls=1)
    client.submit("noop", pool="capp", group="c").result(10)
    with pytest.raises(Refused):
        client.submit("noop", pool="capp", group="c").result(10)


def test_pools(client):
    p = client.pool("p1")
    assert p.size(1).size == 1
    hs = [client.submit("sleep", 0.2, pool="p1") for _ in range(3)]
    wait_for(lambda: p.stats().running == 1 and p.stats().pending >= 1, 10,
             "one running, the others waiting")
    assert p.size(0).free is None
    client.wait(hs, 10)
    assert p.default_limit(1).default_limit == 1
    assert p.group("dg").set(calls=100).limit == 1
    assert p.default_limit(None).default_limit is None
    p.lock()
    with pytest.raises(Refused) as lk:
        client.submit("noop", pool="p1").result(10)
    assert lk.value.name == "ELOCKED"
    p.unlock()
    client.submit("noop", pool="p1").result(10)
    assert p.flush() >= 4 and p.stats().ended == 0
    long = [client.submit("sleep", 30, pool="p1") for _ in range(2)]
    wait_for(lambda: p.stats().running == 2, 10, "two running")
    stopped = p.stop(1)
    assert len(stopped) == 1
    assert sorted(p.stop() + stopped) == sorted(h.id for h in long)
    for h in long:
        with pytest.raises(TaskCancelled):
            h.result(10)
    grouped = [client.submit("sleep", 30, pool="p1", group="gg")
               for _ in range(2)]
    for h in grouped:
        h.wait_id()
    assert sorted(p.group("gg").cancel()) == sorted(h.id for h in grouped)
    pend = client.submit("sleep", 30, pool="p1", delay=60)
    pend.wait_id()
    assert client.cancel_all("p1") == [pend.id]
    client.submit("sleep", 0.3, pool="p1")
    info = p.gather_and_close(timeout=20)
    assert info.closed and info.running == 0
    with pytest.raises(Refused) as cl:
        client.submit("noop", pool="p1").result(10)
    assert cl.value.name == "ECLOSED"
    assert p.until_closed(timeout=5).closed
    with pytest.raises(TimeoutError):
        client.pool("open-one").until_closed(timeout=0.3)


def test_stations(client):
    st = client.add_station("cnt", "incr", 0, interval=0.02)
    assert st.station == "cnt" and st.state in ("assigned", "pending")
    with pytest.raises(BrokerError) as ei:
        client.add_station("cnt", "incr", 0)
    assert ei.value.name == "EEXIST"
    s = client.station("cnt")
    wait_for(lambda: (s.show().checkpoint or 0) >= 3, 10, "iterations")
    assert s.pause().wanted == "paused"
    wait_for(lambda: s.show().state == "paused", 10, "paused")
    cp = s.show().checkpoint
    time.sleep(0.1)
    assert s.show().checkpoint == cp
    s.resume()
    wait_for(lambda: s.show().checkpoint > cp, 10, "resumed")
    assert [x.station for x in client.stations()] == ["cnt"]
    s.stop()
    wait_for(lambda: s.show().state == "stopped", 10, "stopped")
    assert s.remove().state == "removed"
    with pytest.raises(BrokerError) as ne:
        client.station("nope").show()
    assert ne.value.name == "ENOENT"
    with pytest.raises(InvalidArgument):
        client.add_station("x", "incr", next="sideways")
    assert client.rebalance_stations() == 0


def test_station_send_and_tail(client):
    client.add_station("m", "mirror", None, next="same", interval=0.01)
    s = client.station("m")
    wait_for(lambda: s.show().state == "running", 10, "running")
    stop = threading.Event()

    def sender():  # another thread on the same client
        i = 0
        while not stop.is_set():
            assert s.send({"n": i})["station"] == "m"
            i += 1
            time.sleep(0.03)

    t = threading.Thread(target=sender)
    t.start()
    got = []
    for value in s.tail(timeout=10):
        got.append(value["n"])
        if len(got) == 3:
            s.cancel()  # the tail ends with the station
    stop.set()
    t.join(10)
    assert len(got) >= 3
    assert got[1] == got[0] + 1 and got[2] == got[1] + 1  # in order, all
    assert s.show().state == "cancelled"
    assert list(s.tail(timeout=1)) == []  # an ended station: at once


def test_events_snapshot_and_deltas(client):
    with client.events("task.", timeout=30) as ev:
        first = next(ev)
        assert first.topic == "snapshot" and "tseq" in first.data
        h = client.submit("echo", 1)
        h.result(10)
        topics = []
        for e in ev:
            if e.data.get("id") == h.id:
                topics.append(e.topic)
            if e.topic == "task.result" and e.data.get("id") == h.id:
                break
        assert topics == ["task.submitted", "task.started", "task.done",
                          "task.result"]
        assert ev.gaps == 0


def test_task_channel(client):
    seen = []

    def on_channel(msg):
        seen.append((msg.kind, msg.data))
        if msg.kind == "req":
            return "pong"

    h = client.submit("ask", 1, 2, on_channel=on_channel)
    assert h.result(10) == "pong"
    assert seen[0][0] == "open" and ("req", "ask") in seen
    assert seen[-1][0] == "close"
    # A callback that raises asks the task to close its channel.
    h2 = client.submit("ask", 1, on_channel=lambda m: 1 / 0)
    assert h2.result(10) == "ECLOSEREQ"


def test_done_callbacks_and_threads(client):
    fired = []
    h = client.submit("echo", 1)
    h.add_done_callback(lambda x: fired.append(x.id))
    h.result(10)
    assert fired == [h.id]
    results = {}

    def one(i):
        results[i] = client.submit("echo", i).result(20)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert results == {i: [i] for i in range(8)}

    def waits_inside(x):
        with pytest.raises(RuntimeError):
            client.submit("echo", 1).result(1)
        fired.append("checked")

    h3 = client.submit("echo", 3)
    h3.add_done_callback(waits_inside)
    h3.result(10)
    client.ping()
    assert "checked" in fired


def test_drain_and_resize_worker(cluster, broker, client):
    (w,) = client.workers()
    (r,) = client.resize_worker(8, wid=w.id)
    assert r.slots == 8
    wait_for(lambda: client.workers()[0].slots == 8, 10, "resized")
    with pytest.raises(BrokerError) as ei:
        client.drain_worker("no-such-worker")
    assert ei.value.name == "ENOENT"
    (d,) = client.drain_worker(w.name)
    assert d.state == "draining"
    wait_for(lambda: not client.workers(), 20, "the worker to leave")


def test_broker_from_environment(broker, client, monkeypatch):
    monkeypatch.setenv("TASKWHEEL_BROKER", broker.frontend)
    with taskwheel.Client() as c:
        assert c.broker == broker.frontend
        assert c.submit("echo", 1).result(10) == [1]


def test_unreachable(cluster):
    from tw_cluster import free_port
    with taskwheel.Client("tcp://127.0.0.1:%d" % free_port(),
                          timeout=0.3) as c:
        with pytest.raises(taskwheel.Unreachable):
            c.ping()
        with pytest.raises(taskwheel.Unreachable):
            c.status()
        h = c.submit("echo", 1)
        with pytest.raises(TimeoutError):
            h.result(0.3)


def test_error_names():
    assert code_name(-4004) == "EHANDLER" and code_name(-99999) == "E-99999"
    e = taskwheel.errors.task_failed(
        7, "error", "ValueError: bad\nTraceback (most recent call last):\n"
        "  File \"x.py\", line 1, in f\nValueError: bad")
    assert (e.remote_type, e.remote_message) == ("ValueError", "bad")
    assert e.remote_traceback.startswith("Traceback")
    assert str(e) == "task 7 ended error: ValueError: bad"


def test_env_curve_needs_both(monkeypatch, tmp_path):
    monkeypatch.setenv("TASKWHEEL_CURVE_SECRET", str(tmp_path / "x.key"))
    monkeypatch.delenv("TASKWHEEL_BROKER_KEY", raising=False)
    with pytest.raises(taskwheel.keys.KeyFileError) as ei:
        taskwheel.Client("tcp://127.0.0.1:1")
    assert "both" in str(ei.value)
    assert os.environ["TASKWHEEL_CURVE_SECRET"]


def test_close_with_an_open_event_stream(broker, client):
    c = taskwheel.Client(broker.frontend, status=broker.status)
    ev = c.events("task.", timeout=1)
    next(ev)  # the snapshot: subscribed and connected
    t0 = time.monotonic()
    c.close()  # the stream's socket must not keep the context alive
    assert time.monotonic() - t0 < 5


def test_after_at_and_blocked(client):
    # A parent held back by a group with limit 0 (nothing of it starts):
    # its child is blocked until the limit goes, then runs with the
    # parent's result first (PROTOCOL.md 18.2-18.3).
    client.group_limit("pygate", 0)
    p = client.submit_payload("echo", "first", group="pygate")
    pid = p.wait_id()
    c = client.submit_payload("echo", ["mine"], after=[p],
                              with_results=True)
    assert c.refresh() == "blocked"
    d = client.submit_payload("echo", 7, after=pid, after_any_end=True)
    client.group_limit("pygate", None)
    assert c.result(10) == ["first", "mine"]
    assert d.result(10) == 7
    # A failed parent cancels the child, naming it.
    f = client.submit("fail", "boom")
    with pytest.raises(TaskFailed):
        f.result(10)
    g = client.submit_payload("echo", 1, after=[f.id])
    with pytest.raises(TaskCancelled) as e:
        g.result(10)
    assert "upstream failed: task %d ended error" % f.id in str(e.value)
    # at: not before then; a time in the past runs at once.
    t0 = time.time()
    h = client.submit_payload("exec", ["date", "+%s%3N"], at=t0 + 1.5)
    assert int(h.result(15)) >= int((t0 + 1.5) * 1000)
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    assert client.submit_payload("echo", 2, at=past).result(10) == 2
    # Refused before anything is sent.
    with pytest.raises(InvalidArgument):
        client.submit("echo", at=datetime.datetime(2030, 1, 1))
    with pytest.raises(InvalidArgument):
        client.submit("echo", after=[taskwheel.TaskHandle(client, 0, "x")])
    with pytest.raises(InvalidArgument):
        client.submit("echo", after=["12"])
    with pytest.raises(Refused):
        client.submit("echo", after=[999999]).result(10)


def test_schedules(client):
    # A tick a second submits echo("tick"); its tasks run.
    info = client.schedule_add("py-every", "@every 1s", "echo", "tick",
                               tz="UTC", overlap="queue", timeout=5)
    assert info["name"] == "py-every" and info["overlap"] == "queue"
    assert info["template"]["h"] == "echo" and info["template"]["to"] == 5000
    live = wait_for(lambda: client.schedule("py-every")["fired"] >= 2
                    and client.schedule("py-every"), 30, "two ticks")
    assert [s["name"] for s in client.schedules()] == ["py-every"]
    assert live["next"] is not None and live["cursor"] > 0
    # Paused, run-now still fires, and its task runs.
    assert client.schedule_pause("py-every")["paused"] is True
    tid = client.schedule_run_now("py-every")
    assert client.result(tid).state in ("pending", "running", "ok")
    wait_for(lambda: client.result(tid).state == "ok", 20, "run-now's task")
    assert client.result(tid).value() == ["tick"]
    assert client.schedule_resume("py-every")["paused"] is False
    assert client.schedule_remove("py-every") is None
    # Bad requests: refused, nothing added.
    for kw, name in (({"tz": "Mars/Olympus"}, "EINVAL"),
                     ({"catch_up": None, "overlap": None}, "EINVAL")):
        cron = "61 * * * *" if not kw.get("tz") else "@daily"
        with pytest.raises(BrokerError) as ei:
            client.schedule_add("py-bad", cron, "echo", **kw)
        assert ei.value.name == name
    with pytest.raises(BrokerError) as ei:
        client.schedule("py-every")
    assert ei.value.name == "ENOENT"
    with pytest.raises(InvalidArgument):
        client.schedule_add("py-bad", "@daily", "echo", overlap="never")
    with pytest.raises(InvalidArgument):
        client.schedule_add("py-bad", "@daily", "echo", key="k")
    assert client.schedules() == []
