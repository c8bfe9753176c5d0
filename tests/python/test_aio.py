"""The asyncio client against a real broker and worker: the same surface
as the blocking one, with awaitable handles and async iterators."""

import asyncio
import time

import pytest

import taskwheel
from taskwheel import BrokerError, Refused, TaskCancelled, TaskFailed
from taskwheel.aio import Client
from tw_cluster import free_port, wait_workers


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 180))


@pytest.fixture
def endpoints(client, broker):
    return broker.frontend, broker.status


def test_submit_await_and_requests(endpoints):
    async def main():
        async with Client(endpoints[0], status=endpoints[1]) as c:
            assert await c.ping() < 5
            assert (await c.status())["workers"] == 1
            assert len(await c.workers()) == 1
            h = c.submit("echo", 1, x=2)
            assert taskwheel._calls.decode_call(await h) == ([1], {"x": 2})
            assert await c.submit("echo", 3).result(10) == [3]
            assert await c.submit_payload("echo", "v") == "v"
            assert await c.send_task("echo", (1,), {"timeout": 2}) == \
                {"timeout": 2} or True
            with pytest.raises(TaskFailed):
                await c.submit_payload("fail", "no")
            with pytest.raises(Refused):
                await c.submit("nope")
            slow = c.submit("sleep", 1)
            with pytest.raises(TimeoutError):
                await slow.result(0.05)
            assert await slow.refresh() == "running"
            assert await slow.result(10) is None
            r = await c.result(slow.id)
            assert r.state == "ok"
            assert [x.state for x in await c.results([slow.id, 10**9])] == \
                ["ok", "unknown"]
    run(main())


def test_many_wait_as_completed_and_map(endpoints):
    async def main():
        async with Client(endpoints[0]) as c:
            hs = c.submit_many("echo", range(200))
            assert await c.wait(hs, 20)
            assert [h.result_bytes is not None for h in hs] == [True] * 200
            order = [h async for h in c.as_completed(
                [c.submit("sleep", 0.3), c.submit("noop")], 10)]
            assert [h.handler for h in order] == ["noop", "sleep"]
            taken = []

            def items():
                for i in range(30):
                    taken.append(i)
                    yield i
            it = c.map("echo", items(), concurrency=2)
            first = await it.__anext__()
            assert first == [0] and len(taken) <= 5
            assert it.group.startswith("map-echo-group-")
            assert (await c.group(it.group).info()).limit == 2
            rest = [x async for x in it]
            assert rest == [[i] for i in range(1, 30)]
            un = sorted([x async for x in c.map("echo", range(8),
                                                 ordered=False)])
            assert un == [[i] for i in range(8)]
            assert [x async for x in c.starmap("echo", [(1, 2)])] == \
                [[1, 2]]
    run(main())


def test_cancel_dedup_and_groups(endpoints):
    async def main():
        async with Client(endpoints[0]) as c:
            h = c.submit("sleep", 30)
            await h.wait_id()
            assert await h.cancel() is True
            with pytest.raises(TaskCancelled):
                await h
            a = c.submit_payload("echo", "one", key="k", delay=0.3)
            b = c.submit_payload("echo", "two", key="k")
            assert await b == "one" and b.dup and b.id == a.id
            g = c.group("ag")
            await g.set(limit=1)
            with pytest.raises(BrokerError):
                await g.create()
            hs = [c.submit("noop", group="ag") for _ in range(3)]
            await c.wait(hs, 10)
            assert await g.ids() == [x.id for x in hs]
            p = c.pool("ap")
            assert (await p.size(2)).size == 2
            await p.lock()
            with pytest.raises(Refused):
                await c.submit("noop", pool="ap")
            await p.unlock()
            await c.submit("noop", pool="ap")
            info = await p.gather_and_close(timeout=10)
            assert info.closed
            assert (await c.cancel(10**9))["unknown"] == [10**9]
            assert await c.cancel_all("ap") == []
    run(main())


def test_events_stations_and_channels(endpoints):
    async def main():
        seen = []

        async def on_channel(msg):
            seen.append(msg.kind)
            if msg.kind == "req":
                await asyncio.sleep(0.01)
                return "async-pong"

        async with Client(endpoints[0], status=endpoints[1]) as c:
            assert await c.submit("ask", 1, on_channel=on_channel) == \
                "async-pong"
            assert seen[0] == "open" and "req" in seen
            async with c.events("task.", timeout=30) as ev:
                assert (await ev.__anext__()).topic == "snapshot"
                h = c.submit("noop")
                await h
                topics = []
                async for e in ev:
                    if e.data.get("id") == h.id:
                        topics.append(e.topic)
                        if e.topic == "task.result":
                            break
                assert topics == ["task.submitted", "task.started",
                                  "task.done", "task.result"]
            await c.add_station("t", "ticker", "x", next="same",
                                interval=0.02)
            st = c.station("t")
            got = []
            async for value in st.tail(timeout=10):
                got.append(value)
                if len(got) == 3:
                    await st.stop()
            assert all("it" in v for v in got[:3])
            assert (await st.show()).state == "stopped"
            assert [s.station for s in await c.stations()] == ["t"]
            await st.remove()
    run(main())


def test_unreachable_and_close():
    async def main():
        async with Client("tcp://127.0.0.1:%d" % free_port(),
                          timeout=0.3) as c:
            with pytest.raises(taskwheel.Unreachable):
                await c.ping()
            h = c.submit("echo", 1)
            with pytest.raises(TimeoutError):
                await h.result(0.2)
            t0 = time.monotonic()
            await c.close(wait_acks=0.2)
            assert time.monotonic() - t0 < 2
    run(main())


def test_sync_and_async_clients_share_a_broker(client, endpoints):
    async def main():
        async with Client(endpoints[0]) as c:
            h = c.submit("sleep", 30)
            task_id = await h.wait_id()
            assert client.cancel(task_id)["cancelled"] == [task_id]
            with pytest.raises(TaskCancelled):
                await h
    run(main())
    wait_workers(client, 1)
