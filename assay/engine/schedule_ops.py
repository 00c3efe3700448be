"""Schedule CRUD and firing. Cron parsing and next-fire maths are pure functions in schedules.py."""

from __future__ import annotations

import logging
from typing import Any

from assay.engine import schedules as cron
from assay.engine import states
from assay.engine.core import EngineCore, Service
from assay.engine.lifecycle import Lifecycle
from assay.engine.notify import Effects
from assay.engine.validate import as_object, opt_bool, opt_str, req_id, req_str
from assay.errors import BadRequest, Conflict, NotFound
from assay.protocol import (
    DEFAULT_NAMESPACE,
    DEFAULT_OVERLAP_POLICY,
    DEFAULT_TASK_QUEUE,
    OverlapPolicy,
    SseEvent,
)
from assay.store.base import Record, Tx

log = logging.getLogger("assay.engine.schedules")

PATCHABLE = ("cron_expr", "timezone", "input", "task_queue", "overlap_policy", "workflow_type")


class ScheduleOps(Service):
    def __init__(self, core: EngineCore, life: Lifecycle) -> None:
        super().__init__(core)
        self.life = life

    def _next_run(self, expr: str, tz: str, after: float) -> float | None:
        return cron.next_fire(expr, tz, after)

    def create_schedule(self, body: Any) -> Record:
        b = as_object(body)
        name = req_id(b, "name", max_len=200)
        namespace = opt_str(b, "namespace", DEFAULT_NAMESPACE) or DEFAULT_NAMESPACE
        workflow_type = req_str(b, "workflow_type")
        expr = req_str(b, "cron_expr")
        cron.parse_cron(expr)
        tz = cron.validate_timezone(opt_str(b, "timezone", "UTC", allow_empty=True))
        policy = cron.validate_overlap_policy(opt_str(b, "overlap_policy") or DEFAULT_OVERLAP_POLICY)
        queue = opt_str(b, "task_queue", DEFAULT_TASK_QUEUE) or DEFAULT_TASK_QUEUE
        paused = opt_bool(b, "paused", False)
        now = self.now()
        rec = {
            "namespace": namespace,
            "name": name,
            "workflow_type": workflow_type,
            "cron_expr": expr,
            "timezone": tz,
            "input": b.get("input"),
            "task_queue": queue,
            "overlap_policy": policy,
            "paused": paused,
            "next_run_at": self._next_run(expr, tz, now),
            "queued_fires": 0,
            "created_at": now,
            "updated_at": now,
        }
        with self._tx() as (tx, fx):
            self._ensure_namespace(tx, namespace, now)
            if not tx.insert_schedule(rec):
                raise Conflict(f"schedule already exists: {name} (namespace {namespace})", name=name)
            fx.wake_loop("scheduler")
            return self._get_schedule(tx, namespace, name)

    @staticmethod
    def _get_schedule(tx: Tx, namespace: str, name: str) -> Record:
        s = tx.get_schedule(namespace, name)
        if s is None:
            raise NotFound(f"not found: schedule {name}")
        return s

    def get_schedule(self, namespace: str, name: str) -> Record:
        with self.store.read() as tx:
            return self._get_schedule(tx, namespace, name)

    def list_schedules(self, namespace: str | None) -> list[Record]:
        with self.store.read() as tx:
            return tx.list_schedules(namespace)

    def patch_schedule(self, namespace: str, name: str, body: Any) -> Record:
        b = as_object(body)
        changes: dict[str, Any] = {}
        if b.get("cron_expr") is not None:
            changes["cron_expr"] = req_str(b, "cron_expr")
            cron.parse_cron(changes["cron_expr"])
        if b.get("timezone") is not None:
            changes["timezone"] = cron.validate_timezone(opt_str(b, "timezone", allow_empty=True))
        if b.get("overlap_policy") is not None:
            changes["overlap_policy"] = cron.validate_overlap_policy(req_str(b, "overlap_policy"))
        if b.get("task_queue") is not None:
            changes["task_queue"] = req_str(b, "task_queue")
        if b.get("workflow_type") is not None:
            changes["workflow_type"] = req_str(b, "workflow_type")
        if "input" in b and b["input"] is not None:
            changes["input"] = b["input"]
        with self._tx() as (tx, fx):
            cur = self._get_schedule(tx, namespace, name)
            if not changes:
                return cur
            now = self.now()
            expr = changes["cron_expr"] if "cron_expr" in changes else cur["cron_expr"]
            tz = changes["timezone"] if "timezone" in changes else cur["timezone"]
            changes["next_run_at"] = self._next_run(expr, tz, now)
            changes["updated_at"] = now
            tx.update_schedule(namespace, name, **changes)
            fx.wake_loop("scheduler")
            return self._get_schedule(tx, namespace, name)

    def set_schedule_paused(self, namespace: str, name: str, paused: bool) -> Record:
        with self._tx() as (tx, fx):
            cur = self._get_schedule(tx, namespace, name)
            now = self.now()
            changes: dict[str, Any] = {"paused": paused, "updated_at": now}
            if not paused:  # resume recomputes from now: never a backfill
                changes["next_run_at"] = self._next_run(cur["cron_expr"], cur["timezone"], now)
                changes["queued_fires"] = 0
            tx.update_schedule(namespace, name, **changes)
            fx.wake_loop("scheduler")
            return self._get_schedule(tx, namespace, name)

    def delete_schedule(self, namespace: str, name: str) -> None:
        with self._tx() as (tx, fx):
            if not tx.delete_schedule(namespace, name):
                raise NotFound(f"not found: schedule {name}")
            fx.wake_loop("scheduler")

    def trigger_schedule(self, namespace: str, name: str) -> Record:
        with self._tx() as (tx, fx):
            s = self._get_schedule(tx, namespace, name)
            return self._start_scheduled_run(tx, fx, s, self.now(), manual=True)

    def _start_scheduled_run(
        self, tx: Tx, fx: Effects, s: Record, fire_time: float, manual: bool = False
    ) -> Record:
        base = cron.fired_workflow_id(s["name"], fire_time)
        wf_id, n = base, 1
        while tx.get_workflow(wf_id) is not None:
            n += 1
            wf_id = f"{base}-{n}"
        wf = self.life.create_workflow(
            tx,
            fx,
            workflow_id=wf_id,
            workflow_type=s["workflow_type"],
            namespace=s["namespace"],
            task_queue=s["task_queue"],
            input=s["input"],
            search_attributes={"schedule": s["name"]},
            run_id=f"run-{wf_id}",
        )
        now = self.now()
        tx.update_schedule(s["namespace"], s["name"], last_run_at=now, last_workflow_id=wf_id, updated_at=now)
        fx.sse(SseEvent.schedule_triggered, wf, schedule=s["name"], manual=manual)
        return wf

    def fire_due_schedules(self) -> int:
        """One scheduler step: fire every due schedule once (leader only; the loop checks leadership)."""
        started = 0
        now = self.now()
        catchup = self.settings.schedule_catchup_secs
        with self._tx() as (tx, fx):
            for s in tx.schedules_with_queued_fires():
                if not self._is_running(tx, s.get("last_workflow_id")):
                    self._start_scheduled_run(tx, fx, s, now)
                    tx.update_schedule(s["namespace"], s["name"], queued_fires=0)
                    started += 1
            for s in tx.due_schedules(now):
                due = float(s["next_run_at"])
                nxt = self._safe_next(s, max(now, due))
                if now - due > catchup:
                    log.warning(
                        "schedule %s/%s missed its fire at %s (engine down?); skipping to the next one",
                        s["namespace"],
                        s["name"],
                        due,
                    )
                    tx.update_schedule(s["namespace"], s["name"], next_run_at=nxt)
                    continue
                tx.update_schedule(s["namespace"], s["name"], next_run_at=nxt)
                self.metrics.schedule_fired(fx, s["namespace"], now - due)
                running = self._is_running(tx, s.get("last_workflow_id"))
                policy = s["overlap_policy"]
                if running and policy == OverlapPolicy.skip:
                    log.info(
                        "schedule %s/%s: previous run %s still running; fire skipped",
                        s["namespace"],
                        s["name"],
                        s["last_workflow_id"],
                    )
                    continue
                if running and policy == OverlapPolicy.queue:
                    tx.update_schedule(s["namespace"], s["name"], queued_fires=1)
                    continue
                if running and policy == OverlapPolicy.cancel_old:
                    old = tx.get_workflow(s["last_workflow_id"])
                    if old is not None:
                        self.life.request_cancel(
                            tx, fx, old, f"schedule {s['name']}: superseded by a newer run"
                        )
                self._start_scheduled_run(tx, fx, s, due)
                started += 1
        return started

    def _safe_next(self, s: Record, after: float) -> float | None:
        try:
            return self._next_run(s["cron_expr"], s["timezone"], after)
        except BadRequest as e:  # stored before validation existed: stop it firing, loudly
            log.error("schedule %s/%s has an invalid cron/timezone: %s", s["namespace"], s["name"], e.message)
            return None

    @staticmethod
    def _is_running(tx: Tx, wf_id: str | None) -> bool:
        if not wf_id:
            return False
        wf = tx.get_workflow(wf_id)
        return wf is not None and not states.is_terminal(wf["status"])

    def next_schedule_due(self) -> float | None:
        with self.store.read() as tx:
            nxt = tx.next_schedule_due()
            if tx.schedules_with_queued_fires():
                return self.now() + 1.0
        return nxt
