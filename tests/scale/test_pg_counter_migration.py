"""Migration 6 on a Postgres database that already holds workflows: the counters start from the rows."""

from __future__ import annotations

import os

import pytest

from tests import pg
from tests.store.records import T0, wf

pytestmark = pytest.mark.skipif(
    not pg.available() or os.environ.get("ASSAY_TEST_POSTGRES", "1") == "0", reason="no PostgreSQL server"
)


def test_counters_are_backfilled_from_existing_rows():
    import psycopg

    from assay.store import open_store

    url = pg.fresh_database()
    store = open_store(url, min_size=1, max_size=2)
    with store.tx() as tx:
        for i in range(9):
            tx.insert_workflow(
                wf(f"w{i}", created_at=T0 + i, status=["COMPLETED", "RUNNING", "FAILED"][i % 3])
            )
    store.close()
    with psycopg.connect(url, autocommit=True) as conn:  # back to the schema before migration 6
        for stmt in (
            "DROP TABLE workflow_counts",
            "DROP TABLE activity_counts",
            "DROP FUNCTION assay_wf_count CASCADE",
            "DROP FUNCTION assay_act_count CASCADE",
            "DELETE FROM schema_migrations WHERE version = 6",
        ):
            conn.execute(stmt)
        conn.execute(
            "INSERT INTO workflows (id, namespace, run_id, workflow_type, task_queue, status, created_at, updated_at) "
            "VALUES ('late', 'main', 'r', 'T', 'default', 'PENDING', %s, %s)",
            (T0 + 99, T0 + 99),
        )
    store = open_store(url, min_size=1, max_size=2)
    try:
        with store.read() as tx:
            assert tx.status_counts("main") == {"COMPLETED": 3, "RUNNING": 3, "FAILED": 3, "PENDING": 1}
            assert [r["id"] for r in tx.list_workflows(namespace="main", limit=2, offset=8)] == ["w1", "w0"]
        with store.tx() as tx:  # and the triggers keep them from then on
            tx.update_workflow("late", status="RUNNING")
        with store.read() as tx:
            assert tx.status_counts("main")["RUNNING"] == 4
    finally:
        store.close()
