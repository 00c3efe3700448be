"""Sticky replay state of the Python worker (issue 17): a workflow's run is kept suspended between tasks.

A replay (assay.workflow.replay.run) runs the handler from the start for every task and ends it by raising
at the first call that needs the engine. A sticky run instead runs the handler in a thread of its own;
at that call the thread parks (a condition variable) and the slot that drove it sends the commands. When
the workflow's next task comes to this worker with `history_after` equal to the seq the run has seen, only
the new events are indexed and the parked call looks at the history again: the handler goes on from where
it stopped, without re-running what it already did. The commands of each task are those a replay from
scratch would produce over the same history (tests/python/test_sticky.py checks both ways).

A run's thread ends when the handler returns or raises (the workflow completes, fails, is cancelled), and
when its state is dropped (evicted from the LRU cache, commands refused, continue-as-new, worker stop):
the parked call then raises `_Evicted`, a BaseException the handler does not catch with `except Exception`,
which unwinds it. The workflow's next task then fetches the full history and replays from scratch.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from assay.protocol import HISTORY_AFTER, HISTORY_LAST_SEQ, HISTORY_NEXT_AFTER, CommandType
from assay.workflow import divergence, history, replay
from assay.workflow.errors import WorkflowTaskError
from assay.workflow.replay import Command, Handler, ReplayResult

log = logging.getLogger("assay.workflow")

RUNNING, PARKED, DONE, EVICTED = "running", "parked", "done", "evicted"


class _Evicted(BaseException):
    """Unwinds the handler of a run whose state was dropped (never seen by `except Exception`)."""


def _seq(ev: Mapping[str, Any]) -> int:
    return int(ev.get("seq") or 0)


class StickyRun:
    """One workflow's handler, suspended in its own thread between tasks."""

    def __init__(
        self, handler: Handler, task: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
    ) -> None:
        self.workflow_id = str(task.get("workflow_id"))
        self.rs = replay._RunState(task, history.index(events))
        self.rs.park = self._park
        self.ctx = replay.WorkflowContext(self.rs)
        self.last_seq = max((_seq(e) for e in events), default=0)
        self.handler = handler
        self._first: Sequence[Mapping[str, Any]] | None = events  # for the first task's divergence check
        self._cond = threading.Condition()
        self._state = RUNNING
        self._parked: list[Command] = []
        self._end: tuple[Any, BaseException | None] | None = None
        self.thread = threading.Thread(
            target=self._main, name=f"assay-sticky-{self.workflow_id}"[:60], daemon=True
        )

    # -- the run's thread ------------------------------------------------------------------------------
    def _main(self) -> None:
        end: tuple[Any, BaseException | None]
        try:
            end = (self.handler(self.ctx, self.rs.task.get("input")), None)
        except _Evicted:
            end = (None, _Evicted())
        except BaseException as e:  # noqa: BLE001 - the driver turns it into the task's outcome
            end = (None, e)
        with self._cond:
            self._state = DONE if self._state != EVICTED else EVICTED
            self._end = end
            self._cond.notify_all()

    def _park(self, cmds: list[Command]) -> None:
        with self._cond:
            if self._state == EVICTED:
                raise _Evicted()
            self._state, self._parked = PARKED, cmds
            self._cond.notify_all()
            while self._state == PARKED:
                self._cond.wait()
            if self._state == EVICTED:
                raise _Evicted()

    # -- the driver (a worker slot) --------------------------------------------------------------------------
    @property
    def parked(self) -> bool:
        return self._state == PARKED

    def first(self) -> ReplayResult:
        """Run the first task (over the full history): like a replay, divergence check included."""
        self.thread.start()
        return self._result()

    def resume(self, task: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> ReplayResult:
        """The next task: index its new events (seq > last_seq) and let the parked call look again."""
        if not self.parked:
            raise RuntimeError(f"workflow {self.workflow_id}: the sticky run is not suspended")
        for ev in sorted(events, key=_seq):
            if _seq(ev) > self.last_seq:
                history.add(self.rs.idx, ev)
                self.last_seq = _seq(ev)
        self.rs.task = task
        with self._cond:
            self._state = RUNNING
            self._cond.notify_all()
        return self._result()

    def _result(self) -> ReplayResult:
        with self._cond:
            while self._state == RUNNING:
                self._cond.wait()
            state = self._state
        rs, ctx = self.rs, self.ctx
        out: tuple[list[Command], str] | ReplayResult
        if state == PARKED:
            out = (
                ReplayResult([], "task failed", rs.task_error)
                if rs.task_error is not None  # the handler swallowed a task failure and went on
                else (self._parked, "suspended")
            )
        else:
            value, exc = self._end if self._end is not None else (None, None)
            if exc is not None and not isinstance(exc, WorkflowTaskError | Exception):
                raise RuntimeError(f"workflow {self.workflow_id}: the handler raised {exc!r}") from exc
            out = replay.ending(rs, ctx, exc=exc) if exc is not None else replay.ending(rs, ctx, value=value)
        if isinstance(out, ReplayResult):
            return out
        res = ReplayResult(replay.batch(rs, ctx, *out), out[1])
        rs.inline = []  # sent with this task: in the history from now on
        first, self._first = self._first, None
        if first is not None:
            div = divergence.first(first, rs, res)
            if div is not None:
                return ReplayResult([], "task failed", div["message"], div)
        return res

    def keepable(self, res: ReplayResult) -> bool:
        """Whether the run goes on after this task's commands (suspended, no continue-as-new)."""
        return (
            self.parked
            and res.task_error is None
            and not any(c.get("type") == CommandType.ContinueAsNew for c in res.commands)
        )

    def evict(self) -> None:
        """Drop the run: a parked handler unwinds and its thread ends."""
        with self._cond:
            if self._state != DONE:
                self._state = EVICTED
                self._cond.notify_all()


class StickyCache:
    """The suspended runs of this worker, least recently used evicted first (ASSAY_WORKER_STICKY_CACHE)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._runs: OrderedDict[str, StickyRun] = OrderedDict()
        self._lock = threading.Lock()
        self.evicted = 0

    def take(self, workflow_id: str) -> StickyRun | None:
        """The workflow's run, removed from the cache (its task is in hand: one driver at a time)."""
        with self._lock:
            return self._runs.pop(workflow_id, None)

    def put(self, run: StickyRun) -> None:
        out: list[StickyRun] = []
        with self._lock:
            old = self._runs.pop(run.workflow_id, None)
            if old is not None and old is not run:
                out.append(old)
            self._runs[run.workflow_id] = run
            while len(self._runs) > self.capacity:
                out.append(self._runs.popitem(last=False)[1])
            self.evicted += len(out)
        for r in out:
            r.evict()

    def clear(self) -> None:
        with self._lock:
            runs, self._runs = list(self._runs.values()), OrderedDict()
        for r in runs:
            r.evict()

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, workflow_id: object) -> bool:
        return workflow_id in self._runs


