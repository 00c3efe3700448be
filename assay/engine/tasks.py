"""Workers, task claims (with long-poll), activity completion/failure/heartbeat and retries,
and the periodic steps the background loops drive (timers, timeouts, lease recovery, reaping)."""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from assay import protocol
from assay.engine import states
from assay.engine.core import EngineCore, Service
from assay.engine.lifecycle import Lifecycle
from assay.engine.notify import Effects
from assay.errors import Conflict, NotFound
from assay.protocol import DEFAULT_NAMESPACE, ActivityStatus, EventType, SseEvent, WorkflowStatus
from assay.store.base import Record, Tx

log = logging.getLogger("assay.engine.tasks")

ACTIVITY_DEFAULTS: dict[str, Any] = {
    "max_attempts": 3,
    "initial_interval_secs": 1.0,
    "backoff_coefficient": 2.0,
    "maximum_interval_secs": None,
    "start_to_close_secs": 300.0,
    "heartbeat_timeout_secs": None,
    "schedule_to_close_secs": None,
    "non_retryable_errors": None,
}


def retry_delay(act: Record) -> float:
    """Backoff before attempt `attempt + 1`: initial * coefficient^(attempt-1), capped by maximum_interval
    (and by a year, so huge coefficients cannot overflow)."""
    limit = 365 * 86400.0
    cap = act.get("maximum_interval_secs")
    if cap is not None:
        limit = min(limit, float(cap))
    try:
        delay: float = float(act["initial_interval_secs"]) * float(act["backoff_coefficient"]) ** max(
            0, int(act["attempt"]) - 1
        )
    except OverflowError:
        delay = limit
    return max(0.0, min(delay, limit))


def schedule_to_close_error(act: Record) -> str:
    return f"activity timed out: schedule_to_close {act['schedule_to_close_secs']:g}s exceeded"


class ResultDiscarded(Conflict):
    """A result, failure or heartbeat for an activity whose workflow has finished: refused (409), and the
    activity is CANCELLED. The transaction that found it rolls back with the 409, so whoever catches this
    writes the cancellation (`TaskOps.discard`) in a transaction of its own, or outside the savepoint."""


def _moved_on(act_id: int) -> Conflict:
    return Conflict(f"activity {act_id} is no longer running this attempt (lease lost)", activity_id=act_id)


def is_non_retryable(act: Record, error: str) -> bool:
    return any(p and p in error for p in (act.get("non_retryable_errors") or []))


