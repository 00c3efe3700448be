"""In-process wake-ups: long-poll waiters, background loops, and the SSE fan-out.

`Notifier` keeps a version counter per key ("wf:<queue>", "act:<queue>", "loop:timers", ...). A waiter
reads the versions it cares about, checks for work, then waits until one of them moves. A store that
spans several instances (Postgres) bridges `bump` through LISTEN/NOTIFY, so a start on instance A wakes
a worker long-polling on instance B.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from assay.protocol import TaskKind
from assay.store.base import Store

log = logging.getLogger("assay.notify")


WORK_PREFIXES = ("wf:", "act:")  # keys that stand for claimable tasks: a bump wakes ONE waiter per task


class Waiter:
    """One blocked caller of Notifier.wait. A held poll also carries what it would accept (`poll`), so a
    transaction that makes a task ready can claim it for this poll and hand it over (`tasks`)."""

    __slots__ = ("cond", "keys", "woken", "woken_by", "poll", "picked", "tasks")

    def __init__(self, cond: threading.Condition, keys: list[str], poll: Any = None) -> None:
        self.cond = cond
        self.keys = keys
        self.woken = False
        self.woken_by: str | None = None
        self.poll = poll  # a PollSpec (engine/dispatch.py) or None
        self.picked = False  # a transaction is claiming tasks for this poll; delivery follows its commit
        self.tasks: list[tuple[str, Any]] | None = None  # handed-over (kind, record) pairs

    def __bool__(self) -> bool:
        """True when the wait ended because work (or another key) moved, not on timeout or close."""
        return self.woken


class Notifier:
    """Version counters per key, with targeted wake-ups: a bump of a work key ("wf:<queue>",
    "act:<queue>") wakes one waiting poll per ready task, not every poll (no thundering herd); any
    other key (loops, worker-gone) wakes all its waiters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}
        self._waiters: dict[str, dict[Waiter, None]] = {}  # insertion-ordered: oldest first
        self._closed = False
        #: called with the keys of every local bump (the Postgres bridge publishes them)
        self.on_bump: Callable[[set[str]], None] | None = None

    def versions(self, keys: Iterable[str]) -> dict[str, int]:
        with self._lock:
            return {k: self._versions.get(k, 0) for k in keys}

    def bump(
        self, keys: Iterable[str], *, remote: bool = False, counts: dict[str, int] | None = None
    ) -> None:
        """Move the keys' versions and wake their waiters; `counts` caps the wake-ups of a work key. A
        work key whose count is 0 (its tasks were handed over or claimed eagerly in the transaction: no
        claimable work came) is left alone, version included: a poll that looked since still trusts its
        look (dispatch.py, _arrival_look / _looked_lately)."""
        keys = set(keys)
        if counts:
            keys.update(k for k, n in counts.items() if n > 0)
        if not keys:
            return
        with self._lock:
            for k in keys:
                self._versions[k] = self._versions.get(k, 0) + 1
                waiters = self._waiters.get(k)
                if waiters:
                    n = (counts or {}).get(k, 1) if k.startswith(WORK_PREFIXES) else len(waiters)
                    self._wake(k, waiters, n)
        if not remote and self.on_bump is not None:
            published = {k for k in keys if not counts or counts.get(k, 1) > 0}
            try:
                if published:
                    self.on_bump(published)
            except Exception:  # pragma: no cover - a broken bridge must not break a commit
                log.exception("notify bridge failed")

    @staticmethod
    def _wake(key: str, waiters: Iterable[Waiter], n: int, reason: str | None = None) -> None:
        for w in waiters:
            if n <= 0:
                return
            if not w.woken:
                w.woken, w.woken_by = True, reason or key
                w.cond.notify()
                n -= 1

    def pass_on(self, key: str, reason: str | None = None) -> None:
        """A woken poll that leaves without the task it was woken for hands the wake-up to another (one
        waiter on `key`; its `woken_by` is `reason` when given, else the key)."""
        with self._lock:
            self._wake(key, self._waiters.get(key) or (), 1, reason)

    def wait(self, since: dict[str, int], timeout: float, poll: Any = None) -> Waiter:
        """Block until a key in `since` moves past its version (a work key: until this waiter is the one
        woken), the timeout passes, or close(). Returns the waiter: truthy when it was woken (or a key had
        moved already), with .tasks when a transaction handed it tasks (`poll` given)."""
        with self._lock:
            w = Waiter(threading.Condition(self._lock), list(since), poll)
            if self._closed:
                return w
            if any(self._versions.get(k, 0) != v for k, v in since.items()):
                w.woken = True
                return w
            for k in w.keys:
                self._waiters.setdefault(k, {})[w] = None
            try:
                w.cond.wait_for(lambda: w.woken or self._closed, timeout=max(0.0, timeout))
                if self._closed and not w.picked:
                    w.woken = False
                while w.picked:  # a transaction is claiming for us: its outcome follows its commit
                    w.cond.wait()
            finally:
                for k in w.keys:
                    ws = self._waiters.get(k)
                    if ws is not None:
                        ws.pop(w, None)
                        if not ws:
                            del self._waiters[k]
            return w

    def pick(self, key: str, accept: Callable[[Waiter], bool]) -> Waiter | None:
        """Reserve the first waiting poll on `key` that `accept`s (oldest first) for a hand-over."""
        with self._lock:
            for w in self._waiters.get(key) or ():
                if w.poll is not None and not w.woken and accept(w):
                    w.woken, w.woken_by, w.picked = True, key, True
                    return w
        return None

    def settle(self, w: Waiter, tasks: list[tuple[str, Any]] | None) -> None:
        """End a hand-over: deliver the claimed tasks (None/empty: the claim did not happen)."""
        with self._lock:
            w.tasks = tasks or None
            w.picked = False
            w.cond.notify()

    def has_waiters(self, key: str) -> bool:
        return bool(self._waiters.get(key))

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for ws in self._waiters.values():
                for w in ws:
                    w.cond.notify()


