"""tests/browser/backends.py - what the browser and API tests run against.

A backend is a server that implements docs/openapi.yaml, with a base URL,
an Api client for it, and, where it can, ways to make things happen
(a task that fails, a restart). The tests read what to expect from the
API itself, so they run unchanged against each backend:

  FixtureBackend   tests/browser/fixture.py, in this process
  BrokerBackend    a real taskwheel-broker with --http and a worker,
                   started here (TW_BROKER_BIN, TW_WORKER_BIN, TW_CLI_BIN)
  UrlBackend       a server already running, given by its URL
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from webdriver import _free_port  # noqa: E402


class Checks:
    """Runs named checks, prints one line each, counts them."""

    def __init__(self):
        self.passed = self.failed = 0

    def on_failure(self):
        """Called after a check failed (a screenshot, for instance)."""

    def check(self, name, fn):
        t0 = time.time()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - a failed check, reported
            self.failed += 1
            print("FAIL %s (%.1f s): %s" % (name, time.time() - t0, e))
            if not isinstance(e, AssertionError):
                traceback.print_exc()
            self.on_failure()
        else:
            self.passed += 1
            print("ok   %s (%.1f s)" % (name, time.time() - t0))

    def summary(self):
        """Print the closing line; the exit status."""
        print("%d passed, %d failed" % (self.passed, self.failed))
        return 1 if self.failed else 0


class Api:
    """A small JSON client: answers are (status, headers, body)."""

    def __init__(self, base, token=None):
        self.base = base.rstrip("/")
        self.token = token

    def call(self, method, path, body=None, headers=None, raw=None,
             token=True):
        data = raw if raw is not None else (
            json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data,
                                     method=method)
        if body is not None and raw is None:
            req.add_header("Content-Type", "application/json")
        if token and self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read()
                return r.status, dict(r.headers), (json.loads(text)
                                                   if text else None)
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                doc = json.loads(text) if text else None
            except ValueError:
                doc = text
            return e.code, dict(e.headers), doc

    def get(self, path):
        status, _, body = self.call("GET", path)
        if status != 200:
            raise AssertionError("GET %s: %d %s" % (path, status, body))
        return body

    def post(self, path, body=None):
        status, _, doc = self.call("POST", path, body if body is not None
                                   else {})
        if status != 200:
            raise AssertionError("POST %s: %d %s" % (path, status, doc))
        return doc


class FixtureBackend:
    name = "fixture"
    can_inject = True

    def __init__(self, token=None):
        import fixture
        self.server = fixture.Server(0, token).start()
        self.url = "http://127.0.0.1:%d" % self.server.port
        self.api = Api(self.url, token)

    def make_failure(self):
        status, _, body = self.api.call("POST", "/_fixture/fail", {})
        assert status == 200, body
        return body["task"]

    def restart(self):
        status, _, body = self.api.call("POST", "/_fixture/restart", {})
        assert status == 200, body

    def problems(self):
        return list(self.server.problems)

    def close(self):
        self.server.stop()


class UrlBackend:
    name = "url"
    can_inject = False

    def __init__(self, url, token=None):
        self.url = url.rstrip("/")
        self.api = Api(self.url, token)

    def problems(self):
        return []

    def close(self):
        pass


class BrokerBackend:
    """taskwheel-broker --http on loopback with its own store, and one
    worker; failures are real tasks of the `fail` handler, a restart is
    the broker stopped and started again on the same ports and store."""

    name = "broker"
    can_inject = True

    def __init__(self, token=None):
        self.bins = {k: os.environ[k] for k in
                     ("TW_BROKER_BIN", "TW_WORKER_BIN", "TW_CLI_BIN")}
        self.dir = tempfile.mkdtemp(prefix="tw-browser-broker-")
        self.ports = [_free_port() for _ in range(4)]
        self.front = "tcp://127.0.0.1:%d" % self.ports[0]
        self.url = "http://127.0.0.1:%d" % self.ports[3]
        self.args = [self.bins["TW_BROKER_BIN"],
                     "--frontend", self.front,
                     "--backend", "tcp://127.0.0.1:%d" % self.ports[1],
                     "--status", "tcp://127.0.0.1:%d" % self.ports[2],
                     "--http", "127.0.0.1:%d" % self.ports[3],
                     "--data", os.path.join(self.dir, "data")]
        if token:
            path = os.path.join(self.dir, "token")
            with open(path, "w") as f:
                f.write(token + "\n")
            os.chmod(path, 0o600)
            self.args += ["--http-token-file", path]
        self.procs = []
        self.broker = self._spawn(self.args, "broker")
        self.api = Api(self.url, token)
        self._wait_http()
        self._spawn([self.bins["TW_WORKER_BIN"], "--broker",
                     "tcp://127.0.0.1:%d" % self.ports[1], "--slots", "2",
                     "--name", "alpha"], "worker")
        self._until(lambda: self.api.get("/api/v1/workers")["workers"],
                    "the worker to join")
        for _ in range(2):
            self.make_failure()
        self.cli("submit", "echo", '{"hello": "world"}', "--wait")
        self.cli("station", "add", "ticker-1", "ticker", '{"n": 1}',
                 "--interval", "1")

    def _spawn(self, argv, name):
        log = open(os.path.join(self.dir, name + ".log"), "a")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def _until(self, cond, what, timeout=30):
        deadline = time.time() + timeout
        while True:
            try:
                v = cond()
                if v:
                    return v
            except (OSError, AssertionError):
                pass
            if time.time() > deadline:
                raise AssertionError("waited %d s for %s" % (timeout, what))
            time.sleep(0.05)

    def _wait_http(self):
        self._until(lambda: self.api.call("GET", "/api/v1")[0] == 200,
                    "the broker's HTTP API")

    def cli(self, *args):
        out = subprocess.run([self.bins["TW_CLI_BIN"], "--broker",
                              self.front] + list(args),
                             capture_output=True, text=True, timeout=30)
        return out.stdout

    def make_failure(self):
        """A task that fails with a traceback, once it has failed."""
        tid = int(self.cli("submit", "exec",
                           '["sh", "-c", "echo Traceback >&2; echo '
                           '  line 1 >&2; echo ValueError: bad >&2; '
                           'exit 1"]').split()[0])
        self._until(lambda: self.api.get("/api/v1/tasks/%d" % tid)["task"]
                    ["state"] == "error", "task %d to fail" % tid)
        return {"id": tid}

    def restart(self):
        self.broker.send_signal(signal.SIGTERM)
        self.broker.wait(timeout=20)
        self.broker = self._spawn(self.args, "broker")
        self._wait_http()
        self._until(lambda: self.api.get("/api/v1/workers")["workers"],
                    "the worker to join the restarted broker")

    def problems(self):
        return []

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
