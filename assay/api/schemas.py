"""JSON Schemas (OpenAPI 3.1) for every request and record. Routes name these; openapi.py assembles them."""

from __future__ import annotations

import dataclasses
from typing import Any

from assay import protocol
from assay.api.schema_parts import (
    ACT_STATUS,
    ANY,
    BOOL,
    COMMAND_TYPE,
    EAGER_WF_FIELD,
    EVENT_TYPE,
    INT,
    MAX_TASKS_FIELD,
    NAME,
    NNUM,
    NSTR,
    NUM,
    OVERLAP,
    RETRY,
    RETRY_AFTER,
    RETRY_AFTER_OPT,
    SSE_EVENT,
    STATUS,
    STR,
    WAIT_SECS,
    array,
    nullable,
    obj,
    ref,
)
from assay.protocol import RETRY_AFTER as RETRY_AFTER_FIELD
from assay.protocol import CommandType, TaskKind

_WF, _ACT = TaskKind.workflow_task.value, TaskKind.activity_task.value  # also the eager answers' keys

#: JSON Schema of a protocol record field, by its annotation (`| None` only makes the field optional)
_FIELD_SCHEMA: dict[str, dict[str, Any]] = {
    "int": INT,
    "float": NUM,
    "str": STR,
    "Any": ANY,
    "dict[str, Any]": {"type": "object"},
    "list[str]": array(STR),
}


