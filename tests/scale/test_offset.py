"""`?offset=` pages equal the naive OFFSET query on both backends, including deep offsets that walk the
list index from the oldest end (N from the counters kept with the writes)."""

from __future__ import annotations

import pytest

from tests.scale.test_query_plans import Recorder
from tests.store.records import T0, wf

STATUSES = ["COMPLETED", "FAILED", "RUNNING", "PENDING"]


def fill(store) -> None:
    with store.tx() as tx:
        for i in range(41):  # ties on created_at: the id breaks them
            tx.insert_workflow(wf(f"wf-{i:03d}", created_at=T0 + i // 3, status=STATUSES[i % 4]))
        tx.insert_namespace("other", T0)
        for i in range(5):
            tx.insert_workflow(wf(f"o-{i}", namespace="other", created_at=T0 + i, status="COMPLETED"))


def naive(store, status: str | None, limit: int | None, offset: int) -> list[str]:
    sql = "SELECT id FROM workflows WHERE namespace = ?" + (" AND status = ?" if status else "")
    sql += " ORDER BY created_at DESC, id DESC"
    with store.read() as tx:
        ids = [r[0] for r in tx._exec(sql, ["main"] + ([status] if status else [])).fetchall()]
    return ids[offset : offset + limit] if limit is not None else ids[offset:]


@pytest.mark.parametrize("status", [None, "COMPLETED", "RUNNING", "CANCELLED"])
def test_offset_pages_equal_the_naive_query(store, status):
    fill(store)
    from_oldest = 0
    for limit in (1, 4, 50, None):
        for offset in range(0, 45):
            with store.read() as tx:
                rec = Recorder(tx.conn)
                tx.conn = rec
                got = [
                    r["id"]
                    for r in tx.list_workflows(namespace="main", status=status, limit=limit, offset=offset)
                ]
                tx.conn = rec.conn
            assert got == naive(store, status, limit, offset), (limit, offset)
            from_oldest += any("ORDER BY created_at, id LIMIT" in sql for sql, _ in rec.statements)
    assert from_oldest or status == "CANCELLED"  # the deep pages took the oldest-end path


def test_offset_follows_writes(engine):
    """Counters move with starts, transitions and deletes: deep pages stay equal to the naive query."""
    from tests.engine.support import start

    for i in range(12):
        start(engine, f"w{i}")
    engine.terminate("w3")
    engine.cancel("w5")
    with engine.store.tx() as tx:
        tx.delete_workflow("w7")
    for offset in range(0, 13):
        for status in (None, "PENDING", "FAILED"):
            with engine.store.read() as tx:
                got = [
                    r["id"]
                    for r in tx.list_workflows(namespace="main", status=status, limit=3, offset=offset)
                ]
            assert got == naive(engine.store, status, 3, offset), (offset, status)
