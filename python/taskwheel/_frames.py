"""Length-prefixed msgpack frames on a pipe.

The process handler protocol (proto/PROTOCOL.md 15.1) and an exec
program's task channel (14.2) carry frames: a 4-octet big-endian length N,
1 <= N <= 32 MiB, then N octets holding one msgpack map with string keys
and a str ``ev``. :class:`FrameReader` reads them from a file descriptor,
:func:`encode` builds them. Used by :mod:`taskwheel.handler` and by the
tests' stand-in worker.
"""

from __future__ import annotations

import os
import struct
from typing import Any, Dict, Optional

import msgpack

MAX_FRAME = 32 << 20
_LEN = struct.Struct(">I")


class FrameError(Exception):
    """A frame that breaks PROTOCOL.md 15.1."""


def encode(frame: Dict[str, Any]) -> bytes:
    """The bytes of one frame. Raises TypeError (and friends) for values
    msgpack cannot encode, FrameError for a frame over 32 MiB."""
    body = msgpack.packb(frame, use_bin_type=True)
    if len(body) > MAX_FRAME:
        raise FrameError("a frame of %d bytes; the limit is %d"
                         % (len(body), MAX_FRAME))
    return _LEN.pack(len(body)) + body


class FrameReader:
    """Reads frames from a blocking file descriptor."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buf = bytearray()

    def _fill(self, n: int) -> bool:
        while len(self.buf) < n:
            chunk = os.read(self.fd, max(65536, n - len(self.buf)))
            if not chunk:
                return False
            self.buf += chunk
        return True

    def read(self) -> Optional[Dict[str, Any]]:
        """The next frame, or None at the end of the input. Raises
        FrameError for a malformed one (or a stream cut inside one)."""
        if not self._fill(4):
            if self.buf:
                raise FrameError("the input ended inside a length")
            return None
        (n,) = _LEN.unpack_from(self.buf)
        if n < 1 or n > MAX_FRAME:
            raise FrameError("a frame length of %d" % n)
        if not self._fill(4 + n):
            raise FrameError("the input ended inside a frame")
        body = bytes(self.buf[4:4 + n])
        del self.buf[:4 + n]
        try:
            frame = msgpack.unpackb(body, raw=False, strict_map_key=False)
        except Exception as exc:  # noqa: BLE001 - any decoder error
            raise FrameError("an undecodable frame: %s" % exc) from None
        if not isinstance(frame, dict) or not isinstance(frame.get("ev"),
                                                         str):
            raise FrameError("a frame that is not a map with a str ev")
        return frame
