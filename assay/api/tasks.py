"""Worker-facing routes: registry, heartbeats, activity tasks, workflow tasks, the combined long-poll."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import bottle

from assay import records
from assay.api.http import DELAY_ANSWER, Router, empty, json_response, path_int, read_body
from assay.engine import Engine
from assay.engine.commands import parse_commands_body
from assay.engine.deploy import opt_build_id
from assay.engine.dispatch import MAX_TASKS, WF, Claimed
from assay.engine.validate import as_object, opt_bool, opt_int, opt_num, opt_str, opt_str_list, req_str
from assay.errors import BadRequest
from assay.protocol import (
    DEFAULT_NAMESPACE,
    DEFAULT_TASK_QUEUE,
    POLL_IS_HEARTBEAT,
    RETRY_AFTER,
    STICKY,
    TaskKind,
    error_text,
)


def _gone_check() -> Callable[[], bool] | None:
    """For this request: a function telling whether its client hung up (waitress; see server.py). Bound
    to this request's connection, so it can be called from another thread (a hand-over checks it)."""
    check = bottle.request.environ.get("waitress.client_disconnected")
    return (lambda: bool(check())) if callable(check) else None


def _poll_args(b: dict[str, Any], max_wait: float) -> tuple[str, str, float]:
    """queue, worker_id, wait_secs of a poll body; wait_secs may go up to ASSAY_LONG_POLL_MAX_SECS. The
    opt-in `retry_after` flag is checked here too: a wrong type is a 400 before the poll is held."""
    opt_bool(b, RETRY_AFTER, False)
    queue = opt_str(b, "queue", DEFAULT_TASK_QUEUE) or DEFAULT_TASK_QUEUE
    worker_id = req_str(b, "worker_id")
    wait = opt_num(b, "wait_secs", 0.0, min_value=0, max_value=max_wait) or 0.0
    return queue, worker_id, wait


def _empty_answer(upstream: Any, got: Claimed, b: dict[str, Any]) -> str:
    """An empty poll answer. A long-poll the engine could not hold (got.retry_after) says when to come
    back: the Retry-After header always; the `retry_after` field when the poll opted in with
    `"retry_after": true` (the body is otherwise upstream's); a poll that did not opt in is answered that
    much later, without holding a thread, so a client that ignores the hint cannot spin."""
    secs = got.retry_after
    if secs is None:
        return json_response(upstream)
    bottle.response.set_header("Retry-After", str(math.ceil(secs)))
    if opt_bool(b, RETRY_AFTER, False):
        return json_response({**(upstream or {}), RETRY_AFTER: secs})
    delay = bottle.request.environ.get(DELAY_ANSWER)
    if callable(delay):
        delay(secs)
    return json_response(upstream)


def _poll_one(engine: Engine, b: dict[str, Any], workflows: bool, activities: bool) -> Claimed:
    queue, wid, wait = _poll_args(b, engine.settings.long_poll_max_secs)
    return engine.poll_tasks(queue, wid, wait, workflows=workflows, activities=activities, gone=_gone_check())


def _task_item(kind: str, task: Any) -> dict[str, Any]:
    return {"kind": kind, "task": records.workflow_task(task) if kind == WF else records.activity(task)}


def _batch_poll(engine: Engine, b: dict[str, Any], workflows: bool, activities: bool) -> str | None:
    """Opt-in `max_tasks`: claim up to N tasks in one transaction -> {"tasks": [{kind, task}, ...]}."""
    n = opt_int(b, "max_tasks", None, min_value=1, max_value=MAX_TASKS)
    if n is None:
        return None
    queue, wid, wait = _poll_args(b, engine.settings.long_poll_max_secs)
    got = engine.poll_tasks(
        queue, wid, wait, workflows=workflows, activities=activities, gone=_gone_check(), max_tasks=n
    )
    if not got:
        return _empty_answer({"tasks": []}, got, b)
    return json_response({"tasks": [_task_item(k, t) for k, t in got]})


def _eager_wf_response(task: Any) -> str:
    return json_response({WF: records.workflow_task(task) if task else None})


