"""Store contract: schedules, workers, queue stats, API keys, archival."""

from __future__ import annotations

from tests.store.records import T0, activity, ready, schedule, wf, worker

# --- schedules -----------------------------------------------------------------------------------


def test_schedule_crud(store):
    with store.tx() as tx:
        assert tx.insert_schedule(schedule("b")) is True
        assert tx.insert_schedule(schedule("a", namespace="main")) is True
        assert tx.insert_schedule(schedule("b")) is False  # (namespace, name) is the key
        assert tx.insert_schedule(schedule("b", namespace="team")) is True
    with store.read() as tx:
        got = tx.get_schedule("main", "b")
        assert got["input"] == {"k": 1} and got["paused"] is False and got["overlap_policy"] == "skip"
        assert got["last_run_at"] is None and got["last_workflow_id"] is None
        assert tx.get_schedule("main", "zzz") is None
        assert [s["name"] for s in tx.list_schedules("main")] == ["a", "b"]
        assert [(s["namespace"], s["name"]) for s in tx.list_schedules(None)] == [
            ("main", "a"),
            ("main", "b"),
            ("team", "b"),
        ]
    with store.tx() as tx:
        tx.update_schedule("main", "b", paused=True, last_workflow_id="b-1", input=[1])
        got = tx.get_schedule("main", "b")
        assert got["paused"] is True and got["last_workflow_id"] == "b-1" and got["input"] == [1]
        assert tx.get_schedule("team", "b")["paused"] is False
        assert tx.delete_schedule("main", "b") is True
        assert tx.delete_schedule("main", "b") is False
        assert tx.get_schedule("team", "b") is not None


def test_due_schedules_and_next_due(store):
    with store.tx() as tx:
        tx.insert_schedule(schedule("late", next_run_at=T0 + 30))
        tx.insert_schedule(schedule("soon", next_run_at=T0 + 10))
        tx.insert_schedule(schedule("paused", next_run_at=T0 + 1, paused=True))
        tx.insert_schedule(schedule("never", next_run_at=None))
        assert tx.next_schedule_due() == T0 + 10
        assert tx.due_schedules(T0 + 9) == []
        assert [s["name"] for s in tx.due_schedules(T0 + 10)] == ["soon"]
        assert [s["name"] for s in tx.due_schedules(T0 + 100)] == ["soon", "late"]
        assert tx.schedules_with_queued_fires() == []
        tx.update_schedule("main", "late", queued_fires=1)
        tx.update_schedule("main", "paused", queued_fires=1)
        assert [s["name"] for s in tx.schedules_with_queued_fires()] == ["late"]


# --- workers and queues ----------------------------------------------------------------------------


def test_workers_register_touch_list_reap(store):
    with store.tx() as tx:
        tx.insert_worker(worker("w-1", registered_at=T0, last_heartbeat=T0))
        tx.insert_worker(worker("w-2", registered_at=T0 + 1, last_heartbeat=T0 + 1))
        tx.insert_worker(worker("w-3", namespace="team", registered_at=T0 + 2, last_heartbeat=T0 + 2))
    with store.tx() as tx:
        got = tx.get_worker("w-1")
        assert got["workflows"] == ["A"] and got["activities"] == ["x"] and got["task_queue"] == "default"
        assert tx.get_worker("nope") is None
        assert [w["id"] for w in tx.list_workers("main")] == ["w-1", "w-2"]
        assert [w["id"] for w in tx.list_workers(None)] == ["w-1", "w-2", "w-3"]
        assert tx.oldest_worker_heartbeat() == T0
        assert tx.touch_worker("w-1", T0 + 50) is True
        assert tx.touch_worker("ghost", T0 + 50) is False
        assert tx.oldest_worker_heartbeat() == T0 + 1
        assert tx.reap_workers(T0 + 10) == 2
        assert [w["id"] for w in tx.list_workers(None)] == ["w-1"]


