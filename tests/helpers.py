"""Shared test helpers: a live `assay serve` process on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Every engine a test started, so a failing test can report one that died on its own (tests/conftest.py).
STARTED_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll `pred` until it returns a truthy value or the deadline passes (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last={last!r})")


def http(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 30.0):
    """Tiny HTTP helper: returns (status, parsed JSON or raw text or None, headers)."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            status, rh = r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        raw = e.read()
        status, rh = e.code, dict(e.headers)
    if not raw:
        return status, None, rh
    try:
        return status, json.loads(raw), rh
    except ValueError:
        return status, raw.decode("utf-8", "replace"), rh


def assay_cmd() -> list[str]:
    return [sys.executable, "-m", "assay"]


def subprocess_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("ASSAY_API_KEY", None)
    env.pop("DATABASE_URL", None)
    if extra:
        env.update(extra)
    return env


@dataclass(eq=False)
class Engine:
    url: str
    port: int
    db: str
    proc: subprocess.Popen
    log_path: Path
    args: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    stopping: bool = False  # set by stop()/kill(): an exit after that was asked for

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int:
        self.stopping = True
        return stop_process(self.proc, timeout)

    def kill(self) -> None:
        self.stopping = True
        kill_process(self.proc)

    def died(self) -> str | None:
        """Why this engine is gone when nobody stopped it (exit status and the end of its log), else None."""
        if self.stopping or self.proc.poll() is None:
            return None
        tail = "\n".join(self.log().splitlines()[-60:])
        return f"engine on port {self.port} exited by itself with status {self.proc.returncode}; log tail:\n{tail}"


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> int:
    """SIGTERM a process we started and wait for it (SIGKILL if it does not stop in time)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def kill_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def start_engine(
    tmp_path: Path,
    *,
    db: str | None = None,
    port: int | None = None,
    extra_args=(),
    env: dict | None = None,
    timeout: float = 20.0,
) -> Engine:
    """Start `assay serve` on a free port and wait until /health answers.

    A free port can be taken by another process between our probe and the engine's bind: when the engine
    says so (it checks the port before it touches the database), start again on another port."""
    for attempt in range(5):
        try:
            return _start_engine(tmp_path, db, port, extra_args, env, timeout)
        except PortTaken:
            if port is not None or attempt == 4:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


class PortTaken(AssertionError):
    pass


def _start_engine(tmp_path, db, port, extra_args, env, timeout) -> Engine:
    port = port or free_port()
    db = db or str(tmp_path / "engine.db")
    backend = db if "://" in db else "sqlite:///" + db
    log_path = tmp_path / f"engine-{port}.log"
    args = [*assay_cmd(), "serve", "--port", str(port), "--backend", backend, *extra_args]
    full_env = subprocess_env(env)
    logf = open(log_path, "ab")  # noqa: SIM115
    proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, env=full_env, cwd=str(tmp_path))
    logf.close()
    eng = Engine(f"http://127.0.0.1:{port}", port, db, proc, log_path, args, full_env)
    STARTED_ENGINES.add(eng)

    def up():
        if proc.poll() is not None:
            log = eng.log()
            if f"cannot listen on 127.0.0.1:{port}" in log:
                raise PortTaken(log)
            raise AssertionError(f"engine exited with {proc.returncode}:\n{log}")
        try:
            return http("GET", eng.api + "/health", timeout=2)[0] == 200
        except OSError:
            return False

    wait_until(up, timeout, what="engine /health")
    return eng


class FakeTicks:
    """A stand-in for a timer loop's stop event (`while not done.wait(interval)`): `n` intervals pass on the
    fake clock `clock` (a one-item list), `on_tick(k)` runs after each, then the loop is told to stop."""

    def __init__(self, n: int, clock: list[float], on_tick=None) -> None:
        self.n, self.clock, self.on_tick, self.k = n, clock, on_tick, 0

    def wait(self, secs: float) -> bool:
        if self.k == self.n:
            return True
        self.k += 1
        self.clock[0] += secs
        if self.on_tick:
            self.on_tick(self.k)
        return False

    def set(self) -> None:
        pass
