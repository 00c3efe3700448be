"""Store contract of the merged statements (UPDATE/INSERT ... RETURNING): claims come back whole and
conditional, appends carry the workflow's own changes, a start inserts its first event."""

from __future__ import annotations

from tests.store.records import T0, activity, ready, wf


def test_claim_activities_takes_the_oldest_due_rows_whole(store):
    with store.tx() as tx:
        tx.insert_workflow(wf("w", status="RUNNING"))
        ids = [
            tx.insert_activity(activity("w", s, scheduled_at=T0 + at, input={"n": s}))
            for s, at in ((1, 2), (2, 0), (3, 1), (4, 50))
        ]
    with store.tx() as tx:
        got = tx.claim_activities("default", None, "wk", T0 + 10, 2)
    assert [a["seq"] for a in got] == [2, 3]  # oldest first, the future one never
    assert all(
        a["status"] == "RUNNING" and a["claimed_by"] == "wk" and a["started_at"] == T0 + 10 for a in got
    )
    assert [a["input"] for a in got] == [{"n": 2}, {"n": 3}]  # JSON decoded
    with store.read() as tx:
        assert [tx.get_activity(i)["status"] for i in ids] == ["PENDING", "RUNNING", "RUNNING", "PENDING"]
    with store.tx() as tx:
        assert [a["seq"] for a in tx.claim_activities("default", None, "wk", T0 + 10, 5)] == [1]


def test_claim_activity_by_id_only_when_pending_and_due(store):
    with store.tx() as tx:
        tx.insert_workflow(wf("w", status="RUNNING"))
        now_id = tx.insert_activity(activity("w", 1))
        later_id = tx.insert_activity(activity("w", 2, scheduled_at=T0 + 100))
    with store.tx() as tx:
        assert tx.claim_activity_by_id(later_id, "wk", T0) is None
        got = tx.claim_activity_by_id(now_id, "wk", T0)
        assert got["id"] == now_id and got["status"] == "RUNNING" and got["claimed_by"] == "wk"
        assert tx.claim_activity_by_id(now_id, "other", T0) is None  # already claimed: fenced


def test_insert_activity_if_new_is_idempotent_on_seq(store):
    with store.tx() as tx:
        tx.insert_workflow(wf("w", status="RUNNING"))
        first = tx.insert_activity_if_new(activity("w", 1, input=[1, {"a": None}]))
        assert first["id"] > 0 and first["status"] == "PENDING" and first["input"] == [1, {"a": None}]
        assert first["result"] is None and first["attempt"] == 1
        assert tx.insert_activity_if_new(activity("w", 1, input="other")) is None
        assert tx.get_activity_by_seq("w", 1)["input"] == [1, {"a": None}]
        assert len(tx.list_activities("w")) == 1


def test_claim_workflow_tasks_leases_and_reports_the_previous_status(store):
    with store.tx() as tx:
        tx.insert_workflow(ready("new", at=T0))
        tx.insert_workflow(ready("again", at=T0 + 1, status="RUNNING", dispatch_count=2))
        tx.insert_workflow(ready("later", at=T0 + 100))
    with store.tx() as tx:
        got = tx.claim_workflow_tasks("default", "main", "wk", T0 + 5, 10)
    assert [(r["id"], r["previous_status"], r["status"]) for r in got] == [
        ("new", "PENDING", "RUNNING"),
        ("again", "RUNNING", "RUNNING"),
    ]
    assert [r["dispatch_count"] for r in got] == [1, 3]
    assert all(r["dispatch_claimed_by"] == "wk" and r["needs_dispatch"] is False for r in got)
    with store.read() as tx:
        row = tx.get_workflow("new")
        assert row["status"] == "RUNNING" and row["updated_at"] == T0 + 5 and row["claimed_by"] == "wk"
    with store.tx() as tx:
        assert tx.claim_workflow_tasks("default", "main", "wk2", T0 + 5, 10) == []  # leased


def test_claim_workflow_by_id_is_conditional(store):
    with store.tx() as tx:
        tx.insert_workflow(ready("ok", at=T0))
        tx.insert_workflow(ready("future", at=T0 + 100))
        tx.insert_workflow(ready("done", at=T0, status="COMPLETED"))
        tx.insert_workflow(wf("idle", status="RUNNING"))
    with store.tx() as tx:
        for wf_id in ("future", "done", "idle", "missing"):
            assert tx.claim_workflow_by_id(wf_id, "wk", T0 + 1) is None, wf_id
        got = tx.claim_workflow_by_id("ok", "wk", T0 + 1)
        assert got["previous_status"] == "PENDING" and got["status"] == "RUNNING"
        assert tx.claim_workflow_by_id("ok", "wk2", T0 + 1) is None  # leased: fenced