def register(r: Router, engine: Engine) -> None:
    mb = r.max_body

    @r(
        "POST",
        "/workers/register",
        "Register a worker",
        "workers",
        body="RegisterWorker",
        body_required=True,
        responses={200: "WorkerId", 400: "Error"},
        quick=True,
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
            sticky=opt_bool(b, STICKY, False) or False,
        )
        return json_response({"worker_id": wid, POLL_IS_HEARTBEAT: True})

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
        quick=True,
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
                "sticky": opt_bool(b, STICKY, False) or False,
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
        b = as_object(read_body(mb))
        batch = _batch_poll(engine, b, False, True)
        if batch is not None:
            return batch
        got = _poll_one(engine, b, False, True)
        return json_response(records.activity(got[0][1])) if got else _empty_answer({"task": None}, got, b)

    @r(
        "POST",
        "/tasks/{id}/complete",
        "Complete an activity",
        "tasks",
        body="CompleteActivity",
        responses={200: None, 404: "Error", 409: "Error"},
        description="Empty 200; with eager_workflow_task (opt-in) the 200 body is EagerWorkflowTask.",
        quick=True,
    )
    def complete(id: str) -> str:
        b = as_object(read_body(mb))
        eager = opt_bool(b, "eager_workflow_task", False)
        wf_task = engine.complete_activity(
            path_int(id, "task id"), b.get("result"), opt_str(b, "worker_id"), eager_workflow_task=eager
        )
        return _eager_wf_response(wf_task) if eager else empty(200)

    @r(
        "POST",
        "/tasks/{id}/fail",
        "Fail an activity attempt (retried per its policy)",
        "tasks",
        body="FailActivity",
        responses={200: None, 404: "Error", 409: "Error"},
        description="Empty 200; with eager_workflow_task (opt-in) the 200 body is EagerWorkflowTask.",
        quick=True,
    )
    def fail(id: str) -> str:
        b = as_object(read_body(mb))
        eager = opt_bool(b, "eager_workflow_task", False)
        wf_task = engine.fail_activity(
            path_int(id, "task id"),
            error_text(b.get("error"), "activity failed"),
            opt_str(b, "worker_id"),
            non_retryable=opt_bool(b, "non_retryable", False),
            eager_workflow_task=eager,
        )
        return _eager_wf_response(wf_task) if eager else empty(200)

    @r(
        "POST",
        "/tasks/results",
        "Complete or fail several activities in one request (one transaction)",
        "tasks",
        body="ActivityResults",
        body_required=True,
        responses={200: "ActivityResultsResponse", 400: "Error"},
        description="Each item is applied on its own: its `status` is 200, or the 404/409 a single "
        "complete/fail would have answered (that item changes nothing). With eager_workflow_task the "
        "workflow tasks the items made ready are claimed for this worker.",
        quick=True,
    )
    def report_results() -> str:
        b = as_object(read_body(mb))
        wid = req_str(b, "worker_id")
        raw = b.get("results")
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_TASKS:
            raise BadRequest(f"'results' must be an array of 1 to {MAX_TASKS} items")
        items = []
        for i, it in enumerate(raw):
            tid = it.get("id") if isinstance(it, dict) else None
            if isinstance(tid, bool) or not isinstance(tid, int) or not 0 <= tid <= 2**62:
                raise BadRequest(f"results[{i}]: must be an object with an integer 'id' (a task id)")
            err = it.get("error")
            if err is not None and not (isinstance(err, str) and err):
                err = "activity failed" if err == "" else str(err)
            items.append(
                {
                    "id": it["id"],
                    "result": it.get("result"),
                    "error": err,
                    "non_retryable": opt_bool(it, "non_retryable", False),
                }
            )
        out = engine.report_activities(
            wid, items, eager_workflow_task=opt_bool(b, "eager_workflow_task", False)
        )
        return json_response(
            {
                "results": out["results"],
                "workflow_tasks": [records.workflow_task(t) for t in out["workflow_tasks"]],
            }
        )

    @r(
        "POST",
        "/tasks/{id}/heartbeat",
        "Activity heartbeat; answers whether cancellation was requested",
        "tasks",
        body="ActivityHeartbeat",
        responses={200: "HeartbeatResponse", 404: "Error", 409: "Error"},
        quick=True,
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
        b = as_object(read_body(mb))
        batch = _batch_poll(engine, b, True, False)
        if batch is not None:
            return batch
        got = _poll_one(engine, b, True, False)
        return json_response(records.workflow_task(got[0][1])) if got else _empty_answer(None, got, b)

    @r(
        "POST",
        "/workflow-tasks/{id}/commands",
        "Submit a workflow task's commands (atomic)",
        "workflow-tasks",
        body="Commands",
        body_required=True,
        responses={200: None, 400: "Error", 404: "Error", 409: "Error"},
        description="Empty 200; with eager_activities or eager_workflow_task (opt-in) the 200 body is "
        "EagerCommandsResponse.",
        quick=True,
    )
    def commands(id: str) -> str:
        body = read_body(mb)
        wid, cmds = parse_commands_body(body)
        b = as_object(body)
        n_acts = opt_int(b, "eager_activities", None, min_value=0, max_value=MAX_TASKS)
        eager_wf = opt_bool(b, "eager_workflow_task", False)
        out = engine.submit_commands(
            id, wid, cmds, eager_activities=n_acts or 0, eager_workflow_task=eager_wf
        )
        if n_acts is None and b.get("eager_workflow_task") is None:
            return empty(200)  # upstream clients: the same empty 200 as ever
        wf_task = out.get(WF)
        return json_response(
            {
                "activity_tasks": [records.activity(t) for t in out.get("activity_tasks") or []],
                WF: records.workflow_task(wf_task) if wf_task else None,
            }
        )

    @r(
        "POST",
        "/workflow-tasks/{id}/fail",
        "Report a workflow task the code could not run (e.g. nondeterminism): the workflow is kept, retried "
        "after a backoff and flagged as stuck when it keeps failing",
        "workflow-tasks",
        body="FailWorkflowTask",
        body_required=True,
        responses={200: "FailedWorkflowTask", 400: "Error", 404: "Error", 409: "Error"},
        quick=True,
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
        batch = _batch_poll(engine, b, opt_bool(b, "workflows", True), opt_bool(b, "activities", True))
        if batch is not None:
            return batch
        got = _poll_one(engine, b, opt_bool(b, "workflows", True), opt_bool(b, "activities", True))
        if not got:
            return _empty_answer({"kind": None, "task": None}, got, b)
        kind, task = got[0]
        if kind == TaskKind.workflow_task:
            return json_response({"kind": kind, "task": records.workflow_task(task)})
        return json_response({"kind": kind, "task": records.activity(task)})
