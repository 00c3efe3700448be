"""Store contract: namespaces, workflows, list filters, workflow-task dispatch and leases, events,
transactions. Written against the Store/Tx ABC only, so every backend runs the same tests."""

from __future__ import annotations

import pytest

from tests.store.records import T0, ready, wf


def insert(store, *recs):
    with store.tx() as tx:
        for r in recs:
            assert tx.insert_workflow(r)


# --- namespaces ----------------------------------------------------------------------------------


def test_main_namespace_exists_and_namespaces_are_unique(store):
    with store.tx() as tx:
        assert tx.get_namespace("main") is not None
        assert tx.insert_namespace("team-b", T0) is True
        assert tx.insert_namespace("team-b", T0 + 1) is False
        assert tx.insert_namespace("alpha", T0) is True
    with store.read() as tx:
        names = [n["name"] for n in tx.list_namespaces()]
        assert names == sorted(names) and {"main", "team-b", "alpha"} <= set(names)
        assert tx.get_namespace("team-b")["created_at"] == T0
        assert tx.get_namespace("nope") is None


def test_delete_namespace(store):
    with store.tx() as tx:
        tx.insert_namespace("gone", T0)
        assert tx.delete_namespace("gone") is True
        assert tx.delete_namespace("gone") is False
        assert tx.get_namespace("gone") is None


def test_namespace_stats_counts_by_status(store):
    insert(
        store,
        wf("a", namespace="ns"),
        wf("b", namespace="ns", status="RUNNING"),
        wf("c", namespace="ns", status="RUNNING"),
        wf("d", namespace="ns", status="COMPLETED"),
        wf("e", namespace="ns", status="FAILED"),
        wf("f", namespace="other", status="RUNNING"),
    )
    with store.read() as tx:
        st = tx.namespace_stats("ns")
    assert st["namespace"] == "ns"
    assert (st["total_workflows"], st["pending"], st["running"], st["completed"], st["failed"]) == (
        5,
        1,
        2,
        1,
        1,
    )
    assert st["schedules"] == 0 and st["workers"] == 0


# --- workflows -----------------------------------------------------------------------------------


def test_insert_get_and_duplicate_id_in_any_namespace(store):
    rec = wf("wf-1", input={"n": 1, "s": "x"}, search_attributes={"tier": "gold"})
    with store.tx() as tx:
        assert tx.insert_workflow(rec) is True
        assert tx.insert_workflow(wf("wf-1", namespace="other")) is False
    with store.read() as tx:
        got = tx.get_workflow("wf-1")
        assert got["namespace"] == "main"
        assert got["input"] == {"n": 1, "s": "x"}  # JSON columns come back as values
        assert got["search_attributes"] == {"tier": "gold"}
        assert got["result"] is None and got["error"] is None
        assert tx.get_workflow("missing") is None


def test_update_workflow_changes_only_named_fields(store):
    insert(store, wf("u", input=[1, 2]))
    with store.tx() as tx:
        tx.update_workflow("u", status="COMPLETED", result={"ok": True}, completed_at=T0 + 5)
    with store.read() as tx:
        got = tx.get_workflow("u")
    assert got["status"] == "COMPLETED" and got["result"] == {"ok": True} and got["completed_at"] == T0 + 5
    assert got["input"] == [1, 2] and got["workflow_type"] == "T"


def test_list_filters(store):
    insert(
        store,
        wf("p", created_at=T0, status="RUNNING", workflow_type="Parent", task_queue="q1"),
        wf("c1", created_at=T0 + 1, parent_id="p", task_queue="q2"),
        wf("c2", created_at=T0 + 2, parent_id="p", status="COMPLETED"),
        wf("x", created_at=T0 + 3, namespace="other"),
        wf("y", created_at=T0 + 4, claimed_by="w-1", status="RUNNING"),
    )
    with store.read() as tx:

        def ids(**kw):
            kw.setdefault("namespace", "main")
            return [r["id"] for r in tx.list_workflows(**kw)]

        assert ids() == ["y", "c2", "c1", "p"]  # newest first
        assert ids(status="RUNNING") == ["y", "p"]
        assert ids(workflow_type="Parent") == ["p"]
        assert ids(task_queue="q2") == ["c1"]
        assert ids(parent_id="p") == ["c2", "c1"]
        assert ids(claimed_by="w-1") == ["y"]
        assert ids(namespace="other") == ["x"]
        assert ids(namespace=None) == ["y", "x", "c2", "c1", "p"]
        assert ids(status="RUNNING", task_queue="q1") == ["p"]
        assert ids(status="CANCELLED") == []
        assert [r["id"] for r in tx.list_children("p")] == ["c1", "c2"]  # children: oldest first
        assert tx.list_children("nobody") == []


