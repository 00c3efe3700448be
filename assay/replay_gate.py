"""The deploy gate behind `assay replay`: replay exported histories (format `assay-history/1`, see
docs/versioning.md) through a worker file's workflow code, offline, and report the first divergence.

Lua files go through the Lua runtime's replay mode (assay/lua/replay_gate.py). Python files go through
`assay.workflow`'s pure replay (`replay.run(handler, task, history)`), which checks the run against the
history by the same rules as the Lua side (assay/workflow/divergence.py). Each result is
`{"ok", "outcome", "divergence": {"event_seq", "history", "code", "message"} | None, "error"}`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any


class GateError(Exception):
    """The worker file cannot be used (does not load, unsupported kind)."""


def replay_file(path: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".lua":
        from assay.lua.replay_gate import ScriptError, replay_lua

        try:
            return replay_lua(path, docs)
        except ScriptError as e:
            raise GateError(f"{path} does not load: {e.message}") from None
    if ext == ".py":
        return replay_python(path, docs)
    raise GateError(f"WORKER_FILE must be a .lua or .py worker file, got {path}")


# --- Python worker files ---------------------------------------------------------------------------
def _load_python(path: str) -> dict[str, Callable[..., Any]]:
    try:
        from assay import workflow as pyworkflow
    except ImportError:  # pragma: no cover - a build without the Python worker API
        raise GateError("this assay has no Python worker API (assay.workflow)") from None
    try:
        workflows, _activities = pyworkflow.load_worker_file(path)
    except SystemExit as e:
        raise GateError(f"{path} does not load: it exited ({e.code})") from None
    except Exception as e:
        raise GateError(f"{path} does not load: {type(e).__name__}: {e}") from None
    return workflows


def replay_python(path: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from assay.workflow import replay as pyreplay

    workflows = _load_python(path)
    out = []
    for doc in docs:
        wf = doc["workflow"]
        handler = workflows.get(str(wf.get("workflow_type")))
        if handler is None:
            out.append(
                {
                    "ok": False,
                    "outcome": "no handler",
                    "error": f"this worker file defines no workflow type '{wf.get('workflow_type')}'",
                }
            )
            continue
        out.append(check_history(_runner(pyreplay, handler), wf, doc["events"]))
    return out


def _runner(pyreplay: Any, handler: Callable[..., Any]) -> Callable[..., tuple[Any, Any]]:
    """Run the pure replay and keep the run state its ctx carries (its counters say what the code reached)."""

    def run(task: dict[str, Any], history: list[dict[str, Any]]) -> tuple[Any, Any]:
        box: dict[str, Any] = {}

        def spy(ctx: Any, input: Any) -> Any:
            box["ctx"] = ctx
            return handler(ctx, input)

        result = pyreplay.run(spy, task, history)
        return result, getattr(box.get("ctx"), "_rs", None)

    return run


def _task(wf: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "workflow_id": wf.get("id"),
        "workflow_type": wf.get("workflow_type"),
        "namespace": wf.get("namespace"),
        "task_queue": wf.get("task_queue"),
        "run_id": wf.get("run_id"),
        "parent_id": wf.get("parent_id"),
        "input": wf.get("input"),
        "search_attributes": wf.get("search_attributes"),
        "created_at": wf.get("created_at"),
        "attempt": 1,
        "history": [dict(e) for e in events],
    }


def check_history(
    run: Callable[[dict[str, Any], list[dict[str, Any]]], tuple[Any, Any]],
    wf: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Replay `events` with `run(task, history) -> (result, run state)`: every command of the history
    reached, the same ending, no failed task (assay/workflow/divergence.py)."""
    from assay.workflow import divergence as dv

    evs = sorted((dict(e) for e in events), key=lambda e: int(e.get("seq") or 0))
    task = _task(wf, evs)
    result, rs = run(task, evs)
    div = getattr(result, "divergence", None)
    if div is None and not result.task_error:
        div = dv.first(evs, rs, result)
    if div is not None:
        return {"ok": False, "outcome": result.summary, "divergence": div}
    if result.task_error:
        # where: the shortest history on which the code fails its task
        for i in range(1, len(evs) + 1):
            r, _ = run(task, evs[:i])
            if r.task_error:
                ev = evs[i - 1]
                div = dv.divergence(ev["seq"], str(ev.get("event_type")), dv.did(r))
                return {"ok": False, "outcome": "task failed", "divergence": div}
        return {
            "ok": False,
            "outcome": "task failed",
            "divergence": dv.divergence("?", "its events", dv.did(result)),
        }
    return {"ok": True, "outcome": result.summary}
