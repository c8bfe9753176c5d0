#!/usr/bin/python3
"""examples/monitor.py - watch a taskwheel cluster from Python.

Taps the broker's status socket (a ZeroMQ XPUB, tcp://127.0.0.1:7712 by
default) with a SUB socket, subscribes to the topic prefixes given on the
command line (everything when none is given), and prints one line per
message. Nothing here is specific to C or to taskwheel's own code: a
status message is two frames, [topic][msgpack map], and every map holds
"pseq", the broker's publish sequence number, "tseq", the number of the
message within its own topic, and "ts", when the broker published it
(Unix ms; proto/PROTOCOL.md, section 8). Lines show that time (the time
of receipt for an older broker without "ts"); task events that end a run
show its "run_ms", and a failed attempt that is retried comes as
task.retry with its error.

    examples/monitor.py                              # everything
    examples/monitor.py worker. station.             # workers and stations
    examples/monitor.py --json task. | jq .          # JSON lines
    examples/monitor.py --endpoint tcp://10.0.0.5:7712 --count 10 stats
    examples/monitor.py --resync station.            # snapshot, then deltas

Gaps: each topic's tseq counts 1, 2, 3... so a hole in it is a lost
message, whatever prefixes were subscribed (pseq is global: a subscriber
to a prefix sees it jump over the topics it did not ask for, which is not
a loss). Gaps are reported on stderr and counted at the end. A tseq that
goes down means the broker restarted (or forgot a removed station's
topics). Publishing is lossy by design.

Subscribed means subscribed: before it prints anything the monitor also
subscribes to a topic of its own, "welcome.<random token>", and waits for
the broker's answer on it (PROTOCOL.md 8.2). The broker answers once every
earlier subscription of this socket is live, with the broker run's boot
id (5.19), which the monitor prints: "subscribed at EP (broker boot ...)".
A status endpoint that does not answer within --wait seconds is not a
broker's status socket (or no broker runs there): the monitor says so and
exits 3, it does not wait in silence.

Resynchronising (--resync): the ZeroMQ clone pattern. The monitor
subscribes first (and waits for the welcome, above), then asks the
broker's frontend for QUERY "snapshot"
(one consistent map: workers, stations by state, task counts, groups at
their limits, and the last tseq of every topic), prints it, and from then
on applies only messages whose tseq is above the snapshot's for their
topic. After a gap it takes a new snapshot. The snapshot's REPLY carries
the boot id too: one other than the welcome's means the broker restarted
in between, and the line says so. This speaks the request side
of the wire protocol too: header "TW" 1 13 + {seq, what} on a DEALER,
answered by REPLY (14) {seq, data} (PROTOCOL.md 5.14).

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
DEFAULT_BROKER = os.environ.get("TASKWHEEL_BROKER", "tcp://127.0.0.1:7710")

CMD_QUERY, CMD_REPLY, CMD_ERROR = 13, 14, 9
WELCOME = "welcome."  # the topic prefix the broker answers (PROTOCOL.md 8.2)

# Keys shown first, in this order, for the topics the broker publishes
# today; anything else follows as key=value, so new keys still show.
ORDER = {
    "worker.": ("name", "host", "wid", "slots", "running", "stations",
                "from", "reason"),
    "task.": ("id", "handler", "state", "worker", "attempt", "run_ms",
              "retry_in_ms", "error", "priority"),
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
    """One readable line: time, pseq, topic, the interesting keys. The
    time is the broker's "ts" when the body has one, else `stamp`."""
    ts = body.get("ts")
    if isinstance(ts, int) and ts > 0:
        stamp = ts / 1000.0
    order = ()
    for prefix, keys in ORDER.items():
        if topic.startswith(prefix):
            order = keys
            break
    shown = [k for k in order if k in body]
    if topic == "stats":
        rest = []  # the snapshot has 25 keys; the ORDER ones are enough
    else:
        rest = sorted(k for k in body
                      if k not in ("pseq", "tseq", "ts") and k not in shown)
    fields = " ".join("%s=%s" % (k, text(body[k])) for k in shown + rest)
    clock = time.strftime("%H:%M:%S", time.localtime(stamp))
    return "%s.%03d #%-6s %-26s %s" % (clock, int(stamp * 1000) % 1000,
                                       body.get("pseq", "?"), topic, fields)


