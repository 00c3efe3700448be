"""Reset: a new run of a workflow whose history is the old run's up to a chosen event, continuing from there
with the code deployed now. The old run ends terminated (FAILED + `{"terminated": true}`) with the reason
`reset to <new id>`; the records link both ways (`reset_to` on the old run, `reset_from` on the new one).

What is copied: the events 1..SEQ (same seqs, payloads and timestamps), the side-effect values and signals
among them, the cancellation request if it is among them. What happens to the rest:
* activities and timers of the old run are cancelled with it; the new run's code schedules again whatever
  the copied history has no outcome for (an activity scheduled before SEQ whose result came after SEQ runs
  again: a reset skips nothing);
* signals the old run received after SEQ are delivered again to the new run, in their order;
* children started in the copied part and still running are handed over to the new run; children started
  after SEQ are terminated with the old run.
"""

from __future__ import annotations

import re

from assay.engine import states
from assay.engine.core import EngineCore, Service
from assay.engine.lifecycle import Lifecycle
from assay.errors import BadRequest, Conflict
from assay.protocol import TERMINAL_EVENTS, EventType, SseEvent, WorkflowStatus
from assay.store.base import Record, Tx

#: events that start a workflow task (everything after one of them up to the next is that task's output)
WAKE_EVENTS = frozenset(
    {
        EventType.WorkflowStarted,
        EventType.ActivityCompleted,
        EventType.ActivityFailed,
        EventType.TimerFired,
        EventType.SignalReceived,
        EventType.ChildWorkflowCompleted,
        EventType.ChildWorkflowFailed,
        EventType.WorkflowCancelRequested,
    }
)
_RESET_SUFFIX = re.compile(r"-reset-\d+(?:-\d+)?$")
#: reads of the history a reset may need when events keep arriving between its read and its write
RESET_READ_ATTEMPTS = 5


def last_task_seq(events: list[Record]) -> int:
    """The seq of the last event that started a workflow task before the run's end: resetting there re-runs
    that task (and what followed) with the current code."""
    best = 1
    for ev in events:
        if ev["event_type"] in TERMINAL_EVENTS:
            break
        if ev["event_type"] in WAKE_EVENTS:
            best = int(ev["seq"])
    return best


