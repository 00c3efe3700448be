"""The deploy gate behind `assay replay`: replay exported histories (format `assay-history/1`, see
docs/versioning.md) through a worker file's workflow code, offline, and report the first divergence.

Lua files go through the Lua runtime's replay mode (assay/lua/replay_gate.py). Python files go through
`assay.workflow`'s pure replay (`replay.run(handler, task, history)`); the run state its ctx carries
says which of the history's commands the code reached, checked by the same rules as the Lua side. Each result is
`{"ok", "outcome", "divergence": {"event_seq", "history", "code", "message"} | None, "error"}`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from assay.protocol import CommandType, EventType


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


def _commands(evs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The commands a history holds, each with how to tell the code reached it (see docs/versioning.md)."""
    out: list[dict[str, Any]] = []
    signals: dict[str, int] = {}
    children = 0
    for ev in evs:
        t, p, seq = ev.get("event_type"), ev.get("payload"), ev.get("seq")
        pd = p if isinstance(p, dict) else {}
        if t == EventType.ActivityScheduled and isinstance(pd.get("activity_seq"), int):
            k = pd["activity_seq"]
            out.append(
                {
                    "seq": seq,
                    "kind": "act",
                    "key": k,
                    "desc": f"ActivityScheduled '{pd.get('name')}' (activity #{k})",
                }
            )
        elif t == EventType.TimerScheduled and isinstance(pd.get("timer_seq"), int):
            k = pd["timer_seq"]
            out.append(
                {
                    "seq": seq,
                    "kind": "timer",
                    "key": k,
                    "desc": f"TimerScheduled {pd.get('duration_secs')}s (timer #{k})",
                }
            )
        elif t == EventType.SideEffectRecorded and isinstance(pd.get("side_effect_seq"), int):
            k = pd["side_effect_seq"]
            out.append(
                {
                    "seq": seq,
                    "kind": "effect",
                    "key": k,
                    "desc": f"SideEffectRecorded '{pd.get('name')}' (#{k})",
                }
            )
        elif t == EventType.ChildWorkflowStarted:
            children += 1
            out.append(
                {
                    "seq": seq,
                    "kind": "child",
                    "key": children,
                    "desc": f"ChildWorkflowStarted '{pd.get('child_workflow_id')}'",
                }
            )
        elif t == EventType.SignalReceived and pd.get("signal") is not None:
            signals[str(pd["signal"])] = signals.get(str(pd["signal"]), 0) + 1
        elif t == EventType.WorkflowAwaitingSignal and pd.get("signal") is not None:
            name = str(pd["signal"])
            out.append(
                {
                    "seq": seq,
                    "kind": "wait",
                    "key": name,
                    "need": signals.get(name, 0) + 1,
                    "timer": pd.get("timer_seq"),
                    "desc": f"WorkflowAwaitingSignal '{name}'",
                }
            )
    return out


def _reached(c: Mapping[str, Any], rs: Any, result: Any) -> bool:
    kind = c["kind"]
    if kind == "act":
        return c["key"] <= getattr(rs, "n_act", 0)
    if kind == "timer":
        return c["key"] <= getattr(rs, "n_timer", 0)
    if kind == "effect":
        return c["key"] <= getattr(rs, "n_effect", 0)
    if kind == "child":
        return c["key"] <= getattr(rs, "children_reached", 0)
    # a wait: passed (that many signals consumed), timed out (its timer reached), or waiting now
    if isinstance(c.get("timer"), int) and c["timer"] <= getattr(rs, "n_timer", 0):
        return True
    consumed = (getattr(rs, "sig_cursor", None) or {}).get(c["key"], 0)
    if consumed >= c["need"]:
        return True
    waiting = any(
        x.get("type") == CommandType.WaitForSignal and x.get("name") == c["key"] for x in result.commands
    )
    return consumed == c["need"] - 1 and waiting