class GapDetector:
    """Tracks the last tseq of every topic seen (or known from a
    snapshot)."""

    def __init__(self):
        self.last = {}
        self.lost = 0
        self.gaps = 0

    def see(self, topic, tseq):
        """Returns (note, is_gap): a message about a gap or a restart, or
        None."""
        if not isinstance(tseq, int) or tseq == 0:
            return None, False  # an untracked topic (PROTOCOL.md 8)
        last = self.last.get(topic)
        self.last[topic] = tseq
        if last is None or tseq == last + 1:
            return None, False
        if tseq == 1 or tseq <= last:
            return ("%s: tseq went from %d to %d: the broker restarted or "
                    "the topic started again" % (topic, last, tseq)), False
        n = tseq - last - 1
        self.lost += n
        self.gaps += 1
        return ("gap: %d message(s) of %s lost (tseq %d..%d)" % (
            n, topic, last + 1, tseq - 1)), True


def boot_text(boot):
    """A boot id as the broker logs it: 16 hex digits."""
    return "%016x" % boot if isinstance(boot, int) else "unknown"


def await_welcome(sub, seconds):
    """Subscribe `sub` (already connected) to a welcome token of its own
    and wait for the broker's answer. Returns (boot id, the messages that
    came before the answer), or (None, ...) if none came within `seconds`.
    The token is unsubscribed after."""
    token = (WELCOME + os.urandom(8).hex()).encode()
    sub.setsockopt(zmq.SUBSCRIBE, token)
    deadline = time.monotonic() + seconds
    early = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sub.poll(max(1, int(left * 1000))):
                return None, early
            frames = sub.recv_multipart()
            if len(frames) != 2 or frames[0] != token:
                early.append(frames)  # shown after, as any other message
                continue
            try:
                body = msgpack.unpackb(frames[1], raw=False,
                                       strict_map_key=False)
            except Exception:  # not a broker's answer
                return None, early
            boot = body.get("boot") if isinstance(body, dict) else None
            return (boot if isinstance(boot, int) else 0), early
    finally:
        sub.setsockopt(zmq.UNSUBSCRIBE, token)


def query_snapshot(ctx, endpoint, timeout_ms=3000):
    """QUERY what "snapshot" on the broker's frontend; returns the data
    map with the REPLY's boot id under "$boot", or raises RuntimeError."""
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.IDENTITY, b"c-" + os.urandom(8).hex().encode())
    s.connect(endpoint)
    try:
        s.send_multipart([bytes([0x54, 0x57, 1, CMD_QUERY]),
                          msgpack.packb({"seq": 1, "what": "snapshot"})])
        if not s.poll(timeout_ms):
            raise RuntimeError("no answer from %s" % endpoint)
        hdr, body = s.recv_multipart()[-2:]
        m = msgpack.unpackb(body, raw=False, strict_map_key=False)
        if hdr[3] == CMD_ERROR:
            raise RuntimeError("broker error %s: %s" % (m.get("code"),
                                                        m.get("msg")))
        if hdr[3] != CMD_REPLY or not isinstance(m.get("data"), dict):
            raise RuntimeError("unexpected answer (command %d)" % hdr[3])
        data = m["data"]
        data["$boot"] = m.get("boot")
        return data
    finally:
        s.close()


