"""examples/python/linkcheck_tasks.py - the handlers of the link checker.

One handler, ``linkcheck.page``, reads one HTML page of a site kept in a
local directory and says what it links to: the site's pages (to crawl
next), the site's other files it references that do not exist, and the
links that leave the site. A page that does not exist raises
FileNotFoundError, which the submitter sees as the task's error with its
traceback. Standard library only (html.parser, urllib.parse).

Run it in workers (see worker.conf):

    taskwheel-worker --config examples/python/worker.conf
"""

import os
import posixpath
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit

from taskwheel import task


class _Links(HTMLParser):
    """The title and every href and src of one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._in_title = True
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.refs.append(value.strip())

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def _inside(root: str, rel: str) -> str:
    """The file of site path ``rel`` under ``root``; ValueError if the
    path leaves the site."""
    full = os.path.realpath(os.path.join(root, rel))
    if os.path.commonpath([full, os.path.realpath(root)]) != \
            os.path.realpath(root):
        raise ValueError("%s is outside the site" % rel)
    return full


@task("linkcheck.page")
def page(root: str, path: str) -> dict:
    """Read page ``path`` (relative to the site directory ``root``).

    Returns {"title", "bytes", "pages": site pages it links to,
    "missing": site files it references that do not exist, "external":
    links that leave the site}. Paths are relative to the site, with
    "/" separators."""
    with open(_inside(root, path), encoding="utf-8", errors="replace") as f:
        text = f.read()
    parser = _Links()
    parser.feed(text)
    pages, missing, external = set(), set(), set()
    for ref in parser.refs:
        url, _ = urldefrag(urljoin(path, ref))
        parts = urlsplit(url)
        if parts.scheme or parts.netloc:
            if parts.scheme in ("http", "https"):
                external.add(url)
            continue  # mailto:, javascript:...
        target = posixpath.normpath(parts.path) if parts.path else path
        if target.startswith("../") or target == "..":
            external.add(target)
            continue
        if target.endswith((".html", ".htm")):
            pages.add(target)
        elif not os.path.exists(_inside(root, target)):
            missing.add(target)
    return {"title": parser.title.strip(), "bytes": len(text),
            "pages": sorted(pages), "missing": sorted(missing),
            "external": sorted(external)}
