"""Every list/filter/stat query of the API and dashboard walks an index: the plans (EXPLAIN QUERY PLAN on
SQLite, EXPLAIN with sequential scans disabled on Postgres) must not hold a full scan of a big table.

The statements are recorded from the real store verbs (no copies of their SQL here)."""

from __future__ import annotations

import re

import pytest

from tests.store.records import T0, wf

BIG = ("workflows", "workflow_search", "workflow_activities", "workflow_events", "workflow_buckets")
#: partial indexes over live rows only: scanning them walks the live rows, not the table
PARTIAL = ("act_claim", "act_running", "wf_live_queue")

READS = [
    ("newest", {}),
    ("status", {"status": "COMPLETED"}),
    ("type", {"workflow_type": "T3"}),
    ("queue", {"task_queue": "q2"}),
    ("status+type", {"status": "FAILED", "workflow_type": "T3"}),
    ("search", {"search": {"tier": "gold"}}),
    ("search 2 keys", {"search": {"tier": "gold", "customer": "c4"}}),
    ("search number", {"search": {"n": 3}}),
    ("search bool", {"search": {"vip": True}}),
    ("search none", {"search": {"customer": "nobody"}}),
    ("search+status", {"search": {"tier": "gold"}, "status": "COMPLETED"}),
    ("offset", {"offset": 40}),
    ("status offset", {"status": "COMPLETED", "offset": 4}),
    ("deep offset", {"offset": 100}),
    ("status deep offset", {"status": "COMPLETED", "offset": 20}),
    ("type deep offset", {"workflow_type": "T3", "offset": 15}),
    ("cursor", {"after": (T0 + 5000, "wf-050")}),
    ("status cursor", {"status": "COMPLETED", "after": (T0 + 5000, "wf-050")}),
    ("search cursor", {"search": {"tier": "gold"}, "after": (T0 + 5000, "wf-050")}),
]


