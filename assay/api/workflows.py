"""Workflow routes: start, list, describe, events, signal, cancel, terminate, children, continue-as-new, state,
and direct activity scheduling."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import bottle

from assay import records
from assay.api.http import (
    Router,
    empty,
    json_response,
    path_int,
    q_bool,
    q_int,
    q_json_object,
    q_str,
    read_body,
)
from assay.engine import Engine
from assay.engine.commands import activity_spec
from assay.engine.validate import as_object, opt_bool, opt_int, opt_str, req_id, req_str, url_safe
from assay.errors import BadRequest
from assay.protocol import (
    DEFAULT_NAMESPACE,
    DEFAULT_TASK_QUEUE,
    HISTORY_PAGE_MAX,
    CommandType,
    WorkflowStatus,
)

WF_QUERY = [
    ("namespace", "string", f"namespace (default {DEFAULT_NAMESPACE})"),
    ("status", "string", "exact status, or several separated by commas: " + ", ".join(WorkflowStatus)),
    ("type", "string", "workflow type"),
    ("search_attrs", "string", "URL-encoded JSON object: AND of equalities"),
    ("task_queue", "string", "task queue"),
    ("parent_id", "string", "parent workflow id"),
    ("claimed_by", "string", "worker id that last ran the workflow"),
    ("id", "string", "exact workflow id"),
    (
        "terminated",
        "string",
        "true or false. true: only runs ended by terminate (FAILED + terminated); false: none of them",
    ),
    (
        "continued",
        "string",
        "true or false. true: only runs closed by continue-as-new (COMPLETED + marker); false: none of them",
    ),
    ("build_id", "string", "only workflows whose tasks a worker with this build id ran"),
    ("stuck", "boolean", "true: only workflows whose tasks keep failing; false: only the others"),
    ("limit", "integer", "page size (default 50, max 1000)"),
    ("offset", "integer", "rows to skip"),
    ("cursor", "string", "opaque keyset cursor from the X-Next-Cursor header of the previous page"),
]

NEXT_CURSOR_HEADER = "X-Next-Cursor"


def encode_cursor(row: dict[str, Any]) -> str:
    """The keyset position after `row` (newest-first order: created_at, then id)."""
    raw = json.dumps([row["created_at"], row["id"]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[float, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        created, wf_id = data
        if isinstance(created, bool) or not isinstance(created, (int, float)) or not isinstance(wf_id, str):
            raise ValueError
        return float(created), wf_id
    except (ValueError, TypeError, binascii.Error):
        raise BadRequest(
            "cursor: not a cursor this server issued (pass X-Next-Cursor back unchanged)"
        ) from None


def register(r: Router, engine: Engine) -> None:
    mb = r.max_body

    @r(
        "POST",
        "/workflows",
        "Start a workflow",
        "workflows",
        body="StartWorkflow",
        body_required=True,
        responses={201: "StartResponse", 400: "Error", 409: "Error"},
        example={"workflow_type": "Hello", "workflow_id": "hello-1", "input": {"name": "Ada"}},
        quick=True,
    )
    def start_workflow() -> str:
        b = as_object(read_body(mb))
        rec = engine.start_workflow(
            workflow_type=req_str(b, "workflow_type"),
            workflow_id=req_id(b, "workflow_id"),
            namespace=opt_str(b, "namespace", DEFAULT_NAMESPACE) or DEFAULT_NAMESPACE,
            task_queue=opt_str(b, "task_queue", DEFAULT_TASK_QUEUE) or DEFAULT_TASK_QUEUE,
            input=b.get("input"),
            search_attributes=b.get("search_attributes"),
        )
        return json_response(records.start_response(rec), 201)

    @r(
        "GET",
        "/workflows",
        "List workflows (newest first)",
        "workflows",
        query=WF_QUERY,
        responses={200: "WorkflowList", 400: "Error"},
    )
    def list_workflows() -> str:
        status: str | list[str] | None = q_str("status")
        if status is not None:
            wanted = [s.strip().upper() for s in status.split(",")]
            for s in wanted:
                if s not in list(WorkflowStatus):
                    raise BadRequest(f"unknown status '{s}' (expected one of {', '.join(WorkflowStatus)})")
            status = wanted[0] if len(wanted) == 1 else wanted
        cursor = q_str("cursor")
        after = decode_cursor(cursor) if cursor else None
        offset = q_int("offset", 0, max_value=10**9)
        if after is not None and offset:
            raise BadRequest("offset: cannot be combined with cursor (a cursor already marks the position)")
        limit = q_int("limit", 50, max_value=1000)
        rows = engine.list_workflows(
            namespace=q_str("namespace", DEFAULT_NAMESPACE),
            status=status,
            workflow_type=q_str("type"),
            search=q_json_object("search_attrs"),
            task_queue=q_str("task_queue"),
            parent_id=q_str("parent_id"),
            claimed_by=q_str("claimed_by"),
            workflow_id=q_str("id"),
            terminated=q_bool("terminated"),
            continued=q_bool("continued"),
            build_id=q_str("build_id"),
            stuck=q_bool("stuck"),
            limit=limit,
            offset=offset,
            after=after,
        )
        if rows and len(rows) == limit:  # a full page: there may be more
            bottle.response.set_header(NEXT_CURSOR_HEADER, encode_cursor(rows[-1]))
        return json_response([records.workflow(w) for w in rows])

    @r(
        "GET",
        "/workflows/{id}",
        "Describe a workflow",
        "workflows",
        responses={200: "Workflow", 404: "Error"},
        quick=True,
    )
    def describe(id: str) -> str:
        return json_response(records.workflow(engine.get_workflow(id)))

    @r(
        "GET",
        "/workflows/{id}/events",
        "A workflow's event history (by seq)",
        "workflows",
        query=[
            ("after_seq", "integer", "only events with a greater seq"),
            ("after", "integer", "the same as after_seq (the name history_next_after pages use)"),
            ("limit", "integer", f"at most this many events (1..{HISTORY_PAGE_MAX}; default: all)"),
        ],
        responses={200: "EventList", 400: "Error", 404: "Error", 410: "Error"},
    )
    def events(id: str) -> str:
        after = q_int("after", q_int("after_seq", 0, max_value=2**53), max_value=2**53)
        limit: int | None = q_int("limit", 0, min_value=1, max_value=HISTORY_PAGE_MAX)
        limit = limit or None  # absent: every event (as ever)
        wf = engine.get_workflow(id)
        if wf.get("archived_at") is not None:  # history moved to the archive: serve it from there
            arch = [e for e in engine.archived_events(wf) if e.get("seq", 0) > after]
            return json_response(arch[:limit] if limit else arch)
        return json_response([records.event(e) for e in engine.list_events(id, after, limit=limit)])

    @r(
        "POST",
        "/workflows/{id}/signal/{name}",
        "Send a signal",
        "workflows",
        body="Signal",
        responses={200: None, 404: "Error", 409: "Error"},
        quick=True,
    )
    def signal(id: str, name: str) -> str:
        b = as_object(read_body(mb))
        engine.signal(id, name, b.get("payload"))
        return empty(200)

    @r(
        "POST",
        "/workflows/{id}/cancel",
        "Request cancellation (cascades to children)",
        "workflows",
        body="Reason",
        responses={200: None, 404: "Error", 409: "Error"},
        quick=True,
    )
    def cancel(id: str) -> str:
        b = as_object(read_body(mb))
        engine.cancel(id, opt_str(b, "reason", allow_empty=True))
        return empty(200)

    @r(
        "POST",
        "/workflows/{id}/terminate",
        "Terminate now (status FAILED, cascades)",
        "workflows",
        body="Reason",
        responses={200: None, 404: "Error", 409: "Error"},
        quick=True,
    )
    def terminate(id: str) -> str:
        b = as_object(read_body(mb))
        engine.terminate(id, opt_str(b, "reason", allow_empty=True))
        return empty(200)

    @r(
        "POST",
        "/workflows/{id}/reset",
        "Reset: a new run replaying this one's history up to an event, continuing with the current code; "
        "this run ends terminated ('reset to <new id>')",
        "workflows",
        body="Reset",
        body_required=True,
        responses={201: "Workflow", 400: "Error", 404: "Error", 409: "Error"},
        example={"to_event": 5},
    )
    def reset(id: str) -> str:
        b = as_object(read_body(mb))
        to_event = opt_int(b, "to_event", min_value=1, max_value=2**53)
        rec = engine.reset_workflow(id, to_event=to_event, to_last_task=opt_bool(b, "to_last_task", False))
        return json_response(records.workflow(rec), 201)

    @r(
        "GET",
        "/workflows/{id}/children",
        "Child workflows (oldest first)",
        "workflows",
        responses={200: "WorkflowList", 404: "Error"},
    )
    def children(id: str) -> str:
        engine.get_workflow(id)
        return json_response([records.workflow(w) for w in engine.list_children(id)])

    @r(
        "POST",
        "/workflows/{id}/continue-as-new",
        "Close this run and start a fresh one",
        "workflows",
        body=CommandType.ContinueAsNew,
        responses={201: "StartResponse", 404: "Error", 409: "Error"},
    )
    def continue_as_new(id: str) -> str:
        b = as_object(read_body(mb))
        new_id = url_safe(opt_str(b, "workflow_id", allow_empty=True), "workflow_id")
        rec = engine.continue_as_new(id, b.get("input"), new_id)
        return json_response(records.start_response(rec), 201)

    @r(
        "GET",
        "/workflows/{id}/state",
        "Latest query snapshot",
        "workflows",
        responses={200: "State", 404: "Error"},
    )
    def state(id: str) -> str:
        return json_response(engine.get_state(id))

    @r(
        "GET",
        "/workflows/{id}/state/{name}",
        "One query's latest value",
        "workflows",
        responses={200: "StateValue", 404: "Error"},
    )
    def state_value(id: str, name: str) -> str:
        return json_response(engine.get_state(id, name))

    @r(
        "POST",
        "/workflows/{id}/activities",
        "Schedule an activity directly (idempotent on seq)",
        "activities",
        body=CommandType.ScheduleActivity,
        body_required=True,
        responses={201: "Activity", 400: "Error", 404: "Error"},
    )
    def schedule_activity(id: str) -> str:
        spec = activity_spec(as_object(read_body(mb)))
        return json_response(records.activity(engine.schedule_activity(id, spec)), 201)

    @r(
        "GET",
        "/activities/{id}",
        "Describe an activity",
        "activities",
        responses={200: "Activity", 404: "Error"},
    )
    def get_activity(id: str) -> str:
        return json_response(records.activity(engine.get_activity(path_int(id, "activity id"))))