#: how often the Broadcaster checks whether the clients of open streams hung up (see Broadcaster.reap)
REAP_SECS = 0.2


class Subscriber:
    def __init__(
        self,
        namespace: str | None,
        maxsize: int = 1000,
        workflow_id: str | None = None,
        gone: Callable[[], bool] | None = None,
    ) -> None:
        self.namespace = namespace
        self.workflow_id = workflow_id  # only this workflow's events (a waiter's stream)
        self.gone = gone  # True once the stream's client hung up (None: cannot tell)
        self.reaped = False  # ended by the Broadcaster's reaper: its client hung up
        self.queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(maxsize=maxsize)
        self.dropped = 0


class Broadcaster:
    """SSE fan-out. Publishing never blocks: a subscriber whose queue is full misses events (counted).

    A stream whose client hangs up is only noticed when something is written to it; a quiet stream
    (filtered to one workflow, or between keep-alives) would keep its server thread and its place under
    ASSAY_SSE_MAX_STREAMS for the keep-alive interval. So while streams that can tell (`gone`) are open,
    one reaper thread checks them every REAP_SECS and ends those whose client left."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: set[Subscriber] = set()
        self._reaper: threading.Thread | None = None
        #: called with (event_type, data) for every local publish (the Postgres bridge forwards them)
        self.on_publish: Callable[[str, dict[str, Any]], None] | None = None

    def subscribe(
        self,
        namespace: str | None = None,
        workflow_id: str | None = None,
        gone: Callable[[], bool] | None = None,
    ) -> Subscriber:
        sub = Subscriber(namespace, workflow_id=workflow_id, gone=gone)
        with self._lock:
            self._subs.add(sub)
            if gone is not None and self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="assay-sse-reaper", daemon=True)
                self._reaper.start()
        return sub

    def _reap(self) -> None:
        """End the streams whose clients hung up; exits when no stream that can tell is left."""
        while True:
            time.sleep(REAP_SECS)
            with self._lock:
                watched = [s for s in self._subs if s.gone is not None]
                if not watched:
                    self._reaper = None
                    return
            for sub in watched:
                try:
                    left = sub.gone is not None and sub.gone()
                except Exception:  # noqa: BLE001 - a broken check counts as gone
                    left = True
                if left:
                    sub.reaped = True
                    self.unsubscribe(sub)
                    self._end(sub)

    @staticmethod
    def _end(sub: Subscriber) -> None:
        """Make the stream's generator return (None), even when its queue is full."""
        while True:
            try:
                sub.queue.put_nowait(None)
                return
            except queue.Full:
                try:
                    sub.queue.get_nowait()
                except queue.Empty:
                    pass

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._subs)

    def publish(self, event_type: str, data: dict[str, Any], *, remote: bool = False) -> None:
        with self._lock:
            subs = list(self._subs)
        ns = data.get("namespace")
        wf_id = data.get("workflow_id")
        for sub in subs:
            if sub.namespace is not None and ns is not None and sub.namespace != ns:
                continue
            if sub.workflow_id is not None and wf_id != sub.workflow_id:
                continue
            try:
                sub.queue.put_nowait((event_type, data))
            except queue.Full:
                sub.dropped += 1
        if not remote and self.on_publish is not None:
            try:
                self.on_publish(event_type, data)
            except Exception:  # pragma: no cover
                log.exception("broadcast bridge failed")

    def close(self) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            self._end(sub)


