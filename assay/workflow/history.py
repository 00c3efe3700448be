"""The history index of the replay: what a workflow's events say about each step (no I/O, stdlib only)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from assay.protocol import CommandType, EventType

# Versioning words (#20), declared in assay.protocol.
RECORD_VERSION = CommandType.RecordVersion
VERSION_MARKER = EventType.VersionMarkerRecorded
_RAW_PAYLOAD = (EventType.WorkflowStarted, EventType.WorkflowCompleted)


def maybe_json(v: Any, want: type | None = dict) -> Any:
    """Decode a value an older engine may deliver as JSON text inside a string."""
    if not isinstance(v, str):
        return v
    try:
        parsed = json.loads(v)
    except ValueError:
        return v
    return parsed if want is None or isinstance(parsed, want) else v


def freeze(what: str, v: Any) -> Any:
    """A JSON round-trip copy of v (what was recorded cannot change later), or TypeError naming `what`."""
    try:
        return json.loads(json.dumps(v, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} cannot be encoded as JSON: {e}") from None


# ------------------------------------------------------------------------------------------------
# history index
# ------------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    ok: bool
    result: Any
    error: Any
    seq: int
    ts: float | None
    name: Any = None


@dataclass
class HistoryIndex:
    scheduled: dict[int, Any] = field(default_factory=dict)  # activity seq -> name
    acts: dict[int, Outcome] = field(default_factory=dict)
    timers: dict[int, tuple[int, float | None]] = field(default_factory=dict)  # timer seq -> (event seq, ts)
    timer_seqs: set[int] = field(default_factory=set)  # scheduled timers
    effects: dict[int, tuple[Any, int]] = field(default_factory=dict)  # effect seq -> (value, event seq)
    signals: dict[str, list[tuple[int, Any, float | None]]] = field(default_factory=dict)
    children: dict[str, Outcome] = field(default_factory=dict)
    child_types: dict[str, Any] = field(default_factory=dict)  # ChildWorkflowStarted
    versions: dict[str, int] = field(default_factory=dict)
    # WorkflowAwaitingSignal: (signal name, which wait for it: signals of that name before it + 1)
    awaits: list[tuple[str, int]] = field(default_factory=list)
    finished: bool = False  # the code ended the run (WorkflowCompleted / a WorkflowFailed not terminated)
    cancel: tuple[Any, int] | None = None  # (reason, event seq)
    started_at: float | None = None
    events: int = 0


def index(history: Sequence[Mapping[str, Any]] | None) -> HistoryIndex:
    idx = HistoryIndex()
    for ev in history or ():
        add(idx, ev)
    return idx


def add(idx: HistoryIndex, ev: Mapping[str, Any]) -> None:
    """Index one more event (events come in seq order; a sticky run adds a task's new events so)."""
    t = ev.get("event_type")
    p = ev.get("payload")
    if t not in _RAW_PAYLOAD:
        p = maybe_json(p)
    pt: Mapping[str, Any] = p if isinstance(p, dict) else {}
    seq = int(ev.get("seq") or 0)
    ts = ev.get("timestamp")
    idx.events += 1
    if t == EventType.ActivityScheduled:
        if pt.get("activity_seq") is not None:
            idx.scheduled[int(pt["activity_seq"])] = pt.get("name")
    elif t in (EventType.ActivityCompleted, EventType.ActivityFailed):
        k = pt.get("activity_seq")
        if k is not None and int(k) not in idx.acts:
            idx.acts[int(k)] = Outcome(
                t == EventType.ActivityCompleted,
                pt.get("result"),
                pt.get("error"),
                seq,
                ts,
                pt.get("name"),
            )
    elif t == EventType.TimerScheduled:
        if pt.get("timer_seq") is not None:
            idx.timer_seqs.add(int(pt["timer_seq"]))
    elif t == EventType.TimerFired:
        k = pt.get("timer_seq")
        if k is not None and int(k) not in idx.timers:
            idx.timers[int(k)] = (seq, ts)
    elif t == EventType.SideEffectRecorded:
        k = pt.get("side_effect_seq")
        # (a sticky run recorded it with event seq 0 when the code ran it: now the event's seq)
        if k is not None and (int(k) not in idx.effects or idx.effects[int(k)][1] == 0):
            idx.effects[int(k)] = (pt.get("value"), seq)
    elif t == EventType.SignalReceived:
        if pt.get("signal") is not None:
            idx.signals.setdefault(str(pt["signal"]), []).append((seq, pt.get("payload"), ts))
    elif t == EventType.ChildWorkflowStarted:
        if pt.get("child_workflow_id") is not None:
            idx.child_types.setdefault(str(pt["child_workflow_id"]), pt.get("workflow_type"))
    elif t in (EventType.ChildWorkflowCompleted, EventType.ChildWorkflowFailed):
        k = pt.get("child_workflow_id")
        if k is not None and str(k) not in idx.children:
            idx.children[str(k)] = Outcome(
                t == EventType.ChildWorkflowCompleted, pt.get("result"), pt.get("error"), seq, ts
            )
    elif t == VERSION_MARKER:
        cid, v = pt.get("change_id"), pt.get("version")
        if isinstance(cid, str) and isinstance(v, int) and cid not in idx.versions:
            idx.versions[cid] = v
    elif t == EventType.WorkflowAwaitingSignal:
        if pt.get("signal") is not None:
            name = str(pt["signal"])
            idx.awaits.append((name, len(idx.signals.get(name, ())) + 1))
    elif t == EventType.WorkflowCompleted or (t == EventType.WorkflowFailed and not pt.get("terminated")):
        idx.finished = True
    elif t == EventType.WorkflowCancelRequested:
        if idx.cancel is None:
            idx.cancel = (pt.get("reason"), seq)
    elif t == EventType.WorkflowStarted:
        idx.started_at = ts
