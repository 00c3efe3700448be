"""A worker played by hand over raw HTTP (no SDK, no Lua): what an upstream client sends on the wire."""

from __future__ import annotations

from typing import Any

from tests.helpers import http


class RawWorker:
    def __init__(self, api: str, queue: str = "default", namespace: str = "main", **extra: Any) -> None:
        self.api = api
        self.queue = queue
        status, body, _ = http(
            "POST",
            api + "/workers/register",
            {"identity": "raw-test", "queue": queue, "namespace": namespace, **extra},
        )
        assert status == 200, body
        self.id = body["worker_id"]

    def call(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
        status, data, _ = http(method, self.api + path, body, timeout=timeout)
        return status, data

    def poll_workflow(self, wait: float = 0.0) -> dict | None:
        status, body = self.call(
            "POST", "/workflow-tasks/poll", {"queue": self.queue, "worker_id": self.id, "wait_secs": wait}
        )
        assert status == 200, body
        return body

    def poll_activity(self, wait: float = 0.0) -> dict | None:
        status, body = self.call(
            "POST", "/tasks/poll", {"queue": self.queue, "worker_id": self.id, "wait_secs": wait}
        )
        assert status == 200, body
        return None if body == {"task": None} else body

    def poll(self, wait: float = 0.0, **kw: Any) -> tuple[str | None, dict | None]:
        status, body = self.call(
            "POST", "/poll", {"queue": self.queue, "worker_id": self.id, "wait_secs": wait, **kw}
        )
        assert status == 200, body
        return body["kind"], body["task"]

    def submit(self, wf_id: str, *commands: dict) -> int:
        status, _ = self.call(
            "POST", f"/workflow-tasks/{wf_id}/commands", {"worker_id": self.id, "commands": list(commands)}
        )
        return status

    def run(self, wf_id: str, *commands: dict, wait: float = 5.0) -> dict:
        task = self.poll_workflow(wait)
        assert task is not None and task["workflow_id"] == wf_id, task
        assert self.submit(wf_id, *commands) == 200
        return task

    def complete(self, act_id: int, result: Any = None) -> int:
        return self.call("POST", f"/tasks/{act_id}/complete", {"result": result, "worker_id": self.id})[0]


def start(api: str, wf_id: str, queue: str = "default", **kw: Any) -> dict:
    status, body, _ = http(
        "POST", api + "/workflows", {"workflow_type": "T", "workflow_id": wf_id, "task_queue": queue, **kw}
    )
    assert status == 201, body
    return body


def describe(api: str, wf_id: str) -> dict:
    status, body, _ = http("GET", f"{api}/workflows/{wf_id}")
    assert status == 200, body
    return body


def events(api: str, wf_id: str) -> list[dict]:
    status, body, _ = http("GET", f"{api}/workflows/{wf_id}/events")
    assert status == 200, body
    return body


def event_types(api: str, wf_id: str) -> list[str]:
    return [e["event_type"] for e in events(api, wf_id)]