def snapshot_line(snap):
    """A one-line summary of a snapshot."""
    st = snap.get("stations", {})
    by_state = " ".join("%s=%d" % (k, len(v)) for k, v in st.items() if v)
    t = snap.get("tasks", {})
    return ("snapshot boot=%s pseq=%s workers=%d stations[%s] tasks[%s] "
            "groups_at_limit=%d topics=%d" % (
                boot_text(snap.get("$boot")), snap.get("pseq"),
                len(snap.get("workers", [])),
                by_state, " ".join("%s=%s" % kv for kv in t.items()),
                len(snap.get("groups", [])), len(snap.get("tseq", {}))))


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
                   help='one JSON object a line: {"topic", "pseq", "tseq", '
                        '"body"}')
    p.add_argument("--resync", action="store_true",
                   help="start from QUERY snapshot on --broker and take a "
                        "new one after a gap")
    p.add_argument("--broker", "-b", default=DEFAULT_BROKER,
                   help="the broker's frontend, for --resync (default "
                        "$TASKWHEEL_BROKER or tcp://127.0.0.1:7710)")
    p.add_argument("--count", type=int, default=0,
                   help="exit after N messages")
    p.add_argument("--for", dest="seconds", type=float, default=0,
                   help="exit after S seconds")
    p.add_argument("--wait", type=float, default=5,
                   help="how long the status endpoint may take to answer "
                        "the subscription (default 5 s); exit 3 after")
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    prefixes = args.prefixes or [""]
    gaps = GapDetector()

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    for p in prefixes:
        sub.setsockopt(zmq.SUBSCRIBE, p.encode())
    sub.connect(args.endpoint)
    boot, early = await_welcome(sub, args.wait)
    if boot is None:
        sys.stderr.write(
            "monitor.py: nothing from the status endpoint %s in %g s: is "
            "it a taskwheel broker's status socket?\n" % (args.endpoint,
                                                         args.wait))
        sub.close()
        ctx.term()
        return 3
    sys.stderr.write(
        "monitor.py: subscribed at %s (broker boot %s) to %s\n" % (
            args.endpoint, boot_text(boot),
            ", ".join(repr(p) for p in prefixes)))
    sys.stderr.flush()

    def emit(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def resync():
        """Snapshot after subscribing: the clone pattern's second step."""
        try:
            snap = query_snapshot(ctx, args.broker)
        except RuntimeError as exc:
            sys.stderr.write("monitor.py: snapshot: %s\n" % exc)
            return None
        if snap.get("$boot") not in (None, boot):
            sys.stderr.write("monitor.py: the broker restarted (boot %s, "
                             "now %s)\n" % (boot_text(boot),
                                            boot_text(snap.get("$boot"))))
        if args.json:
            emit(json.dumps({"topic": "snapshot", "pseq": snap.get("pseq"),
                             "boot": boot_text(snap.get("$boot")),
                             "body": jsonable({k: v for k, v in snap.items()
                                               if k != "$boot"})},
                            separators=(",", ":")))
        else:
            emit(snapshot_line(snap))
        return {str(jsonable(k)): v for k, v in snap.get("tseq", {}).items()}

    # topic -> last tseq the snapshot includes: older deltas are dropped.
    seen_in_snapshot = {}
    skipped = 0
    if args.resync:
        seen_in_snapshot = resync() or {}
        gaps.last = dict(seen_in_snapshot)

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
            wait_ms = 0 if early else 200
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
            if early:
                frames = early.pop(0)
            elif sub not in ready:
                continue
            else:
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
            tseq = body.get("tseq")
            known = seen_in_snapshot.get(topic)
            if isinstance(tseq, int) and known is not None and \
                    0 < tseq <= known:
                skipped += 1  # already part of the snapshot
                continue
            note, lost = gaps.see(topic, tseq)
            if note:
                sys.stderr.write("monitor.py: %s\n" % note)
                sys.stderr.flush()
            if lost and args.resync:
                seen_in_snapshot = resync() or {}
                gaps.last.update(seen_in_snapshot)
            if args.json:
                line = json.dumps({"topic": topic,
                                   "pseq": body.get("pseq"),
                                   "tseq": tseq,
                                   "body": jsonable(body)},
                                  separators=(",", ":"))
            else:
                line = human_line(topic, body, stamp)
            emit(line)
            count += 1
            if args.count and count >= args.count:
                break
    except BrokenPipeError:
        pass
    finally:
        sub.close()
        ctx.term()
    if gaps.gaps:
        sys.stderr.write("monitor.py: %d message(s) lost in %d gap(s)\n" % (
            gaps.lost, gaps.gaps))
    if skipped:
        sys.stderr.write("monitor.py: %d message(s) were already in the "
                         "snapshot\n" % skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
