"""Safe deploys in the dashboard (real Chromium): the stuck banner on the list and the detail page, build
ids, the version marker in the timeline, and the Reset action with the links between both runs."""

from __future__ import annotations

import pytest

from tests.dashboard.test_browser import (  # noqa: F401 - fixtures
    API,
    RawWorker,
    api,
    browser,
    expect,
    live,
    open_page,
    pw,
    start,
    uid,
)
from tests.helpers import http, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_stuck_banner_build_ids_marker_and_reset(open_page, live):  # noqa: F811
    ex = expect()
    queue, wf_id = uid("dq"), uid("stuck")
    start(live, wf_id, "Deployed", queue, input={"n": 1})
    worker = RawWorker(live.url, queue)
    status, body, _ = http(
        "POST",
        live.url + API + "/workers/register",
        {"identity": "b", "queue": queue, "build_id": "build-123abc"},
    )
    assert status == 200, body
    worker.id = body["worker_id"]
    worker.poll(wf_id)
    worker.commands(
        wf_id,
        [
            {"type": "RecordVersion", "change_id": "fee", "version": 2},
            {"type": "WaitForSignal", "name": "go"},
        ],
    )
    assert api(live, "POST", f"/workflows/{wf_id}/signal/go", {"payload": 1})[0] == 200
    for _ in range(3):  # the new code cannot replay it: three failed workflow tasks in a row
        worker.poll(wf_id)
        status, out, _ = api(
            live,
            "POST",
            f"/workflow-tasks/{wf_id}/fail",
            {"worker_id": worker.id, "error": "nondeterministic workflow: event 3: boom"},
        )
        assert status == 200, out
    wait_until(lambda: api(live, "GET", f"/workflows/{wf_id}")[1]["stuck"], 5, what="the stuck flag")

    p = open_page()
    page = p.goto("/workflow/")
    ex(page.locator(".stuck-banner")).to_contain_text("1 workflow")
    ex(page.locator(f'tr[data-key="{wf_id}"] .tag-stuck')).to_have_text("stuck")
    page.locator(".stuck-banner").get_by_role("link", name="Show them").click()
    ex(page.locator("tbody tr")).to_have_count(1)

    page = p.goto(f"/workflow/workflows/{wf_id}")
    ex(page.locator(".stuck-banner")).to_contain_text("failed 3 times in a row")
    ex(page.locator(".stuck-banner")).to_contain_text("event 3: boom")
    ex(page.locator(".meta-grid")).to_contain_text("build-123abc")
    page.get_by_role("tab", name="Events").click()
    marker = page.locator('#panel-events li[data-type="VersionMarkerRecorded"]')
    ex(marker).to_contain_text("fee = v2")
    p.shot("-stuck")

    page.locator('.detail-header button[data-action="reset"]').click()
    dialog = page.locator("dialog[open]")
    dialog.get_by_label("Reset to event # (optional)").fill("2")
    dialog.get_by_role("button", name="Reset").click()
    ex(page.locator("h1.wf-id")).not_to_have_text(wf_id)
    new_id = page.locator("h1.wf-id").inner_text()
    ex(page.locator(".meta-grid a.reset-from")).to_have_text(wf_id)
    old = api(live, "GET", f"/workflows/{wf_id}")[1]
    assert old["status"] == "FAILED" and old["reset_to"] == new_id and old["error"] == f"reset to {new_id}"
    new = api(live, "GET", f"/workflows/{new_id}")[1]
    assert new["stuck"] is None and new["reset_from"] == wf_id
    types = [e["event_type"] for e in api(live, "GET", f"/workflows/{new_id}/events")[1]]
    assert types == ["WorkflowStarted", "VersionMarkerRecorded", "SignalReceived"]  # the signal re-delivered
    page.locator(".meta-grid a.reset-from").click()
    ex(page.locator(".meta-grid a.reset-to")).to_have_text(new_id)
    ex(page.locator(".stuck-banner")).to_be_hidden()  # an ended run is no longer stuck
    assert p.errors == []
