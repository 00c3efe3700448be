"""Building blocks of the JSON Schemas in assay/api/schemas.py: primitives, helpers and shared fields."""

from __future__ import annotations

from typing import Any

from assay.protocol import (
    ActivityStatus,
    CommandType,
    EventType,
    OverlapPolicy,
    SseEvent,
    WorkflowStatus,
)

ANY: dict[str, Any] = {}  # any JSON value
NUM = {"type": "number"}
INT = {"type": "integer"}
STR = {"type": "string"}
NAME = {"type": "string", "minLength": 1, "maxLength": 1000, "pattern": "\\S"}  # required, not blank
BOOL = {"type": "boolean"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    t = schema.get("type")
    if isinstance(t, str):
        return dict(schema, type=[t, "null"])
    return {"anyOf": [schema, {"type": "null"}]}


def obj(
    props: dict[str, Any], required: tuple[str, ...] = (), extra: bool = True, **kw: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": extra}
    if required:
        out["required"] = list(required)
    out.update(kw)
    return out


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def array(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


MAX_TASKS_FIELD = {
    "type": "integer",
    "minimum": 1,
    "maximum": 100,
    "description": "opt-in batch claim: up to N tasks in one transaction; the answer is then a TaskBatch "
    "({tasks: [{kind, task}, ...]}) instead of the single-task shape",
}
EAGER_WF_FIELD = {
    "type": "boolean",
    "description": "opt-in eager dispatch: claim for this worker the workflow task this request makes ready "
    "(when it registered that workflow type, on its queue), returned in the 200 body",
}

STATUS = {"type": "string", "enum": [s.value for s in WorkflowStatus]}
ACT_STATUS = {"type": "string", "enum": [s.value for s in ActivityStatus]}
OVERLAP = {"type": "string", "enum": [p.value for p in OverlapPolicy]}
EVENT_TYPE = {"type": "string", "enum": [e.value for e in EventType]}
SSE_EVENT = {"type": "string", "enum": [e.value for e in SseEvent]}
COMMAND_TYPE = {"type": "string", "enum": [c.value for c in CommandType]}
#: wait_secs of a poll: capped by ASSAY_LONG_POLL_MAX_SECS (the server answers 400 above it)
WAIT_SECS = {
    "type": "number",
    "minimum": 0,
    "description": "seconds to hold the request for a task (at most ASSAY_LONG_POLL_MAX_SECS, default 60)",
}
NSTR = nullable(STR)
NNUM = nullable(NUM)
#: opt-in on a poll: the worker waits `retry_after` itself (else a poll past the ceiling is answered later)
RETRY_AFTER_OPT = {
    "type": "boolean",
    "description": "opt-in: when the engine cannot hold this long-poll (its thread ceiling is reached), "
    "answer at once with retry_after; the worker waits that long before polling again. Without it such a "
    "poll gets upstream's empty answer, sent about retry_after later.",
}
RETRY_AFTER = {
    "type": "number",
    "exclusiveMinimum": 0,
    "description": "the engine could not hold this long-poll: seconds to wait before polling again "
    "(only for a poll that sent retry_after: true; also in the Retry-After header)",
}

RETRY = {
    "max_attempts": {
        "type": "integer",
        "minimum": 0,
        "description": "attempts in all (default 3; <=1: no retry)",
    },
    "initial_interval_secs": {"type": "number", "minimum": 0, "description": "first backoff (default 1)"},
    "backoff_coefficient": {"type": "number", "minimum": 1, "description": "backoff multiplier (default 2)"},
    "maximum_interval_secs": {"type": "number", "minimum": 0, "description": "cap on the backoff"},
    "start_to_close_secs": {
        "type": "number",
        "exclusiveMinimum": 0,
        "description": "per-attempt limit (300)",
    },
    "heartbeat_timeout_secs": {
        "type": "number",
        "exclusiveMinimum": 0,
        "description": "max silence between heartbeats",
    },
    "schedule_to_close_secs": {
        "type": "number",
        "exclusiveMinimum": 0,
        "description": "overall deadline over all attempts, queued time included; past it: final timeout",
    },
    "non_retryable_errors": {"type": "array", "items": STR, "description": "error substrings that are final"},
}
