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
from collections.abc import Callable, Iterable
from typing import Any

from assay.store.base import Store

log = logging.getLogger("assay.notify")


class Notifier:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._versions: dict[str, int] = {}
        self._closed = False
        #: called with the keys of every local bump (the Postgres bridge publishes them)
        self.on_bump: Callable[[set[str]], None] | None = None

    def versions(self, keys: Iterable[str]) -> dict[str, int]:
        with self._cond:
            return {k: self._versions.get(k, 0) for k in keys}

    def bump(self, keys: Iterable[str], *, remote: bool = False) -> None:
        keys = set(keys)
        if not keys:
            return
        with self._cond:
            for k in keys:
                self._versions[k] = self._versions.get(k, 0) + 1
            self._cond.notify_all()
        if not remote and self.on_bump is not None:
            try:
                self.on_bump(keys)
            except Exception:  # pragma: no cover - a broken bridge must not break a commit
                log.exception("notify bridge failed")

    def wait(self, since: dict[str, int], timeout: float) -> bool:
        """Block until a key in `since` moved past its version, the timeout passes, or close(). True if moved."""
        with self._cond:

            def moved() -> bool:
                return self._closed or any(self._versions.get(k, 0) != v for k, v in since.items())

            return self._cond.wait_for(moved, timeout=max(0.0, timeout)) and not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Subscriber:
    def __init__(self, namespace: str | None, maxsize: int = 1000) -> None:
        self.namespace = namespace
        self.queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(maxsize=maxsize)
        self.dropped = 0


class Broadcaster:
    """SSE fan-out. Publishing never blocks: a subscriber whose queue is full misses events (counted)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: set[Subscriber] = set()
        #: called with (event_type, data) for every local publish (the Postgres bridge forwards them)
        self.on_publish: Callable[[str, dict[str, Any]], None] | None = None

    def subscribe(self, namespace: str | None = None) -> Subscriber:
        sub = Subscriber(namespace)
        with self._lock:
            self._subs.add(sub)
        return sub

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
        for sub in subs:
            if sub.namespace is not None and ns is not None and sub.namespace != ns:
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
            try:
                sub.queue.put_nowait(None)
            except queue.Full:
                pass


def sse_frame(event_type: str, data: dict[str, Any]) -> bytes:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event_type}\ndata: {body}\n\n".encode()


class Effects:
    """What a transaction wants to happen once it has committed: wake-ups and SSE events."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.events: list[tuple[str, dict[str, Any]]] = []
        #: (fn, args) to call after the commit: metric updates (assay/metrics.py), never counted on rollback
        self.after: list[tuple[Callable[..., None], tuple[Any, ...]]] = []

    def wake_workflows(self, queue_name: str) -> None:
        self.keys.add("wf:" + queue_name)

    def wake_activities(self, queue_name: str) -> None:
        self.keys.add("act:" + queue_name)

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

    def flush(self, notifier: Notifier, broadcaster: Broadcaster) -> None:
        notifier.bump(self.keys)
        for event_type, data in self.events:
            broadcaster.publish(event_type, data)
        for fn, args in self.after:
            fn(*args)


def bridge(store: Store, notifier: Notifier, broadcaster: Broadcaster) -> None:
    """Connect the in-process notifier and SSE fan-out of several engine instances through the store
    (Postgres LISTEN/NOTIFY): work created on one instance wakes long-polls and SSE streams on all."""

    def on_bump(keys: set[str]) -> None:
        store.notify("bump", json.dumps(sorted(keys)))

    def on_publish(event_type: str, data: dict[str, Any]) -> None:
        store.notify("sse", json.dumps([event_type, data]))

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
