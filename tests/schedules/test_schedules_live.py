"""A real engine fires a */2-second schedule, a worker runs the runs; pause stops them; resume never backfills."""

from __future__ import annotations

import calendar
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


def _due(run: dict) -> float:
    """The due time a fired run's id carries (`<schedule>-<UTC stamp>`)."""
    stamp = time.strptime(run["id"].split("-", 1)[1], "%Y%m%dT%H%M%SZ")
    return calendar.timegm(stamp)


def test_two_second_schedule_fires_pauses_and_resumes(tmp_path):
    """No wall-clock assertion: orderings only (a run is never due before the call that allowed it, never
    created before its due time). Fire precision (the loop sleeps until the next due time) is shown with a
    FakeClock in tests/engine/test_engine_events.py::test_scheduler_loop_tick."""
    eng = start_engine(tmp_path)
    try:
        with RawWorker(eng.api):
            before_create = time.time()
            st, sched, _ = http(
                "POST",
                eng.api + "/schedules",
                {"name": "tick", "workflow_type": "Tick", "cron_expr": "*/2 * * * * *", "input": {"n": 1}},
            )
            assert st == 201, sched
            assert sched["next_run_at"] > before_create  # not fired at registration
            assert len(sched["next_runs"]) == 5
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
            ids = [r["id"] for r in rows]
            assert len(ids) == len(set(ids))
            # fires land on even seconds, after registration, and never before they are due
            for r in rows:
                due = _due(r)
                assert due % 2 == 0 and due > before_create
                assert r["created_at"] >= due, (r["id"], r["created_at"] - due)
            st, desc, _ = http("GET", eng.api + "/schedules/tick")
            assert desc["last_workflow_id"] in ids and desc["last_run_at"] is not None

            st, paused, _ = http("POST", eng.api + "/schedules/tick/pause")
            assert st == 200 and paused["paused"] is True
            count = len(_runs(eng, "tick"))
            # a witness schedule shows the scheduler firing (3 times = at least 2 s) while "tick" stays quiet
            st, _, _ = http(
                "POST",
                eng.api + "/schedules",
                {"name": "witness", "workflow_type": "Tick", "cron_expr": "* * * * * *"},
            )
            assert st == 201
            wait_until(lambda: len(_runs(eng, "witness")) >= 3, timeout=15, what="three witness fires")
            assert len(_runs(eng, "tick")) <= count + 1  # one fire may have been in flight at pause
            count = len(_runs(eng, "tick"))
            before_resume = time.time()
            st, resumed, _ = http("POST", eng.api + "/schedules/tick/resume")
            assert st == 200 and resumed["paused"] is False
            assert resumed["next_run_at"] > before_resume  # no backfill: next fire is in the future
            wait_until(lambda: len(_runs(eng, "tick")) > count, timeout=10, what="a run after resume")
            new = sorted(_runs(eng, "tick"), key=_due)[count:]
            assert new and all(_due(r) > before_resume for r in new), [r["id"] for r in new]
    finally:
        eng.stop()
