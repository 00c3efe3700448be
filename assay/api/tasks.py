"""Worker-facing routes: registry, heartbeats, activity tasks, workflow tasks, the combined long-poll."""

from __future__ import annotations

from typing import Any

import bottle

from assay import records
from assay.api.http import Router, empty, json_response, path_int, read_body
from assay.engine import Engine
from assay.engine.commands import parse_commands_body
from assay.engine.deploy import opt_build_id
from assay.engine.validate import as_object, opt_bool, opt_int, opt_num, opt_str, opt_str_list, req_str
from assay.protocol import DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE, TaskKind, error_text


def _client_gone() -> bool:
    """True once the client of this request disconnected (waitress, with channel_request_lookahead > 0)."""
    check = bottle.request.environ.get("waitress.client_disconnected")
    return bool(check()) if callable(check) else False


def _poll_args(b: dict[str, Any], max_wait: float) -> tuple[str, str, float]:
    """queue, worker_id, wait_secs of a poll body; wait_secs may go up to ASSAY_LONG_POLL_MAX_SECS."""
    queue = opt_str(b, "queue", DEFAULT_TASK_QUEUE) or DEFAULT_TASK_QUEUE
    worker_id = req_str(b, "worker_id")
    wait = opt_num(b, "wait_secs", 0.0, min_value=0, max_value=max_wait) or 0.0
    return queue, worker_id, wait


