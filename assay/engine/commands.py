"""Worker commands: parsed and validated up front, then applied in ONE transaction with their events
and the lease release. A batch from a worker that no longer holds the lease changes nothing (409).

Each command type is one `Handler` subclass below: `parse` turns the worker's JSON object into the typed
record of assay.protocol (raising BadRequest naming the field), `apply` performs it inside the batch's
transaction. Defining the class registers it; adding a command is one class (plus its protocol record).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from assay import protocol as p
from assay.engine import states
from assay.engine.core import EngineCore, Service
from assay.engine.deploy import record_version, task_failed, task_succeeded
from assay.engine.lifecycle import Lifecycle
from assay.engine.notify import Effects
from assay.engine.validate import (
    as_object,
    opt_int,
    opt_num,
    opt_str,
    opt_str_list,
    req_id,
    req_int,
    req_str,
    url_safe,
)
from assay.errors import AssayError, BadRequest, Conflict
from assay.protocol import CommandType, EventType, SseEvent, WorkflowStatus
from assay.store.base import Record, Tx

if TYPE_CHECKING:
    from assay.engine.tasks import TaskOps
    from assay.engine.workflows import WorkflowOps

log = logging.getLogger("assay.engine.commands")

C = TypeVar("C", bound=p.Command)
Raw = dict[str, Any]


@dataclass
class Step:
    """What a command's `apply` works with: the batch's transaction and effects, the workflow (kept
    current as the batch goes), the time, and the services a command may call."""

    tx: Tx
    fx: Effects
    wf: Record
    now: float
    ops: CommandOps


class Handler(Generic[C]):
    """One command type: subclass with `record`, `parse` and `apply`; the subclass registers itself."""

    record: ClassVar[type[p.Command]]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        t = cls.record.TYPE
        if t in COMMANDS:
            raise TypeError(f"command {t} registered twice")
        COMMANDS[t] = cls()

    def parse(self, raw: Raw) -> C:
        raise NotImplementedError

    def apply(self, s: Step, c: C) -> None:
        raise NotImplementedError


COMMANDS: dict[CommandType, Handler[Any]] = {}


def parse_command(i: int, raw: Any) -> p.Command:
    """Validate one command into its protocol record (raises BadRequest naming the command)."""
    try:
        if not isinstance(raw, dict):
            raise BadRequest("must be a JSON object")
        t = raw.get("type")
        if not isinstance(t, str):
            raise BadRequest("missing 'type'")
        try:
            handler = COMMANDS[CommandType(t)]
        except (ValueError, KeyError):
            raise BadRequest(f"unknown command type '{t}'") from None
        rec: p.Command = handler.parse(raw)
        return rec
    except BadRequest as e:
        raise BadRequest(f"command {i}: {e.message}", command_index=i) from None


def activity_spec(c: Raw) -> p.ScheduleActivity:
    """A ScheduleActivity command's fields (also the body of POST /workflows/{id}/activities)."""
    return p.ScheduleActivity(
        seq=req_int(c, "seq", min_value=0),
        name=req_str(c, "name"),
        task_queue=opt_str(c, "task_queue"),
        input=c.get("input"),
        max_attempts=opt_int(c, "max_attempts", min_value=0, max_value=10_000),
        initial_interval_secs=opt_num(c, "initial_interval_secs", min_value=0),
        backoff_coefficient=opt_num(c, "backoff_coefficient", min_value=1),
        maximum_interval_secs=opt_num(c, "maximum_interval_secs", min_value=0),
        start_to_close_secs=opt_num(c, "start_to_close_secs", min_value=0.001),
        heartbeat_timeout_secs=opt_num(c, "heartbeat_timeout_secs", min_value=0.001),
        schedule_to_close_secs=opt_num(c, "schedule_to_close_secs", min_value=0.001),
        non_retryable_errors=opt_str_list(c, "non_retryable_errors"),
    )


