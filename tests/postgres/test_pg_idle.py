"""An idle Postgres instance (#17 goal 3): the leader-only loops share one look at the leader lock; the
LISTEN thread sleeps until a message comes (no timer), is woken by close(), and reconnects when its
connection breaks."""

from __future__ import annotations

import threading
import time

import pytest

import assay.store.postgres as pgstore
from assay.store import open_store
from tests import pg
from tests.helpers import wait_until

pytestmark = pytest.mark.postgres

if not pg.available():
    pytest.skip("no PostgreSQL server binaries", allow_module_level=True)


class FakeTime:
    """Stands in for the module's `time`: monotonic() moves only when told."""

    def __init__(self) -> None:
        self.mono = 1000.0

    def monotonic(self) -> float:
        return self.mono

    def __getattr__(self, name):
        return getattr(time, name)


class CountingConn:
    def __init__(self, conn) -> None:
        self.conn = conn
        self.statements: list[str] = []

    def execute(self, sql, *a, **kw):
        self.statements.append(sql)
        return self.conn.execute(sql, *a, **kw)

    def close(self) -> None:
        self.conn.close()


def test_one_look_at_the_leader_lock_answers_every_loop_for_a_while(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(pgstore, "time", fake)
    url = pg.fresh_database()
    leader, other = (open_store(url, min_size=1, max_size=2) for _ in range(2))
    try:
        assert leader.try_leadership() is True
        assert other.try_leadership() is False
        spies = [CountingConn(s._leader_conn) for s in (leader, other)]
        leader._leader_conn, other._leader_conn = spies
        for _ in range(10):  # the leader-only loops (timers, activities, dispatch, scheduler...) ask
            assert leader.try_leadership() is True
            assert other.try_leadership() is False
        assert [s.statements for s in spies] == [[], []]
        fake.mono += pgstore.LEADER_CHECK_SECS + 0.01
        assert leader.try_leadership() is True
        assert other.try_leadership() is False
        assert [len(s.statements) for s in spies] == [1, 2]  # SELECT 1; SELECT 1 + the lock attempt
        leader.release_leadership()  # the leader goes: the other takes over at its next look
        fake.mono += pgstore.LEADER_CHECK_SECS + 0.01
        assert other.try_leadership() is True
    finally:
        leader.close()
        other.close()


def listening(url: str):
    store = open_store(url, min_size=1, max_size=2)
    got: list[tuple[str, str]] = []
    cond = threading.Condition()

    def on_message(channel: str, payload: str) -> None:
        with cond:
            got.append((channel, payload))

    store.listen(on_message)
    return store, got


def test_the_listener_wakes_for_messages_and_close_ends_it_at_once():
    url = pg.fresh_database()
    sender = open_store(url, min_size=1, max_size=2)
    listener, got = listening(url)
    try:
        wait_until(lambda: _listeners(sender), timeout=10)
        sender.notify("bump", '["wf:q"]')
        wait_until(lambda: got == [("bump", '["wf:q"]')], timeout=10)
        thread = listener._listener
        assert thread is not None and thread.is_alive()
    finally:
        listener.close()  # its select() sleeps up to LISTEN_IDLE_SECS: close() must wake it
        sender.close()
    assert pgstore.LISTEN_IDLE_SECS > 10  # (join in close() waits 3 s: only the wake-up can end it)
    assert not thread.is_alive()


def test_the_listener_reconnects_when_its_connection_is_killed():
    url = pg.fresh_database()
    sender = open_store(url, min_size=1, max_size=2)
    listener, got = listening(url)
    try:
        first = wait_until(lambda: _listeners(sender), timeout=10)
        with sender.pool.connection() as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (first[0],))
        wait_until(lambda: (now := _listeners(sender)) and now != first, timeout=20, what="a new LISTEN")

        def delivered() -> bool:
            sender.notify("sse", "after")
            return ("sse", "after") in got

        wait_until(delivered, timeout=20)
    finally:
        listener.close()
        sender.close()


def _listeners(store) -> list[int]:
    """Backend pids of this database's connections idle in LISTEN."""
    with store.pool.connection() as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND query LIKE 'LISTEN %%' AND state = 'idle' ORDER BY pid"
        ).fetchall()
    return [r[0] for r in rows]
