"""Worker commands: parsed and validated up front, then applied in ONE transaction with their events
and the lease release. A batch from a worker that no longer holds the lease changes nothing (409)."""

from __future__ import annotations

import json
import logging
from typing import Any

from assay.engine import states
from assay.engine.core import EngineBase
from assay.engine.deploy import RECORD_VERSION, apply_record_version, parse_record_version
from assay.engine.notify import Effects
from assay.engine.validate import (
    as_object,
    opt_int,
    opt_num,
    opt_str,
    opt_str_list,
    req_id,
    req_int,
    req_str,
    url_safe,
)
from assay.errors import AssayError, BadRequest, Conflict
from assay.store.base import Record, Tx

log = logging.getLogger("assay.engine.commands")

TERMINAL_COMMANDS = {"CompleteWorkflow", "FailWorkflow", "CancelWorkflow", "ContinueAsNew"}


def activity_spec(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": req_int(c, "seq", min_value=0),
        "name": req_str(c, "name"),
        "task_queue": opt_str(c, "task_queue"),
        "input": c.get("input"),
        "max_attempts": opt_int(c, "max_attempts", min_value=0, max_value=10_000),
        "initial_interval_secs": opt_num(c, "initial_interval_secs", min_value=0),
        "backoff_coefficient": opt_num(c, "backoff_coefficient", min_value=1),
        "maximum_interval_secs": opt_num(c, "maximum_interval_secs", min_value=0),
        "start_to_close_secs": opt_num(c, "start_to_close_secs", min_value=0.001),
        "heartbeat_timeout_secs": opt_num(c, "heartbeat_timeout_secs", min_value=0.001),
        "non_retryable_errors": opt_str_list(c, "non_retryable_errors"),
    }


def parse_command(i: int, raw: Any) -> dict[str, Any]:
    """Validate one command; returns a normalised dict (raises BadRequest naming the command)."""
    try:
        if not isinstance(raw, dict):
            raise BadRequest("must be a JSON object")
        t = raw.get("type")
        if not isinstance(t, str):
            raise BadRequest("missing 'type'")
        if t == "ScheduleActivity":
            return {"type": t, **activity_spec(raw)}
        if t == "ScheduleTimer":
            return {
                "type": t,
                "seq": req_int(raw, "seq", min_value=0),
                "duration_secs": opt_num(
                    raw, "duration_secs", 0.0, min_value=0, max_value=10 * 365 * 86400.0
                ),
            }
        if t == "WaitForSignal":
            return {
                "type": t,
                "name": opt_str(raw, "name", "?", allow_empty=True),
                "timer_seq": opt_int(raw, "timer_seq", min_value=0),
            }
        if t == "RecordSideEffect":
            return {
                "type": t,
                "seq": req_int(raw, "seq", min_value=0),
                "name": opt_str(raw, "name", "", allow_empty=True),
                "value": raw.get("value"),
            }
        if t == "StartChildWorkflow":
            return {
                "type": t,
                "workflow_type": req_str(raw, "workflow_type"),
                "workflow_id": req_id(raw, "workflow_id"),
                "task_queue": opt_str(raw, "task_queue"),
                "input": raw.get("input"),
                "search_attributes": raw.get("search_attributes"),
            }
        if t == "UpsertSearchAttributes":
            patch = raw.get("patch", {})
            if not isinstance(patch, dict):
                raise BadRequest("'patch' must be a JSON object")
            return {"type": t, "patch": patch}
        if t == "ContinueAsNew":
            new_id = url_safe(opt_str(raw, "workflow_id"), "workflow_id")
            return {"type": t, "input": raw.get("input"), "workflow_id": new_id}
        if t == "RecordSnapshot":
            return {"type": t, "state": raw.get("state")}
        if t == "CompleteWorkflow":
            return {"type": t, "result": raw.get("result")}
        if t == "FailWorkflow":
            err = raw.get("error")
            if not isinstance(err, str) or not err:
                err = "workflow handler raised an error" if err in (None, "") else json.dumps(err)
            return {"type": t, "error": err}
        if t == "CancelWorkflow":
            return {"type": t, "reason": opt_str(raw, "reason", allow_empty=True)}
        if t == RECORD_VERSION:
            return parse_record_version(raw)
        raise BadRequest(f"unknown command type '{t}'")
    except BadRequest as e:
        raise BadRequest(f"command {i}: {e.message}", command_index=i) from None


