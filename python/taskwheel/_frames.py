"""Length-prefixed msgpack frames on a pipe.

The process handler protocol (proto/PROTOCOL.md 15.1) and an exec
program's task channel (14.2) carry frames: a 4-octet big-endian length N,
1 <= N <= 32 MiB, then N octets holding one msgpack map with string keys
and a str ``ev``. :class:`FrameReader` reads them from a file descriptor,
:func:`encode` builds them. Used by :mod:`taskwheel.handler` and by the
tests' stand-in worker.

Both are on the hot path of every proc call: the reader takes whatever one
``read`` gives (often several frames) and decodes them in place, without
copying a frame out of its buffer; the encoder reuses one msgpack packer
per thread.
"""

from __future__ import annotations

import os
import struct
from typing import Any, Dict, Optional

import msgpack

from ._wire import packer

MAX_FRAME = 32 << 20
READ_SIZE = 65536
_LEN = struct.Struct(">I")

__all__ = ["FrameError", "FrameReader", "encode", "frame_of", "packer"]


class FrameError(Exception):
    """A frame that breaks PROTOCOL.md 15.1."""


def frame_of(body: bytes) -> bytes:
    """The frame around an encoded body. Raises FrameError for a body
    over 32 MiB."""
    if len(body) > MAX_FRAME:
        raise FrameError("a frame of %d bytes; the limit is %d"
                         % (len(body), MAX_FRAME))
    return _LEN.pack(len(body)) + body


def encode(frame: Dict[str, Any]) -> bytes:
    """The bytes of one frame. Raises TypeError (and friends) for values
    msgpack cannot encode, FrameError for a frame over 32 MiB."""
    return frame_of(packer().pack(frame))


def _check(frame: Any) -> Dict[str, Any]:
    if not isinstance(frame, dict) or not isinstance(frame.get("ev"), str):
        raise FrameError("a frame that is not a map with a str ev")
    return frame


class FrameReader:
    """Reads frames from a file descriptor: :meth:`fill` reads once (what
    is there, or waits for something on a blocking descriptor),
    :meth:`next` hands out the frames read so far, :meth:`read` does both
    until a frame comes."""

    def __init__(self, fd: int):
        self.fd = fd
        self._buf = b""   # bytes read and not handed out, from _pos
        self._pos = 0
        self._more: list = []  # pieces of a frame larger than one read
        self._have = 0         # their bytes
        self._want = 0         # the bytes that frame needs in all

    def pending(self) -> bool:
        """True if bytes were read and not handed out yet."""
        return self._pos < len(self._buf) or bool(self._more)

    def fill(self) -> bool:
        """One ``os.read``; False at the end of the input. Raises
        BlockingIOError on a non-blocking descriptor with nothing to
        read."""
        chunk = os.read(self.fd, max(READ_SIZE, self._want - self._have))
        if not chunk:
            return False
        if self._more:
            self._more.append(chunk)
            self._have += len(chunk)
            if self._have >= self._want:
                self._buf, self._pos = b"".join(self._more), 0
                self._more, self._have, self._want = [], 0, 0
        elif self._pos < len(self._buf):
            rest = len(self._buf) - self._pos
            if rest >= 4:
                (n,) = _LEN.unpack_from(self._buf, self._pos)
                if 4 + n > rest + len(chunk) and n <= MAX_FRAME:
                    # A large frame: gather its pieces, join them once.
                    self._more = [self._buf[self._pos:], chunk]
                    self._have = rest + len(chunk)
                    self._want = 4 + n
                    self._buf, self._pos = b"", 0
                    return True
            self._buf = self._buf[self._pos:] + chunk
            self._pos = 0
        else:
            self._buf, self._pos = chunk, 0
        return True

    def next(self) -> Optional[Dict[str, Any]]:
        """The next complete frame read so far, or None. Raises
        FrameError for a malformed one."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 4:
            return None
        (n,) = _LEN.unpack_from(buf, pos)
        if n < 1 or n > MAX_FRAME:
            raise FrameError("a frame length of %d" % n)
        end = pos + 4 + n
        if len(buf) < end:
            return None
        self._pos = end
        try:
            frame = msgpack.unpackb(memoryview(buf)[pos + 4:end], raw=False,
                                    strict_map_key=False)
        except Exception as exc:  # noqa: BLE001 - any decoder error
            raise FrameError("an undecodable frame: %s" % exc) from None
        return _check(frame)

    def read(self) -> Optional[Dict[str, Any]]:
        """The next frame, waiting for it on a blocking descriptor; None
        at the end of the input. Raises FrameError for a malformed one
        (or a stream cut inside one)."""
        while True:
            frame = self.next()
            if frame is not None:
                return frame
            if not self.fill():
                if self.pending():
                    raise FrameError("the input ended inside a frame")
                return None
