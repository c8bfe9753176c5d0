"""tests/browser/test_api.py - every route of the HTTP API, and its refusals.

Runs against any backend that implements docs/openapi.yaml
(tests/browser/backends.py) and reads what to expect from the API
itself. Checks:

  - every read route answers 200 with a body that fits openapi.yaml;
  - unknown ids are 404, bad filters and an oversized page 400, wrong
    methods 405 with the right Allow, a body that is not JSON 400 or 415,
    one too big 413, a foreign Origin or Host 403 - and none of these
    changes anything (the records they name are read before and after);
  - the token rules, on a second server started with a token: loopback
    reads need none, every action does (401 with WWW-Authenticate);
  - paging: walking a list two at a time gives the one-page list, in the
    same order, without repeats; a cursor sent with other filters is 400;
  - the actions: retry, cancel, bulk retry and purge, station and worker
    controls, each answering as documented and refusing a second time
    with 409 where the state no longer allows it;
  - the event stream: hello first, events with ids, resuming with
    Last-Event-ID, resync for an id it cannot resume from, and 400 for
    too many topics.

Usage: test_api.py --fixture | --url URL [--token-url URL --token T]
Prints one line per check and "N passed, N failed".
"""

import argparse
import http.client
import json
import os
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import openapi  # noqa: E402
from backends import BrokerBackend, Checks, FixtureBackend, UrlBackend  # noqa: E402

FAILED = ("error", "timeout", "lost")


