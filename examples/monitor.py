#!/usr/bin/python3
"""examples/monitor.py - watch a taskwheel cluster from Python.

Taps the broker's status socket (a ZeroMQ XPUB, tcp://127.0.0.1:7712 by
default) with a SUB socket, subscribes to the topic prefixes given on the
command line (everything when none is given), and prints one line per
message. Nothing here is specific to C or to taskwheel's own code: a
status message is two frames, [topic][msgpack map], and every map holds
"pseq", the broker's publish sequence number (proto/PROTOCOL.md, section 8).

    examples/monitor.py                              # everything
    examples/monitor.py worker. station.             # workers and stations
    examples/monitor.py --json task. | jq .          # JSON lines
    examples/monitor.py --endpoint tcp://10.0.0.5:7712 --count 10 stats

Gaps: pseq numbers every message the broker publishes, across all topics.
Only a subscriber to everything can tell a lost message from one it did
not subscribe to, so gaps are reported (on stderr, and counted at the end)
only when no prefix was given. A pseq that goes down means the broker
restarted. Publishing is lossy by design; QUERY status / workers (the
`taskwheel status` and `taskwheel workers` commands) give a snapshot.

Uses Debian's python3-zmq and python3-msgpack, hence /usr/bin/python3:
    apt-get install python3-zmq python3-msgpack
"""

import argparse
import json
import os
import signal
import sys
import time

try:
    import msgpack
    import zmq
except ImportError as exc:  # pragma: no cover - depends on the host
    sys.stderr.write(
        "monitor.py: %s; install python3-zmq and python3-msgpack "
        "(apt-get install python3-zmq python3-msgpack) and run it with "
        "/usr/bin/python3\n" % exc)
    sys.exit(2)

DEFAULT_ENDPOINT = os.environ.get("TASKWHEEL_STATUS", "tcp://127.0.0.1:7712")

# Keys shown first, in this order, for the topics the broker publishes
# today; anything else follows as key=value, so new keys still show.
ORDER = {
    "worker.": ("name", "host", "wid", "slots", "reason"),
    "task.": ("id", "handler", "state", "worker", "attempt", "priority"),
    "station.": ("station", "state", "worker", "slot", "epoch",
                 "iterations", "reason"),
    "s2n.": ("station", "seq", "data"),
    "group.": (),
    "stats": ("workers", "slots", "queued", "running", "stations",
              "stations_running", "iterations", "rate", "submitted",
              "completed", "failed", "dropped"),
}


def jsonable(v):
    """A msgpack value as something json.dumps takes (bytes as hex)."""
    if isinstance(v, (bytes, bytearray)):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return {"$bin": bytes(v).hex()}
    if isinstance(v, dict):
        return {str(jsonable(k)): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


def text(v):
    """A value for a human line: strings bare, the rest as compact JSON."""
    v = jsonable(v)
    if isinstance(v, str):
        return v if v and " " not in v and "=" not in v else json.dumps(v)
    if isinstance(v, float):
        return "%.1f" % v
    return json.dumps(v, separators=(",", ":"), sort_keys=True)


def human_line(topic, body, stamp):
    """One readable line: time, pseq, topic, the interesting keys."""
    order = ()
    for prefix, keys in ORDER.items():
        if topic.startswith(prefix):
            order = keys
            break
    shown = [k for k in order if k in body]
    if topic == "stats":
        rest = []  # the snapshot has 25 keys; the ORDER ones are enough
    else:
        rest = sorted(k for k in body if k != "pseq" and k not in shown)
    fields = " ".join("%s=%s" % (k, text(body[k])) for k in shown + rest)
    clock = time.strftime("%H:%M:%S", time.localtime(stamp))
    return "%s.%03d #%-6s %-26s %s" % (clock, int(stamp * 1000) % 1000,
                                       body.get("pseq", "?"), topic, fields)


class GapDetector:
    """Tracks pseq for a subscriber to everything."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.last = None
        self.lost = 0
        self.gaps = 0

    def see(self, pseq):
        """Returns a message about a gap or a restart, or None."""
        if not self.enabled or not isinstance(pseq, int):
            return None
        last, self.last = self.last, pseq
        if last is None or pseq == last + 1:
            return None
        if pseq <= last:
            return "pseq went from %d to %d: the broker restarted" % (
                last, pseq)
        n = pseq - last - 1
        self.lost += n
        self.gaps += 1
        return "gap: %d message(s) lost (pseq %d..%d)" % (n, last + 1,
                                                          pseq - 1)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="monitor.py",
        description="Print the taskwheel broker's status messages.")
    p.add_argument("prefixes", nargs="*", metavar="PREFIX",
                   help="topic prefixes to subscribe to (worker., task., "
                        "station.<id>., s2n.<id>, group., stats); "
                        "default: everything")
    p.add_argument("--endpoint", "-e", default=DEFAULT_ENDPOINT,
                   help="the broker's status endpoint (default "
                        "$TASKWHEEL_STATUS or tcp://127.0.0.1:7712)")
    p.add_argument("--json", action="store_true",
                   help='one JSON object a line: {"topic", "pseq", "body"}')
    p.add_argument("--count", type=int, default=0,
                   help="exit after N messages")
    p.add_argument("--for", dest="seconds", type=float, default=0,
                   help="exit after S seconds")
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    prefixes = args.prefixes or [""]
    everything = "" in prefixes
    gaps = GapDetector(everything)

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    for p in prefixes:
        sub.setsockopt(zmq.SUBSCRIBE, p.encode())
    sub.connect(args.endpoint)
    sys.stderr.write(
        "monitor.py: %s, subscribed to %s%s\n" % (
            args.endpoint,
            ", ".join(repr(p) for p in prefixes),
            "" if everything else
            " (pseq is global: gaps are not reported for a prefix)"))
    sys.stderr.flush()

    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    deadline = time.monotonic() + args.seconds if args.seconds > 0 else None
    count = 0
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    try:
        while not stop["now"]:
            wait_ms = 200
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait_ms = min(wait_ms, max(1, int(left * 1000)))
            try:
                ready = dict(poller.poll(wait_ms))
            except zmq.ZMQError as exc:
                if exc.errno == zmq.EINTR:
                    continue
                raise
            if sub not in ready:
                continue
            frames = sub.recv_multipart()
            stamp = time.time()
            if len(frames) != 2:
                sys.stderr.write("monitor.py: a message of %d frame(s), "
                                 "skipped\n" % len(frames))
                continue
            topic = frames[0].decode("utf-8", "replace")
            try:
                body = msgpack.unpackb(frames[1], raw=False,
                                       strict_map_key=False)
            except Exception as exc:  # a bad body must not stop a monitor
                sys.stderr.write("monitor.py: %s: undecodable body (%s)\n"
                                 % (topic, exc))
                continue
            if not isinstance(body, dict):
                body = {"value": body}
            note = gaps.see(body.get("pseq"))
            if note:
                sys.stderr.write("monitor.py: %s\n" % note)
                sys.stderr.flush()
            if args.json:
                line = json.dumps({"topic": topic,
                                   "pseq": body.get("pseq"),
                                   "body": jsonable(body)},
                                  separators=(",", ":"))
            else:
                line = human_line(topic, body, stamp)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            count += 1
            if args.count and count >= args.count:
                break
    except BrokenPipeError:
        pass
    finally:
        sub.close()
        ctx.term()
    if everything and gaps.gaps:
        sys.stderr.write("monitor.py: %d message(s) lost in %d gap(s)\n" % (
            gaps.lost, gaps.gaps))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
