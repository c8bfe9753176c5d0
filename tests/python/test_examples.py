"""examples/python: the link checker runs as its README prints it, with
its own worker.conf, against a real broker."""

import os
import subprocess

from taskwheel import Client
from tw_cluster import PYDIR, PYTHON, ROOT, WORKER, wait_workers

EX = os.path.join(ROOT, "examples", "python")


def test_linkcheck_example(cluster, tmp_path):
    b = cluster.broker()
    env = dict(cluster.env, PYTHONPATH=os.pathsep.join([PYDIR, EX]),
               TASKWHEEL_BROKER=b.frontend)
    # worker.conf names "python3"; here it must be the interpreter that has
    # zmq and msgpack, so that one line is overridden on the command line.
    proc = "%s -m taskwheel.handler linkcheck_tasks" % PYTHON
    conf = open(os.path.join(EX, "worker.conf")).read().replace(
        "proc python3 -m taskwheel.handler linkcheck_tasks", "proc " + proc)
    assert "proc " + proc in conf
    (tmp_path / "worker.conf").write_text(conf)
    cluster.spawn([WORKER, "--config", str(tmp_path / "worker.conf"),
                   "--broker", b.backend], "worker-linkcheck.log", env=env)
    with Client(b.frontend) as c:
        wait_workers(c, 1, "linkcheck.page")
    r = subprocess.run([PYTHON, os.path.join(EX, "linkcheck.py"),
                        os.path.join(EX, "site")], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 1, r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("5 pages (1127 bytes) read in ")
    assert out[0].endswith("; 1 external links")
    readme = open(os.path.join(EX, "README.md")).read()
    for line in out[1:]:
        assert line in readme  # the README prints what it does
    assert "3 broken links:" in out
    broken = [ln.split()[0] for ln in out[out.index("3 broken links:") + 1:]]
    assert broken == ["docs/chapter2.html", "img/logo.png", "team.html"]
