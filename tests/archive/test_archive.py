"""S3 archival against a real S3 API on loopback (moto's server mode), and local retention on every backend."""

from __future__ import annotations

import json
import uuid

import pytest

from assay.archive import Archiver, S3Archive
from assay.config import load_settings
from tests.helpers import free_port, http, start_engine, wait_until

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

DAY = 86400.0


@pytest.fixture
def s3():
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    # moto keeps its state per process: a fresh bucket per test keeps tests apart
    bucket = "arch-" + uuid.uuid4().hex[:12]
    client.create_bucket(Bucket=bucket)
    yield server, client, port, bucket
    try:
        server.stop()
    except Exception:
        pass


def _settings(**kw):
    base = {
        "backend": "sqlite::memory:",
        "archive_s3_bucket": "unused",
        "archive_retention_days": 30.0,
        "archive_batch_size": 50,
    }
    base.update(kw)
    return load_settings(base, environ={})


def _finished_workflow(engine, clock, wf_id, days_ago=40):
    """A COMPLETED workflow with an activity, a signal and a snapshot, finished `days_ago` days ago."""
    wid = engine.register_worker(identity="t", queue="q")
    engine.start_workflow(workflow_type="T", workflow_id=wf_id, task_queue="q", input={"n": 1})
    engine.claim_workflow_task("q", wid)
    engine.submit_commands(
        wf_id,
        wid,
        [
            {"type": "ScheduleActivity", "seq": 1, "name": "a", "input": [1]},
            {"type": "RecordSnapshot", "state": {"progress": 1}},
        ],
    )
    act = engine.claim_activity_task("q", wid)
    engine.complete_activity(act["id"], {"ok": True})
    engine.claim_workflow_task("q", wid)
    engine.submit_commands(wf_id, wid, [{"type": "CompleteWorkflow", "result": "done"}])
    clock.advance(days_ago * DAY)


def _archiver(engine, s3, **kw):
    _, client, _, bucket = s3
    return Archiver(engine, _settings(**kw), S3Archive(bucket, "assay/", client=client))


def test_round_trip_purge_and_events_served_back(engine, clock, client, s3):
    _, s3c, _, bucket = s3
    _finished_workflow(engine, clock, "old-1")
    engine.start_workflow(workflow_type="T", workflow_id="young", task_queue="q")  # not terminal: kept
    before = client.get("/workflows/old-1/events").json
    arch = _archiver(engine, s3)
    engine.archive_reader = arch.s3
    assert arch.run_once() == {"archived": 1, "failed": 0, "deleted": 0}
    body = json.loads(s3c.get_object(Bucket=bucket, Key="assay/main/old-1.json")["Body"].read())
    assert body["format_version"] == 1
    assert body["workflow"]["id"] == "old-1" and body["workflow"]["result"] == "done"
    assert [e["event_type"] for e in body["events"]] == [e["event_type"] for e in before]
    assert body["activities"][0]["result"] == {"ok": True}
    assert body["snapshot"]["state"] == {"progress": 1}
    # the stub still resolves, history is purged from the database, events come back from S3
    rec = client.get("/workflows/old-1").json
    assert rec["archive_uri"] == f"s3://{bucket}/assay/main/old-1.json" and rec["archived_at"] is not None
    with engine.store.read() as tx:
        assert tx.list_events("old-1") == [] and tx.list_activities("old-1") == []
        assert tx.get_snapshot("old-1") is None
    assert client.get("/workflows/old-1/events").json == before
    assert client.get("/workflows/old-1/events", query={"after_seq": 2}).json == before[2:]
    assert client.get("/workflows/young").json["archived_at"] is None
    assert arch.run_once()["archived"] == 0  # nothing left to do


def test_recent_workflows_are_not_archived(engine, clock, s3):
    _, s3c, _, bucket = s3
    _finished_workflow(engine, clock, "recent", days_ago=5)
    assert _archiver(engine, s3).run_once()["archived"] == 0


def test_purge_only_after_a_verified_upload(engine, clock, s3):
    _, s3c, _, bucket = s3
    _finished_workflow(engine, clock, "v1")
    arch = _archiver(engine, s3)

    def bad_verify(key, body):
        raise RuntimeError("etag mismatch")

    arch.s3.verify = bad_verify
    assert arch.run_once() == {"archived": 0, "failed": 1, "deleted": 0}
    with engine.store.read() as tx:
        assert len(tx.list_events("v1")) > 0
        assert tx.get_workflow("v1")["archived_at"] is None


