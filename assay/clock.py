"""Injected time. The engine and the background loops never call time.time() directly."""

from __future__ import annotations

import threading
import time


class Clock:
    """Real wall-clock time; `wait` blocks on an Event with a timeout."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        if timeout is not None and timeout < 0:
            timeout = 0
        return event.wait(timeout)


class FakeClock(Clock):
    """A clock that only moves when told to. `wait` never sleeps: it returns the event state."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        return self.now()

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, t: float) -> None:
        with self._lock:
            self._now = float(t)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return event.is_set()
