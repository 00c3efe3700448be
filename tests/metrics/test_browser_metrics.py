"""The Metrics view and the queue sparklines in real headless Chromium against a live engine: the charts
render from /metrics/series and update after a workflow completes (no reload)."""

from __future__ import annotations

import pytest

from tests.dashboard.test_browser import ARGS, CHROMIUM, Page, expect
from tests.helpers import http, start_engine

API = "/api/v1/engine/workflow"
NS = "shop"

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module")
def browser():
    import os

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    eng = start_engine(tmp_path_factory.mktemp("metrics-engine"))
    yield eng
    eng.stop()


class Worker:
    def __init__(self, base: str, queue: str):
        self.api, self.queue = base + API, queue
        status, body, _ = http(
            "POST", self.api + "/workers/register", {"identity": "charts", "queue": queue, "namespace": NS}
        )
        assert status == 200, body
        self.id = body["worker_id"]

    def run(self, wf_id: str, commands: list) -> None:
        status, task, _ = http(
            "POST",
            self.api + "/workflow-tasks/poll",
            {"queue": self.queue, "worker_id": self.id, "wait_secs": 5},
        )
        assert status == 200 and task and task["workflow_id"] == wf_id, task
        status, body, _ = http(
            "POST",
            f"{self.api}/workflow-tasks/{wf_id}/commands",
            {"worker_id": self.id, "commands": commands},
        )
        assert status == 200, body


def start(engine, wf_id: str, wf_type: str, queue: str) -> None:
    body = {"workflow_type": wf_type, "workflow_id": wf_id, "task_queue": queue, "namespace": NS}
    status, resp, _ = http("POST", engine.url + API + "/workflows", body)
    assert status == 201, resp


def test_metrics_view_renders_and_updates_live(browser, engine):
    ex = expect()
    orders, mail = Worker(engine.url, "orders"), Worker(engine.url, "email")
    for i, (wf_type, w, cmds) in enumerate(
        [
            ("Checkout", orders, [{"type": "CompleteWorkflow", "result": 1}]),
            ("Checkout", orders, [{"type": "CompleteWorkflow", "result": 2}]),
            ("Checkout", orders, [{"type": "FailWorkflow", "error": "card declined"}]),
            ("Receipt", mail, [{"type": "CompleteWorkflow"}]),
        ]
    ):
        start(engine, f"wf-{i}", wf_type, w.queue)
        w.run(f"wf-{i}", cmds)
    for i in range(3):  # left waiting: queue depth
        start(engine, f"waiting-{i}", "Checkout", "orders")

    p = Page(browser, engine.url, "metrics-view")
    try:
        page = p.goto(f"/workflow/metrics?ns={NS}")
        ex(page.locator("#main h1")).to_have_text("Metrics")
        ex(page.locator('.nav [data-nav="metrics"]')).to_have_attribute("aria-current", "page")
        throughput = page.locator('[data-chart="throughput"]')
        ex(throughput).to_have_attribute("data-completed", "3")
        ex(throughput).to_have_attribute("data-started", "7")
        ex(throughput.locator('path[data-series="completed"], circle').first).to_be_attached()
        ex(page.locator('[data-stat="failed"] .stat-value')).to_have_text("1")
        ex(page.locator('[data-chart="failures"] figure')).to_have_attribute("data-bars", "1")
        ex(page.locator('[data-chart="failures"]')).to_contain_text("workflow: Checkout")
        ex(page.locator('[data-chart="depth"] .chart-legend')).to_contain_text("orders")
        ex(page.locator('[data-chart="depth"] figure')).not_to_have_attribute("data-points", "0")
        ex(page.locator('[data-chart="latency"] .chart-legend')).to_contain_text("email")
        page.evaluate("window.__noReload = 'still here'")

        orders.run("waiting-0", [{"type": "CompleteWorkflow"}])  # the chart follows without a reload
        ex(throughput).to_have_attribute("data-completed", "4")
        ex(page.locator('[data-stat="completed"] .stat-value')).to_have_text("4")
        assert page.evaluate("window.__noReload") == "still here"
        p.shot(doc="metrics.png")

        page.locator('.nav [data-nav="queues"]').click()
        ex(page.locator("#main h1")).to_have_text("Queues")
        ex(page.locator('tr[data-key="orders"] svg.sparkline')).to_be_visible()
        ex(page.locator('tr[data-key="orders"] svg.sparkline polyline')).to_be_attached()
        assert p.errors == []
    finally:
        p.shot("-final")
        p.close()


def test_metrics_switched_off_says_so(browser, tmp_path):
    eng = start_engine(tmp_path, env={"ASSAY_METRICS": "0"})
    p = Page(browser, eng.url, "metrics-off")
    try:
        page = p.goto("/workflow/metrics")
        expect()(page.locator(".empty")).to_contain_text("Metrics are switched off")
        page.goto(eng.url + "/workflow/queues")
        expect()(page.locator("#main h1")).to_have_text("Queues")
    finally:
        p.close()
        eng.stop()
