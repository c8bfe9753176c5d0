"""A broker restart under a Python client that is submitting: the client
reconnects under the same routing id, resends what was not acknowledged
and asks about what has no outcome (PROTOCOL.md 6.3, 7.8), so with a
store nothing is lost and nothing is doubled."""

import asyncio
import signal
import threading
import time

import pytest

import taskwheel
from taskwheel import TaskLost
from taskwheel.aio import Client as AsyncClient
from tw_cluster import wait_for, wait_workers

N = 3000


def submit_through_restart(cluster, b, c, sig):
    """Submit N tasks in group "rs" from a thread while the broker is
    stopped with ``sig`` and started again; return the handles."""
    handles = []
    started = threading.Event()

    def feed():
        for i in range(N):
            handles.append(c.submit("echo", i, group="rs"))
            if i == N // 3:
                started.set()
            if i % 50 == 0:
                time.sleep(0.005)  # keep submitting across the restart
        started.set()

    t = threading.Thread(target=feed)
    t.start()
    started.wait(30)
    b.proc.signal(sig)
    b.proc.p.wait(20)
    b.restart()
    t.join(60)
    assert not t.is_alive()
    return handles


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_restart_loses_and_doubles_nothing(cluster, sig):
    b = cluster.broker()
    cluster.worker(b, slots=8)
    with taskwheel.Client(b.frontend, timeout=10) as c:
        wait_workers(c, 1)
        hs = submit_through_restart(cluster, b, c, sig)
        assert c.wait(hs, 60), "tasks without an outcome: %s" % [
            h for h in hs if not h.done()][:5]
        values = [h.result() for h in hs]
        assert values == [[i] for i in range(N)]          # nothing lost
        ids = [h.id for h in hs]
        assert len(set(ids)) == N
        held = c.group("rs").ids()
        assert sorted(held) == sorted(ids)                 # nothing doubled
        st = c.stats
        assert st["relinks"] + st["reconnects"] >= 1
        assert st["unknown"] == 0 and st["outstanding"] == 0


def test_restart_without_store_reports_lost(cluster):
    b = cluster.broker(data=False)
    cluster.worker(b, slots=2)
    with taskwheel.Client(b.frontend, timeout=10) as c:
        wait_workers(c, 1)
        h = c.submit("sleep", 30)
        wait_for(lambda: h.refresh() == "running", 10, "the task to run")
        b.proc.signal(signal.SIGKILL)
        b.proc.p.wait(10)
        b.restart()
        exc = h.exception(30)
        assert isinstance(exc, TaskLost)
        assert "no record" in exc.error
        assert c.stats["unknown"] == 1
        wait_workers(c, 1)
        assert c.submit("echo", 1).result(20) == [1]


def test_async_client_through_restart(cluster):
    b = cluster.broker()
    cluster.worker(b, slots=8)

    async def main():
        async with AsyncClient(b.frontend,
                               timeout=10) as c:
            await asyncio.sleep(0)
            hs = []
            for i in range(600):
                hs.append(c.submit("echo", i, group="ars"))
                if i == 200:
                    b.proc.signal(signal.SIGKILL)
                    b.proc.p.wait(10)
                    b.restart()
                if i % 20 == 0:
                    await asyncio.sleep(0.01)
            assert await c.wait(hs, 60)
            assert [h.result_bytes is not None for h in hs] == [True] * 600
            assert [await h for h in hs] == [[i] for i in range(600)]
            assert sorted(await c.group("ars").ids()) == \
                sorted(h.id for h in hs)
            assert c.stats["relinks"] + c.stats["reconnects"] >= 1

    with taskwheel.Client(b.frontend) as sync:
        wait_workers(sync, 1)
    asyncio.run(asyncio.wait_for(main(), 90))
