"""Record builders for the Store contract tests (plain dicts, as the engine writes them)."""

from __future__ import annotations

from typing import Any

T0 = 1_750_000_000.0


def wf(wf_id: str, **kw: Any) -> dict[str, Any]:
    created = kw.pop("created_at", T0)
    rec = {
        "id": wf_id,
        "namespace": "main",
        "run_id": f"run-{wf_id}",
        "workflow_type": "T",
        "task_queue": "default",
        "status": "PENDING",
        "input": None,
        "parent_id": None,
        "search_attributes": None,
        "created_at": created,
        "updated_at": created,
        "needs_dispatch": 0,
        "ready_at": None,
        "last_seq": 0,
    }
    rec.update(kw)
    return rec


def ready(wf_id: str, at: float = T0, **kw: Any) -> dict[str, Any]:
    """A dispatchable workflow (as `start` creates it)."""
    return wf(wf_id, needs_dispatch=1, ready_at=at, created_at=kw.pop("created_at", at), **kw)


def activity(wf_id: str, seq: int, **kw: Any) -> dict[str, Any]:
    rec = {
        "workflow_id": wf_id,
        "seq": seq,
        "name": f"act{seq}",
        "task_queue": "default",
        "input": None,
        "status": "PENDING",
        "attempt": 1,
        "max_attempts": 3,
        "initial_interval_secs": 1.0,
        "backoff_coefficient": 2.0,
        "maximum_interval_secs": None,
        "start_to_close_secs": 300.0,
        "heartbeat_timeout_secs": None,
        "non_retryable_errors": None,
        "scheduled_at": T0,
    }
    rec.update(kw)
    return rec


def worker(worker_id: str, **kw: Any) -> dict[str, Any]:
    rec = {
        "id": worker_id,
        "namespace": "main",
        "identity": "host-1",
        "task_queue": "default",
        "workflows": ["A"],
        "activities": ["x"],
        "max_concurrent_workflows": 10,
        "max_concurrent_activities": 10,
        "active_tasks": 0,
        "heartbeat_interval_secs": None,
        "lost_after_secs": None,
        "last_heartbeat": T0,
        "registered_at": T0,
    }
    rec.update(kw)
    return rec


def schedule(name: str, **kw: Any) -> dict[str, Any]:
    rec = {
        "namespace": "main",
        "name": name,
        "workflow_type": "Report",
        "cron_expr": "0 * * * * *",
        "timezone": "UTC",
        "input": {"k": 1},
        "task_queue": "default",
        "overlap_policy": "skip",
        "paused": False,
        "next_run_at": T0 + 60,
        "queued_fires": 0,
        "created_at": T0,
        "updated_at": T0,
    }
    rec.update(kw)
    return rec