def test_upload_failure_leaves_data_intact_and_is_retried(engine, clock, client, s3):
    server, s3c, _, bucket = s3
    _finished_workflow(engine, clock, "u1")
    events = client.get("/workflows/u1/events").json
    arch = _archiver(engine, s3)
    engine.archive_reader = arch.s3
    server.stop()  # S3 is down
    assert arch.run_once()["failed"] == 1
    assert client.get("/workflows/u1/events").json == events
    assert client.get("/workflows/u1").json["archived_at"] is None


def test_events_of_archived_workflow_410_when_s3_unreachable(engine, clock, client, s3):
    server, s3c, _, bucket = s3
    _finished_workflow(engine, clock, "g1")
    arch = _archiver(engine, s3)
    engine.archive_reader = arch.s3
    arch.run_once()
    server.stop()
    r = client.get("/workflows/g1/events")
    assert r.status == 410
    assert r.json["archive_uri"] == f"s3://{bucket}/assay/main/g1.json" and "unreachable" in r.json["error"]


def test_crash_between_upload_and_purge_reuploads_the_same_key(engine, clock, s3):
    _, s3c, _, bucket = s3
    _finished_workflow(engine, clock, "c1")
    arch = _archiver(engine, s3)
    wf = engine.get_workflow("c1")
    key, body = arch.upload_one(wf)  # uploaded + verified, then the engine "crashes" before the purge
    with engine.store.read() as tx:
        assert tx.get_workflow("c1")["archived_at"] is None and tx.list_events("c1")
    assert arch.run_once()["archived"] == 1  # next round: same key again, then the purge
    keys = [o["Key"] for o in s3c.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["assay/main/c1.json"]
    assert json.loads(s3c.get_object(Bucket=bucket, Key=key)["Body"].read()) == json.loads(body)


def test_local_retention_deletes_old_terminal_workflows(engine, clock, client):
    _finished_workflow(engine, clock, "r-old", days_ago=10)
    engine.start_workflow(workflow_type="T", workflow_id="r-live", task_queue="elsewhere")
    _finished_workflow(engine, clock, "r-new", days_ago=1)
    arch = Archiver(engine, _settings(archive_s3_bucket=None, retention_days=7.0), None)
    assert arch.run_once() == {"archived": 0, "failed": 0, "deleted": 1}
    assert client.get("/workflows/r-old").status == 404
    assert client.get("/workflows/r-live").status == 200 and client.get("/workflows/r-new").status == 200
    with engine.store.read() as tx:
        assert tx.list_events("r-old") == []


def test_missing_boto3_is_a_startup_error(monkeypatch):
    import sys

    from assay.errors import ConfigError

    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(ConfigError, match=r"pip install 'assay-workflow\[s3\]'"):
        S3Archive("bucket")


@pytest.mark.e2e
def test_engine_archives_on_its_own_with_env_settings(tmp_path, s3):
    _, s3c, port, bucket = s3
    env = {
        "ASSAY_ARCHIVE_S3_BUCKET": bucket,
        "ASSAY_ARCHIVE_RETENTION_DAYS": "0",
        "ASSAY_ARCHIVE_POLL_SECS": "0.5",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "sekrit-value",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    eng = start_engine(tmp_path, env=env)
    try:
        api = eng.api
        http("POST", api + "/workflows", {"workflow_type": "T", "workflow_id": "e1", "task_queue": "q"})
        http("POST", api + "/workflows/e1/terminate", {"reason": "done here"})
        rec = wait_until(
            lambda: (r := http("GET", api + "/workflows/e1")[1])["archive_uri"] and r,
            timeout=15,
            what="the archiver to archive e1",
        )
        assert rec["archive_uri"] == f"s3://{bucket}/assay/main/e1.json"
        st, events, _ = http("GET", api + "/workflows/e1/events")
        assert st == 200 and [e["event_type"] for e in events] == ["WorkflowStarted", "WorkflowFailed"]
        st, page, _ = http("GET", api + "/workflows/e1/events?after=0&limit=1")  # paged from the archive
        assert st == 200 and page == events[:1]
        st, page, _ = http("GET", api + "/workflows/e1/events?after=1&limit=1")
        assert st == 200 and page == events[1:]
        st, health, _ = http("GET", api + "/health")
        assert health["loops"]["archiver"]["archived"] >= 1
    finally:
        eng.stop()
    assert "sekrit-value" not in eng.log()
