"""Server-sent events: GET /events/stream[?namespace=]. A slow client never blocks the engine: each
subscriber has a bounded queue and misses events (counted) when it falls behind."""

from __future__ import annotations

import queue
from collections.abc import Iterator

import bottle

from assay import records
from assay.api.http import Router, q_str
from assay.engine import Engine
from assay.engine.notify import sse_frame
from assay.errors import AssayError, ServiceUnavailable
from assay.protocol import STREAM_RECORD, STREAM_WORKFLOW_ID, TERMINAL_SSE_EVENTS, SseEvent

SSE_BATCH = 64  # frames joined into one write when a stream has fallen behind


def hung_up() -> BaseException:
    """What a stream raises when the reaper found its client gone: the server's own "client
    disconnected" error, so the server ends the response the way it does when a write fails (and logs
    it as such, once: a routine hang-up, at debug)."""
    try:
        from waitress.channel import ClientDisconnected
    except ImportError:  # pragma: no cover - another server: any connection error will do
        return ConnectionResetError("client hung up")
    return ClientDisconnected()


def register(r: Router, engine: Engine) -> None:
    @r(
        "GET",
        "/events/stream",
        "Live engine events (text/event-stream)",
        "events",
        stream=True,
        query=[
            ("namespace", "string", "only events of this namespace"),
            (
                STREAM_WORKFLOW_ID,
                "string",
                "only this workflow's events; its terminal event then carries the workflow's record "
                f"(as GET /workflows/{{id}} returns it) in `{STREAM_RECORD}`",
            ),
        ],
        responses={200: None, 503: "Error"},
        description="Events: " + ", ".join(SseEvent) + ". Data: {event_type, workflow_id, namespace, "
        f"status, ...}}. Keep-alive comments when idle. With `?{STREAM_WORKFLOW_ID}=`, the terminal event "
        f"also carries `{STREAM_RECORD}`: the workflow record, read after the commit (a waiter returns it "
        "without another request).",
    )
    def stream() -> Iterator[bytes] | str:
        only = q_str(STREAM_WORKFLOW_ID)
        if not engine.try_hold("sse"):
            raise ServiceUnavailable("too many open event streams; retry later", retry_after=5)
        try:
            check = bottle.request.environ.get("waitress.client_disconnected")
            gone = (lambda: bool(check())) if callable(check) else None
            sub = engine.broadcaster.subscribe(q_str("namespace"), workflow_id=only, gone=gone)
        except BaseException:
            engine.release_hold()
            raise
        bottle.response.content_type = "text/event-stream"
        bottle.response.set_header("Cache-Control", "no-cache")
        bottle.response.set_header("X-Accel-Buffering", "no")
        keepalive = engine.settings.sse_keepalive_secs

        def frame(item: tuple[str, dict]) -> bytes:
            event_type, data = item
            data = dict(data, payload={"namespace": data.get("namespace")})
            if only is not None and event_type in TERMINAL_SSE_EVENTS:
                data[STREAM_RECORD] = terminal_record(only)
            return sse_frame(event_type, data)

        def gen() -> Iterator[bytes]:
            try:
                yield b": connected\nretry: 2000\n\n"
                while not engine.notifier.closed:
                    try:
                        item = sub.queue.get(timeout=keepalive)
                    except queue.Empty:
                        yield b": keep-alive\n\n"
                        continue
                    if item is None:
                        if sub.reaped:
                            raise hung_up()
                        return
                    # what else is queued goes out in the same write: one send for a burst, not one each
                    frames = [frame(item)]
                    while len(frames) < SSE_BATCH:
                        try:
                            item = sub.queue.get_nowait()
                        except queue.Empty:
                            break
                        if item is None:
                            if sub.reaped:
                                raise hung_up()
                            yield b"".join(frames)
                            return
                        frames.append(frame(item))
                    yield b"".join(frames)
            finally:
                engine.broadcaster.unsubscribe(sub)
                engine.release_hold()

        return gen()

    def terminal_record(wf_id: str) -> dict | None:
        """The record a describe would return now (the terminal commit has happened: it is in it)."""
        try:
            return records.workflow(engine.get_workflow(wf_id))
        except AssayError:  # gone meanwhile (archived, purged): the waiter describes it itself
            return None
