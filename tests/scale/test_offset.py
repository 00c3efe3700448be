"""`?offset=` pages equal the naive OFFSET query on both backends, including deep offsets that jump to the
nearest page-bucket edge (migration 7) and walk the list index from there, newest- or oldest-first."""

from __future__ import annotations

import re

import pytest

from assay.store.buckets import COARSE_SPAN, DIMS, FINE_SPAN
from assay.store.sql import paging
from tests.scale.test_query_plans import Recorder
from tests.store.records import T0, wf

STATUSES = ["COMPLETED", "FAILED", "RUNNING", "PENDING"]
#: a coarse bucket edge: rows on it, just below it and across several fine and coarse buckets
EDGE = (T0 // 2**COARSE_SPAN + 1) * 2**COARSE_SPAN
FINE = 2**FINE_SPAN
TIMES = [EDGE - 2**COARSE_SPAN - 3, EDGE - 2 * FINE, EDGE - FINE - 0.5, EDGE - FINE, EDGE - 0.25, EDGE,
         EDGE + 1, EDGE + FINE, EDGE + 3 * FINE - 1, EDGE + 2**COARSE_SPAN, EDGE + 2**COARSE_SPAN + FINE]  # fmt: skip
FILTERS = [
    {},
    {"status": "COMPLETED"},
    {"status": "RUNNING"},
    {"status": "CANCELLED"},  # no rows
    {"workflow_type": "T1"},
    {"task_queue": "q0"},
    {"search": {"tier": "gold"}},
    {"search": {"n": 1}},
    {"search": {"n": 1.0}},  # JSON-equal to 1
    {"search": {"vip": True}},
]
#: search filters the buckets do not count: they walk from the newest end
UNCOUNTED = [
    {"search": {"tier": "gold", "n": 1}},
    {"search": {"long": "x" * 300}},
    {"search": {"tier": "gold"}, "status": "RUNNING"},
]
N = 45


@pytest.fixture
def always_buckets(monkeypatch):
    monkeypatch.setattr(paging, "SHALLOW", 0)  # every offset takes the bucket path


def fill(store) -> None:
    with store.tx() as tx:
        for i in range(N):  # ties on created_at (3 rows per time): the id breaks them
            tx.insert_workflow(
                wf(f"wf-{i:03d}", created_at=TIMES[(i // 3) % len(TIMES)] + 10 * (i // 33),
                   status=STATUSES[i % 4], workflow_type=f"T{i % 2}", task_queue=f"q{i % 3}",
                   search_attributes={"tier": ["gold", "silver"][i % 2], "n": i % 3, "vip": i % 5 == 0,
                                      "long": "x" * 300, "list": [1]})
            )  # fmt: skip
        tx.insert_namespace("other", T0)
        for i in range(5):
            tx.insert_workflow(wf(f"o-{i}", namespace="other", created_at=EDGE + i, status="COMPLETED"))


def naive(store, filters: dict, limit: int | None, offset: int) -> list[str]:
    if "search" in filters:  # the plain listing (offset 0: no buckets), sliced
        with store.read() as tx:
            ids = [r["id"] for r in tx.list_workflows(namespace="main", limit=None, **filters)]
        return ids[offset : offset + limit] if limit is not None else ids[offset:]
    sql = "SELECT id FROM workflows WHERE namespace = ?"
    params = ["main"]
    for col, val in filters.items():
        sql += f" AND {col} = ?"
        params.append(val)
    sql += " ORDER BY created_at DESC, id DESC"
    with store.read() as tx:
        ids = [r[0] for r in tx._exec(sql, params).fetchall()]
    return ids[offset : offset + limit] if limit is not None else ids[offset:]


def listed(store, filters: dict, limit: int | None, offset: int) -> tuple[list[str], list[str]]:
    with store.read() as tx:
        rec = Recorder(tx.conn)
        tx.conn = rec
        got = [r["id"] for r in tx.list_workflows(namespace="main", limit=limit, offset=offset, **filters)]
        tx.conn = rec.conn
    return got, [sql for sql, _ in rec.statements]


@pytest.mark.parametrize(
    "filters", FILTERS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()) or "all"
)
def test_offset_pages_equal_the_naive_query(store, filters, always_buckets):
    fill(store)
    walks = set()
    for limit in (1, 4, 50, None):
        for offset in range(0, N + 2):
            got, sqls = listed(store, filters, limit, offset)
            assert got == naive(store, filters, limit, offset), (limit, offset)
            assert offset == 0 or any("_buckets" in s for s in sqls)
            walks |= {
                ("asc" if re.search(r"ORDER BY [\w.]*created_at, ", s) else "desc") + (" edge" if re.search(r"created_at [<>]", s) else " end")
                for s in sqls if (" FROM workflows WHERE" in s or "FROM workflow_search s" in s) and " OFFSET " in s
            }  # fmt: skip
    if filters.get("status") != "CANCELLED" and filters.get("search") != {
        "vip": True
    }:  # every way in was taken: from both ends and from edges
        assert walks == {"asc edge", "desc edge", "asc end", "desc end"}, walks


@pytest.mark.parametrize("filters", UNCOUNTED, ids=["2 keys", "long value", "search+status"])
def test_uncounted_search_filters_walk_from_the_newest_end(store, filters, always_buckets):
    fill(store)
    for offset in (0, 3, 11):
        got, sqls = listed(store, filters, 4, offset)
        assert got == naive(store, filters, 4, offset)
        assert not any("_buckets" in s for s in sqls)


def test_shallow_offsets_walk_from_the_newest_end(store):
    fill(store)
    got, sqls = listed(store, {}, 5, 10)
    assert got == naive(store, {}, 5, 10)
    assert not any("workflow_buckets" in s for s in sqls)


def bucket_sums(store) -> dict:
    with store.read() as tx:
        rows = tx._exec(
            "SELECT namespace, dim, val, span, bucket, SUM(n) FROM workflow_buckets "
            "GROUP BY namespace, dim, val, span, bucket HAVING SUM(n) <> 0"
        ).fetchall()
    return {tuple(r[:5]): int(r[5]) for r in rows}


def recount(store) -> dict:
    out: dict = {}
    with store.read() as tx:
        for ns, st, ty, qu, ca in tx._exec(
            "SELECT namespace, status, workflow_type, task_queue, created_at FROM workflows"
        ).fetchall():
            for dim, col in DIMS:
                val = {"status": st, "workflow_type": ty, "task_queue": qu, None: ""}[col]
                for span in (FINE_SPAN, COARSE_SPAN):
                    key = (ns, dim, val, span, int(ca / 2**span))
                    out[key] = out.get(key, 0) + 1
    return out


def search_sums(store) -> dict:
    """search_buckets as {(namespace, key, vtype, value, span, bucket): n} on both backends."""
    with store.read() as tx:
        if store.dialect == "sqlite":
            sql = "SELECT namespace, key, vtype, value, span, bucket, SUM(n) FROM search_buckets"
            sql += " GROUP BY namespace, key, vtype, value, span, bucket HAVING SUM(n) <> 0"
            return {tuple(r[:6]): int(r[6]) for r in tx._exec(sql).fetchall()}
        sql = "SELECT namespace, key, value, span, bucket, SUM(n) FROM search_buckets"
        sql += " GROUP BY namespace, key, value, span, bucket HAVING SUM(n) <> 0"
        return {(r[0], r[1], *_typed(r[2]), r[3], r[4]): int(r[5]) for r in tx._exec(sql).fetchall()}


def _typed(v) -> tuple:
    return ("b", int(v)) if isinstance(v, bool) else ("s", v) if isinstance(v, str) else ("n", v)


def search_recount(store) -> dict:
    out: dict = {}
    with store.read() as tx:
        rows = [
            (r["namespace"], r["search_attributes"], r["created_at"]) for r in tx.list_workflows(limit=None)
        ]
    for ns, attrs, ca in rows:
        for k, v in attrs.items() if isinstance(attrs, dict) else ():
            if not isinstance(v, (str, int, float)) or len(k) > 256 or (isinstance(v, str) and len(v) > 256):
                continue
            for span in (FINE_SPAN, COARSE_SPAN):
                key = (ns, k, *_typed(v), span, int(ca / 2**span))
                out[key] = out.get(key, 0) + 1
    return out


def test_buckets_follow_every_kind_of_write(engine, always_buckets):
    """Starts, transitions, deletes, moves (namespace, created_at, type, queue) keep the buckets equal to
    the rows, and deep pages equal to the naive query, for every filter the buckets count."""
    from tests.engine.support import start

    for i in range(12):
        start(engine, f"w{i}")
    engine.terminate("w3")
    engine.cancel("w5")
    with engine.store.tx() as tx:
        tx.insert_namespace("elsewhere", T0)
        tx.delete_workflow("w7")
        tx.update_workflow("w1", created_at=EDGE + 5)
        tx.update_workflow("w2", workflow_type="Other", status="RUNNING")
        tx.update_workflow("w4", task_queue="q-moved")
        tx.update_workflow("w6", namespace="elsewhere")
        tx.update_workflow("w8", status="FAILED", created_at=EDGE - 5)
        for i, attrs in enumerate([{"a": "x", "b": 2, "c": True}, {"a": "x", "big": "y" * 300}, {"a": 2.5}]):
            tx.insert_workflow(wf(f"s{i}", created_at=EDGE - 1 + i, search_attributes=attrs))
        tx.update_workflow("s0", search_attributes={"a": "z", "b": 2})
        tx.update_workflow("s1", search_attributes=["not", "an", "object"])
        tx.update_workflow("s2", created_at=EDGE + 2**COARSE_SPAN, namespace="elsewhere")
        tx.update_workflow("w9", search_attributes={"a": "x"})
        tx.insert_workflow(wf("s3", search_attributes={"a": "x"}))
        tx.delete_workflow("s3")
    assert bucket_sums(engine.store) == recount(engine.store)
    assert search_sums(engine.store) == search_recount(engine.store) != {}
    with engine.store.read() as tx:
        w0 = tx.get_workflow("w0")
    filters = [{}, {"status": "PENDING"}, {"status": "FAILED"}, {"workflow_type": w0["workflow_type"]},
               {"task_queue": w0["task_queue"]}, {"task_queue": "q-moved"}, {"search": {"a": "x"}}]  # fmt: skip
    for f in filters:
        for offset in range(0, 13):
            got, _ = listed(engine.store, f, 3, offset)
            assert got == naive(engine.store, f, 3, offset), (offset, f)
