"""The pure replay: one workflow task in, the commands (or a task failure) out. No I/O.

Every workflow task re-runs the handler from the start. ctx calls whose outcome is already in the history
return it at once; the first call that needs the engine (an activity, a timer, a signal, a child) ends the
run with the commands to send (it raises an internal BaseException the handler never sees). Side effects,
version markers, search-attribute upserts and query snapshots do not end the run: they ride with the batch.

This mirrors assay/lua/workflow/replay.lua command for command and seq for seq, so a workflow run by a
Python worker is indistinguishable from one run by a Lua worker. `run()` is what the live worker, the
test kit (assay.testing) and the replay gate (`assay replay`) call.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import random as _random
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assay.protocol import DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE, CommandType
from assay.workflow import divergence
from assay.workflow.errors import (
    ActivityError,
    Cancelled,
    ChildWorkflowError,
    NondeterminismError,
    WorkflowTaskError,
)
from assay.workflow.history import RECORD_VERSION, HistoryIndex, Outcome, freeze, index, maybe_json

log = logging.getLogger("assay.workflow")

Command = dict[str, Any]
Handler = Callable[..., Any]

#: the options of execute_activity (the Lua names); task_queue is sent as a string
ACTIVITY_OPTIONS = (
    "max_attempts",
    "initial_interval_secs",
    "backoff_coefficient",
    "maximum_interval_secs",
    "start_to_close_secs",
    "heartbeat_timeout_secs",
    "schedule_to_close_secs",
    "non_retryable_errors",
)


# ------------------------------------------------------------------------------------------------
# ctx
# ------------------------------------------------------------------------------------------------
class _Suspend(BaseException):
    """Ends the handler run with commands to send (never seen by user code that catches Exception)."""

    def __init__(self, commands: list[Command]) -> None:
        super().__init__("workflow suspended")
        self.commands = commands


@dataclass(frozen=True)
class WorkflowInfo:
    """What `ctx.info` tells about the running workflow."""

    workflow_id: str
    workflow_type: str
    namespace: str
    task_queue: str
    run_id: str | None
    parent_id: str | None
    attempt: int
    start_time: float | None
    search_attributes: Any
    history_length: int

    @property
    def queue(self) -> str:
        return self.task_queue


class _RunState:
    def __init__(self, task: Mapping[str, Any], idx: HistoryIndex) -> None:
        self.task = task
        self.idx = idx
        self.n_act = 0
        self.n_timer = 0
        self.n_effect = 0
        self.children_reached = 0
        self.sig_cursor: dict[str, int] = {}
        self.waits: dict[str, int] = {}  # waits for each signal name so far (for get_version)
        self.queries: dict[str, Callable[[], Any]] = {}
        self.inline: list[Command] = []  # side effects and version markers, in call order
        self.upserts: dict[str, Any] = {}
        self.cancelled = False
        self.suspended: list[Command] | None = None
        self.task_error: str | None = None
        self.in_query = False
        self.time = idx.started_at if idx.started_at is not None else task.get("created_at")
        seed = hashlib.sha256(f"{task.get('workflow_id')}\0{task.get('run_id')}".encode()).digest()
        self.rng = _random.Random(int.from_bytes(seed[:8], "big"))
        #: a sticky run (assay.workflow.sticky): waits here for the next task instead of ending the run
        self.park: Callable[[list[Command]], None] | None = None


def _need_name(fn: str, what: str, v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise TypeError(f"ctx.{fn}: {what} must be a non-empty string")
    return v


class WorkflowContext:
    """The `ctx` a workflow handler receives. Deterministic: every method answers from the history on replay."""

    def __init__(self, rs: _RunState) -> None:
        self._rs = rs
        t = rs.task
        self.workflow_id: str = str(t.get("workflow_id"))
        self.workflow_type: str = str(t.get("workflow_type"))
        self.namespace: str = str(t.get("namespace") or DEFAULT_NAMESPACE)
        self.task_queue: str = str(t.get("task_queue") or DEFAULT_TASK_QUEUE)
        self.run_id: str | None = t.get("run_id")

    # -- internals ---------------------------------------------------------------------------------
    def _cancel_error(self) -> Cancelled:
        rs = self._rs
        rs.cancelled = True
        return Cancelled(rs.idx.cancel[0] if rs.idx.cancel else None)

    def _suspend(self, cmds: list[Command]) -> None:
        """The run needs the engine: end it with `cmds` (a replay), or, in a sticky run, wait until the
        next task's events are indexed and return (the caller then looks at the history again)."""
        rs = self._rs
        if rs.in_query:
            raise RuntimeError(
                "ctx: waiting calls (activities, sleep, signals, children) must not run in a query"
            )
        if rs.idx.cancel is not None:
            raise self._cancel_error()
        rs.suspended = cmds
        if rs.park is None:
            raise _Suspend(cmds)
        rs.park(cmds)
        rs.suspended = None

    def _after_cancel(self, seq: int | None) -> None:
        """An outcome recorded after the cancellation request is not delivered: raise the cancellation."""
        c = self._rs.idx.cancel
        if c is not None and seq is not None and seq > c[1]:
            raise self._cancel_error()

    def _advance(self, ts: float | None) -> None:
        if ts is not None and (self._rs.time is None or ts > self._rs.time):
            self._rs.time = ts

    def _task_fail(self, exc: WorkflowTaskError) -> WorkflowTaskError:
        self._rs.task_error = str(exc)
        return exc

    def _schedule(self, seq: int, name: str, input: Any, opts: Mapping[str, Any]) -> Command:
        cmd: Command = {"type": CommandType.ScheduleActivity, "seq": seq, "name": name,
                        "input": freeze(f"input of activity '{name}'", input)}  # fmt: skip
        for k, v in opts.items():
            if v is None:
                continue
            if k == "task_queue":
                cmd[k] = str(v)
            elif k in ACTIVITY_OPTIONS:
                cmd[k] = freeze(f"activity option {k}", list(v) if k == "non_retryable_errors" else v)
            else:
                raise TypeError(f"ctx.execute_activity: unknown option '{k}' for activity '{name}'")
        return cmd

    def _outcome(self, seq: int, name: str) -> Outcome | None:
        idx = self._rs.idx
        prev = idx.scheduled.get(seq)
        if prev is None and seq in idx.acts:
            prev = idx.acts[seq].name
        if prev is not None and prev != name:
            raise self._task_fail(
                NondeterminismError(
                    f"nondeterministic workflow: activity #{seq} was '{prev}' in the history, "
                    f"the code now runs '{name}'"
                )
            )
        return idx.acts.get(seq)

    # -- activities ----------------------------------------------------------------------------------
    def execute_activity(self, name: str, input: Any = None, **opts: Any) -> Any:
        """Run activity `name` (retried per opts) and return its result; raises ActivityError on failure."""
        rs = self._rs
        _need_name("execute_activity", "activity name", name)
        rs.n_act += 1
        seq = rs.n_act
        while True:
            r = self._outcome(seq, name)
            if r is not None:
                self._after_cancel(r.seq)
                self._advance(r.ts)
                if r.ok:
                    return r.result
                raise ActivityError(f"activity '{name}' failed: {r.error}", name=name, error=str(r.error))
            self._suspend([self._schedule(seq, name, input, opts)])

    def execute_parallel(self, specs: Sequence[Any]) -> list[Any]:
        """Run activities concurrently: specs are (name, input[, opts]) tuples or dicts; results in order."""
        rs = self._rs
        if not isinstance(specs, list | tuple) or not specs:
            raise TypeError("ctx.execute_parallel: expects a non-empty list of (name, input, opts)")
        items: list[tuple[int, str, Any, Any]] = []
        for i, spec in enumerate(specs, 1):
            if isinstance(spec, Mapping):
                name, input, opts = spec.get("name"), spec.get("input"), spec.get("opts")
            elif isinstance(spec, list | tuple) and 1 <= len(spec) <= 3:
                name, input, opts = (list(spec) + [None, None])[:3]
            else:
                raise TypeError(f"ctx.execute_parallel: item {i} must be (name, input, opts)")
            if opts is not None and not isinstance(opts, Mapping):
                raise TypeError(f"ctx.execute_parallel: item {i} opts must be a dict")
            name = _need_name("execute_parallel", f"item {i} name", name)
            rs.n_act += 1
            items.append((rs.n_act, name, input, opts))
        while True:
            results: list[Any] = [None] * len(specs)
            pending: list[Command] = []
            failure: ActivityError | None = None
            for i, (seq, name, input, opts) in enumerate(items):
                r = self._outcome(seq, name)
                if r is not None:
                    self._after_cancel(r.seq)
                    self._advance(r.ts)
                if r is None:
                    pending.append(self._schedule(seq, name, input, opts or {}))
                elif r.ok:
                    results[i] = r.result
                elif failure is None:
                    failure = ActivityError(
                        f"activity '{name}' failed: {r.error}", name=name, error=str(r.error)
                    )
            if not pending:
                break
            self._suspend(pending)
        if failure is not None:
            raise failure
        return results

    # -- timers and signals --------------------------------------------------------------------------
    def sleep(self, seconds: float) -> None:
        """A durable timer: returns once `seconds` have passed (survives worker restarts)."""
        rs = self._rs
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or seconds != seconds
            or seconds < 0
        ):
            raise TypeError("ctx.sleep: seconds must be a non-negative number")
        rs.n_timer += 1
        seq = rs.n_timer
        while True:
            fired = rs.idx.timers.get(seq)
            if fired is not None:
                self._after_cancel(fired[0])
                self._advance(fired[1])
                return
            self._suspend([{"type": CommandType.ScheduleTimer, "seq": seq, "duration_secs": float(seconds)}])

    def _wait_signal(self, fname: str, name: str, timeout: float | None) -> tuple[bool, Any]:
        rs = self._rs
        _need_name(fname, "signal name", name)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            raise TypeError(f"ctx.{fname}: timeout must be a positive number of seconds")
        rs.waits[name] = rs.waits.get(name, 0) + 1
        cur = rs.sig_cursor.get(name, 0) + 1
        tseq = 0
        if timeout is not None:
            rs.n_timer += 1
            tseq = rs.n_timer
        while True:
            lst = rs.idx.signals.get(name) or []
            sig = lst[cur - 1] if len(lst) >= cur else None
            if timeout is None:
                if sig is not None:
                    self._after_cancel(sig[0])
                    rs.sig_cursor[name] = cur
                    self._advance(sig[2])
                    return True, sig[1]
                self._suspend([{"type": CommandType.WaitForSignal, "name": name}])
                continue
            fired = rs.idx.timers.get(tseq)
            # signal and timer both in the history: the one with the lower event seq won the race
            if sig is not None and (fired is None or sig[0] < fired[0]):
                self._after_cancel(sig[0])
                rs.sig_cursor[name] = cur
                self._advance(sig[2])
                return True, sig[1]
            if fired is not None:
                self._after_cancel(fired[0])
                self._advance(fired[1])
                return False, None
            self._suspend([
                {"type": CommandType.ScheduleTimer, "seq": tseq, "duration_secs": float(timeout)},
                {"type": CommandType.WaitForSignal, "name": name, "timer_seq": tseq},
            ])  # fmt: skip

    def wait_for_signal(self, name: str, timeout: float | None = None) -> Any:
        """The payload of the next signal `name` (None when the optional timeout fired first)."""
        return self._wait_signal("wait_for_signal", name, timeout)[1]

    def signal_or_timeout(self, name: str, timeout: float) -> tuple[bool, Any]:
        """Like wait_for_signal with a timeout, but says which won: returns (received, payload)."""
        if timeout is None:
            raise TypeError("ctx.signal_or_timeout: timeout is required")
        return self._wait_signal("signal_or_timeout", name, timeout)

    # -- children ------------------------------------------------------------------------------------
    def start_child_workflow(
        self, workflow_type: str, input: Any = None, *, workflow_id: str, task_queue: str | None = None
    ) -> Any:
        """Start a child workflow and wait for its result; raises ChildWorkflowError when it fails."""
        rs = self._rs
        _need_name("start_child_workflow", "workflow type", workflow_type)
        _need_name("start_child_workflow", "workflow_id", workflow_id)
        rs.children_reached += 1
        while True:
            prev = rs.idx.child_types.get(workflow_id)
            if prev is not None and prev != workflow_type:
                raise self._task_fail(
                    NondeterminismError(
                        f"nondeterministic workflow: child workflow '{workflow_id}' was of type '{prev}' in "
                        f"the history, the code now starts '{workflow_type}'"
                    )
                )
            c = rs.idx.children.get(workflow_id)
            if c is not None:
                self._after_cancel(c.seq)
                self._advance(c.ts)
                if c.ok:
                    return c.result
                raise ChildWorkflowError(
                    f"child workflow '{workflow_id}' failed: {c.error}",
                    workflow_id=workflow_id,
                    error=str(c.error),
                )
            cmd: Command = {"type": CommandType.StartChildWorkflow, "workflow_id": workflow_id,
                            "workflow_type": workflow_type,
                            "input": freeze(f"input of child workflow '{workflow_id}'", input)}  # fmt: skip
            if task_queue is not None:
                cmd["task_queue"] = str(task_queue)
            self._suspend([cmd])

    def continue_as_new(self, input: Any = None) -> None:
        """End this run and start a fresh one (same id, empty history) with `input`."""
        self._suspend([{"type": CommandType.ContinueAsNew, "input": freeze("continue_as_new input", input)}])
        raise _Suspend([])  # a sticky run never comes back from a continue-as-new (see sticky.py)

    # -- recorded values -------------------------------------------------------------------------------
    def side_effect(self, name: Any, fn: Callable[[], Any] | None = None) -> Any:
        """Run fn once and record its value; a replay returns the recorded value without calling fn."""
        rs = self._rs
        if callable(name) and fn is None:
            name, fn = "side_effect", name
        _need_name("side_effect", "name", name)
        if not callable(fn):
            raise TypeError("ctx.side_effect: fn must be callable")
        rs.n_effect += 1
        seq = rs.n_effect
        if seq in rs.idx.effects:
            value, ev_seq = rs.idx.effects[seq]
            self._after_cancel(ev_seq)
            return value
        if rs.idx.cancel is not None:
            raise self._cancel_error()
        v = freeze(f"value of side effect '{name}'", fn())
        rs.inline.append({"type": CommandType.RecordSideEffect, "seq": seq, "name": name, "value": v})
        rs.idx.effects[seq] = (v, 0)
        return json.loads(json.dumps(v))

    def _unreached_history(self) -> bool:
        """True when the history holds commands the code has not reached yet (replaying old code's run)."""
        rs, idx = self._rs, self._rs.idx
        return (
            any(s > rs.n_act for s in idx.scheduled)
            or any(s > rs.n_act for s in idx.acts)
            or any(s > rs.n_timer for s in idx.timer_seqs | set(idx.timers))
            or any(s > rs.n_effect for s in idx.effects if idx.effects[s][1])
            or len(idx.child_types) > rs.children_reached
            or any(rs.waits.get(name, 0) < need for name, need in idx.awaits)
            or idx.finished
        )

    def get_version(self, change_id: str, min_supported: int, max_supported: int) -> int:
        """The version of change `change_id` this execution follows (see docs/python.md, Versioning)."""
        rs = self._rs
        _need_name("get_version", "change_id", change_id)
        for k, v in (("min_supported", min_supported), ("max_supported", max_supported)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"ctx.get_version: {k} must be an integer")
        if min_supported > max_supported:
            raise ValueError("ctx.get_version: min_supported must not exceed max_supported")
        if change_id in rs.idx.versions:
            v = rs.idx.versions[change_id]
            if not min_supported <= v <= max_supported:
                raise self._task_fail(
                    WorkflowTaskError(
                        f"unsupported version: change '{change_id}' is at version {v} in the history, the code "
                        f"supports {min_supported}..{max_supported}"
                    )
                )
            return v
        if self._unreached_history():
            return min_supported
        rs.inline.append({"type": RECORD_VERSION, "change_id": change_id, "version": max_supported})
        rs.idx.versions[change_id] = max_supported
        return max_supported

    def patched(self, change_id: str) -> bool:
        """True for executions that reached `change_id` with the new code (get_version(id, 0, 1) == 1)."""
        return self.get_version(change_id, 0, 1) == 1

    def now(self) -> _dt.datetime:
        """Deterministic workflow time (UTC): the time of the last history event the code has consumed."""
        t = self._rs.time
        return _dt.datetime.fromtimestamp(float(t or 0.0), tz=_dt.UTC)

    def random(self) -> float:
        """A deterministic random float in [0, 1): seeded by the run, identical on every replay."""
        return self._rs.rng.random()

    # -- queries, search attributes, cancel ----------------------------------------------------------
    def register_query(self, name: str, fn: Callable[[], Any]) -> None:
        """fn() answers `GET /workflows/{id}/state/{name}` with the state this run reached."""
        _need_name("register_query", "query name", name)
        if not callable(fn):
            raise TypeError("ctx.register_query: fn must be callable")
        self._rs.queries[name] = fn

    def upsert_search_attributes(self, patch: Mapping[str, Any]) -> None:
        """Merge `patch` into the workflow's search attributes (sent with the next batch)."""
        if not isinstance(patch, Mapping):
            raise TypeError("ctx.upsert_search_attributes: patch must be a dict")
        for k, v in patch.items():
            if not isinstance(k, str):
                raise TypeError("ctx.upsert_search_attributes: keys must be strings")
            self._rs.upserts[k] = freeze(f"search attribute {k}", v)

    def cancel(self, reason: str | None = None) -> None:
        """End the workflow as CANCELLED (raises Cancelled; the handler may clean up)."""
        self._rs.cancelled = True
        raise Cancelled(reason)

    @property
    def info(self) -> WorkflowInfo:
        rs = self._rs
        t = rs.task
        return WorkflowInfo(
            workflow_id=self.workflow_id,
            workflow_type=self.workflow_type,
            namespace=self.namespace,
            task_queue=self.task_queue,
            run_id=self.run_id,
            parent_id=t.get("parent_id"),
            attempt=int(t.get("attempt") or 1),
            start_time=rs.idx.started_at if rs.idx.started_at is not None else t.get("created_at"),
            search_attributes=maybe_json(t.get("search_attributes")),
            history_length=rs.idx.events,
        )


