"""tests/browser/test_dashboard.py - the dashboard in a real browser.

Loads the dashboard in headless chromium (tests/browser/webdriver.py) and
checks what a person would: the workers, the counts and the failed tasks
the API reports are on the page; a failed task opens with its arguments,
errors and traceback; Retry sends it back and the page shows it run
again; a new failure appears without a reload; the keyboard reaches
everything; after the server restarts, the page reconnects and shows the
new state. Expected values are read from the API itself, so the same
checks run against any server that implements docs/openapi.yaml.

On a second server started with a token, an action asks for the token
once and then goes through.

Backends:
  --fixture        tests/browser/fixture.py in this process (and a second
                   one with a token)
  --broker         a real taskwheel-broker with --http and a worker (and a
                   second one with --http-token-file)
  --url URL        a server already running (no failure injection or
                   restart: those checks are left out and said so);
                   --token-url URL --token T: one with a token

Writes a screenshot (--screenshot PATH, default dashboard.png in the
current directory). Prints one line per check and ends with
"N passed, N failed"; exits non-zero if any failed.
"""

import argparse
import json
import os
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import webdriver  # noqa: E402
from backends import (BrokerBackend, Checks, FixtureBackend,  # noqa: E402
                      UrlBackend)

FAILED = ("error", "timeout", "lost")


