"""Transient store errors (a deadlock, a serialization failure) are retried inside the engine, for API
requests and background loops alike; the store alone decides what is transient."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from assay.api import make_app
from assay.engine import Engine
from assay.protocol import EventType
from assay.store.base import Store
from tests.engine.support import start
from tests.engine.support import types as event_types
from tests.wsgi import Client


class Transient(Exception):
    """Stands for a driver's deadlock error."""


def _flaky(
    engine: Engine, store: Store, monkeypatch: pytest.MonkeyPatch, fail: int, exc: type[Exception]
) -> list[int]:
    """Make the store call `exc` transient when it is Transient, and make the next `fail` transactions
    raise it from inside (after some writes, which must be rolled back)."""
    calls = [0]
    monkeypatch.setattr(store, "is_transient", lambda e: isinstance(e, Transient))
    real_tx = store.tx

    def failing(real):
        def verb(*a, **kw):
            out = real(*a, **kw)
            if calls[0] < fail:
                calls[0] += 1
                raise exc("deadlock detected")
            return out

        return verb

    def tx():
        cm = real_tx()

        class Wrapped:
            def __enter__(self):
                self.tx = cm.__enter__()
                for verb in ("append_event", "insert_workflow"):  # the writes of a start and of the loops
                    setattr(self.tx, verb, failing(getattr(self.tx, verb)))
                return self.tx

            def __exit__(self, *a):
                return cm.__exit__(*a)

        return Wrapped()

    monkeypatch.setattr(store, "tx", tx)
    return calls


def test_a_transient_failure_is_rerun_and_leaves_no_trace(engine, store, monkeypatch) -> None:
    calls = _flaky(engine, store, monkeypatch, fail=2, exc=Transient)
    engine.start_workflow(workflow_type="T", workflow_id="wf-1")
    assert calls[0] == 2  # two attempts failed, the third committed
    assert event_types(engine, "wf-1") == [EventType.WorkflowStarted]  # the failed attempts wrote nothing


def test_retries_are_bounded(engine, store, monkeypatch) -> None:
    calls = _flaky(engine, store, monkeypatch, fail=100, exc=Transient)
    with pytest.raises(Transient):
        engine.start_workflow(workflow_type="T", workflow_id="wf-1")
    assert calls[0] == 4
    monkeypatch.undo()
    assert engine.list_workflows() == []


def test_other_errors_are_not_retried(engine, store, monkeypatch) -> None:
    calls = _flaky(engine, store, monkeypatch, fail=5, exc=ValueError)
    with pytest.raises(ValueError):
        engine.start_workflow(workflow_type="T", workflow_id="wf-1")
    assert calls[0] == 1


def test_background_steps_share_the_retry(engine, store, clock, monkeypatch) -> None:
    start(engine, "wf-1")
    from tests.engine.support import Worker

    w = Worker(engine)
    w.run("wf-1", {"type": "ScheduleTimer", "seq": 1, "duration_secs": 5})
    clock.advance(10)
    calls = _flaky(engine, store, monkeypatch, fail=1, exc=Transient)
    assert engine.fire_due_timers() == 1  # the loop's step, rerun after the transient failure
    assert calls[0] == 1
    assert event_types(engine, "wf-1").count(EventType.TimerFired) == 1


def test_api_requests_share_the_retry(engine, store, monkeypatch) -> None:
    calls = _flaky(engine, store, monkeypatch, fail=1, exc=Transient)
    r = Client(make_app(engine)).request("POST", "/workflows", {"workflow_type": "T", "workflow_id": "wf-1"})
    assert r.status == 201, r.text
    assert calls[0] == 1
    assert event_types(engine, "wf-1") == [EventType.WorkflowStarted]


def test_postgres_judges_its_driver_errors() -> None:
    psycopg = pytest.importorskip("psycopg")
    from assay.store.postgres import PostgresStore

    fake = types.SimpleNamespace(_psycopg=psycopg)
    for cls in (
        psycopg.errors.DeadlockDetected,
        psycopg.errors.SerializationFailure,
        psycopg.errors.LockNotAvailable,
    ):
        assert PostgresStore.is_transient(fake, cls("x"))  # type: ignore[arg-type]
    assert not PostgresStore.is_transient(fake, psycopg.errors.UniqueViolation("x"))  # type: ignore[arg-type]
    assert not PostgresStore.is_transient(fake, ValueError("deadlock"))  # type: ignore[arg-type]


def test_sqlite_has_no_transient_errors(tmp_path) -> None:
    from assay.store import open_store

    s = open_store("sqlite:///" + str(tmp_path / "t.db"))
    try:
        assert not s.is_transient(RuntimeError("database is locked"))
    finally:
        s.close()


def test_only_the_store_knows_database_drivers() -> None:
    root = Path(__file__).resolve().parents[2] / "assay"
    for path in [root / "errors.py", *(root / "api").rglob("*.py"), *(root / "engine").rglob("*.py")]:
        assert "psycopg" not in path.read_text(encoding="utf-8"), path
