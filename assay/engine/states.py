"""The one transition table the engine consults (the status names come from assay.protocol)."""

from __future__ import annotations

from assay.errors import Conflict
from assay.protocol import TERMINAL_STATUSES, ActivityStatus, WorkflowStatus

W, A = WorkflowStatus, ActivityStatus

TRANSITIONS: dict[str, frozenset[str]] = {
    W.PENDING: frozenset({W.RUNNING, W.COMPLETED, W.FAILED, W.CANCELLED, W.TIMED_OUT}),
    W.RUNNING: frozenset({W.WAITING, W.COMPLETED, W.FAILED, W.CANCELLED, W.TIMED_OUT}),
    W.WAITING: frozenset({W.RUNNING, W.COMPLETED, W.FAILED, W.CANCELLED, W.TIMED_OUT}),
    W.COMPLETED: frozenset(),
    W.FAILED: frozenset(),
    W.CANCELLED: frozenset(),
    W.TIMED_OUT: frozenset(),
}

ACTIVITY_TRANSITIONS: dict[str, frozenset[str]] = {
    A.PENDING: frozenset({A.RUNNING, A.CANCELLED}),
    A.RUNNING: frozenset({A.COMPLETED, A.FAILED, A.PENDING, A.CANCELLED}),
    A.COMPLETED: frozenset(),
    A.FAILED: frozenset(),
    A.CANCELLED: frozenset(),
}


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES


def can_transition(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


def check_transition(wf_id: str, current: str, new: str) -> None:
    """Raise Conflict (409) unless `current -> new` is allowed."""
    if not can_transition(current, new):
        raise Conflict(
            f"workflow {wf_id} is {current}; cannot move to {new}", workflow_id=wf_id, status=current
        )
