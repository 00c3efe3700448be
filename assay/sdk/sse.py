"""A small Server-Sent Events reader (the engine's `GET /events/stream`)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO


@dataclass(frozen=True)
class SSEEvent:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        """The data parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.data)
        except ValueError:
            return None

    @property
    def workflow_id(self) -> str | None:
        obj = self.json()
        if isinstance(obj, dict) and isinstance(obj.get("workflow_id"), str):
            return obj["workflow_id"]
        return None

    @property
    def namespace(self) -> str | None:
        obj = self.json()
        if not isinstance(obj, dict):
            return None
        ns = obj.get("namespace")
        if isinstance(ns, str):
            return ns
        payload = obj.get("payload")  # upstream: {"payload": "{\"namespace\": ...}"}
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except ValueError:
                payload = None
        if isinstance(payload, dict) and isinstance(payload.get("namespace"), str):
            return payload["namespace"]
        return None


def parse_sse(lines: Iterable[bytes | str]) -> Iterator[SSEEvent]:
    """Turn raw lines into events (per the SSE spec: `event:`, `data:` (joined), `id:`, comments)."""
    event, data, last_id = "", [], None
    for raw in lines:
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        line = line.rstrip("\r\n")
        if not line:
            if data or event:
                yield SSEEvent(event or "message", "\n".join(data), last_id)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            last_id = value
    if data:
        yield SSEEvent(event or "message", "\n".join(data), last_id)


class EventStream:
    """An open SSE response. Iterate it for SSEEvent objects; `close()` works from any thread."""

    def __init__(self, resp: Any, sock: socket.socket | None = None) -> None:
        self._resp = resp
        self._sock = sock
        self.closed = False

    def _lines(self) -> Iterator[bytes]:
        fp: BinaryIO = self._resp
        while not self.closed:
            try:
                line = fp.readline()
            except (OSError, ValueError, AttributeError):
                return
            if not line:
                return
            yield line

    def __iter__(self) -> Iterator[SSEEvent]:
        return parse_sse(self._lines())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                self._sock.close()
            except OSError:
                pass

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