class CommandOps(Service):
    def __init__(self, core: EngineCore, life: Lifecycle, tasks: TaskOps, workflows: WorkflowOps) -> None:
        super().__init__(core)
        self.life = life
        self.tasks = tasks
        self.workflows = workflows

    #: set by Engine (dispatch.py): eager claims for the calling worker
    dispatch: Any = None

    def submit_commands(
        self,
        wf_id: str,
        worker_id: str,
        commands: list[Any],
        *,
        eager_activities: int = 0,
        eager_workflow_task: bool = False,
    ) -> dict[str, Any]:
        """Apply a batch atomically. Opt-in eager dispatch (dispatch.py): claim for this worker up to
        `eager_activities` of the activity tasks the batch schedules, and the workflow's next task when
        the batch leaves it dispatchable; returned under activity_tasks / workflow_task."""
        try:
            if not isinstance(commands, list):
                raise BadRequest("'commands' must be an array")
            parsed = [parse_command(i, c) for i, c in enumerate(commands)]
            with self._tx() as (tx, fx):
                wf = self._get_wf(tx, wf_id, payloads=False)  # no command reads its input or result
                if wf["dispatch_claimed_by"] != worker_id:
                    raise Conflict(
                        f"worker {worker_id} does not hold the lease on workflow {wf_id}",
                        workflow_id=wf_id,
                        lease_lost=True,
                    )
                applied = 0
                for cmd in parsed:
                    if states.is_terminal(wf["status"]):
                        log.info(
                            "workflow %s is %s: ignoring %s after a terminal command",
                            wf_id,
                            wf["status"],
                            cmd.TYPE,
                        )
                        continue
                    COMMANDS[cmd.TYPE].apply(Step(tx, fx, wf, self.now(), self), cmd)
                    applied += 1
                status = self._end_task(tx, fx, wf, worker_id)
                task_succeeded(tx, wf)  # an accepted batch clears the failure count and the stuck flag
                out: dict[str, Any] = {"applied": applied, "status": status}
                if eager_activities or eager_workflow_task:
                    acts, wfs = self.dispatch.eager_claim(
                        tx,
                        fx,
                        worker_id,
                        activities=eager_activities,
                        workflow_ids=(wf_id,) if eager_workflow_task else (),
                    )
                    out.update(activity_tasks=acts, workflow_task=wfs[0] if wfs else None)
                return out
        except AssayError as e:
            if isinstance(e, Conflict) and e.detail.get("lease_lost"):
                raise
            # The batch was rolled back; give the task back so a replay can try (docs/design.md, "A bad
            # command batch").
            self._give_back(wf_id, worker_id, f"the engine rejected the commands: {e.message}")
            raise

    @staticmethod
    def _end_task(tx: Tx, fx: Effects, wf: Record, worker_id: str) -> str:
        """Give the lease back after an applied batch; the workflow's status. A batch that ended the
        workflow (Lifecycle.finish) released the lease in the same UPDATE: nothing to write or read."""
        if states.is_terminal(wf["status"]) and wf.get("dispatch_claimed_by") is None:
            return str(wf["status"])
        after = tx.release_lease(wf["id"], worker_id) or tx.get_workflow(wf["id"])
        if after is None:  # pragma: no cover - the row is there (locked, on Postgres, since the lease check)
            return str(wf["status"])
        if after["needs_dispatch"] and not states.is_terminal(after["status"]):
            fx.ready_workflow(wf)  # (its queue, namespace and type: the batch does not change them)
        return str(after["status"])

    def _give_back(self, wf_id: str, worker_id: str, error: str) -> None:
        """Release the worker's lease and make the workflow dispatchable again, after a backoff that grows
        with consecutive failed workflow tasks (engine/deploy.py): a worker that keeps sending the same bad
        batch does not spin, and the workflow is flagged as stuck."""
        with self._tx() as (tx, fx):
            wf = tx.get_workflow(wf_id)
            if wf is None or wf["dispatch_claimed_by"] != worker_id:
                return
            self.metrics.workflow_task_failed(fx, wf, "rejected")
            task_failed(tx, fx, wf, worker_id, error, self.now())


def _last_seq(tx: Tx, wf_id: str) -> int:
    wf = tx.get_workflow(wf_id)
    return int(wf["last_seq"]) if wf else 0


# --- the command types -------------------------------------------------------------------------------


class _ScheduleActivity(Handler[p.ScheduleActivity]):
    record = p.ScheduleActivity

    def parse(self, raw: Raw) -> p.ScheduleActivity:
        return activity_spec(raw)

    def apply(self, s: Step, c: p.ScheduleActivity) -> None:
        s.ops.tasks._schedule_activity(s.tx, s.fx, s.wf, c)


