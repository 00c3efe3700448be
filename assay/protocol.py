"""The protocol's vocabulary, declared once: every layer (engine, store, API, SDK, CLI, Lua runtime,
dashboard) imports these names instead of writing the strings out.

Enum members are `StrEnum`s whose values ARE the wire strings, so `status == WorkflowStatus.RUNNING`
holds for a plain string read from JSON or SQL, and `json.dumps` writes the bare value. The Lua runtime
and the dashboard receive the same lists generated from this module (`as_json()`), never a hand copy.
See docs/design.md for why the words are what they are.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, ClassVar


class WorkflowStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"


#: statuses a workflow never leaves
TERMINAL_STATUSES: frozenset[WorkflowStatus] = frozenset(
    {WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED, WorkflowStatus.TIMED_OUT}
)


class ActivityStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class EventType(StrEnum):
    """Types of the events in a workflow's history (`workflow_events.event_type`)."""

    WorkflowStarted = "WorkflowStarted"
    WorkflowCompleted = "WorkflowCompleted"
    WorkflowFailed = "WorkflowFailed"
    WorkflowCancelled = "WorkflowCancelled"
    WorkflowCancelRequested = "WorkflowCancelRequested"
    WorkflowAwaitingSignal = "WorkflowAwaitingSignal"
    ActivityScheduled = "ActivityScheduled"
    ActivityCompleted = "ActivityCompleted"
    ActivityFailed = "ActivityFailed"
    TimerScheduled = "TimerScheduled"
    TimerFired = "TimerFired"
    SignalReceived = "SignalReceived"
    SideEffectRecorded = "SideEffectRecorded"
    ChildWorkflowStarted = "ChildWorkflowStarted"
    ChildWorkflowCompleted = "ChildWorkflowCompleted"
    ChildWorkflowFailed = "ChildWorkflowFailed"
    #: a workflow's version of a code change (ctx:get_version); no command seq is consumed
    VersionMarkerRecorded = "VersionMarkerRecorded"


#: events that end a workflow's history
TERMINAL_EVENTS: frozenset[EventType] = frozenset(
    {EventType.WorkflowCompleted, EventType.WorkflowFailed, EventType.WorkflowCancelled}
)


class SseEvent(StrEnum):
    """Names of the server-sent events on GET /api/v1/events (the `event:` line)."""

    workflow_started = "workflow_started"
    workflow_running = "workflow_running"
    workflow_completed = "workflow_completed"
    workflow_failed = "workflow_failed"
    workflow_cancelled = "workflow_cancelled"
    workflow_terminated = "workflow_terminated"
    signal_received = "signal_received"
    task_completed = "task_completed"
    task_failed = "task_failed"
    schedule_triggered = "schedule_triggered"
    #: a workflow's workflow tasks keep failing (its record now carries `stuck`)
    workflow_stuck = "workflow_stuck"


#: SSE events sent when a workflow reaches a terminal status
TERMINAL_SSE_EVENTS: frozenset[SseEvent] = frozenset(
    {
        SseEvent.workflow_completed,
        SseEvent.workflow_failed,
        SseEvent.workflow_cancelled,
        SseEvent.workflow_terminated,
    }
)


class CommandType(StrEnum):
    """`type` of the commands a worker submits after running a workflow task."""

    ScheduleActivity = "ScheduleActivity"
    ScheduleTimer = "ScheduleTimer"
    WaitForSignal = "WaitForSignal"
    RecordSideEffect = "RecordSideEffect"
    StartChildWorkflow = "StartChildWorkflow"
    UpsertSearchAttributes = "UpsertSearchAttributes"
    ContinueAsNew = "ContinueAsNew"
    RecordSnapshot = "RecordSnapshot"
    CompleteWorkflow = "CompleteWorkflow"
    FailWorkflow = "FailWorkflow"
    CancelWorkflow = "CancelWorkflow"
    #: record the version of a code change the workflow follows (idempotent per change_id, no seq)
    RecordVersion = "RecordVersion"


#: commands that end the workflow's run; anything after one in the same batch is ignored
TERMINAL_COMMANDS: frozenset[CommandType] = frozenset(
    {
        CommandType.CompleteWorkflow,
        CommandType.FailWorkflow,
        CommandType.CancelWorkflow,
        CommandType.ContinueAsNew,
    }
)


