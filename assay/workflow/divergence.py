"""Does a run of the code follow its workflow's history? The check a Python workflow task makes after the
handler ran (and `assay replay` for Python worker files): every command the history holds must have been
reached by the code, and a run the code ended must end the same way. Same rules as the Lua worker
(assay/lua/workflow/deploy.lua); see docs/versioning.md."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from assay.protocol import CommandType, EventType


def commands(evs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
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


def reached(c: Mapping[str, Any], rs: Any, result: Any) -> bool:
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


def ending(evs: Sequence[Mapping[str, Any]]) -> tuple[Any, str, str] | None:
    """(event seq, description, the command type the code must end with) of a code-made ending."""
    for ev in evs:
        t, p = ev.get("event_type"), ev.get("payload")
        if t == EventType.WorkflowCompleted:
            if isinstance(p, dict) and p.get("continued_as_new"):
                return ev.get("seq"), "WorkflowCompleted (continued as new)", CommandType.ContinueAsNew
            return ev.get("seq"), str(EventType.WorkflowCompleted), CommandType.CompleteWorkflow
        if t == EventType.WorkflowFailed:
            pd = p if isinstance(p, dict) else {}
            if pd.get("terminated"):
                return None
            return ev.get("seq"), f"WorkflowFailed ({pd.get('error')})", CommandType.FailWorkflow
    return None


def did(result: Any) -> str:
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


def divergence(seq: Any, history: str, code: str) -> dict[str, Any]:
    msg = f"nondeterministic workflow: event {seq}: the history has {history}; the code {code}"
    return {"event_seq": seq, "history": history, "code": code, "message": msg}


def first(history: Sequence[Mapping[str, Any]], rs: Any, result: Any) -> dict[str, Any] | None:
    """The first divergence of a run (`rs`: its run state, `result`: commands + summary), or None."""
    if getattr(rs, "cancelled", False):
        return None
    evs = sorted((dict(e) for e in history), key=lambda e: int(e.get("seq") or 0))
    for c in commands(evs):
        if not reached(c, rs, result):
            return divergence(c["seq"], c["desc"], did(result))
    end = ending(evs)
    if end is not None and end[2] not in [c.get("type") for c in result.commands]:
        return divergence(end[0], end[1], did(result))
    return None