class CommandOps(EngineBase):
    def submit_commands(self, wf_id: str, worker_id: str, commands: list[Any]) -> dict[str, Any]:
        try:
            if not isinstance(commands, list):
                raise BadRequest("'commands' must be an array")
            parsed = [parse_command(i, c) for i, c in enumerate(commands)]
            with self._tx() as (tx, fx):
                wf = self._get_wf(tx, wf_id)
                if wf["dispatch_claimed_by"] != worker_id:
                    raise Conflict(
                        f"worker {worker_id} does not hold the lease on workflow {wf_id}",
                        workflow_id=wf_id,
                        lease_lost=True,
                    )
                applied = 0
                for cmd in parsed:
                    if states.is_terminal(wf["status"]):
                        log.info(
                            "workflow %s is %s: ignoring %s after a terminal command",
                            wf_id,
                            wf["status"],
                            cmd["type"],
                        )
                        continue
                    self._apply(tx, fx, wf, cmd)
                    applied += 1
                tx.release_lease(wf_id, worker_id)
                self._task_succeeded(tx, wf)  # type: ignore[attr-defined]
                after = tx.get_workflow(wf_id)
                if after and after["needs_dispatch"] and not states.is_terminal(after["status"]):
                    fx.wake_workflows(after["task_queue"])
                return {"applied": applied, "status": after["status"] if after else None}
        except AssayError as e:
            if isinstance(e, Conflict) and e.detail.get("lease_lost"):
                raise
            # The batch was rolled back; give the task back to the queue so a replay can try (DECISIONS 6).
            self._give_back(wf_id, worker_id, f"the engine rejected the commands: {e.message}")
            raise

    def _give_back(self, wf_id: str, worker_id: str, error: str) -> None:
        """Release the worker's lease and make the workflow dispatchable again, after a backoff that grows
        with consecutive failed workflow tasks (engine/deploy.py): a worker that keeps sending the same bad
        batch does not spin, and the workflow is flagged as stuck."""
        with self._tx() as (tx, fx):
            wf = tx.get_workflow(wf_id)
            if wf is None or wf["dispatch_claimed_by"] != worker_id:
                return
            self.metrics.workflow_task_failed(fx, wf, "rejected")
            self._task_failed(tx, fx, wf, worker_id, error)  # type: ignore[attr-defined]

    def _apply(self, tx: Tx, fx: Effects, wf: Record, c: dict[str, Any]) -> None:
        t = c["type"]
        now = self.now()
        wf_id = wf["id"]
        if t == "ScheduleActivity":
            self._schedule_activity(tx, fx, wf, c)  # type: ignore[attr-defined]
        elif t == "ScheduleTimer":
            fire_at = now + float(c["duration_secs"])
            timer_id = tx.insert_timer(wf_id, c["seq"], fire_at)
            if timer_id is not None:
                tx.append_event(
                    wf_id,
                    "TimerScheduled",
                    {
                        "timer_id": timer_id,
                        "timer_seq": c["seq"],
                        "fire_at": fire_at,
                        "duration_secs": c["duration_secs"],
                    },
                    now,
                )
                fx.wake_loop("timers")
        elif t == "WaitForSignal":
            payload: dict[str, Any] = {"signal": c["name"]}
            if c["timer_seq"] is not None:
                payload["timer_seq"] = c["timer_seq"]
            last = tx.list_events(wf_id, max(0, self._last_seq(tx, wf_id) - 1))
            if not (
                last and last[-1]["event_type"] == "WorkflowAwaitingSignal" and last[-1]["payload"] == payload
            ):
                tx.append_event(wf_id, "WorkflowAwaitingSignal", payload, now)
        elif t == "RecordSideEffect":
            if tx.insert_side_effect(wf_id, c["seq"], c["name"], c["value"]):
                tx.append_event(
                    wf_id,
                    "SideEffectRecorded",
                    {"side_effect_seq": c["seq"], "name": c["name"], "value": c["value"]},
                    now,
                )
            tx.mark_dispatchable(wf_id, now)
        elif t == "StartChildWorkflow":
            self._start_child(tx, fx, wf, c)
        elif t == "UpsertSearchAttributes":
            cur = wf.get("search_attributes")
            merged = dict(cur) if isinstance(cur, dict) else {}
            merged.update(c["patch"])
            tx.update_workflow(wf_id, search_attributes=merged)
            wf["search_attributes"] = merged
        elif t == "ContinueAsNew":
            self._continue_as_new(tx, fx, wf, c["input"], c["workflow_id"])  # type: ignore[attr-defined]
        elif t == "RecordSnapshot":
            tx.upsert_snapshot(wf_id, self._last_seq(tx, wf_id), c["state"], now)
        elif t == "CompleteWorkflow":
            self._finish(
                tx,
                fx,
                wf,
                states.COMPLETED,
                event_type="WorkflowCompleted",
                payload=c["result"],
                result=c["result"],
                sse="workflow_completed",
            )
        elif t == "FailWorkflow":
            self._finish(
                tx,
                fx,
                wf,
                states.FAILED,
                event_type="WorkflowFailed",
                payload={"error": c["error"]},
                error=c["error"],
                sse="workflow_failed",
            )
        elif t == RECORD_VERSION:
            apply_record_version(tx, wf, c, now)
        elif t == "CancelWorkflow":
            reason = c.get("reason")
            self._finish(
                tx,
                fx,
                wf,
                states.CANCELLED,
                event_type="WorkflowCancelled",
                payload={"reason": reason} if reason else None,
                sse="workflow_cancelled",
                child_error="cancelled" + (f": {reason}" if reason else ""),
                cascade="cancel",
                cancel_reason=f"parent {wf_id} cancelled",
            )

    @staticmethod
    def _last_seq(tx: Tx, wf_id: str) -> int:
        wf = tx.get_workflow(wf_id)
        return int(wf["last_seq"]) if wf else 0

    def _start_child(self, tx: Tx, fx: Effects, parent: Record, c: dict[str, Any]) -> None:
        child_id = c["workflow_id"]
        existing = tx.get_workflow(child_id)
        now = self.now()
        if existing is not None:
            if existing.get("parent_id") == parent["id"]:
                return  # replay of a start we already did
            tx.append_event(
                parent["id"],
                "ChildWorkflowFailed",
                {
                    "child_workflow_id": child_id,
                    "reason": "id_conflict",
                    "error": f"workflow id '{child_id}' is already used by a workflow that is not a child of "
                    f"{parent['id']}",
                },
                now,
            )
            tx.mark_dispatchable(parent["id"], now)
            fx.wake_workflows(parent["task_queue"])
            return
        self._create_workflow(
            tx,
            fx,
            workflow_id=child_id,
            workflow_type=c["workflow_type"],
            namespace=parent["namespace"],
            task_queue=c["task_queue"] or parent["task_queue"],
            input=c["input"],
            search_attributes=c.get("search_attributes"),
            parent_id=parent["id"],
            stamp=False,
        )
        tx.append_event(
            parent["id"],
            "ChildWorkflowStarted",
            {"child_workflow_id": child_id, "workflow_type": c["workflow_type"]},
            now,
        )


def parse_commands_body(body: Any) -> tuple[str, Any]:
    """worker_id and the raw commands (submit_commands validates them, giving the lease back if bad)."""
    b = as_object(body)
    worker_id = req_str(b, "worker_id")
    commands = b.get("commands", [])
    return worker_id, [] if commands is None else commands