class _ScheduleTimer(Handler[p.ScheduleTimer]):
    record = p.ScheduleTimer

    def parse(self, raw: Raw) -> p.ScheduleTimer:
        return p.ScheduleTimer(
            seq=req_int(raw, "seq", min_value=0),
            duration_secs=opt_num(raw, "duration_secs", 0.0, min_value=0, max_value=10 * 365 * 86400.0)
            or 0.0,
        )

    def apply(self, s: Step, c: p.ScheduleTimer) -> None:
        fire_at = s.now + float(c.duration_secs)
        timer_id = s.tx.insert_timer(s.wf["id"], c.seq, fire_at)
        if timer_id is not None:
            payload = {
                "timer_id": timer_id,
                "timer_seq": c.seq,
                "fire_at": fire_at,
                "duration_secs": c.duration_secs,
            }
            s.tx.append_event(s.wf["id"], EventType.TimerScheduled, payload, s.now)
            s.fx.wake_loop("timers")


class _WaitForSignal(Handler[p.WaitForSignal]):
    record = p.WaitForSignal

    def parse(self, raw: Raw) -> p.WaitForSignal:
        return p.WaitForSignal(
            name=opt_str(raw, "name", "?", allow_empty=True) or "",
            timer_seq=opt_int(raw, "timer_seq", min_value=0),
        )

    def apply(self, s: Step, c: p.WaitForSignal) -> None:
        wf_id = s.wf["id"]
        payload: dict[str, Any] = {"signal": c.name}
        if c.timer_seq is not None:
            payload["timer_seq"] = c.timer_seq
        last = s.tx.list_events(wf_id, max(0, _last_seq(s.tx, wf_id) - 1))
        if not (
            last
            and last[-1]["event_type"] == EventType.WorkflowAwaitingSignal
            and last[-1]["payload"] == payload
        ):
            s.tx.append_event(wf_id, EventType.WorkflowAwaitingSignal, payload, s.now)


class _RecordSideEffect(Handler[p.RecordSideEffect]):
    record = p.RecordSideEffect

    def parse(self, raw: Raw) -> p.RecordSideEffect:
        return p.RecordSideEffect(
            seq=req_int(raw, "seq", min_value=0),
            name=opt_str(raw, "name", "", allow_empty=True) or "",
            value=raw.get("value"),
        )

    def apply(self, s: Step, c: p.RecordSideEffect) -> None:
        wf_id = s.wf["id"]
        if s.tx.insert_side_effect(wf_id, c.seq, c.name, c.value):
            payload = {"side_effect_seq": c.seq, "name": c.name, "value": c.value}
            s.tx.append_event(wf_id, EventType.SideEffectRecorded, payload, s.now)
        s.tx.mark_dispatchable(wf_id, s.now)


class _StartChildWorkflow(Handler[p.StartChildWorkflow]):
    record = p.StartChildWorkflow

    def parse(self, raw: Raw) -> p.StartChildWorkflow:
        return p.StartChildWorkflow(
            workflow_type=req_str(raw, "workflow_type"),
            workflow_id=req_id(raw, "workflow_id"),
            task_queue=opt_str(raw, "task_queue"),
            input=raw.get("input"),
            search_attributes=raw.get("search_attributes"),
        )

    def apply(self, s: Step, c: p.StartChildWorkflow) -> None:
        tx, parent = s.tx, s.wf
        child_id = c.workflow_id
        existing = tx.get_workflow(child_id)
        if existing is not None:
            if existing.get("parent_id") == parent["id"]:
                return  # replay of a start we already did
            error = f"workflow id '{child_id}' is already used by a workflow that is not a child of {parent['id']}"
            payload = {"child_workflow_id": child_id, "reason": "id_conflict", "error": error}
            tx.append_event(parent["id"], EventType.ChildWorkflowFailed, payload, s.now)
            tx.mark_dispatchable(parent["id"], s.now)
            s.fx.wake_workflows(parent["task_queue"])
            return
        s.ops.life.create_workflow(
            tx,
            s.fx,
            workflow_id=child_id,
            workflow_type=c.workflow_type,
            namespace=parent["namespace"],
            task_queue=c.task_queue or parent["task_queue"],
            input=c.input,
            search_attributes=c.search_attributes,
            parent_id=parent["id"],
            stamp=False,
        )
        payload = {"child_workflow_id": child_id, "workflow_type": c.workflow_type}
        tx.append_event(parent["id"], EventType.ChildWorkflowStarted, payload, s.now)


