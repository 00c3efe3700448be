"""Several `assay serve` processes on one Postgres database: no double claims, one cron fire per second
across the cluster, leader fail-over, and cross-instance wake-ups (LISTEN/NOTIFY)."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse

import pytest

from tests import pg
from tests.helpers import assay_cmd, free_port, http, start_engine, subprocess_env, wait_until
from tests.workerkit import RawWorker

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.skipif(not pg.available(), reason="no PostgreSQL server binaries (initdb/pg_ctl)"),
]


@pytest.fixture
def two_engines(tmp_path):
    url = pg.fresh_database()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    env = {"ASSAY_WF_DISPATCH_TIMEOUT_SECS": "5"}
    a = start_engine(tmp_path / "a", db=url, env=env)
    b = start_engine(tmp_path / "b", db=url, env=env)
    yield a, b, url
    for e in (a, b):
        e.stop()


def test_500_workflows_across_two_instances_without_double_execution(two_engines):
    a, b, _ = two_engines
    workers = [RawWorker(e.api, with_activity=True) for e in (a, b) for _ in range(2)]
    for w in workers:
        w.__enter__()
    try:

        def start(engine, lo, hi):
            for i in range(lo, hi):
                st, body, _ = http(
                    "POST",
                    engine.api + "/workflows",
                    {"workflow_type": "T", "workflow_id": f"mi-{i}", "input": {"i": i}},
                )
                assert st == 201, body

        threads = [
            threading.Thread(target=start, args=(a, 0, 250)),
            threading.Thread(target=start, args=(b, 250, 500)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wait_until(
            lambda: sum(len(w.completed) for w in workers) >= 500,
            timeout=120,
            interval=0.2,
            what="500 completed workflows",
        )
    finally:
        for w in workers:
            w.__exit__(None, None, None)
    acts = [x for w in workers for x in w.activities_done]
    assert len(acts) == 500 and len(set(acts)) == 500, "an activity was executed twice"
    claims = collections.Counter(c for w in workers for c in w.claims)
    assert max(claims.values()) == 1, [c for c, n in claims.items() if n > 1][:5]
    completed = [x for w in workers for x in w.completed]
    assert sorted(completed) == sorted(f"mi-{i}" for i in range(500))
    # both instances did work
    assert all(w.completed or w.activities_done for w in workers)
    st, rows, _ = http("GET", a.api + "/workflows?status=COMPLETED&limit=1000")
    assert len(rows) == 500
    for wf_id in ("mi-0", "mi-250", "mi-499"):
        st, events, _ = http("GET", b.api + f"/workflows/{wf_id}/events")
        assert [e["event_type"] for e in events] == [
            "WorkflowStarted",
            "ActivityScheduled",
            "ActivityCompleted",
            "WorkflowCompleted",
        ]
        assert [e["seq"] for e in events] == [1, 2, 3, 4]


def _runs(engine, name):
    q = urllib.parse.quote(json.dumps({"schedule": name}))
    return http("GET", engine.api + f"/workflows?limit=1000&search_attrs={q}")[1]


def _leader(engines):
    out = []
    for e in engines:
        st, h, _ = http("GET", e.api + "/health")
        if st == 200 and h.get("leader"):
            out.append(e)
    return out


def test_every_second_schedule_fires_once_per_second_and_fails_over(two_engines):
    a, b, _ = two_engines
    wait_until(lambda: len(_leader([a, b])) == 1, timeout=15, what="exactly one leader")
    st, body, _ = http(
        "POST",
        a.api + "/schedules",
        {"name": "sec", "workflow_type": "T", "cron_expr": "*/1 * * * * *", "overlap_policy": "allow_all"},
    )
    assert st == 201, body
    wait_until(lambda: len(_runs(a, "sec")) >= 5, timeout=15, what="five fires")
    runs = _runs(b, "sec")
    ids = [r["id"] for r in runs]
    assert len(ids) == len(set(ids))
    stamps = sorted(
        int(time.mktime(time.strptime(i.split("-", 1)[1], "%Y%m%dT%H%M%SZ")) - time.timezone) for i in ids
    )
    assert len(stamps) == len(set(stamps)), "a second fired twice"
    assert stamps[-1] - stamps[0] == len(stamps) - 1, f"a second was skipped: {stamps}"

    leader = _leader([a, b])[0]
    other = b if leader is a else a
    os.kill(leader.proc.pid, signal.SIGKILL)
    leader.proc.wait(10)
    wait_until(lambda: _leader([other]) == [other], timeout=15, what="fail-over to the surviving instance")
    before = len(_runs(other, "sec"))
    wait_until(lambda: len(_runs(other, "sec")) >= before + 2, timeout=10, what="fires after fail-over")


def test_start_on_one_instance_wakes_a_long_poll_on_the_other(two_engines):
    a, b, _ = two_engines
    st, reg, _ = http("POST", b.api + "/workers/register", {"identity": "lp", "queue": "wake"})
    result = {}

    def poll():
        result["resp"] = http(
            "POST",
            b.api + "/poll",
            {"worker_id": reg["worker_id"], "queue": "wake", "wait_secs": 20},
            timeout=30,
        )

    th = threading.Thread(target=poll)
    th.start()
    wait_until(lambda: http("GET", b.api + "/health")[1]["held_requests"] >= 1, timeout=15, what="poll held")
    st, _, _ = http(
        "POST", a.api + "/workflows", {"workflow_type": "T", "workflow_id": "wake-1", "task_queue": "wake"}
    )
    assert st == 201
    th.join(25)
    st, body, _ = result["resp"]
    assert body["kind"] == "workflow_task" and body["task"]["workflow_id"] == "wake-1"
    # that b was woken through LISTEN/NOTIFY (and not by a re-check) is shown without a clock below


def test_a_commit_on_one_instance_wakes_a_held_poll_on_the_other_in_process():
    """Two engines in one process on one database, bridged as `assay serve` bridges them. b's notifier
    waits without a timeout, so b's held poll can only be answered by the bump that a's start sends."""
    from assay.clock import FakeClock
    from assay.config import load_settings
    from assay.engine import Engine
    from assay.engine.notify import bridge
    from assay.store import open_store

    url = pg.fresh_database()
    clock = FakeClock(1_750_000_000.0)
    engines = []
    for _ in range(2):
        store = open_store(url, min_size=1, max_size=3)
        e = Engine(store, clock=clock, settings=load_settings({"backend": url}, environ={}))
        bridge(store, e.notifier, e.broadcaster)
        engines.append(e)
    a, b = engines
    outcomes: list[bool] = []
    parked = threading.Event()
    real_wait = b.notifier.wait

    def unbounded(since, timeout):
        parked.set()
        moved = real_wait(since, 3600.0)
        outcomes.append(moved)
        return moved

    try:
        # both listeners are up once a probe bump from a reaches b
        wait_until(
            lambda: a.notifier.bump(["probe"]) or b.notifier.versions(["probe"])["probe"],
            timeout=15,
            interval=0.1,
            what="b to hear a's NOTIFY",
        )
        b.notifier.wait = unbounded
        wid = b.register_worker(identity="lp", queue="wake", namespace="main")
        out: dict = {}
        th = threading.Thread(target=lambda: out.setdefault("v", b.poll("wake", wid, 30.0)), daemon=True)
        th.start()
        assert parked.wait(30)  # nothing to claim yet: the poll is parked in b's notifier
        a.start_workflow(workflow_type="T", workflow_id="wake-2", task_queue="wake")
        th.join(30)
        alive = th.is_alive()
    finally:
        for e in engines:
            e.notifier.close()
            e.store.close()
    assert not alive, "b's held poll was not woken by a's commit"
    kind, task = out["v"]
    assert kind == "workflow_task" and task["id"] == "wake-2" and outcomes[-1] is True


def test_password_never_printed(tmp_path):
    url = pg.fresh_database()
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    secret_url = f"{scheme}://{user}:Sup3rS3cret@{host}"  # trust auth ignores the password
    # DATABASE_URL keeps the credentials out of argv: start without --backend
    port = free_port()
    log = tmp_path / "e.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            [*assay_cmd(), "serve", "--port", str(port)],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=subprocess_env({"DATABASE_URL": secret_url}),
            cwd=tmp_path,
        )
    try:
        wait_until(lambda: _up(port), timeout=20, what="engine up")
        assert "Sup3rS3cret" not in " ".join(proc.args)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    text = log.read_text()
    assert "***" in text and "Sup3rS3cret" not in text


def _up(port):
    try:
        return http("GET", f"http://127.0.0.1:{port}/api/v1/health", timeout=2)[0] == 200
    except OSError:
        return False