#: (workflow id, after seq, up to seq or None) -> the events with after < seq (<= up to), or None (failed)
FetchEvents = Callable[[str, int, "int | None"], "list[dict[str, Any]] | None"]


class Replayer:
    """What a worker slot calls for a workflow task: the sticky run when the task continues it, else a
    full history (fetched when the task carries only part of it) replayed from scratch. `cache` None: a
    worker without sticky state (every task is a replay)."""

    def __init__(self, cache: StickyCache | None, fetch: FetchEvents) -> None:
        self.cache = cache
        self.fetch = fetch
        self.resumed = 0  # tasks that continued a suspended run (for tests and logs)
        self.fetched = 0  # tasks whose history had to be fetched

    def run(
        self, handler: Handler | None, task: Mapping[str, Any]
    ) -> tuple[ReplayResult | None, StickyRun | None]:
        """(the task's result, the run to keep once its commands are accepted). (None, None) when the
        history could not be fetched: the task is left to run out its lease and be retried."""
        wid = str(task.get("workflow_id"))
        after, nxt, last = (
            task.get(HISTORY_AFTER),
            task.get(HISTORY_NEXT_AFTER),
            task.get(HISTORY_LAST_SEQ),
        )
        events: list[dict[str, Any]] | None = list(task.get("history") or [])
        run = self.cache.take(wid) if self.cache is not None else None
        if run is not None:
            if after is not None and run.last_seq == after and run.parked and run.handler is handler:
                try:
                    res = run.resume(task, events or [])
                except BaseException:
                    run.evict()
                    raise
                if isinstance(last, int):
                    run.last_seq = last
                self.resumed += 1
                log.debug("workflow %s: sticky run continued with %d new event(s)", wid, len(events or []))
                return res, run
            run.evict()  # not the state this task continues: from scratch
        if after is not None:  # no (matching) state: the whole history
            log.debug("workflow %s: no replay state after seq %s here; fetching the full history", wid, after)
            events = self.fetch(wid, 0, last if isinstance(last, int) else None)
            self.fetched += 1
        elif nxt is not None and events is not None:  # a long history comes in pages
            rest = self.fetch(wid, int(nxt), last if isinstance(last, int) else None)
            events = None if rest is None else events + rest
            self.fetched += 1
        if events is None:
            return None, None
        if self.cache is None or handler is None or not isinstance(last, int):
            return replay.run(handler, task, events), None  # (an engine without sticky state: no last seq)
        run = StickyRun(handler, task, events)
        try:
            res = run.first()
        except BaseException:
            run.evict()
            raise
        run.last_seq = last
        return res, run

    def keep(self, run: StickyRun | None, res: ReplayResult, accepted: bool) -> None:
        """After the commands POST: keep the run for the workflow's next task, or drop it."""
        if run is None:
            return
        if accepted and self.cache is not None and run.keepable(res):
            self.cache.put(run)
        else:
            run.evict()

    def drop(self, workflow_id: str) -> None:
        """Forget a workflow's run (its thread ends)."""
        run = self.cache.take(workflow_id) if self.cache is not None else None
        if run is not None:
            run.evict()

    def close(self) -> None:
        if self.cache is not None:
            self.cache.clear()