class _UpsertSearchAttributes(Handler[p.UpsertSearchAttributes]):
    record = p.UpsertSearchAttributes

    def parse(self, raw: Raw) -> p.UpsertSearchAttributes:
        patch = raw.get("patch", {})
        if not isinstance(patch, dict):
            raise BadRequest("'patch' must be a JSON object")
        return p.UpsertSearchAttributes(patch=patch)

    def apply(self, s: Step, c: p.UpsertSearchAttributes) -> None:
        cur = s.wf.get("search_attributes")
        merged = dict(cur) if isinstance(cur, dict) else {}
        merged.update(c.patch)
        s.tx.update_workflow(s.wf["id"], search_attributes=merged)
        s.wf["search_attributes"] = merged


class _ContinueAsNew(Handler[p.ContinueAsNew]):
    record = p.ContinueAsNew

    def parse(self, raw: Raw) -> p.ContinueAsNew:
        new_id = url_safe(opt_str(raw, "workflow_id"), "workflow_id")
        return p.ContinueAsNew(input=raw.get("input"), workflow_id=new_id)

    def apply(self, s: Step, c: p.ContinueAsNew) -> None:
        s.ops.workflows._continue_as_new(s.tx, s.fx, s.wf, c.input, c.workflow_id)


class _RecordSnapshot(Handler[p.RecordSnapshot]):
    record = p.RecordSnapshot

    def parse(self, raw: Raw) -> p.RecordSnapshot:
        return p.RecordSnapshot(state=raw.get("state"))

    def apply(self, s: Step, c: p.RecordSnapshot) -> None:
        s.tx.upsert_snapshot(s.wf["id"], _last_seq(s.tx, s.wf["id"]), c.state, s.now)


class _CompleteWorkflow(Handler[p.CompleteWorkflow]):
    record = p.CompleteWorkflow

    def parse(self, raw: Raw) -> p.CompleteWorkflow:
        return p.CompleteWorkflow(result=raw.get("result"))

    def apply(self, s: Step, c: p.CompleteWorkflow) -> None:
        s.ops.life.finish(
            s.tx,
            s.fx,
            s.wf,
            WorkflowStatus.COMPLETED,
            event_type=EventType.WorkflowCompleted,
            payload=c.result,
            result=c.result,
            sse=SseEvent.workflow_completed,
        )


class _FailWorkflow(Handler[p.FailWorkflow]):
    record = p.FailWorkflow

    def parse(self, raw: Raw) -> p.FailWorkflow:
        return p.FailWorkflow(error=p.error_text(raw.get("error"), "workflow handler raised an error"))

    def apply(self, s: Step, c: p.FailWorkflow) -> None:
        s.ops.life.finish(
            s.tx,
            s.fx,
            s.wf,
            WorkflowStatus.FAILED,
            event_type=EventType.WorkflowFailed,
            payload={"error": c.error},
            error=c.error,
            sse=SseEvent.workflow_failed,
        )


class _CancelWorkflow(Handler[p.CancelWorkflow]):
    record = p.CancelWorkflow

    def parse(self, raw: Raw) -> p.CancelWorkflow:
        return p.CancelWorkflow(reason=opt_str(raw, "reason", allow_empty=True))

    def apply(self, s: Step, c: p.CancelWorkflow) -> None:
        reason = c.reason
        s.ops.life.finish(
            s.tx,
            s.fx,
            s.wf,
            WorkflowStatus.CANCELLED,
            event_type=EventType.WorkflowCancelled,
            payload={"reason": reason} if reason else None,
            error=reason or None,  # ctx:cancel(reason): the reason is the workflow's error too
            sse=SseEvent.workflow_cancelled,
            child_error="cancelled" + (f": {reason}" if reason else ""),
            cascade="cancel",
            cancel_reason=f"parent {s.wf['id']} cancelled",
        )


class _RecordVersion(Handler[p.RecordVersion]):
    """A version marker (ctx:get_version): consumes no seq; the first value per change id wins."""

    record = p.RecordVersion

    def parse(self, raw: Raw) -> p.RecordVersion:
        change_id = req_str(raw, "change_id")
        if len(change_id) > 256:
            raise BadRequest("'change_id' is longer than 256 characters")
        return p.RecordVersion(change_id=change_id, version=req_int(raw, "version", min_value=-(2**31)))

    def apply(self, s: Step, c: p.RecordVersion) -> None:
        record_version(s.tx, s.wf, c.change_id, c.version, s.now)


def parse_commands_body(body: Any) -> tuple[str, Any]:
    """worker_id and the raw commands (submit_commands validates them, giving the lease back if bad)."""
    b = as_object(body)
    worker_id = req_str(b, "worker_id")
    commands = b.get("commands", [])
    return worker_id, [] if commands is None else commands
