"""tests/browser/webdriver.py - drive Debian's headless chromium.

A small W3C WebDriver client over plain HTTP (urllib): it starts
chromedriver (Debian package chromium-driver) on a free loopback port,
which starts chromium headless with the flags this machine needs (no
sandbox, no GPU, nothing that reaches the network, a fresh profile), and
offers the few commands the dashboard tests use. Every wait has a
deadline; nothing sleeps for a fixed time to let the page "settle".

    with Browser() as b:
        b.get("http://127.0.0.1:9710/")
        b.wait(lambda: b.text("#conn") == "live", "the stream is live")
        b.click("#failed-body button")
        b.screenshot("dashboard.png")
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM = os.environ.get("TW_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TW_CHROMEDRIVER", "/usr/bin/chromedriver")
# https://www.w3.org/TR/webdriver2/#elements
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
KEYS = {"Enter": "\ue007", "Escape": "\ue00c", "Tab": "\ue004",
        "Backspace": "\ue003"}


class WebDriverError(Exception):
    pass


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def missing():
    """The first of chromium and chromedriver that is not installed, or
    None."""
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not os.access(exe, os.X_OK):
            return exe
    return None


class Browser:
    def __init__(self, width=1440, height=900, timeout=20.0):
        for exe in (CHROMIUM, CHROMEDRIVER):
            if not os.access(exe, os.X_OK):
                raise WebDriverError(
                    "%s is missing: deploy/install-deps.sh --test installs "
                    "chromium and chromium-driver" % exe)
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="tw-chromium-")
        self.port = _free_port()
        self.log = open(os.path.join(self.profile, "chromedriver.log"), "w")
        self.proc = subprocess.Popen(
            [CHROMEDRIVER, "--port=%d" % self.port, "--log-level=WARNING"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.base = "http://127.0.0.1:%d" % self.port
        self.session = None
        deadline = time.time() + 30
        while True:
            try:
                self._call("GET", "/status")
                break
            except (OSError, WebDriverError):
                if time.time() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise WebDriverError("chromedriver did not start")
                time.sleep(0.05)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-dev-shm-usage",
                "--user-data-dir=" + os.path.join(self.profile, "data"),
                "--window-size=%d,%d" % (width, height)]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "unhandledPromptBehavior": "dismiss"}}}
        r = self._call("POST", "/session", caps)
        self.session = r["sessionId"]

    # ------------------------------------------------------------ protocol
    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data,
                                     method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                out = json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                err = json.loads(e.read())["value"]
                msg = "%s: %s" % (err.get("error"),
                                  err.get("message", "").splitlines()[0])
            except Exception:  # noqa: BLE001 - any undecodable answer
                msg = str(e)
            raise WebDriverError("%s %s: %s" % (method, path, msg))
        return out.get("value", out)

    def _s(self, method, path, body=None):
        return self._call(method, "/session/%s%s" % (self.session, path),
                          body)

    # ------------------------------------------------------------ commands
    def get(self, url):
        self._s("POST", "/url", {"url": url})

    def js(self, script, *args):
        """Run `script` (a function body) in the page; its return value."""
        return self._s("POST", "/execute/sync",
                       {"script": script, "args": list(args)})

    def find(self, css):
        """The first element matching `css`, or None."""
        r = self._s("POST", "/elements", {"using": "css selector",
                                          "value": css})
        return r[0][ELEMENT] if r else None

    def find_all(self, css):
        r = self._s("POST", "/elements", {"using": "css selector",
                                          "value": css})
        return [e[ELEMENT] for e in r]

    def _el(self, css_or_id):
        if css_or_id.startswith(("#", ".", "[")) or " " in css_or_id:
            eid = self.wait(lambda: self.find(css_or_id),
                            "an element " + css_or_id)
            return eid
        return css_or_id

    def click(self, css):
        """Click the first element matching `css`. The page redraws parts
        of itself as events arrive, so an element found a moment ago may
        have been replaced: find it again and retry until the deadline."""
        def attempt():
            try:
                self._s("POST", "/element/%s/click" % self._el(css), {})
                return True
            except WebDriverError as e:
                if "stale element" not in str(e):
                    raise
                return False
        self.wait(attempt, "a click on " + css)

    def type(self, css, text):
        self._s("POST", "/element/%s/value" % self._el(css),
                {"text": text})

    def keys(self, *keys):
        """Press keys on whatever has the focus (names in KEYS, or text)."""
        actions = []
        for k in keys:
            for ch in KEYS.get(k, k):
                actions += [{"type": "keyDown", "value": ch},
                            {"type": "keyUp", "value": ch}]
        self._s("POST", "/actions", {"actions": [
            {"type": "key", "id": "keyboard", "actions": actions}]})
        self._s("DELETE", "/actions")

    def text(self, css):
        """The text of the first element matching `css` ("" if none)."""
        return self.js("const e = document.querySelector(arguments[0]);"
                       "return e ? e.textContent : '';", css)

    def texts(self, css):
        return self.js("return [...document.querySelectorAll(arguments[0])]"
                       ".map(e => e.textContent);", css)

    def active(self):
        """The id of the focused element."""
        return self.js("return document.activeElement ? "
                       "document.activeElement.id : '';")

    def screenshot(self, path):
        png = base64.b64decode(self._s("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)
        return path

    def console_errors(self):
        """Uncaught errors the page reported (see install_error_trap)."""
        return self.js("return window.__twErrors || [];")

    def install_error_trap(self):
        self.js("window.__twErrors = window.__twErrors || [];"
                "window.addEventListener('error', e => "
                "window.__twErrors.push(String(e.message)));"
                "window.addEventListener('unhandledrejection', e => "
                "window.__twErrors.push('rejection: ' + String(e.reason)));")

    def wait(self, cond, what, timeout=None):
        """Poll `cond` until it returns something true; that value.
        Raises AssertionError naming `what` at the deadline."""
        deadline = time.time() + (timeout or self.timeout)
        last = None
        while True:
            try:
                v = cond()
                if v:
                    return v
            except WebDriverError as e:
                last = e
            if time.time() > deadline:
                raise AssertionError("timed out waiting for %s%s" % (
                    what, " (%s)" % last if last else ""))
            time.sleep(0.1)

    # ---------------------------------------------------------- life cycle
    def close(self):
        if self.session:
            try:
                self._call("DELETE", "/session/" + self.session)
            except (OSError, WebDriverError):
                pass
            self.session = None
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
