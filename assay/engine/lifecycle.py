"""The state-machine steps several services share, all inside a caller's transaction: creating a
workflow, finishing it (its event, clean-up, parent notification, cascade), requesting cancellation and
terminating."""

from __future__ import annotations

from typing import Any, Literal

from assay import __version__
from assay.engine import states
from assay.engine.core import Service
from assay.engine.notify import Effects
from assay.errors import Conflict
from assay.protocol import ActivityStatus, EventType, SseEvent, WorkflowStatus
from assay.store.base import Record, Tx

#: `reason` of the ChildWorkflowFailed event a parent receives, by the child's final status
CHILD_REASON = {
    WorkflowStatus.FAILED: "failed",
    WorkflowStatus.CANCELLED: "cancelled",
    WorkflowStatus.TIMED_OUT: "timed_out",
}


class Lifecycle(Service):
    # --- creating workflows -----------------------------------------------------------------------
    def create_workflow(
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
        self._ensure_namespace(tx, namespace, now, fx)
        rec = {
            "id": workflow_id,
            "namespace": namespace,
            "run_id": run_id or f"run-{workflow_id}-{int(now)}",
            "workflow_type": workflow_type,
            "task_queue": task_queue,
            "status": WorkflowStatus.PENDING,
            "input": input,
            "parent_id": parent_id,
            "child_ref": child_ref,
            "search_attributes": search_attributes,
            "created_at": now,
            "updated_at": now,
            "needs_dispatch": 1,
            "ready_at": now,
            "last_seq": 1,  # its WorkflowStarted event, inserted with it
        }
        if not tx.insert_workflow(rec, first_event=(EventType.WorkflowStarted, input)):
            raise Conflict(f"workflow already exists: {workflow_id}", workflow_id=workflow_id)
        fx.ready_workflow(rec)
        fx.sse(SseEvent.workflow_started, rec)
        self.metrics.workflow_started(fx, rec)
        return rec

    # --- finishing workflows ------------------------------------------------------------------------
    def finish(
        self,
        tx: Tx,
        fx: Effects,
        wf: Record,
        status: WorkflowStatus,
        *,
        event_type: EventType,
        payload: Any,
        result: Any = None,
        error: str | None = None,
        sse: SseEvent,
        child_error: str | None = None,
        cascade: Literal["cancel", "terminate"] | None = None,
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
        tx.append_event(wf["id"], event_type, payload, now, fields=fields)  # one UPDATE of the row
        wf.update(fields)
        self.cancel_pending_work(tx, wf["id"])
        fx.sse(sse, wf)
        self.metrics.workflow_finished(fx, wf, status)
        sa = wf.get("search_attributes")
        if isinstance(sa, dict) and "schedule" in sa:
            fx.wake_loop("scheduler")  # an overlap-queued fire may now start
        if wf.get("parent_id") and notify_parent:
            self.notify_parent(tx, fx, wf, status, result, child_error if child_error is not None else error)
        if cascade:
            for child in tx.list_children(wf["id"]):
                if states.is_terminal(child["status"]):
                    continue
                if cascade == "terminate":
                    self.terminate(tx, fx, child, f"parent {wf['id']} terminated", notify_parent=False)
                else:
                    self.request_cancel(tx, fx, child, cancel_reason or f"parent {wf['id']} cancelled")

    def cancel_pending_work(self, tx: Tx, wf_id: str) -> None:
        now = self.now()
        for act in tx.list_activities(wf_id, (ActivityStatus.PENDING, ActivityStatus.RUNNING)):
            if act["status"] == ActivityStatus.PENDING:
                tx.update_activity(act["id"], status=ActivityStatus.CANCELLED, completed_at=now)
            else:
                tx.update_activity(act["id"], cancel_requested=True)
        tx.cancel_timers(wf_id)

    def notify_parent(
        self, tx: Tx, fx: Effects, child: Record, status: str, result: Any, error: str | None
    ) -> None:
        parent = tx.get_workflow(child["parent_id"])
        if parent is None or states.is_terminal(parent["status"]):
            return
        now = self.now()
        if status == WorkflowStatus.COMPLETED:
            tx.append_event(
                parent["id"],
                EventType.ChildWorkflowCompleted,
                {"child_workflow_id": child.get("child_ref") or child["id"], "result": result},
                now,
                dispatchable=True,
            )
        else:
            reason = (
                "terminated"
                if (error or "").startswith("terminated")
                else CHILD_REASON.get(WorkflowStatus(status), "failed")
            )
            tx.append_event(
                parent["id"],
                EventType.ChildWorkflowFailed,
                {
                    "child_workflow_id": child.get("child_ref") or child["id"],
                    "error": error or reason,
                    "reason": reason,
                },
                now,
                dispatchable=True,
            )
        fx.ready_workflow(parent)

    def request_cancel(self, tx: Tx, fx: Effects, wf: Record, reason: str | None) -> None:
        """Phase one of cancellation: stop pending work, record the request, wake the workflow, cascade."""
        now = self.now()
        self.cancel_pending_work(tx, wf["id"])
        tx.append_event(
            wf["id"],
            EventType.WorkflowCancelRequested,
            {"reason": reason} if reason is not None else None,
            now,
        )
        tx.update_workflow(wf["id"], cancel_requested=True)
        for child in tx.list_children(wf["id"]):
            if not states.is_terminal(child["status"]):
                self.request_cancel(tx, fx, child, reason)
        if wf["status"] == WorkflowStatus.PENDING:
            self.finish(
                tx,
                fx,
                wf,
                WorkflowStatus.CANCELLED,
                event_type=EventType.WorkflowCancelled,
                payload={"reason": reason} if reason is not None else None,
                sse=SseEvent.workflow_cancelled,
                child_error="cancelled" + (f": {reason}" if reason else ""),
            )
        else:
            tx.mark_dispatchable(wf["id"], now)
            fx.ready_workflow(wf)

    def terminate(
        self, tx: Tx, fx: Effects, wf: Record, reason: str | None, notify_parent: bool = True
    ) -> None:
        reason = reason or "terminated"
        self.finish(
            tx,
            fx,
            wf,
            WorkflowStatus.FAILED,
            event_type=EventType.WorkflowFailed,
            payload={"error": reason, "terminated": True},
            error=reason,
            sse=SseEvent.workflow_terminated,
            child_error=f"terminated: {reason}",
            cascade="terminate",
            notify_parent=notify_parent,
        )
        tx.update_workflow(wf["id"], terminated=True)  # FAILED natively; TERMINATED in the Temporal-era API
        wf["terminated"] = True


def stamp_search_attributes(value: Any) -> Any:
    """At start: objects get `assay_engine_version` (the product version) unless the caller set it."""
    if value is None:
        return {"assay_engine_version": __version__}
    if isinstance(value, dict):
        out = dict(value)
        out.setdefault("assay_engine_version", __version__)
        return out
    return value
