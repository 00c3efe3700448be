"""Activity results of the Python worker: reported one by one, or several in one request under load.

A slot that finished an activity hands its result to `ResultReporter.report` and waits for the answer.
When no report is in flight the result goes out at once (`POST /tasks/{id}/complete|fail`); results that
arrive while one is in flight are sent together by the next sender in ONE `POST /tasks/results` (one
engine transaction; each item answered on its own). Nothing waits on a timer to gather a batch: batches
only form when slots finish faster than the engine answers, i.e. under load.

With `eager` the engine may hand back the workflow task a result made ready (opt-in
`eager_workflow_task`): it goes to the slot that reported that workflow's result, which is free by then.
An engine without `/tasks/results` (404/405) gets single reports from then on.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from assay.protocol import TaskKind

#: most items in one POST /tasks/results (the engine's cap)
MAX_BATCH = 100

Deliver = Callable[[str, str, Any], "tuple[int, Any, bytes] | None"]


def _pct(s: Any) -> str:
    return urllib.parse.quote(str(s), safe="")


@dataclass
class ResultItem:
    """One activity attempt's outcome; `status` etc. are filled in by the reporter."""

    task_id: Any
    workflow_id: str
    what: str
    ok: bool
    result: Any = None
    error: str | None = None
    non_retryable: bool = False
    # the answer: HTTP status (None: engine unreachable), error text, the eager workflow task(s) this
    # slot runs next (normally at most one)
    status: int | None = None
    message: str = ""
    workflow_tasks: list[dict[str, Any]] = field(default_factory=list)
    done: bool = field(default=False, repr=False)

    def single_body(self, worker_id: str, eager: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"worker_id": worker_id}
        if self.ok:
            body["result"] = self.result
        else:
            body["error"] = self.error
            if self.non_retryable:
                body["non_retryable"] = True
        if eager:
            body["eager_workflow_task"] = True
        return body

    def batch_item(self) -> dict[str, Any]:
        if self.ok:
            return {"id": self.task_id, "result": self.result}
        item: dict[str, Any] = {"id": self.task_id, "error": self.error}
        if self.non_retryable:
            item["non_retryable"] = True
        return item


def _error_of(value: Any, raw: bytes) -> str:
    if isinstance(value, dict) and value.get("error") is not None:
        return str(value["error"])
    return raw[:500].decode("utf-8", "replace")


class ResultReporter:
    """Group commit of activity results (see the module docstring). Thread-safe."""

    def __init__(self, deliver: Deliver, worker_id: Callable[[], str]) -> None:
        self._deliver = deliver
        self._worker_id = worker_id
        self._cond = threading.Condition()
        self._pending: list[ResultItem] = []
        self._sending = False
        self.batches_supported = True
        self.batches_sent = 0  # POST /tasks/results requests made (for tests and logs)

    def report(self, item: ResultItem, *, eager: bool) -> ResultItem:
        """Send `item` (alone or with others that queue meanwhile); returns it with its answer."""
        with self._cond:
            self._pending.append(item)
            while self._sending and not item.done:
                self._cond.wait()
            if item.done:  # another sender took it along
                return item
            self._sending = True
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        try:
            self._send(batch, eager)
        finally:
            with self._cond:
                for it in batch:
                    it.done = True
                self._sending = False
                self._cond.notify_all()
        return item

    def _send(self, batch: list[ResultItem], eager: bool) -> None:
        if len(batch) > 1 and self.batches_supported and self._send_batch(batch, eager):
            return
        for it in batch:
            self._send_one(it, eager)

    def _send_one(self, it: ResultItem, eager: bool) -> None:
        verb = "complete" if it.ok else "fail"
        out = self._deliver(
            it.what, f"/tasks/{_pct(it.task_id)}/{verb}", it.single_body(self._worker_id(), eager)
        )
        if out is None:
            return
        status, value, raw = out
        it.status = status
        if status in (200, 201, 204):
            wt = value.get(TaskKind.workflow_task.value) if isinstance(value, dict) else None
            if isinstance(wt, dict):
                it.workflow_tasks.append(wt)
        else:
            it.message = _error_of(value, raw)

    def _send_batch(self, batch: list[ResultItem], eager: bool) -> bool:
        """One POST /tasks/results; False when the engine cannot take it (the caller sends singles)."""
        body: dict[str, Any] = {"worker_id": self._worker_id(), "results": [it.batch_item() for it in batch]}
        if eager:
            body["eager_workflow_task"] = True
        out = self._deliver(f"{len(batch)} activity results", "/tasks/results", body)
        if out is None:
            return True  # unreachable for long: every item stays without an answer (status None)
        status, value, _raw = out
        if status in (404, 405):
            self.batches_supported = False  # an engine without batch reports
            return False
        if status != 200 or not isinstance(value, dict) or not isinstance(value.get("results"), list):
            return False  # e.g. too large a body: each on its own
        self.batches_sent += 1
        answers = {r.get("id"): r for r in value["results"] if isinstance(r, dict)}
        for it in batch:
            a = answers.get(it.task_id)
            if a is None:
                it.status, it.message = 0, "the engine's answer left this result out"
                continue
            it.status = int(a.get("status") or 0)
            if it.status != 200:
                it.message = str(a.get("error") or "")
        for wt in value.get("workflow_tasks") or []:
            if not isinstance(wt, dict):
                continue
            # the first free slot that reported for that workflow runs it (claimed for us: never dropped)
            mine = [it for it in batch if it.workflow_id == str(wt.get("workflow_id"))]
            free = [it for it in mine if not it.workflow_tasks]
            (free or mine or batch)[0].workflow_tasks.append(wt)
        return True


__all__ = ["MAX_BATCH", "ResultItem", "ResultReporter"]
