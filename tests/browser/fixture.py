"""tests/browser/fixture.py - a small stand-in for the broker's HTTP side.

Serves the dashboard's files from web/ and answers the API of
docs/openapi.yaml from a made-up cluster that changes over time: two
workers, three stations, a group at its limit, a few queues, ok and failed
tasks with tracebacks. It streams events as the broker does (hello,
per-topic tseq, a ring for Last-Event-ID, resync) and acts on retry,
cancel, station and worker requests. Every JSON answer is checked against
docs/openapi.yaml before it leaves; problems are kept in `problems` (and
answered by GET /_fixture/problems) so the tests fail on them.

It exists so that the dashboard and its browser tests can be written and
run before the broker serves the API; tests/browser/test_dashboard.py runs
the same checks against the fixture and against a real broker.

Control routes for tests (not part of the API):
  POST /_fixture/fail      a new failed task (publishes task.exception)
  POST /_fixture/restart   a new boot: drops every stream, renumbers
                           tseq, and a worker "gamma" joins
  GET  /_fixture/problems  answers that did not fit openapi.yaml

Usage: python3 fixture.py [--port N] [--token T]   (prints the port)
"""

import argparse
import http.server
import json
import os
import random
import re
import socketserver
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import openapi  # noqa: E402

STATION_STATES = ["pending", "waiting-for-host", "assigned", "running",
                  "paused", "stopped", "done", "failed", "cancelled"]
FAILED = ("error", "timeout", "lost")
ENDED = ("ok",) + FAILED + ("cancelled",)
TYPES = {".html": "text/html; charset=utf-8",
         ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8",
         ".svg": "image/svg+xml"}
RING = 2000
SCAN = 100000


def now_ms():
    return int(time.time() * 1000)


class HttpError(Exception):
    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


