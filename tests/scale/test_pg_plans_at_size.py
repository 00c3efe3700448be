"""Postgres chooses its plans from statistics: on a table of realistic size, analyzed, with sequential
scans allowed, no list/stat read of the API plans a scan of a big table. (test_query_plans.py disables
sequential scans to ask "can an index serve it"; this asks "does the planner pick it" — an in-statement
LIMIT the planner cannot see once made it hash-join a scan of every workflow.)"""

from __future__ import annotations

import os

import pytest

from tests import pg
from tests.scale.test_query_plans import BIG, Recorder

pytestmark = pytest.mark.skipif(
    not pg.available() or os.environ.get("ASSAY_TEST_POSTGRES", "1") == "0", reason="no PostgreSQL server"
)

N = 30_000
T0 = 1_700_000_000.0
#: (label, list_workflows filters); offsets are deep (near the oldest end) or middling
READS = [
    ("newest", {}),
    ("status", {"status": "COMPLETED"}),
    ("rare status", {"status": "PENDING"}),  # ~3% of the rows are live, as in bench/scale.py
    ("type", {"workflow_type": "T3"}),
    ("queue", {"task_queue": "q2"}),
    ("status+type", {"status": "FAILED", "workflow_type": "T3"}),
    ("search common", {"search": {"tier": "gold"}}),
    ("search 2 keys", {"search": {"tier": "gold", "customer": "c4"}}),
    ("search rare", {"search": {"vip": True}}),
    ("search none", {"search": {"customer": "nobody"}}),
    ("offset", {"offset": 2_000}),
    ("deep offset", {"offset": N * 9 // 10 - 100}),
    ("mid offset", {"offset": N * 9 // 20}),
    ("status deep offset", {"status": "COMPLETED", "offset": N * 7 // 10}),
    ("type deep offset", {"workflow_type": "T3", "offset": N // 9}),
    ("status mid offset", {"status": "COMPLETED", "offset": N * 2 // 5}),
    ("queue mid offset", {"task_queue": "q2", "offset": N // 9}),
    ("search deep offset", {"search": {"tier": "gold"}, "offset": N * 3 // 10 - 500}),
    ("search mid offset", {"search": {"tier": "gold"}, "offset": N * 3 // 20}),
    ("search number offset", {"search": {"customer": "c7"}, "offset": 30}),
    ("cursor", {"after": (T0 + N // 2, "wf-015000")}),
]


@pytest.fixture(scope="module")
def big_store():
    import psycopg

    from assay.store import open_store

    url = pg.fresh_database()
    store = open_store(url, min_size=1, max_size=3)
    from assay.store.buckets import POSTGRES_RECOUNT
    from assay.store.migrations import PG_RECOUNT

    with psycopg.connect(url, autocommit=True) as conn:
        # per-row triggers (counters, page buckets) would take over a minute for 30k rows: load with the
        # triggers off (the test cluster's user is a superuser), then recount, as bench/scale.py does
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            """INSERT INTO workflows (id, namespace, run_id, workflow_type, task_queue, status, search_attributes,
                   created_at, updated_at, needs_dispatch, last_seq)
               SELECT 'wf-' || lpad(i::text, 6, '0'), CASE WHEN mod(i, 10) = 0 THEN 'other' ELSE 'main' END,
                   'r' || i, 'T' || mod(i, 7), 'q' || mod(i, 4),
                   CASE mod(i, 64) WHEN 0 THEN 'RUNNING' WHEN 1 THEN 'PENDING' WHEN 2 THEN 'FAILED'
                       WHEN 3 THEN 'FAILED' WHEN 4 THEN 'CANCELLED' WHEN 5 THEN 'TIMED_OUT' ELSE 'COMPLETED' END,
                   jsonb_build_object('tier', (ARRAY['gold','silver','bronze'])[1 + mod(i, 3)],
                                      'customer', 'c' || mod(i, 500), 'vip', mod(i, 10000) = 7),
                   %s + i, %s + i, 0, 1
               FROM generate_series(0, %s - 1) AS i""",
            (T0, T0, N),
        )
        conn.execute(
            """INSERT INTO workflow_activities (workflow_id, seq, name, task_queue, status, scheduled_at)
               SELECT id, 1, 'a', task_queue, CASE WHEN status IN ('RUNNING', 'PENDING') THEN 'PENDING'
                   ELSE 'COMPLETED' END, created_at FROM workflows"""
        )
        conn.execute("SET session_replication_role = DEFAULT")
        with conn.transaction():
            for stmt in PG_RECOUNT + POSTGRES_RECOUNT:
                conn.execute(stmt)
        conn.execute("VACUUM ANALYZE")
    yield store
    store.close()


def seq_scans(store, verb) -> list[str]:
    bad = []
    with store.read() as tx:
        rec = Recorder(tx.conn)
        tx.conn = rec
        verb(tx)
        tx.conn = rec.conn
        for sql, params in rec.statements:
            lines = [r[0] for r in rec.conn.execute("EXPLAIN " + sql, params).fetchall()]
            if any(f"Seq Scan on {t} " in line + " " for line in lines for t in BIG):
                bad.append(sql + "\n" + "\n".join(lines))
    return bad


@pytest.mark.parametrize("label,filters", READS, ids=[r[0] for r in READS])
def test_planner_picks_an_index_at_size(big_store, label, filters):
    assert not seq_scans(big_store, lambda tx: tx.list_workflows(namespace="main", limit=50, **filters))


@pytest.mark.parametrize("verb", ["queue_stats", "namespace_stats"])
def test_stats_plan_no_scan_at_size(big_store, verb):
    assert not seq_scans(big_store, lambda tx: getattr(tx, verb)("main"))


def test_counts_and_deep_pages_match_the_rows(big_store):
    """The counters were kept by the triggers during the bulk insert; a deep page equals the naive one."""
    with big_store.read() as tx:
        real = dict(
            tx._exec(
                "SELECT status, COUNT(*) FROM workflows WHERE namespace = 'main' GROUP BY status"
            ).fetchall()
        )
        assert tx.status_counts("main") == real
        offset = sum(real.values()) - 30
        naive = [
            r[0]
            for r in tx._exec(
                "SELECT id FROM workflows WHERE namespace = 'main' ORDER BY created_at DESC, id DESC LIMIT 50 OFFSET ?",
                (offset,),
            ).fetchall()
        ]
        got = [r["id"] for r in tx.list_workflows(namespace="main", limit=50, offset=offset)]
        assert got == naive and len(got) == 30


@pytest.mark.parametrize(
    "label,filters", [r for r in READS if "offset" in r[0]], ids=lambda x: x if isinstance(x, str) else ""
)
def test_deep_pages_at_size_equal_the_plain_listing(big_store, label, filters):
    """Pages through the buckets (and the shallow ones) equal the full plain listing, sliced."""
    offset = filters["offset"]
    plain = {k: v for k, v in filters.items() if k != "offset"}
    with big_store.read() as tx:
        got = [r["id"] for r in tx.list_workflows(namespace="main", limit=50, **filters)]
        ids = [r["id"] for r in tx.list_workflows(namespace="main", limit=None, **plain)]
    assert got == ids[offset : offset + 50] and got


def test_the_detector_sees_a_planned_scan(big_store):
    """The check can fail: an in-statement LIMIT the planner cannot see, as the first deep-offset version
    had, is planned as a hash join over a scan of every workflow."""
    inner = (
        "SELECT id FROM workflows WHERE namespace = 'main' ORDER BY created_at, id "
        "LIMIT (SELECT CAST(SUM(n) AS BIGINT) - 20000 FROM workflow_counts WHERE namespace = 'main')"
    )
    assert seq_scans(big_store, lambda tx: tx._exec(f"SELECT * FROM workflows WHERE id IN ({inner})"))