# ------------------------------------------------------------------------------------------------
# runner
# ------------------------------------------------------------------------------------------------
@dataclass
class ReplayResult:
    """What one workflow task produced: `commands` to send, or `task_error` (the task fails, the
    workflow is untouched). `summary` is a short word for the logs."""

    commands: list[Command]
    summary: str
    task_error: str | None = None
    #: set with task_error when the code did not follow the history: {event_seq, history, code, message}
    divergence: dict[str, Any] | None = None


def _fail(msg: str) -> Command:
    return {"type": CommandType.FailWorkflow, "error": msg}


def _errtext(e: BaseException) -> str:
    if isinstance(e, ActivityError | ChildWorkflowError):
        return str(e)
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def run(
    handler: Handler | None, task: Mapping[str, Any], history: Sequence[Mapping[str, Any]] | None = None
) -> ReplayResult:
    """Run one workflow task: `handler(ctx, input)` over `history` (default: task["history"]).

    `task` carries workflow_id, workflow_type, namespace, task_queue, run_id, input, attempt, ... (the
    engine's workflow-task record). Pure: no I/O besides what the handler itself does.
    """
    hist = task.get("history") if history is None else history
    rs = _RunState(task, index(hist))
    ctx = WorkflowContext(rs)
    if handler is None:
        return ReplayResult(
            [_fail(f"no workflow handler registered for type: {task.get('workflow_type')}")],
            f"{CommandType.FailWorkflow.value} (unknown type)",
        )
    try:
        value = handler(ctx, task.get("input"))
    except (_Suspend, WorkflowTaskError, Exception) as e:
        out = ending(rs, ctx, exc=e)
    else:
        out = ending(rs, ctx, value=value)
    if isinstance(out, ReplayResult):
        return out
    res = ReplayResult(batch(rs, ctx, *out), out[1])
    div = divergence.first(hist or (), rs, res)
    if div is not None:  # the code took another path than the history: fail the task, keep the workflow
        return ReplayResult([], "task failed", div["message"], div)
    return res


