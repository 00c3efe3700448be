"""The engine's shared core and the base of its services.

`EngineCore` holds what every service shares (store, clock, settings, wake-ups, SSE, the held-request
budget) and the one transaction helper: `tx()` opens a write transaction whose effects are delivered after
commit, and `retrying(op)` reruns a whole operation when the store calls its failure transient (a Postgres
deadlock or serialization failure). The `Engine` facade wraps every public operation with it, so API
requests and the background loops share the same retry.

`Service` is the base of the engine's services (workflows, tasks, commands, schedules, archive, and the
lifecycle steps they share); services do not inherit from each other: each receives the services it calls.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import ParamSpec, TypeVar

from assay.clock import Clock
from assay.config import Settings, load_settings
from assay.engine.notify import Broadcaster, Effects, Notifier
from assay.errors import NotFound
from assay.metrics import NullMetrics, for_engine
from assay.store.base import Record, Store, Tx

log = logging.getLogger("assay.engine")

P = ParamSpec("P")
T = TypeVar("T")

#: attempts of an operation whose transaction failed transiently (the last failure is raised)
TRANSIENT_ATTEMPTS = 4


class Registry:
    """Rows the hot path looks up on nearly every request and that change only through this engine
    (single-instance stores): worker rows and the names of existing namespaces.

    A worker row's registration (namespace, queue, names served, sticky, build id) never changes: the row
    is inserted, touched (last_heartbeat, which is not kept here) and deleted. Every deletion goes
    through the engine (deregister, reap), which forgets the row after its commit; a read that began
    before that cannot put it back (a generation check). Namespaces are remembered once a committed
    transaction saw them, and forgotten by delete_namespace inside its own transaction.

    On a store several instances share (Postgres), another instance may delete or re-register a worker
    or delete a namespace at any time: the registry is off and every lookup reads the row, as before.
    (A SQLite store has one engine: the engine lock says so for processes; in one process, one `Engine`
    per store, as the server builds it.)"""

    MAX_WORKERS = 10_000
    #: columns of a worker row that change after registration (not kept: read them from the store)
    MUTABLE = ("last_heartbeat", "active_tasks")

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._gen = 0
        self._workers: dict[str, Record] = {}
        self._namespaces: set[str] = set()

    def worker(self, tx: Tx, worker_id: str) -> Record | None:
        """The worker's registration (None: no such worker). Read-only: callers never change it."""
        if not self.enabled:
            return tx.get_worker(worker_id)
        w = self._workers.get(worker_id)
        if w is not None:
            return w
        gen = self._gen
        row = tx.get_worker(worker_id)
        if row is None:
            return None
        w = {k: v for k, v in row.items() if k not in self.MUTABLE}
        with self._lock:
            if self._gen == gen:  # no deletion since the read began
                if len(self._workers) >= self.MAX_WORKERS:
                    self._workers.clear()
                self._workers[worker_id] = w
        return w

    def forget_workers(self, worker_id: str | None = None) -> None:
        """After a commit that deleted a worker row (None: some rows, unknown which)."""
        with self._lock:
            self._gen += 1
            if worker_id is None:
                self._workers.clear()
            else:
                self._workers.pop(worker_id, None)

    def has_namespace(self, name: str) -> bool:
        return self.enabled and name in self._namespaces

    def saw_namespace(self, name: str, gen: int) -> None:
        """After the commit of a transaction that found or created the namespace."""
        with self._lock:
            if self._gen == gen and len(self._namespaces) < self.MAX_WORKERS:
                self._namespaces.add(name)

    def forget_namespace(self, name: str) -> None:
        with self._lock:
            self._gen += 1
            self._namespaces.discard(name)

    @property
    def generation(self) -> int:
        return self._gen


