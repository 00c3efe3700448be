"""Helpers for engine tests: a fake worker that drives the engine in-process, event inspection."""

from __future__ import annotations

from typing import Any


def start(engine, wf_id: str, wf_type: str = "T", queue: str = "default", **kw: Any) -> dict:
    return engine.start_workflow(workflow_type=wf_type, workflow_id=wf_id, task_queue=queue, **kw)


def types(engine, wf_id: str) -> list[str]:
    return [e["event_type"] for e in engine.list_events(wf_id)]


def payloads(engine, wf_id: str, event_type: str) -> list[Any]:
    return [e["payload"] for e in engine.list_events(wf_id) if e["event_type"] == event_type]


def status(engine, wf_id: str) -> str:
    return engine.get_workflow(wf_id)["status"]


def assert_gap_free(engine, wf_id: str) -> None:
    seqs = [e["seq"] for e in engine.list_events(wf_id)]
    assert seqs == list(range(1, len(seqs) + 1)), seqs


def act(name: str = "work", seq: int = 1, **kw: Any) -> dict:
    return {"type": "ScheduleActivity", "seq": seq, "name": name, **kw}


class Worker:
    """Plays a worker: registers, claims tasks, submits commands."""

    def __init__(self, engine, queue: str = "default", namespace: str = "main", **kw: Any) -> None:
        self.engine = engine
        self.queue = queue
        self.id = engine.register_worker(identity="test", queue=queue, namespace=namespace, **kw)

    def claim(self) -> dict | None:
        return self.engine.claim_workflow_task(self.queue, self.id)

    def run(self, wf_id: str, *commands: dict) -> dict:
        """Claim the next workflow task (it must be `wf_id`) and submit `commands` for it."""
        task = self.claim()
        assert task is not None, f"no workflow task for {wf_id}"
        assert task["id"] == wf_id, f"expected a task for {wf_id}, got {task['id']}"
        self.engine.submit_commands(wf_id, self.id, list(commands))
        return task

    def submit(self, wf_id: str, *commands: dict) -> dict:
        return self.engine.submit_commands(wf_id, self.id, list(commands))

    def claim_activity(self) -> dict | None:
        return self.engine.claim_activity_task(self.queue, self.id)

    def complete(self, act_id: int, result: Any = None) -> None:
        self.engine.complete_activity(act_id, result, self.id)

    def fail(self, act_id: int, error: str = "boom", **kw: Any) -> None:
        self.engine.fail_activity(act_id, error, self.id, **kw)


def activities(engine, wf_id: str) -> list[dict]:
    with engine.store.read() as tx:
        return tx.list_activities(wf_id)