def _cmd(record: type[protocol.Command], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A command's schema, generated from its record in assay.protocol (`extra` adds descriptions)."""
    props: dict[str, Any] = {"type": {"const": record.TYPE.value}}
    required = ["type"]
    for f in dataclasses.fields(record):
        ann = str(f.type).removesuffix(" | None")
        props[f.name] = (extra or {}).get(f.name, _FIELD_SCHEMA[ann])
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    return obj(props, tuple(required))


COMMANDS = [
    _cmd(record, RETRY if record is protocol.ScheduleActivity else None)
    for record in protocol.COMMAND_RECORDS.values()
]

WORKFLOW = obj(
    {
        "id": STR,
        "namespace": STR,
        "run_id": STR,
        "workflow_type": STR,
        "task_queue": STR,
        "status": STATUS,
        "input": ANY,
        "result": ANY,
        "error": NSTR,
        "parent_id": NSTR,
        "claimed_by": NSTR,
        "search_attributes": ANY,
        "archived_at": NNUM,
        "archive_uri": NSTR,
        "created_at": NUM,
        "updated_at": NUM,
        "completed_at": NNUM,
        "cancel_requested": BOOL,
        "terminated": BOOL,
        "state_seq": nullable(INT),
        "build_ids": {**array(STR), "description": "build ids of the workers that ran its workflow tasks"},
        "stuck": nullable(
            obj(
                {"reason": STR, "failures": INT, "since": NNUM},
                ("reason", "failures"),
                description="set while its workflow tasks keep failing (cleared when one succeeds)",
            )
        ),
        "reset_to": {**NSTR, "description": "the run this one was reset to"},
        "reset_from": {**NSTR, "description": "the run this one was reset from"},
    },
    ("id", "namespace", "run_id", "workflow_type", "task_queue", "status", "created_at"),
)

EVENT = obj(
    {"id": INT, "workflow_id": STR, "seq": INT, "event_type": EVENT_TYPE, "payload": ANY, "timestamp": NUM},
    ("id", "workflow_id", "seq", "event_type", "timestamp"),
)

ACTIVITY = obj(
    {
        "id": INT,
        "workflow_id": STR,
        "seq": INT,
        "name": STR,
        "task_queue": STR,
        "input": ANY,
        "status": ACT_STATUS,
        "result": ANY,
        "error": NSTR,
        "attempt": INT,
        "max_attempts": INT,
        "initial_interval_secs": NUM,
        "backoff_coefficient": NUM,
        "maximum_interval_secs": NNUM,
        "start_to_close_secs": NUM,
        "heartbeat_timeout_secs": NNUM,
        "schedule_to_close_secs": NNUM,
        "deadline_at": NNUM,
        "non_retryable_errors": nullable(array(STR)),
        "claimed_by": NSTR,
        "scheduled_at": NUM,
        "started_at": NNUM,
        "completed_at": NNUM,
        "last_heartbeat": NNUM,
        "heartbeat_details": ANY,
        "cancel_requested": BOOL,
    },
    ("id", "workflow_id", "seq", "name", "task_queue", "status", "attempt"),
)

STICKY_FIELD = {
    **BOOL,
    "description": "opt-in: this worker keeps workflows' replay state between tasks, and gets only the new "
    "events of a workflow whose state it holds (history_after)",
}

WORKFLOW_TASK = obj(
    {
        "workflow_id": STR,
        "workflow_type": STR,
        "namespace": STR,
        "task_queue": STR,
        "input": ANY,
        "run_id": STR,
        "parent_id": NSTR,
        "search_attributes": ANY,
        "created_at": NUM,
        "attempt": INT,
        "history": array(
            obj(
                {"seq": INT, "event_type": EVENT_TYPE, "payload": ANY, "timestamp": NUM},
                ("seq", "event_type", "timestamp"),
            )
        ),
        protocol.HISTORY_AFTER: {
            **INT,
            "description": "sticky workers only: the history holds only the events with a greater seq",
        },
        protocol.HISTORY_NEXT_AFTER: {
            **INT,
            "description": "sticky workers only: the history is paged; fetch the events after this seq "
            "with GET /workflows/{id}/events?after=&limit= up to history_last_seq",
        },
        protocol.HISTORY_LAST_SEQ: {
            **INT,
            "description": "sticky workers only: the highest event seq this task covers",
        },
    },
    ("workflow_id", "workflow_type", "namespace", "task_queue", "history"),
)

SCHEDULE = obj(
    {
        "name": STR,
        "namespace": STR,
        "workflow_type": STR,
        "cron_expr": STR,
        "timezone": STR,
        "input": ANY,
        "task_queue": STR,
        "overlap_policy": OVERLAP,
        "paused": BOOL,
        "last_run_at": NNUM,
        "next_run_at": NNUM,
        "last_workflow_id": NSTR,
        "created_at": NUM,
        "updated_at": NUM,
        "next_runs": {
            "type": "array",
            "items": STR,
            "description": "next 5 fire times, ISO 8601 in the zone",
        },
    },
    ("name", "namespace", "workflow_type", "cron_expr", "timezone", "paused"),
)

WORKER = obj(
    {
        "id": STR,
        "namespace": STR,
        "identity": STR,
        "task_queue": STR,
        "workflows": nullable(array(STR)),
        "activities": nullable(array(STR)),
        "max_concurrent_workflows": INT,
        "max_concurrent_activities": INT,
        "active_tasks": INT,
        "heartbeat_interval_secs": NNUM,
        "last_heartbeat": NUM,
        "registered_at": NUM,
        "build_id": NSTR,
    },
    ("id", "namespace", "identity", "task_queue"),
)

API_KEY = obj(
    {"prefix": STR, "label": NSTR, "created_at": NUM, "last_used_at": NNUM}, ("prefix", "created_at")
)
START_RESPONSE = obj(
    {"workflow_id": STR, "run_id": STR, "status": STATUS}, ("workflow_id", "run_id", "status")
)
OPT_OBJECT_BODY = "an object; `[]`, `{}`, `null` and an empty body all mean no fields"

SCHEMAS: dict[str, Any] = {
    "Error": obj(
        {"error": STR}, ("error",), description="Every error: a message plus optional detail fields."
    ),
    "StartWorkflow": obj(
        {
            "workflow_type": STR,
            "workflow_id": STR,
            "namespace": STR,
            "task_queue": STR,
            "input": ANY,
            "search_attributes": ANY,
        },
        ("workflow_type", "workflow_id"),
    ),
    "StartResponse": START_RESPONSE,
    "Workflow": WORKFLOW,
    "WorkflowList": array(ref("Workflow")),
    "Event": EVENT,
    "EventList": array(ref("Event")),
    "Signal": nullable(obj({"payload": ANY}, description=OPT_OBJECT_BODY)),
    "Reason": nullable(obj({"reason": NSTR}, description=OPT_OBJECT_BODY)),
    CommandType.ContinueAsNew: nullable(
        obj({"input": ANY, "workflow_id": NSTR}, description=OPT_OBJECT_BODY)
    ),
    "State": obj({"state": ANY, "event_seq": INT, "created_at": NUM}, ("state", "event_seq", "created_at")),
    "StateValue": obj(
        {"value": ANY, "event_seq": INT, "created_at": NUM}, ("value", "event_seq", "created_at")
    ),
    CommandType.ScheduleActivity: obj(
        {"seq": INT, "name": STR, "task_queue": STR, "input": ANY, **RETRY}, ("seq", "name")
    ),
    "Activity": ACTIVITY,
    "RegisterWorker": obj(
        {
            "identity": STR,
            "queue": STR,
            "namespace": STR,
            "workflows": nullable(array(STR)),
            "activities": nullable(array(STR)),
            "max_concurrent_workflows": INT,
            "max_concurrent_activities": INT,
            "heartbeat_interval_secs": NUM,
            "build_id": {
                **STR,
                "maxLength": 128,
                "description": "the worker's code version (ours: sha256 of the worker file, 12 hex)",
            },
            protocol.STICKY: STICKY_FIELD,
        },
        ("identity", "queue"),
    ),
    "WorkerId": obj(
        {"worker_id": STR, protocol.POLL_IS_HEARTBEAT: BOOL},
        ("worker_id",),
        description=f"`{protocol.POLL_IS_HEARTBEAT}`: this engine counts the worker's polls as heartbeats "
        "(POST /workers/heartbeat is then needed only while the worker holds leases or running activities)",
    ),
    "WorkerHeartbeat": obj(
        {"worker_id": STR, "identity": STR, "queue": STR, "namespace": STR, protocol.STICKY: STICKY_FIELD},
        ("worker_id",),
        description="identity + queue let the engine re-register a reaped id",
    ),
    "Poll": obj(
        {
            "queue": STR,
            "worker_id": STR,
            "wait_secs": WAIT_SECS,
            "max_tasks": MAX_TASKS_FIELD,
            RETRY_AFTER_FIELD: RETRY_AFTER_OPT,
        },
        ("worker_id",),
    ),
    "ActivityTaskOrNull": {
        "anyOf": [
            ref("Activity"),
            obj({"task": {"type": "null"}, RETRY_AFTER_FIELD: RETRY_AFTER}, ("task",)),
            ref("TaskBatch"),
        ]
    },
    "RetryLater": obj(
        {RETRY_AFTER_FIELD: RETRY_AFTER},
        (RETRY_AFTER_FIELD,),
        description="No task: the engine could not hold this long-poll (opted in with retry_after: true).",
    ),
    "TaskBatch": obj(
        {"tasks": array(ref("TaskItem")), RETRY_AFTER_FIELD: RETRY_AFTER},
        ("tasks",),
        description="The answer to a poll with max_tasks (opt-in): the tasks claimed, possibly none.",
    ),
    "TaskItem": {
        "oneOf": [
            obj({"kind": {"const": _WF}, "task": ref("WorkflowTask")}, ("kind", "task")),
            obj({"kind": {"const": _ACT}, "task": ref("Activity")}, ("kind", "task")),
        ]
    },
    "CompleteActivity": nullable(
        obj(
            {"result": ANY, "worker_id": STR, "eager_workflow_task": EAGER_WF_FIELD},
            description=OPT_OBJECT_BODY,
        )
    ),
    "FailActivity": nullable(
        obj(
            {"error": ANY, "worker_id": STR, "non_retryable": BOOL, "eager_workflow_task": EAGER_WF_FIELD},
            description=OPT_OBJECT_BODY,
        )
    ),
    "ActivityResults": obj(
        {
            "worker_id": NAME,
            "results": {
                "type": "array",
                "minItems": 1,
                "maxItems": 100,
                "items": obj(
                    {"id": INT, "result": ANY, "error": ANY, "non_retryable": BOOL},
                    ("id",),
                    description="a completion ({id, result}) or, with `error`, a failure",
                ),
            },
            "eager_workflow_task": EAGER_WF_FIELD,
        },
        ("worker_id", "results"),
    ),
    "ActivityResultsResponse": obj(
        {
            "results": array(obj({"id": INT, "status": INT, "error": STR}, ("id", "status"))),
            "workflow_tasks": array(ref("WorkflowTask")),
        },
        ("results", "workflow_tasks"),
    ),
    "EagerWorkflowTask": obj(
        {_WF: nullable(ref("WorkflowTask"))},
        (_WF,),
        description="200 body of an activity complete/fail sent with eager_workflow_task (opt-in).",
    ),
    "EagerCommandsResponse": obj(
        {"activity_tasks": array(ref("Activity")), _WF: nullable(ref("WorkflowTask"))},
        ("activity_tasks", _WF),
        description="200 body of a commands submission sent with eager_activities or eager_workflow_task.",
    ),
    "ActivityHeartbeat": nullable(obj({"details": ANY, "worker_id": STR}, description=OPT_OBJECT_BODY)),
    "HeartbeatResponse": obj({"cancel_requested": BOOL}, ("cancel_requested",)),
    "WorkflowTask": WORKFLOW_TASK,
    "WorkflowTaskOrNull": {
        "anyOf": [ref("WorkflowTask"), {"type": "null"}, ref("TaskBatch"), ref("RetryLater")]
    },
    "Command": {"oneOf": COMMANDS, "discriminator": {"propertyName": "type"}},
    "Commands": obj(
        {
            "worker_id": NAME,
            "commands": array(ref("Command")),
            "eager_activities": {
                "type": "integer",
                "minimum": 0,
                "maximum": 100,
                "description": "opt-in eager dispatch: claim for this worker up to N of the activity tasks "
                "this batch schedules (those it registered, on its queue), returned in the 200 body "
                "(EagerCommandsResponse) instead of being polled for",
            },
            "eager_workflow_task": EAGER_WF_FIELD,
        },
        ("worker_id",),
    ),
    "FailWorkflowTask": obj(
        {"worker_id": NAME, "error": STR},
        ("worker_id",),
        description="the code could not run this workflow task (nondeterminism); the workflow is kept",
    ),
    "FailedWorkflowTask": obj({"failures": INT, "stuck": BOOL}, ("failures", "stuck")),
    "Reset": {
        "oneOf": [
            obj({"to_event": {"type": "integer", "minimum": 1}}, ("to_event",), extra=False),
            obj({"to_last_task": {"const": True}}, ("to_last_task",), extra=False),
        ],
        "description": "exactly one of to_event (an event seq: keep the history up to it) or to_last_task: true",
    },
    "CombinedPoll": obj(
        {
            "queue": STR,
            "worker_id": STR,
            "wait_secs": WAIT_SECS,
            "workflows": BOOL,
            "activities": BOOL,
            "max_tasks": MAX_TASKS_FIELD,
            RETRY_AFTER_FIELD: RETRY_AFTER_OPT,
        },
        ("worker_id",),
    ),
    "CombinedPollResponse": {
        "oneOf": [
            obj(
                {"kind": {"const": TaskKind.workflow_task.value}, "task": ref("WorkflowTask")},
                ("kind", "task"),
            ),
            obj({"kind": {"const": TaskKind.activity_task.value}, "task": ref("Activity")}, ("kind", "task")),
            obj(
                {"kind": {"type": "null"}, "task": {"type": "null"}, RETRY_AFTER_FIELD: RETRY_AFTER},
                ("kind", "task"),
            ),
            ref("TaskBatch"),
        ]
    },
    "CreateSchedule": obj(
        {
            "name": STR,
            "workflow_type": STR,
            "cron_expr": STR,
            "namespace": STR,
            "timezone": STR,
            "input": ANY,
            "task_queue": STR,
            "overlap_policy": OVERLAP,
            "paused": BOOL,
        },
        ("name", "workflow_type", "cron_expr"),
    ),
    "PatchSchedule": nullable(
        obj(
            {
                "cron_expr": STR,
                "timezone": STR,
                "input": ANY,
                "task_queue": STR,
                "overlap_policy": OVERLAP,
                "workflow_type": STR,
            },
            description=OPT_OBJECT_BODY,
        )
    ),
    "Schedule": SCHEDULE,
    "ScheduleList": array(ref("Schedule")),
    "CreateNamespace": obj({"name": {**NAME, "maxLength": 200}}, ("name",)),
    "Namespace": obj({"name": STR, "created_at": NUM}, ("name", "created_at")),
    "NamespaceList": array(ref("Namespace")),
    "NamespaceStats": obj(
        {
            "namespace": STR,
            "total_workflows": INT,
            "running": INT,
            "pending": INT,
            "completed": INT,
            "failed": INT,
            "cancelled": INT,
            "schedules": INT,
            "workers": INT,
        },
        ("namespace", "total_workflows"),
    ),
    "Worker": WORKER,
    "WorkerList": array(ref("Worker")),
    "QueueStatsList": array(
        obj(
            {
                "queue": STR,
                "pending_activities": INT,
                "running_activities": INT,
                "pending_workflows": INT,
                "running_workflows": INT,
                "workers": INT,
            },
            ("queue",),
        )
    ),
    "CreateApiKey": nullable(obj({"label": NSTR, "idempotent": BOOL}, description=OPT_OBJECT_BODY)),
    "ApiKey": API_KEY,
    "ApiKeyCreated": obj(
        {"plaintext": STR, "prefix": STR, "label": NSTR, "created_at": NUM},
        ("plaintext", "prefix", "created_at"),
    ),
    "ApiKeyList": array(ref("ApiKey")),
    "Health": obj({"service": STR, "status": STR, "version": STR, "backend": STR}, ("status",)),
    "Version": obj({"version": STR, "build_profile": STR}, ("version", "build_profile")),
    "Protocol": obj(
        {
            "workflow_statuses": array(STATUS),
            "terminal_statuses": array(STATUS),
            "activity_statuses": array(ACT_STATUS),
            "event_types": array(EVENT_TYPE),
            "terminal_events": array(EVENT_TYPE),
            "sse_events": array(SSE_EVENT),
            "terminal_sse_events": array(SSE_EVENT),
            "command_types": array(COMMAND_TYPE),
            "terminal_commands": array(COMMAND_TYPE),
            "task_kinds": array({"type": "string", "enum": [k.value for k in TaskKind]}),
            "overlap_policies": array(OVERLAP),
            "default_overlap_policy": OVERLAP,
            "default_namespace": STR,
            "default_task_queue": STR,
            "exit_statuses": {"type": "object", "additionalProperties": INT},
        },
        tuple(protocol.as_json()),
    ),
    "Empty": nullable(obj({}, description=OPT_OBJECT_BODY)),
    "Deregistered": obj(
        {"known": BOOL, "leases_released": INT, "activities_released": INT},
        ("known", "leases_released", "activities_released"),
    ),
    "StreamTicket": obj({"ticket": STR, "expires_at": NUM}, ("ticket", "expires_at")),
    "MetricsSeries": obj(
        {
            "namespace": STR,
            "now": NUM,
            "interval_secs": NUM,
            "window_secs": NUM,
            "t": array(NUM),
            "started": array(INT),
            "completed": array(INT),
            "failed": array(INT),
            "cancelled": array(INT),
            "queues": {
                "type": "object",
                "additionalProperties": obj(
                    {"depth": array(INT), "latency": array({"type": ["number", "null"]})},
                    ("depth", "latency"),
                ),
            },
            "failures": array(
                obj(
                    {
                        "kind": {
                            "type": "string",
                            "enum": ["workflow", "activity", TaskKind.workflow_task.value],
                        },
                        "name": STR,
                        "count": INT,
                    },
                    ("kind", "name", "count"),
                )
            ),
        },
        ("namespace", "t", "started", "completed", "failed", "cancelled", "queues", "failures"),
    ),
}

# Identifiers the API rejects when blank: documented as such so clients (and fuzzers) know.
_NON_BLANK = {
    "StartWorkflow": ("workflow_type", "workflow_id", "namespace", "task_queue"),
    "RegisterWorker": ("identity", "queue", "namespace"),
    "WorkerHeartbeat": ("worker_id", "identity", "queue", "namespace"),
    "Poll": ("queue", "worker_id"),
    "CombinedPoll": ("queue", "worker_id"),
    "Commands": ("worker_id",),
    "CreateSchedule": ("name", "workflow_type", "cron_expr", "namespace", "task_queue"),
    "PatchSchedule": ("cron_expr", "task_queue", "workflow_type"),
    "CreateNamespace": ("name",),
    CommandType.ScheduleActivity: ("name", "task_queue"),
}
for _schema, _fields in _NON_BLANK.items():
    _s = SCHEMAS[_schema]
    _props = (_s.get("anyOf", [_s])[0]).get("properties", {})
    for _f in _fields:
        _props[_f] = dict(NAME, maxLength={"name": 200, "workflow_id": 500}.get(_f, 1000))
