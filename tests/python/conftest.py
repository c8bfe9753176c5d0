"""tests/python/conftest.py - fixtures of the Python package's tests.

``cluster`` gives a test a :class:`tw_cluster.Cluster` whose processes are
stopped by pid when the test ends; a failed test gets the tail of every
process log printed. ``broker`` and ``client`` are one broker with one
4-slot worker and a blocking client connected to it, for the tests that
only need the built-in handlers.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)),
                                "python"))
sys.path.insert(0, HERE)

import taskwheel  # noqa: E402
from tw_cluster import Cluster, wait_workers  # noqa: E402


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def cluster(request, tmp_path):
    c = Cluster(str(tmp_path))
    yield c
    rep = getattr(request.node, "rep_call", None)
    failed = rep is not None and rep.failed
    c.close()
    if failed:
        sys.stderr.write("\n" + c.logs() + "\n")


@pytest.fixture
def broker(cluster):
    b = cluster.broker()
    cluster.worker(b, slots=4)
    return b


@pytest.fixture
def client(cluster, broker):
    c = taskwheel.Client(broker.frontend, status=broker.status)
    wait_workers(c, 1)
    yield c
    c.close(wait_acks=None)