def test_release_lease_answers_only_the_holder(store):
    with store.tx() as tx:
        tx.insert_workflow(ready("w", at=T0))
        tx.claim_workflow_by_id("w", "wk", T0)
        assert tx.release_lease("w", "other") is None
        tx.mark_dispatchable("w", T0 + 1)
        after = tx.release_lease("w", "wk")
        assert after["status"] == "RUNNING" and after["needs_dispatch"]
        assert tx.release_lease("w", "wk") is None  # released already
        assert tx.get_workflow("w")["dispatch_claimed_by"] is None


def test_append_event_carries_fields_and_dispatch(store):
    with store.tx() as tx:
        tx.insert_workflow(wf("live", status="RUNNING"))
        tx.insert_workflow(wf("waiting", status="RUNNING", needs_dispatch=1, ready_at=T0))
        tx.insert_workflow(wf("ended", status="COMPLETED"))
        assert tx.append_event("live", "ActivityCompleted", {"r": 1}, T0 + 5, dispatchable=True) == 1
        tx.append_event("waiting", "SignalReceived", None, T0 + 5, dispatchable=True)
        tx.append_event("ended", "SignalReceived", None, T0 + 5, dispatchable=True)
        seq = tx.append_event(
            "live", "WorkflowCompleted", 7, T0 + 6, fields={"status": "COMPLETED", "result": 7}
        )
        assert seq == 2
        live, waiting, ended = (tx.get_workflow(i) for i in ("live", "waiting", "ended"))
        assert live["needs_dispatch"] and live["ready_at"] == T0 + 5
        assert live["status"] == "COMPLETED" and live["result"] == 7 and live["last_seq"] == 2
        assert waiting["needs_dispatch"] and waiting["ready_at"] == T0  # already waiting: its time kept
        assert not ended["needs_dispatch"] and ended["ready_at"] is None and ended["last_seq"] == 1
        assert [e["payload"] for e in tx.list_events("live")] == [{"r": 1}, 7]


def test_insert_workflow_with_its_first_event(store):
    with store.tx() as tx:
        assert tx.insert_workflow(ready("w", at=T0 + 3), first_event=("WorkflowStarted", {"in": 1}))
        assert not tx.insert_workflow(ready("w", at=T0 + 9), first_event=("WorkflowStarted", "x"))
        row = tx.get_workflow("w")
        assert row["last_seq"] == 1
        (ev,) = tx.list_events("w")
        assert (ev["seq"], ev["event_type"], ev["payload"], ev["timestamp"]) == (
            1,
            "WorkflowStarted",
            {"in": 1},
            T0 + 3,
        )
        assert tx.append_event("w", "SignalReceived", None, T0 + 4) == 2


def test_update_activity_if_changes_only_what_was_seen(store):
    with store.tx() as tx:
        tx.insert_workflow(wf("w", status="RUNNING"))
        a = tx.insert_activity(activity("w", 1))
        seen = tx.claim_activity_by_id(a, "wk", T0)
    with store.tx() as tx:  # the attempt times out and is retried: the holder's record is stale now
        assert tx.update_activity_if(seen, status="PENDING", attempt=2, claimed_by=None)
    with store.tx() as tx:
        assert not tx.update_activity_if(
            seen, status="COMPLETED", result=1
        )  # a stale attempt cannot complete
        again = tx.claim_activity_by_id(a, "wk2", T0)
        assert not tx.update_activity_if({**again, "claimed_by": "wk"}, status="COMPLETED")  # another holder
        assert tx.update_activity_if(again, status="COMPLETED", result={"ok": True})
        got = tx.get_activity(a)
        assert (got["status"], got["attempt"], got["result"]) == ("COMPLETED", 2, {"ok": True})


def test_get_workflow_without_payloads(store):
    big = {"blob": "x" * 10_000}
    with store.tx() as tx:
        tx.insert_workflow(wf("w", status="RUNNING", input=big, search_attributes={"k": 1}))
        tx.update_workflow("w", result=[1, 2])
        full = tx.get_workflow("w")
        lean = tx.get_workflow("w", payloads=False)
    assert full["input"] == big and full["result"] == [1, 2]
    assert set(full) - set(lean) == {"input", "result"}  # every other column, decoded the same way
    assert {k: full[k] for k in lean} == lean and lean["search_attributes"] == {"k": 1}
    with store.read() as tx:
        assert tx.get_workflow("missing", payloads=False) is None
