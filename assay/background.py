"""Background loops. Each is a `tick(now) -> next due time` over the engine, driven either by a test
(FakeClock, call tick directly) or by the Supervisor's thread, which sleeps until the next due time
(capped) or until woken through the notifier. No fixed-interval polling."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from assay.engine import Engine

log = logging.getLogger("assay.background")


class Loop:
    name = "loop"
    #: loops that must run on one instance only (Postgres leader)
    leader_only = False

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.last_tick: float | None = None
        self.last_error: str | None = None
        self.errors = 0
        self.ticks = 0

    def tick(self, now: float) -> float | None:  # pragma: no cover - abstract
        """Do the due work; return the absolute time of the next due work (None: nothing scheduled)."""
        raise NotImplementedError

    def wake_keys(self) -> list[str]:
        return ["loop:" + self.name]

    def report(self) -> dict[str, Any]:
        return {
            "last_tick": self.last_tick,
            "ticks": self.ticks,
            "errors": self.errors,
            "last_error": self.last_error,
        }


class TimerLoop(Loop):
    """Fires due durable timers (TimerFired + wake the workflow)."""

    name = "timers"
    leader_only = True

    def tick(self, now: float) -> float | None:
        self.engine.fire_due_timers()
        return self.engine.next_timer_due()


class ActivityLoop(Loop):
    """start_to_close / heartbeat timeouts, lost-worker recovery, and retry-backoff wake-ups."""

    name = "activities"
    leader_only = True

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._retry_mark = engine.now() - 86400.0

    def tick(self, now: float) -> float | None:
        self.engine.expire_activities()
        next_retry = self.engine.wake_due_retries(self._retry_mark)
        self._retry_mark = now
        cands = [t for t in (next_retry, self.engine.next_activity_deadline()) if t is not None]
        # lost-worker detection needs a periodic look while workers exist
        cands.append(now + 5.0)
        return min(cands)


class DispatchRecoveryLoop(Loop):
    """Releases workflow-task leases whose holder went silent (ASSAY_WF_DISPATCH_TIMEOUT_SECS)."""

    name = "dispatch"
    leader_only = True

    def tick(self, now: float) -> float | None:
        self.engine.recover_leases()
        nxt = self.engine.next_lease_expiry()
        # a lease taken after this tick expires no sooner than now + timeout: look again by then
        horizon = now + self.engine.settings.dispatch_timeout_secs
        return max(min(nxt, horizon) if nxt is not None else horizon, now + 0.05)


class WorkerReaperLoop(Loop):
    name = "workers"

    def tick(self, now: float) -> float | None:
        self.engine.reap_workers()
        nxt = self.engine.next_worker_reap()
        # a silent worker still holding work is kept until that work is recovered: look again later
        return None if nxt is None else max(nxt, now + 1.0)


class SchedulerLoop(Loop):
    """Fires due cron schedules. Leader-only under Postgres."""

    name = "scheduler"
    leader_only = True

    def tick(self, now: float) -> float | None:
        self.engine.fire_due_schedules()
        return self.engine.next_schedule_due()


class EngineLockLoop(Loop):
    """Keeps the SQLite engine lock fresh so a crashed engine's lock can be recognised as stale."""

    name = "engine_lock"

    def tick(self, now: float) -> float | None:
        self.engine.store.refresh_engine_lock(self.engine.instance_id, now)
        return now + 15.0


class LivenessLoop(Loop):
    """Writes the heartbeats the engine noted in memory (each poll of a worker is one: POLL_IS_HEARTBEAT),
    all of them in one transaction every LIVENESS_FLUSH_SECS, so an idle worker needs no heartbeat
    requests and its held polls no writes."""

    name = "liveness"

    def tick(self, now: float) -> float | None:
        self.engine.write_noted_heartbeats()
        return now + LIVENESS_FLUSH_SECS


#: how often LivenessLoop writes the workers seen polling (well inside ASSAY_WORKER_REAP_SECS)
LIVENESS_FLUSH_SECS = 2.0


class PoolLoop(Loop):
    """Shrinks the HTTP thread pool back after a crowd of held requests (long polls, event streams) made
    it grow (EngineCore.shrink_pool), looking every POOL_SHRINK_SECS."""

    name = "pool"

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._due = engine.now() + POOL_SHRINK_SECS

    def tick(self, now: float) -> float | None:
        if now >= self._due:
            self.engine.core.shrink_pool()
            self._due = now + POOL_SHRINK_SECS
        return self._due


