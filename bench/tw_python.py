#!/usr/bin/python3
"""bench/tw_python.py - taskwheel from Python, against Celery and RQ.

Measures, on one machine and in one run (docs/BENCHMARKS.md, "Python"):

  throughput  no-op tasks end to end, submitted from Python and run by
              Python handlers: taskwheel (a broker, one worker whose
              --proc children run bench/python/bench_tasks.py), Celery
              (Redis broker and result backend, a prefork worker of the
              same concurrency) and RQ (the same number of `rq worker`s),
              and taskwheel's native `noop` from the same Python client;
              the runs of each take turns, and each figure is the median
              over --runs runs
  latency     one task at a time, submit -> result, from the Python
              client: a Python handler (py.noop) and the native `echo`,
              alternating round trip by round trip; p50 and p99
  map         a --map-n item Client.map from Python over a Python
              handler, in a fresh process: its time and the client's
              peak memory (VmHWM) against its memory before the map

Celery, RQ and Redis are Debian packages (python3-celery, python3-rq,
redis-server), installed by bench/python.sh, not by the test
dependencies. Every process is started here, on loopback ports picked
free, and stopped by pid. Summary lines go to stdout, per-run lines to
stderr.

    bench/python.sh                       (builds Release, installs, runs)
    bench/tw_python.py --runs 5 --n 50000 --celery-n 3000 --rq-n 400
"""

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
sys.path.insert(0, os.path.join(HERE, "python"))

import taskwheel  # noqa: E402
from tw_cluster import Cluster, free_port, wait_for, wait_workers  # noqa

PY = sys.executable


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def rss_kib(field="VmRSS"):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- taskwheel
def tw_cluster(tmp, procs, slots=None):
    """A broker and one worker with `procs` Python children and `slots`
    slots (default: as many as children)."""
    os.makedirs(tmp, exist_ok=True)
    cl = Cluster(tmp)
    cl.env["PYTHONPATH"] = os.pathsep.join(
        [os.path.join(ROOT, "python"), os.path.join(HERE, "python")])
    b = cl.broker(data=False)
    cl.worker(b, "--proc", "%s -m taskwheel.handler bench_tasks" % PY,
              "--proc-count", str(procs), slots=slots or procs)
    with taskwheel.Client(b.frontend) as c:
        wait_workers(c, 1, "py.noop", timeout=60)
    return cl, b


def tw_pipelined(c, handler, n, window):
    """Submit n tasks keeping at most `window` unfinished; seconds."""
    done = [0]
    lock = threading.Lock()

    def one(_h):
        with lock:
            done[0] += 1

    submitted = 0
    t0 = time.perf_counter()
    while submitted < n:
        room = window - (submitted - done[0])
        if room <= 0:
            c._wait(lambda: submitted - done[0] < window // 2, 60)
            continue
        k = min(room, n - submitted, 1000)
        for h in c.submit_many(handler, [None] * k):
            h.add_done_callback(one)
        submitted += k
    if not c._wait(lambda: done[0] >= n, 120):
        raise RuntimeError("taskwheel: %d of %d tasks ended" % (done[0], n))
    return time.perf_counter() - t0


# ------------------------------------------------------------------ celery
class Redis:
    def __init__(self, tmp):
        self.port = free_port()
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.p = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", tmp],
            stdout=open(os.path.join(tmp, "redis.log"), "ab"),
            stderr=subprocess.STDOUT, start_new_session=True)
        import redis
        r = redis.Redis(port=self.port)
        wait_for(lambda: self._ping(r), 20, "redis")

    @staticmethod
    def _ping(r):
        try:
            return r.ping()
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def flush(self):
        import redis
        redis.Redis(port=self.port).flushall()

    def stop(self):
        stop(self.p)


def stop(p):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


def celery_worker(tmp, redis, procs):
    env = dict(os.environ, TW_BENCH_REDIS=redis.url,
               PYTHONPATH=os.path.join(HERE, "python"))
    p = subprocess.Popen(
        [PY, "-m", "celery", "-A", "celery_app", "worker", "--pool",
         "prefork", "--concurrency", str(procs), "--without-gossip",
         "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"],
        cwd=os.path.join(HERE, "python"), env=env,
        stdout=open(os.path.join(tmp, "celery.log"), "ab"),
        stderr=subprocess.STDOUT, start_new_session=True)
    return p


def celery_run(redis, n):
    os.environ["TW_BENCH_REDIS"] = redis.url
    import celery_app
    app = celery_app.app
    # A warm-up task: the worker is up and its pool forked.
    celery_app.noop.delay().get(timeout=60)
    t0 = time.perf_counter()
    rs = [celery_app.noop.delay() for _ in range(n)]
    for r in rs:
        r.get(timeout=120)
    took = time.perf_counter() - t0
    for r in rs:
        r.forget()
    app.close()
    return took


