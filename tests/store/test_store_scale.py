"""Store contract for the scale work: keyset cursors, search-attribute filters (side table on SQLite, GIN
on Postgres: the same answers), per-status counts. Runs on every backend."""

from __future__ import annotations

import itertools
import random

import pytest

from tests.store.records import T0, wf

ATTRS = [
    {"tier": "gold", "n": 1},
    {"tier": "silver", "n": 1.0},
    {"tier": "gold", "n": 2, "vip": True},
    {"tier": "1", "n": "1"},
    {"vip": False, "n": 0},
    {"tier": None, "list": [1], "obj": {"a": 1}},
    {"a.b": "dot", "we'ird": "q"},
    {"big": 2**70},
    {},
    None,
    ["not", "an", "object"],
]
QUERIES = [
    {"tier": "gold"},
    {"tier": "gold", "n": 2},
    {"n": 1},
    {"n": 1.0},
    {"n": "1"},
    {"tier": "1"},
    {"vip": True},
    {"vip": False},
    {"n": 0},
    {"tier": None},
    {"list": [1]},
    {"obj": {"a": 1}},
    {"a.b": "dot"},
    {"we'ird": "q"},
    {"big": 2**70},
    {"missing": "x"},
    {"tier": "gold", "vip": False},
]


def _json_eq(a, b) -> bool:
    """JSON-typed equality: numbers by value, booleans only equal booleans."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def expected(rows, query) -> list[str]:
    out = []
    for r in rows:
        sa = r["search_attributes"]
        if not isinstance(sa, dict):
            continue
        ok = all(
            k in sa and v is not None and not isinstance(v, (dict, list)) and _json_eq(sa[k], v)
            for k, v in query.items()
        )
        if ok:
            out.append(r["id"])
    return sorted(out, key=lambda i: [x for x in rows if x["id"] == i][0]["created_at"], reverse=True)


def test_search_filters_match_a_reference_on_every_backend(store):
    rows = [wf(f"s{i:02d}", created_at=T0 + i, search_attributes=a) for i, a in enumerate(ATTRS * 3)]
    with store.tx() as tx:
        for r in rows:
            assert tx.insert_workflow(r)
        tx.insert_namespace("other", T0)
        tx.insert_workflow(wf("elsewhere", namespace="other", search_attributes={"tier": "gold"}))
    with store.read() as tx:
        for q in QUERIES:
            got = [w["id"] for w in tx.list_workflows(namespace="main", search=q, limit=None)]
            assert got == expected(rows, q), q
        assert [w["id"] for w in tx.list_workflows(namespace="other", search={"tier": "gold"})] == [
            "elsewhere"
        ]


def test_search_follows_updates_and_deletes(store):
    with store.tx() as tx:
        tx.insert_workflow(wf("u1", search_attributes={"tier": "gold"}))
        tx.insert_workflow(wf("u2", created_at=T0 + 1, search_attributes={"tier": "gold"}))
    with store.tx() as tx:
        tx.update_workflow("u1", search_attributes={"tier": "silver", "x": 1})
        tx.delete_workflow("u2")
    with store.read() as tx:
        assert tx.list_workflows(namespace="main", search={"tier": "gold"}) == []
        assert [w["id"] for w in tx.list_workflows(namespace="main", search={"tier": "silver", "x": 1})] == [
            "u1"
        ]
    with store.tx() as tx:
        tx.update_workflow("u1", search_attributes=None)
    with store.read() as tx:
        assert tx.list_workflows(namespace="main", search={"tier": "silver"}) == []


@pytest.mark.parametrize("filters", [{}, {"status": "COMPLETED"}, {"search": {"tier": "gold"}}])
def test_cursor_pages_have_no_gaps_or_duplicates_under_concurrent_inserts(store, filters):
    """Rows share created_at values (ties broken by id); new rows arrive between pages: the pages still
    hold every row that existed when paging began, once, in order; newer rows never shift them."""
    rnd = random.Random(3)
    rows = [
        wf(f"c{i:03d}", created_at=T0 + i // 3, status=rnd.choice(["COMPLETED", "FAILED"]),
           search_attributes={"tier": rnd.choice(["gold", "silver"])})
        for i in range(90)
    ]  # fmt: skip
    with store.tx() as tx:
        for r in rows:
            tx.insert_workflow(r)
    want = [w["id"] for w in sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)]
    if "status" in filters:
        want = [i for i in want if next(r for r in rows if r["id"] == i)["status"] == "COMPLETED"]
    if "search" in filters:
        want = [
            i for i in want if next(r for r in rows if r["id"] == i)["search_attributes"]["tier"] == "gold"
        ]
    got: list[str] = []
    after = None
    fresh = itertools.count()
    while True:
        with store.read() as tx:
            page = tx.list_workflows(namespace="main", limit=7, after=after, **filters)
        got += [w["id"] for w in page]
        if len(page) < 7:
            break
        after = (page[-1]["created_at"], page[-1]["id"])
        with store.tx() as tx:  # a newer start, and one in the same second as the cursor row
            n = next(fresh)
            tx.insert_workflow(wf(f"new{n}", created_at=T0 + 1000 + n, status="COMPLETED",
                                  search_attributes={"tier": "gold"}))  # fmt: skip
    assert got == want
    assert len(set(got)) == len(got)


def test_offset_pages_still_work(store):
    with store.tx() as tx:
        for i in range(30):
            tx.insert_workflow(wf(f"o{i:02d}", created_at=T0 + i))
    with store.read() as tx:
        pages = [tx.list_workflows(namespace="main", limit=8, offset=k) for k in range(0, 30, 8)]
        unbounded = tx.list_workflows(namespace="main", limit=None, offset=25)
    assert [w["id"] for p in pages for w in p] == [f"o{i:02d}" for i in range(29, -1, -1)]
    assert [w["id"] for w in unbounded] == ["o04", "o03", "o02", "o01", "o00"]
