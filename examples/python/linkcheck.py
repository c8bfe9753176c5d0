#!/usr/bin/python3
"""examples/python/linkcheck.py - check the links of a static site with
taskwheel.

A crawler: it submits the site's start page, and every page a result
links to that it has not seen yet, keeping at most --concurrency pages in
flight across the cluster, until the whole site is read. Then it reports
the broken links (pages that do not exist and files that are missing)
with the pages that refer to them, and exits 1 if there are any.

    export PYTHONPATH=$PWD/python:$PWD/examples/python
    build/worker/taskwheel-worker --config examples/python/worker.conf &
    python3 examples/python/linkcheck.py examples/python/site

The worker runs linkcheck_tasks.py in Python children; this program only
submits and collects. The broker comes from $TASKWHEEL_BROKER (default
tcp://127.0.0.1:7710). Standard library and the taskwheel package only.
"""

import argparse
import os
import sys
import time
from collections import defaultdict, deque

import taskwheel


def crawl(client, root, start="index.html", concurrency=8, timeout=30.0):
    """Read every page of the site reachable from ``start``. Returns
    (pages: {path: result}, broken: {path: why}, referrers: {path:
    set of pages})."""
    seen = {start}
    todo = deque([start])
    inflight = {}
    pages, broken = {}, {}
    referrers = defaultdict(set)
    while todo or inflight:
        while todo and len(inflight) < concurrency:
            path = todo.popleft()
            h = client.submit("linkcheck.page", root, path, timeout=timeout)
            inflight[h] = path
        h = next(client.as_completed(list(inflight), timeout=timeout * 2))
        path = inflight.pop(h)
        try:
            result = h.result()
        except taskwheel.TaskFailed as exc:
            broken[path] = exc.remote_type or exc.state
            continue
        pages[path] = result
        for target in result["pages"]:
            referrers[target].add(path)
            if target not in seen:
                seen.add(target)
                todo.append(target)
        for target in result["missing"]:
            referrers[target].add(path)
            broken[target] = "missing"
    return pages, broken, referrers


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("site", help="the directory of the site")
    p.add_argument("--start", default="index.html",
                   help="the first page (default index.html)")
    p.add_argument("--concurrency", type=int, default=8,
                   help="pages read at once across the cluster")
    args = p.parse_args(argv)
    root = os.path.abspath(args.site)
    t0 = time.monotonic()
    with taskwheel.Client() as client:
        pages, broken, referrers = crawl(client, root, args.start,
                                         args.concurrency)
    took = time.monotonic() - t0
    external = sorted({u for r in pages.values() for u in r["external"]})
    size = sum(r["bytes"] for r in pages.values())
    print("%d pages (%d bytes) read in %.2f s; %d external links"
          % (len(pages), size, took, len(external)))
    for path in sorted(pages):
        print("  %-28s %s" % (path, pages[path]["title"]))
    if broken:
        print("%d broken links:" % len(broken))
        for path in sorted(broken):
            print("  %-28s %-18s from %s" % (path, broken[path], ", ".join(
                sorted(referrers.get(path, ())))))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
