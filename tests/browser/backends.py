"""tests/browser/backends.py - what the browser and API tests run against.

A backend is a server that implements docs/openapi.yaml, with a base URL,
an Api client for it, and, where it can, ways to make things happen
(a task that fails, a restart). The tests read what to expect from the
API itself, so they run unchanged against each backend:

  FixtureBackend   tests/browser/fixture.py, in this process
  UrlBackend       a server already running, given by its URL
"""

import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


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
