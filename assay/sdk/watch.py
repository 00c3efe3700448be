"""Waiting on workflows without sleeping in a loop: SSE wake-ups with a describe/poll safety net.

`ChangeFeed` holds the engine's event stream open in a daemon thread and counts the frames that
concern one workflow. `wait_for` and `follow_events` re-read the workflow when a frame arrives
(within milliseconds of the change), re-check now and then in case the best-effort stream dropped
a frame, and fall back to plain polling when the stream is unavailable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from assay.errors import WaitTimeout
from assay.protocol import (
    STREAM_RECORD,
    STREAM_WORKFLOW_ID,
    TERMINAL_EVENTS,
    TERMINAL_SSE_EVENTS,
    TERMINAL_STATUSES,
)

if TYPE_CHECKING:
    from assay.sdk.client import Client
    from assay.sdk.sse import EventStream

SAFETY_RECHECK_SECS = 5.0  # with a live stream: describe anyway this often
POLL_SECS = 0.5  # without a stream: describe this often
CONNECT_SECS = 3.0


class ChangeFeed:
    """Counts SSE frames about `workflow_id` (all frames when None) from a background thread.

    With a `workflow_id`, the stream is asked for that workflow's frames only; an engine that knows the
    filter also puts the workflow's record into its terminal frame (`record` here), so a waiter can
    return without describing it. Older engines ignore the filter: frames are filtered here too.
    """

    def __init__(
        self,
        client: Client,
        workflow_id: str | None = None,
        *,
        connect_timeout: float = CONNECT_SECS,
        namespace: str | None = None,
    ) -> None:
        self.client = client
        self.workflow_id = workflow_id
        self.namespace = namespace
        self.connect_timeout = connect_timeout
        self.state = "connecting"  # -> live -> ended | failed
        self.error: BaseException | None = None
        self.kinds: list[str] = []  # event types seen since the last take()
        self.record: dict | None = None  # the workflow record a terminal frame carried
        self._pending = 0
        self._closed = False
        self._stream: EventStream | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="assay-sse", daemon=True)
        self._thread.start()

    def _set_state(self, state: str) -> None:
        with self._cond:
            self.state = state
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            query = {}
            if self.namespace:
                query["namespace"] = self.namespace
            if self.workflow_id is not None:
                query[STREAM_WORKFLOW_ID] = self.workflow_id
            stream = self.client.transport.open_stream(
                "/events/stream", query=query or None, connect_timeout=self.connect_timeout
            )
        except BaseException as e:  # noqa: BLE001 - any failure means "no stream": fall back to polling
            self.error = e
            self._set_state("failed")
            return
        from assay.sdk.sse import EventStream

        es = EventStream(*stream)
        with self._cond:
            if self._closed:
                es.close()
                return
            self._stream = es
            self.state = "live"
            self._cond.notify_all()
        try:
            for ev in es:
                wid = ev.workflow_id
                if self.workflow_id is not None and wid is not None and wid != self.workflow_id:
                    continue
                record = None
                if self.workflow_id is not None and ev.event in TERMINAL_SSE_EVENTS:
                    obj = ev.json()
                    found = obj.get(STREAM_RECORD) if isinstance(obj, dict) else None
                    if isinstance(found, dict) and found.get("id") == self.workflow_id:
                        record = found
                with self._cond:
                    if record is not None:
                        self.record = record
                    self._pending += 1
                    self.kinds.append(ev.event)
                    self._cond.notify_all()
        except Exception as e:  # noqa: BLE001
            self.error = e
        self._set_state("ended")

    @property
    def live(self) -> bool:
        return self.state == "live"

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the stream is connected (True) or known to be unavailable (False)."""
        with self._cond:
            self._cond.wait_for(lambda: self.state != "connecting", timeout)
            return self.state == "live"

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds for a frame; True if one (or more) arrived since the last call."""
        with self._cond:
            if self._pending == 0 and timeout > 0:
                self._cond.wait_for(lambda: self._pending > 0 or self._closed, timeout)
            got = self._pending > 0
            self._pending = 0
            return got

    def take_kinds(self) -> list[str]:
        with self._cond:
            kinds, self.kinds = self.kinds, []
            return kinds

    def close(self) -> None:
        with self._cond:
            self._closed = True
            stream = self._stream
            self._cond.notify_all()
        if stream is not None:
            stream.close()

    def __enter__(self) -> ChangeFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reached(record: dict, target: str | None) -> bool:
    status = str(record.get("status", "")).upper()
    if target is not None and status == target:
        return True
    return status in TERMINAL_STATUSES


def wait_for(
    client: Client,
    workflow_id: str,
    *,
    timeout: float | None = None,
    target: str | None = None,
    on_tick: Callable[[str, float], Any] | None = None,
    tick_interval: float = 0.1,
    poll_secs: float = POLL_SECS,
) -> dict:
    """Return the workflow record once it is terminal or has status `target`.

    A terminal status other than `target` also returns (the caller compares). Raises WaitTimeout
    (exit code 2) when `timeout` seconds pass first, and the client's errors for HTTP failures.
    `on_tick(status, elapsed)` is called about every `tick_interval` seconds while waiting.
    """
    target = target.upper() if target else None
    start = time.monotonic()
    deadline = None if timeout is None else start + max(0.0, timeout)
    feed = ChangeFeed(client, workflow_id)
    try:
        feed.wait_ready(CONNECT_SECS if deadline is None else max(0.0, min(CONNECT_SECS, deadline - start)))
        # Describe only after the stream is connected: a change after this point wakes us.
        record = client.describe_workflow(workflow_id)
        next_check = time.monotonic() + (SAFETY_RECHECK_SECS if feed.live else poll_secs)
        while not _reached(record, target):
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                status = record.get("status", "?")
                raise WaitTimeout(
                    f"timeout after {timeout:g}s waiting for {workflow_id} (last status: {status})",
                    workflow_id=workflow_id,
                    last_status=status,
                )
            if on_tick is not None:
                on_tick(str(record.get("status", "")), now - start)
            pause = next_check - now
            if deadline is not None:
                pause = min(pause, deadline - now)
            if on_tick is not None:
                pause = min(pause, tick_interval)
            changed = feed.wait(max(0.0, pause))
            carried = feed.record
            if changed and carried is not None and _reached(carried, target):
                return carried  # the terminal frame carried the record: no describe round trip
            if changed or time.monotonic() >= next_check:
                record = client.describe_workflow(workflow_id)
                next_check = time.monotonic() + (SAFETY_RECHECK_SECS if feed.live else poll_secs)
        return record
    finally:
        feed.close()


def follow_events(client: Client, workflow_id: str, *, refresh_secs: float = 1.0) -> Iterator[dict]:
    """Yield the workflow's events (already stored ones first), ending after the terminal event.

    Re-fetches the log when the stream reports a change for the workflow and at least every
    `refresh_secs` (activity and timer events are not broadcast on the stream). Also ends when the
    workflow is terminal without a terminal event (engines that log nothing for terminate).
    """
    client.describe_workflow(workflow_id)  # unknown id -> NotFound
    feed = ChangeFeed(client, workflow_id)
    try:
        feed.wait_ready(CONNECT_SECS)
        last_seq = 0
        idle = 0
        while True:
            ended = False
            new = 0
            for ev in client.workflow_events(workflow_id):
                seq = ev.get("seq", 0)
                if isinstance(seq, int) and seq <= last_seq:
                    continue
                last_seq = seq if isinstance(seq, int) else last_seq
                new += 1
                yield ev
                if ev.get("event_type") in TERMINAL_EVENTS:
                    ended = True
            if ended:
                return
            kinds = feed.take_kinds()
            idle = 0 if new else idle + 1
            suspicious = any(k in TERMINAL_SSE_EVENTS for k in kinds)
            if suspicious or (idle and idle % 5 == 0):
                status = str(client.describe_workflow(workflow_id).get("status", "")).upper()
                if status in TERMINAL_STATUSES:
                    # one last read so an event appended together with the status is not lost
                    for ev in client.workflow_events(workflow_id):
                        if isinstance(ev.get("seq"), int) and ev["seq"] > last_seq:
                            last_seq = ev["seq"]
                            yield ev
                    return
            feed.wait(refresh_secs)
    finally:
        feed.close()
