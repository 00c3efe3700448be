"""Exceptions of `assay.workflow` (stdlib only)."""

from __future__ import annotations


class WorkflowError(Exception):
    """Base class of the errors a workflow handler sees from ctx calls."""


class ActivityError(WorkflowError):
    """An activity failed for good (all attempts used or a non-retryable error).

    Raised inside the workflow by ``ctx.execute_activity`` / ``ctx.execute_parallel``. An activity
    handler may also raise it with ``non_retryable=True`` to skip its remaining attempts.
    """

    def __init__(self, message: str, *, name: str | None = None, error: str | None = None,
                 non_retryable: bool = False) -> None:  # fmt: skip
        super().__init__(message)
        self.name = name
        self.error = message if error is None else error
        self.non_retryable = non_retryable


class ChildWorkflowError(WorkflowError):
    """A child workflow ended FAILED, CANCELLED or TIMED_OUT (raised by ``ctx.start_child_workflow``)."""

    def __init__(self, message: str, *, workflow_id: str, error: str) -> None:
        super().__init__(message)
        self.workflow_id = workflow_id
        self.error = error


class Cancelled(Exception):  # noqa: N818 - the name the issue and the docs use
    """The workflow was cancelled. Raised inside the handler by the next ctx call that waits; the handler
    may catch it to clean up (without waiting again): the workflow ends CANCELLED either way."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__("workflow cancelled" + (f": {reason}" if reason is not None else ""))
        self.reason = reason


class WorkflowTaskError(BaseException):
    """The workflow task cannot run with this code (nondeterminism, an unsupported version): the task
    fails and is retried later; the workflow itself is untouched. A BaseException so a handler's
    ``except Exception`` cannot swallow it."""


class NondeterminismError(WorkflowTaskError):
    """The code took another path than the one recorded in the history."""


class WorkerError(Exception):
    """A worker cannot start (not connected, nothing registered, registration refused)."""
