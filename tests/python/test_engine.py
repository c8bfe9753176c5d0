"""The client engine on its own: messages in, what it queues and decides
out (no sockets). The cases a live broker makes hard to provoke: a new
boot id, a repeated ACK, re-query answers, channel items before their
ACK, a BYE over a dropped link (PROTOCOL.md 5.19, 6.3, 7.8, 14)."""

import msgpack

from taskwheel import _wire as w
from taskwheel._engine import CONNECT, LOST, Engine, Options, TaskRecord


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def msg(cmd, body):
    return [w.header(cmd), msgpack.packb(body, use_bin_type=True)]


def sent(e):
    """The messages the engine queued, decoded, and forget them."""
    e.seal()
    out = []
    while e.out:
        cmd, body = w.decode(list(e.out.popleft()))
        out.append((cmd, body))
    return out


def submit(e, n):
    recs = []
    for _ in range(n):
        r = TaskRecord(e.new_seq(), "echo")
        e.add_item(r, msgpack.packb({"seq": r.seq, "h": "echo"}))
        recs.append(r)
    return recs


def submitted_seqs(msgs):
    seqs = []
    for cmd, body in msgs:
        if cmd == w.SUBMIT:
            seqs += [it["seq"] for it in body["items"]]
    return seqs


def test_ack_result_and_repeated_ack():
    e = Engine(Options(), Clock())
    a, b = submit(e, 2)
    assert submitted_seqs(sent(e)) == [a.seq, b.seq]
    ack = msg(w.ACK, {"items": [{"seq": a.seq, "id": 7},
                                {"seq": b.seq, "code": -4004,
                                 "err": "unknown handler"}]})
    assert e.on_message(ack)
    assert (a.id, a.state, b.state, b.code) == (7, "pending", "refused",
                                               -4004)
    assert e.on_message(ack)  # repeated: changes nothing
    assert a.state == "pending" and list(e.waiting) == [7]
    e.on_message(msg(w.RESULT, {"items": [{"id": 7, "seq": a.seq, "st": 0,
                                           "r": b"\x05", "w": 1,
                                           "at": 1}]}))
    assert a.state == "ok" and a.result_bytes == b"\x05"
    assert not e.pending and not e.waiting and not e.keep


def test_new_boot_id_resends_and_requeries():
    e = Engine(Options(), Clock())
    a, b = submit(e, 2)
    sent(e)
    e.on_message(msg(w.ACK, {"boot": 11, "items": [{"seq": a.seq,
                                                    "id": 3}]}))
    assert sent(e) == []
    # the same broker run: nothing to do
    e.on_message(msg(w.REPLY, {"seq": 0, "data": {}, "boot": 11}))
    assert sent(e) == []
    # another run answers: b (no ACK) is resent, a (no outcome) re-asked
    e.on_message(msg(w.HEARTBEAT, {"boot": 12}))
    out = sent(e)
    assert submitted_seqs(out) == [b.seq]
    queries = [body for cmd, body in out if cmd == w.RESULT]
    assert queries and queries[0]["ids"] == [3]
    assert e.stats["relinks"] == 1
    # the re-query says a ended ok with its seq: delivered
    e.on_message(msg(w.RESULT, {"seq": queries[0]["seq"], "items": [
        {"id": 3, "seq": a.seq, "st": 0, "w": 1, "at": 1}]}))
    assert a.state == "ok"


def test_requery_of_an_unknown_task_reports_lost():
    e = Engine(Options(), Clock())
    (a,) = submit(e, 1)
    sent(e)
    e.on_message(msg(w.ACK, {"items": [{"seq": a.seq, "id": 9}]}))
    e.resync()
    (q,) = [b for c, b in sent(e) if c == w.RESULT]
    # id 9 now names another task (another seq): it is not ours
    e.on_message(msg(w.RESULT, {"seq": q["seq"], "items": [
        {"id": 9, "seq": 999, "st": 0}]}))
    assert a.state == "lost" and "no record" in a.error
    assert e.stats["unknown"] == 1


def test_channel_items_wait_for_their_ack():
    e = Engine(Options(), Clock())
    got = []
    e.on_channel = lambda rec, it: got.append((rec, it["ev"]))
    (a,) = submit(e, 1)
    e.on_message(msg(w.CHAN, {"items": [{"id": 5, "ev": "open"},
                                         {"id": 5, "ev": "req", "cr": 1}]}))
    assert got == []  # held: no ACK names task 5 yet
    e.on_message(msg(w.ACK, {"items": [{"seq": a.seq, "id": 5}]}))
    assert got == [(a, "open"), (a, "req")]


def test_liveness_bye_and_dropped_link():
    clock = Clock()
    e = Engine(Options(heartbeat=1.0, liveness=3), clock)
    clock.t += 1.0
    assert e.tick() is None and sent(e)[0][0] == w.HEARTBEAT  # a ping
    clock.t += 3.0
    assert e.tick() == LOST
    e.lost()
    assert e.tick() is None  # the backoff first
    clock.t += 1.0
    assert e.tick() == CONNECT
    e.reconnected()
    assert e.stats["reconnects"] == 1
    # a BYE that came over a connection that then dropped is answered by
    # the resync on the same socket, not by a new socket
    e.link_event("up", "connected")
    e.on_message(msg(w.BYE, {}))
    e.link_event("down", "the connection dropped")
    assert not e.bye and e.tick() != LOST
    assert e.stats["relinks"] == 1


def test_malformed_messages_are_dropped():
    e = Engine(Options(), Clock())
    assert not e.on_message([b"TW\x02\x0b", b"\x80"])     # version 2
    assert not e.on_message([b"TW\x01\x0b"])              # one frame
    assert not e.on_message([b"TW\x01\x0b", b"\xc1"])     # not msgpack
    assert not e.on_message([b"TW\x01\x0b", b"\x91\x01"])  # not a map
    assert not e.on_message(msg(w.TASKS, {"items": []}))  # not for a client
    assert e.on_message(msg(w.ACK, {"items": [{"seq": 77, "id": 1}]}))


def test_item_encoder():
    """A SUBMIT item made from the shared part of a batch decodes to the
    map PROTOCOL.md 5.11 describes, whatever the options and arguments."""
    from taskwheel._calls import encode_call, item_encoder, task_fields
    fields = task_fields(timeout=2.5, retries=3, priority=-7, pool="p",
                         group=["g1", "g2"], delay=1, key="k")
    enc = item_encoder("py.noop", fields)
    a = encode_call((1, "x"), {"k": b"\x00"})
    big = encode_call(("y" * 70000,), None)
    assert w.unpack(enc(1, None)) == dict(fields, seq=1, h="py.noop")
    assert w.unpack(enc(2**40, a)) == dict(fields, seq=2**40, h="py.noop",
                                           a=a)
    assert w.unpack(enc(3, big))["a"] == big
    plain = item_encoder("h", {})
    assert w.unpack(plain(5, b"\x90")) == {"seq": 5, "h": "h", "a": b"\x90"}
    assert w.unpack(plain(6, None)) == {"seq": 6, "h": "h"}
