"""tests/python/test_graph.py - chains and chords in one request from
Python (Client.chain, Client.chord; PROTOCOL.md 18.9), against a real
broker and worker with the built-in handlers.

Checked: a chain passes each result on as the next step's first
argument; a chord's callback gets the header's results in order, then its
own arguments; the handles' seqs go out in one SUBMIT (the ids are
consecutive); a step with an unknown handler refuses every step and the
broker's submitted count does not move; a failing step cancels the rest
("upstream failed"); a chain under a group cancels as one unit while held
by the group's limit 0; bad steps raise before anything is sent.
"""

import pytest

from taskwheel import InvalidArgument, Refused, TaskCancelled


def test_chain_passes_results(client):
    hs = client.chain(("echo", "a"), ("echo", "b"), ("incr",), "echo")
    ids = [h.wait_id(10) for h in hs]
    assert ids == list(range(ids[0], ids[0] + 4))
    assert hs[0].result(10) == ["a"]
    assert hs[1].result(10) == [["a"], "b"]
    # incr of [[["a"], "b"]] fails: a chain stops at a failure.
    with pytest.raises(Exception):
        hs[2].result(10)
    with pytest.raises(TaskCancelled) as e:
        hs[3].result(10)
    assert "upstream failed: task %d ended error" % ids[2] in str(e.value)
    nums = client.chain(("incr", 1), "incr", "incr", timeout=30)
    assert nums[-1].result(10) == 4


def test_chord_gets_all_results(client):
    hs = client.chord([("incr", 1), ("incr", 2), ("incr", 3)],
                      ("echo", "sum"), group="pychord")
    assert len(hs) == 4
    assert hs[3].result(10) == [2, 3, 4, "sum"]
    assert client.group("pychord").info().admitted == 4


def test_graph_all_or_nothing(client):
    before = client.status()["submitted"]
    hs = client.chain(("echo", 1), ("no-such-handler", 2), ("echo", 3))
    for h in hs:
        with pytest.raises(Refused) as e:
            h.result(10)
        assert e.value.name == "EHANDLER"
    assert "unknown handler 'no-such-handler'" in str(hs[1].exception())
    assert "not submitted: item seq %d" % hs[1].seq in \
        str(hs[0].exception())
    assert client.status()["submitted"] == before
    with pytest.raises(InvalidArgument):
        client.chain(("echo", 1), ("", 2))
    with pytest.raises(InvalidArgument):
        client.chain()
    with pytest.raises(InvalidArgument):
        client.chord([], "echo")
    with pytest.raises(InvalidArgument):
        client.chain("echo", "echo", with_results=True)
    assert client.status()["submitted"] == before


def test_cancel_graph_by_group(client):
    client.group_limit("pyjob", 0)
    hs = client.chain(("echo", 1), ("echo", 2), ("echo", 3), group="pyjob")
    assert hs[2].refresh() == "blocked"
    client.cancel_group("pyjob")
    for h in hs:
        with pytest.raises(TaskCancelled):
            h.result(10)