class EngineCore:
    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        settings: Settings | None = None,
        notifier: Notifier | None = None,
        broadcaster: Broadcaster | None = None,
    ) -> None:
        self.store = store
        self.clock = clock or Clock()
        self.settings = settings or load_settings({"backend": "sqlite::memory:"}, environ={})
        self.notifier = notifier or Notifier()
        self.broadcaster = broadcaster or Broadcaster()
        self.instance_id = "assay-" + secrets.token_hex(8)
        self.started_at = self.clock.now()
        self._held = 0
        self._peak_held = 0  # the most requests held at once since the last shrink_pool()
        #: workers seen polling since the last flush (LivenessLoop writes them as heartbeats, in one go)
        self._alive: dict[str, float] = {}
        self._held_lock = threading.Lock()
        #: the HTTP pool's size; `grow_pool(n)` (set by the server) resizes it for held requests
        self.pool_threads = self.settings.threads
        self.grow_pool: Callable[[int], None] | None = None
        #: set by Engine: claims the tasks a transaction made ready for held polls, before it commits
        self.hand_over: Callable[[Tx, Effects], None] | None = None
        #: set by Engine: reads the histories of the workflow tasks a transaction claimed, after it commits
        self.load_histories: Callable[[list[Record]], None] | None = None
        self.metrics: NullMetrics = for_engine(self)  # assay/metrics.py (NullMetrics when ASSAY_METRICS=0)
        #: worker rows and namespace names remembered between requests (single-instance stores only)
        self.registry = Registry(enabled=not store.multi_instance)

    # --- transactions -------------------------------------------------------------------------
    @contextmanager
    def tx(self) -> Iterator[tuple[Tx, Effects]]:
        """A write transaction whose effects (wake-ups, SSE) are delivered only after it commits."""
        fx = Effects()
        try:
            with self.store.tx() as tx:
                yield tx, fx
                if fx.ready and self.hand_over is not None:
                    self.hand_over(tx, fx)  # claimed for held polls in this transaction (dispatch.py)
        except BaseException:
            fx.abort(self.notifier)
            raise
        fx.flush(self.notifier, self.broadcaster)
        if fx.histories and self.load_histories is not None:  # never inside the writer lock
            self.load_histories(fx.histories)

    def retrying(self, op: Callable[P, T]) -> Callable[P, T]:
        """`op`, rerun (up to TRANSIENT_ATTEMPTS times, after a short jittered pause) when it fails with an
        error the store calls transient: its transaction was rolled back, so running it again is safe."""

        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
                try:
                    return op(*args, **kwargs)
                except Exception as e:
                    if attempt == TRANSIENT_ATTEMPTS or not self.store.is_transient(e):
                        raise
                    log.info("rerunning %s after a transient store error: %s", _name(op), type(e).__name__)
                    time.sleep(random.uniform(0, 0.005 * 2**attempt))
            raise AssertionError("unreachable")  # pragma: no cover

        run.__name__ = _name(op)
        run.__doc__ = op.__doc__
        return run

    def now(self) -> float:
        return self.clock.now()

    # --- held requests (long-poll / SSE) ---------------------------------------------------------
    def try_hold(self, kind: str) -> bool:
        """Reserve a server thread for a held request; False when only the reserve is left and the pool
        cannot grow (ASSAY_MAX_THREADS)."""
        with self._held_lock:
            if kind == "sse" and self.broadcaster.count >= self.settings.sse_max_streams:
                return False
            if self._held >= self.pool_threads - self.settings.reserve and not self._grow():
                return False
            self._held += 1
            self._peak_held = max(self._peak_held, self._held)
            return True

    def _grow(self) -> bool:
        """Grow the HTTP pool (by a quarter, at least 8 threads) up to the ceiling; False at the ceiling
        or when no server can grow (in-process WSGI). Called with _held_lock held."""
        ceiling = self.settings.thread_ceiling
        if self.grow_pool is None or self.pool_threads >= ceiling:
            return False
        size = min(ceiling, self.pool_threads + max(8, self.pool_threads // 4))
        try:
            self.grow_pool(size)
        except Exception:  # pragma: no cover - a pool that cannot grow: answer as if at the ceiling
            log.exception("could not grow the HTTP thread pool to %d", size)
            return False
        log.info("HTTP thread pool grown to %d threads (%d held requests)", size, self._held + 1)
        self.pool_threads = size
        return True

    def note_alive(self, worker_id: str) -> None:
        """A worker's poll arrived: it is alive now (written by LivenessLoop with the others, not here:
        an idle poll opens no write transaction)."""
        now = self.clock.now()
        with self._held_lock:
            self._alive[worker_id] = now

    def note_alive_at(self, seen: list[tuple[str, float]]) -> None:
        """Note again heartbeats whose write failed (a later note of the same worker wins)."""
        with self._held_lock:
            for worker_id, at in seen:
                self._alive[worker_id] = max(at, self._alive.get(worker_id, at))

    def take_alive(self) -> list[tuple[str, float]]:
        """The workers seen since the last call, with when (and forget them)."""
        with self._held_lock:
            alive, self._alive = self._alive, {}
        return list(alive.items())

    def shrink_pool(self) -> int | None:
        """Give back the threads a crowd of held requests made the pool grow by, once the crowd is gone:
        the size the busiest moment since the last call needed (held + reserve + a quarter, at least the
        configured ASSAY_THREADS), if that is at most half the current size. Returns the new size, or None
        when it stays. (Idle threads exit at once; a busy one after its request.)"""
        with self._held_lock:
            peak, self._peak_held = max(self._peak_held, self._held), self._held
            base = self.settings.threads
            want = max(base, peak + self.settings.reserve + max(8, peak // 4))
            if self.grow_pool is None or self.pool_threads <= base or want > self.pool_threads // 2:
                return None
            try:
                self.grow_pool(want)
            except Exception:  # pragma: no cover - keep the larger pool
                log.exception("could not shrink the HTTP thread pool to %d", want)
                return None
            log.info("HTTP thread pool shrunk to %d threads (at most %d held requests lately)", want, peak)
            self.pool_threads = want
            return want

    def retry_after(self, wait_secs: float) -> float:
        """When a long-poll the server cannot hold should come back: about its own wait (0.5x-1x,
        jittered so a crowd spreads out), at least 1 s, at most ASSAY_LONG_POLL_MAX_SECS."""
        base = min(max(1.0, wait_secs), max(1.0, self.settings.long_poll_max_secs))
        return round(max(1.0, base * random.uniform(0.5, 1.0)), 3)

    def release_hold(self) -> None:
        with self._held_lock:
            self._held = max(0, self._held - 1)

    @property
    def held_requests(self) -> int:
        with self._held_lock:
            return self._held


def _name(op: Callable[..., object]) -> str:
    return str(getattr(op, "__name__", "operation"))


class Service:
    """Base of an engine service: shortcuts to the shared core (a service keeps no other shared state)."""

    def __init__(self, core: EngineCore) -> None:
        self.core = core

    @property
    def store(self) -> Store:
        return self.core.store

    @property
    def clock(self) -> Clock:
        return self.core.clock

    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def notifier(self) -> Notifier:
        return self.core.notifier

    @property
    def started_at(self) -> float:
        return self.core.started_at

    @property
    def metrics(self) -> NullMetrics:
        return self.core.metrics

    def _tx(self) -> AbstractContextManager[tuple[Tx, Effects]]:
        return self.core.tx()

    def now(self) -> float:
        return self.core.clock.now()

    # --- lookups ----------------------------------------------------------------------------
    @staticmethod
    def _get_wf(tx: Tx, wf_id: str, payloads: bool = True) -> Record:
        wf = tx.get_workflow(wf_id, payloads=payloads)
        if wf is None:
            raise NotFound(f"not found: workflow {wf_id}")
        return wf

    def _ensure_namespace(self, tx: Tx, namespace: str, now: float, fx: Effects | None = None) -> None:
        """Create the namespace if it does not exist (known ones are not read again: Registry)."""
        reg = self.core.registry
        if reg.has_namespace(namespace):
            return
        gen = reg.generation
        if tx.get_namespace(namespace) is None:
            tx.insert_namespace(namespace, now)
        if fx is not None and reg.enabled:
            fx.after.append((reg.saw_namespace, (namespace, gen)))

    def _worker(self, tx: Tx, worker_id: str) -> Record | None:
        """The worker's registration (Registry: not read again on single-instance stores)."""
        return self.core.registry.worker(tx, worker_id)