#: how often PoolLoop looks whether the HTTP pool may shrink (it shrinks after a quiet interval)
POOL_SHRINK_SECS = 60.0


class MetricsLoop(Loop):
    """Samples the one-hour metrics history behind the dashboard charts (assay/metrics.py), every 10 s."""

    name = "metrics"

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._due = 0.0

    def tick(self, now: float) -> float | None:
        if now >= self._due:  # the supervisor also wakes a loop at its max sleep: sample only when due
            self._due = self.engine.metrics.sample(now) or now + 10.0
        return self._due


class ArchiveLoop(Loop):
    """S3 archival and local retention (assay/archive.py), every ASSAY_ARCHIVE_POLL_SECS. Leader only."""

    name = "archiver"
    leader_only = True

    def __init__(self, engine: Engine, archiver) -> None:
        super().__init__(engine)
        self.archiver = archiver

    def tick(self, now: float) -> float | None:
        self.archiver.run_once()
        return now + self.engine.settings.archive_poll_secs

    def report(self) -> dict[str, Any]:
        return dict(
            super().report(),
            archived=self.archiver.archived,
            failed=self.archiver.failed,
            deleted=self.archiver.deleted,
        )


def default_loops(engine: Engine, *, engine_lock: bool = False) -> list[Loop]:
    loops: list[Loop] = [
        TimerLoop(engine),
        ActivityLoop(engine),
        DispatchRecoveryLoop(engine),
        WorkerReaperLoop(engine),
        SchedulerLoop(engine),
        LivenessLoop(engine),
    ]
    if engine_lock:
        loops.append(EngineLockLoop(engine))
    if engine.core.grow_pool is not None:  # a server whose pool can be resized
        loops.append(PoolLoop(engine))
    if engine.metrics.enabled:
        loops.append(MetricsLoop(engine))
    return loops


class Supervisor:
    """Runs each loop in a daemon thread; a crashing tick is logged and retried with backoff."""

    def __init__(self, engine: Engine, loops: list[Loop], max_sleep: float = 5.0) -> None:
        self.engine = engine
        self.loops = loops
        self.max_sleep = max_sleep
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.is_leader = not engine.store.multi_instance

    def start(self) -> None:
        for loop in self.loops:
            t = threading.Thread(target=self._run, args=(loop,), name=f"assay-{loop.name}", daemon=True)
            t.start()
            self._threads.append(t)

    def _run(self, loop: Loop) -> None:
        notifier = self.engine.notifier
        backoff = 0.5
        due: float | None = None
        while not self._stop.is_set() and not notifier.closed:
            since = notifier.versions(loop.wake_keys())
            now = self.engine.now()
            if due is not None and now >= due:  # woke for its due time (not early): how late is it?
                self.engine.metrics.loop_lag(loop.name, now - due)
            nxt: float | None = None
            if loop.leader_only and not self._leader():
                nxt = now + 2.0
            else:
                try:
                    nxt = loop.tick(now)
                    loop.last_tick = now
                    loop.ticks += 1
                    backoff = 0.5
                except Exception as e:  # a failing loop is reported in /health and retried
                    loop.errors += 1
                    loop.last_error = f"{type(e).__name__}: {e}"
                    log.exception("background loop %s failed", loop.name)
                    nxt = now + backoff
                    backoff = min(backoff * 2, 30.0)
            due = nxt
            sleep = self.max_sleep if nxt is None else min(self.max_sleep, max(0.0, nxt - self.engine.now()))
            if sleep > 0:
                notifier.wait(since, sleep)

    def _leader(self) -> bool:
        try:
            self.is_leader = self.engine.store.try_leadership()
        except Exception:
            log.exception("leader election failed")
            self.is_leader = False
        return self.is_leader

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.engine.notifier.bump(k for loop in self.loops for k in loop.wake_keys())
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def report(self) -> dict[str, Any]:
        return {
            "loops": {
                lp.name: dict(
                    lp.report(),
                    alive=any(t.name == f"assay-{lp.name}" and t.is_alive() for t in self._threads),
                )
                for lp in self.loops
            },
            "leader": self.is_leader,
        }