class Events:
    """One /api/v1/events connection, read event by event."""

    def __init__(self, base, topics=None, last_id=None, token=None):
        u = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port,
                                               timeout=10)
        path = "/api/v1/events"
        if topics is not None:
            path += "?topics=" + urllib.parse.quote(topics, safe=",")
        headers = {"Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        if token:
            headers["Authorization"] = "Bearer " + token
        self.conn.request("GET", path, headers=headers)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status

    def next(self, deadline=10.0):
        """The next event as (type, id, data); comments are skipped."""
        end = time.time() + deadline
        etype, eid, data = "message", None, []
        while time.time() < end:
            line = self.resp.readline()
            if not line:
                raise AssertionError("the stream ended")
            line = line.decode().rstrip("\r\n")
            if line == "":
                if data:
                    return etype, eid, json.loads("\n".join(data))
                etype, eid, data = "message", None, []
                continue
            if line.startswith(":"):
                continue
            field, _, val = line.partition(":")
            val = val[1:] if val.startswith(" ") else val
            if field == "event":
                etype = val
            elif field == "id":
                eid = val
            elif field == "data":
                data.append(val)
        raise AssertionError("no event within %.0f s" % deadline)

    def close(self):
        self.conn.close()


class Run(Checks):
    def __init__(self, backend, token_backend):
        super().__init__()
        self.be, self.tb = backend, token_backend
        self.api = backend.api
        self.spec = openapi.Spec(os.path.join(ROOT, "docs", "openapi.yaml"))

    # ----------------------------------------------------------- helpers
    def fits(self, method, path, status, body):
        probs = self.spec.check_response(method, urllib.parse.urlsplit(
            path).path, status, body)
        assert not probs, "%s %s: %s" % (method, path, probs[:3])

    def refused(self, method, path, status, code, body=None, headers=None,
                raw=None, api=None, token=True, mention=None):
        api = api or self.api
        got, hdrs, doc = api.call(method, path, body, headers=headers,
                                  raw=raw, token=token)
        assert got == status, "%s %s: %d, not %d: %s" % (
            method, path, got, status, doc)
        assert isinstance(doc, dict) and doc.get("error", {}).get(
            "code") == code, "%s %s: %s, not %s" % (method, path, doc, code)
        assert doc["error"]["status"] == status
        self.fits(method, path, status, doc)
        if mention:
            assert mention in doc["error"]["message"], \
                "%s %s: '%s' does not mention '%s'" % (
                    method, path, doc["error"]["message"], mention)
        return hdrs

    def a_failed(self):
        t = self.api.get("/api/v1/tasks?state=failed&limit=1")["tasks"]
        assert t, "the server has no failed task"
        return t[0]

    def record(self, tid):
        return self.api.get("/api/v1/tasks/%d" % tid)["task"]

    def unchanged(self, tid, before):
        after = self.record(tid)
        assert after == before, "task %d changed: %s -> %s" % (
            tid, before, after)

    # ------------------------------------------------------------ checks
    def reads(self):
        paths = ["/api/v1", "/api/v1/snapshot", "/api/v1/status",
                 "/api/v1/workers", "/api/v1/stations",
                 "/api/v1/stations?state=running&limit=5", "/api/v1/pools",
                 "/api/v1/groups", "/api/v1/groups?at_limit=1",
                 "/api/v1/queues", "/api/v1/tasks",
                 "/api/v1/tasks?state=failed&limit=3",
                 "/api/v1/tasks?since=2h&q=e"]
        ws = self.api.get("/api/v1/workers")["workers"]
        if ws:
            paths.append("/api/v1/workers/%d" % ws[0]["id"])
        st = self.api.get("/api/v1/stations")["stations"]
        if st:
            paths.append("/api/v1/stations/" +
                         urllib.parse.quote(st[0]["station"], safe=""))
        paths.append("/api/v1/tasks/%d" % self.a_failed()["id"])
        for p in paths:
            status, _, body = self.api.call("GET", p)
            assert status == 200, "GET %s: %d %s" % (p, status, body)
            self.fits("GET", p, status, body)
        index = self.api.get("/api/v1")
        assert sorted(index["endpoints"]) == sorted(
            self.spec.doc["paths"]), "GET /api/v1 lists %s" % (
                index["endpoints"],)
        status, _, _ = self.api.call("HEAD", "/api/v1/status")
        assert status == 200

    def unknown_ids(self):
        t = self.a_failed()
        before = self.record(t["id"])
        self.refused("GET", "/api/v1/tasks/999999999", 404, "ENOENT")
        self.refused("POST", "/api/v1/tasks/999999999/retry", 404, "ENOENT",
                     {})
        self.refused("POST", "/api/v1/tasks/999999999/cancel", 404, "ENOENT",
                     {})
        self.refused("GET", "/api/v1/stations/no-such-station", 404,
                     "ENOENT")
        self.refused("POST", "/api/v1/stations/no-such-station/pause", 404,
                     "ENOENT", {})
        self.refused("GET", "/api/v1/workers/999999", 404, "ENOENT")
        self.refused("POST", "/api/v1/workers/999999/drain", 404, "ENOENT",
                     {})
        self.refused("GET", "/api/v1/nothing-here", 404, "ENOENT")
        self.refused("GET", "/api/v1/groups?pool=no-such-pool", 404,
                     "ENOENT")
        self.unchanged(t["id"], before)

    def bad_requests(self):
        t = self.a_failed()
        before = self.record(t["id"])
        tid = t["id"]
        for q, what in [("state=bogus", "state"), ("since=1w", "since"),
                        ("since=0", "since"), ("limit=5000", "limit"),
                        ("limit=0", "limit"), ("limit=ten", "limit"),
                        ("bogus=1", "bogus"), ("cursor=garbage", "cursor"),
                        ("q=", "q"), ("handler=" + "h" * 129, "handler")]:
            self.refused("GET", "/api/v1/tasks?" + q, 400, "EINVAL",
                         mention=what)
        self.refused("GET", "/api/v1/tasks/abc", 400, "EINVAL")
        self.refused("GET", "/api/v1/stations?state=bogus", 400, "EINVAL")
        self.refused("GET", "/api/v1/status?x=1", 400, "EINVAL")
        # Bodies: not JSON, not an object, too big, bad fields.
        self.refused("POST", "/api/v1/tasks/%d/retry" % tid, 400, "EINVAL",
                     raw=b"{nope", headers={"Content-Type":
                                            "application/json"})
        self.refused("POST", "/api/v1/tasks/retry", 400, "EINVAL",
                     raw=b"[1,2]", headers={"Content-Type":
                                            "application/json"})
        self.refused("POST", "/api/v1/tasks/retry", 413, "E2BIG",
                     raw=b'{"ids":[' + b"1," * 40000 + b"1]}",
                     headers={"Content-Type": "application/json"})
        self.refused("POST", "/api/v1/tasks/retry", 400, "EINVAL", {},
                     mention="state")
        self.refused("POST", "/api/v1/tasks/purge", 400, "EINVAL",
                     {"ids": []})
        self.refused("POST", "/api/v1/tasks/purge", 400, "EINVAL",
                     {"ids": [tid], "state": "failed"})
        self.refused("POST", "/api/v1/tasks/retry", 400, "EINVAL",
                     {"state": "ok"})
        ws = self.api.get("/api/v1/workers")["workers"]
        if ws:
            self.refused("POST", "/api/v1/workers/%d/resize" % ws[0]["id"],
                         400, "EINVAL", {"slots": 0})
        self.unchanged(tid, before)

    def methods(self):
        t = self.a_failed()
        before = self.record(t["id"])
        h = self.refused("GET", "/api/v1/tasks/%d/retry" % t["id"], 405,
                         "EMETHOD")
        assert h.get("Allow") == "POST", h
        h = self.refused("GET", "/api/v1/tasks/%d/cancel" % t["id"], 405,
                         "EMETHOD")
        assert h.get("Allow") == "POST", h
        h = self.refused("GET", "/api/v1/tasks/retry", 405, "EMETHOD")
        assert h.get("Allow") == "POST", h
        h = self.refused("POST", "/api/v1/tasks/%d" % t["id"], 405,
                         "EMETHOD", {})
        assert "GET" in h.get("Allow", ""), h
        h = self.refused("POST", "/api/v1/status", 405, "EMETHOD", {})
        assert "GET" in h.get("Allow", ""), h
        self.unchanged(t["id"], before)

    def browser_rules(self):
        t = self.a_failed()
        before = self.record(t["id"])
        path = "/api/v1/tasks/%d/retry" % t["id"]
        self.refused("POST", path, 415, "EMEDIA", raw=b"{}")
        self.refused("POST", path, 415, "EMEDIA", raw=b"{}",
                     headers={"Content-Type": "text/plain"})
        self.refused("POST", path, 403, "EPERM", {},
                     headers={"Origin": "http://evil.example"})
        self.refused("GET", "/api/v1/tasks", 403, "EPERM",
                     headers={"Host": "evil.example:80"})
        self.refused("POST", path, 403, "EPERM", {},
                     headers={"Host": "evil.example:80"})
        self.unchanged(t["id"], before)
        # The server's own origin is fine.
        u = urllib.parse.urlsplit(self.be.url)
        status, _, _ = self.api.call("GET", "/api/v1/status", headers={
            "Origin": "http://%s" % u.netloc})
        assert status == 200

    def token_rules(self):
        if not self.tb:
            print("     (no server with a token: token rules not tried)")
            return
        api = self.tb.api
        t = api.get("/api/v1/tasks?state=failed&limit=1")["tasks"][0]
        path = "/api/v1/tasks/%d/retry" % t["id"]
        before = api.get("/api/v1/tasks/%d" % t["id"])["task"]
        # Loopback reads need no token; actions always do.
        status, _, _ = api.call("GET", "/api/v1/tasks", token=False)
        assert status == 200
        h = self.refused("POST", path, 401, "EAUTH", {}, api=api,
                         token=False)
        assert h.get("WWW-Authenticate", "").startswith("Bearer"), h
        self.refused("POST", path, 401, "EAUTH", {}, api=api, token=False,
                     headers={"Authorization": "Bearer wrong-token"})
        self.refused("GET", "/api/v1/tasks", 403, "EPERM", api=api,
                     token=False, headers={"Host": "evil.example"})
        after = api.get("/api/v1/tasks/%d" % t["id"])["task"]
        assert after == before, "a refused action changed the task"
        # With the token: the action and a foreign Host are fine.
        status, _, doc = api.call("GET", "/api/v1/status", headers={
            "Host": "broker.example"})
        assert status == 200, doc
        status, _, doc = api.call("POST", path, {})
        assert status == 200, doc
        assert doc["task"]["state"] == "pending", doc

    def paging(self):
        whole = self.api.get("/api/v1/tasks?limit=1000")
        assert whole["next"] is None, "more than 1000 tasks: page it"
        ids = [t["id"] for t in whole["tasks"]]
        walked, cursor, pages = [], None, 0
        while True:
            p = "/api/v1/tasks?limit=2" + (
                "&cursor=" + urllib.parse.quote(cursor) if cursor else "")
            page = self.api.get(p)
            self.fits("GET", p, 200, page)
            walked += [t["id"] for t in page["tasks"]]
            pages += 1
            cursor = page["next"]
            if not cursor:
                break
            assert pages < 1000
        assert walked == ids, "paging gave %s, one page %s" % (walked, ids)
        assert len(set(walked)) == len(walked)
        first = self.api.get("/api/v1/tasks?state=failed&limit=1")
        assert first["next"], "fewer than two failed tasks"
        self.refused("GET", "/api/v1/tasks?state=error&limit=1&cursor=" +
                     urllib.parse.quote(first["next"]), 400, "EINVAL",
                     mention="cursor")
        # Changing only the page size is fine.
        p = "/api/v1/tasks?state=failed&limit=5&cursor=" + \
            urllib.parse.quote(first["next"])
        assert self.api.get(p)["tasks"][0]["id"] != first["tasks"][0]["id"]

    def actions(self):
        api = self.api
        t = self.a_failed()
        doc = api.post("/api/v1/tasks/%d/retry" % t["id"])
        self.fits("POST", "/api/v1/tasks/%d/retry" % t["id"], 200, doc)
        assert doc["task"]["id"] == t["id"]
        assert doc["task"]["state"] in ("pending", "running", "ok"), doc
        rec = self.record(t["id"])
        assert rec["retried"] >= 1 and rec["state"] not in FAILED, rec
        if rec["state"] in ("pending", "running"):
            self.refused("POST", "/api/v1/tasks/%d/retry" % t["id"], 409,
                         "ESTATE", {})
        live = [x for x in api.get("/api/v1/tasks?limit=1000")["tasks"]
                if x["state"] in ("pending", "running")]
        if live:
            x = live[-1]
            doc = api.post("/api/v1/tasks/%d/cancel" % x["id"])
            self.fits("POST", "/api/v1/tasks/%d/cancel" % x["id"], 200, doc)
        ok = api.get("/api/v1/tasks?state=ok&limit=1")["tasks"]
        if ok:
            self.refused("POST", "/api/v1/tasks/%d/cancel" % ok[0]["id"],
                         409, "ESTATE", {})
            self.refused("POST", "/api/v1/tasks/%d/retry" % ok[0]["id"],
                         409, "ESTATE", {})
        # Bulk: retry one failed task by filter, then purge an ok one.
        f = self.a_failed()
        doc = api.post("/api/v1/tasks/retry", {"state": "failed",
                                               "handler": f["handler"],
                                               "limit": 1})
        self.fits("POST", "/api/v1/tasks/retry", 200, doc)
        assert doc["done"] == [f["id"]], doc
        if ok:
            doc = api.post("/api/v1/tasks/purge", {"ids": [ok[0]["id"]]})
            self.fits("POST", "/api/v1/tasks/purge", 200, doc)
            assert doc["done"] == [ok[0]["id"]], doc
            self.refused("GET", "/api/v1/tasks/%d" % ok[0]["id"], 404,
                         "ENOENT")
            doc = api.post("/api/v1/tasks/purge", {"ids": [ok[0]["id"]]})
            assert doc["done"] == [] and doc["refused"][0]["id"] == \
                ok[0]["id"], doc
        # Stations and workers.
        st = api.get("/api/v1/stations?state=running&limit=1")["stations"]
        if st:
            sid = urllib.parse.quote(st[0]["station"], safe="")
            doc = api.post("/api/v1/stations/%s/pause" % sid)
            self.fits("POST", "/api/v1/stations/%s/pause" % sid, 200, doc)
            assert doc["station"]["station"] == st[0]["station"], doc
            doc = api.post("/api/v1/stations/%s/continue" % sid)
            assert doc["station"].get("wanted") in (None, "run"), doc
        ws = api.get("/api/v1/workers")["workers"]
        if ws:
            w = ws[-1]
            doc = api.post("/api/v1/workers/%d/resize" % w["id"],
                           {"slots": w["slots"] + 1})
            self.fits("POST", "/api/v1/workers/%d/resize" % w["id"], 200,
                      doc)
            assert doc["workers"][0]["id"] == w["id"], doc

    def events(self):
        base = self.be.url
        ev = Events(base, topics="stats")
        assert ev.status == 200
        assert ev.resp.getheader("Content-Type", "").startswith(
            "text/event-stream")
        etype, eid, hello = ev.next()
        assert etype == "hello" and hello["resumed"] is False, hello
        self.spec.validate(hello, {"$ref": "#/components/schemas/Hello"}, "")
        etype, eid, stats = ev.next(5)
        assert etype == "message" and stats["topic"] == "stats", stats
        assert eid == "%s-%d" % (hello["boot"], stats["pseq"]), (eid, stats)
        assert not self.spec.check_schema("Event", stats)
        ev.close()
        # Resume from that id: hello says resumed, and what came since is
        # replayed in order.
        time.sleep(1.5)
        ev = Events(base, topics="stats", last_id=eid)
        etype, _, hello2 = ev.next()
        assert etype == "hello" and hello2["resumed"] is True, hello2
        etype, eid2, nxt = ev.next(5)
        assert etype == "message" and nxt["pseq"] > stats["pseq"], nxt
        assert nxt["tseq"] == stats["tseq"] + 1, (stats, nxt)
        ev.close()
        # An id it cannot resume from: hello, then resync.
        ev = Events(base, topics="stats",
                    last_id="0000000000000001-5")
        etype, _, hello3 = ev.next()
        assert hello3["resumed"] is False
        etype, _, why = ev.next()
        assert etype == "resync" and why["reason"], (etype, why)
        ev.close()
        ev = Events(base, topics=",".join(["a"] * 33))
        assert ev.status == 400, ev.status
        ev.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--fixture", action="store_true")
    g.add_argument("--broker", action="store_true")
    g.add_argument("--url")
    ap.add_argument("--token-url", help="a second server, with a token")
    ap.add_argument("--token", help="that server's token")
    a = ap.parse_args()
    if a.fixture:
        be = FixtureBackend()
        tb = FixtureBackend("fixture-token-0123456789abcdef0123")
    elif a.broker:
        be = BrokerBackend()
        tb = BrokerBackend("broker-token-0123456789abcdef0123456")
    else:
        be = UrlBackend(a.url)
        tb = UrlBackend(a.token_url, a.token) if a.token_url else None
    try:
        r = Run(be, tb)
        r.check("every read route fits openapi.yaml", r.reads)
        r.check("unknown ids: 404, nothing changed", r.unknown_ids)
        r.check("bad filters, pages and bodies: 4xx, nothing changed",
                r.bad_requests)
        r.check("wrong methods: 405 with Allow", r.methods)
        r.check("Content-Type, Origin, Host", r.browser_rules)
        r.check("token rules", r.token_rules)
        r.check("paging with cursors", r.paging)
        r.check("actions", r.actions)
        r.check("event stream: hello, ids, resume, resync", r.events)
        probs = be.problems() + (tb.problems() if tb else [])
        r.check("every answer fit openapi.yaml",
                lambda: (_ for _ in ()).throw(AssertionError(probs[:5]))
                if probs else None)
    finally:
        be.close()
        if tb:
            tb.close()
    return r.summary()


if __name__ == "__main__":
    sys.exit(main())