def test_list_limit_and_offset(store):
    insert(store, *[wf(f"w{i}", created_at=T0 + i) for i in range(7)])
    with store.read() as tx:

        def ids(**kw):
            return [r["id"] for r in tx.list_workflows(namespace="main", **kw)]

        assert ids(limit=3) == ["w6", "w5", "w4"]
        assert ids(limit=3, offset=3) == ["w3", "w2", "w1"]
        assert ids(limit=3, offset=6) == ["w0"]
        assert ids(limit=3, offset=10) == []
        assert ids(limit=None) == [f"w{i}" for i in range(6, -1, -1)]
        assert ids(limit=None, offset=5) == ["w1", "w0"]
        assert ids(limit=0) == []


@pytest.fixture
def searchable(store):
    insert(
        store,
        wf("str1", search_attributes={"k": "1", "env": "prod"}),
        wf("num1", search_attributes={"k": 1, "env": "prod"}),
        wf("flt1", search_attributes={"k": 1.0}),
        wf("true", search_attributes={"k": True}),
        wf("false", search_attributes={"k": False}),
        wf("zero", search_attributes={"k": 0}),
        wf("null", search_attributes={"k": None}),
        wf("nested", search_attributes={"k": {"a": 1}, "a.b": "dot", 'q"x': "quote", "[0]": "br"}),
        wf("nokey", search_attributes={"other": 1}),
        wf("nosa", search_attributes=None),
        wf("array", search_attributes=[1, 2]),
    )
    return store


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"k": "1"}, {"str1"}),  # string matches only the string
        ({"k": 1}, {"num1", "flt1"}),  # numbers compare as numbers (1 == 1.0), never the string "1"
        ({"k": 1.0}, {"num1", "flt1"}),
        ({"k": True}, {"true"}),  # a bool is not the number 1
        ({"k": False}, {"false"}),  # and false is not 0
        ({"k": 0}, {"zero"}),
        ({"k": None}, set()),  # null / objects / arrays never match
        ({"k": {"a": 1}}, set()),
        ({"k": [1]}, set()),
        ({"k": "1", "env": "prod"}, {"str1"}),  # AND of predicates
        ({"k": 1, "env": "prod"}, {"num1"}),
        ({"missing": 1}, set()),  # a missing key never matches
        ({"a.b": "dot"}, {"nested"}),  # keys are literal top-level names, not JSON paths
        ({'q"x': "quote"}, {"nested"}),
        ({"[0]": "br"}, {"nested"}),
        ({"a": 1}, set()),
        ({}, {"str1", "num1", "flt1", "true", "false", "zero", "null", "nested", "nokey", "nosa", "array"}),
    ],
)
def test_search_attribute_equality_is_json_typed(searchable, query, expected):
    with searchable.read() as tx:
        assert {r["id"] for r in tx.list_workflows(namespace="main", search=query, limit=None)} == expected


# --- dispatch and leases ---------------------------------------------------------------------------


def test_claim_takes_the_oldest_ready_workflow_and_moves_pending_to_running(store):
    insert(store, ready("late", at=T0 + 5), ready("early", at=T0 + 1), ready("mid", at=T0 + 3))
    with store.tx() as tx:
        got = tx.claim_workflow_task("default", None, "w-1", T0 + 10)
    assert got["id"] == "early" and got["previous_status"] == "PENDING" and got["status"] == "RUNNING"
    with store.read() as tx:
        rec = tx.get_workflow("early")
    assert rec["status"] == "RUNNING" and rec["dispatch_claimed_by"] == "w-1"
    assert rec["dispatch_last_heartbeat"] == T0 + 10 and rec["needs_dispatch"] is False
    with store.tx() as tx:
        order = [tx.claim_workflow_task("default", None, "w-2", T0 + 10)["id"] for _ in range(2)]
        assert tx.claim_workflow_task("default", None, "w-2", T0 + 10) is None  # held ones are not claimable
    assert order == ["mid", "late"]


def test_claim_respects_queue_namespace_and_terminal_status(store):
    insert(
        store,
        ready("other-q", task_queue="q2"),
        ready("other-ns", namespace="ns2"),
        ready("done", status="COMPLETED"),
        wf("not-ready"),
    )
    with store.tx() as tx:
        assert tx.claim_workflow_task("default", "main", "w", T0) is None
        assert tx.claim_workflow_task("default", "ns2", "w", T0)["id"] == "other-ns"
        assert tx.claim_workflow_task("q2", None, "w", T0)["id"] == "other-q"
        assert tx.claim_workflow_task("default", None, "w", T0) is None


