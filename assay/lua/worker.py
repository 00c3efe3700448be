"""Natives behind ``assay.workflow``'s worker: engine calls, graceful stop, heartbeats, extra slots.

* Engine calls reuse one keep-alive connection per Lua state; a long poll can be aborted at once when
  the process is asked to stop (SIGINT/SIGTERM).
* Signals are noticed through ``signal.set_wakeup_fd`` by a watcher thread, so stopping works even
  while the main thread is busy inside Lua code; the first signal asks the worker to finish the task
  in hand and exit, a second one exits immediately.
* A heartbeat thread posts ``/workers/heartbeat`` on a timer while Lua code runs, which also extends
  the leases the worker holds.
* ``listen{concurrency = N}`` runs N-1 extra Lua states in threads (each loads the script again).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from assay.lua.natives import LuaRaise, from_lua, is_table, native, raw, text, to_lua
from assay.lua.std_http import INFLIGHT, Aborted, HttpClient, describe_error

log = logging.getLogger("assay.lua.worker")


class EngineHandle:
    def __init__(self, base: str, headers: dict[str, str], timeout: float = 30.0) -> None:
        self.base = base.rstrip("/")
        self.headers = headers
        self.client = HttpClient(timeout=timeout, follow_redirects=False)


class Polling:
    """How many Lua states are inside a poll right now (engine calls marked interruptible are polls)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.n = 0

    def enter(self) -> None:
        with self._lock:
            self.n += 1

    def leave(self) -> None:
        with self._lock:
            self.n -= 1


POLLING = Polling()


