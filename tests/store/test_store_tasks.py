"""Store contract: activities (claims, timeouts, lost workers), timers, signals, side effects, snapshots."""

from __future__ import annotations

import pytest

from tests.store.records import T0, activity, wf, worker


def setup(store, *acts, wfs=(("w", "main"),)):
    ids = []
    with store.tx() as tx:
        for wf_id, ns in wfs:
            tx.insert_workflow(wf(wf_id, namespace=ns, status="RUNNING"))
        for a in acts:
            ids.append(tx.insert_activity(a))
    return ids


def test_insert_and_read_activity(store):
    (a,) = setup(store, activity("w", 1, input={"x": [1, 2]}, non_retryable_errors=["Fatal"]))
    with store.read() as tx:
        got = tx.get_activity(a)
        assert got["id"] == a and got["seq"] == 1 and got["status"] == "PENDING"
        assert got["input"] == {"x": [1, 2]} and got["non_retryable_errors"] == ["Fatal"]
        assert tx.get_activity_by_seq("w", 1)["id"] == a
        assert tx.get_activity_by_seq("w", 2) is None
        assert tx.get_activity(a + 1000) is None


def test_update_and_list_activities(store):
    a1, a2, a3 = setup(store, activity("w", 1), activity("w", 3), activity("w", 2))
    with store.tx() as tx:
        tx.update_activity(a2, status="COMPLETED", result={"r": 1}, completed_at=T0 + 1)
        assert [a["seq"] for a in tx.list_activities("w")] == [1, 2, 3]
        assert [a["id"] for a in tx.list_activities("w", ("PENDING",))] == [a1, a3]
        assert tx.get_activity(a2)["result"] == {"r": 1}


def test_claim_activity_only_when_due_oldest_first(store):
    late, early, future = setup(
        store,
        activity("w", 1, scheduled_at=T0 + 2),
        activity("w", 2, scheduled_at=T0 + 1),
        activity("w", 3, scheduled_at=T0 + 100),  # e.g. a retry still in its backoff
    )
    with store.tx() as tx:
        got = tx.claim_activity("default", None, "w-1", T0 + 5)
        assert got["id"] == early and got["status"] == "RUNNING"
        assert got["claimed_by"] == "w-1" and got["started_at"] == T0 + 5
        assert tx.claim_activity("default", None, "w-1", T0 + 5)["id"] == late
        assert tx.claim_activity("default", None, "w-1", T0 + 99.9) is None
        assert tx.claim_activity("default", None, "w-1", T0 + 100)["id"] == future
        assert tx.claim_activity("default", None, "w-1", T0 + 1000) is None


def test_claim_activity_is_scoped_to_queue_and_namespace(store):
    main_a, other_a, q2 = setup(
        store,
        activity("w", 1),
        activity("o", 1),
        activity("w", 2, task_queue="q2"),
        wfs=(("w", "main"), ("o", "team")),
    )
    with store.tx() as tx:
        assert tx.claim_activity("default", "team", "w-t", T0)["id"] == other_a
        assert tx.claim_activity("default", "team", "w-t", T0) is None
        assert tx.claim_activity("q2", "main", "w-m", T0)["id"] == q2
        assert tx.claim_activity("default", "main", "w-m", T0)["id"] == main_a


def test_expired_activities_start_to_close_and_heartbeat(store):
    s2c, hb, fresh, beat = setup(
        store,
        activity("w", 1, start_to_close_secs=10),
        activity("w", 2, heartbeat_timeout_secs=5),
        activity("w", 3, heartbeat_timeout_secs=5),
        activity("w", 4, heartbeat_timeout_secs=5),
    )
    with store.tx() as tx:
        for _ in range(4):
            tx.claim_activity("default", None, "w-1", T0)
        tx.update_activity(fresh, started_at=T0 + 4)
        tx.update_activity(beat, last_heartbeat=T0 + 3)
        assert {a["id"] for a in tx.expired_activities(T0 + 4.9, T0)} == set()
        assert {a["id"] for a in tx.expired_activities(T0 + 5, T0)} == {hb}
        assert {a["id"] for a in tx.expired_activities(T0 + 9, T0)} == {hb, fresh, beat}
        assert {a["id"] for a in tx.expired_activities(T0 + 10, T0)} == {s2c, hb, fresh, beat}
        # heartbeat timeouts count from the engine start (grace): nobody could beat while it was down
        assert {a["id"] for a in tx.expired_activities(T0 + 9, T0 + 8)} == set()
        assert tx.next_activity_deadline(T0) == T0 + 5
        assert tx.next_activity_deadline(T0 + 8) == T0 + 10


