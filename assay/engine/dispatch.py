"""Getting tasks to workers: polls (long-poll, batch claims), hand-over to a held poll, eager dispatch.

- A poll first looks for work with a read; only when there is some does it open a write transaction
  (an empty poll writes nothing).
- A held poll registers what it accepts with the notifier. A transaction that makes a task ready
  (start, ScheduleActivity, an activity's completion, a signal, a timer, ...) claims it for the oldest
  such poll before it commits, fenced like any claim; the poll answers with it after the commit, and
  nobody else is woken for it. A task nobody takes that way wakes ONE held poll.
- The history a workflow task carries is read AFTER the claim commits, in a read transaction, bounded by
  the workflow's last seq at the claim (`HistoryPlan`): no history read holds the writer lock. A sticky
  worker that holds the workflow's replay state gets only the events after what it saw (`history_after`);
  any other sticky worker gets the full history, paged; a non-sticky worker gets the full history, as
  upstream (docs/design.md, "Workflow task histories and sticky workers").
- Eager dispatch (opt-in fields): a commands batch can claim the activities it schedules for the calling
  worker (when it serves them and says it has free slots) and the workflow's next task; an activity's
  completion can claim the workflow task it made ready. All in the transaction of the request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assay.engine.core import EngineCore, Service
from assay.engine.deploy import record_build_id
from assay.engine.notify import Effects, Waiter
from assay.engine.tasks import ResultDiscarded
from assay.errors import AssayError
from assay.protocol import (
    DEFAULT_NAMESPACE,
    HISTORY_AFTER,
    HISTORY_LAST_SEQ,
    HISTORY_NEXT_AFTER,
    HISTORY_PAGE_MAX,
    SseEvent,
    TaskKind,
    WorkflowStatus,
)
from assay.store.base import Record, Tx

log = logging.getLogger("assay.engine.dispatch")

WF, ACT = TaskKind.workflow_task.value, TaskKind.activity_task.value
KEY_PREFIX = {WF: "wf:", ACT: "act:"}
MAX_TASKS = 100  # cap on a batch poll's max_tasks
#: a held poll with nothing to wake it still looks at the store this often (tasks that become ready with
#: time alone, e.g. a retry's backoff); the polls of one queue share the look
RECHECK_SECS = 1.0
#: how long a poll trusts the namespace an earlier poll of the same worker read (it skips its arrival look
#: only with one). A registration here forgets it; one on another instance under another namespace with
#: the same worker id is seen after this
WORKER_NAMESPACE_TTL_SECS = 600.0
#: the longest a held poll that is not its queue's lookout sleeps when nothing wakes it
MAX_TICK_SECS = 30.0
#: `woken_by` of a held poll woken only to take over its queue's safety look from a poll that left (no work
#: came with it: it looks at the store only when that look is due)
LOOKOUT = "lookout"


class Claimed(list[tuple[str, Record]]):
    """The (kind, task) pairs a poll claimed; `retry_after` (seconds) when the poll could not be held."""

    def __init__(self, items: Any = (), retry_after: float | None = None) -> None:
        super().__init__(items)
        self.retry_after = retry_after


#: key of a claimed workflow task's record holding its HistoryPlan until its history is read
PLAN = "_history_plan"


@dataclass(frozen=True)
class HistoryPlan:
    """Which events a claimed workflow task carries, decided in the claim's transaction and read after
    its commit: seq in (after, last], the first `limit` of them (None: all)."""

    after: int | None  # the sticky worker's cached seq (a partial history), or None (full history)
    last: int  # the workflow's last event seq at the claim
    sticky: bool  # the worker is sticky: the task carries history_last_seq (and maybe history_next_after)

    @property
    def limit(self) -> int | None:
        return HISTORY_PAGE_MAX if self.sticky and self.after is None else None


#: key of a claimed workflow task's record holding the events of its plan that the claiming transaction
#: wrote itself (all of them: e.g. a start's WorkflowStarted handed over at once): no read needed
WRITTEN = "_history_written"


def load_histories(store: Any, recs: list[Record]) -> None:
    """Read the histories of claimed workflow tasks (one read transaction, after the claim committed;
    none for a task whose claiming transaction wrote its whole history itself)."""
    todo = [r for r in recs if PLAN in r]
    for rec in todo:
        if WRITTEN in rec:
            _set_history(rec, rec.pop(PLAN), rec.pop(WRITTEN))
    todo = [r for r in todo if PLAN in r]
    if not todo:
        return
    with store.read() as rtx:
        for rec in todo:
            plan: HistoryPlan = rec.pop(PLAN)
            _set_history(
                rec, plan, rtx.list_events(rec["id"], plan.after or 0, upto=plan.last, limit=plan.limit)
            )


def _set_history(rec: Record, plan: HistoryPlan, events: list[Record]) -> None:
    rec["history"] = events
    if not plan.sticky:
        return
    rec[HISTORY_LAST_SEQ] = plan.last
    if plan.after is not None:
        rec[HISTORY_AFTER] = plan.after
    elif events and events[-1]["seq"] < plan.last:
        rec[HISTORY_NEXT_AFTER] = events[-1]["seq"]


def _work_versions(versions: dict[str, int], work_keys: list[str]) -> tuple[int, ...]:
    """The versions of a poll's work keys in one order (a combined poll alternates the order of its kinds:
    a look by one turn must be recognised by the next)."""
    return tuple(versions[k] for k in sorted(work_keys))


@dataclass
class PollSpec:
    """What a held poll accepts (a transaction checks it before handing a task over)."""

    queue: str
    namespace: str | None
    worker_id: str
    kinds: tuple[str, ...]
    gone: Callable[[], bool] | None = None


class DispatchOps(Service):
    """Polls, claims, hand-over and eager dispatch (see the module docstring). `tasks` is the TaskOps
    service (the departed-worker set, activity completion/failure for report_activities)."""

    def __init__(self, core: EngineCore, tasks: Any) -> None:
        super().__init__(core)
        self.tasks = tasks
        #: (queue, namespace, kinds) -> the held poll (its PollSpec) that does that queue's safety look
        self._lookouts: dict[tuple[str, str | None, tuple[str, ...]], PollSpec] = {}
        #: (queue, namespace, kinds) -> (when, work versions) of the last look that found nothing
        self._last_look: dict[tuple[str, str | None, tuple[str, ...]], tuple[float, tuple[int, ...]]] = {}
        #: (time.monotonic) until when some held poll may sleep longer than RECHECK_SECS (see _tick)
        self._long_ticks_until = 0.0

    def claim_workflow_task(self, queue: str, worker_id: str) -> Record | None:
        return self.claim_task(queue, worker_id, (WF,))[1]

    def claim_activity_task(self, queue: str, worker_id: str) -> Record | None:
        return self.claim_task(queue, worker_id, (ACT,))[1]

    # --- claims -----------------------------------------------------------------------------------
    def claim_task(
        self, queue: str, worker_id: str, kinds: tuple[str, ...] = (WF, ACT)
    ) -> tuple[str | None, Record | None]:
        got = self.claim_tasks(queue, worker_id, kinds, 1)
        return got[0] if got else (None, None)

    def claim_tasks(
        self,
        queue: str,
        worker_id: str,
        kinds: tuple[str, ...] = (WF, ACT),
        max_tasks: int = 1,
        *,
        spec: PollSpec | None = None,
    ) -> list[tuple[str, Record]]:
        """Claim up to max_tasks tasks (kinds tried in order) in one transaction; a read first, so an
        empty poll opens no write transaction. `spec` (a held poll's) caches the worker's namespace."""
        now = self.now()
        namespace: str | None
        with self.store.read() as rtx:
            if spec is not None and spec.namespace is not None:
                namespace = spec.namespace
            else:
                namespace = self._worker_namespace(rtx, worker_id, remember=spec is not None)
                if spec is not None:
                    spec.namespace = namespace
            ready = [
                k
                for k in kinds
                if (rtx.has_ready_workflow_task if k == WF else rtx.has_ready_activity)(queue, namespace, now)
            ]
        if not ready:
            return []
        out: list[tuple[str, Record]] = []
        with self._tx() as (tx, fx):
            now = self.now()
            for kind in ready:
                left = max_tasks - len(out)
                if left <= 0:
                    break
                if kind == WF:
                    for wf in tx.claim_workflow_tasks(queue, namespace, worker_id, now, left):
                        out.append((WF, self._prepare(tx, fx, WF, wf)))  # history: after the commit
                else:
                    for act in tx.claim_activities(queue, namespace, worker_id, now, left):
                        out.append((ACT, self._prepare(tx, fx, ACT, act, namespace)))
        return out

    def _prepare(
        self,
        tx: Tx,
        fx: Effects,
        kind: str,
        rec: Record,
        namespace: str | None = None,
        *,
        handed: bool = False,
    ) -> Record:
        """What a claimed task needs before it is handed out (SSE; a timeout wake-up; metrics; for a
        workflow task the plan of its history, read after the commit: by the transaction's thread
        (fx.histories, see EngineCore.tx), or for a hand-over (`handed`) by the held poll's thread)."""
        self.metrics.task_claimed(
            fx, kind, rec, self.now(), namespace if kind == ACT else rec.get("namespace")
        )
        if kind == WF:
            if rec["previous_status"] == WorkflowStatus.PENDING:
                fx.sse(SseEvent.workflow_running, rec)
            worker = self._worker(tx, rec["dispatch_claimed_by"])
            record_build_id(tx, rec, rec["dispatch_claimed_by"], worker)
            rec[PLAN] = plan = self._plan_history(tx, rec, worker)
            written = tx.written_events(rec["id"], plan.after or 0, plan.last)
            if written is not None:
                rec[WRITTEN] = written if plan.limit is None else written[: plan.limit]
            if not handed:
                fx.histories.append(rec)
        else:
            limits = [x for x in (rec["start_to_close_secs"], rec["heartbeat_timeout_secs"]) if x is not None]
            if rec.get("deadline_at") is not None:
                limits.append(rec["deadline_at"] - self.now())  # schedule_to_close
            if limits and min(limits) < self.settings.loop_max_sleep_secs:
                fx.wake_loop("activities")  # its deadline is sooner than the loop's next look
        return rec

    @staticmethod
    def _plan_history(tx: Tx, rec: Record, worker: Record | None) -> HistoryPlan:
        """Decide the history of a workflow task claimed for `worker`, and record who now holds the
        workflow's replay state (sticky_worker_id / sticky_seq; no write for a non-sticky worker when no
        sticky worker held it)."""
        wid = rec["dispatch_claimed_by"]
        sticky = bool(worker and worker.get("sticky"))
        last = int(rec.get("last_seq") or 0)
        after = None
        if sticky and rec.get("sticky_worker_id") == wid and rec.get("sticky_seq") is not None:
            after = min(int(rec["sticky_seq"]), last)
        if sticky:
            tx.update_workflow(rec["id"], sticky_worker_id=wid, sticky_seq=last)
        elif rec.get("sticky_worker_id") is not None or rec.get("sticky_seq") is not None:
            tx.update_workflow(rec["id"], sticky_worker_id=None, sticky_seq=None)
        return HistoryPlan(after, last, sticky)

    def load_histories(self, recs: list[Record]) -> None:
        load_histories(self.store, recs)

    def _worker_namespace(self, tx: Tx, worker_id: str, *, remember: bool = False) -> str:
        """The namespace a worker claims from: its registered one; for an id the engine does not know
        (never registered, or reaped), the default namespace, never every namespace. `remember`: a
        registered worker's is kept for its later polls (which may then skip their look, _arrival_look)."""
        w = self._worker(tx, worker_id)
        if not w:
            return DEFAULT_NAMESPACE
        if remember:
            self.tasks.remember_namespace(worker_id, str(w["namespace"]))
        return str(w["namespace"])

    # --- polls ------------------------------------------------------------------------------------
    def poll(
        self,
        queue: str,
        worker_id: str,
        wait_secs: float = 0.0,
        *,
        workflows: bool = True,
        activities: bool = True,
        gone: Callable[[], bool] | None = None,
    ) -> tuple[str | None, Record | None]:
        got = self.poll_tasks(
            queue, worker_id, wait_secs, workflows=workflows, activities=activities, gone=gone
        )
        return got[0] if got else (None, None)

    def poll_tasks(
        self,
        queue: str,
        worker_id: str,
        wait_secs: float = 0.0,
        *,
        workflows: bool = True,
        activities: bool = True,
        gone: Callable[[], bool] | None = None,
        max_tasks: int = 1,
    ) -> Claimed:
        """Claim up to max_tasks tasks, holding up to `wait_secs` for one to arrive.

        `gone()` tells whether the caller hung up: a held poll whose client disconnected (or whose worker
        deregistered) returns without claiming, so no task is handed to a worker that is not there.
        A poll the server cannot hold (no thread left to hold it on) answers at once, empty, with
        `.retry_after` set: when to come back.

        While held, the poll looks at the store again only when a key it waits on moved (its queue's
        work, from this instance or another through the bridge) or, as a safety net for tasks that
        become ready with time alone, once a RECHECK_SECS per queue: polls of the same queue share that
        look (an idle poll opens no transaction at all, and N idle polls of a queue cost one read)."""
        self.core.note_alive(worker_id)  # a poll is a heartbeat (POLL_IS_HEARTBEAT), written in batches
        kinds = ([WF] if workflows else []) + ([ACT] if activities else [])
        if len(kinds) == 2 and next(self.tasks._poll_turn) % 2:
            kinds.reverse()  # a combined poll alternates: a stream of workflow tasks cannot starve activities
        work_keys = [KEY_PREFIX[k] + queue for k in kinds]
        keys = [*work_keys, "worker-gone:" + worker_id]
        clock = self.clock
        deadline = clock.monotonic() + max(0.0, min(wait_secs, self.settings.long_poll_max_secs))
        spec = PollSpec(queue, None, worker_id, tuple(kinds), gone)
        held = False
        woken_by: str | None = None
        look: bool | None = None  # look at the store on this turn (None: the arrival, _arrival_look)
        try:
            while True:
                since = self.notifier.versions(keys)
                if (gone is not None and gone()) or worker_id in self.tasks._departed:
                    break
                if look is None:
                    look = self._arrival_look(spec, wait_secs, since, work_keys)
                if look:
                    order = tuple(kinds)
                    if woken_by is not None:  # the kind we were woken for first
                        order = tuple(sorted(kinds, key=lambda k: KEY_PREFIX[k] + queue != woken_by))
                    got = self.claim_tasks(queue, worker_id, order, max_tasks, spec=spec)
                    if got:
                        if woken_by is not None and not any(
                            KEY_PREFIX[k] + queue == woken_by for k, _ in got
                        ):
                            self.notifier.pass_on(woken_by)
                        return Claimed(got)
                    self._looked(spec, since, work_keys)
                remaining = deadline - clock.monotonic()
                if remaining <= 0 or self.notifier.closed:
                    return Claimed()
                if not held:
                    held = self.core.try_hold("poll")
                    if not held:  # only the reserve is left: answer at once, and say when to come back
                        return Claimed(retry_after=self.core.retry_after(wait_secs))
                w = self.notifier.wait(since, min(remaining, self._tick(spec)), spec)
                woken_by = None
                if w.tasks:  # handed over by another transaction: read the histories here
                    self.load_histories([t for k, t in w.tasks if k == WF])
                    return Claimed(w.tasks)
                if w.woken and w.woken_by and w.woken_by.startswith(("wf:", "act:")):
                    woken_by = w.woken_by
                look = (bool(w) and w.woken_by != LOOKOUT) or not self._looked_lately(spec, work_keys)
            if woken_by is not None:  # leaving without the task we were woken for
                self.notifier.pass_on(woken_by)
            return Claimed()
        finally:
            if held:
                self.core.release_hold()
                key = self._look_key(spec)
                if self._lookouts.get(key) is spec:  # another held poll of the queue takes the lookout over
                    del self._lookouts[key]
                    # woken for it only when some held poll may sleep longer than RECHECK_SECS; otherwise
                    # the first to wake takes it over (no thread switch on the busy path of a hand-over)
                    if not self.notifier.closed and time.monotonic() < self._long_ticks_until:
                        self.notifier.pass_on(work_keys[0], LOOKOUT)

    def _arrival_look(
        self, spec: PollSpec, wait_secs: float, since: dict[str, int], work_keys: list[str]
    ) -> bool:
        """Whether an arriving poll looks at the store. A long poll whose queue some poll found empty less
        than RECHECK_SECS ago, with no work come since (the work keys' versions, bumped by every commit
        here and through the bridge by every other instance), is held at once: a thousand idle workers
        coming back every wait_secs cost no store read each. It needs its worker's namespace (what a
        hand-over checks) from an earlier poll; a poll without wait always looks."""
        if wait_secs <= 0:
            return True
        known = self.tasks.worker_namespaces.get(spec.worker_id)
        if known is None or self.clock.monotonic() - known[1] > WORKER_NAMESPACE_TTL_SECS:
            return True
        spec.namespace = known[0]
        seen = self._last_look.get(self._look_key(spec))
        if (
            seen is not None
            and self.clock.monotonic() - seen[0] < RECHECK_SECS
            and seen[1] == _work_versions(since, work_keys)  # the versions this poll will wait on
        ):
            return False
        spec.namespace = None  # the look reads it again
        return True

    def _tick(self, spec: PollSpec) -> float:
        """How long a held poll sleeps when nothing wakes it. One held poll per queue (the lookout) wakes
        every RECHECK_SECS for the shared safety look; the others wake only to notice a hung-up client
        and free its thread: every second while few polls are held, rarer as more are (a held poll ends
        at its wait_secs anyway), so a thousand idle polls cost a few wake-ups a second, not a thousand."""
        key = self._look_key(spec)
        if self._lookouts.setdefault(key, spec) is spec:
            return RECHECK_SECS
        tick = min(MAX_TICK_SECS, max(RECHECK_SECS, self.core.held_requests / 20))
        if tick > RECHECK_SECS:  # (real time: the notifier's waits are)
            self._long_ticks_until = max(self._long_ticks_until, time.monotonic() + tick)
        return tick

    def _look_key(self, spec: PollSpec) -> tuple[str, str | None, tuple[str, ...]]:
        return (spec.queue, spec.namespace, tuple(sorted(spec.kinds)))

    def _looked(self, spec: PollSpec, since: dict[str, int], work_keys: list[str]) -> None:
        """Remember that a look at the store (with these work versions) found nothing for this queue."""
        self._last_look[self._look_key(spec)] = (
            self.clock.monotonic(),
            _work_versions(since, work_keys),
        )

    def _looked_lately(self, spec: PollSpec, work_keys: list[str]) -> bool:
        """Some poll of this queue found nothing less than RECHECK_SECS ago, and no work came since."""
        seen = self._last_look.get(self._look_key(spec))
        if seen is None:
            return False
        at, versions = seen
        now = self.notifier.versions(work_keys)
        return self.clock.monotonic() - at < RECHECK_SECS and versions == _work_versions(now, work_keys)

    # --- hand-over (inside the transaction that made tasks ready) ---------------------------------------
    def _hand_over(self, tx: Tx, fx: Effects) -> None:
        ready, fx.ready = fx.ready, []
        now = None
        for kind, queue, namespace, task_id, _name in ready:
            key = KEY_PREFIX[kind] + queue
            if not self.notifier.has_waiters(key):
                continue

            def accept(w: Waiter, kind: str = kind, namespace: str = namespace) -> bool:
                p: PollSpec = w.poll
                if kind not in p.kinds or p.worker_id in self.tasks._departed:
                    return False
                if p.namespace is not None and p.namespace != namespace:
                    return False
                try:
                    return not (p.gone is not None and p.gone())
                except Exception:  # pragma: no cover - a broken check must not fail the transaction
                    return False

            w = self.notifier.pick(key, accept)
            if w is None:
                continue
            now = now if now is not None else self.now()
            rec = self._claim_by_id(tx, fx, kind, task_id, w.poll.worker_id, now, namespace, handed=True)
            if rec is None:
                self.notifier.settle(w, None)  # nothing to hand over: it looks again itself
                continue
            fx.handed.append((w, [(kind, rec)]))
            fx.counts[key] = fx.counts.get(key, 1) - 1

    def _claim_by_id(
        self,
        tx: Tx,
        fx: Effects,
        kind: str,
        task_id: Any,
        worker_id: str,
        now: float,
        namespace: str | None = None,
        *,
        handed: bool = False,
    ) -> Record | None:
        if kind == WF:
            rec = tx.claim_workflow_by_id(task_id, worker_id, now)
        else:
            rec = tx.claim_activity_by_id(task_id, worker_id, now)
        return None if rec is None else self._prepare(tx, fx, kind, rec, namespace, handed=handed)

    # --- eager dispatch (opt-in) -------------------------------------------------------------------
    def eager_claim(
        self, tx: Tx, fx: Effects, worker_id: str, *, activities: int = 0, workflow_ids: tuple[str, ...] = ()
    ) -> tuple[list[Record], list[Record]]:
        """Claim for the calling worker tasks this transaction made ready: up to `activities` activity
        tasks, and the workflow tasks of `workflow_ids`, when the worker serves them (registered name,
        same queue and namespace). Returns (activity tasks, workflow tasks)."""
        if activities <= 0 and not workflow_ids:
            return [], []
        worker = self._worker(tx, worker_id)
        if worker is None:
            return [], []
        acts: set[str] = set(worker.get("activities") or [])
        wfs: set[str] = set(worker.get("workflows") or [])
        got: dict[str, list[Record]] = {WF: [], ACT: []}
        keep = []
        now = self.now()
        for item in fx.ready:
            kind, queue, namespace, task_id, name = item
            wanted = (
                (kind == ACT and name in acts and len(got[ACT]) < activities)
                or (kind == WF and name in wfs and task_id in workflow_ids)
            ) and (queue, namespace) == (worker["task_queue"], worker["namespace"])
            if wanted:
                rec = self._claim_by_id(tx, fx, kind, task_id, worker_id, now, namespace)
                if rec is not None:
                    got[kind].append(rec)
                    key = KEY_PREFIX[kind] + queue
                    fx.counts[key] = fx.counts.get(key, 1) - 1
                    continue
            keep.append(item)
        fx.ready = keep
        return got[ACT], got[WF]

    # --- several activity results in one request (opt-in) ------------------------------------------------
    def report_activities(
        self, worker_id: str, results: list[dict[str, Any]], *, eager_workflow_task: bool = False
    ) -> dict[str, Any]:
        """Complete or fail several activities in ONE transaction. Each item is applied on its own (a
        404/409 for one changes nothing for it and does not affect the others). Items: {"id", "result"}
        or {"id", "error", "non_retryable"}. With eager_workflow_task, the workflow tasks they made ready
        are claimed for this worker (as a single complete would)."""
        out: list[dict[str, Any]] = []
        wf_ids: list[str] = []
        with self._tx() as (tx, fx):
            for item in results:
                try:
                    with tx.savepoint():
                        if item.get("error") is not None:
                            wf = self.tasks._fail_in(
                                tx, fx, item["id"], item["error"], worker_id, item.get("non_retryable", False)
                            )
                        else:
                            wf = self.tasks._complete_in(tx, fx, item["id"], item.get("result"), worker_id)
                    out.append({"id": item["id"], "status": 200})
                    if wf["id"] not in wf_ids:
                        wf_ids.append(wf["id"])
                except AssayError as e:
                    if isinstance(e, ResultDiscarded):  # its savepoint rolled back; the cancel stays
                        self.tasks.discard(tx, item["id"])
                    out.append({"id": item["id"], "status": e.status, "error": e.message})
            wfs: list[Record] = []
            if eager_workflow_task and wf_ids:
                _acts, wfs = self.eager_claim(tx, fx, worker_id, workflow_ids=tuple(wf_ids))
        return {"results": out, "workflow_tasks": wfs}
