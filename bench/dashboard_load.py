#!/usr/bin/env python3
"""bench/dashboard_load.py - what open dashboards cost the server.

Measures a server process (the broker, or any server of docs/HTTP.md)
while N dashboards are open on it, against the same time with none:
its CPU (user + system time from /proc/PID/stat over a window) and its
resident memory. The dashboards are N headless chromium browsers
(tests/browser/webdriver.py), each loaded from URL and live on the event
stream before the window starts. They are separate browsers, not tabs of
one: a browser keeps at most six HTTP/1.1 connections to one server and
each dashboard holds one for its stream (docs/HTTP.md). Measuring
windows alternate: idle, loaded, idle, loaded..., so a noisy machine hits
both. Prints one line:

  dashboard load: 10 browsers, 3 windows of 20 s: server CPU 31.2 % idle,
  32.0 % with them (+0.8 points, median), RSS +0.4 MiB

Start the server, and whatever load it should carry meanwhile, first:

  bench/dashboard_load.py --url http://127.0.0.1:9710 --pid PID
  bench/dashboard_load.py --fixture      (tests/browser/fixture.py; a
                                          check of this script)
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "browser"))
import webdriver  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mib(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def window(pid, seconds):
    """The server's CPU share over `seconds`, in per cent of one core."""
    c0, t0 = cpu_seconds(pid), time.time()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - c0) / (time.time() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--url")
    g.add_argument("--fixture", action="store_true")
    ap.add_argument("--pid", type=int, help="the server's process id")
    ap.add_argument("--browsers", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--windows", type=int, default=3)
    a = ap.parse_args()
    server = None
    if a.fixture:
        import fixture
        server = fixture.Server(0).start()
        url, pid = "http://127.0.0.1:%d" % server.port, os.getpid()
    else:
        if not a.pid:
            ap.error("--url needs --pid")
        url, pid = a.url.rstrip("/"), a.pid
    idle, busy = [], []
    rss0 = rss1 = rss_mib(pid)
    try:
        for w in range(a.windows):
            idle.append(window(pid, a.seconds))
            browsers = []
            try:
                for i in range(a.browsers):
                    b = webdriver.Browser(width=1280, height=800, timeout=60)
                    browsers.append(b)
                    b.get(url + "/")
                for b in browsers:
                    b.wait(lambda: b.text("#conn") == "live",
                           "a dashboard live")
                busy.append(window(pid, a.seconds))
                rss1 = rss_mib(pid)
            finally:
                for b in browsers:
                    b.close()
            print("window %d: idle %.1f %%, with %d dashboards %.1f %%"
                  % (w + 1, idle[-1], a.browsers, busy[-1]), file=sys.stderr)
    finally:
        if server:
            server.stop()
    mi, mb = statistics.median(idle), statistics.median(busy)
    print("dashboard load: %d browsers, %d windows of %.0f s: server CPU "
          "%.1f %% idle, %.1f %% with them (%+.1f points, median), RSS "
          "%+.1f MiB" % (a.browsers, a.windows, a.seconds, mi, mb, mb - mi,
                         rss1 - rss0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