def _ending(evs: Sequence[Mapping[str, Any]]) -> tuple[Any, str, str] | None:
    """(event seq, description, the command type the code must end with) of a code-made ending."""
    for ev in evs:
        t, p = ev.get("event_type"), ev.get("payload")
        if t == EventType.WorkflowCompleted:
            if isinstance(p, dict) and p.get("continued_as_new"):
                return ev.get("seq"), "WorkflowCompleted (continued as new)", CommandType.ContinueAsNew
            return ev.get("seq"), "WorkflowCompleted", CommandType.CompleteWorkflow
        if t == EventType.WorkflowFailed:
            pd = p if isinstance(p, dict) else {}
            if pd.get("terminated"):
                return None
            return ev.get("seq"), f"WorkflowFailed ({pd.get('error')})", CommandType.FailWorkflow
    return None


def _did(result: Any) -> str:
    if result.task_error:
        return f"fails the workflow task: {result.task_error}"
    inline = (
        CommandType.RecordSnapshot,
        CommandType.RecordVersion,
        CommandType.RecordSideEffect,
        CommandType.UpsertSearchAttributes,
    )
    cmds = [c for c in result.commands if c.get("type") not in inline]
    if not cmds:
        return "sends no command"
    c = cmds[-1] if result.summary != "suspended" else cmds[0]
    t = c.get("type")
    if t == CommandType.ScheduleActivity:
        return f"schedules activity '{c.get('name')}' (activity #{c.get('seq')})"
    if t == CommandType.ScheduleTimer:
        return f"starts a {c.get('duration_secs')}s timer (timer #{c.get('seq')})"
    if t == CommandType.WaitForSignal:
        return f"waits for signal '{c.get('name')}'"
    if t == CommandType.StartChildWorkflow:
        return f"starts child workflow '{c.get('workflow_id')}'"
    if t == CommandType.CompleteWorkflow:
        return "completes the workflow"
    if t == CommandType.FailWorkflow:
        return f"fails the workflow: {c.get('error')}"
    if t == CommandType.ContinueAsNew:
        return "continues as new"
    if t == CommandType.CancelWorkflow:
        return "cancels the workflow"
    return f"sends {t}"


def _divergence(seq: Any, history: str, code: str) -> dict[str, Any]:
    msg = f"nondeterministic workflow: event {seq}: the history has {history}; the code {code}"
    return {"event_seq": seq, "history": history, "code": code, "message": msg}


def check_history(
    run: Callable[[dict[str, Any], list[dict[str, Any]]], tuple[Any, Any]],
    wf: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Replay `events` with `run(task, history) -> (result, run state)` and compare: every command of the
    history reached, the same ending, no failed task."""
    evs = sorted((dict(e) for e in events), key=lambda e: int(e.get("seq") or 0))
    task = _task(wf, evs)
    result, rs = run(task, evs)
    if result.task_error:
        # where: the shortest history on which the code fails its task
        for i in range(1, len(evs) + 1):
            r, _ = run(task, evs[:i])
            if r.task_error:
                ev = evs[i - 1]
                div = _divergence(ev["seq"], str(ev.get("event_type")), _did(r))
                return {"ok": False, "outcome": "task failed", "divergence": div}
        return {
            "ok": False,
            "outcome": "task failed",
            "divergence": _divergence("?", "its events", _did(result)),
        }
    if getattr(rs, "cancelled", False):
        return {"ok": True, "outcome": result.summary}
    for c in _commands(evs):
        if not _reached(c, rs, result):
            return {
                "ok": False,
                "outcome": result.summary,
                "divergence": _divergence(c["seq"], c["desc"], _did(result)),
            }
    end = _ending(evs)
    if end is not None:
        kinds = [c.get("type") for c in result.commands]
        if end[2] not in kinds:
            return {
                "ok": False,
                "outcome": result.summary,
                "divergence": _divergence(end[0], end[1], _did(result)),
            }
    return {"ok": True, "outcome": result.summary}
