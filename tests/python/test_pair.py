"""The Python client given the two brokers of a pair (proto/PROTOCOL.md
17.8), without sockets, as test_client_pair.c does for libtaskwheel: the
endpoint list and its refusals, a passive's refusal that names the active,
a failover with its vote, a deposed active's answer ignored, and a dropped
connection moving the client at once."""

import msgpack
import pytest

from taskwheel import _wire as w
from taskwheel._engine import CONNECT, LOST, Engine, Options, TaskRecord
from taskwheel._eplist import EndpointList
from taskwheel.errors import ENOTACTIVE

P = "tcp://10.0.0.1:7710"
B = "tcp://10.0.0.2:7710"


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def msg(cmd, body):
    return [w.header(cmd), msgpack.packb(body, use_bin_type=True)]


def sent(e):
    e.seal()
    out = []
    while e.out:
        out.append(w.decode(list(e.out.popleft())))
    return out


def engine(spec):
    clock = Clock()
    e = Engine(Options(heartbeat=1.0, liveness=3, reconnect_min=0.1,
                       reconnect_max=1.0), clock)
    e.eps = EndpointList(spec)
    return e, clock


def submit(e, n):
    recs = []
    for _ in range(n):
        r = TaskRecord(e.new_seq(), "noop")
        e.add_item(r, msgpack.packb({"seq": r.seq, "h": "noop"}))
        recs.append(r)
    return recs


def not_active(ha, active, live):
    return msg(w.ERROR, {"code": ENOTACTIVE, "msg": "not active", "ha": ha,
                         "active": active, "live": live})


def reconnect(e, clock):
    """The driver's part of a move: close, wait the backoff, reopen."""
    assert e.tick() == LOST
    e.lost()
    clock.t += 1.5
    assert e.tick() == CONNECT
    e.reconnected()


def test_endpoint_lists():
    ok = EndpointList(" %s ,\t%s" % (P, B))
    assert ok.endpoints == [P, B] and ok.current == P and len(ok) == 2
    assert EndpointList("ipc:///tmp/x").endpoints == ["ipc:///tmp/x"]
    for spec, why in [("", "endpoint 1 is empty"),
                      (P + ",", "endpoint 2 is empty"),
                      ("10.0.0.1:7710", "is not scheme://address"),
                      (P + "," + P, "given twice"),
                      ("tcp://" + "h" * 300, "longer than 255"),
                      (",".join("tcp://h%d" % i for i in range(9)),
                       "more than 8")]:
        with pytest.raises(ValueError, match=why):
            EndpointList(spec)
    one = EndpointList(P)
    one.lost()
    assert one.current == P and one.ping_body() == {}


def test_refusal_names_the_active():
    e, clock = engine(B + "," + P)
    recs = submit(e, 3)
    assert [c for c, _ in sent(e)] == [w.SUBMIT]
    e.on_message(not_active(3, P, 1))
    reconnect(e, clock)
    assert e.eps.current == P
    out = sent(e)
    # the ping first, with the epoch learnt and no vote; then the resends
    assert out[0] == (w.HEARTBEAT, {"ha": 3})
    assert [it["seq"] for it in out[1][1]["items"]] == [r.seq for r in recs]
    assert e.on_message(msg(w.ACK, {"ha": 3, "items": [
        {"seq": r.seq, "id": 10 + r.seq} for r in recs]}))
    assert [r.id for r in recs] == [11, 12, 13]
    assert e.stats["lost"] == 0


def test_failover_votes():
    e, clock = engine(P + "," + B)
    (a,) = submit(e, 1)
    sent(e)
    e.on_message(msg(w.ACK, {"ha": 3, "items": [{"seq": a.seq, "id": 1}]}))
    (b,) = submit(e, 1)
    # the active falls silent
    clock.t += 1.0
    e.tick()
    clock.t += 3.0
    reconnect(e, clock)
    assert e.eps.current == B
    out = sent(e)
    assert out[0] == (w.HEARTBEAT, {"ha": 3, "lost": 3})
    # not given up yet: the client asks the same broker again, voting
    e.on_message(not_active(3, P, 0))
    reconnect(e, clock)
    assert e.eps.current == B
    assert sent(e)[0] == (w.HEARTBEAT, {"ha": 3, "lost": 3})
    # taken over under epoch 4: served, the vote spent
    assert e.on_message(msg(w.HEARTBEAT, {"ha": 4}))
    assert e.eps.ping_body() == {"ha": 4}
    assert e.on_message(msg(w.ACK, {"ha": 4, "items": [{"seq": b.seq,
                                                         "id": 2}]}))
    assert b.id == 2


def test_deposed_active_ignored():
    e, clock = engine(P + "," + B)
    (a,) = submit(e, 1)
    sent(e)
    e.on_message(msg(w.ACK, {"ha": 5, "items": [{"seq": a.seq, "id": 1}]}))
    (b,) = submit(e, 1)
    sent(e)
    # an old epoch: not acted on, and the client leaves
    assert not e.on_message(msg(w.ACK, {"ha": 3, "items": [
        {"seq": b.seq, "id": 99}]}))
    assert b.id is None and b.seq in e.keep
    assert "epoch 3, below 5" in e.last_error
    reconnect(e, clock)
    assert e.eps.current == B
    out = sent(e)
    assert out[0] == (w.HEARTBEAT, {"ha": 5})
    assert [it["seq"] for it in out[1][1]["items"]] == [b.seq]


def test_dropped_connection_moves_at_once():
    e, clock = engine(P + "," + B)
    e.link_event("up", "connected")
    e.link_event("down", "the connection dropped")
    assert e.tick() == LOST
    e.lost()
    assert e.eps.current == B and e.stats["lost"] == 1
    # a single broker keeps resynchronising on the same socket instead
    one, _ = engine(P)
    one.link_event("up", "connected")
    one.link_event("down", "the connection dropped")
    assert one.tick() != LOST and one.stats["relinks"] == 1