class ResetOps(Service):
    def __init__(self, core: EngineCore, life: Lifecycle) -> None:
        super().__init__(core)
        self.life = life

    def reset_workflow(
        self, wf_id: str, *, to_event: int | None = None, to_last_task: bool = False
    ) -> Record:
        if (to_event is None) == (not to_last_task):
            raise BadRequest("give exactly one of 'to_event' (an event seq) or 'to_last_task': true")
        # The history is read before the write transaction, not under the writer lock (a long one takes
        # milliseconds that every other write would wait for); the write checks nothing was appended
        # meanwhile, and reads again if something was.
        for _attempt in range(RESET_READ_ATTEMPTS):
            with self.store.read() as rtx:
                seen = self._get_wf(rtx, wf_id)
                events = [] if seen.get("archived_at") is not None else rtx.list_events(wf_id)
            out = self._reset(wf_id, events, seen.get("last_seq"), to_event)
            if out is not None:
                return out
        raise Conflict(f"workflow {wf_id} kept changing while it was being reset; try again")

    def _reset(
        self, wf_id: str, events: list[Record], last_seq: object, to_event: int | None
    ) -> Record | None:
        """The reset's write transaction over `events` (read when the workflow's last_seq was `last_seq`);
        None when events were appended since (the caller reads again)."""
        with self._tx() as (tx, fx):
            old = self._get_wf(tx, wf_id)
            if old.get("archived_at") is not None:
                raise Conflict(f"workflow {wf_id} is archived; its history is no longer in the engine")
            if old.get("last_seq") != last_seq:
                return None
            end = next((int(e["seq"]) for e in events if e["event_type"] in TERMINAL_EVENTS), None)
            seq = last_task_seq(events) if to_event is None else int(to_event)
            if seq < 1 or seq > len(events):
                raise BadRequest(f"'to_event' must be an event seq of {wf_id} (1..{len(events)})")
            if end is not None and seq >= end:
                raise BadRequest(
                    f"'to_event' {seq} is not before the run's end (event {end}); choose an earlier event"
                )
            new_id = self._derive_reset_id(tx, old["id"])
            now = self.now()
            live = not states.is_terminal(old["status"])
            inherit = old.get("parent_id") if live else None
            rec = {
                "id": new_id,
                "namespace": old["namespace"],
                "run_id": f"run-{new_id}-{int(now)}",
                "workflow_type": old["workflow_type"],
                "task_queue": old["task_queue"],
                "status": WorkflowStatus.PENDING,
                "input": old["input"],
                "parent_id": inherit,
                "child_ref": (old.get("child_ref") or old["id"]) if inherit else None,
                "search_attributes": old.get("search_attributes"),
                "created_at": now,
                "updated_at": now,
                "needs_dispatch": 1,
                "ready_at": now,
                "last_seq": 0,
                "reset_from": old["id"],
            }
            if not tx.insert_workflow(rec):  # pragma: no cover - the id was just checked
                raise Conflict(f"workflow already exists: {new_id}", workflow_id=new_id)
            started_children: list[str] = []
            for ev in events:
                if int(ev["seq"]) > seq:
                    break
                self._copy_event(tx, new_id, ev, started_children)
            later_signals = [
                e for e in events if int(e["seq"]) > seq and e["event_type"] == EventType.SignalReceived
            ]
            for ev in later_signals:
                p = ev["payload"] if isinstance(ev["payload"], dict) else {}
                tx.insert_signal(new_id, str(p.get("signal")), p.get("payload"), now)
                tx.append_event(
                    new_id,
                    EventType.SignalReceived,
                    {"signal": p.get("signal"), "payload": p.get("payload")},
                    now,
                )
            for child_id in started_children:
                child = tx.get_workflow(child_id)
                if child and child.get("parent_id") == old["id"] and not states.is_terminal(child["status"]):
                    tx.update_workflow(child_id, parent_id=new_id)
            tx.update_workflow(old["id"], reset_to=new_id)
            old["reset_to"] = new_id
            if live:
                self.life.terminate(tx, fx, old, f"reset to {new_id}", notify_parent=False)
            fx.wake_workflows(rec["task_queue"])
            fx.sse(SseEvent.workflow_started, rec, reset_from=old["id"])
            out = tx.get_workflow(new_id)
            assert out is not None
            return out

    @staticmethod
    def _copy_event(tx: Tx, new_id: str, ev: Record, started_children: list[str]) -> None:
        t, p = ev["event_type"], ev["payload"]
        pd = p if isinstance(p, dict) else {}
        tx.append_event(new_id, t, p, ev["timestamp"])
        if t == EventType.SideEffectRecorded and isinstance(pd.get("side_effect_seq"), int):
            tx.insert_side_effect(new_id, pd["side_effect_seq"], str(pd.get("name") or ""), pd.get("value"))
        elif t == EventType.SignalReceived:
            tx.insert_signal(new_id, str(pd.get("signal")), pd.get("payload"), ev["timestamp"])
        elif t == EventType.WorkflowCancelRequested:
            tx.update_workflow(new_id, cancel_requested=True)
        elif t == EventType.ChildWorkflowStarted and pd.get("child_workflow_id"):
            started_children.append(str(pd["child_workflow_id"]))

    def _derive_reset_id(self, tx: Tx, old_id: str) -> str:
        base = _RESET_SUFFIX.sub("", old_id)
        stamp = int(self.now())
        candidate = f"{base}-reset-{stamp}"
        n = 1
        while tx.get_workflow(candidate) is not None:
            n += 1
            candidate = f"{base}-reset-{stamp}-{n}"
        return candidate
