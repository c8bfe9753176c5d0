"""Which broker of a list to use: the Python twin of common/eplist.c.

A client may be given the endpoints of a broker pair
(``"tcp://b1:7710,tcp://b2:7710"``, docs/HA.md): one broker is active,
the other refuses with ENOTACTIVE and names the active one. This decides
which endpoint to connect to, following proto/PROTOCOL.md 17.8, and what
the next ping carries: the highest fencing epoch seen (``ha``) and, after
losing a broker, the vote (``lost``, that broker's epoch). It refuses a
broker whose epoch is below one already seen: a deposed active. A list of
one never moves. No I/O.
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple

MAX_ENDPOINTS = 8
MAX_ENDPOINT = 255
_SCHEME = re.compile(r"[a-z]+://.")


class EndpointList:
    """The endpoints of one client, and where it is."""

    def __init__(self, spec: str):
        """Parse ``"EP[,EP...]"`` (spaces around each ignored; each
        ``scheme://address``, at most 255 octets, at most 8, none twice).
        Raises ValueError naming the problem."""
        if not isinstance(spec, str):
            raise ValueError("no endpoint")
        eps: List[str] = []
        for i, part in enumerate(spec.split(","), 1):
            ep = part.strip(" \t")
            if not ep:
                raise ValueError("endpoint %d is empty" % i)
            if len(eps) == MAX_ENDPOINTS:
                raise ValueError("more than %d endpoints" % MAX_ENDPOINTS)
            if len(ep.encode()) > MAX_ENDPOINT:
                raise ValueError("endpoint %d is longer than %d octets"
                                 % (i, MAX_ENDPOINT))
            if not _SCHEME.match(ep):
                raise ValueError("endpoint %d (%r) is not scheme://address "
                                 "(tcp://host:port)" % (i, ep))
            if ep in eps:
                raise ValueError("endpoint %d (%r) is given twice" % (i, ep))
            eps.append(ep)
        self.endpoints = eps
        self.cur = 0
        self.ha = 0        # the highest fencing epoch seen
        self.with_ha = 0   # the epoch of the broker that served us last
        self.voting = False

    @property
    def current(self) -> str:
        """The endpoint to connect to now."""
        return self.endpoints[self.cur]

    def __len__(self) -> int:
        return len(self.endpoints)

    def _next(self) -> None:
        self.cur = (self.cur + 1) % len(self.endpoints)

    def served(self, ha: int) -> bool:
        """The current broker answered as active under ``ha``: stick to it
        (True), or, below the highest epoch seen (a deposed active), move
        on and return False: its answer must not be acted on."""
        if ha < self.ha:
            self._next()
            return False
        self.ha = self.with_ha = ha
        self.voting = False
        return True

    def lost(self) -> None:
        """The current broker was lost: next endpoint, and vote."""
        self.voting = True
        self._next()

    def not_active(self, active: Optional[str], live: bool,
                   ha: int) -> bool:
        """ENOTACTIVE: go to the named active if it is still heard (else
        the next endpoint); while it is silent, stay if we are voting.
        Returns True if the endpoint changed."""
        self.ha = max(self.ha, ha)
        before = self.cur
        if live:
            if active in self.endpoints and \
                    self.endpoints.index(active) != self.cur:
                self.cur = self.endpoints.index(active)
            else:
                self._next()
        elif not self.voting:
            self._next()
        return self.cur != before

    def vote(self) -> Tuple[bool, int]:
        """(votes, the lost broker's epoch) for the next message."""
        return self.voting, (self.with_ha if self.voting else 0)

    def ping_body(self) -> dict:
        """``ha`` and ``lost`` for a HEARTBEAT (empty for a single broker
        that never named an epoch)."""
        body = {}
        if self.ha:
            body["ha"] = self.ha
        if len(self.endpoints) > 1 and self.voting:
            body["lost"] = self.with_ha
        return body
