"""Registered workflow and activity handlers, the activity context, and running one activity task."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from assay.workflow.errors import ActivityError
from assay.workflow.history import freeze

log = logging.getLogger("assay.workflow")

F = TypeVar("F", bound=Callable[..., Any])

#: name -> handler, in registration order
WORKFLOWS: dict[str, Callable[..., Any]] = {}
ACTIVITIES: dict[str, Callable[..., Any]] = {}


def _check(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"workflow.{kind}: name must be a non-empty string")
    return name


def define(name: str) -> Callable[[F], F]:
    """Decorator: register `fn(ctx, input)` as the handler of workflow type `name`."""
    _check("define", name)

    def deco(fn: F) -> F:
        if not callable(fn):
            raise TypeError("workflow.define: handler must be callable")
        WORKFLOWS[name] = fn
        return fn

    return deco


def activity(name: str) -> Callable[[F], F]:
    """Decorator: register `fn(actx, input)` as the handler of activity `name`."""
    _check("activity", name)

    def deco(fn: F) -> F:
        if not callable(fn):
            raise TypeError("workflow.activity: handler must be callable")
        ACTIVITIES[name] = fn
        return fn

    return deco


class ActivityContext:
    """The `actx` an activity handler receives."""

    def __init__(self, task: Mapping[str, Any], heartbeat: Callable[[Any], bool]) -> None:
        self._task = task
        self._heartbeat = heartbeat
        self.activity_id: int = int(task.get("id") or 0)
        self.id = self.task_id = self.activity_id
        self.workflow_id: str = str(task.get("workflow_id"))
        self.name: str = str(task.get("name"))
        self.attempt: int = int(task.get("attempt") or 1)
        self.max_attempts: int | None = task.get("max_attempts")
        self.seq: int | None = task.get("seq")

    def heartbeat(self, details: Any = None) -> bool:
        """Report liveness (and progress `details`); True when the activity should stop (its workflow was
        cancelled, or the task no longer belongs to this worker)."""
        return self._heartbeat(freeze("actx.heartbeat details", details))

    def info(self) -> dict[str, Any]:
        t = self._task
        return {
            k: t.get(k)
            for k in (
                "workflow_id",
                "name",
                "seq",
                "attempt",
                "max_attempts",
                "task_queue",
                "start_to_close_secs",
                "heartbeat_timeout_secs",
            )  # fmt: skip
        } | {"activity_id": self.activity_id}


@dataclass
class ActivityOutcome:
    ok: bool
    result: Any = None
    error: str | None = None
    non_retryable: bool = False


def run_activity(fn: Callable[..., Any] | None, actx: ActivityContext, input: Any) -> ActivityOutcome:
    """Run one activity attempt; never raises (an exception becomes a failed outcome)."""
    name = actx.name
    if fn is None:
        return ActivityOutcome(False, error=f"No handler registered for activity: {name}")
    try:
        res = fn(actx, input)
    except Exception as e:
        msg = (
            str(e)
            if isinstance(e, ActivityError)
            else (f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        )
        log.warning(
            "activity %s #%s (%s) attempt %s failed: %s\n%s",
            name,
            actx.activity_id,
            actx.workflow_id,
            actx.attempt,
            msg,
            "".join(traceback.format_exception(e)).rstrip(),
        )
        return ActivityOutcome(False, error=msg, non_retryable=getattr(e, "non_retryable", False) is True)
    try:
        return ActivityOutcome(True, result=freeze("result", res))
    except TypeError as e:
        why = str(e).removeprefix("result cannot be encoded as JSON: ")
        return ActivityOutcome(
            False, error=f"activity '{name}' returned a value that cannot be encoded as JSON: {why}"
        )