def test_queue_stats(store):
    with store.tx() as tx:
        tx.insert_workflow(wf("a", status="RUNNING"))
        tx.insert_workflow(wf("b", namespace="team", status="RUNNING"))
        tx.insert_workflow(ready("c", task_queue="wq"))
        tx.insert_workflow(ready("d", task_queue="wq"))
        for seq, st in enumerate(["PENDING", "PENDING", "RUNNING", "COMPLETED"], 1):
            tx.insert_activity(activity("a", seq, status=st))
        tx.insert_activity(activity("a", 9, task_queue="q-act"))
        tx.insert_activity(activity("b", 1))  # another namespace
        tx.insert_worker(worker("w-1"))
        tx.insert_worker(worker("w-2", task_queue="only-workers"))
        tx.claim_workflow_task("wq", None, "w-1", T0)
    with store.read() as tx:
        stats = {q["queue"]: q for q in tx.queue_stats("main")}
        assert [q["queue"] for q in tx.queue_stats("main")] == sorted(stats)
        assert set(stats) == {"default", "q-act", "only-workers", "wq"}
        d = stats["default"]
        assert (d["pending_activities"], d["running_activities"], d["workers"]) == (2, 1, 1)
        assert (stats["q-act"]["pending_activities"], stats["q-act"]["workers"]) == (1, 0)
        assert (stats["only-workers"]["pending_activities"], stats["only-workers"]["workers"]) == (0, 1)
        assert (stats["wq"]["pending_workflows"], stats["wq"]["running_workflows"]) == (1, 1)
        team = tx.queue_stats("team")
        assert [(q["queue"], q["pending_activities"]) for q in team] == [("default", 1)]
        assert tx.queue_stats("empty") == []


# --- api keys --------------------------------------------------------------------------------------


def test_api_keys(store):
    with store.tx() as tx:
        assert tx.count_api_keys() == 0
        tx.insert_api_key("h1", "assay_aaaa...", "ci", T0)
        tx.insert_api_key("h2", "assay_bbbb...", None, T0 + 1)
        tx.insert_api_key("h3", "assay_aaaa...", "dup-prefix", T0 + 2)
    with store.tx() as tx:
        assert tx.count_api_keys() == 3
        assert [k["key_hash"] for k in tx.list_api_keys()] == ["h3", "h2", "h1"]  # newest first
        assert tx.find_api_key("h1")["label"] == "ci"
        assert tx.find_api_key("nope") is None
        assert {k["key_hash"] for k in tx.api_keys_by_prefix("assay_aaaa...")} == {"h1", "h3"}
        tx.touch_api_key("h1", T0 + 9)
        assert tx.find_api_key("h1")["last_used_at"] == T0 + 9
        assert tx.delete_api_key("h1") is True
        assert tx.delete_api_key("h1") is False
        assert tx.count_api_keys() == 2


# --- archival ----------------------------------------------------------------------------------


def test_archivable_and_purge(store):
    with store.tx() as tx:
        tx.insert_workflow(wf("old", status="COMPLETED", completed_at=T0))
        tx.insert_workflow(wf("new", status="COMPLETED", completed_at=T0 + 100))
        tx.insert_workflow(wf("live", status="RUNNING"))
        tx.append_event("old", "WorkflowStarted", None, T0)
        tx.insert_activity(activity("old", 1))
        tx.insert_timer("old", 1, T0)
        tx.insert_side_effect("old", 1, "x", 1)
        tx.upsert_snapshot("old", 1, {}, T0)
        assert [w["id"] for w in tx.archivable_workflows(T0 + 50, 10)] == ["old"]
        tx.purge_workflow_history("old", T0 + 60, "s3://b/main/old.json")
        rec = tx.get_workflow("old")
        assert rec["archived_at"] == T0 + 60 and rec["archive_uri"] == "s3://b/main/old.json"
        assert tx.list_events("old") == [] and tx.list_activities("old") == []
        assert tx.get_snapshot("old") is None and tx.next_timer_due() is None
        assert tx.insert_side_effect("old", 1, "x", 2) is True  # purged too
        assert tx.archivable_workflows(T0 + 500, 10)[0]["id"] == "new"
        tx.delete_workflow("new")
        assert tx.get_workflow("new") is None


def test_reap_keeps_a_silent_worker_whose_held_work_is_not_yet_recovered(store):
    with store.tx() as tx:
        tx.insert_worker(worker("w-beat", lost_after_secs=180.0, heartbeat_interval_secs=60.0))
        tx.insert_worker(worker("w-lease", lost_after_secs=180.0, heartbeat_interval_secs=60.0))
        tx.insert_worker(worker("w-classic"))
        tx.insert_workflow(wf("a", status="RUNNING"))
        tx.insert_workflow(ready("b"))
        tx.insert_activity(activity("a", 1))
        tx.insert_activity(activity("a", 2))
        tx.claim_activity("default", None, "w-beat", T0)
        tx.claim_activity("default", None, "w-classic", T0)
        tx.claim_workflow_task("default", None, "w-lease", T0)
        assert tx.reap_workers(T0 + 100) == 1  # only the classic one: its work has other timeouts
        assert {w["id"] for w in tx.list_workers(None)} == {"w-beat", "w-lease"}
        act_id = tx.activities_held_by("w-beat")[0]
        tx.update_activity(act_id, status="PENDING", claimed_by=None)
        tx.release_lease("b", "w-lease")
        assert tx.reap_workers(T0 + 100) == 2
