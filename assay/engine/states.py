"""Workflow and activity statuses, and the one transition table the engine consults."""

from __future__ import annotations

from assay.errors import Conflict

PENDING, RUNNING, WAITING = "PENDING", "RUNNING", "WAITING"
COMPLETED, FAILED, CANCELLED, TIMED_OUT = "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"

WORKFLOW_STATUSES = (PENDING, RUNNING, WAITING, COMPLETED, FAILED, CANCELLED, TIMED_OUT)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED, TIMED_OUT})

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({RUNNING, COMPLETED, FAILED, CANCELLED, TIMED_OUT}),
    RUNNING: frozenset({WAITING, COMPLETED, FAILED, CANCELLED, TIMED_OUT}),
    WAITING: frozenset({RUNNING, COMPLETED, FAILED, CANCELLED, TIMED_OUT}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
    TIMED_OUT: frozenset(),
}

ACTIVITY_STATUSES = (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED)
ACTIVITY_TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({RUNNING, CANCELLED}),
    RUNNING: frozenset({COMPLETED, FAILED, PENDING, CANCELLED}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}


def is_terminal(status: str) -> bool:
    return status in TERMINAL


def can_transition(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


def check_transition(wf_id: str, current: str, new: str) -> None:
    """Raise Conflict (409) unless `current -> new` is allowed."""
    if not can_transition(current, new):
        raise Conflict(
            f"workflow {wf_id} is {current}; cannot move to {new}", workflow_id=wf_id, status=current
        )
