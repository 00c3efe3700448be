"""Write assay workflows and activities in Python (the mirror of Lua's ``require("assay.workflow")``).

    from assay import workflow

    workflow.connect("http://127.0.0.1:8080")        # default: ASSAY_ENGINE_URL; api_key= / ASSAY_API_KEY

    @workflow.define("Greet")
    def greet(ctx, input):
        return ctx.execute_activity("render", {"name": input["name"]}, max_attempts=3)

    @workflow.activity("render")
    def render(actx, input):
        return "Hello, " + input["name"]

    workflow.listen(queue="default", concurrency=4)   # blocks; SIGTERM drains

Stdlib only (runs inside assay.pyz). The management functions (start, signal, describe, list, ...) call
the engine through `assay.sdk.Client`. See docs/python.md.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable
from typing import Any

from assay.protocol import DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE
from assay.sdk.client import Client
from assay.workflow import registry
from assay.workflow.errors import (
    ActivityError,
    Cancelled,
    ChildWorkflowError,
    NondeterminismError,
    WorkerError,
    WorkflowError,
    WorkflowTaskError,
)
from assay.workflow.process import ensure_logging
from assay.workflow.registry import ActivityContext, activity, define
from assay.workflow.replay import WorkflowContext, WorkflowInfo
from assay.workflow.worker import Transport, listen_with

__all__ = [
    "ActivityContext",
    "ActivityError",
    "Cancelled",
    "ChildWorkflowError",
    "NondeterminismError",
    "WorkerError",
    "WorkflowContext",
    "WorkflowError",
    "WorkflowInfo",
    "WorkflowTaskError",
    "activity",
    "cancel",
    "client",
    "connect",
    "continue_as_new",
    "define",
    "describe",
    "get_events",
    "get_state",
    "list",
    "list_children",
    "listen",
    "load_worker_file",
    "signal",
    "start",
    "terminate",
    "wait",
]

_state: dict[str, Any] = {"transport": None, "client": None, "dry": False}


def connect(
    url: str | None = None, *, api_key: str | None = None, timeout: float = 30.0, wait_secs: float = 0.0
) -> Client:
    """Connect to the engine at `url` (default ASSAY_ENGINE_URL, else http://127.0.0.1:8080) and check
    `/health`, retrying up to `wait_secs`. Returns the `assay.sdk.Client` the management functions use."""
    from assay.config import ClientSettings, declared, from_env  # ASSAY_ENGINE_URL, ASSAY_API_KEY

    client_settings = declared(ClientSettings)
    url = url or from_env(client_settings["engine_url"])
    if not isinstance(url, str):
        raise TypeError("workflow.connect: url must be a string")
    key = api_key if api_key is not None else from_env(client_settings["api_key"])
    if _state["dry"]:  # load_worker_file: no engine is contacted
        return Client(url, api_key=key, timeout=timeout)
    transport = Transport(url, key, timeout)
    deadline = time.monotonic() + max(0.0, wait_secs)
    delay = 0.25
    while True:
        try:
            status, _, _ = transport.call("GET", "/health", timeout=min(timeout, 10.0))
            if status == 200:
                break
            why = f"HTTP {status}"
        except OSError as e:
            why = str(e) or type(e).__name__
        if time.monotonic() + delay > deadline:
            raise WorkerError(f"workflow.connect: cannot reach engine at {url.rstrip('/')}: {why}")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
    _state["transport"] = transport
    c = Client(url, api_key=key, timeout=timeout)
    _state["client"] = c
    return c


def client() -> Client:
    """The `assay.sdk.Client` of the current connection (every management method lives there)."""
    c = _state["client"]
    if not isinstance(c, Client):
        raise WorkerError("workflow: not connected (call workflow.connect(url) first)")
    return c


def listen(
    queue: str = DEFAULT_TASK_QUEUE,
    concurrency: int | None = None,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    identity: str | None = None,
    poll_wait_secs: float | None = None,
    heartbeat_interval_secs: float | None = None,
    max_backoff_secs: float | None = None,
    build_id: str | None = None,
    stop: threading.Event | None = None,
    max_tasks: int | None = None,
) -> bool:
    """Run a worker for everything registered so far until SIGTERM/SIGINT (or `stop` is set): finishes
    the tasks in hand, deregisters, returns True. `concurrency` slots (ASSAY_WORKER_CONCURRENCY, default 1);
    a poll claims up to `max_tasks` tasks for free slots (ASSAY_WORKER_MAX_TASKS)."""
    if _state["dry"]:  # load_worker_file: handlers are registered, nothing listens
        return False
    if _state["transport"] is None:
        raise WorkerError("workflow.listen: call workflow.connect(url) first")
    ensure_logging()
    return listen_with(
        _state["transport"],
        queue=queue,
        concurrency=concurrency,
        namespace=namespace,
        identity=identity,
        poll_wait_secs=poll_wait_secs,
        heartbeat_interval_secs=heartbeat_interval_secs,
        max_backoff_secs=max_backoff_secs,
        build_id=build_id,
        stop=stop,
        max_tasks=max_tasks,
    )


def load_worker_file(path: str) -> tuple[dict[str, Callable[..., Any]], dict[str, Callable[..., Any]]]:
    """Run a Python worker file as `__main__` with `connect` and `listen` made inert (no engine is
    contacted, nothing listens) and return its handlers: ({workflow type: fn}, {activity name: fn}).
    The handlers registered before stay as they were. For replaying histories offline (`assay replay`)."""
    import runpy

    saved = (dict(registry.WORKFLOWS), dict(registry.ACTIVITIES))
    registry.WORKFLOWS.clear()
    registry.ACTIVITIES.clear()
    _state["dry"] = True
    try:
        runpy.run_path(path, run_name="__main__")
        return dict(registry.WORKFLOWS), dict(registry.ACTIVITIES)
    finally:
        _state["dry"] = False
        registry.WORKFLOWS.clear()
        registry.WORKFLOWS.update(saved[0])
        registry.ACTIVITIES.clear()
        registry.ACTIVITIES.update(saved[1])


# -- management: thin re-exports of assay.sdk.Client methods (no second implementation) ----------------
def start(workflow_type: str, input: Any = None, **kw: Any) -> dict[str, Any]:
    """Client.start_workflow: start a workflow; kw: workflow_id, task_queue, search_attributes, namespace."""
    return client().start_workflow(workflow_type, kw.pop("workflow_id", None), input=input, **kw)


def signal(workflow_id: str, name: str, payload: Any = None) -> Any:
    """Client.signal_workflow."""
    return client().signal_workflow(workflow_id, name, payload)


def describe(workflow_id: str) -> dict[str, Any]:
    """Client.describe_workflow."""
    return client().describe_workflow(workflow_id)


def cancel(workflow_id: str, reason: str | None = None) -> Any:
    """Client.cancel_workflow."""
    return client().cancel_workflow(workflow_id, reason)


def terminate(workflow_id: str, reason: str | None = None) -> Any:
    """Client.terminate_workflow."""
    return client().terminate_workflow(workflow_id, reason)


def list(**filters: Any) -> builtins.list[dict[str, Any]]:  # noqa: A001 - the Lua module's name
    """Client.list_workflows (status=, workflow_type=, search_attrs=, limit=, offset=, namespace=)."""
    return client().list_workflows(**filters)


def get_events(workflow_id: str) -> builtins.list[dict[str, Any]]:
    """Client.workflow_events."""
    return client().workflow_events(workflow_id)


def get_state(workflow_id: str, name: str | None = None) -> dict[str, Any]:
    """Client.workflow_state: the latest query snapshot (one query when `name` is given)."""
    return client().workflow_state(workflow_id, name)


def list_children(workflow_id: str) -> builtins.list[dict[str, Any]]:
    """Client.workflow_children."""
    return client().workflow_children(workflow_id)


def continue_as_new(
    workflow_id: str, input: Any = None, new_workflow_id: str | None = None
) -> dict[str, Any]:
    """Client.continue_as_new (from outside the workflow)."""
    return client().continue_as_new(workflow_id, input, new_workflow_id)


def wait(workflow_id: str, timeout: float | None = None) -> dict[str, Any]:
    """Client.wait: block until the workflow is terminal; returns its record."""
    return client().wait(workflow_id, timeout=timeout)
