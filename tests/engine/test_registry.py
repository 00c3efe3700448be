"""The engine's Registry: worker registrations and namespace names are not read again on single-instance
stores, and a deregistration, a reap or a namespace deletion is never answered from a stale copy."""

from __future__ import annotations

import pytest

from assay.engine.core import Registry
from assay.store.sql import SqlTx
from tests.engine.support import act, start


@pytest.fixture
def worker_reads(monkeypatch):
    """How many times a transaction read a worker row."""
    calls = [0]
    real = SqlTx.get_worker

    def get_worker(self, worker_id):
        calls[0] += 1
        return real(self, worker_id)

    monkeypatch.setattr(SqlTx, "get_worker", get_worker)
    return calls


def test_the_registry_is_on_only_where_one_engine_owns_the_store(engine, store) -> None:
    assert engine.core.registry.enabled is (not store.multi_instance)


def test_a_worker_row_is_read_once_for_many_tasks(engine, store, worker_reads) -> None:
    wid = engine.register_worker(identity="t", queue="q", workflows=["T"], activities=["work"], sticky=True)
    for i in range(3):
        start(engine, f"wf-{i}", queue="q")
        task = engine.claim_workflow_task("q", wid)
        out = engine.submit_commands(task["id"], wid, [act()], eager_activities=1, eager_workflow_task=True)
        (a,) = out["activity_tasks"]
        engine.complete_activity(a["id"], 1, wid, eager_workflow_task=True)
    if store.multi_instance:
        assert worker_reads[0] >= 9  # every lookup reads the row (another instance may change it)
    else:
        assert worker_reads[0] == 1


def test_a_worker_registered_again_under_its_id_is_seen_as_registered_now(engine) -> None:
    start(engine, "in-b", queue="q", namespace="b")
    engine.register_worker(identity="t", queue="q", namespace="a", worker_id="w1")
    assert engine.claim_workflow_task("q", "w1") is None  # namespace a: not its workflow
    engine.deregister_worker("w1")
    engine.register_worker(identity="t", queue="q", namespace="b", worker_id="w1")
    task = engine.claim_workflow_task("q", "w1")
    assert task is not None and task["id"] == "in-b"


def test_an_unknown_worker_id_claims_only_from_the_default_namespace(engine) -> None:
    """Namespaces are enforced (docs/design.md, Namespaces): an id the engine does not know (never registered, or
    reaped) is not a key to every namespace's work."""
    start(engine, "in-b", queue="q", namespace="b")
    assert engine.claim_workflow_task("q", "ghost") is None
    start(engine, "in-main", queue="q")
    task = engine.claim_workflow_task("q", "ghost")
    assert task is not None and task["id"] == "in-main"
    assert engine.claim_workflow_task("q", "ghost") is None  # in-b stays for a worker of namespace b


def test_a_reaped_worker_is_forgotten(engine, clock) -> None:
    start(engine, "in-b", queue="q", namespace="b")
    engine.register_worker(identity="t", queue="q", namespace="a", worker_id="w1")
    assert engine.claim_workflow_task("q", "w1") is None
    clock.advance(engine.settings.worker_reap_secs + 1)
    assert engine.reap_workers() == 1
    # the worker comes back (a heartbeat re-registers it) in another namespace
    beat = engine.heartbeat_worker("w1", {"identity": "t", "queue": "q", "namespace": "b"})
    assert beat["known"] is True
    task = engine.claim_workflow_task("q", "w1")
    assert task is not None and task["id"] == "in-b"


def test_a_deregistered_worker_gets_no_eager_tasks(engine) -> None:
    wid = engine.register_worker(identity="t", queue="q", workflows=["T"], activities=["work"])
    start(engine, "wf-1", queue="q")
    task = engine.claim_workflow_task("q", wid)
    engine.deregister_worker(wid)  # its lease goes back; its row is gone
    other = engine.register_worker(identity="t2", queue="q", workflows=["T"], activities=["work"])
    task = engine.claim_workflow_task("q", other)
    assert task is not None and task["id"] == "wf-1"
    out = engine.submit_commands("wf-1", other, [act()], eager_activities=1)
    assert len(out["activity_tasks"]) == 1


def test_a_deleted_namespace_is_created_again_by_the_next_start(engine) -> None:
    start(engine, "x-1", queue="q", namespace="x")
    engine.terminate("x-1", "done")
    engine.delete_namespace("x")
    assert "x" not in [n["name"] for n in engine.list_namespaces()]
    start(engine, "x-2", queue="q", namespace="x")
    assert "x" in [n["name"] for n in engine.list_namespaces()]


class _Tx:
    """A transaction whose worker read races with a deletion committed by another thread."""

    def __init__(self, registry: Registry, row: dict | None, delete_during_read: bool) -> None:
        self.registry, self.row, self.delete = registry, row, delete_during_read
        self.reads = 0

    def get_worker(self, worker_id: str) -> dict | None:
        self.reads += 1
        if self.delete:
            self.registry.forget_workers(worker_id)
        return self.row


def test_a_read_that_a_deletion_overtook_is_not_kept() -> None:
    reg = Registry(enabled=True)
    row = {"id": "w1", "namespace": "a", "last_heartbeat": 1.0}
    racing = _Tx(reg, row, delete_during_read=True)
    assert reg.worker(racing, "w1")["namespace"] == "a"
    later = _Tx(reg, None, delete_during_read=False)
    assert reg.worker(later, "w1") is None and later.reads == 1  # read again: the row is gone
    kept = _Tx(reg, row, delete_during_read=False)
    got = reg.worker(kept, "w1")
    assert "last_heartbeat" not in got  # columns that change after registration are never served stale
    assert reg.worker(kept, "w1") is got and kept.reads == 1
    reg.forget_workers()
    assert reg.worker(_Tx(reg, None, delete_during_read=False), "w1") is None


def test_a_disabled_registry_always_reads() -> None:
    reg = Registry(enabled=False)
    tx = _Tx(reg, {"id": "w1", "namespace": "a"}, delete_during_read=False)
    for _ in range(3):
        assert reg.worker(tx, "w1")["namespace"] == "a"
    assert tx.reads == 3 and not reg.has_namespace("main")
