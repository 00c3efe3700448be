"""EngineBase: transactions with post-commit effects, and the shared state-machine steps
(finishing a workflow, notifying its parent, cleaning up its activities/timers/children)."""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from assay import __version__
from assay.clock import Clock
from assay.config import Settings, load_settings
from assay.engine import states
from assay.engine.notify import Broadcaster, Effects, Notifier
from assay.errors import Conflict, NotFound
from assay.metrics import for_engine
from assay.store.base import Record, Store, Tx

log = logging.getLogger("assay.engine")

CHILD_REASON = {states.FAILED: "failed", states.CANCELLED: "cancelled", states.TIMED_OUT: "timed_out"}


class EngineBase:
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
        self._poll_turn = itertools.count()  # combined polls alternate which kind they try first
        self._departed: set[str] = set()  # worker ids that deregistered: their held polls claim nothing
        self._held_lock = threading.Lock()
        self.metrics = for_engine(self)  # assay/metrics.py (NullMetrics when ASSAY_METRICS=0)

    # --- transactions -------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[tuple[Tx, Effects]]:
        """A write transaction whose effects (wake-ups, SSE) are delivered only after it commits."""
        fx = Effects()
        with self.store.tx() as tx:
            yield tx, fx
        fx.flush(self.notifier, self.broadcaster)

    def now(self) -> float:
        return self.clock.now()

    # --- held requests (long-poll / SSE) ---------------------------------------------------------
    def try_hold(self, kind: str) -> bool:
        """Reserve a server thread for a held request; False when only the reserve is left."""
        limit = max(0, self.settings.threads - self.settings.reserve_threads)
        with self._held_lock:
            if self._held >= limit:
                return False
            if kind == "sse" and self.broadcaster.count >= self.settings.sse_max_streams:
                return False
            self._held += 1
            return True

    def release_hold(self) -> None:
        with self._held_lock:
            self._held = max(0, self._held - 1)

    @property
    def held_requests(self) -> int:
        with self._held_lock:
            return self._held

    # --- lookups ----------------------------------------------------------------------------
    @staticmethod
    def _get_wf(tx: Tx, wf_id: str) -> Record:
        wf = tx.get_workflow(wf_id)
        if wf is None:
            raise NotFound(f"not found: workflow {wf_id}")
        return wf

    @staticmethod
    def _ensure_namespace(tx: Tx, namespace: str, now: float) -> None:
        if tx.get_namespace(namespace) is None:
            tx.insert_namespace(namespace, now)

    # --- creating workflows -----------------------------------------------------------------------
    def _create_workflow(
        self,
        tx: Tx,
        fx: Effects,
        *,
        workflow_id: str,
        workflow_type: str,
        namespace: str,
        task_queue: str,
        input: Any,
        search_attributes: Any = None,
        parent_id: str | None = None,
        child_ref: str | None = None,
        stamp: bool = True,
        run_id: str | None = None,
    ) -> Record:
        now = self.now()
        if stamp:
            search_attributes = stamp_search_attributes(search_attributes)
        self._ensure_namespace(tx, namespace, now)
        rec = {
            "id": workflow_id,
            "namespace": namespace,
            "run_id": run_id or f"run-{workflow_id}-{int(now)}",
            "workflow_type": workflow_type,
            "task_queue": task_queue,
            "status": states.PENDING,
            "input": input,
            "parent_id": parent_id,
            "child_ref": child_ref,
            "search_attributes": search_attributes,
            "created_at": now,
            "updated_at": now,
            "needs_dispatch": 1,
            "ready_at": now,
            "last_seq": 0,
        }
        if not tx.insert_workflow(rec):
            raise Conflict(f"workflow already exists: {workflow_id}", workflow_id=workflow_id)
        tx.append_event(workflow_id, "WorkflowStarted", input, now)
        fx.wake_workflows(task_queue)
        fx.sse("workflow_started", rec)
        self.metrics.workflow_started(fx, rec)
        return rec

    # --- finishing workflows ------------------------------------------------------------------------
    def _finish(
        self,
        tx: Tx,
        fx: Effects,
        wf: Record,
        status: str,
        *,
        event_type: str,
        payload: Any,
        result: Any = None,
        error: str | None = None,
        sse: str,
        child_error: str | None = None,
        cascade: str | None = None,
        cancel_reason: str | None = None,
        notify_parent: bool = True,
    ) -> None:
        """Move `wf` to a terminal status with its event, clean up, notify its parent, and cascade."""
        states.check_transition(wf["id"], wf["status"], status)
        now = self.now()
        fields: dict[str, Any] = {
            "status": status,
            "updated_at": now,
            "completed_at": now,
            "needs_dispatch": False,
            "dispatch_claimed_by": None,
            "dispatch_last_heartbeat": None,
            "stuck_reason": None,  # an ended run is not stuck (engine/deploy.py)
            "stuck_since": None,
        }
        if result is not None:
            fields["result"] = result
        if error is not None:
            fields["error"] = error
        tx.update_workflow(wf["id"], **fields)
        wf.update(fields)
        tx.append_event(wf["id"], event_type, payload, now)
        self._cancel_pending_work(tx, wf["id"])
        fx.sse(sse, wf)
        self.metrics.workflow_finished(fx, wf, status)
        sa = wf.get("search_attributes")
        if isinstance(sa, dict) and "schedule" in sa:
            fx.wake_loop("scheduler")  # an overlap-queued fire may now start
        if wf.get("parent_id") and notify_parent:
            self._notify_parent(tx, fx, wf, status, result, child_error if child_error is not None else error)
        if cascade:
            for child in tx.list_children(wf["id"]):
                if states.is_terminal(child["status"]):
                    continue
                if cascade == "terminate":
                    self._terminate(tx, fx, child, f"parent {wf['id']} terminated", notify_parent=False)
                else:
                    self._request_cancel(tx, fx, child, cancel_reason or f"parent {wf['id']} cancelled")

    def _cancel_pending_work(self, tx: Tx, wf_id: str) -> None:
        now = self.now()
        for act in tx.list_activities(wf_id, (states.PENDING, states.RUNNING)):
            if act["status"] == states.PENDING:
                tx.update_activity(act["id"], status=states.CANCELLED, completed_at=now)
            else:
                tx.update_activity(act["id"], cancel_requested=True)
        tx.cancel_timers(wf_id)

    def _notify_parent(
        self, tx: Tx, fx: Effects, child: Record, status: str, result: Any, error: str | None
    ) -> None:
        parent = tx.get_workflow(child["parent_id"])
        if parent is None or states.is_terminal(parent["status"]):
            return
        now = self.now()
        if status == states.COMPLETED:
            tx.append_event(
                parent["id"],
                "ChildWorkflowCompleted",
                {"child_workflow_id": child.get("child_ref") or child["id"], "result": result},
                now,
            )
        else:
            reason = (
                "terminated" if (error or "").startswith("terminated") else CHILD_REASON.get(status, "failed")
            )
            tx.append_event(
                parent["id"],
                "ChildWorkflowFailed",
                {
                    "child_workflow_id": child.get("child_ref") or child["id"],
                    "error": error or reason,
                    "reason": reason,
                },
                now,
            )
        tx.mark_dispatchable(parent["id"], now)
        fx.wake_workflows(parent["task_queue"])

    def _request_cancel(self, tx: Tx, fx: Effects, wf: Record, reason: str | None) -> None:
        """Phase one of cancellation: stop pending work, record the request, wake the workflow, cascade."""
        now = self.now()
        self._cancel_pending_work(tx, wf["id"])
        tx.append_event(
            wf["id"], "WorkflowCancelRequested", {"reason": reason} if reason is not None else None, now
        )
        tx.update_workflow(wf["id"], cancel_requested=True)
        for child in tx.list_children(wf["id"]):
            if not states.is_terminal(child["status"]):
                self._request_cancel(tx, fx, child, reason)
        if wf["status"] == states.PENDING:
            self._finish(
                tx,
                fx,
                wf,
                states.CANCELLED,
                event_type="WorkflowCancelled",
                payload={"reason": reason} if reason is not None else None,
                sse="workflow_cancelled",
                child_error="cancelled" + (f": {reason}" if reason else ""),
            )
        else:
            tx.mark_dispatchable(wf["id"], now)
            fx.wake_workflows(wf["task_queue"])

    def _terminate(
        self, tx: Tx, fx: Effects, wf: Record, reason: str | None, notify_parent: bool = True
    ) -> None:
        reason = reason or "terminated"
        self._finish(
            tx,
            fx,
            wf,
            states.FAILED,
            event_type="WorkflowFailed",
            payload={"error": reason, "terminated": True},
            error=reason,
            sse="workflow_terminated",
            child_error=f"terminated: {reason}",
            cascade="terminate",
            notify_parent=notify_parent,
        )


def stamp_search_attributes(value: Any) -> Any:
    """At start: objects get `assay_engine_version` (the product version) unless the caller set it."""
    if value is None:
        return {"assay_engine_version": __version__}
    if isinstance(value, dict):
        out = dict(value)
        out.setdefault("assay_engine_version", __version__)
        return out
    return value