def register(r: Router, engine: Engine) -> None:
    mb = r.max_body
    max_wait = engine.settings.long_poll_max_secs

    @r(
        "POST",
        "/workers/register",
        "Register a worker",
        "workers",
        body="RegisterWorker",
        body_required=True,
        responses={200: "WorkerId", 400: "Error"},
    )
    def register_worker() -> str:
        b = as_object(read_body(mb))
        wid = engine.register_worker(
            identity=req_str(b, "identity"),
            queue=req_str(b, "queue"),
            namespace=opt_str(b, "namespace", DEFAULT_NAMESPACE) or DEFAULT_NAMESPACE,
            workflows=opt_str_list(b, "workflows"),
            activities=opt_str_list(b, "activities"),
            max_concurrent_workflows=opt_int(b, "max_concurrent_workflows", 10, min_value=0) or 10,
            max_concurrent_activities=opt_int(b, "max_concurrent_activities", 10, min_value=0) or 10,
            heartbeat_interval_secs=opt_num(b, "heartbeat_interval_secs", min_value=0.1, max_value=3600),
            build_id=opt_build_id(b),
        )
        return json_response({"worker_id": wid})

    @r(
        "POST",
        "/workers/{id}/deregister",
        "A stopping worker: ends its held polls, gives back its tasks",
        "workers",
        body="Empty",
        responses={200: "Deregistered", 400: "Error"},
    )
    def deregister_worker(id: str) -> str:
        read_body(mb)
        return json_response(engine.deregister_worker(id))

    @r(
        "POST",
        "/workers/heartbeat",
        "Worker heartbeat: refreshes the worker and every lease it holds",
        "workers",
        body="WorkerHeartbeat",
        body_required=True,
        responses={200: None, 400: "Error"},
    )
    def worker_heartbeat() -> str:
        b = as_object(read_body(mb))
        wid = req_str(b, "worker_id")
        rereg = None
        if b.get("identity") and b.get("queue"):
            rereg = {
                "identity": req_str(b, "identity"),
                "queue": req_str(b, "queue"),
                "namespace": opt_str(b, "namespace", DEFAULT_NAMESPACE) or DEFAULT_NAMESPACE,
                "workflows": opt_str_list(b, "workflows"),
                "activities": opt_str_list(b, "activities"),
                "heartbeat_interval_secs": opt_num(
                    b, "heartbeat_interval_secs", min_value=0.1, max_value=3600
                ),
                "build_id": opt_build_id(b),
            }
        engine.heartbeat_worker(wid, rereg)
        return empty(200)

    @r(
        "POST",
        "/tasks/poll",
        "Claim an activity task (optionally long-poll with wait_secs)",
        "tasks",
        body="Poll",
        body_required=True,
        responses={200: "ActivityTaskOrNull", 400: "Error"},
    )
    def poll_activity() -> str:
        queue, wid, wait = _poll_args(as_object(read_body(mb)), max_wait)
        kind, task = engine.poll(queue, wid, wait, workflows=False, activities=True, gone=_client_gone)
        return json_response(records.activity(task) if task else {"task": None})

    @r(
        "POST",
        "/tasks/{id}/complete",
        "Complete an activity",
        "tasks",
        body="CompleteActivity",
        responses={200: None, 404: "Error", 409: "Error"},
    )
    def complete(id: str) -> str:
        b = as_object(read_body(mb))
        engine.complete_activity(path_int(id, "task id"), b.get("result"), opt_str(b, "worker_id"))
        return empty(200)

    @r(
        "POST",
        "/tasks/{id}/fail",
        "Fail an activity attempt (retried per its policy)",
        "tasks",
        body="FailActivity",
        responses={200: None, 404: "Error", 409: "Error"},
    )
    def fail(id: str) -> str:
        b = as_object(read_body(mb))
        engine.fail_activity(
            path_int(id, "task id"),
            error_text(b.get("error"), "activity failed"),
            opt_str(b, "worker_id"),
            non_retryable=opt_bool(b, "non_retryable", False),
        )
        return empty(200)

    @r(
        "POST",
        "/tasks/{id}/heartbeat",
        "Activity heartbeat; answers whether cancellation was requested",
        "tasks",
        body="ActivityHeartbeat",
        responses={200: "HeartbeatResponse", 404: "Error", 409: "Error"},
    )
    def heartbeat(id: str) -> str:
        b = as_object(read_body(mb))
        out = engine.heartbeat_activity(path_int(id, "task id"), b.get("details"), opt_str(b, "worker_id"))
        return json_response(out)

    @r(
        "POST",
        "/workflow-tasks/poll",
        "Claim a workflow task (optionally long-poll with wait_secs)",
        "workflow-tasks",
        body="Poll",
        body_required=True,
        responses={200: "WorkflowTaskOrNull", 400: "Error"},
    )
    def poll_workflow() -> str:
        queue, wid, wait = _poll_args(as_object(read_body(mb)), max_wait)
        kind, task = engine.poll(queue, wid, wait, workflows=True, activities=False, gone=_client_gone)
        return json_response(records.workflow_task(task) if task else None)

    @r(
        "POST",
        "/workflow-tasks/{id}/commands",
        "Submit a workflow task's commands (atomic)",
        "workflow-tasks",
        body="Commands",
        body_required=True,
        responses={200: None, 400: "Error", 404: "Error", 409: "Error"},
    )
    def commands(id: str) -> str:
        wid, cmds = parse_commands_body(read_body(mb))
        engine.submit_commands(id, wid, cmds)
        return empty(200)

    @r(
        "POST",
        "/workflow-tasks/{id}/fail",
        "Report a workflow task the code could not run (e.g. nondeterminism): the workflow is kept, retried "
        "after a backoff and flagged as stuck when it keeps failing",
        "workflow-tasks",
        body="FailWorkflowTask",
        body_required=True,
        responses={200: "FailedWorkflowTask", 400: "Error", 404: "Error", 409: "Error"},
    )
    def fail_workflow_task(id: str) -> str:
        b = as_object(read_body(mb))
        err = b.get("error")
        error = (
            err
            if isinstance(err, str) and err
            else ("workflow task failed" if err in (None, "") else str(err))
        )
        return json_response(engine.fail_workflow_task(id, req_str(b, "worker_id"), error))

    @r(
        "POST",
        "/poll",
        "Claim a workflow task or an activity task in one long-poll",
        "workflow-tasks",
        body="CombinedPoll",
        body_required=True,
        responses={200: "CombinedPollResponse", 400: "Error"},
    )
    def poll_any() -> str:
        b = as_object(read_body(mb))
        queue, wid, wait = _poll_args(b, max_wait)
        kind, task = engine.poll(
            queue,
            wid,
            wait,
            workflows=opt_bool(b, "workflows", True),
            activities=opt_bool(b, "activities", True),
            gone=_client_gone,
        )
        if kind == TaskKind.workflow_task:
            return json_response({"kind": kind, "task": records.workflow_task(task)})
        if kind == TaskKind.activity_task:
            return json_response({"kind": kind, "task": records.activity(task)})
        return json_response({"kind": None, "task": None})
