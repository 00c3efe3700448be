"""Store records -> the API's response shapes (with real JSON values: docs/design.md, "Real JSON values")."""

from __future__ import annotations

from typing import Any

from assay.engine import schedules as cron
from assay.engine.deploy import stuck_view
from assay.protocol import HISTORY_AFTER, HISTORY_LAST_SEQ, HISTORY_NEXT_AFTER
from assay.store.base import Record

WORKFLOW_FIELDS = (
    "id",
    "namespace",
    "run_id",
    "workflow_type",
    "task_queue",
    "status",
    "input",
    "result",
    "error",
    "parent_id",
    "claimed_by",
    "search_attributes",
    "archived_at",
    "archive_uri",
    "created_at",
    "updated_at",
    "completed_at",
)
ACTIVITY_FIELDS = (
    "id",
    "workflow_id",
    "seq",
    "name",
    "task_queue",
    "input",
    "status",
    "result",
    "error",
    "attempt",
    "max_attempts",
    "initial_interval_secs",
    "backoff_coefficient",
    "maximum_interval_secs",
    "start_to_close_secs",
    "heartbeat_timeout_secs",
    "schedule_to_close_secs",
    "deadline_at",
    "non_retryable_errors",
    "claimed_by",
    "scheduled_at",
    "started_at",
    "completed_at",
    "last_heartbeat",
    "heartbeat_details",
    "cancel_requested",
)
SCHEDULE_FIELDS = (
    "name",
    "namespace",
    "workflow_type",
    "cron_expr",
    "timezone",
    "input",
    "task_queue",
    "overlap_policy",
    "paused",
    "last_run_at",
    "next_run_at",
    "last_workflow_id",
    "created_at",
    "updated_at",
)
WORKER_FIELDS = (
    "id",
    "namespace",
    "identity",
    "task_queue",
    "workflows",
    "activities",
    "max_concurrent_workflows",
    "max_concurrent_activities",
    "active_tasks",
    "heartbeat_interval_secs",
    "last_heartbeat",
    "registered_at",
    "build_id",
)


def _pick(rec: Record, fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: rec.get(k) for k in fields}


def workflow(rec: Record) -> dict[str, Any]:
    out = _pick(rec, WORKFLOW_FIELDS)
    out["cancel_requested"] = bool(rec.get("cancel_requested"))
    out["terminated"] = bool(rec.get("terminated"))  # FAILED by terminate (TERMINATED in Temporal's words)
    out["state_seq"] = rec.get("state_seq")  # event seq of the latest query snapshot (None: no snapshot)
    ids = rec.get("build_ids")
    out["build_ids"] = ids if isinstance(ids, list) else []
    out["stuck"] = stuck_view(rec)
    out["reset_to"] = rec.get("reset_to")
    out["reset_from"] = rec.get("reset_from")
    return out


def activity(rec: Record) -> dict[str, Any]:
    out = _pick(rec, ACTIVITY_FIELDS)
    out["cancel_requested"] = bool(out.get("cancel_requested"))
    return out


def event(rec: Record) -> dict[str, Any]:
    return {
        "id": rec["id"],
        "workflow_id": rec["workflow_id"],
        "seq": rec["seq"],
        "event_type": rec["event_type"],
        "payload": rec["payload"],
        "timestamp": rec["timestamp"],
    }


def schedule(rec: Record, now: float) -> dict[str, Any]:
    out = _pick(rec, SCHEDULE_FIELDS)
    out["paused"] = bool(out["paused"])
    try:
        out["next_runs"] = [] if out["paused"] else cron.preview(rec["cron_expr"], rec["timezone"], now, 5)
    except Exception:  # an invalid stored expression must not break listing
        out["next_runs"] = []
    return out


def worker(rec: Record) -> dict[str, Any]:
    return _pick(rec, WORKER_FIELDS)


def workflow_task(rec: Record) -> dict[str, Any]:
    """A workflow task as a worker receives it; a sticky worker's also carries history_last_seq, and
    history_after (a partial history) or history_next_after (a paged one) (engine/dispatch.py)."""
    out = {
        "workflow_id": rec["id"],
        "workflow_type": rec["workflow_type"],
        "namespace": rec["namespace"],
        "task_queue": rec["task_queue"],
        "input": rec["input"],
        "run_id": rec["run_id"],
        "parent_id": rec.get("parent_id"),
        "search_attributes": rec.get("search_attributes"),
        "created_at": rec["created_at"],
        "attempt": rec.get("dispatch_count", 1),
        "history": [
            {
                "seq": e["seq"],
                "event_type": e["event_type"],
                "payload": e["payload"],
                "timestamp": e["timestamp"],
            }
            for e in rec.get("history", [])
        ],
    }
    for key in (HISTORY_AFTER, HISTORY_NEXT_AFTER, HISTORY_LAST_SEQ):
        if rec.get(key) is not None:
            out[key] = rec[key]
    return out


def start_response(rec: Record) -> dict[str, Any]:
    return {"workflow_id": rec["id"], "run_id": rec["run_id"], "status": rec["status"]}