# ---------------------------------------------------------------------- rq
def rq_workers(tmp, redis, procs):
    env = dict(os.environ, PYTHONPATH=os.path.join(HERE, "python"))
    return [subprocess.Popen(
        [PY, "-m", "rq.cli", "worker", "--url", redis.url, "--quiet",
         "bench"], cwd=os.path.join(HERE, "python"), env=env,
        stdout=open(os.path.join(tmp, "rq-%d.log" % i), "ab"),
        stderr=subprocess.STDOUT, start_new_session=True)
        for i in range(procs)]


def rq_run(redis, n):
    import redis as redis_mod
    from rq import Queue
    import rq_jobs
    conn = redis_mod.Redis(port=redis.port)
    q = Queue("bench", connection=conn)
    first = q.enqueue(rq_jobs.noop)
    wait_for(lambda: first.get_status(refresh=True) == "finished", 60,
             "the first RQ job")
    t0 = time.perf_counter()
    jobs = [q.enqueue(rq_jobs.noop) for _ in range(n)]
    ids = [j.id for j in jobs]
    from rq.job import Job

    def finished():
        got = Job.fetch_many(ids, connection=conn)
        return all(j is not None and j.get_status() == "finished"
                   for j in got)
    wait_for(finished, 600, "%d RQ jobs" % n, every=0.05)
    return time.perf_counter() - t0


# ------------------------------------------------------------------- parts
def throughput(args, tmp):
    results = {"tw_py": [], "tw_native": [], "celery": [], "rq": []}
    ratios = []  # taskwheel Python / Celery, run by run
    cl, b = tw_cluster(os.path.join(tmp, "tw"), args.procs, args.slots)
    redis = Redis(tmp)
    cw = celery_worker(tmp, redis, args.procs)
    rqw = rq_workers(tmp, redis, args.procs)
    try:
        with taskwheel.Client(b.frontend, timeout=30) as c:
            tw_pipelined(c, "py.noop", min(2000, args.n), args.window)
            for run in range(args.runs):
                s = tw_pipelined(c, "py.noop", args.n, args.window)
                results["tw_py"].append(args.n / s)
                s2 = tw_pipelined(c, "noop", args.n, args.window)
                results["tw_native"].append(args.n / s2)
                s3 = celery_run(redis, args.celery_n)
                results["celery"].append(args.celery_n / s3)
                s4 = rq_run(redis, args.rq_n) if args.rq_n else 0
                if args.rq_n:
                    results["rq"].append(args.rq_n / s4)
                ratios.append(results["tw_py"][-1] / results["celery"][-1])
                log("run %d: taskwheel python %.0f tasks/s, native %.0f, "
                    "celery %.0f, rq %s; python / celery %.1f; load %.1f" % (
                        run + 1, results["tw_py"][-1],
                        results["tw_native"][-1], results["celery"][-1],
                        "%.0f" % results["rq"][-1] if args.rq_n else "-",
                        ratios[-1], os.getloadavg()[0]))
                redis.flush()
    finally:
        stop(cw)
        for p in rqw:
            stop(p)
        redis.stop()
        cl.close()
    med = {k: statistics.median(v) for k, v in results.items() if v}
    print("throughput, no-op tasks end to end, %d runs (median tasks/s):"
          % args.runs)
    print("  taskwheel, Python client -> Python handlers (%d children, "
          "%d slots): %.0f" % (args.procs, args.slots, med["tw_py"]))
    print("  taskwheel, Python client -> native noop:                  %.0f"
          % med["tw_native"])
    print("  Celery %s, Redis broker and backend, prefork %d:          %.0f"
          % (celery_version(), args.procs, med["celery"]))
    if "rq" in med:
        print("  RQ %s, %d workers:                                    %.0f"
              % (rq_version(), args.procs, med["rq"]))
    print("  ratio taskwheel Python / Celery: %.1f   / RQ: %s" % (
        med["tw_py"] / med["celery"],
        "%.1f" % (med["tw_py"] / med["rq"]) if "rq" in med else "-"))
    print("  taskwheel Python / Celery run by run: median %.1f (%s)" % (
        statistics.median(ratios), ", ".join("%.1f" % r for r in ratios)))
    return med


def celery_version():
    import celery
    return celery.__version__


def rq_version():
    import rq
    return rq.__version__


