"""assay.testing: unit-test Python workflows against an in-process engine with a fake clock.

    from assay.testing import Engine

    def test_greet():
        with Engine() as env:                           # every @workflow.define / .activity so far
            env.mock_activity("render", lambda actx, input: "stub")
            wid = env.start("Greet", {"name": "ada"})
            env.signal(wid, "approve", {"user": "jane"})
            assert env.result(wid)["approved"] is True  # runs until terminal, skipping time

The engine is the real one (assay.engine on a temporary SQLite file); workflow and activity tasks run in
the calling thread through the same replay as the live worker. Time only moves when the test says so
(`advance`) or when nothing else can happen (`result` jumps to the next timer, retry or schedule), so a
workflow that sleeps 30 days finishes at once. See docs/python.md.
"""

from __future__ import annotations

import shutil
import tempfile
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from assay import records
from assay.clock import FakeClock
from assay.config import load_settings
from assay.engine import Engine as _CoreEngine
from assay.engine import states
from assay.errors import AssayError
from assay.protocol import DEFAULT_TASK_QUEUE, EventType, TaskKind, WorkflowStatus
from assay.store import open_store
from assay.workflow import registry, replay
from assay.workflow.errors import WorkflowError, WorkflowTaskError

__all__ = ["Engine", "WorkflowFailed", "WorkflowStuck"]

#: the fake clock starts here unless told otherwise (2025-01-01T00:00:00Z)
DEFAULT_START = 1_735_689_600.0
_MAX_STEPS = 100_000


class WorkflowFailed(WorkflowError):
    """`env.result` of a workflow that ended FAILED, CANCELLED or TIMED_OUT."""

    def __init__(self, workflow_id: str, status: str, error: Any) -> None:
        super().__init__(f"workflow {workflow_id} ended {status}: {error}")
        self.workflow_id, self.status, self.error = workflow_id, status, error


class WorkflowStuck(WorkflowError):
    """`env.result` of a workflow that waits for something only the test can give (a signal)."""