class Recorder:
    """Wraps a DB-API connection and records every statement the store runs through it."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.statements: list[tuple[str, tuple]] = []

    def execute(self, sql, params=()):
        self.statements.append((sql, tuple(params)))
        return self.conn.execute(sql, params)


def fill(store) -> None:
    statuses = ["COMPLETED", "FAILED", "RUNNING", "PENDING", "CANCELLED"]
    with store.tx() as tx:
        for i in range(120):
            tx.insert_workflow(
                wf(
                    f"wf-{i:03d}",
                    created_at=T0 + i * 100,  # over many page buckets (256 s)
                    status=statuses[i % 5],
                    workflow_type=f"T{i % 7}",
                    task_queue=f"q{i % 4}",
                    search_attributes={"tier": ["gold", "silver"][i % 2], "customer": f"c{i % 9}", "n": i % 5,
                                       "vip": i == 7},
                )
            )  # fmt: skip


def plan_lines(store, conn, sql: str, params: tuple) -> list[str]:
    if store.dialect == "sqlite":
        return [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()]
    conn.execute("SET LOCAL enable_seqscan = off")
    return [r[0] for r in conn.execute("EXPLAIN " + sql, params).fetchall()]


def full_scans(store, lines: list[str], listing: bool = False) -> list[str]:
    """Plan lines that read a big table whole. `listing`: also a sort of the whole filtered set, or JSON
    parsed row by row (json_each), which walk every row the index range holds."""
    bad = []
    page_only = any("LIST SUBQUERY" in x for x in lines)  # the outer sort of `id IN (page)` sorts one page
    for line in lines:
        if "TEMP B-TREE FOR ORDER BY" in line and page_only:
            continue
        if (
            store.dialect == "sqlite"
            and listing
            and ("TEMP B-TREE FOR ORDER BY" in line or "VIRTUAL TABLE" in line)
        ):
            bad.append(line)
        if store.dialect == "sqlite":
            m = re.match(r"\s*SCAN (\w+)(?: AS \w+)?(.*)", line)
            if not m:
                continue
            table, rest = m.group(1), m.group(2)
            aliases = {"w": "workflows", "a": "workflow_activities", "s": "workflow_search"}
            table = aliases.get(table, table)
            if table in BIG and not any(p in rest for p in PARTIAL):
                bad.append(line)
        else:
            m = re.search(r"Seq Scan on (\w+)", line)
            if m and m.group(1) in BIG:
                bad.append(line)
    return bad


def recorded(store, verb):
    with store.read() as tx:
        rec = Recorder(tx.conn)
        tx.conn = rec
        verb(tx)
        tx.conn = rec.conn
        out = []
        for sql, params in rec.statements:
            out.append((sql, plan_lines(store, rec.conn, sql, params)))
        return out


@pytest.mark.parametrize("label,filters", READS, ids=[r[0] for r in READS])
def test_list_queries_use_indexes(store, label, filters):
    fill(store)
    stmts = recorded(store, lambda tx: tx.list_workflows(namespace="main", limit=10, **filters))
    assert stmts, "the verb ran no statement"
    for sql, lines in stmts:
        assert not full_scans(store, lines, listing=True), f"{label}: full scan in\n{sql}\n" + "\n".join(
            lines
        )


#: deep offsets through the page buckets (migration 7): the bucket sums and the walk from an edge
BUCKET_READS = [
    ("deep offset", {"offset": 100}),
    ("mid offset", {"offset": 61}),
    ("near offset", {"offset": 7}),
    ("status offset", {"status": "COMPLETED", "offset": 13}),
    ("type offset", {"workflow_type": "T3", "offset": 9}),
    ("queue offset", {"task_queue": "q2", "offset": 17}),
    ("search offset", {"search": {"tier": "gold"}, "offset": 31}),
    ("search number offset", {"search": {"n": 3}, "offset": 5}),
]


@pytest.mark.parametrize("label,filters", BUCKET_READS, ids=[r[0] for r in BUCKET_READS])
def test_bucket_pages_use_indexes(store, label, filters, monkeypatch):
    from assay.store.sql import paging

    monkeypatch.setattr(paging, "SHALLOW", 0)
    fill(store)
    stmts = recorded(store, lambda tx: tx.list_workflows(namespace="main", limit=10, **filters))
    assert any("_buckets" in sql for sql, _ in stmts), "the bucket path was not taken"
    for sql, lines in stmts:
        assert not full_scans(store, lines, listing=True), f"{label}: full scan in\n{sql}\n" + "\n".join(
            lines
        )


@pytest.mark.parametrize("verb", ["queue_stats", "namespace_stats"])
def test_stats_queries_use_indexes(store, verb):
    fill(store)
    stmts = recorded(store, lambda tx: getattr(tx, verb)("main"))
    assert stmts
    for sql, lines in stmts:
        assert not full_scans(store, lines), f"{verb}: full scan in\n{sql}\n" + "\n".join(lines)


def test_metrics_gauges_use_indexes(store):
    """The dashboard's history samples these every 10 s and /metrics on each scrape: never a full scan."""
    fill(store)
    stmts = recorded(store, lambda tx: tx.metrics_gauges(T0 + 1000))
    assert stmts
    for sql, lines in stmts:
        assert not full_scans(store, lines), f"metrics_gauges: full scan in\n{sql}\n" + "\n".join(lines)


def test_the_detector_sees_a_full_scan(store):
    """The check above can fail: an unindexed filter shows up as a full scan."""
    fill(store)
    with store.read() as tx:
        lines = plan_lines(store, tx.conn, tx.q("SELECT * FROM workflows WHERE input IS NULL"), ())
    assert full_scans(store, lines)


def test_partial_indexes_name_the_terminal_statuses_as_the_queries_do():
    """SQLite uses a partial index only when the query repeats its WHERE: both spell TERMINAL the same."""
    from assay.store.migrations import TERMINAL_SQL as in_migrations
    from assay.store.sql.core import TERMINAL_SQL as in_queries

    assert in_migrations == in_queries
