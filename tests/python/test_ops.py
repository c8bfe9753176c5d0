"""The Python package's operation names against the codec's table.

The "op" of STATION, GROUP, POOL, WORKER and a strict CANCEL, and QUERY's
"what", are listed once for C in proto/ops.h (TW_PROTO_OPS) and once for
Python in taskwheel._wire.OPS. These tests read the C table and compare:
every client-to-broker operation of each command the package speaks is
in OPS, and OPS names nothing else; every operation name the package
spells (op_station("add", ...), self._op("show"), ...) is one of OPS, so
a typo fails here instead of at the broker. Pure: no processes.
"""

import os
import re

from taskwheel import _wire as w

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
ROW = re.compile(r"XX\((\w+), (\w+), ([\w-]+), ([^,]+),")


def _c_table():
    """{command name: {op name, ...}} of the rows that travel C2B."""
    with open(os.path.join(ROOT, "proto", "ops.h")) as f:
        text = f.read()
    table = {}
    for cmd, _upper, name, dirs in ROW.findall(text):
        if "TW_C2B" in dirs:
            table.setdefault(cmd, set()).add(name)
    return table


def test_c_table_is_read():
    table = _c_table()
    assert {"STATION", "GROUP", "POOL", "WORKER", "CANCEL", "QUERY"} <= set(
        table)
    assert "rebalance" in table["STATION"]
    assert "default_limit" in table["POOL"]
    # Directions are honoured: a worker's "resized" is not a client's.
    assert "resized" not in table["WORKER"]


def test_ops_match_the_codec_table():
    table = _c_table()
    for cmd, ops in w.OPS.items():
        name = w.COMMAND_NAMES[cmd]
        assert set(ops) == table[name], name
        assert len(set(ops)) == len(ops), name
    # Every command with operations that the package has an id for is in
    # OPS (TASK, task records, is not spoken by the package).
    spoken = {w.COMMAND_NAMES[c] for c in w.OPS}
    known = set(w.COMMAND_NAMES.values())
    assert set(table) & known == spoken


SPELLED = re.compile(
    r"\bop_(station|group|pool|worker|query|schedule)\(\s*\"([a-z_-]+)\"|"
    r"\b_op\(\s*\"([a-z_]+)\"")


def test_every_spelled_op_is_in_the_table():
    cmds = {"station": w.STATION, "group": w.GROUP, "pool": w.POOL,
            "worker": w.WORKER, "query": w.QUERY,
            "schedule": w.SCHEDULE}
    pkg = os.path.join(ROOT, "python", "taskwheel")
    seen = 0
    for fname in sorted(os.listdir(pkg)):
        if not fname.endswith(".py"):
            continue
        with open(os.path.join(pkg, fname)) as f:
            text = f.read()
        for kind, op, station_op in SPELLED.findall(text):
            cmd = cmds[kind] if kind else w.STATION  # _op: Station._op
            name = op or station_op
            assert name in w.OPS[cmd], "%s: %s %r" % (fname, kind, name)
            seen += 1
    assert seen >= 30


def test_op_name_refuses_what_the_table_lacks():
    assert w.op_name(w.POOL, "stats") == "stats"
    for cmd, op in ((w.POOL, "statz"), (w.STATION, "resize"),
                    (w.WORKER, "resized"), (w.ERROR, "x")):
        try:
            w.op_name(cmd, op)
        except ValueError as e:
            assert repr(op) in str(e)
        else:
            raise AssertionError("op_name accepted %r" % op)