class TaskOps(Service):
    def __init__(self, core: EngineCore, life: Lifecycle) -> None:
        super().__init__(core)
        self.life = life
        self._poll_turn = itertools.count()  # combined polls alternate which kind they try first
        self._departed: set[str] = set()  # worker ids that deregistered: their held polls claim nothing
        #: worker id -> (namespace, when read): lets an arriving long poll skip its look (dispatch.py)
        self.worker_namespaces: dict[str, tuple[str, float]] = {}

    # --- worker registry ------------------------------------------------------------------------
    def register_worker(
        self,
        *,
        identity: str,
        queue: str,
        namespace: str = DEFAULT_NAMESPACE,
        workflows: list[str] | None = None,
        activities: list[str] | None = None,
        max_concurrent_workflows: int = 10,
        max_concurrent_activities: int = 10,
        heartbeat_interval_secs: float | None = None,
        worker_id: str | None = None,
        build_id: str | None = None,
        sticky: bool = False,
    ) -> str:
        now = self.now()
        wid = worker_id or "w-" + secrets.token_hex(8)
        self._departed.discard(wid)
        # lost after three missed beats (at least 1 s, to ride out a scheduling hiccup)
        lost_after = max(3 * heartbeat_interval_secs, 1.0) if heartbeat_interval_secs else None
        with self._tx() as (tx, fx):
            self._ensure_namespace(tx, namespace, now, fx)
            tx.insert_worker(
                {
                    "id": wid,
                    "namespace": namespace,
                    "identity": identity,
                    "task_queue": queue,
                    "workflows": workflows,
                    "activities": activities,
                    "max_concurrent_workflows": max_concurrent_workflows,
                    "max_concurrent_activities": max_concurrent_activities,
                    "active_tasks": 0,
                    "heartbeat_interval_secs": heartbeat_interval_secs,
                    "lost_after_secs": lost_after,
                    "last_heartbeat": now,
                    "registered_at": now,
                    "build_id": build_id,
                    "sticky": 1 if sticky else 0,
                }
            )
        self.core.registry.forget_workers(wid)  # (nothing to forget: a deletion forgot it; kept cheap)
        self.remember_namespace(wid, namespace)  # (may have changed)
        return wid

    def remember_namespace(self, worker_id: str, namespace: str) -> None:
        """Note a registered worker's namespace for its later polls (dispatch.py, _arrival_look)."""
        if len(self.worker_namespaces) > 100_000:  # a bound, not a cache policy: the next polls read again
            self.worker_namespaces.clear()
        self.worker_namespaces[worker_id] = (namespace, self.core.clock.monotonic())

    def heartbeat_worker(self, worker_id: str, reregister: dict[str, Any] | None = None) -> dict[str, Any]:
        """Refresh the worker and every lease it holds. An unknown id is re-registered when the caller
        says who it is (identity + queue); returns {"known": bool, "leases": n}."""
        now = self.now()
        with self._tx() as (tx, _fx):
            known = tx.touch_worker(worker_id, now)
            leases = tx.extend_leases(worker_id, now)
        if not known and reregister and reregister.get("identity") and reregister.get("queue"):
            self.register_worker(worker_id=worker_id, **reregister)
            known = True
        return {"known": known, "leases": leases}

    def deregister_worker(self, worker_id: str) -> dict[str, Any]:
        """A worker that stops: end its held polls without claiming, give back its workflow-task leases
        (re-dispatched at once) and its running activities (retried now, as a lost attempt), drop its row."""
        self._departed.add(worker_id)
        if len(self._departed) > 10_000:
            self._departed.clear()
            self._departed.add(worker_id)
        self.notifier.bump(["worker-gone:" + worker_id])
        try:
            with self._tx() as (tx, fx):
                leases = tx.release_worker_leases(worker_id, self.now())
                for q in tx.dispatchable_queues():
                    fx.wake_workflows(q, len(leases) or 1)
                acts = 0
                for act_id in tx.activities_held_by(worker_id):
                    act = tx.get_activity(act_id)
                    if act is not None:
                        acts += self._expire_one(tx, fx, act, f"worker {worker_id} stopped before finishing")
                known = tx.delete_worker(worker_id)
        finally:
            self.core.registry.forget_workers(worker_id)
            self.worker_namespaces.pop(worker_id, None)
        return {"known": known, "leases_released": len(leases), "activities_released": acts}

    def list_workers(self, namespace: str | None) -> list[Record]:
        with self.store.read() as tx:
            return tx.list_workers(namespace)

    def queue_stats(self, namespace: str) -> list[Record]:
        with self.store.read() as tx:
            return tx.queue_stats(namespace)

    # --- claims ---------------------------------------------------------------------------------
    def schedule_activity(self, wf_id: str, spec: protocol.ScheduleActivity) -> Record:
        """Direct scheduling (REST). Idempotent on (workflow, seq)."""
        with self._tx() as (tx, fx):
            wf = self._get_wf(tx, wf_id)
            if states.is_terminal(wf["status"]):
                raise Conflict(f"workflow {wf_id} is {wf['status']}", workflow_id=wf_id, status=wf["status"])
            return self._schedule_activity(tx, fx, wf, spec)

    def _schedule_activity(self, tx: Tx, fx: Effects, wf: Record, spec: protocol.ScheduleActivity) -> Record:
        now = self.now()
        given = {k: getattr(spec, k) for k in ACTIVITY_DEFAULTS}
        rec = {k: (given[k] if given[k] is not None else v) for k, v in ACTIVITY_DEFAULTS.items()}
        queue = spec.task_queue or wf["task_queue"]
        rec.update(
            workflow_id=wf["id"],
            seq=spec.seq,
            name=spec.name,
            task_queue=queue,
            input=spec.input,
            status=ActivityStatus.PENDING,
            attempt=1,
            scheduled_at=now,
            # overall deadline over every attempt, queued time included (Temporal's schedule_to_close)
            deadline_at=None
            if rec["schedule_to_close_secs"] is None
            else now + rec["schedule_to_close_secs"],
        )
        # idempotent on (workflow, seq): a replayed command changes nothing
        act = tx.insert_activity_if_new(rec)
        if act is None:
            existing = tx.get_activity_by_seq(wf["id"], spec.seq)
            assert existing is not None
            return existing
        act_id = act["id"]
        tx.append_event(
            wf["id"],
            EventType.ActivityScheduled,
            {
                "activity_id": act_id,
                "activity_seq": spec.seq,
                "name": spec.name,
                "task_queue": queue,
                "input": spec.input,
            },
            now,
        )
        if wf["status"] == WorkflowStatus.PENDING:
            tx.update_workflow(wf["id"], status=WorkflowStatus.RUNNING, updated_at=now)
            wf["status"] = WorkflowStatus.RUNNING
            fx.sse(SseEvent.workflow_running, wf)
        fx.ready_activity(act_id, spec.name, queue, wf["namespace"])
        if rec["deadline_at"] is not None:
            fx.wake_loop("activities")  # a deadline that may pass while the activity is still queued
        return act

    def get_activity(self, act_id: int) -> Record:
        with self.store.read() as tx:
            act = tx.get_activity(act_id)
        if act is None:
            raise NotFound(f"not found: activity {act_id}")
        return act

    def _running_activity(self, tx: Tx, act_id: int, worker_id: str | None) -> tuple[Record, Record]:
        act = tx.get_activity(act_id)
        if act is None:
            raise NotFound(f"not found: activity {act_id}")
        if act["status"] != ActivityStatus.RUNNING:
            raise Conflict(
                f"activity {act_id} is {act['status']}, not {ActivityStatus.RUNNING}",
                activity_id=act_id,
                status=act["status"],
            )
        if worker_id is not None and act["claimed_by"] not in (None, worker_id):
            raise Conflict(f"activity {act_id} is held by another worker (lease lost)", activity_id=act_id)
        wf = self._get_wf(tx, act["workflow_id"], payloads=False)
        if states.is_terminal(wf["status"]):
            raise ResultDiscarded(
                f"workflow {wf['id']} is {wf['status']}; activity result discarded",
                activity_id=act_id,
                status=wf["status"],
            )
        return act, wf

    def discard(self, tx: Tx, act_id: int) -> None:
        """Mark CANCELLED an activity still RUNNING for a finished workflow (see ResultDiscarded)."""
        act = tx.get_activity(act_id)
        if act is not None and act["status"] == ActivityStatus.RUNNING:
            tx.update_activity(act_id, status=ActivityStatus.CANCELLED, completed_at=self.now())

    @contextmanager
    def _discarding(self, act_id: int) -> Iterator[None]:
        try:
            yield
        except ResultDiscarded:
            with self._tx() as (tx, _fx):
                self.discard(tx, act_id)
            raise

    #: set by Engine (dispatch.py): eager claims for the calling worker
    dispatch: Any = None

    def complete_activity(
        self, act_id: int, result: Any, worker_id: str | None = None, *, eager_workflow_task: bool = False
    ) -> Record | None:
        """Complete; with eager_workflow_task (opt-in), claim for this worker the workflow task the
        completion made ready, in the same transaction (returned; None when there is none for it)."""
        with self._discarding(act_id), self._tx() as (tx, fx):
            wf = self._complete_in(tx, fx, act_id, result, worker_id)
            return self._eager_wf(tx, fx, worker_id, wf["id"]) if eager_workflow_task else None

    def _complete_in(self, tx: Tx, fx: Effects, act_id: int, result: Any, worker_id: str | None) -> Record:
        act, wf = self._running_activity(tx, act_id, worker_id)
        now = self.now()
        if not tx.update_activity_if(
            act, status=ActivityStatus.COMPLETED, result=result, error=None, completed_at=now
        ):
            raise _moved_on(act_id)
        tx.append_event(
            wf["id"],
            EventType.ActivityCompleted,
            {
                "activity_id": act_id,
                "activity_seq": act["seq"],
                "name": act["name"],
                "result": result,
                "error": None,
            },
            now,
            dispatchable=True,
        )
        fx.ready_workflow(wf)
        fx.sse(SseEvent.task_completed, wf, activity_id=act_id, activity=act["name"])
        self.metrics.activity_finished(fx, act, wf, now)
        return wf

    def _eager_wf(self, tx: Tx, fx: Effects, worker_id: str | None, wf_id: str) -> Record | None:
        if not worker_id:
            return None
        _acts, wfs = self.dispatch.eager_claim(tx, fx, worker_id, workflow_ids=(wf_id,))
        return wfs[0] if wfs else None

    def fail_activity(
        self,
        act_id: int,
        error: str,
        worker_id: str | None = None,
        non_retryable: bool = False,
        *,
        eager_workflow_task: bool = False,
    ) -> Record | None:
        with self._discarding(act_id), self._tx() as (tx, fx):
            wf = self._fail_in(tx, fx, act_id, error, worker_id, non_retryable)
            return self._eager_wf(tx, fx, worker_id, wf["id"]) if eager_workflow_task else None

    def _fail_in(
        self, tx: Tx, fx: Effects, act_id: int, error: str, worker_id: str | None, non_retryable: bool
    ) -> Record:
        act, wf = self._running_activity(tx, act_id, worker_id)
        if not self._retry_or_fail(tx, fx, act, wf, error, force_final=non_retryable):
            raise _moved_on(act_id)
        return wf

    def heartbeat_activity(self, act_id: int, details: Any, worker_id: str | None = None) -> dict[str, Any]:
        with self._discarding(act_id), self._tx() as (tx, _fx):
            act, wf = self._running_activity(tx, act_id, worker_id)
            now = self.now()
            tx.update_activity(act_id, last_heartbeat=now, heartbeat_details=details)
            if act["claimed_by"]:
                tx.touch_worker(act["claimed_by"], now)
            return {"cancel_requested": bool(act["cancel_requested"] or wf["cancel_requested"])}

    def _retry_or_fail(
        self, tx: Tx, fx: Effects, act: Record, wf: Record, error: str, force_final: bool = False
    ) -> bool:
        """Retry the activity (PENDING, next attempt, after its backoff) or fail it for good. False, and
        nothing changed, when the activity is no longer as `act` shows it (another transaction moved it
        on after it was read: on Postgres, a completion racing a timeout)."""
        now = self.now()
        final = force_final or act["attempt"] >= act["max_attempts"] or is_non_retryable(act, error)
        due = now + retry_delay(act)
        deadline = act.get("deadline_at")
        if not final and deadline is not None and due >= deadline:
            final = True  # the next attempt could not start before the overall deadline
            error = (
                f"{schedule_to_close_error(act)} (before attempt {act['attempt'] + 1}; last error: {error})"
            )
        if not final:
            if not tx.update_activity_if(
                act,
                status=ActivityStatus.PENDING,
                attempt=act["attempt"] + 1,
                scheduled_at=due,
                claimed_by=None,
                started_at=None,
                last_heartbeat=None,
                error=error,
            ):
                return False
            self.metrics.activity_failed(fx, act, wf, now, final)
            fx.wake_loop("activities")
            return True
        if not tx.update_activity_if(
            act, status=ActivityStatus.FAILED, result=None, error=error, completed_at=now
        ):
            return False
        self.metrics.activity_failed(fx, act, wf, now, final)
        tx.append_event(
            wf["id"],
            EventType.ActivityFailed,
            {
                "activity_id": act["id"],
                "activity_seq": act["seq"],
                "name": act["name"],
                "error": error,
                "final_attempt": act["attempt"],
            },
            now,
            dispatchable=True,
        )
        fx.ready_workflow(wf)
        fx.sse(SseEvent.task_failed, wf, activity_id=act["id"], activity=act["name"])
        return True

    # --- periodic steps (driven by background loops with tick(now)) ----------------------------------
    def fire_due_timers(self) -> int:
        fired = 0
        with self._tx() as (tx, fx):
            now = self.now()
            for t in tx.due_timers(now):
                if not tx.mark_timer_fired(t["id"]):
                    continue
                wf = tx.get_workflow(t["workflow_id"])
                if wf is None or states.is_terminal(wf["status"]):
                    continue
                payload = {"timer_seq": t["seq"], "fire_at": t["fire_at"]}
                tx.append_event(wf["id"], EventType.TimerFired, payload, now, dispatchable=True)
                fx.ready_workflow(wf)
                fired += 1
        return fired

    def next_timer_due(self) -> float | None:
        with self.store.read() as tx:
            return tx.next_timer_due()

    def expire_activities(self) -> int:
        """Enforce start_to_close / heartbeat timeouts and recover activities of lost workers (retry path)."""
        n = 0
        with self._tx() as (tx, fx):
            now = self.now()
            for act in tx.activities_past_deadline(now):  # schedule_to_close: final, never retried
                n += self._expire_one(
                    tx, fx, act, schedule_to_close_error(act), "schedule_to_close", final=True
                )
            for act in tx.expired_activities(now, self.started_at):
                if now >= act["started_at"] + act["start_to_close_secs"]:
                    reason = f"activity timed out: start_to_close {act['start_to_close_secs']:g}s exceeded"
                    kind = "start_to_close"
                else:
                    reason = f"activity timed out: no heartbeat for {act['heartbeat_timeout_secs']:g}s"
                    kind = "heartbeat"
                n += self._expire_one(tx, fx, act, reason, kind)
            for act in tx.lost_worker_activities(now, self.started_at):
                reason = f"worker {act['claimed_by']} lost (stopped heartbeating)"
                n += self._expire_one(tx, fx, act, reason, "worker_lost")
        return n

    def _expire_one(
        self, tx: Tx, fx: Effects, act: Record, reason: str, timeout: str | None = None, final: bool = False
    ) -> int:
        wf = tx.get_workflow(act["workflow_id"])
        if wf is None or states.is_terminal(wf["status"]):
            tx.update_activity(act["id"], status=ActivityStatus.CANCELLED, completed_at=self.now())
            return 0
        if not self._retry_or_fail(tx, fx, act, wf, reason, force_final=final):
            return 0  # completed (or moved on) since it was read
        log.info("activity %s (%s) of %s: %s", act["id"], act["name"], wf["id"], reason)
        if timeout is not None:
            self.metrics.activity_timed_out(fx, act, wf, timeout)
        return 1

    def next_activity_deadline(self) -> float | None:
        with self.store.read() as tx:
            return tx.next_activity_deadline(self.started_at)

    def wake_due_retries(self, last_check: float) -> float | None:
        """Wake the queues of PENDING activities whose backoff ended in (last_check, now]; returns when
        the next one becomes due."""
        now = self.now()
        with self.store.read() as tx:
            queues = tx.pending_queues_due(last_check, now)
            nxt = tx.next_pending_activity(now)
            wf_queues = tx.delayed_workflow_queues(last_check, now)  # workflow tasks whose backoff ended
            nxt_wf = tx.next_delayed_dispatch(now)
        self.notifier.bump(["act:" + q for q in queues] + ["wf:" + q for q in wf_queues])
        dues = [t for t in (None if nxt is None else nxt["scheduled_at"], nxt_wf) if t is not None]
        return min(dues) if dues else None

    def recover_leases(self) -> list[str]:
        now = self.now()
        timeout = self.settings.dispatch_timeout_secs
        with self._tx() as (tx, fx):
            # Leases taken before this engine started get the full timeout from start-up.
            # A lease's effective heartbeat is max(last heartbeat, engine start): workers could not
            # heartbeat while the engine was down, so they get the full timeout after a restart.
            if now - self.started_at >= timeout:
                ids = tx.recover_stale_leases(now - timeout)
                for wf_id in ids if self.metrics.enabled else ():
                    wf = tx.get_workflow(wf_id)
                    if wf is not None:
                        self.metrics.workflow_task_failed(fx, wf, "timeout")
            else:
                ids = []
            ids += tx.release_lost_worker_leases(now, self.started_at)
            for q in tx.dispatchable_queues():
                fx.wake_workflows(q, len(ids) or 1)
        if ids:
            log.info("recovered %d workflow-task lease(s): %s", len(ids), ", ".join(ids[:10]))
        return ids

    def next_lease_expiry(self) -> float | None:
        with self.store.read() as tx:
            oldest = tx.oldest_lease()
        if oldest is None:
            return None
        return max(oldest, self.started_at) + self.settings.dispatch_timeout_secs

    def reap_workers(self) -> int:
        with self._tx() as (tx, _fx):
            n = tx.reap_workers(self.now() - self.settings.worker_reap_secs)
        if n:
            self.core.registry.forget_workers()  # which rows went is not known: forget them all
            self.worker_namespaces.clear()  # (likewise: a reaped id polls again as an unknown one)
        return n

    def write_noted_heartbeats(self) -> int:
        """Write the heartbeats noted in memory since the last call (each poll is one: POLL_IS_HEARTBEAT),
        all in one transaction; returns how many workers were noted."""
        seen = self.core.take_alive()
        if seen:
            try:
                with self._tx() as (tx, _fx):
                    tx.touch_workers(seen)
            except BaseException:  # not written: noted again, so a rerun (or the next flush) writes them
                self.core.note_alive_at(seen)
                raise
        return len(seen)

    def next_worker_reap(self) -> float | None:
        with self.store.read() as tx:
            oldest = tx.oldest_worker_heartbeat()
        return None if oldest is None else oldest + self.settings.worker_reap_secs