class TemporalStatus(StrEnum):
    """Statuses in the Temporal-era API only (`temporal.*`, `assay.temporal`; docs/temporal.md). Natively a
    terminated workflow is FAILED with `terminated: true`, a continued one COMPLETED with the
    `{"continued_as_new": id}` marker, and PENDING reads RUNNING."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    TERMINATED = "TERMINATED"
    CONTINUED_AS_NEW = "CONTINUED_AS_NEW"
    TIMED_OUT = "TIMED_OUT"


class TaskKind(StrEnum):
    """`kind` of a task handed out by POST /api/v1/poll."""

    workflow_task = "workflow_task"
    activity_task = "activity_task"


class OverlapPolicy(StrEnum):
    """What a schedule does when it fires while its previous run is still going."""

    skip = "skip"
    queue = "queue"
    cancel_old = "cancel_old"
    allow_all = "allow_all"


DEFAULT_OVERLAP_POLICY = OverlapPolicy.skip

#: a command type no engine accepts: a batch holding it is rejected (400), which gives the workflow task back
#: with a backoff. Workers use it to fail a task on engines without POST /workflow-tasks/{id}/fail.
REJECTED_COMMAND = "FailWorkflowTask"

#: `format` of an exported workflow history (`assay workflow export`, read by `assay replay --history`)
HISTORY_FORMAT = "assay-history/1"

#: Sticky workflow state (docs/design.md, "Workflow task histories and sticky workers"): the opt-in flag
#: of POST /workers/register, and the fields of the workflow tasks handed to a worker that set it.
#: `history_after` = A: the task carries only the events with seq > A (the worker applies them to its
#: cached state if that state's last seq is A); `history_next_after`: the history is paged, fetch the rest
#: with GET /workflows/{id}/events?after=&limit=; `history_last_seq`: the highest seq the task covers.
STICKY = "sticky"
HISTORY_AFTER = "history_after"
HISTORY_NEXT_AFTER = "history_next_after"
HISTORY_LAST_SEQ = "history_last_seq"
#: events in a page of history: the first page of a sticky worker's full-history task, and the cap of
#: GET /workflows/{id}/events?limit=
HISTORY_PAGE_MAX = 1000

#: Idle polls (opt-in): a poll's request field `retry_after: true` ("I wait myself"); an empty answer to
#: such a poll that the engine could not hold carries `retry_after`: seconds to wait before polling again.
RETRY_AFTER = "retry_after"

#: Waiting on one workflow (opt-in): GET /events/stream?workflow_id=<id> sends only that workflow's events,
#: and its terminal event's data then carries the workflow's record (what GET /workflows/{id} returns)
#: in `workflow`, read after the commit, so a waiter needs no describe round trip to return it.
STREAM_WORKFLOW_ID = "workflow_id"
STREAM_RECORD = "workflow"

#: the namespace used when a request names none (created by the first migration, cannot be deleted)
DEFAULT_NAMESPACE = "main"
#: the task queue used when a start / schedule / worker names none
DEFAULT_TASK_QUEUE = "default"


class ExitStatus(IntEnum):
    """Exit statuses of the `assay` command."""

    OK = 0
    #: the engine said no (HTTP error, not found, unreachable), or the workflow waited on did not complete
    FAILURE = 1
    #: `assay workflow wait` gave up before the workflow reached the target
    WAIT_TIMEOUT = 2
    #: bad command-line usage or unreadable input (BSD sysexits EX_USAGE)
    USAGE = 64
    #: interrupted (Ctrl-C / aborted prompt): 128 + SIGINT
    INTERRUPTED = 130


# --- typed command records -----------------------------------------------------------------------
# One frozen record per command type, with the fields the engine accepts after validation.
# `to_wire()` gives the JSON object a worker sends; the engine's registry parses into these.


@dataclass(frozen=True)
class Command:
    TYPE: ClassVar[CommandType]

    def to_wire(self) -> dict[str, Any]:
        return {"type": str(self.TYPE), **{k: v for k, v in asdict(self).items() if v is not None}}


@dataclass(frozen=True)
class ScheduleActivity(Command):
    TYPE: ClassVar[CommandType] = CommandType.ScheduleActivity
    seq: int
    name: str
    task_queue: str | None = None
    input: Any = None
    max_attempts: int | None = None
    initial_interval_secs: float | None = None
    backoff_coefficient: float | None = None
    maximum_interval_secs: float | None = None
    start_to_close_secs: float | None = None
    heartbeat_timeout_secs: float | None = None
    #: one deadline over all attempts, queued time included; past it: final timeout, no retry
    schedule_to_close_secs: float | None = None
    non_retryable_errors: list[str] | None = None


@dataclass(frozen=True)
class ScheduleTimer(Command):
    TYPE: ClassVar[CommandType] = CommandType.ScheduleTimer
    seq: int
    duration_secs: float = 0.0


@dataclass(frozen=True)
class WaitForSignal(Command):
    TYPE: ClassVar[CommandType] = CommandType.WaitForSignal
    name: str = "?"
    timer_seq: int | None = None


@dataclass(frozen=True)
class RecordSideEffect(Command):
    TYPE: ClassVar[CommandType] = CommandType.RecordSideEffect
    seq: int
    name: str = ""
    value: Any = None


@dataclass(frozen=True)
class StartChildWorkflow(Command):
    TYPE: ClassVar[CommandType] = CommandType.StartChildWorkflow
    workflow_type: str
    workflow_id: str
    task_queue: str | None = None
    input: Any = None
    search_attributes: Any = None


@dataclass(frozen=True)
class UpsertSearchAttributes(Command):
    TYPE: ClassVar[CommandType] = CommandType.UpsertSearchAttributes
    patch: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ContinueAsNew(Command):
    TYPE: ClassVar[CommandType] = CommandType.ContinueAsNew
    input: Any = None
    workflow_id: str | None = None


@dataclass(frozen=True)
class RecordSnapshot(Command):
    TYPE: ClassVar[CommandType] = CommandType.RecordSnapshot
    state: Any = None


@dataclass(frozen=True)
class CompleteWorkflow(Command):
    TYPE: ClassVar[CommandType] = CommandType.CompleteWorkflow
    result: Any = None


@dataclass(frozen=True)
class FailWorkflow(Command):
    TYPE: ClassVar[CommandType] = CommandType.FailWorkflow
    error: str = ""


@dataclass(frozen=True)
class CancelWorkflow(Command):
    TYPE: ClassVar[CommandType] = CommandType.CancelWorkflow
    reason: str | None = None


@dataclass(frozen=True)
class RecordVersion(Command):
    TYPE: ClassVar[CommandType] = CommandType.RecordVersion
    change_id: str
    version: int


#: the record class of each command type
COMMAND_RECORDS: dict[CommandType, type[Command]] = {
    c.TYPE: c
    for c in (
        ScheduleActivity,
        ScheduleTimer,
        WaitForSignal,
        RecordSideEffect,
        StartChildWorkflow,
        UpsertSearchAttributes,
        ContinueAsNew,
        RecordSnapshot,
        CompleteWorkflow,
        FailWorkflow,
        CancelWorkflow,
        RecordVersion,
    )
}


def error_text(err: Any, default: str) -> str:
    """The one rule turning a reported error (string, object, anything JSON) into the stored text:
    a non-empty string as is, nothing -> `default`, anything else (an object, a number) -> its JSON."""
    if isinstance(err, str) and err:
        return err
    if err is None or err == "":
        return default
    return json.dumps(err, default=str)


def as_json() -> dict[str, Any]:
    """The whole vocabulary as plain JSON (served to the dashboard, injected into the Lua runtime)."""
    return {
        "workflow_statuses": [s.value for s in WorkflowStatus],
        "terminal_statuses": [s.value for s in WorkflowStatus if s in TERMINAL_STATUSES],
        "activity_statuses": [s.value for s in ActivityStatus],
        "event_types": [e.value for e in EventType],
        "terminal_events": [e.value for e in EventType if e in TERMINAL_EVENTS],
        "sse_events": [e.value for e in SseEvent],
        "terminal_sse_events": [e.value for e in SseEvent if e in TERMINAL_SSE_EVENTS],
        "command_types": [c.value for c in CommandType],
        "terminal_commands": [c.value for c in CommandType if c in TERMINAL_COMMANDS],
        "task_kinds": [k.value for k in TaskKind],
        "temporal_statuses": [s.value for s in TemporalStatus],
        "overlap_policies": [p.value for p in OverlapPolicy],
        "default_overlap_policy": DEFAULT_OVERLAP_POLICY.value,
        "default_namespace": DEFAULT_NAMESPACE,
        "default_task_queue": DEFAULT_TASK_QUEUE,
        "exit_statuses": {s.name: s.value for s in ExitStatus},
    }