def test_mark_dispatchable_while_leased_redispatches_after_release(store):
    insert(store, ready("a"))
    with store.tx() as tx:
        tx.claim_workflow_task("default", None, "w-1", T0)
        tx.mark_dispatchable("a", T0 + 1)  # e.g. a signal arrives during the run
        assert tx.claim_workflow_task("default", None, "w-2", T0 + 1) is None
        assert tx.dispatchable_queues() == []
        tx.release_lease("a", "w-2")  # not the holder: no effect
        assert tx.get_workflow("a")["dispatch_claimed_by"] == "w-1"
        tx.release_lease("a", "w-1")
        assert tx.dispatchable_queues() == ["default"]
        again = tx.claim_workflow_task("default", None, "w-2", T0 + 2)
    assert again["id"] == "a" and again["previous_status"] == "RUNNING"


def test_mark_dispatchable_ignores_terminal_workflows(store):
    insert(store, wf("done", status="FAILED"))
    with store.tx() as tx:
        tx.mark_dispatchable("done", T0)
        assert tx.get_workflow("done")["needs_dispatch"] is False
        assert tx.claim_workflow_task("default", None, "w", T0) is None


def test_extend_and_recover_stale_leases(store):
    insert(store, ready("a"), ready("b"), ready("c", status="RUNNING"))
    with store.tx() as tx:
        for w in ("w-1", "w-1", "w-2"):
            tx.claim_workflow_task("default", None, w, T0)
        assert tx.oldest_lease() == T0
        assert tx.extend_leases("w-1", T0 + 20) == 2
        assert tx.extend_leases("nobody", T0 + 20) == 0
        assert tx.oldest_lease() == T0
        recovered = tx.recover_stale_leases(T0 + 10)  # only w-2's lease is older than the cutoff
        assert len(recovered) == 1
        rec = tx.get_workflow(recovered[0])
        assert rec["dispatch_claimed_by"] is None and rec["needs_dispatch"] is True
        assert tx.oldest_lease() == T0 + 20
        again = tx.claim_workflow_task("default", None, "w-3", T0 + 21)
    assert again["id"] == recovered[0]


def test_recover_does_not_redispatch_a_terminal_workflow(store):
    insert(store, ready("a"))
    with store.tx() as tx:
        tx.claim_workflow_task("default", None, "w-1", T0)
        tx.update_workflow("a", status="COMPLETED")
        assert tx.recover_stale_leases(T0 + 100) == ["a"]
        assert tx.get_workflow("a")["dispatch_claimed_by"] is None
        assert tx.claim_workflow_task("default", None, "w-2", T0 + 100) is None


# --- events ----------------------------------------------------------------------------------------


def test_event_seq_is_gap_free_per_workflow(store):
    insert(store, wf("a"), wf("b"))
    with store.tx() as tx:
        seqs = [tx.append_event("a", "E", {"i": i}, T0 + i) for i in range(5)]
        assert tx.append_event("b", "E", None, T0) == 1
    assert seqs == [1, 2, 3, 4, 5]
    with store.read() as tx:
        evs = tx.list_events("a")
        assert [e["seq"] for e in evs] == [1, 2, 3, 4, 5]
        assert evs[2]["payload"] == {"i": 2} and evs[2]["event_type"] == "E" and evs[2]["timestamp"] == T0 + 2
        assert [e["seq"] for e in tx.list_events("a", after_seq=3)] == [4, 5]
        assert tx.list_events("missing") == []


def test_event_seq_stays_gap_free_after_a_rolled_back_append(store):
    insert(store, wf("a"))
    with store.tx() as tx:
        tx.append_event("a", "E", None, T0)
    with pytest.raises(RuntimeError), store.tx() as tx:
        tx.append_event("a", "Lost", None, T0)
        raise RuntimeError("boom")
    with store.tx() as tx:
        assert tx.append_event("a", "E", None, T0) == 2
    with store.read() as tx:
        assert [e["event_type"] for e in tx.list_events("a")] == ["E", "E"]


def test_append_event_for_unknown_workflow_fails(store):
    with pytest.raises(Exception), store.tx() as tx:  # noqa: B017 - any error: the contract is "refuse"
        tx.append_event("ghost", "E", None, T0)
    with store.read() as tx:
        assert tx.list_events("ghost") == []


def test_rollback_on_exception_leaves_nothing(store):
    with pytest.raises(ValueError), store.tx() as tx:
        tx.insert_namespace("tmp", T0)
        tx.insert_workflow(ready("r1"))
        tx.append_event("r1", "WorkflowStarted", None, T0)
        tx.insert_timer("r1", 1, T0)
        raise ValueError("abort")
    with store.read() as tx:
        assert tx.get_namespace("tmp") is None
        assert tx.get_workflow("r1") is None
        assert tx.list_events("r1") == []
        assert tx.next_timer_due() is None
    with store.tx() as tx:  # the store is usable afterwards
        assert tx.insert_workflow(ready("r1"))