def sse_frame(event_type: str, data: dict[str, Any]) -> bytes:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event_type}\ndata: {body}\n\n".encode()


class Effects:
    """What a transaction wants to happen once it has committed: wake-ups, hand-overs and SSE events."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.counts: dict[str, int] = {}  # work key -> tasks made ready (one wake-up each)
        self.ready: list[tuple[str, str, str, Any, str]] = []  # (kind, queue, namespace, id, name)
        self.handed: list[tuple[Waiter, list[tuple[str, Any]]]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        #: claimed workflow tasks whose history is read after the commit (engine/dispatch.py, HistoryPlan)
        self.histories: list[dict[str, Any]] = []
        #: (fn, args) to call after the commit: metric updates (assay/metrics.py), never counted on rollback
        self.after: list[tuple[Callable[..., None], tuple[Any, ...]]] = []

    def _count(self, key: str, n: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def wake_workflows(self, queue_name: str, n: int = 1) -> None:
        self._count("wf:" + queue_name, n)

    def wake_activities(self, queue_name: str, n: int = 1) -> None:
        self._count("act:" + queue_name, n)

    def ready_workflow(self, wf: dict[str, Any]) -> None:
        """The workflow's task is dispatchable: hand it to a held poll if one waits, else wake one."""
        self.ready.append(
            (TaskKind.workflow_task.value, wf["task_queue"], wf["namespace"], wf["id"], wf["workflow_type"])
        )
        self.wake_workflows(wf["task_queue"])

    def ready_activity(self, act_id: int, name: str, queue_name: str, namespace: str) -> None:
        self.ready.append((TaskKind.activity_task.value, queue_name, namespace, act_id, name))
        self.wake_activities(queue_name)

    def wake_loop(self, name: str) -> None:
        self.keys.add("loop:" + name)

    def sse(self, event_type: str, wf: dict[str, Any], **extra: Any) -> None:
        data = {
            "event_type": event_type,
            "workflow_id": wf["id"],
            "namespace": wf["namespace"],
            "status": wf.get("status"),
            "workflow_type": wf.get("workflow_type"),
        }
        if wf.get("completed_at") is not None:  # a terminal event: lets a list show the duration at once
            data["completed_at"] = wf["completed_at"]
        data.update(extra)
        self.events.append((event_type, data))

    def abort(self, notifier: Notifier) -> None:
        """The transaction did not commit: the polls picked for a hand-over go back to claiming."""
        for w, _tasks in self.handed:
            notifier.settle(w, None)
        self.handed = []

    def flush(self, notifier: Notifier, broadcaster: Broadcaster) -> None:
        for w, tasks in self.handed:
            notifier.settle(w, tasks)
        notifier.bump(self.keys, counts=self.counts)
        for event_type, data in self.events:
            broadcaster.publish(event_type, data)
        for fn, args in self.after:
            fn(*args)


def bridge(store: Store, notifier: Notifier, broadcaster: Broadcaster) -> None:
    """Connect the in-process notifier and SSE fan-out of several engine instances through the store
    (Postgres LISTEN/NOTIFY): work created on one instance wakes long-polls and SSE streams on all."""

    # NOTIFY is a database round trip: a sender thread does it, never the request that committed
    outbox: queue.Queue[tuple[str, str]] = queue.Queue(maxsize=10_000)

    def sender() -> None:
        while True:
            channel, payload = outbox.get()
            store.notify(channel, payload)

    threading.Thread(target=sender, name="assay-notify-bridge", daemon=True).start()

    def send(channel: str, payload: str) -> None:
        try:
            outbox.put_nowait((channel, payload))
        except queue.Full:  # pragma: no cover - other instances fall back to their periodic checks
            log.warning("notify bridge backlog full: dropped a %s message", channel)

    def on_bump(keys: set[str]) -> None:
        send("bump", json.dumps(sorted(keys)))

    def on_publish(event_type: str, data: dict[str, Any]) -> None:
        send("sse", json.dumps([event_type, data]))

    def on_message(channel: str, payload: str) -> None:
        try:
            value = json.loads(payload)
        except ValueError:
            return
        if channel == "bump" and isinstance(value, list):
            notifier.bump(value, remote=True)
        elif channel == "sse" and isinstance(value, list) and len(value) == 2:
            broadcaster.publish(value[0], value[1], remote=True)

    notifier.on_bump = on_bump
    broadcaster.on_publish = on_publish
    store.listen(on_message)
