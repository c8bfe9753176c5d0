"""CURVE key files, read the way taskwheel's C code does.

A broker started with ``--curve-secret`` accepts only CURVE peers whose
public key is in its role directory (docs/SECURITY.md). ``taskwheel keygen
NAME`` writes ``NAME.key`` (public and secret key, mode 0600) and
``NAME.pub`` (public key only). Both are text: blank lines and lines
starting with ``#`` are ignored, every other line is a keyword and a
40-character Z85 key::

    # taskwheel CURVE public key "me"
    public-key  :5D8Rl{LQDLD[>tHS.^Mv:wo!s8BgdTw!mfDmv+V

The rules are those of common/keys.c: any other keyword, a repeated one or
a key that is not 40 characters of Z85 is an error; a secret file without
``public-key`` is accepted (the public key is derived); one whose public key
does not belong to its secret key is refused; and a secret file that anyone
but its owner can read is refused, as ssh does.

The client takes the files from its ``curve_secret`` and ``broker_key``
arguments or from ``TASKWHEEL_CURVE_SECRET`` and ``TASKWHEEL_BROKER_KEY``,
the variables the ``taskwheel`` CLI reads.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from typing import Optional

import zmq
from zmq.utils import z85

from .errors import TaskwheelError

KEY_FILE_MAX = 65536


class KeyFileError(TaskwheelError, ValueError):
    """A key file that cannot be used; the message says why."""


@dataclass(frozen=True)
class KeyPair:
    """A CURVE key pair as Z85 text (40 characters each); ``secret`` is
    None for a public key file."""

    public: bytes
    secret: Optional[bytes] = None

    @property
    def fingerprint(self) -> str:
        """The key's fingerprint as taskwheel logs it: the first 10 bytes
        of the SHA-256 of the 32-byte public key, "xxxx:xxxx:...". """
        digest = hashlib.sha256(z85.decode(self.public)).hexdigest()[:20]
        return ":".join(digest[i:i + 4] for i in range(0, 20, 4))


def parse(text: str) -> KeyPair:
    """The key pair in the text of a key file; raises KeyFileError."""
    pub = sec = None
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        word, value = parts[0], parts[1].strip() if len(parts) > 1 else ""
        if word not in ("public-key", "secret-key"):
            raise KeyFileError("line %d: expected 'public-key KEY' or "
                               "'secret-key KEY'" % lineno)
        if (pub if word == "public-key" else sec) is not None:
            raise KeyFileError("line %d: a second %s" % (lineno, word))
        raw = value.encode("ascii", "replace")
        try:
            ok = len(raw) == 40 and len(z85.decode(raw)) == 32
        except (ValueError, KeyError, IndexError, TypeError):
            ok = False
        if not ok:
            raise KeyFileError("line %d: the %s is not 40 characters of Z85"
                               % (lineno, word))
        if word == "public-key":
            pub = raw
        else:
            sec = raw
    if pub is None and sec is None:
        raise KeyFileError("no public-key or secret-key line")
    if sec is not None:
        derived = zmq.curve_public(sec)
        if pub is not None and pub != derived:
            raise KeyFileError("the public key does not belong to the "
                               "secret key")
        return KeyPair(derived, sec)
    return KeyPair(pub)


def read(path: str, want_secret: bool = False) -> KeyPair:
    """Read a key file. With ``want_secret``, the file must hold a secret
    key and be readable by its owner only. Raises KeyFileError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise KeyFileError("cannot open key file %s: %s"
                           % (path, exc.strerror)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError("key file %s is not a regular file" % path)
        if st.st_size > KEY_FILE_MAX - 1:
            raise KeyFileError("key file %s is larger than %d bytes"
                               % (path, KEY_FILE_MAX - 1))
        data = os.read(fd, KEY_FILE_MAX)
    finally:
        os.close(fd)
    try:
        kp = parse(data.decode("utf-8", "replace"))
    except KeyFileError as exc:
        raise KeyFileError("key file %s: %s" % (path, exc)) from None
    if want_secret and kp.secret is None:
        raise KeyFileError("key file %s holds no secret key (give the .key "
                           "file, not the .pub)" % path)
    if want_secret and st.st_mode & 0o077:
        raise KeyFileError("secret key file %s has mode %04o: it must be "
                           "readable by its owner only (chmod 600 %s)"
                           % (path, st.st_mode & 0o7777, path))
    return kp


@dataclass(frozen=True)
class Curve:
    """What a CURVE client socket needs: its own pair and the broker's
    public key."""

    own: KeyPair
    server: bytes

    def apply(self, sock: "zmq.Socket") -> None:
        """Make ``sock`` a CURVE client of the broker (before connect)."""
        sock.curve_serverkey = self.server
        sock.curve_publickey = self.own.public
        sock.curve_secretkey = self.own.secret


def load(secret_file: Optional[str] = None,
         broker_key_file: Optional[str] = None) -> Optional[Curve]:
    """The CURVE settings from the two files, or from
    ``TASKWHEEL_CURVE_SECRET`` and ``TASKWHEEL_BROKER_KEY`` when not given;
    None when neither is set (plaintext). Raises KeyFileError when only one
    is set, a file is bad, or this libzmq has no CURVE."""
    secret_file = secret_file or os.environ.get("TASKWHEEL_CURVE_SECRET") \
        or None
    broker_key_file = broker_key_file or \
        os.environ.get("TASKWHEEL_BROKER_KEY") or None
    if not secret_file and not broker_key_file:
        return None
    if not secret_file or not broker_key_file:
        raise KeyFileError("CURVE needs both a secret key file "
                           "(TASKWHEEL_CURVE_SECRET) and the broker's public "
                           "key file (TASKWHEEL_BROKER_KEY)")
    if not zmq.has("curve"):
        raise KeyFileError("this libzmq was built without CURVE support")
    own = read(secret_file, want_secret=True)
    server = read(broker_key_file)
    return Curve(own, server.public)
