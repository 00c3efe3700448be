"""waitress's connection loop, with persistent registrations: an idle connection costs nothing per turn.

waitress (wasyncore.poll2) builds a new poll set on every turn of its main loop: it asks every open
connection `readable()` and `writable()` (two Python calls each), registers them all, polls, and throws
the set away. With a thousand workers' connections open that is thousands of calls per turn, and every
request turns the loop several times (read, the task's write, the task's end).

This loop keeps waitress (its dispatchers, channels, tasks and thread pool are unchanged) and replaces
only the poll function. The kernel keeps the registrations (epoll where available, else poll), the loop
remembers each connection's interest flags, and it asks readable()/writable() again only of a connection
whose answer can have changed:

- one that had an event on this turn (it read, wrote or closed);
- one a task thread worked on: a task thread wakes the loop through the server's `pull_trigger`, which
  here first notes the channel the thread is serving (a thread serves one channel at a time);
- a new one (the socket map is a dict that reports its changes);
- one whose delayed answer (`answer_at`, see assay/server.py) is due: the poll's timeout is cut to the
  earliest such time, so a delayed answer leaves on time instead of at the next whole second;
- every connection right after waitress's maintenance ran (every `cleanup_interval`): it may have marked
  idle ones to close (`channel_timeout`).

Any other dispatcher in the map (the listening socket, whose readable() runs that maintenance and the
connection limit; the trigger pipe) is asked on every turn, as waitress does: there are two or three.

A connection interested in nothing is not registered at all (as in poll2, where it is left out of the
set): epoll would otherwise report a hang-up on it on every turn.
"""

from __future__ import annotations

import heapq
import itertools
import select
import threading
import time
from collections import deque
from typing import Any

from waitress import wasyncore  # type: ignore[import-untyped]
from waitress.channel import HTTPChannel  # type: ignore[import-untyped]

_IN = select.POLLIN | select.POLLPRI
_OUT = select.POLLOUT

#: the channel the current task thread is serving (set by TrackedChannel.service)
_serving = threading.local()


def available() -> bool:
    """True where this loop can run (epoll or poll); elsewhere waitress's own loop is kept."""
    return hasattr(select, "epoll") or hasattr(select, "poll")


class _Poller:
    """epoll or poll behind one interface; `poll(timeout)` takes seconds (None: no timeout)."""

    def __init__(self) -> None:
        if hasattr(select, "epoll"):
            self._epoll: Any = select.epoll()
            self._poll: Any = None
        else:  # pragma: no cover - not Linux
            self._epoll = None
            self._poll = select.poll()

    def register(self, fd: int, flags: int) -> None:
        p = self._epoll or self._poll
        try:
            p.register(fd, flags)
        except FileExistsError:  # a stale registration of a reused descriptor number
            p.modify(fd, flags)

    def modify(self, fd: int, flags: int) -> None:
        p = self._epoll or self._poll
        try:
            p.modify(fd, flags)
        except FileNotFoundError:  # the kernel dropped it (the descriptor was closed and reused)
            p.register(fd, flags)

    def unregister(self, fd: int) -> None:
        try:
            (self._epoll or self._poll).unregister(fd)
        except (OSError, KeyError, ValueError):  # already gone with its descriptor
            pass

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        if self._epoll is not None:
            return self._epoll.poll(-1 if timeout is None else timeout)  # type: ignore[no-any-return]
        return self._poll.poll(None if timeout is None else int(timeout * 1000))  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()