class Run(Checks):
    def __init__(self, backend, browser, shot):
        super().__init__()
        self.be, self.b, self.shot = backend, browser, shot
        self.api = backend.api

    def on_failure(self):
        try:
            self.b.screenshot(self.shot.replace(".png", "-fail.png"))
        except Exception:  # noqa: BLE001 - the failure is reported anyway
            pass

    # ------------------------------------------------------------- checks
    def load(self):
        b = self.b
        b.get(self.be.url + "/")
        b.install_error_trap()
        b.wait(lambda: b.text("#conn") == "live", "the stream to be live")
        workers = self.api.get("/api/v1/workers")["workers"]
        names = sorted(w["name"] for w in workers)
        b.wait(lambda: sorted(b.texts("#workers-body tr td:first-child"))
               == names, "workers %s on the page" % names)
        status = self.api.get("/api/v1/status")["status"]
        b.wait(lambda: b.text("#t-workers") == str(status["workers"]),
               "the worker count %d" % status["workers"])
        b.wait(lambda: b.text("#t-rate") not in ("", "–"), "a rate")

    def failed_listed(self):
        b = self.b
        page = self.api.get("/api/v1/tasks?state=failed&limit=5")
        assert page["tasks"], "the server has no failed task to show"
        want = ["#%d" % t["id"] for t in page["tasks"]]
        b.wait(lambda: b.texts("#failed-body tr td:first-child")[:5] == want,
               "failed tasks %s first in the list" % want)
        b.wait(lambda: "Error" in b.text("#failed table thead"), "headings")

    def detail(self):
        b = self.b
        t = self.api.get("/api/v1/tasks?state=error&limit=1")["tasks"]
        t = t[0] if t else self.api.get(
            "/api/v1/tasks?state=failed&limit=1")["tasks"][0]
        rec = self.api.get("/api/v1/tasks/%d" % t["id"])["task"]
        self.target = rec
        b.click("#failed-body tr[data-id='%d'] button" % t["id"])
        b.wait(lambda: b.js("return document.getElementById('detail').open"),
               "the detail view to open")
        b.wait(lambda: ("Task %d" % t["id"]) in b.text("#detail-h"),
               "the detail heading")
        attempts = rec["attempts"]
        b.wait(lambda: len(b.find_all("#detail-attempts li")) ==
               len(attempts), "%d attempts listed" % len(attempts))
        for a in attempts:
            if a["error"]:
                b.wait(lambda: a["error"] in b.text("#detail-attempts"),
                       "the error of attempt %d" % a["n"])
            if a["traceback"]:
                last = a["traceback"].strip().splitlines()[-1]
                b.wait(lambda: last in b.text("#detail-attempts"),
                       "the traceback of attempt %d" % a["n"])
        if not rec["args_truncated"]:
            shown = json.loads(b.text("#detail-args"))
            assert shown == rec["args"], (shown, rec["args"])
        assert not b.js("return document.getElementById('detail-retry')"
                        ".disabled"), "Retry is disabled on a failed task"

    def retry(self):
        b = self.b
        rec = self.target
        before = len(rec["attempts"])
        b.click("#detail-retry")
        b.wait(lambda: self.api.get("/api/v1/tasks/%d" % rec["id"])["task"]
               ["attempt"] > rec["attempt"], "the task to run again",
               timeout=30)
        b.wait(lambda: len(b.find_all("#detail-attempts li")) > before,
               "a new attempt on the page", timeout=30)
        after = self.api.get("/api/v1/tasks/%d" % rec["id"])["task"]
        assert after["retried"] == rec["retried"] + 1, after
        b.wait(lambda: b.js("return !document.querySelector("
                            "'#failed-body tr[data-id=\"%d\"]') || "
                            "%s" % (rec["id"], "true" if after["state"] in
                                    FAILED else "false")),
               "the task to leave the failed list while it runs again")
        b.screenshot(self.shot)

    def keyboard(self):
        b = self.b
        b.keys("Escape")
        b.wait(lambda: not b.js("return document.getElementById('detail')"
                                ".open"), "Escape to close the detail")
        b.js("document.body.focus(); document.activeElement.blur();")
        b.keys("/")
        b.wait(lambda: b.active() == "failed-q", "/ to focus the search")
        handler = self.api.get("/api/v1/tasks?state=failed&limit=1")[
            "tasks"][0]["handler"]
        b.keys(handler)
        want = self.api.get("/api/v1/tasks?state=failed&limit=50&q=" +
                            handler)["tasks"]
        b.wait(lambda: b.texts("#failed-body tr td:nth-child(2)") and
               all(h == handler for h in
                   b.texts("#failed-body tr td:nth-child(2)")) and
               len(b.texts("#failed-body tr")) == len(want),
               "the list filtered to %s" % handler)
        # Tab from the search reaches the first task's button; Enter opens.
        first = want[0]["id"]
        for _ in range(12):
            b.keys("Tab")
            if b.js("return document.activeElement.closest('#failed-body')"
                    " !== null"):
                break
        assert b.js("return document.activeElement.textContent") == \
            "#%d" % first, "Tab did not reach the first failed task"
        b.keys("Enter")
        b.wait(lambda: ("Task %d" % first) in b.text("#detail-h") and
               b.js("return document.getElementById('detail').open"),
               "Enter to open the task")
        b.keys("Escape")
        b.js("document.getElementById('failed-q').value = '';"
             "document.getElementById('failed-q')"
             ".dispatchEvent(new Event('input'));")

    def live_failure(self):
        b = self.b
        t = self.be.make_failure()
        b.wait(lambda: b.texts("#failed-body tr td:first-child")[:1] ==
               ["#%d" % t["id"]], "the new failure %d at the top" % t["id"])

    def station_control(self):
        b = self.b
        st = self.api.get("/api/v1/stations?state=running&limit=1")[
            "stations"]
        if not st:
            print("     (no running station: pause not tried)")
            return
        sid = st[0]["station"]
        b.click("#station-states button[data-state='running']")
        b.click("#stations-body tr[data-sid='%s'] button" % sid)
        b.wait(lambda: self.api.get("/api/v1/stations/" +
                                    urllib.request.quote(sid, safe=""))
               ["station"]["wanted"] == "paused", "the station to pause")

    def restart(self):
        b = self.b
        self.be.restart()
        b.wait(lambda: b.js("return document.getElementById('conn')"
                            ".dataset.state") != "live" or
               "gamma" in b.texts("#workers-body tr td:first-child"),
               "the page to notice the restart")
        names = sorted(w["name"] for w in
                       self.api.get("/api/v1/workers")["workers"])
        b.wait(lambda: b.text("#conn") == "live" and
               sorted(b.texts("#workers-body tr td:first-child")) == names,
               "the page to resync to workers %s" % names, timeout=30)

    def token_prompt(self, tb):
        """On a server with a token, an action asks for it once, then
        goes through; the token stays for the tab."""
        b = self.b
        b.get(tb.url + "/")
        b.install_error_trap()
        b.wait(lambda: b.text("#conn") == "live", "the stream to be live "
               "(loopback reads need no token)")
        t = tb.api.get("/api/v1/tasks?state=failed&limit=1")["tasks"][0]
        b.wait(lambda: b.find("#failed-body tr[data-id='%d'] button"
                              % t["id"]), "the failed task listed")
        b.click("#failed-body tr[data-id='%d'] button" % t["id"])
        b.wait(lambda: b.js("return document.getElementById('detail').open"),
               "the detail view")
        b.click("#detail-retry")
        b.wait(lambda: b.js("return document.getElementById('ask').open"),
               "the page to ask for the token")
        b.type("#ask-input", tb.api.token)
        b.click("#ask-ok")
        b.wait(lambda: tb.api.get("/api/v1/tasks/%d" % t["id"])["task"]
               ["retried"] > 0, "the retry to go through with the token")
        assert b.js("return sessionStorage.getItem('taskwheel.token')") == \
            tb.api.token
        b.keys("Escape")

    def no_errors(self):
        errs = self.b.console_errors()
        assert not errs, "the page raised: %s" % errs
        probs = self.be.problems()
        assert not probs, "answers that do not fit openapi.yaml: %s" % probs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--fixture", action="store_true")
    g.add_argument("--broker", action="store_true")
    g.add_argument("--url")
    ap.add_argument("--token-url", help="a second server, with a token")
    ap.add_argument("--token", help="that server's token")
    ap.add_argument("--screenshot", default="dashboard.png")
    a = ap.parse_args()
    missing = webdriver.missing()
    if missing:
        # ctest counts exit 77 as skipped (SKIP_RETURN_CODE).
        print("skipped: %s is not installed; deploy/install-deps.sh --test "
              "installs chromium and chromium-driver" % missing)
        return 77
    if a.fixture:
        be = FixtureBackend()
        tb = FixtureBackend("fixture-token-0123456789abcdef0123")
    elif a.broker:
        be = BrokerBackend()
        tb = BrokerBackend("broker-token-0123456789abcdef0123456")
    else:
        be = UrlBackend(a.url)
        tb = UrlBackend(a.token_url, a.token) if a.token_url else None
    r = None
    try:
        with webdriver.Browser() as browser:
            r = Run(be, browser, os.path.abspath(a.screenshot))
            r.check("load: workers and counts", r.load)
            r.check("failed tasks listed", r.failed_listed)
            r.check("detail: args, errors, tracebacks", r.detail)
            r.check("retry runs the task again", r.retry)
            r.check("keyboard: / Tab Enter Escape", r.keyboard)
            r.check("station pause from the page", r.station_control)
            if be.can_inject:
                r.check("a new failure appears live", r.live_failure)
                r.check("reconnect and resync after a restart", r.restart)
            else:
                print("     (no failure injection or restart with --url)")
            r.check("no page errors, answers fit openapi.yaml", r.no_errors)
            if tb:
                r.be = tb
                r.check("an action asks for the token, once",
                        lambda: r.token_prompt(tb))
                r.check("no page errors with the token", r.no_errors)
    finally:
        be.close()
        if tb:
            tb.close()
    return r.summary() if r else 1


if __name__ == "__main__":
    sys.exit(main())
