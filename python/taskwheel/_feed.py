"""The lazy feeding of ``map``.

A map reads its items only as its results are taken: at most ``window``
tasks are submitted and not yet handed to the caller, so an endless
iterable runs in bounded memory (the handles in the window and nothing
else), whatever the order results come in.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Iterable, Iterator, Optional

# ------------------------------------------------------------------- map
class MapFeed:
    """The lazy feeding of ``map``: at most ``window`` tasks submitted but
    not yet handed to the caller, so an endless iterable runs in bounded
    memory; the next items are taken only as results are taken."""

    def __init__(self, items: Iterable[Any], submit: Callable[[Any], Any],
                 window: int, ordered: bool):
        self.items: Iterator[Any] = iter(items)
        self.submit = submit
        self.window = window
        self.ordered = ordered
        self.inflight: Deque[Any] = deque()   # ordered: in item order
        self.ready: Deque[Any] = deque()      # unordered: ended first
        self.exhausted = False
        self.count = 0
        #: called when a task ends (unordered maps), or None
        self.notify: Optional[Callable[[], Any]] = None

    def fill(self) -> None:
        """Submit items until the window is full or the input ends."""
        while not self.exhausted and \
                len(self.inflight) + len(self.ready) < self.window:
            try:
                item = next(self.items)
            except StopIteration:
                self.exhausted = True
                break
            h = self.submit(item)
            self.count += 1
            self.inflight.append(h)
            if not self.ordered:
                h._on_done(self._ended)

    def _ended(self, h: Any) -> None:
        try:
            self.inflight.remove(h)
        except ValueError:
            return
        self.ready.append(h)
        if self.notify is not None:
            self.notify()

    def has_ready(self) -> bool:
        """True when :meth:`next_ready` has a handle, or all are out."""
        if self.ordered:
            return bool(self.inflight and self.inflight[0].done()) or \
                (self.exhausted and not self.inflight)
        return bool(self.ready) or (self.exhausted and not self.inflight)

    def finished(self) -> bool:
        """True when every item was handed out."""
        return self.exhausted and not self.inflight and not self.ready

    def next_ready(self) -> Optional[Any]:
        """The next handle to hand out if it has ended, else None."""
        if self.ordered:
            if self.inflight and self.inflight[0].done():
                return self.inflight.popleft()
            return None
        return self.ready.popleft() if self.ready else None

    def stop(self) -> None:
        """Take no more items."""
        self.exhausted = True
