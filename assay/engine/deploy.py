"""Safe deploys, engine side: version markers (RecordVersion), the build ids that ran a workflow's tasks,
failed workflow tasks (backoff + the stuck flag), and the stuck-run view.

A workflow task fails when the worker reports it (`POST /workflow-tasks/{id}/fail`: the code could not
replay the history, or raised where the history went on) or when the engine rejects its command batch.
Either way the workflow keeps its history and status, goes back to the queue after a growing backoff, and
after STUCK_AFTER consecutive failures carries `stuck_reason` / `stuck_since` in its record until a batch
is accepted (the fixed code was deployed) or the workflow ends."""

from __future__ import annotations

import logging
from typing import Any

from assay.engine import states
from assay.engine.core import Service
from assay.engine.notify import Effects
from assay.errors import BadRequest, Conflict
from assay.protocol import EventType, SseEvent
from assay.store.base import Record, Tx

log = logging.getLogger("assay.engine.deploy")

VERSION_MARKER = EventType.VersionMarkerRecorded
#: consecutive failed workflow tasks after which a workflow is flagged as stuck
STUCK_AFTER = 3
MAX_BUILD_ID = 128
#: a workflow keeps the last this-many distinct build ids that ran its tasks
MAX_BUILD_IDS = 20


def record_version(tx: Tx, wf: Record, change_id: str, version: int, now: float) -> bool:
    """Append the marker unless this workflow already has one for the change id (first value wins)."""
    for ev in tx.list_events(wf["id"], event_type=VERSION_MARKER):  # only the markers are decoded
        p = ev["payload"]
        if isinstance(p, dict) and p.get("change_id") == change_id:
            return False
    tx.append_event(wf["id"], VERSION_MARKER, {"change_id": change_id, "version": version}, now)
    return True


def opt_build_id(body: dict[str, Any]) -> str | None:
    v = body.get("build_id")
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise BadRequest("'build_id' must be a string")
    if len(v) > MAX_BUILD_ID:
        raise BadRequest(f"'build_id' is longer than {MAX_BUILD_ID} characters")
    return v


def stuck_view(rec: Record) -> dict[str, Any] | None:
    """The `stuck` field of a workflow record: None, or reason + failure count + since."""
    if not rec.get("stuck_reason"):
        return None
    return {
        "reason": rec["stuck_reason"],
        "failures": int(rec.get("dispatch_failures") or 0),
        "since": rec.get("stuck_since"),
    }


def record_build_id(tx: Tx, wf: Record, worker_id: str, worker: Record | None = None) -> None:
    """Called when a worker leases a workflow task: remember the worker's build id on the workflow
    (`worker`: its record, when the caller has read it already)."""
    w = worker if worker is not None else tx.get_worker(worker_id)
    build = w.get("build_id") if w else None
    if not build:
        return
    ids = wf.get("build_ids") or []
    if not isinstance(ids, list):
        ids = []
    if build in ids:
        return
    ids = [*ids, build][-MAX_BUILD_IDS:]
    tx.update_workflow(wf["id"], build_ids=ids)
    wf["build_ids"] = ids


def task_failed(tx: Tx, fx: Effects, wf: Record, worker_id: str, error: str | None, now: float) -> int:
    """Release the lease and re-dispatch after a backoff that grows with consecutive failed workflow
    tasks (0.5 s, 1 s, 2 s, ... capped at 60 s); flag the workflow as stuck after STUCK_AFTER."""
    wf_id = wf["id"]
    tx.release_lease(wf_id, worker_id)
    if states.is_terminal(wf["status"]):
        return 0
    failures = int(wf.get("dispatch_failures") or 0)
    delay = min(60.0, 0.5 * 2**failures) if failures else 0.0
    count = tx.delay_dispatch(wf_id, now + delay)
    if count >= STUCK_AFTER:
        fields: dict[str, Any] = {"stuck_reason": (error or "workflow task failed")[:2000]}
        if not wf.get("stuck_since"):
            fields["stuck_since"] = now
        tx.update_workflow(wf_id, **fields)
        if not wf.get("stuck_reason"):
            fx.sse(SseEvent.workflow_stuck, {**wf, **fields})
    if delay:
        fx.wake_loop("activities")  # its retry wake-up wakes the queue when the delay ends
    else:
        fx.wake_workflows(wf["task_queue"])
    return count


def task_succeeded(tx: Tx, wf: Record) -> None:
    """An accepted batch: the failure count and the stuck flag are cleared."""
    if wf.get("dispatch_failures") or wf.get("stuck_reason"):
        tx.update_workflow(wf["id"], dispatch_failures=0, stuck_reason=None, stuck_since=None)


class DeployOps(Service):
    """Failed workflow tasks reported by workers."""

    def fail_workflow_task(self, wf_id: str, worker_id: str, error: str) -> dict[str, Any]:
        """A worker could not run a workflow task (nondeterminism, a replay error): the workflow stays as it
        is and is handed out again after a backoff. 409 when the worker does not hold the lease."""
        with self._tx() as (tx, fx):
            wf = self._get_wf(tx, wf_id)
            if wf["dispatch_claimed_by"] != worker_id:
                raise Conflict(
                    f"worker {worker_id} does not hold the lease on workflow {wf_id}",
                    workflow_id=wf_id,
                    lease_lost=True,
                )
            reason = "nondeterminism" if "nondetermin" in error.lower() else "failed"
            self.metrics.workflow_task_failed(fx, wf, reason)
            failures = task_failed(tx, fx, wf, worker_id, error, self.now())
        log.warning("workflow %s: workflow task failed (%d in a row): %s", wf_id, failures, error)
        return {"failures": failures, "stuck": failures >= STUCK_AFTER}
