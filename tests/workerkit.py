"""A raw-HTTP worker for end-to-end tests: completes every workflow task with a fixed plan."""

from __future__ import annotations

import threading

from tests.helpers import http


class RawWorker:
    """Runs in a thread: registers, long-polls POST /poll, completes workflows (optionally after one activity)."""

    def __init__(
        self, api: str, queue: str = "default", with_activity: bool = False, headers: dict | None = None
    ) -> None:
        self.api = api
        self.queue = queue
        self.with_activity = with_activity
        self.headers = headers or {}
        self.stop = threading.Event()
        self.completed: list[str] = []
        self.activities_done: list[int] = []
        self.claims: list[tuple[str, int]] = []  # (workflow id, history length) per workflow task
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.beater = threading.Thread(target=self._beat, daemon=True)
        st, body, _ = http(
            "POST",
            api + "/workers/register",
            {"identity": "raw-test-worker", "queue": queue, "heartbeat_interval_secs": 5},
            headers=self.headers,
        )
        assert st == 200, body
        self.worker_id = body["worker_id"]

    def __enter__(self):
        self.thread.start()
        self.beater.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        self.beater.join(10)

    def _beat(self) -> None:
        """Heartbeat on a timer, as declared at registration (the engine treats a silent worker as lost)."""
        while not self.stop.wait(2.0):
            try:
                http(
                    "POST",
                    self.api + "/workers/heartbeat",
                    {"worker_id": self.worker_id},
                    headers=self.headers,
                    timeout=5,
                )
            except OSError:
                pass

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                st, body, _ = http(
                    "POST",
                    self.api + "/poll",
                    {"worker_id": self.worker_id, "queue": self.queue, "wait_secs": 1},
                    headers=self.headers,
                    timeout=10,
                )
            except OSError:
                continue
            if st != 200 or not body or body.get("kind") is None:
                continue
            task = body["task"]
            if body["kind"] == "activity_task":
                st, _, _ = http(
                    "POST",
                    f"{self.api}/tasks/{task['id']}/complete",
                    {"result": {"echo": task["input"]}, "worker_id": self.worker_id},
                    headers=self.headers,
                )
                if st == 200:
                    self.activities_done.append(task["id"])
                continue
            history = task["history"]
            self.claims.append((task["workflow_id"], len(history)))
            done = [e for e in history if e["event_type"] == "ActivityCompleted"]
            if self.with_activity and not done:
                cmds = [{"type": "ScheduleActivity", "seq": 1, "name": "work", "input": task["input"]}]
            else:
                cmds = [{"type": "CompleteWorkflow", "result": {"ok": True, "input": task["input"]}}]
            st, _, _ = http(
                "POST",
                f"{self.api}/workflow-tasks/{task['workflow_id']}/commands",
                {"worker_id": self.worker_id, "commands": cmds},
                headers=self.headers,
            )
            if st == 200 and cmds[0]["type"] == "CompleteWorkflow":
                self.completed.append(task["workflow_id"])