class ChannelMap(dict):  # type: ignore[type-arg]
    """waitress's socket map (fd -> dispatcher), and the loop that serves it (`loop`)."""

    def __init__(self) -> None:
        super().__init__()
        self._poller = _Poller()
        self._lock = threading.Lock()  # registrations change from the loop and (on a close) task threads
        self._flags: dict[int, int] = {}  # fd -> flags registered with the kernel
        self._touched: deque[Any] = deque()  # dispatchers to ask again (any thread appends; the loop pops)
        self._others: dict[int, Any] = {}  # dispatchers that are not tracked channels: asked every turn
        self._due: list[tuple[float, int, Any]] = []  # (monotonic time, seq, channel): delayed answers
        self._seq = itertools.count()
        self._stopping = False
        self._loop_thread: int | None = None  # the thread running `loop` (requests may run on it inline)
        self.turns = 0  # loop turns so far (tests, benches)
        self.asked = 0  # readable()/writable() pairs asked so far (tests, benches)

    # --- the map's changes --------------------------------------------------------------------
    def __setitem__(self, fd: int, obj: Any) -> None:
        super().__setitem__(fd, obj)
        if isinstance(obj, TrackedChannel):
            self._touched.append(obj)
        else:
            self._others[fd] = obj

    def __delitem__(self, fd: int) -> None:
        super().__delitem__(fd)
        self._others.pop(fd, None)
        with self._lock:  # before the socket closes: its number may be reused at once
            if self._flags.pop(fd, None) is not None:
                self._poller.unregister(fd)

    def clear(self) -> None:
        for fd in list(self):
            del self[fd]

    def touch(self, obj: Any) -> None:
        """Ask `obj` readable()/writable() again on the loop's next turn (any thread; then wake the loop)."""
        self._touched.append(obj)

    # --- the loop -----------------------------------------------------------------------------
    def loop(
        self, timeout: float = 30.0, use_poll: bool = True, map: Any = None, count: int | None = None
    ) -> None:
        """wasyncore.loop's signature: turn until the map is empty (or `count` turns)."""
        self._stopping = False
        self._loop_thread = threading.get_ident()
        try:
            while self and not self._stopping and (count is None or count > 0):
                self.turn(timeout)
                if count is not None:
                    count -= 1
        finally:
            self._loop_thread = None

    def on_loop_thread(self) -> bool:
        """Is the caller the thread turning this loop?"""
        return self._loop_thread == threading.get_ident()

    def stop(self) -> None:
        """End `loop` after its current turn (any thread); the dispatchers stay open."""
        self._stopping = True
        for obj in list(self._others.values()):
            if hasattr(obj, "pull_trigger"):  # the trigger pipe: wake the poll
                try:
                    obj.pull_trigger()
                except OSError:  # the loop saw _stopping already, ended and closed the pipe
                    pass

    def turn(self, timeout: float) -> None:
        self.turns += 1
        now = time.monotonic()
        for fd, obj in list(self._others.items()):
            before = getattr(obj, "next_channel_cleanup", None)
            self._ask(fd, obj, now)
            if before is not None and getattr(obj, "next_channel_cleanup", None) != before:
                self._touched.extend(v for v in list(self.values()) if isinstance(v, TrackedChannel))
        due = self._due
        while due and due[0][0] <= now:
            self._touched.append(heapq.heappop(due)[2])
        touched = self._touched
        # Only what is there now: a task thread that touches a channel while it is being asked pulls the
        # trigger after, so the next turn (which the trigger starts at once) asks it again.
        batch = {id(obj): obj for obj in [touched.popleft() for _ in range(len(touched))]}
        for obj in batch.values():
            fd = obj._fileno
            if fd is not None and self.get(fd) is obj:
                self._ask(fd, obj, now)
        wait = timeout
        if due:
            wait = max(0.0, min(wait, due[0][0] - now))
        try:
            events = self._poller.poll(wait)
        except InterruptedError:  # pragma: no cover - PEP 475 retries; a signal handler raised nothing
            return
        for fd, flags in events:
            obj = self.get(fd)
            if obj is None:
                continue
            wasyncore.readwrite(obj, flags)
            if isinstance(obj, TrackedChannel):
                touched.append(obj)

    def _ask(self, fd: int, obj: Any, now: float) -> None:
        self.asked += 1
        flags = 0
        if obj.readable():
            flags |= _IN
        if obj.writable() and not obj.accepting:
            flags |= _OUT
        at = getattr(obj, "answer_at", 0.0)
        if at and at > now:
            heapq.heappush(self._due, (at, next(self._seq), obj))
        with self._lock:
            if self.get(fd) is not obj:  # closed meanwhile (by a task thread)
                return
            old = self._flags.get(fd, 0)
            if flags == old:
                return
            if not flags:
                del self._flags[fd]
                self._poller.unregister(fd)
            elif old:
                self._flags[fd] = flags
                self._poller.modify(fd, flags)
            else:
                self._flags[fd] = flags
                self._poller.register(fd, flags)

    def close_poller(self) -> None:
        self._poller.close()


class TrackedChannel(HTTPChannel):  # type: ignore[misc]
    """An HTTP channel whose task thread says which channel it serves, so that its wake-ups of the
    loop (server.pull_trigger) name the channel to ask again."""

    def service(self) -> None:
        _serving.channel = self
        try:
            super().service()
        finally:
            _serving.channel = None


def install(wsgi: Any, channels: ChannelMap) -> None:
    """Run `wsgi` (what waitress.create_server(..., map=channels) returned) on this loop."""
    servers = [wsgi] if hasattr(wsgi, "trigger") else [s for s in channels.values() if hasattr(s, "trigger")]
    for srv in servers:
        srv.pull_trigger = _pull_trigger(srv, channels)
    shim = type("_Loop", (), {"loop": staticmethod(channels.loop), "dispatcher": wasyncore.dispatcher})
    wsgi.asyncore = shim
    for srv in servers:
        srv.asyncore = shim


def _pull_trigger(srv: Any, channels: ChannelMap) -> Any:
    trigger = srv.trigger

    def pull_trigger() -> None:
        ch = getattr(_serving, "channel", None)
        if ch is not None:
            channels.touch(ch)  # before the wake-up: the loop's next turn must see it
        if not channels.on_loop_thread():  # on the loop itself (a request served inline): it turns anyway
            trigger.pull_trigger()

    return pull_trigger