class Heartbeat:
    """POST the worker heartbeat every ``interval`` seconds until stopped. With ``idle_interval`` (the
    engine counts polls as heartbeats), only every ``idle_interval`` while the worker is idle: all of its
    ``states`` Lua states are inside a poll, so none holds a task."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        body: bytes,
        interval: float,
        idle_interval: float | None = None,
        states: int = 1,
    ) -> None:
        self.url, self.headers, self.body, self.interval = url, headers, body, interval
        self.idle_interval, self.states = idle_interval, states
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="assay-heartbeat", daemon=True)
        self.beats = 0

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        client = HttpClient(timeout=max(2.0, min(10.0, self.interval * 2)), follow_redirects=False)
        failing = False
        last = time.monotonic()
        while not self.done.wait(self.interval):
            if (
                self.idle_interval is not None
                and POLLING.n >= self.states
                and time.monotonic() - last < self.idle_interval
            ):
                continue
            last = time.monotonic()
            try:
                r = client.request("POST", self.url, self.body, self.headers)
                self.beats += 1
                if r.status >= 400 and not failing:
                    log.warning("worker heartbeat answered HTTP %s: %s", r.status, r.body[:200])
                failing = r.status >= 400
            except Exception as e:  # engine down: the poll loop reports it; keep trying quietly
                if not failing:
                    log.debug("worker heartbeat failed: %s", describe_error(e))
                failing = True
        client.close()

    def stop(self) -> None:
        self.done.set()


class StopSignals:
    """First SIGINT/SIGTERM: stop gracefully. Second: exit at once."""

    def __init__(self) -> None:
        self.installed = False

    def install(self) -> bool:
        if self.installed or threading.current_thread() is not threading.main_thread():
            return False
        self.rfd, self.wfd = os.pipe()
        os.set_blocking(self.wfd, False)
        self.prev_fd = signal.set_wakeup_fd(self.wfd, warn_on_full_buffer=False)
        self.prev = {s: signal.signal(s, self._noop) for s in (signal.SIGINT, signal.SIGTERM)}
        self.thread = threading.Thread(target=self._watch, name="assay-signals", daemon=True)
        self.thread.start()
        self.installed = True
        return True

    @staticmethod
    def _noop(signum: int, frame: Any) -> None:
        pass  # the watcher thread does the work (it may take locks; a signal handler must not)

    def _watch(self) -> None:
        count = 0
        while True:
            try:
                data = os.read(self.rfd, 64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum not in (signal.SIGINT, signal.SIGTERM):
                    continue
                count += 1
                name = signal.Signals(signum).name
                if count == 1:
                    log.info(
                        "%s received: finishing the task in hand, then exiting (send again to force)", name
                    )
                    INFLIGHT.stopping.set()
                    INFLIGHT.abort_all()
                else:
                    log.warning("%s received again: exiting now", name)
                    for s in (sys.stdout, sys.stderr):
                        try:
                            s.flush()
                        except (OSError, ValueError):
                            pass
                    os._exit(128 + signum)

    def uninstall(self) -> None:
        if not self.installed:
            return
        self.installed = False
        signal.set_wakeup_fd(self.prev_fd)
        for s, h in self.prev.items():
            signal.signal(s, h)
        os.close(self.wfd)
        self.thread.join(2)
        os.close(self.rfd)


class WorkerNatives:
    def __init__(self, lua: Any, runtime: Any) -> None:
        self.lua = lua
        self.runtime = runtime
        self.engines: list[EngineHandle] = []
        self.heartbeats: list[Heartbeat] = []
        self.signals = StopSignals()
        self.replicas: list[threading.Thread] = []

    def shutdown(self) -> None:
        for hb in self.heartbeats:
            hb.stop()
        self.signals.uninstall()
        for e in self.engines:
            e.client.close()

    @native("_engine_new")
    def engine_new(self, base: Any = None, headers: Any = None, timeout: Any = None) -> EngineHandle:
        h = from_lua(headers) if is_table(headers) else {}
        hdrs = {str(k): str(v) for k, v in (h.items() if isinstance(h, dict) else [])}
        t = float(timeout) if isinstance(timeout, int | float) and timeout > 0 else 30.0
        e = EngineHandle(text(base, "url"), hdrs, t)
        self.engines.append(e)
        return e

    @native("_engine_call")
    def engine_call(
        self,
        handle: Any = None,
        method: Any = None,
        path: Any = None,
        body: Any = None,
        timeout: Any = None,
        interruptible: Any = None,
    ) -> tuple[int, bytes]:
        if not isinstance(handle, EngineHandle):
            raise LuaRaise("not connected")
        m, p = text(method), text(path)
        headers = dict(handle.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        t = float(timeout) if isinstance(timeout, int | float) and timeout > 0 else None
        poll = interruptible is True
        if poll:
            POLLING.enter()
        try:
            r = handle.client.request(m, handle.base + p, body, headers, t, interruptible=poll)
        except Aborted:
            return 0, b""
        except Exception as e:
            raise LuaRaise(f"{describe_error(e)} ({m} {handle.base}{p})", bare=True) from None
        finally:
            if poll:
                POLLING.leave()
        return r.status, r.body

    @native("_stopping")
    def stopping(self) -> bool:
        return INFLIGHT.stopping.is_set()

    @native("_wait")
    def wait(self, secs: Any = None) -> bool:
        """Sleep up to ``secs``; returns true (early) when the process is stopping."""
        return INFLIGHT.stopping.wait(max(0.0, float(secs or 0)))

    @native("_monotonic")
    def monotonic(self) -> float:
        return time.monotonic()

    @native("_request_stop")
    def request_stop(self) -> None:
        INFLIGHT.stopping.set()
        INFLIGHT.abort_all()

    @native("_install_stop")
    def install_stop(self) -> bool:
        INFLIGHT.stopping.clear()
        return self.signals.install()

    @native("_uninstall_stop")
    def uninstall_stop(self) -> None:
        self.signals.uninstall()

    @native("_heartbeat_start")
    def heartbeat_start(
        self,
        handle: Any = None,
        path: Any = None,
        body: Any = None,
        interval: Any = None,
        idle_interval: Any = None,
        states: Any = None,
    ) -> Heartbeat:
        if not isinstance(handle, EngineHandle):
            raise LuaRaise("not connected")
        every = float(interval) if isinstance(interval, int | float) and interval > 0 else 5.0
        idle = float(idle_interval) if isinstance(idle_interval, int | float) and idle_interval > 0 else None
        n = int(states) if isinstance(states, int | float) and states >= 1 else 1
        headers = dict(handle.headers, **{"Content-Type": "application/json"})
        hb = Heartbeat(handle.base + text(path), headers, raw(body), every, idle, n)
        hb.start()
        self.heartbeats.append(hb)
        return hb

    @native("_heartbeat_stop")
    def heartbeat_stop(self, hb: Any = None) -> None:
        if isinstance(hb, Heartbeat):
            hb.stop()

    @native("_settings")
    def settings(self, *names: Any) -> Any:
        """Worker settings (assay/config.py) from the environment, read at call time; `names` picks some."""
        from assay.config import ClientSettings, WorkerSettings, declared
        from assay.config import from_env as read
        from assay.errors import ConfigError

        rows = {
            **declared(WorkerSettings),
            **{n: declared(ClientSettings)[n] for n in ("engine_url", "api_key")},
        }
        wanted = [text(n, "name") for n in names] or list(rows)
        try:
            values = {n: read(rows[n]) for n in wanted}
        except ConfigError as e:
            raise LuaRaise(e.message, bare=True) from None
        return to_lua(self.lua, values)

    @native("_replay_mode")
    def replay_mode(self) -> bool:
        """True under `assay replay`: connect and listen do nothing (the file only defines handlers)."""
        return bool(getattr(self.runtime, "replay", False))

    @native("_build_id")
    def build_id(self) -> Any:
        """First 12 hex of the sha256 of the worker file (of the code string for `-e`)."""
        rt = self.runtime
        try:
            if rt.path is not None:
                with open(rt.path, "rb") as f:
                    data = f.read()
            else:
                data = (rt.code or "").encode()
        except OSError:
            return None
        return raw(hashlib.sha256(data).hexdigest()[:12])

    @native("_replica_info")
    def replica_info(self) -> Any:
        r = self.runtime.replica
        return None if r is None else to_lua(self.lua, r)

    @native("_spawn_replicas")
    def spawn_replicas(self, n: Any = None, info: Any = None) -> int:
        count = int(n) if isinstance(n, int | float) else 0
        base = from_lua(info) if is_table(info) else {}
        for i in range(count):
            slot = dict(base, slot=i + 2)
            t = threading.Thread(
                target=self._run_replica, args=(slot,), name=f"assay-slot-{i + 2}", daemon=True
            )
            t.start()
            self.replicas.append(t)
        return count

    def _run_replica(self, info: dict) -> None:
        try:
            self.runtime.run_replica(info)  # the owning Runtime starts the same script in a new Lua state
        except BaseException:  # never let a slot take the process down
            log.exception("worker slot %s crashed", info.get("slot"))

    @native("_join_replicas")
    def join_replicas(self) -> None:
        for t in self.replicas:
            while t.is_alive():
                t.join(0.5)
        self.replicas = []
