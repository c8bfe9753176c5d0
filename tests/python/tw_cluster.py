"""tests/python/tw_cluster.py - real brokers and workers for the Python tests.

The Python counterpart of tests/harness/harness.c: start a real
taskwheel-broker on three fresh loopback ports with its own data
directory, start real taskwheel-workers against it, and stop every
process by pid (its process group) when the test ends, however it ends.
Each child's stdout and stderr go to a log file in the test's temporary
directory; when a test fails, conftest.py prints the tail of every log.

Program paths come from TW_BROKER_BIN, TW_WORKER_BIN and TW_CLI_BIN (ctest
sets them), else from build/ in the source tree. Waiting is always for a
condition with a deadline (:func:`wait_for`), never for a fixed time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PYDIR = os.path.join(ROOT, "python")
HERE = os.path.dirname(os.path.abspath(__file__))


def program(env: str, rel: str) -> str:
    return os.environ.get(env) or os.path.join(ROOT, "build", rel)


BROKER = program("TW_BROKER_BIN", "broker/taskwheel-broker")
WORKER = program("TW_WORKER_BIN", "worker/taskwheel-worker")
CLI = program("TW_CLI_BIN", "client/taskwheel")
PYTHON = sys.executable

_ports: set = set()


def free_port() -> int:
    """A loopback TCP port that was free a moment ago, never the same one
    twice in a run."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _ports:
            _ports.add(port)
            return port


def wait_for(pred: Callable[[], object], timeout: float = 20.0,
             what: str = "condition", every: float = 0.02) -> object:
    """Poll ``pred`` until it returns something true; AssertionError with
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s"
                                 % (timeout, what))
        time.sleep(every)


class Proc:
    """One child process we started."""

    def __init__(self, argv: Sequence[str], log: str,
                 env: Optional[Dict[str, str]] = None,
                 cwd: Optional[str] = None):
        self.argv = list(argv)
        self.log = log
        with open(log, "ab") as out:
            self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                      stdout=out, stderr=out,
                                      start_new_session=True, env=env,
                                      cwd=cwd)
        self.pid = self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def signal(self, sig: int) -> None:
        """``sig`` to this process only."""
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGTERM, wait, then SIGKILL its process group."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill_group()
        return self.p.returncode

    def kill_group(self) -> None:
        """SIGKILL everything in its process group (it leads one)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def log_text(self) -> str:
        try:
            with open(self.log, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Broker:
    """A broker on three fresh ports; restartable on the same ones."""

    def __init__(self, cluster: "Cluster", extra: Sequence[str],
                 data: bool):
        self.cluster = cluster
        self.ports = [free_port() for _ in range(3)]
        self.frontend = "tcp://127.0.0.1:%d" % self.ports[0]
        self.backend = "tcp://127.0.0.1:%d" % self.ports[1]
        self.status = "tcp://127.0.0.1:%d" % self.ports[2]
        cluster.nbrokers += 1
        self.n = cluster.nbrokers
        self.data = os.path.join(cluster.tmp, "broker-%d-data" % self.n) \
            if data else None
        if self.data:
            os.makedirs(self.data, exist_ok=True)
        self.extra = list(extra)
        self.generation = 0
        self.proc: Optional[Proc] = None
        self.start()

    def start(self, extra: Sequence[str] = ()) -> None:
        argv = [BROKER, "--frontend", self.frontend, "--backend",
                self.backend, "--status", self.status] + self.extra + \
            list(extra)
        if self.data:
            argv += ["--data", self.data]
        self.generation += 1
        self.proc = self.cluster.spawn(
            argv, "broker-%d.%d.log" % (self.n, self.generation))

    def restart(self, extra: Sequence[str] = ()) -> None:
        assert self.proc is not None and not self.proc.alive()
        self.start(extra)


class Cluster:
    """Everything one test started; :meth:`close` stops it all."""

    def __init__(self, tmp: str):
        self.tmp = tmp
        self.procs: List[Proc] = []
        self.nbrokers = 0
        self.nworkers = 0
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(
            [PYDIR, HERE] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        self.env.pop("TASKWHEEL_BROKER", None)

    def spawn(self, argv: Sequence[str], logname: str,
              env: Optional[Dict[str, str]] = None,
              cwd: Optional[str] = None) -> Proc:
        p = Proc(argv, os.path.join(self.tmp, logname), env or self.env, cwd)
        self.procs.append(p)
        return p

    def broker(self, *extra: str, data: bool = True,
               ready: bool = True) -> Broker:
        """Start a broker (with a store unless ``data`` is False) and wait
        until it answers a ping."""
        b = Broker(self, extra, data)
        if ready:
            self.wait_ready(b)
        return b

    def wait_ready(self, b: Broker, timeout: float = 30.0) -> None:
        import taskwheel
        with taskwheel.Client(b.frontend, timeout=1.0) as c:
            def pong() -> bool:
                assert b.proc is not None
                if not b.proc.alive():
                    raise AssertionError("the broker exited:\n"
                                         + b.proc.log_text()[-2000:])
                try:
                    c.ping(0.5)
                    return True
                except taskwheel.Unreachable:
                    return False
            wait_for(pong, timeout, "the broker to answer")

    def worker(self, b: Broker, *extra: str, slots: int = 4,
               name: Optional[str] = None, cwd: Optional[str] = None) -> Proc:
        """Start a worker against ``b`` (it registers in the background;
        use :func:`wait_workers`)."""
        self.nworkers += 1
        name = name or "w%d" % self.nworkers
        argv = [WORKER, "--broker", b.backend, "--slots", str(slots),
                "--name", name] + list(extra)
        return self.spawn(argv, "worker-%d.log" % self.nworkers, cwd=cwd)

    def cli(self, *args: str, timeout: float = 30.0,
            env: Optional[Dict[str, str]] = None
            ) -> subprocess.CompletedProcess:
        return subprocess.run([CLI] + list(args), capture_output=True,
                              text=True, timeout=timeout,
                              env=env or self.env)

    def logs(self) -> str:
        out = []
        for p in self.procs:
            out.append("==== %s (pid %d%s)\n%s" % (
                os.path.basename(p.log), p.pid,
                ", running" if p.alive() else
                ", exit %s" % p.p.returncode, p.log_text()[-4000:]))
        return "\n".join(out)

    def close(self) -> None:
        for p in reversed(self.procs):
            p.stop(5.0)


def wait_workers(client, n: int, handler: Optional[str] = None,
                 timeout: float = 30.0) -> list:
    """Wait until the broker lists ``n`` workers (offering ``handler``)."""
    def ready():
        ws = [w for w in client.workers()
              if handler is None or handler in w.handlers]
        return ws if len(ws) >= n else None
    return wait_for(ready, timeout, "%d worker(s)%s" % (
        n, " offering " + handler if handler else ""))  # type: ignore
