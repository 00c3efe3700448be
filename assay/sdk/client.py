"""The Python client for an assay engine's REST API.

    from assay.sdk import Client
    c = Client("http://127.0.0.1:8080", api_key=None)
    run = c.start_workflow("Hello", input={"name": "ada"})
    c.wait(run["workflow_id"], timeout=60)

Every method returns the engine's JSON objects unchanged. Failures raise the classes of
`assay.errors` (NotFound, Conflict, ...; each carries `http_status`) or EngineUnreachable.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from assay.protocol import (
    DEFAULT_NAMESPACE,
    DEFAULT_TASK_QUEUE,
    HISTORY_FORMAT,
    TERMINAL_EVENTS,
    TERMINAL_STATUSES,
    OverlapPolicy,
    WorkflowStatus,
)
from assay.sdk.sse import EventStream
from assay.sdk.transport import DEFAULT_URL, NO_BODY, Transport

# the protocol's lists, re-exported for SDK users (assay.protocol is the source)
STATUSES: tuple[str, ...] = tuple(WorkflowStatus)
OVERLAP_POLICIES: tuple[str, ...] = tuple(OverlapPolicy)
__all__ = ["OVERLAP_POLICIES", "STATUSES", "TERMINAL_EVENTS", "TERMINAL_STATUSES", "Client"]


def _seg(value: str) -> str:
    """Quote one path segment (ids and names may hold any character)."""
    return urllib.parse.quote(str(value), safe="")


class Client:
    def __init__(
        self,
        engine_url: str = DEFAULT_URL,
        api_key: str | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        timeout: float = 30.0,
    ) -> None:
        self.transport = Transport(engine_url, api_key, timeout)
        self.namespace = namespace or DEFAULT_NAMESPACE

    # -- plumbing -------------------------------------------------------------------------------------
    @property
    def engine_url(self) -> str:
        return self.transport.engine_url

    def _ns(self, namespace: str | None) -> str:
        return namespace or self.namespace

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = NO_BODY,
        timeout: float | None = None,
    ) -> Any:
        return self.transport.request(method, path, query=query, body=body, timeout=timeout)

    # -- meta -----------------------------------------------------------------------------------------
    def health(self, timeout: float | None = None) -> dict:
        return self.request("GET", "/health", timeout=timeout)

    def version(self) -> dict:
        return self.request("GET", "/version")

    # -- workflows ------------------------------------------------------------------------------------
    def start_workflow(
        self,
        workflow_type: str,
        workflow_id: str | None = None,
        *,
        input: Any = None,
        task_queue: str = DEFAULT_TASK_QUEUE,
        search_attributes: Any = None,
        namespace: str | None = None,
    ) -> dict:
        if not workflow_id:
            workflow_id = f"wf-{workflow_type.lower()}-{int(time.time() * 1000)}"
        body: dict[str, Any] = {
            "workflow_type": workflow_type,
            "workflow_id": workflow_id,
            "namespace": self._ns(namespace),
            "task_queue": task_queue,
        }
        if input is not None:
            body["input"] = input
        if search_attributes is not None:
            body["search_attributes"] = search_attributes
        return self.request("POST", "/workflows", body=body)

    def list_workflows(
        self,
        *,
        status: str | None = None,
        workflow_type: str | None = None,
        search_attrs: dict | None = None,
        limit: int | None = None,
        offset: int | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
        build_id: str | None = None,
        stuck: bool | None = None,
    ) -> list[dict]:
        query = {
            "namespace": self._ns(namespace),
            "status": status,
            "type": workflow_type,
            "search_attrs": search_attrs,
            "build_id": build_id,
            "stuck": None if stuck is None else ("true" if stuck else "false"),
            "limit": limit,
            "offset": offset,
        }
        return self.request("GET", "/workflows", query=query, timeout=timeout)

    def describe_workflow(self, workflow_id: str, timeout: float | None = None) -> dict:
        return self.request("GET", f"/workflows/{_seg(workflow_id)}", timeout=timeout)

    def workflow_events(self, workflow_id: str) -> list[dict]:
        return self.request("GET", f"/workflows/{_seg(workflow_id)}/events")

    def workflow_children(self, workflow_id: str) -> list[dict]:
        return self.request("GET", f"/workflows/{_seg(workflow_id)}/children")

    def workflow_state(self, workflow_id: str, name: str | None = None) -> dict:
        path = f"/workflows/{_seg(workflow_id)}/state"
        if name is not None:
            path += f"/{_seg(name)}"
        return self.request("GET", path)

    def signal_workflow(self, workflow_id: str, name: str, payload: Any = None) -> Any:
        return self.request(
            "POST", f"/workflows/{_seg(workflow_id)}/signal/{_seg(name)}", body={"payload": payload}
        )

    def cancel_workflow(self, workflow_id: str, reason: str | None = None) -> Any:
        body = {"reason": reason} if reason is not None else NO_BODY
        return self.request("POST", f"/workflows/{_seg(workflow_id)}/cancel", body=body)

    def export_workflow(self, workflow_id: str) -> dict:
        """The replayable history document of `assay workflow export` (see docs/versioning.md)."""
        record = self.describe_workflow(workflow_id)
        return {"format": HISTORY_FORMAT, "workflow": record, "events": self.workflow_events(workflow_id)}

    def reset_workflow(
        self, workflow_id: str, *, to_event: int | None = None, to_last_task: bool = False
    ) -> dict:
        body: dict[str, Any] = {"to_last_task": True} if to_last_task else {"to_event": to_event}
        return self.request("POST", f"/workflows/{_seg(workflow_id)}/reset", body=body)

    def terminate_workflow(self, workflow_id: str, reason: str | None = None) -> Any:
        return self.request("POST", f"/workflows/{_seg(workflow_id)}/terminate", body={"reason": reason})

    def continue_as_new(
        self, workflow_id: str, input: Any = None, new_workflow_id: str | None = None
    ) -> dict:
        body: dict[str, Any] = {"input": input}
        if new_workflow_id:
            body["workflow_id"] = new_workflow_id
        return self.request("POST", f"/workflows/{_seg(workflow_id)}/continue-as-new", body=body)

    def wait(
        self,
        workflow_id: str,
        *,
        timeout: float | None = None,
        target: str | None = None,
        on_tick: Any = None,
        tick_interval: float = 0.1,
    ) -> dict:
        """Block until the workflow is terminal (or reaches `target`); see assay.sdk.watch.wait_for."""
        from assay.sdk.watch import wait_for

        return wait_for(
            self, workflow_id, timeout=timeout, target=target, on_tick=on_tick, tick_interval=tick_interval
        )

    def follow_events(self, workflow_id: str, *, refresh_secs: float = 1.0):
        """Yield the workflow's events as they are appended; stop after the terminal one."""
        from assay.sdk.watch import follow_events

        return follow_events(self, workflow_id, refresh_secs=refresh_secs)

    # -- schedules ------------------------------------------------------------------------------------
    def list_schedules(self, namespace: str | None = None, timeout: float | None = None) -> list[dict]:
        return self.request("GET", "/schedules", query={"namespace": self._ns(namespace)}, timeout=timeout)

    def describe_schedule(self, name: str, namespace: str | None = None) -> dict:
        return self.request("GET", f"/schedules/{_seg(name)}", query={"namespace": self._ns(namespace)})

    def create_schedule(
        self,
        name: str,
        workflow_type: str,
        cron_expr: str,
        *,
        input: Any = None,
        task_queue: str = DEFAULT_TASK_QUEUE,
        timezone: str | None = None,
        overlap_policy: str | None = None,
        namespace: str | None = None,
    ) -> dict:
        body: dict[str, Any] = {
            "name": name,
            "namespace": self._ns(namespace),
            "workflow_type": workflow_type,
            "cron_expr": cron_expr,
            "task_queue": task_queue,
        }
        if input is not None:
            body["input"] = input
        if timezone is not None:
            body["timezone"] = timezone
        if overlap_policy is not None:
            body["overlap_policy"] = overlap_policy
        return self.request("POST", "/schedules", body=body)

    def patch_schedule(
        self,
        name: str,
        namespace: str | None = None,
        *,
        cron_expr: str | None = None,
        timezone: str | None = None,
        input: Any = NO_BODY,
        task_queue: str | None = None,
        overlap_policy: str | None = None,
    ) -> dict:
        """Change some fields of a schedule: None (or, for `input`, leaving it out) means unchanged."""
        body: dict[str, Any] = {
            k: v
            for k, v in (
                ("cron_expr", cron_expr),
                ("timezone", timezone),
                ("task_queue", task_queue),
                ("overlap_policy", overlap_policy),
            )
            if v is not None
        }
        if input is not NO_BODY:
            body["input"] = input
        return self.request(
            "PATCH", f"/schedules/{_seg(name)}", query={"namespace": self._ns(namespace)}, body=body
        )

    def pause_schedule(self, name: str, namespace: str | None = None) -> dict:
        return self.request(
            "POST", f"/schedules/{_seg(name)}/pause", query={"namespace": self._ns(namespace)}
        )

    def resume_schedule(self, name: str, namespace: str | None = None) -> dict:
        return self.request(
            "POST", f"/schedules/{_seg(name)}/resume", query={"namespace": self._ns(namespace)}
        )

    def trigger_schedule(self, name: str, namespace: str | None = None) -> dict:
        return self.request(
            "POST", f"/schedules/{_seg(name)}/trigger", query={"namespace": self._ns(namespace)}
        )

    def delete_schedule(self, name: str, namespace: str | None = None) -> Any:
        return self.request("DELETE", f"/schedules/{_seg(name)}", query={"namespace": self._ns(namespace)})

    # -- namespaces, workers, queues --------------------------------------------------------------------
    def create_namespace(self, name: str) -> Any:
        return self.request("POST", "/namespaces", body={"name": name})

    def list_namespaces(self, timeout: float | None = None) -> list[dict]:
        return self.request("GET", "/namespaces", timeout=timeout)

    def describe_namespace(self, name: str) -> dict:
        return self.request("GET", f"/namespaces/{_seg(name)}")

    def delete_namespace(self, name: str) -> Any:
        return self.request("DELETE", f"/namespaces/{_seg(name)}")

    def list_workers(self, namespace: str | None = None) -> list[dict]:
        return self.request("GET", "/workers", query={"namespace": self._ns(namespace)})

    def queue_stats(self, namespace: str | None = None) -> list[dict]:
        return self.request("GET", "/queues", query={"namespace": self._ns(namespace)})

    # -- worker protocol (low level) --------------------------------------------------------------------
    def register_worker(
        self,
        identity: str,
        queue: str = DEFAULT_TASK_QUEUE,
        *,
        workflows: list[str] | None = None,
        activities: list[str] | None = None,
        namespace: str | None = None,
        heartbeat_interval_secs: float | None = None,
    ) -> str:
        body: dict[str, Any] = {
            "identity": identity,
            "queue": queue,
            "namespace": self._ns(namespace),
            "workflows": workflows,
            "activities": activities,
        }
        if heartbeat_interval_secs is not None:
            body["heartbeat_interval_secs"] = heartbeat_interval_secs
        return self.request("POST", "/workers/register", body=body)["worker_id"]

    def poll_workflow_task(
        self, worker_id: str, queue: str = DEFAULT_TASK_QUEUE, wait_secs: float = 0
    ) -> dict | None:
        body = {"worker_id": worker_id, "queue": queue, "wait_secs": wait_secs}
        return self.request(
            "POST", "/workflow-tasks/poll", body=body, timeout=self.transport.timeout + wait_secs
        )

    def submit_commands(self, workflow_id: str, worker_id: str, commands: list[dict]) -> Any:
        return self.request(
            "POST",
            f"/workflow-tasks/{_seg(workflow_id)}/commands",
            body={"worker_id": worker_id, "commands": commands},
        )

    def poll_activity_task(
        self, worker_id: str, queue: str = DEFAULT_TASK_QUEUE, wait_secs: float = 0
    ) -> dict | None:
        body = {"worker_id": worker_id, "queue": queue, "wait_secs": wait_secs}
        task = self.request("POST", "/tasks/poll", body=body, timeout=self.transport.timeout + wait_secs)
        if isinstance(task, dict) and set(task) == {"task"}:
            return task["task"]
        return task

    def complete_activity(self, task_id: int, result: Any = None) -> Any:
        return self.request("POST", f"/tasks/{task_id}/complete", body={"result": result})

    def fail_activity(self, task_id: int, error: str) -> Any:
        return self.request("POST", f"/tasks/{task_id}/fail", body={"error": error})

    # -- events -----------------------------------------------------------------------------------------
    def event_stream(self, namespace: str | None = None, connect_timeout: float | None = None) -> EventStream:
        """Open `GET /events/stream`; iterate the result for SSEEvent objects."""
        resp, sock = self.transport.open_stream(
            "/events/stream", query={"namespace": self._ns(namespace)}, connect_timeout=connect_timeout
        )
        return EventStream(resp, sock)
