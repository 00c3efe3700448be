"""Server-sent events: GET /events/stream[?namespace=]. A slow client never blocks the engine: each
subscriber has a bounded queue and misses events (counted) when it falls behind."""

from __future__ import annotations

import queue
from collections.abc import Iterator

import bottle

from assay.api.http import Router, q_str
from assay.engine import Engine
from assay.engine.notify import sse_frame
from assay.errors import ServiceUnavailable
from assay.protocol import SseEvent


def register(r: Router, engine: Engine) -> None:
    @r(
        "GET",
        "/events/stream",
        "Live engine events (text/event-stream)",
        "events",
        stream=True,
        query=[("namespace", "string", "only events of this namespace")],
        responses={200: None, 503: "Error"},
        description="Events: " + ", ".join(SseEvent) + ". Data: {event_type, workflow_id, namespace, "
        "status, ...}. Keep-alive comments when idle.",
    )
    def stream() -> Iterator[bytes] | str:
        if not engine.try_hold("sse"):
            raise ServiceUnavailable("too many open event streams; retry later", retry_after=5)
        try:
            sub = engine.broadcaster.subscribe(q_str("namespace"))
        except BaseException:
            engine.release_hold()
            raise
        bottle.response.content_type = "text/event-stream"
        bottle.response.set_header("Cache-Control", "no-cache")
        bottle.response.set_header("X-Accel-Buffering", "no")
        keepalive = engine.settings.sse_keepalive_secs

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
                        return
                    event_type, data = item
                    yield sse_frame(event_type, dict(data, payload={"namespace": data.get("namespace")}))
            finally:
                engine.broadcaster.unsubscribe(sub)
                engine.release_hold()

        return gen()