class Engine:
    """An in-process engine with a fake clock that runs the registered workflows and activities.

    `module`: register only the handlers defined in that module (default: everything registered so
    far). `start_time`: the fake clock's epoch seconds.
    """

    def __init__(self, module: types.ModuleType | None = None, *, start_time: float = DEFAULT_START) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="assay-testing-"))
        self.clock = FakeClock(start_time)
        self.store = open_store("sqlite:///" + str(self._dir / "engine.db"))
        settings = load_settings({"backend": "sqlite:///" + str(self._dir / "engine.db")}, environ={})
        self.engine = _CoreEngine(self.store, clock=self.clock, settings=settings)
        self.workflows: dict[str, Callable[..., Any]] = {}
        self.activities: dict[str, Callable[..., Any]] = {}
        for name, fn in registry.WORKFLOWS.items():
            if module is None or getattr(fn, "__module__", None) == module.__name__:
                self.workflows[name] = fn
        for name, fn in registry.ACTIVITIES.items():
            if module is None or getattr(fn, "__module__", None) == module.__name__:
                self.activities[name] = fn
        self.queues: set[str] = {DEFAULT_TASK_QUEUE}
        self.worker_id = self.engine.register_worker(
            identity="assay.testing", queue=DEFAULT_TASK_QUEUE, workflows=list(self.workflows),
            activities=list(self.activities),
        )  # fmt: skip
        self._retry_mark = self.clock.now() - 86400.0
        self.closed = False

    # -- context manager ------------------------------------------------------------------------------
    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.engine.notifier.close()
        self.store.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    # -- set-up ----------------------------------------------------------------------------------------
    def mock_activity(self, name: str, fn: Callable[..., Any]) -> None:
        """Run `fn(actx, input)` instead of the registered activity `name` (it need not be registered)."""
        self.activities[name] = fn

    def register_workflow(self, name: str, fn: Callable[..., Any]) -> None:
        """Add (or replace) a workflow handler for this engine only."""
        self.workflows[name] = fn

    # -- driving -----------------------------------------------------------------------------------------
    def now(self) -> float:
        """The fake clock (epoch seconds)."""
        return self.clock.now()

    def start(
        self,
        workflow_type: str,
        input: Any = None,
        *,
        workflow_id: str | None = None,
        task_queue: str = DEFAULT_TASK_QUEUE,
        search_attributes: Any = None,
    ) -> str:
        """Start a workflow and run it until it waits; returns its id."""
        wid = workflow_id or f"wf-{workflow_type.lower()}-{len(self.engine.list_workflows()) + 1}"
        self.queues.add(task_queue)
        self.engine.start_workflow(
            workflow_type=workflow_type, workflow_id=wid, task_queue=task_queue, input=input,
            search_attributes=search_attributes,
        )  # fmt: skip
        self.run_until_idle()
        return wid

    def signal(self, workflow_id: str, name: str, payload: Any = None) -> None:
        """Deliver a signal and run what it unblocks."""
        self.engine.signal(workflow_id, name, payload)
        self.run_until_idle()

    def cancel(self, workflow_id: str, reason: str | None = None) -> None:
        """Request cancellation and run what it unblocks."""
        self.engine.cancel(workflow_id, reason)
        self.run_until_idle()

    def create_schedule(self, **spec: Any) -> dict[str, Any]:
        """Create a cron schedule (the fields of `POST /schedules`); fires as the fake clock passes it."""
        self.queues.add(spec.get("task_queue") or DEFAULT_TASK_QUEUE)
        return self.engine.create_schedule(spec)

    def advance(self, seconds: float) -> None:
        """Move the fake clock forward `seconds`, firing everything that falls due on the way, in order."""
        if seconds < 0:
            raise ValueError("advance: seconds must not be negative")
        target = self.clock.now() + seconds
        self.run_until_idle()
        for _ in range(_MAX_STEPS):
            nxt = self._next_due()
            if nxt is None or nxt > target:
                break
            self.clock.set(max(nxt, self.clock.now()))
            self.run_until_idle()
        self.clock.set(target)
        self.run_until_idle()

    def result(self, workflow_id: str, *, max_skip_secs: float = 100 * 365 * 86400.0) -> Any:
        """Run (skipping time whenever nothing else can happen) until the workflow is terminal; return its
        result (following continue-as-new to the last run of the chain). Raises WorkflowFailed when it did not complete and WorkflowStuck when it waits for
        something no timer will bring (a signal)."""
        limit = self.clock.now() + max_skip_secs
        for _ in range(_MAX_STEPS):
            self.run_until_idle()
            wf = self.engine.get_workflow(workflow_id)
            if states.is_terminal(wf["status"]):
                res = wf.get("result")
                if (
                    wf["status"] == WorkflowStatus.COMPLETED
                    and isinstance(res, dict)
                    and list(res) == ["continued_as_new"]
                ):
                    workflow_id = str(res["continued_as_new"])  # follow the chain to its last run
                    continue
                if wf["status"] == WorkflowStatus.COMPLETED:
                    return res
                raise WorkflowFailed(workflow_id, wf["status"], wf.get("error"))
            nxt = self._next_due()
            if nxt is None or nxt > limit:
                waiting = [
                    e["payload"]
                    for e in self.events(workflow_id)
                    if e["event_type"] == EventType.WorkflowAwaitingSignal
                ]
                what = f" (last waiting for {waiting[-1]})" if waiting else ""
                raise WorkflowStuck(f"workflow {workflow_id} is {wf['status']} and nothing is due{what}")
            self.clock.set(max(nxt, self.clock.now()))
        raise WorkflowStuck(f"workflow {workflow_id}: gave up after {_MAX_STEPS} steps")

    # -- reading -------------------------------------------------------------------------------------------
    def describe(self, workflow_id: str) -> dict[str, Any]:
        """The workflow record (as `GET /workflows/{id}` answers it)."""
        return records.workflow(self.engine.get_workflow(workflow_id))

    def events(self, workflow_id: str) -> list[dict[str, Any]]:
        """The workflow's events (event_type, payload, seq, timestamp)."""
        return [records.event(e) for e in self.engine.list_events(workflow_id)]

    def state(self, workflow_id: str, name: str | None = None) -> Any:
        """The latest query snapshot (one query's value when `name` is given), None when there is none."""
        try:
            out = self.engine.get_state(workflow_id, name)
        except AssayError:
            return None
        return out.get("value", out.get("state")) if isinstance(out, Mapping) else out

    # -- the in-process worker -------------------------------------------------------------------------
    def _tick(self) -> None:
        e = self.engine
        e.fire_due_timers()
        e.expire_activities()
        e.wake_due_retries(self._retry_mark)
        self._retry_mark = self.clock.now()
        e.fire_due_schedules()

    def _next_due(self) -> float | None:
        e = self.engine
        now = self.clock.now()
        cands = [e.next_timer_due(), e.next_activity_deadline(), e.wake_due_retries(self._retry_mark),
                 e.next_schedule_due()]  # fmt: skip
        self._retry_mark = now
        due = [c for c in cands if c is not None]
        return max(min(due), now) if due else None

    def run_until_idle(self) -> int:
        """Fire what is due now and run workflow and activity tasks until none is ready; returns how many ran."""
        ran = 0
        for _ in range(_MAX_STEPS):
            self._tick()
            progressed = False
            for q in sorted(self.queues):
                kind, task = self.engine.claim_task(q, self.worker_id)
                if task is None:
                    continue
                progressed = True
                ran += 1
                if kind == TaskKind.workflow_task:
                    self._run_workflow(records.workflow_task(task))
                else:
                    self._run_activity(records.activity(task))
                break
            if not progressed:
                return ran
        raise WorkflowStuck(f"more than {_MAX_STEPS} tasks without becoming idle (a workflow loops?)")

    def _run_workflow(self, task: dict[str, Any]) -> None:
        res = replay.run(self.workflows.get(str(task["workflow_type"])), task)
        if res.task_error is not None:
            raise WorkflowTaskError(f"workflow {task['workflow_id']}: {res.task_error}")
        for c in res.commands:
            if c.get("task_queue"):
                self.queues.add(str(c["task_queue"]))
        self.engine.submit_commands(task["workflow_id"], self.worker_id, res.commands)

    def _run_activity(self, task: dict[str, Any]) -> None:
        def beat(details: Any) -> bool:
            try:
                out = self.engine.heartbeat_activity(task["id"], details, self.worker_id)
            except AssayError:
                return True
            return bool(out.get("cancel_requested"))

        actx = registry.ActivityContext(task, beat)
        out = registry.run_activity(self.activities.get(str(task["name"])), actx, task.get("input"))
        try:
            if out.ok:
                self.engine.complete_activity(task["id"], out.result, self.worker_id)
            else:
                self.engine.fail_activity(
                    task["id"],
                    out.error or "activity failed",
                    self.worker_id,
                    non_retryable=out.non_retryable,
                )
        except AssayError:  # the attempt was fenced off (the workflow was cancelled meanwhile)
            pass