def test_next_pending_activity_and_held_by(store):
    a1, a2, a3 = setup(
        store,
        activity("w", 1, scheduled_at=T0 + 3),
        activity("w", 2, scheduled_at=T0 + 7, task_queue="q9"),
        activity("w", 3, scheduled_at=T0),
    )
    with store.tx() as tx:
        assert tx.next_pending_activity(T0)["id"] == a1
        got = tx.next_pending_activity(T0 + 3)
        assert got["id"] == a2 and got["task_queue"] == "q9" and got["scheduled_at"] == T0 + 7
        assert tx.next_pending_activity(T0 + 7) is None
        assert tx.pending_queues_due(T0, T0 + 2) == []
        assert tx.pending_queues_due(T0 - 1, T0 + 3) == ["default"]
        assert sorted(tx.pending_queues_due(T0 - 1, T0 + 7)) == ["default", "q9"]
        assert tx.pending_queues_due(T0 + 3, T0 + 7) == ["q9"]
        tx.claim_activity("default", None, "w-x", T0)
        assert tx.activities_held_by("w-x") == [a3]
        assert tx.activities_held_by("w-y") == []


def test_lost_worker_activities_and_leases(store):
    with store.tx() as tx:
        tx.insert_worker(worker("w-lost", lost_after_secs=10.0, heartbeat_interval_secs=3.0))
        tx.insert_worker(worker("w-classic"))  # declared no heartbeat interval: never "lost"
    (a, b) = setup(store, activity("w", 1), activity("w", 2))
    with store.tx() as tx:
        tx.insert_workflow(wf("leased", needs_dispatch=1, ready_at=T0))
        tx.claim_activity("default", None, "w-lost", T0)
        tx.claim_activity("default", None, "w-classic", T0)
        tx.claim_workflow_task("default", None, "w-lost", T0)
        assert tx.lost_worker_activities(T0 + 10, T0) == []
        assert [x["id"] for x in tx.lost_worker_activities(T0 + 11, T0)] == [a]
        assert tx.lost_worker_activities(T0 + 11, T0 + 5) == []  # grace after engine start
        tx.touch_worker("w-lost", T0 + 8)
        assert tx.lost_worker_activities(T0 + 11, T0) == []
        assert tx.release_lost_worker_leases(T0 + 11, T0) == []
        assert tx.release_lost_worker_leases(T0 + 19, T0) == ["leased"]
        rec = tx.get_workflow("leased")
        assert rec["dispatch_claimed_by"] is None and rec["needs_dispatch"] is True


# --- timers --------------------------------------------------------------------------------------


def test_timers_idempotent_on_seq_due_and_fired_once(store):
    setup(store)
    with store.tx() as tx:
        t1 = tx.insert_timer("w", 1, T0 + 10)
        assert t1 is not None
        assert tx.insert_timer("w", 1, T0 + 99) is None  # same seq: no second timer
        t2 = tx.insert_timer("w", 2, T0 + 5)
        assert tx.next_timer_due() == T0 + 5
        assert tx.due_timers(T0 + 4) == []
        assert [(t["id"], t["seq"], t["fire_at"]) for t in tx.due_timers(T0 + 10)] == [
            (t2, 2, T0 + 5),
            (t1, 1, T0 + 10),
        ]
        assert tx.mark_timer_fired(t2) is True
        assert tx.mark_timer_fired(t2) is False
        assert [t["id"] for t in tx.due_timers(T0 + 10)] == [t1]
        assert tx.next_timer_due() == T0 + 10


def test_cancel_timers(store):
    setup(store, wfs=(("w", "main"), ("v", "main")))
    with store.tx() as tx:
        tx.insert_timer("w", 1, T0)
        tx.insert_timer("w", 2, T0 + 1)
        tx.insert_timer("v", 1, T0 + 2)
        assert tx.cancel_timers("w") == 2
        assert tx.cancel_timers("w") == 0
        assert [t["workflow_id"] for t in tx.due_timers(T0 + 100)] == ["v"]


# --- signals, side effects, snapshots ----------------------------------------------------------


def test_signals_need_an_existing_workflow(store):
    setup(store)
    with store.tx() as tx:
        tx.insert_signal("w", "go", {"p": 1}, T0)
        tx.insert_signal("w", "go", None, T0)
    with pytest.raises(Exception), store.tx() as tx:  # noqa: B017 - referential integrity, any error
        tx.insert_signal("ghost", "go", None, T0)


def test_side_effects_first_value_wins(store):
    setup(store)
    with store.tx() as tx:
        assert tx.insert_side_effect("w", 1, "rand", 42) is True
        assert tx.insert_side_effect("w", 1, "rand", 43) is False
        assert tx.insert_side_effect("w", 2, "rand", None) is True
        assert tx.insert_side_effect("w", 2, "rand", 7) is False


def test_snapshot_keeps_only_the_latest(store):
    setup(store, wfs=(("w", "main"), ("v", "main")))
    with store.tx() as tx:
        assert tx.get_snapshot("w") is None
        tx.upsert_snapshot("w", 3, {"count": 1}, T0)
        tx.upsert_snapshot("w", 5, {"count": 2}, T0 + 1)
        tx.upsert_snapshot("v", 1, "other", T0)
    with store.read() as tx:
        snap = tx.get_snapshot("w")
        assert (snap["event_seq"], snap["state_json"], snap["created_at"]) == (5, {"count": 2}, T0 + 1)
        assert tx.get_snapshot("v")["state_json"] == "other"
    with store.tx() as tx:
        tx.upsert_snapshot("w", 5, None, T0 + 2)  # same seq replaces too
        snap = tx.get_snapshot("w")
        assert snap["state_json"] is None and snap["created_at"] == T0 + 2
