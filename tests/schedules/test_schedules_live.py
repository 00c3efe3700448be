"""A real engine fires a */2-second schedule, a worker runs the runs; pause stops them; resume never backfills."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest

from tests.helpers import http, start_engine, wait_until
from tests.workerkit import RawWorker

pytestmark = pytest.mark.e2e


def _runs(eng, name: str) -> list[dict]:
    q = urllib.parse.quote(json.dumps({"schedule": name}))
    st, rows, _ = http("GET", eng.api + "/workflows?limit=1000&search_attrs=" + q)
    assert st == 200
    return rows


def test_two_second_schedule_fires_pauses_and_resumes(tmp_path):
    eng = start_engine(tmp_path)
    try:
        with RawWorker(eng.api):
            st, sched, _ = http(
                "POST",
                eng.api + "/schedules",
                {"name": "tick", "workflow_type": "Tick", "cron_expr": "*/2 * * * * *", "input": {"n": 1}},
            )
            assert st == 201, sched
            assert sched["next_run_at"] > time.time() - 0.5  # not fired at registration
            assert len(sched["next_runs"]) == 5
            created = time.time()
            assert _runs(eng, "tick") == []
            runs = wait_until(
                lambda: [r for r in _runs(eng, "tick") if r["status"] == "COMPLETED"][:2] or None,
                timeout=10,
                what="two completed scheduled runs",
            )
            assert len(runs) >= 1
            rows = _runs(eng, "tick")
            for r in rows:
                assert r["id"].startswith("tick-") and r["id"].endswith("Z")
                assert r["input"] == {"n": 1} and r["search_attributes"]["schedule"] == "tick"
                assert r["created_at"] >= created - 0.5
            ids = [r["id"] for r in rows]
            assert len(ids) == len(set(ids))
            # fires land on even seconds, within a second of their due time
            for r in rows:
                stamp = time.strptime(r["id"].split("-", 1)[1], "%Y%m%dT%H%M%SZ")
                due = time.mktime(stamp) - time.timezone
                assert int(due) % 2 == 0
                assert 0 <= r["created_at"] - due < 1.0, (r["id"], r["created_at"] - due)
            st, desc, _ = http("GET", eng.api + "/schedules/tick")
            assert desc["last_workflow_id"] in ids and desc["last_run_at"] is not None

            st, paused, _ = http("POST", eng.api + "/schedules/tick/pause")
            assert st == 200 and paused["paused"] is True
            count = len(_runs(eng, "tick"))
            # observe a window of 3 s: no new run may appear while paused
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                assert len(_runs(eng, "tick")) <= count + 1  # one fire may have been in flight at pause
                time.sleep(0.2)
            count = len(_runs(eng, "tick"))
            st, resumed, _ = http("POST", eng.api + "/schedules/tick/resume")
            assert st == 200 and resumed["paused"] is False
            assert resumed["next_run_at"] > time.time() - 0.5  # no backfill: next fire is in the future
            wait_until(lambda: len(_runs(eng, "tick")) > count, timeout=6, what="a run after resume")
            assert len(_runs(eng, "tick")) <= count + 2  # one new fire, not a backlog
    finally:
        eng.stop()