def latency(args, tmp):
    cl, b = tw_cluster(os.path.join(tmp, "lat"), 2)
    p50s, p99s = {"py": [], "echo": []}, {"py": [], "echo": []}
    try:
        with taskwheel.Client(b.frontend, timeout=30) as c:
            for _ in range(200):
                c.submit("py.noop").result(30)
                c.submit_payload("echo", None).result(30)
            for run in range(args.runs):
                ts = {"py": [], "echo": []}
                for i in range(args.lat_n):
                    for kind in ("py", "echo"):
                        t0 = time.perf_counter()
                        if kind == "py":
                            c.submit("py.noop").result(30)
                        else:
                            c.submit_payload("echo", None).result(30)
                        ts[kind].append(time.perf_counter() - t0)
                for kind, v in ts.items():
                    v.sort()
                    p50s[kind].append(v[len(v) // 2] * 1e6)
                    p99s[kind].append(v[min(len(v) - 1,
                                            int(len(v) * 0.99))] * 1e6)
                log("run %d: python handler p50 %.0f us p99 %.0f; native "
                    "echo p50 %.0f us p99 %.0f" % (
                        run + 1, p50s["py"][-1], p99s["py"][-1],
                        p50s["echo"][-1], p99s["echo"][-1]))
    finally:
        cl.close()
    m = {k: statistics.median(v) for k, v in p50s.items()}
    m99 = {k: statistics.median(v) for k, v in p99s.items()}
    print("round trip, one task at a time from the Python client, %d x %d "
          "(median of runs):" % (args.runs, args.lat_n))
    print("  Python handler py.noop: p50 %.0f us, p99 %.0f us"
          % (m["py"], m99["py"]))
    print("  native echo:            p50 %.0f us, p99 %.0f us"
          % (m["echo"], m99["echo"]))
    print("  ratio p50 %.2f, p99 %.2f" % (m["py"] / m["echo"],
                                           m99["py"] / m99["echo"]))


def map_child(args):
    """In a fresh process: one map of args.map_n items; print a line."""
    c = taskwheel.Client(args.frontend, timeout=30)
    c.ping()
    list(c.map("py.noop", range(1000), concurrency=args.map_concurrency))
    before = rss_kib()
    t0 = time.perf_counter()
    n = 0
    for _ in c.map("py.noop", range(args.map_n),
                   concurrency=args.map_concurrency):
        n += 1
    took = time.perf_counter() - t0
    peak = rss_kib("VmHWM")
    c.close()
    print("%d %.3f %d %d" % (n, took, before, peak))


def map_memory(args, tmp):
    cl, b = tw_cluster(os.path.join(tmp, "map"), args.procs, args.slots)
    rows = []
    try:
        for run in range(args.runs):
            out = subprocess.run(
                [PY, os.path.abspath(__file__), "--map-child",
                 "--frontend", b.frontend, "--map-n", str(args.map_n),
                 "--map-concurrency", str(args.map_concurrency)],
                capture_output=True, text=True, timeout=1800, check=True)
            n, took, before, peak = out.stdout.split()
            rows.append((int(n), float(took), int(before), int(peak)))
            log("run %d: %s items in %.1f s, client RSS %d KiB before, peak "
                "%d KiB" % (run + 1, n, float(took), int(before), int(peak)))
    finally:
        cl.close()
    took = statistics.median(r[1] for r in rows)
    growth = max(r[3] - r[2] for r in rows)
    peak = max(r[3] for r in rows)
    print("map of %d items from Python over a Python handler, concurrency "
          "%d, %d runs:" % (args.map_n, args.map_concurrency, args.runs))
    print("  median %.1f s (%.0f items/s); client peak RSS %.1f MiB, at "
          "most %.1f MiB above its RSS before the map (ceiling %d MiB)" % (
              took, args.map_n / took, peak / 1024, growth / 1024,
              args.map_ceiling))
    if growth / 1024 > args.map_ceiling:
        print("  CEILING EXCEEDED")
        return 1
    return 0


def machine():
    model = "unknown cpu"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return "%d cores, %s, Linux %s, Python %s" % (
        os.cpu_count(), model, os.uname().release,
        ".".join(map(str, sys.version_info[:3])))


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--n", type=int, default=20000,
                   help="taskwheel tasks per throughput run")
    p.add_argument("--window", type=int, default=4000,
                   help="taskwheel tasks in flight at most")
    p.add_argument("--celery-n", type=int, default=1000)
    p.add_argument("--rq-n", type=int, default=200)
    p.add_argument("--procs", type=int, default=8,
                   help="worker children / celery concurrency / rq workers")
    p.add_argument("--slots", type=int, default=0,
                   help="the taskwheel worker's slots (default 4 x procs: "
                   "tasks it holds, as Celery's prefetch does)")
    p.add_argument("--lat-n", type=int, default=1000)
    p.add_argument("--map-n", type=int, default=100000)
    p.add_argument("--map-concurrency", type=int, default=256)
    p.add_argument("--map-ceiling", type=int, default=16,
                   help="MiB the map may add to the client's memory")
    p.add_argument("--only", default="throughput,latency,map")
    p.add_argument("--map-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--frontend", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.slots = args.slots or 4 * args.procs
    if args.map_child:
        map_child(args)
        return 0
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    print("machine: " + machine())
    status = 0
    with tempfile.TemporaryDirectory(prefix="tw-pybench-") as tmp:
        only = args.only.split(",")
        if "throughput" in only:
            throughput(args, tmp)
        if "latency" in only:
            latency(args, tmp)
        if "map" in only:
            status |= map_memory(args, tmp)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
