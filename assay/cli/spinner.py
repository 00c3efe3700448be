"""A one-line progress spinner on stderr, only when stderr is a terminal."""

from __future__ import annotations

from typing import TextIO

UNICODE_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ASCII_FRAMES = "|/-\\"


class Spinner:
    def __init__(self, label: str, stream: TextIO, enabled: bool) -> None:
        self.label = label
        self.stream = stream
        self.enabled = enabled
        enc = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        self.frames = UNICODE_FRAMES if enc == "utf8" else ASCII_FRAMES
        self._n = 0
        self._shown = False

    def update(self, status: str, elapsed: float) -> None:
        if not self.enabled:
            return
        frame = self.frames[self._n % len(self.frames)]
        self._n += 1
        self.stream.write(f"\r\x1b[K{frame} {self.label}  {elapsed:5.1f}s  {status or '?'}")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