def ending(
    rs: _RunState, ctx: WorkflowContext, *, exc: BaseException | None = None, value: Any = None
) -> tuple[list[Command], str] | ReplayResult:
    """How a handler run ended (`exc` raised, else `value` returned): (the last commands, summary), or a
    failed task."""
    if isinstance(exc, _Suspend):
        return exc.commands, "suspended"
    if isinstance(exc, WorkflowTaskError):
        return ReplayResult([], "task failed", rs.task_error or str(exc))
    if exc is not None:
        if rs.task_error is not None:
            return ReplayResult([], "task failed", rs.task_error)
        if rs.cancelled or isinstance(exc, Cancelled):
            return [{"type": CommandType.CancelWorkflow}], CommandType.CancelWorkflow.value
        if rs.suspended is not None:  # the handler caught our suspension and raised something else
            return rs.suspended, "suspended"
        msg = _errtext(exc)
        log.warning(
            "workflow %s (%s) failed: %s\n%s",
            ctx.workflow_id,
            ctx.workflow_type,
            msg,
            "".join(traceback.format_exception(exc)).rstrip(),
        )
        return [_fail(msg)], CommandType.FailWorkflow.value
    if rs.task_error is not None:
        return ReplayResult([], "task failed", rs.task_error)
    if rs.suspended is not None:  # a handler swallowed the suspension: still suspended
        return rs.suspended, "suspended"
    if rs.cancelled:
        return [{"type": CommandType.CancelWorkflow}], CommandType.CancelWorkflow.value
    try:
        result = freeze("result", value)
        return [{"type": CommandType.CompleteWorkflow, "result": result}], CommandType.CompleteWorkflow.value
    except TypeError as e:
        why = str(e).removeprefix("result cannot be encoded as JSON: ")
        msg = f"workflow '{ctx.workflow_type}' returned a value that cannot be encoded as JSON: {why}"
        return [_fail(msg)], CommandType.FailWorkflow.value


def batch(rs: _RunState, ctx: WorkflowContext, tail: list[Command], summary: str) -> list[Command]:
    """The task's commands: the query snapshot, the inline commands (side effects, version markers), the
    search-attribute upserts, then `tail`."""
    cmds: list[Command] = []
    # query handlers see the state this run reached; their snapshot goes first in the batch
    if rs.queries:
        values: dict[str, Any] = {}
        rs.in_query = True
        for name in sorted(rs.queries):
            try:
                v = rs.queries[name]()
            except BaseException as e:  # noqa: BLE001 - a query must never break the task
                log.debug("query '%s' of workflow %s failed: %s", name, ctx.workflow_id, _errtext(e))
                continue
            if v is None:
                continue
            try:
                values[name] = freeze(f"query '{name}'", v)
            except TypeError as e:
                log.warning("workflow %s: %s", ctx.workflow_id, e)
        rs.in_query = False
        if values:
            cmds.append({"type": CommandType.RecordSnapshot, "state": values})
    cmds.extend(rs.inline)
    if rs.upserts:
        cmds.append({"type": CommandType.UpsertSearchAttributes, "patch": dict(sorted(rs.upserts.items()))})
    cmds.extend(tail)
    return cmds
