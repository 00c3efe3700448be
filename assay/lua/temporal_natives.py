"""Natives behind the Temporal-era API (``temporal.*``, ``assay.temporal``): waiting on a workflow without
polling in a loop. A watch holds the engine's event stream (SSE) open in a daemon thread; ``wait`` blocks
until a frame about the workflow arrives, the timeout passes, or the process is asked to stop."""

from __future__ import annotations

import logging
from typing import Any

from assay.lua.natives import LuaRaise, native, opt_text, text
from assay.lua.std_http import INFLIGHT
from assay.protocol import DEFAULT_NAMESPACE

log = logging.getLogger("assay.lua.temporal")

SLICE_SECS = 0.25  # how often a wait looks at the stop flag


class Watch:
    def __init__(self, url: str, token: str | None, workflow_id: str, namespace: str | None) -> None:
        from assay.sdk.client import Client
        from assay.sdk.watch import ChangeFeed

        self.client = Client(url, token or None, namespace or DEFAULT_NAMESPACE)
        self.feed = ChangeFeed(self.client, workflow_id, namespace=namespace)
        self.live = self.feed.wait_ready(3.0)

    def wait(self, secs: float) -> bool:
        remaining = max(0.0, secs)
        while True:
            if INFLIGHT.stopping.is_set():
                return False
            step = min(SLICE_SECS, remaining)
            if self.live and self.feed.wait(step):
                return True
            if not self.live:  # no stream: plain sleep, the caller re-reads the workflow
                if INFLIGHT.stopping.wait(step):
                    return False
            remaining -= step
            if remaining <= 0:
                return False

    def close(self) -> None:
        self.feed.close()


class TemporalNatives:
    def __init__(self) -> None:
        self.watches: list[Watch] = []

    def shutdown(self) -> None:
        for w in self.watches:
            w.close()
        self.watches = []

    @native("_watch_open")
    def watch_open(
        self, url: Any = None, token: Any = None, workflow_id: Any = None, namespace: Any = None
    ) -> Watch:
        try:
            w = Watch(
                text(url, "url"), opt_text(token), text(workflow_id, "workflow_id"), opt_text(namespace)
            )
        except LuaRaise:
            raise
        except Exception as e:  # a bad URL and the like: a Lua error, never a traceback
            raise LuaRaise(f"cannot watch the workflow: {e}", bare=True) from None
        self.watches.append(w)
        return w

    @native("_watch_wait")
    def watch_wait(self, w: Any = None, secs: Any = None) -> bool:
        if not isinstance(w, Watch):
            raise LuaRaise("not a watch")
        return w.wait(float(secs) if isinstance(secs, int | float) else 1.0)

    @native("_watch_close")
    def watch_close(self, w: Any = None) -> None:
        if isinstance(w, Watch):
            w.close()
            if w in self.watches:
                self.watches.remove(w)

    @native("_stopping_now")
    def stopping_now(self) -> bool:
        return INFLIGHT.stopping.is_set()