class Cluster:
    """The made-up broker state. Every method runs under `lock`."""

    def __init__(self):
        self.lock = threading.Condition()
        self.start = now_ms()
        self.csn = 0
        self.restarts = 0
        self.new_boot()
        self.workers = [
            dict(id=1, name="alpha", host="fixture-a", pid=101, slots=4,
                 running=2, credit=1, done=1200,
                 handlers=["resize", "fail", "gnss"], age_ms=120,
                 stations=1, state="ready"),
            dict(id=2, name="beta", host="fixture-b", pid=202, slots=8,
                 running=5, credit=3, done=4100,
                 handlers=["resize", "fail", "poll"], age_ms=340,
                 stations=1, state="ready"),
        ]
        self.stations = {}
        for sid, h, st, w, it, err in [
                ("gnss-1", "gnss", "running", 1, 5012, None),
                ("feed/poll", "poll", "paused", 2, 77, None),
                ("sensor-9", "poll", "failed", None, 3,
                 "IOError: device gone")]:
            self.stations[sid] = dict(
                station=sid, handler=h, state=st,
                wanted={"paused": "paused", "failed": "stopped"}.get(st,
                                                                     "run"),
                worker=w, slot=0 if w else None, iterations=it,
                last_error=err)
        self.group = dict(pool="default", group="db", running=2, pending=5,
                          limit=2)
        self.queues = [dict(handler="resize", ready=40, workers=2),
                       dict(handler="fail", ready=0, workers=2),
                       dict(handler="email", ready=3, workers=0)]
        self.tasks = {}
        self.next_id = 1
        t0 = now_ms() - 3600 * 1000
        for i in range(60):
            if i % 9 == 4:
                self.add_failed(t0 + i * 50000, i // 9)
            else:
                self.add_task("resize", [640 + i, 480], "ok",
                              t0 + i * 50000, result={"w": 320, "h": 240})
        self.add_task("resize", [1, 2], "running", now_ms() - 2000)
        self.add_task("email", {"to": "ops@example.org"}, "pending",
                      now_ms() - 1000)
        self.tick_n = 0

    def new_boot(self):
        self.boot = "%016x" % random.getrandbits(64)
        self.pseq = 0
        self.tseq = {}
        self.ring = []     # (pseq, topic, data)
        self.cont = 0      # the ring holds every event after this pseq

    # ------------------------------------------------------------ tasks
    def touch(self, t, ms=None):
        self.csn += 1
        t["_csn"] = self.csn
        t["changed_ms"] = ms or now_ms()

    def add_task(self, handler, args, state, at, result=None, error=None,
                 tb=None, attempts=1):
        tid = self.next_id
        self.next_id += 1
        t = dict(id=tid, handler=handler, state=state, pool="default",
                 groups=["db"] if handler == "resize" and tid % 2 else [],
                 priority=0, attempt=0, worker=0, submitted_ms=at,
                 started_ms=None, ended_ms=None, changed_ms=at, error=None,
                 timeout_ms=30000, retries=attempts - 1, key=None,
                 cancel_requested=False, retried=0, args=args,
                 args_bytes=len(json.dumps(args)), args_truncated=False,
                 result=None, result_bytes=0, result_truncated=False,
                 attempts=[])
        if state != "pending":
            for n in range(1, attempts + 1):
                last = n == attempts
                st = state if last else "error"
                a = dict(n=n, worker=1 + n % 2, started_ms=at + n * 400,
                         ended_ms=None if st == "running"
                         else at + n * 400 + 250,
                         state=st, error=None, traceback=None)
                if st in FAILED:
                    a["error"] = error
                    a["traceback"] = tb
                t["attempts"].append(a)
            t["attempt"] = attempts
            t["worker"] = t["attempts"][-1]["worker"]
            t["started_ms"] = t["attempts"][-1]["started_ms"]
            t["ended_ms"] = t["attempts"][-1]["ended_ms"]
            if state in FAILED:
                t["error"] = error
        if state == "ok":
            t["result"] = result
            t["result_bytes"] = len(json.dumps(result))
        self.tasks[tid] = t
        self.touch(t, t["ended_ms"] or t["started_ms"] or at)
        return t

    def add_failed(self, at, i):
        kind = ("error", "timeout", "lost")[i % 3]
        err = {"error": "ValueError: bad size %d" % i,
               "timeout": "timed out",
               "lost": "given up after 5 runs: the last worker was lost"}[kind]
        tb = None
        if kind == "error":
            tb = ("Traceback (most recent call last):\n"
                  '  File "handlers.py", line 12, in resize\n'
                  "    check(w, h)\n"
                  '  File "handlers.py", line 4, in check\n'
                  "    raise ValueError('bad size %d')\n"
                  "ValueError: bad size %d" % (i, i))
        return self.add_task("fail" if kind == "error" else "resize",
                             {"w": -i, "h": 0}, kind, at, error=err, tb=tb,
                             attempts=2 if kind == "error" else 1)

    def summary(self, t):
        keys = ["id", "handler", "state", "pool", "groups", "priority",
                "attempt", "worker", "submitted_ms", "started_ms",
                "ended_ms", "changed_ms", "error"]
        return {k: t[k] for k in keys}

    def record(self, t):
        return {k: v for k, v in t.items() if not k.startswith("_")}

    def task_body(self, t):
        b = dict(id=t["id"], pool=t["pool"], groups=t["groups"],
                 handler=t["handler"], state=t["state"], worker=t["worker"],
                 attempt=t["attempt"], priority=t["priority"])
        if t["error"] and t["state"] != "ok":
            b["error"] = t["error"]
        return b

    # ----------------------------------------------------------- events
    def publish(self, topic, body):
        self.pseq += 1
        n = self.tseq.get(topic, 0) + 1
        self.tseq[topic] = n
        data = dict(topic=topic, pseq=self.pseq, tseq=n)
        data.update(body)
        self.ring.append((self.pseq, topic, json.dumps(data)))
        if len(self.ring) > RING:
            drop = self.ring.pop(0)
            self.cont = drop[0]
        self.lock.notify_all()

    def status(self):
        running = sum(w["running"] for w in self.workers)
        failed = sum(1 for t in self.tasks.values() if t["state"] in FAILED)
        ok = sum(1 for t in self.tasks.values() if t["state"] == "ok")
        return dict(workers=len(self.workers),
                    slots=sum(w["slots"] for w in self.workers),
                    queued=sum(q["ready"] for q in self.queues),
                    running=running, kept=ok + failed, clients=1,
                    submitted=len(self.tasks), rejected=0,
                    completed=ok + 50000 + 180 * self.tick_n, failed=failed,
                    cancelled=0, uptime_ms=now_ms() - self.start,
                    rate=round(180 + 60 * ((self.tick_n % 20) / 10 - 1) ** 2,
                               2))

    def stations_by_state(self):
        out = {s: [] for s in STATION_STATES}
        for s in self.stations.values():
            out[s["state"]].append(s["station"])
        return out

    def tick(self):
        self.tick_n += 1
        for w in self.workers:
            w["done"] += 90 if w["state"] == "ready" else 0
            w["age_ms"] = random.randint(50, 900)
        self.queues[0]["ready"] = 20 + (self.tick_n * 7) % 60
        self.publish("stats", self.status())
        self.publish("tick.workers", {"workers": self.workers})
        self.publish("tick.queues", {"queues": self.queues,
                                     "groups": [self.group]})
        st = self.stations.get("gnss-1")
        if st and st["state"] == "running":
            st["iterations"] += 10
        self.progress()

    def progress(self):
        """Move retried tasks along: pending -> running -> ok."""
        t_now = now_ms()
        for t in self.tasks.values():
            due = t.get("_due")
            if not due or t_now < due:
                continue
            if t["state"] == "pending":
                t["state"] = "running"
                t["attempt"] += 1
                t["worker"] = 1
                t["started_ms"] = t_now
                t["attempts"].append(dict(
                    n=t["attempt"], worker=1, started_ms=t_now,
                    ended_ms=None, state="running", error=None,
                    traceback=None))
                self.touch(t)
                self.publish("task.started", self.task_body(t))
                t["_due"] = t_now + 600
            elif t["state"] == "running":
                t["state"] = "ok"
                t["ended_ms"] = t_now
                t["result"] = {"ok": True, "attempt": t["attempt"]}
                t["result_bytes"] = 24
                a = t["attempts"][-1]
                a["ended_ms"], a["state"] = t_now, "ok"
                t.pop("_due")
                self.touch(t)
                self.publish("task.done", self.task_body(t))
                self.publish("task.result", self.task_body(t))

    # ---------------------------------------------------------- actions
    def retry(self, tid):
        t = self.tasks.get(tid)
        if t is None:
            raise HttpError(404, "ENOENT", "no task %d" % tid)
        if t["state"] not in FAILED + ("cancelled",):
            raise HttpError(409, "ESTATE", "task %d is %s: only a failed or "
                            "cancelled task can be retried"
                            % (tid, t["state"]))
        t["state"] = "pending"
        t["ended_ms"] = None
        t["retried"] += 1
        t["_due"] = now_ms() + 400
        self.touch(t)
        self.publish("task.retry", dict(self.task_body(t), manual=True))
        return t

    def cancel(self, tid):
        t = self.tasks.get(tid)
        if t is None:
            raise HttpError(404, "ENOENT", "no task %d" % tid)
        if t["state"] not in ("pending", "running"):
            raise HttpError(409, "ESTATE", "task %d has ended (%s)"
                            % (tid, t["state"]))
        t["state"] = "cancelled"
        t["ended_ms"] = now_ms()
        t.pop("_due", None)
        if t["attempts"] and t["attempts"][-1]["state"] == "running":
            t["attempts"][-1].update(state="cancelled", ended_ms=now_ms())
        self.touch(t)
        self.publish("task.cancelled", self.task_body(t))
        return t

    def station_op(self, sid, op):
        s = self.stations.get(sid)
        if s is None:
            raise HttpError(404, "ENOENT", "no station '%s'" % sid)
        ended = s["state"] in ("stopped", "done", "failed", "cancelled")
        if op == "pause" and not ended:
            s["state"] = s["wanted"] = "paused"
        elif op == "continue":
            s["wanted"] = "run"
            s["state"] = "running"
            s["worker"], s["slot"] = 1, 0
        elif op in ("stop", "cancel") and not ended:
            s["wanted"] = "stopped"
            s["state"] = "stopped" if op == "stop" else "cancelled"
            s["worker"] = s["slot"] = None
        self.publish("station.%s.%s" % (sid, s["state"]),
                     dict(station=sid, state=s["state"],
                          worker=s["worker"] or 0, slot=s["slot"] or 0,
                          epoch=1, iterations=s["iterations"]))
        reply = dict(station=sid, state=s["state"], wanted=s["wanted"])
        if s["worker"]:
            reply.update(worker=s["worker"], slot=s["slot"])
        return reply

    def worker(self, wid):
        for w in self.workers:
            if w["id"] == wid:
                return w
        raise HttpError(404, "ENOENT", "no worker %d" % wid)

    def worker_event(self, topic, w, reason=None):
        body = dict(wid=w["id"], name=w["name"], host=w["host"],
                    slots=w["slots"], running=w["running"],
                    stations=w["stations"])
        if reason:
            body["reason"] = reason
        self.publish(topic, body)

    def restart(self):
        self.new_boot()
        self.restarts += 1
        if not any(w["name"] == "gamma" for w in self.workers):
            self.workers.append(dict(
                id=3, name="gamma", host="fixture-c", pid=303, slots=2,
                running=0, credit=2, done=0, handlers=["resize"], age_ms=10,
                stations=0, state="ready"))
        self.lock.notify_all()

    # ---------------------------------------------------------- listing
    def list_tasks(self, f, limit, cursor):
        check = "%x" % (hash((self.boot,) + tuple(sorted(f.items())))
                        & 0xffffffffffff)
        below = None
        if cursor is not None:
            m = re.match(r"^f1\.([0-9]+)\.([0-9a-f]+)$", cursor)
            if not m:
                raise HttpError(400, "EINVAL", "cursor: not one of ours")
            if m.group(2) != check:
                raise HttpError(400, "EINVAL", "cursor: made for other "
                                "filters (or before a restart)")
            below = int(m.group(1))
        ts = sorted(self.tasks.values(), key=lambda t: -t["_csn"])
        out, scanned, nxt = [], 0, None
        for t in ts:
            if below is not None and t["_csn"] >= below:
                continue
            scanned += 1
            if matches(t, f):
                if len(out) == limit:
                    nxt = "f1.%d.%s" % (out[-1]["_csn"], check)
                    break
                out.append(t)
            if scanned >= SCAN:
                nxt = "f1.%d.%s" % (t["_csn"], check)
                break
        return ([self.summary(t) for t in out], nxt, scanned)


def matches(t, f):
    st = f.get("state")
    if st == "failed" and t["state"] not in FAILED:
        return False
    if st and st != "failed" and t["state"] != st:
        return False
    if "handler" in f and t["handler"] != f["handler"]:
        return False
    if "group" in f and f["group"] not in t["groups"]:
        return False
    if "pool" in f and t["pool"] != f["pool"]:
        return False
    if "since" in f and t["changed_ms"] < now_ms() - f["since"]:
        return False
    if "q" in f:
        q = f["q"].lower()
        hay = [str(t["id"]), t["handler"].lower(), (t["error"] or "").lower()]
        if not any(q in h for h in hay):
            return False
    return True


def parse_since(v):
    m = re.match(r"^([0-9]{1,9})([smhd]?)$", v)
    if not m or int(m.group(1)) == 0:
        raise HttpError(400, "EINVAL", "since: '%s' is not a duration such "
                        "as 90s, 15m, 2h or 7d" % v)
    mult = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return int(m.group(1)) * mult * 1000


def task_filter(get, allowed_states):
    f = {}
    state = get("state")
    if state is not None:
        if state not in allowed_states:
            raise HttpError(400, "EINVAL", "state: '%s' is not one of %s"
                            % (state, ", ".join(allowed_states)))
        f["state"] = state
    for k in ("handler", "group", "pool", "q"):
        v = get(k)
        if v is not None:
            if not 1 <= len(v.encode()) <= 128:
                raise HttpError(400, "EINVAL", "%s: 1 to 128 bytes" % k)
            f[k] = v
    if get("since") is not None:
        f["since"] = parse_since(get("since"))
    return f


def parse_limit(v, top, default):
    if v is None:
        return default
    if not re.match(r"^[0-9]{1,9}$", v) or not 1 <= int(v) <= top:
        raise HttpError(400, "EINVAL", "limit: '%s' is not 1 to %d (page "
                        "through with the cursor)" % (v, top))
    return int(v)


LIST_STATES = ["pending", "running", "ok", "failed", "error", "timeout",
               "lost", "cancelled"]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "taskwheel-fixture"

    def log_message(self, fmt, *args):
        if os.environ.get("TW_FIXTURE_LOG"):
            sys.stderr.write("fixture: " + fmt % args + "\n")

    @property
    def C(self):
        return self.server.cluster

    def send_json(self, status, body, headers=None):
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/api/"):
            method = "GET" if self.command == "HEAD" else self.command
            probs = self.server.spec.check_response(method, path,
                                                    status, body)
            for p in probs:
                self.server.problems.append("%s %s %d: %s" % (
                    self.command, path, status, p))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def fail(self, e):
        self.send_json(e.status, {"error": {"status": e.status,
                                            "code": e.code,
                                            "message": e.message}},
                       e.headers)

    def do_GET(self):
        self.dispatch("GET")

    def do_HEAD(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_OPTIONS(self):
        self.dispatch("OPTIONS")

    def dispatch(self, method):
        u = urllib.parse.urlsplit(self.path)
        path = u.path
        try:
            q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
            if any(len(v) > 1 for v in q.values()):
                raise HttpError(400, "EINVAL", "a parameter is repeated")
            self.query = {k: v[0] for k, v in q.items()}
            body = None
            n = int(self.headers.get("Content-Length") or 0)
            if n > 65536:
                raise HttpError(413, "E2BIG", "body above 64 KiB")
            raw = self.rfile.read(n) if n else b""
            if path.startswith("/_fixture/"):
                return self.control(method, path)
            if not path.startswith("/api/"):
                return self.static(method, path)
            # As broker/state/httpapi.c: the route first (404, 405), then who
            # may call it (401, 403, 415), then its parameters (400).
            tmpl = self.server.spec.route(path.rstrip("/") or "/")
            if tmpl is None:
                raise HttpError(404, "ENOENT", "no such route: %s" % path)
            item = self.server.spec.doc["paths"][tmpl]
            if "post" in item and method != "POST":
                raise HttpError(405, "EMETHOD", "this route acts: send POST "
                                "(no action by GET)", {"Allow": "POST"})
            if "get" in item and method != "GET":
                raise HttpError(405, "EMETHOD", "this route only reads: "
                                "send GET", {"Allow": "GET, HEAD"})
            self.authorize(method)
            if method == "POST":
                ctype = (self.headers.get("Content-Type") or "").split(";")[0]
                if ctype.strip() != "application/json":
                    raise HttpError(415, "EMEDIA", "a POST must be "
                                    "Content-Type: application/json")
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    raise HttpError(400, "EINVAL", "the body is not JSON")
                if not isinstance(body, dict):
                    raise HttpError(400, "EINVAL", "the body must be an "
                                    "object")
            with self.C.lock:
                self.route(method, path, body)
        except HttpError as e:
            self.fail(e)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def authorize(self, method):
        """docs/HTTP.md "Who may do what", for a server on loopback whose
        peers are all local (what broker/state/httpapi.c decides)."""
        origin = self.headers.get("Origin")
        host = self.headers.get("Host")
        if origin is not None and origin != "http://%s" % host:
            raise HttpError(403, "EPERM", "a request from another origin "
                            "(%s) is refused" % origin)
        token = self.server.token
        auth = self.headers.get("Authorization") or ""
        shown = bool(token) and auth[:7].lower() == "bearer " and \
            auth[7:].strip() == token
        if method == "POST" and token and not shown:
            raise HttpError(401, "EAUTH", "actions need the token of "
                            "--http-token-file (Authorization: Bearer ...)",
                            {"WWW-Authenticate": 'Bearer realm="taskwheel"'})
        if not shown and host is not None:
            name = host.rsplit(":", 1)[0] if not host.startswith("[") \
                else host[:host.find("]") + 1]
            if name.lower() != "localhost" and name != "[::1]" and \
                    not re.match(r"^127\.[0-9]+\.[0-9]+\.[0-9]+$", name):
                raise HttpError(403, "EPERM", "Host '%s' is not a loopback "
                                "name" % host)

    def params(self, allowed):
        extra = set(self.query) - set(allowed)
        if extra:
            raise HttpError(400, "EINVAL", "unknown parameter '%s'"
                            % sorted(extra)[0])
        return self.query.get

    def route(self, method, path, body):
        C = self.C
        parts = [urllib.parse.unquote(p) for p in path.split("/")[3:]]
        if method not in ("GET", "POST"):
            raise HttpError(405, "EMETHOD", "no %s here" % method,
                            {"Allow": "GET, HEAD"})
        head = parts[0] if parts else ""
        action = (len(parts) == 3 and head in ("tasks", "stations",
                                               "workers")) or \
            parts in (["tasks", "retry"], ["tasks", "purge"])
        if action and method != "POST":
            raise HttpError(405, "EMETHOD", "this route acts: POST it",
                            {"Allow": "POST"})
        if not action and method != "GET":
            raise HttpError(405, "EMETHOD", "this route only reads",
                            {"Allow": "GET, HEAD"})
        if parts == [""] or parts == []:
            self.params([])
            return self.send_json(200, dict(
                api=1, version="fixture", boot=C.boot,
                endpoints=sorted(self.server.spec.doc["paths"])))
        if parts == ["snapshot"]:
            self.params([])
            return self.send_json(200, dict(
                pseq=C.pseq, tseq=dict(C.tseq), boot=C.boot,
                status=C.status(), workers=C.workers,
                stations=C.stations_by_state(),
                tasks=dict(pending=1, running=1, completed=C.status()[
                    "completed"], failed=C.status()["failed"], cancelled=0,
                    kept=len(C.tasks)),
                groups=[C.group], queues=C.queues))
        if parts == ["status"]:
            self.params([])
            return self.send_json(200, {"status": C.status()})
        if parts == ["workers"]:
            self.params([])
            return self.send_json(200, {"workers": C.workers})
        if head == "workers" and len(parts) >= 2:
            if not parts[1].isdigit():
                raise HttpError(400, "EINVAL", "a worker id is a number")
            w = C.worker(int(parts[1]))
            if len(parts) == 2:
                return self.send_json(200, {"worker": w})
            if parts[2] == "drain":
                w["state"] = "draining"
                C.worker_event("worker.draining", w, "requested")
                return self.send_json(200, {"op": "drain", "workers": [w]})
            if parts[2] == "resize":
                slots = body.get("slots")
                if not isinstance(slots, int) or not 1 <= slots <= 65536:
                    raise HttpError(400, "EINVAL", "slots: 1 to 65536")
                if w["state"] == "draining":
                    raise HttpError(409, "ESTATE", "the worker is draining")
                w["slots"] = slots
                C.worker_event("worker.resizing", w, "requested")
                C.worker_event("worker.resized", w)
                return self.send_json(200, {"op": "resize", "workers": [w]})
        if parts == ["stations"]:
            get = self.params(["state", "limit", "cursor"])
            st = get("state")
            if st is not None and st not in STATION_STATES:
                raise HttpError(400, "EINVAL", "state: not a station state")
            limit = parse_limit(get("limit"), 1000, 50)
            ss = [s for s in C.stations.values()
                  if st is None or s["state"] == st]
            start = 0
            if get("cursor") is not None:
                m = re.match(r"^s1\.([0-9]+)$", get("cursor"))
                if not m:
                    raise HttpError(400, "EINVAL", "cursor: not one of ours")
                start = int(m.group(1))
            page = ss[start:start + limit]
            nxt = ("s1.%d" % (start + limit)) if start + limit < len(ss) \
                else None
            return self.send_json(200, {"stations": page, "next": nxt})
        if head == "stations" and len(parts) == 2:
            s = C.stations.get(parts[1])
            if s is None:
                raise HttpError(404, "ENOENT", "no station '%s'" % parts[1])
            d = dict(s, epoch=1, checkpoint={"n": s["iterations"]},
                     next="result", interval_ms=1000, timeout_ms=0,
                     placement="any", restart="never", restarts=0,
                     reason=None, n2s_queued=0, n2s_dropped=0, code=None,
                     tags={})
            return self.send_json(200, {"station": d})
        if head == "stations" and len(parts) == 3:
            if parts[2] not in ("pause", "continue", "stop", "cancel"):
                raise HttpError(404, "ENOENT", "no such route")
            return self.send_json(200, {"station": C.station_op(
                parts[1], parts[2])})
        if parts == ["pools"]:
            self.params([])
            return self.send_json(200, {"pools": [dict(
                pool="default", default_limit=None, size=0, free=None,
                running=7, pending=43, ended=len(C.tasks), cancelled=0,
                locked=False, closed=False, groups=1)]})
        if parts == ["groups"]:
            get = self.params(["pool", "at_limit"])
            if get("pool") not in (None, "default"):
                raise HttpError(404, "ENOENT", "no pool '%s'" % get("pool"))
            g = dict(C.group, calls=None, full="queue", ended=10,
                     cancelled=0, admitted=17)
            return self.send_json(200, {"groups": [g]})
        if parts == ["queues"]:
            self.params([])
            return self.send_json(200, {"queues": C.queues})
        if parts == ["tasks"]:
            get = self.params(["state", "handler", "group", "pool", "since",
                               "q", "limit", "cursor"])
            f = task_filter(get, LIST_STATES)
            limit = parse_limit(get("limit"), 1000, 50)
            tasks, nxt, scanned = C.list_tasks(f, limit, get("cursor"))
            return self.send_json(200, {"tasks": tasks, "next": nxt,
                                        "scanned": scanned})
        if head == "tasks" and len(parts) >= 2 and parts[1].isdigit():
            tid = int(parts[1])
            if len(parts) == 2:
                t = C.tasks.get(tid)
                if t is None:
                    raise HttpError(404, "ENOENT", "no task %d" % tid)
                return self.send_json(200, {"task": C.record(t)})
            if parts[2] == "retry":
                return self.send_json(200, {"task": C.summary(C.retry(tid))})
            if parts[2] == "cancel":
                return self.send_json(200,
                                      {"task": C.summary(C.cancel(tid))})
        if parts in (["tasks", "retry"], ["tasks", "purge"]):
            return self.bulk(parts[1], body)
        if head == "tasks" and len(parts) >= 2:
            raise HttpError(400, "EINVAL", "a task id is a number")
        raise HttpError(404, "ENOENT", "no such route: %s" % path)

    def bulk(self, op, body):
        C = self.C
        ids = body.get("ids")
        states = list(FAILED) + ["failed", "cancelled"] if op == "retry" \
            else list(ENDED) + ["failed"]
        if ids is not None:
            if set(body) - {"ids"}:
                raise HttpError(400, "EINVAL", "either ids or a filter")
            if not isinstance(ids, list) or not 1 <= len(ids) <= 10000 or \
                    not all(isinstance(i, int) and i > 0 for i in ids):
                raise HttpError(400, "EINVAL", "ids: 1 to 10000 task ids")
            sel = ids
            more = False
        else:
            if "state" not in body:
                raise HttpError(400, "EINVAL", "a filter needs a state")
            limit = body.get("limit", 1000)
            if not isinstance(limit, int) or not 1 <= limit <= 10000:
                raise HttpError(400, "EINVAL", "limit: 1 to 10000")
            f = task_filter(lambda k: body.get(k), states)
            hits = [t for t in sorted(C.tasks.values(),
                                      key=lambda t: -t["_csn"])
                    if matches(t, f)]
            sel = [t["id"] for t in hits[:limit]]
            more = len(hits) > limit
        done, refused = [], []
        for tid in sel:
            try:
                if op == "retry":
                    C.retry(tid)
                else:
                    t = C.tasks.get(tid)
                    if t is None:
                        raise HttpError(404, "ENOENT", "no task %d" % tid)
                    if t["state"] not in ENDED:
                        raise HttpError(409, "ESTATE", "not ended")
                    del C.tasks[tid]
                done.append(tid)
            except HttpError as e:
                refused.append(dict(id=tid, code={"ENOENT": -2}.get(
                    e.code, -4008), error=e.message))
        return self.send_json(200, dict(done=done, refused=refused,
                                        more=more))

    # ------------------------------------------------------------ static
    def static(self, method, path):
        if method != "GET":
            raise HttpError(405, "EMETHOD", "static files are read only",
                            {"Allow": "GET, HEAD"})
        name = "index.html" if path == "/" else (
            path[4:] if path.startswith("/ui/") else None)
        if path == "/metrics":
            data = b"taskwheel_workers 2\n"
            ctype = "text/plain; version=0.0.4; charset=utf-8"
        elif name is None or "/" in name or name.startswith("."):
            raise HttpError(404, "ENOENT", "no such page")
        else:
            fp = os.path.join(self.server.web, name)
            if not os.path.isfile(fp):
                raise HttpError(404, "ENOENT", "no such page")
            with open(fp, "rb") as f:
                data = f.read()
            ctype = TYPES.get(os.path.splitext(name)[1],
                              "application/octet-stream")
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Security-Policy",
                         "default-src 'self'; frame-ancestors 'none'")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # ------------------------------------------------------------ control
    def control(self, method, path):
        C = self.C
        if path == "/_fixture/problems":
            return self.send_json(200, {"problems": self.server.problems})
        if method != "POST":
            raise HttpError(405, "EMETHOD", "POST")
        with C.lock:
            if path == "/_fixture/fail":
                t = C.add_failed(now_ms(), 1000 + C.next_id)
                C.publish("task.done", C.task_body(t))
                C.publish("task.exception", C.task_body(t))
                return self.send_json(200, {"task": C.summary(t)})
            if path == "/_fixture/restart":
                C.restart()
                return self.send_json(200, {"boot": C.boot})
        raise HttpError(404, "ENOENT", "no such control")


def events(handler):
    """Serve /api/v1/events on `handler` until the client or a restart
    ends it."""
    C = handler.server.cluster
    q = handler.query
    topics = q.get("topics")
    if topics is None:
        prefixes = None            # all but task. and s2n.
    elif topics == "":
        prefixes = [""]
    else:
        prefixes = topics.split(",")
        if len(prefixes) > 32 or any(len(p) > 128 for p in prefixes):
            raise HttpError(400, "EINVAL", "topics: at most 32 prefixes")

    def wanted(topic):
        if prefixes is None:
            return not topic.startswith(("task.", "s2n."))
        return any(topic.startswith(p) for p in prefixes)

    last = handler.headers.get("Last-Event-ID")
    with C.lock:
        boot = C.boot
        resync = None
        pos = C.pseq
        if last:
            m = re.match(r"^([0-9a-f]{16})-([0-9]+)$", last)
            if not m:
                resync = "the event id is not one of ours"
            elif m.group(1) != C.boot:
                resync = "the broker restarted"
            elif int(m.group(2)) < C.cont or int(m.group(2)) > C.pseq:
                resync = "too old: events were dropped"
            else:
                pos = int(m.group(2))
        resumed = bool(last) and resync is None
        hello = dict(boot=C.boot, pseq=C.pseq if not resumed else pos,
                     resumed=resumed)
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
    handler.send_header("Cache-Control", "no-store")
    handler.send_header("Connection", "close")
    handler.end_headers()
    out = handler.wfile
    out.write(("retry: 2000\n\nevent: hello\nid: %s-%d\ndata: %s\n\n"
               % (boot, hello["pseq"], json.dumps(hello))).encode())
    if resync:
        out.write(("event: resync\ndata: %s\n\n"
                   % json.dumps({"reason": resync})).encode())
    out.flush()
    last_write = time.time()
    while True:
        with C.lock:
            if C.boot != boot or handler.server.stopping:
                return
            batch = [(p, t, d) for (p, t, d) in C.ring if p > pos]
            if not batch:
                C.lock.wait(1.0)
                batch = [(p, t, d) for (p, t, d) in C.ring if p > pos]
            if C.boot != boot:
                return
        chunk = []
        for p, t, d in batch:
            pos = p
            if wanted(t):
                chunk.append("id: %s-%d\ndata: %s\n\n" % (boot, p, d))
        if chunk:
            out.write("".join(chunk).encode())
            out.flush()
            last_write = time.time()
        elif time.time() - last_write > 15:
            out.write(b": ping\n\n")
            out.flush()
            last_write = time.time()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port=0, token=None):
        super().__init__(("127.0.0.1", port), Handler)
        self.cluster = Cluster()
        self.spec = openapi.Spec(os.path.join(ROOT, "docs", "openapi.yaml"))
        self.web = os.path.join(ROOT, "web")
        self.token = token
        self.problems = []
        self.stopping = False
        self.ticker = threading.Thread(target=self._tick, daemon=True)

    def _tick(self):
        while not self.stopping:
            time.sleep(1.0)
            with self.cluster.lock:
                self.cluster.tick()

    def start(self):
        self.ticker.start()
        t = threading.Thread(target=self.serve_forever, daemon=True)
        t.start()
        return self

    def stop(self):
        self.stopping = True
        with self.cluster.lock:
            self.cluster.lock.notify_all()
        self.shutdown()
        self.server_close()

    @property
    def port(self):
        return self.server_address[1]


# /api/v1/events is served outside the cluster lock, by its own loop.
_route = Handler.route


def _route_with_events(self, method, path, body):
    if path == "/api/v1/events":
        if method != "GET":
            raise HttpError(405, "EMETHOD", "GET", {"Allow": "GET, HEAD"})
        self.params(["topics"])
        self.server.cluster.lock.release()
        try:
            events(self)
        finally:
            self.server.cluster.lock.acquire()
        self.close_connection = True
        return None
    return _route(self, method, path, body)


Handler.route = _route_with_events


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token")
    a = ap.parse_args()
    s = Server(a.port, a.token).start()
    print(s.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        s.stop()


if __name__ == "__main__":
    main()
