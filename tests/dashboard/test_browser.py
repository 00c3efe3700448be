"""The dashboard in real headless Chromium against a live engine (Playwright, system /usr/bin/chromium).

Workers here are raw HTTP: register, poll a workflow task, post commands. Each test saves a screenshot
under test-artifacts/dashboard/; two of them also write docs/screenshots/ for the README (when missing,
or with ASSAY_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid

import pytest

from tests.helpers import ROOT, http, start_engine, wait_until

CHROMIUM = os.environ.get("ASSAY_TEST_CHROMIUM", "/usr/bin/chromium")  # override for other layouts
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
DOC_SHOTS = ROOT / "docs" / "screenshots"
API = "/api/v1/engine/workflow"

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pw():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(pw):
    b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    yield b
    b.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    eng = start_engine(tmp_path_factory.mktemp("dash-engine"))
    yield eng
    eng.stop()


class Page:
    """A page plus the console errors it produced."""

    def __init__(self, browser, base: str, name: str, *, viewport=None, theme="light", user=None):
        self.base = base
        self.name = name
        self.ctx = browser.new_context(
            viewport=viewport or {"width": 1280, "height": 800}, color_scheme=theme
        )
        if user:
            self.ctx.add_init_script(f"localStorage.setItem('assay.user', {json.dumps(user)})")
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(8000)
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, msg) -> None:
        if msg.type == "error":
            self.errors.append(f"console: {msg.text} @ {msg.location.get('url')}")

    def goto(self, path: str):
        self.page.goto(self.base + path)
        self.page.wait_for_selector("#main:not([aria-busy])")
        return self.page

    def shot(self, suffix: str = "", *, doc: str | None = None) -> None:
        self.page.mouse.move(1, 1)  # no stray hover highlight
        if doc:  # let one-shot highlights (new row, status pop) finish
            self.page.wait_for_function(
                "!document.getAnimations().some(a => ['row-in', 'pop'].includes(a.animationName)"
                " && a.playState === 'running')"
            )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}{suffix}.png"))
        # The README screenshots are committed: refreshed only on request, or when missing.
        if doc and (os.environ.get("ASSAY_UPDATE_SCREENSHOTS") == "1" or not (DOC_SHOTS / doc).exists()):
            DOC_SHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(DOC_SHOTS / doc))

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture
def open_page(browser, live, request):
    pages: list[Page] = []

    def make(**kw) -> Page:
        p = Page(browser, kw.pop("base", live.url), request.node.name, **kw)
        pages.append(p)
        return p

    yield make
    for p in pages:
        try:
            p.shot("-final")
        finally:
            p.close()


def expect():
    from playwright.sync_api import expect as _expect

    _expect.set_options(timeout=8000)
    return _expect


# ---- a raw-HTTP worker ------------------------------------------------------------------------
class RawWorker:
    def __init__(self, base: str, queue: str):
        self.api = base + API
        self.queue = queue
        status, body, _ = http(
            "POST", self.api + "/workers/register", {"identity": f"test@{queue}", "queue": queue}
        )
        assert status == 200, body
        self.id = body["worker_id"]

    def poll(self, workflow_id: str, timeout: float = 10.0) -> dict:
        def once():
            status, task, _ = http(
                "POST",
                self.api + "/workflow-tasks/poll",
                {"queue": self.queue, "worker_id": self.id, "wait_secs": 1},
            )
            assert status == 200, task
            if task:
                assert task["workflow_id"] == workflow_id, task
            return task

        return wait_until(once, timeout, what=f"a workflow task for {workflow_id}")

    def commands(self, workflow_id: str, commands: list) -> None:
        status, body, _ = http(
            "POST",
            f"{self.api}/workflow-tasks/{workflow_id}/commands",
            {"worker_id": self.id, "commands": commands},
        )
        assert status == 200, body


def api(live, method: str, path: str, body=None):
    return http(method, live.url + API + path, body)


def start(live, wf_id: str, wf_type: str, queue: str, **extra):
    status, body, _ = api(
        live,
        "POST",
        "/workflows",
        {"workflow_type": wf_type, "workflow_id": wf_id, "task_queue": queue, **extra},
    )
    assert status == 201, body


def events_of(live, wf_id: str) -> list[dict]:
    return api(live, "GET", f"/workflows/{wf_id}/events")[1]


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# ---- tests ------------------------------------------------------------------------------------
def seed_list(live) -> None:
    """A few workflows in different states, so the list screenshot shows something realistic."""
    queue = uid("payments")
    plan = {
        "OrderPipeline": [{"type": "CompleteWorkflow", "result": {"charged": 42.5}}],
        "NightlyReport": [{"type": "FailWorkflow", "error": "warehouse timeout"}],
        "Deploy": [{"type": "WaitForSignal", "name": "step_action"}],
    }
    for wf_type in [*plan, "Billing"]:
        start(live, f"{wf_type.lower()}-{uuid.uuid4().hex[:4]}", wf_type, queue, input={"tenant": "acme"})
    worker = RawWorker(live.url, queue)
    for _ in plan:
        status, task, _ = http(
            "POST",
            worker.api + "/workflow-tasks/poll",
            {"queue": queue, "worker_id": worker.id, "wait_secs": 2},
        )
        assert status == 200 and task, task
        if task["workflow_type"] == "Billing":  # leave it pending
            continue
        worker.commands(task["workflow_id"], plan[task["workflow_type"]])


def test_start_from_form_then_row_completes_live(open_page, live):
    ex = expect()
    queue, wf_id = uid("orders"), uid("checkout")
    seed_list(live)
    p = open_page()
    page = p.goto("/workflow/")
    ex(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    page.evaluate("window.__noReload = 'still here'")

    page.get_by_role("button", name="+ Start workflow").click()
    dialog = page.locator("dialog[open]")
    dialog.get_by_label("Workflow type").fill("BrowserDemo")
    dialog.get_by_label("Workflow ID").fill(wf_id)
    ex(dialog.get_by_label("Task queue")).to_have_value("default")
    dialog.get_by_label("Task queue").fill(queue)
    dialog.get_by_label("Input (JSON)").fill("{not json")
    dialog.get_by_role("button", name="Start").click()
    ex(dialog.locator(".form-error")).to_contain_text("not valid JSON")
    ex(dialog.get_by_label("Input (JSON)")).to_have_attribute("aria-invalid", "true")
    dialog.get_by_label("Input (JSON)").fill('{"x": 1}')
    dialog.get_by_label("Search attributes (JSON object)").fill('{"env": "test"}')
    dialog.get_by_role("button", name="Start").click()
    ex(page.locator(".toast-success")).to_contain_text(f"Started {wf_id}")

    row = page.locator(f'tr[data-key="{wf_id}"]')
    ex(row).to_be_visible()
    ex(row.locator(".badge")).to_have_text("PENDING")
    rec = api(live, "GET", f"/workflows/{wf_id}")[1]
    assert rec["input"] == {"x": 1} and rec["task_queue"] == queue and rec["workflow_type"] == "BrowserDemo"
    assert rec["search_attributes"]["env"] == "test"

    worker = RawWorker(live.url, queue)
    worker.poll(wf_id)
    ex(row.locator(".badge")).to_have_text("RUNNING")
    worker.commands(wf_id, [{"type": "CompleteWorkflow", "result": {"done": True}}])
    ex(row.locator(".badge")).to_have_text("COMPLETED")
    assert page.evaluate("window.__noReload") == "still here"  # updated in place via SSE, no reload
    ex(row.locator(".cell-actions")).to_have_text("—")
    ex(row.locator(".cell-duration")).to_have_text(
        re.compile(r"\d+(ms|\.\d+s|s)$")
    )  # re-read after the event
    p.shot(doc="workflows.png")
    assert p.errors == []


RECORD_CELL = """(id) => {
  const cell = document.querySelector(`tr[data-key="${CSS.escape(id)}"] .cell-duration`);
  window.__durations = [cell.textContent];
  new MutationObserver(() => window.__durations.push(cell.textContent))
    .observe(cell, { childList: true, characterData: true, subtree: true });
}"""


def test_a_workflow_finished_in_under_a_second_shows_its_duration_never_a_dash(open_page, live):
    # The live patch used to keep the old record (no completed_at), so a finished row showed "—"
    # until the next full re-read, which a busy event stream kept postponing.
    ex = expect()
    queue, wf_id, gone_id = uid("quick"), uid("quick"), uid("gone")
    p = open_page()
    page = p.goto("/workflow/")
    ex(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    start(live, wf_id, "Quick", queue)
    start(live, gone_id, "Quick", queue)
    for wid in (wf_id, gone_id):
        ex(page.locator(f'tr[data-key="{wid}"] .cell-duration')).to_have_text("queued")
        page.evaluate(RECORD_CELL.replace("window.__durations", f"window.__d_{wid.replace('-', '_')}"), wid)
    worker = RawWorker(live.url, queue)
    worker.poll(wf_id)
    worker.commands(wf_id, [{"type": "CompleteWorkflow", "result": None}])
    assert api(live, "POST", f"/workflows/{gone_id}/terminate", {"reason": "test"})[0] == 200
    for wid in (wf_id, gone_id):
        rec = api(live, "GET", f"/workflows/{wid}")[1]
        assert rec["completed_at"] is not None, rec
        row = page.locator(f'tr[data-key="{wid}"]')
        ex(row.locator(".badge")).to_have_text(rec["status"])
        ex(row.locator(".cell-duration")).to_have_text(re.compile(r"^\d+(ms|\.\d+s|s)$"))
        seen = page.evaluate(f"window.__d_{wid.replace('-', '_')}")
        assert "—" not in seen, seen
    assert p.errors == []


DEBOUNCE_STORM = """async () => {
  const { debounce } = await import("/workflow/components/ui.js");
  let plain = 0, capped = 0;
  const a = debounce(() => plain++, 150);
  const b = debounce(() => capped++, 150, 300);
  for (let i = 0; i < 40; i++) {  // a call every 50 ms: a plain trailing debounce never fires
    a(); b();
    await new Promise((r) => setTimeout(r, 50));
  }
  const during = { plain, capped };
  await new Promise((r) => setTimeout(r, 400));
  return { during, after: { plain, capped } };
}"""


def test_list_reload_is_not_postponed_forever_by_a_busy_stream(open_page):
    # The list re-reads through debounce(load, 150, 1000): under a steady stream of events it still runs.
    p = open_page()
    page = p.goto("/workflow/")
    got = page.evaluate(DEBOUNCE_STORM)
    assert got["during"]["capped"] >= 2, got  # a 2 s storm, at most 300 ms between runs
    assert got["after"]["plain"] >= 1 and got["after"]["capped"] >= got["during"]["capped"], got
    assert p.errors == []


def test_signal_from_detail_and_terminate_from_list(open_page, live):
    ex = expect()
    queue, wf_id, other = uid("q"), uid("sig"), uid("term")
    start(live, wf_id, "Signalled", queue, input={"n": 1})
    start(live, other, "ToTerminate", queue)
    worker = RawWorker(live.url, queue)
    task = worker.poll(wf_id)
    state = {"phase": "waiting for go"}
    child = {"type": "StartChildWorkflow", "workflow_type": "Child", "workflow_id": f"{wf_id}-child"}
    worker.commands(
        wf_id, [{"type": "RecordSnapshot", "state": state}, child, {"type": "WaitForSignal", "name": "go"}]
    )
    assert task["input"] == {"n": 1}

    p = open_page()
    page = p.goto(f"/workflow/workflows/{wf_id}")
    ex(page.locator("h1.wf-id")).to_have_text(wf_id)
    ex(page.get_by_role("tab", name="Overview")).to_have_attribute("aria-selected", "true")
    ex(page.locator(".io-card pre").first).to_contain_text('"n": 1')
    page.get_by_role("tab", name="Overview").focus()
    page.keyboard.press("ArrowRight")  # tabs follow the ARIA keyboard pattern
    ex(page.get_by_role("tab", name="Events")).to_have_attribute("aria-selected", "true")
    ex(page.get_by_role("tab", name="Events")).to_be_focused()
    page.get_by_role("tab", name="State").click()
    ex(page.locator("#panel-state")).to_contain_text("waiting for go")
    assert page.title() == f"{wf_id} · Assay Workflow Dashboard"

    # Children are linked both ways.
    page.get_by_role("tab", name="Children").click()
    ex(page.get_by_role("tab", name="Children")).to_contain_text("1")
    page.locator("#panel-children").get_by_role("link", name=f"{wf_id}-child").click()
    ex(page.locator("h1.wf-id")).to_have_text(f"{wf_id}-child")
    ex(page.locator(".meta-grid")).to_contain_text(wf_id)
    page.go_back()
    ex(page.locator("h1.wf-id")).to_have_text(wf_id)

    page.locator(".detail-header").get_by_role("button", name="Signal").click()
    dialog = page.locator("dialog[open]")
    dialog.get_by_label("Signal name").fill("go")
    dialog.get_by_label("Payload (JSON, optional)").fill('{"ok": true}')
    dialog.get_by_role("button", name="Send signal").click()
    ex(page.locator(".toast-success")).to_contain_text('Signal "go" sent')
    sig = [e for e in events_of(live, wf_id) if e["event_type"] == "SignalReceived"]
    assert sig and sig[0]["payload"] == {"signal": "go", "payload": {"ok": True}}

    page.get_by_role("tab", name="Events").click()
    ex(page.locator('#panel-events li[data-type="SignalReceived"]')).to_be_visible()
    page.locator('#panel-events li[data-type="SignalReceived"] summary').click()
    ex(page.locator('#panel-events li[data-type="SignalReceived"] pre')).to_contain_text('"ok": true')
    p.shot("-detail")

    # Continue as new: the old run closes and the view follows the new run.
    page.locator(".detail-header").get_by_role("button", name="Continue as new").click()
    dialog = page.locator("dialog[open]")
    ex(dialog.get_by_label("Input (JSON)")).to_have_value('{\n  "n": 1\n}')
    dialog.get_by_label("New workflow ID (optional)").fill(f"{wf_id}-next")
    dialog.get_by_label("Input (JSON)").fill('{"n": 2}')
    dialog.get_by_role("button", name="Start new run").click()
    ex(page.locator("h1.wf-id")).to_have_text(f"{wf_id}-next")
    assert page.url.split("?")[0].endswith(f"/workflow/workflows/{wf_id}-next")
    old_run = api(live, "GET", f"/workflows/{wf_id}")[1]
    assert old_run["status"] == "COMPLETED"
    assert api(live, "GET", f"/workflows/{wf_id}-next")[1]["input"] == {"n": 2}

    # Terminate and cancel from the list, with confirmation; the rows change live.
    page.get_by_role("link", name="← Workflows").click()
    row = page.locator(f'tr[data-key="{wf_id}-next"]')
    row.get_by_role("button", name=f"Cancel {wf_id}-next").click()
    page.locator("dialog[open]").get_by_role("button", name="Cancel workflow").click()
    ex(row.locator(".badge")).to_have_text("CANCELLED")
    row = page.locator(f'tr[data-key="{other}"]')
    row.get_by_role("button", name=f"Terminate {other}").click()
    dialog = page.locator("dialog[open]")
    ex(dialog).to_contain_text("Terminate workflow?")
    dialog.get_by_label("Reason (optional)").fill("test says stop")
    dialog.get_by_role("button", name="Terminate").click()
    ex(row.locator(".badge")).to_have_text("FAILED")
    rec = api(live, "GET", f"/workflows/{other}")[1]
    assert rec["status"] == "FAILED" and "test says stop" in rec["error"]
    # The new run has no state snapshot yet: the record's state_seq is null, so the dashboard never asks
    # for GET /state (which would 404 and log a console error).
    assert p.errors == []


def test_filters_and_paging(open_page, live):
    ex = expect()
    wf_type, batch, queue = uid("Batch"), uid("b"), uid("idle")
    for i in range(27):
        start(live, f"{wf_type.lower()}-{i:02d}", wf_type, queue, search_attributes={"batch": batch, "i": i})
    for i in (3, 4):
        assert api(live, "POST", f"/workflows/{wf_type.lower()}-{i:02d}/terminate", {"reason": "x"})[0] == 200

    p = open_page()
    page = p.goto(f"/workflow/?type={wf_type}")
    rows = page.locator(".wf-table tbody tr")
    ex(rows).to_have_count(25)
    ex(page.get_by_label("Type")).to_have_value(wf_type)
    ex(page.locator(".pager")).to_contain_text("1–25+")
    ex(page.get_by_role("button", name="← Previous")).to_be_disabled()
    page.get_by_role("button", name="Next →").click()
    ex(rows).to_have_count(2)
    assert "page=2" in page.url and "cursor=" in page.url  # paged by keyset cursor, not offset
    ex(page.get_by_role("button", name="Next →")).to_be_disabled()

    page.get_by_label("Status").select_option("FAILED")  # applies at once
    ex(rows).to_have_count(2)
    ex(rows.locator(".badge")).to_have_text(["FAILED", "FAILED"])
    assert "status=FAILED" in page.url and f"type={wf_type}" in page.url and "page=" not in page.url

    page.get_by_role("button", name="Clear").click()
    ex(page.get_by_label("Type")).to_have_value("")
    page.get_by_label("Search attributes").fill("{oops")
    page.get_by_role("button", name="Apply").click()
    ex(page.locator(".toast-error")).to_contain_text("not valid JSON")
    ex(page.get_by_label("Search attributes")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Search attributes").fill(json.dumps({"batch": batch, "i": 7}))
    page.get_by_role("button", name="Apply").click()
    ex(rows).to_have_count(1)
    ex(rows.first).to_have_attribute("data-key", f"{wf_type.lower()}-07")
    assert p.errors == []


def pipeline(steps, log):
    return {"pipeline_state": {"status": "running", "steps": steps, "log": log}}


def test_steps_tab_live_actions_and_overlay(open_page, live):
    ex = expect()
    queue, wf_id = uid("deploys"), uid("deploy")
    start(live, wf_id, "Deploy", queue)
    worker = RawWorker(live.url, queue)
    worker.poll(wf_id)
    steps1 = [
        {"name": "Approval", "status": "running", "actions": ["approve", "reject"]},
        {"name": "Build", "status": "waiting"},
        {"name": "Ship", "status": "waiting"},
        {"name": "Verify", "status": "custom-state"},
    ]
    log1 = [
        {"time": "10:00:00", "msg": "waiting for approval", "step": 1},
        {"time": "10:00:00", "msg": "note without step"},
    ]
    worker.commands(
        wf_id,
        [
            {"type": "RecordSnapshot", "state": pipeline(steps1, log1)},
            {"type": "WaitForSignal", "name": "step_action"},
        ],
    )

    p = open_page(user="alice")
    page = p.goto(f"/workflow/workflows/{wf_id}")
    tabs = page.get_by_role("tab")
    ex(tabs.first).to_have_text("Steps")
    ex(tabs.first).to_have_attribute("aria-selected", "true")
    step = page.locator(".steps-track > li.step")
    ex(step).to_have_count(4)
    ex(step.nth(0)).to_have_class("step status-running")
    ex(step.nth(1).locator(".step-glyph")).to_have_text("○")
    ex(step.nth(3)).to_have_class("step status-waiting status-unknown")
    ex(step.nth(3).locator(".step-status")).to_have_text("custom-state")
    ex(step.nth(3).locator(".step-glyph")).to_have_text("○")
    ex(page.locator(".steps-track .step-connector")).to_have_count(3)
    ex(page.locator(".log-entry")).to_have_count(2)
    ex(page.locator(".live-tag")).to_be_visible()
    ex(page.locator(".steps-overall")).to_have_text("running")

    page.evaluate("document.querySelector('.steps-track li.step').__mark = 'same node'")
    page.get_by_role("button", name="approve Approval").click()
    ex(page.locator(".toast-success")).to_contain_text('approve sent for step "Approval"')
    sig = [e for e in events_of(live, wf_id) if e["event_type"] == "SignalReceived"]
    assert sig and sig[0]["payload"] == {
        "signal": "step_action",
        "payload": {"step": "Approval", "action": "approve", "user": "alice"},
    }

    # The workflow advances: the worker replays with the signal and publishes a new snapshot.
    task = worker.poll(wf_id)
    assert any(h["event_type"] == "SignalReceived" for h in task["history"])
    now = time.time()
    steps2 = [
        {"name": "Approval", "status": "done", "started_at": now - 95, "completed_at": now - 40},
        {"name": "Build", "status": "running", "started_at": now - 38, "actions": ["skip", "abort"]},
        {"name": "Ship", "status": "waiting"},
        {"name": "Verify", "status": "custom-state"},
    ]
    log2 = [
        *log1,
        {"time": "10:00:05", "msg": "approved by alice", "step": 1},
        {"time": "10:00:06", "msg": "building", "step": 2},
    ]
    worker.commands(
        wf_id,
        [
            {"type": "RecordSnapshot", "state": pipeline(steps2, log2)},
            {"type": "WaitForSignal", "name": "step_action"},
        ],
    )
    ex(step.nth(0).locator(".step-glyph")).to_have_text("✓")
    ex(step.nth(0)).to_have_class("step status-done")
    ex(step.nth(1)).to_have_class("step status-running")
    ex(page.locator(".log-entry")).to_have_count(4)
    assert (
        page.evaluate("document.querySelector('.steps-track li.step').__mark") == "same node"
    )  # diffed in place
    ex(page.locator(".step-connector").first).to_have_attribute("data-state", "active")
    ex(step.nth(0).locator(".step-actions button")).to_have_count(0)
    ex(step.nth(1).locator(".step-actions button")).to_have_text(["skip", "abort"])
    p.shot(doc="steps.png")

    # Click a step: the log shows that step's entries (plus entries without a step).
    step.nth(1).locator(".step-node").click()
    ex(step.nth(1).locator(".step-node")).to_have_attribute("aria-pressed", "true")
    ex(page.locator(".log-entry:visible")).to_have_count(2)
    ex(page.locator(".log-entry:visible .log-msg")).to_have_text(["note without step", "building"])
    p.shot("-filtered")
    step.nth(1).locator(".step-node").click()
    ex(page.locator(".log-entry:visible")).to_have_count(4)
    lock = page.get_by_role("button", name="Scroll lock")
    lock.click()
    ex(page.locator(".log-toolbar button[aria-pressed]")).to_have_attribute("aria-pressed", "true")

    # Terminal overlay: once the run fails, running -> failed and waiting -> skipped (display only).
    assert api(live, "POST", f"/workflows/{wf_id}/terminate", {"reason": "stop"})[0] == 200
    ex(page.locator(".page-sub .badge")).to_have_text("FAILED")
    ex(step.nth(1)).to_have_class("step status-failed")
    ex(step.nth(1).locator(".step-glyph")).to_have_text("✕")
    ex(step.nth(2)).to_have_class("step status-skipped")
    ex(step.nth(2).locator(".step-glyph")).to_have_text("·")
    ex(step.nth(0)).to_have_class("step status-done")
    ex(page.locator(".live-tag")).to_be_hidden()
    ex(page.locator(".steps-overall")).to_have_text("failed")
    ex(page.locator(".step-actions button")).to_have_count(0)  # no actions on a finished run
    assert p.errors == []


def test_schedule_create_edit_pause_resume_trigger_delete(open_page, live):
    ex = expect()
    name = uid("sched")
    wf_type = uid("Nightly")
    p = open_page()
    page = p.goto("/workflow/schedules")
    page.get_by_role("button", name="+ New schedule").click()
    dialog = page.locator("dialog[open]")
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_label("Workflow type").fill(wf_type)
    dialog.get_by_label("Cron expression").fill("0 30 2 * * *")
    dialog.get_by_label("Timezone").fill("Europe/Berlin")
    dialog.get_by_label("Overlap policy").select_option("allow_all")
    dialog.get_by_label("Input (JSON)").fill('{"report": "daily"}')
    dialog.get_by_role("button", name="Create schedule").click()
    ex(page.locator(".toast-success")).to_contain_text(f"Created {name}")
    row = page.locator(f'tr[data-key="{name}"]')
    ex(row.locator(".cell-tz")).to_have_text("Europe/Berlin")
    ex(row.locator(".cell-next")).to_contain_text(" 02:30")
    rec = api(live, "GET", f"/schedules/{name}")[1]
    assert (
        rec["timezone"] == "Europe/Berlin"
        and rec["overlap_policy"] == "allow_all"
        and rec["input"] == {"report": "daily"}
    )

    row.get_by_role("button", name=f"Pause {name}").click()
    ex(row.locator(".badge")).to_have_text("Paused")
    assert api(live, "GET", f"/schedules/{name}")[1]["paused"] is True
    row.get_by_role("button", name=f"Resume {name}").click()
    ex(row.locator(".badge")).to_have_text("Active")
    assert api(live, "GET", f"/schedules/{name}")[1]["paused"] is False

    row.get_by_role("button", name=f"Edit {name}").click()
    dialog = page.locator("dialog[open]")
    ex(dialog.get_by_label("Cron expression")).to_have_value("0 30 2 * * *")
    dialog.get_by_label("Cron expression").fill("0 0 5 * * *")
    dialog.get_by_role("button", name="Save changes").click()
    ex(row.locator("code")).to_have_text("0 0 5 * * *")
    assert api(live, "GET", f"/schedules/{name}")[1]["cron_expr"] == "0 0 5 * * *"

    # A bad cron is refused by the engine and the dialog shows why.
    row.get_by_role("button", name=f"Edit {name}").click()
    dialog = page.locator("dialog[open]")
    dialog.get_by_label("Cron expression").fill("not a cron")
    dialog.get_by_role("button", name="Save changes").click()
    ex(dialog.locator(".form-error")).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    # Chromium logs the (expected) 400 as a failed resource load; nothing else may have gone wrong.
    assert len(p.errors) == 1 and "400 (Bad Request)" in p.errors[0], p.errors
    p.errors.clear()

    row.get_by_role("button", name=f"Trigger {name} now").click()
    ex(page.locator(".toast-success").last).to_contain_text(f"Triggered {name}")
    runs = api(live, "GET", f"/workflows?type={wf_type}")[1]
    assert len(runs) == 1 and runs[0]["input"] == {"report": "daily"}
    p.shot("-list")

    row.get_by_role("button", name=f"Delete {name}").click()
    page.locator("dialog[open]").get_by_role("button", name="Delete").click()
    ex(row).to_have_count(0)
    assert api(live, "GET", f"/schedules/{name}")[0] == 404
    assert p.errors == []


def test_every_view_without_console_errors_theme_and_mobile(open_page, live):
    ex = expect()
    queue, wf_id = uid("q"), uid("views")
    start(live, wf_id, "Viewable", queue)
    worker = RawWorker(live.url, queue)
    worker.poll(wf_id)
    worker.commands(
        wf_id, [{"type": "RecordSnapshot", "state": {"answer": 42}}, {"type": "WaitForSignal", "name": "x"}]
    )

    p = open_page()
    page = p.goto("/workflow/")
    for view, heading in [
        ("schedules", "Schedules"),
        ("workers", "Workers"),
        ("queues", "Queues"),
        ("settings", "Settings"),
    ]:
        page.locator(f'.nav [data-nav="{view}"]').click()
        ex(page.locator("#main h1")).to_have_text(heading)
        ex(page.locator(f'.nav [data-nav="{view}"]')).to_have_attribute("aria-current", "page")
        assert page.url.startswith(f"{live.url}/workflow/{view}?ns=main")
    ex(page.locator("#settings-version")).not_to_be_empty()
    ex(page.locator("#status-version")).to_have_text(f"v{api(live, 'GET', '/version')[1]['version']}")
    ex(page.locator(".workers-table, .ns-table").first).to_be_visible()
    page.goto(f"{live.url}/workflow/queues")
    ex(page.locator(f'tr[data-key="{queue}"]')).to_be_visible()
    page.goto(f"{live.url}/workflow/workers")
    ex(page.get_by_text(f"test@{queue}")).to_be_visible()
    page.goto(f"{live.url}/workflow/workflows/{wf_id}?tab=state")
    ex(page.locator("#panel-state")).to_contain_text('"answer": 42')
    # Hash deep links are accepted too.
    page.goto(f"{live.url}/workflow/#/queues?ns=main")
    ex(page.locator("#main h1")).to_have_text("Queues")

    # Theme toggle, persisted across reloads.
    html = page.locator("html")
    ex(html).to_have_attribute("data-theme", "light")
    page.locator("#theme-toggle").click()
    ex(html).to_have_attribute("data-theme", "dark")
    page.reload()
    ex(html).to_have_attribute("data-theme", "dark")
    p.shot("-dark")
    assert p.errors == []

    # Narrow viewport: the sidebar becomes a drawer behind the menu button.
    m = open_page(viewport={"width": 390, "height": 780})
    mp = m.goto("/workflow/")
    ex(mp.locator("#menu-toggle")).to_be_visible()
    ex(mp.locator("#sidebar")).not_to_be_in_viewport()
    mp.locator("#menu-toggle").click()
    ex(mp.locator("#menu-toggle")).to_have_attribute("aria-expanded", "true")
    ex(mp.locator("#sidebar")).to_be_in_viewport()
    mp.locator('.nav [data-nav="schedules"]').click()
    ex(mp.locator("#main h1")).to_have_text("Schedules")
    ex(mp.locator("#menu-toggle")).to_have_attribute("aria-expanded", "false")
    ex(mp.locator("#sidebar")).not_to_be_in_viewport()
    assert mp.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    m.shot("-mobile")
    assert m.errors == []


def test_whitelabel_name_title_css_namespace(open_page, browser, tmp_path):
    ex = expect()
    env = {
        "ASSAY_WHITELABEL_NAME": "Acme <Flows>",
        "ASSAY_WHITELABEL_PAGE_TITLE": "Acme Console",
        "ASSAY_WHITELABEL_SUBTITLE": "Ops team",
        "ASSAY_WHITELABEL_CSS_URL": "/static/acme.css",
        "ASSAY_WHITELABEL_PARENT_URL": "/console",
        "ASSAY_WHITELABEL_PARENT_NAME": "Acme Console",
        "ASSAY_WHITELABEL_API_DOCS_URL": "",
        "ASSAY_WHITELABEL_DEFAULT_NAMESPACE": "ops",
    }
    eng = start_engine(tmp_path, env=env)
    try:
        assert http("POST", eng.url + API + "/namespaces", {"name": "ops"})[0] == 201
        p = open_page(base=eng.url)
        css_requests = []

        def serve_css(route):
            css_requests.append(route.request.url)
            route.fulfill(status=200, content_type="text/css", body=":root { --accent: rgb(0, 153, 153); }")

        p.page.route("**/static/acme.css*", serve_css)
        page = p.goto("/workflow/")
        ex(page).to_have_title("Acme Console")
        ex(page.locator(".sidebar .logo-full")).to_have_text("Acme <Flows>")
        ex(page.locator(".sidebar .logo-mark")).to_have_text("A")
        ex(page.locator(".sidebar .logo-subtitle")).to_have_text("Ops team")
        ex(page.locator(".nav-link-back")).to_have_attribute("href", "/console")
        ex(page.locator(".nav-link-docs")).to_have_count(0)
        ex(page.locator(".footer-text")).to_contain_text("Powered by")
        ex(page.locator("#ns-select")).to_have_value("ops")
        assert css_requests and "/static/acme.css?v=" in css_requests[0]
        accent = "getComputedStyle(document.querySelector('.btn-primary')).backgroundColor"
        ex(page.locator(".btn-primary")).to_be_visible()
        assert page.evaluate(accent) == "rgb(0, 153, 153)"
        page.locator("#theme-toggle").click()  # the override wins in the dark theme too
        assert page.evaluate(accent) == "rgb(0, 153, 153)"
        p.shot()
        assert p.errors == []
    finally:
        eng.stop()


def test_sign_in_under_api_key_auth(open_page, tmp_path):
    ex = expect()
    eng = start_engine(tmp_path, extra_args=["--auth-api-key"])
    try:
        status, body, _ = http("POST", eng.url + API + "/api-keys", {"label": "dash"})
        assert status == 201, body
        key = body["plaintext"]
        start_status = http(
            "POST",
            eng.url + API + "/workflows",
            {"workflow_type": "Secured", "workflow_id": "secured-1"},
            headers={"Authorization": f"Bearer {key}"},
        )[0]
        assert start_status == 201
        p = open_page(base=eng.url)
        page = p.goto("/workflow/")
        dialog = page.locator("dialog#signin")
        ex(dialog).to_be_visible()
        dialog.get_by_label("API key or bearer token").fill("wrong-key")
        dialog.get_by_role("button", name="Sign in").click()
        ex(dialog.locator(".form-error")).to_contain_text("Rejected")
        dialog.get_by_label("API key or bearer token").fill(key)
        dialog.get_by_role("button", name="Sign in").click()
        ex(dialog).to_have_count(0)
        ex(page.locator('tr[data-key="secured-1"]')).to_be_visible()
        assert page.evaluate("sessionStorage.getItem('assay.token')") == key
        ex(page.locator("#live-indicator")).to_have_attribute("data-state", "live")  # stream via ticket
        ex(page.locator("#sign-out")).to_be_visible()
        page.locator("#sign-out").click()
        ex(page.locator("dialog#signin")).to_be_visible()
        p.shot()
    finally:
        eng.stop()


def test_unreachable_engine_banner(open_page, live):
    ex = expect()
    p = open_page()
    page = p.goto("/workflow/")
    ex(page.locator("#banner")).to_be_hidden()
    page.route("**/api/v1/**", lambda route: route.abort())
    page.locator('.nav [data-nav="queues"]').click()
    ex(page.locator("#banner")).to_be_visible()
    ex(page.locator("#banner")).to_contain_text("Engine unreachable")
    p.shot("-down")
    page.unroute("**/api/v1/**")
    page.locator("#banner").get_by_role("button", name="Retry now").click()
    ex(page.locator("#banner")).to_be_hidden()
    ex(page.locator(".queues-table, .empty").first).to_be_visible()


def test_archived_rows_are_marked(open_page, live):
    """A workflow whose history went to the S3 archive carries an 'archived' tag in the list and its URI in
    the detail view. (The archiver itself is tested in tests/archive; here the stub row is written directly.)"""
    import sqlite3

    ex = expect()
    wf_type, queue = uid("Arch"), uid("idle")
    start(live, f"{wf_type.lower()}-a", wf_type, queue)
    start(live, f"{wf_type.lower()}-b", wf_type, queue)
    assert api(live, "POST", f"/workflows/{wf_type.lower()}-a/terminate", {"reason": "x"})[0] == 200
    uri = f"s3://bucket/assay/main/{wf_type.lower()}-a.json"
    with sqlite3.connect(live.db) as conn:
        conn.execute(
            "UPDATE workflows SET archived_at = completed_at, archive_uri = ? WHERE id = ?",
            (uri, f"{wf_type.lower()}-a"),
        )
    p = open_page()
    page = p.goto(f"/workflow/?type={wf_type}")
    rows = page.locator(".wf-table tbody tr")
    ex(rows).to_have_count(2)
    ex(page.locator(f'tr[data-id="{wf_type.lower()}-a"] .tag-archived')).to_have_text("archived")
    ex(page.locator(f'tr[data-id="{wf_type.lower()}-b"] .tag-archived')).to_have_count(0)
    page.locator(f'tr[data-id="{wf_type.lower()}-a"] a.wf-link').click()
    ex(page.get_by_text(uri)).to_be_visible()


def test_vocabulary_is_the_engines_and_continue_as_new_updates_the_list_live(open_page, live):
    """The dashboard's statuses and SSE subscriptions are the engine's (GET /protocol), with no TERMINATED
    status and no workflow_continued event; continue-as-new is seen through the events the engine does
    send: the old run's row turns COMPLETED and the new run appears, without a reload."""
    ex = expect()
    served = api(live, "GET", "/protocol")[1]
    p = open_page()
    page = p.goto("/workflow/")
    ex(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    subscribed = page.evaluate("import('/workflow/components/live.js').then(m => m.EVENT_TYPES)")
    assert subscribed == served["sse_events"]
    terminal = page.evaluate("import('/workflow/components/ui.js').then(m => [...m.TERMINAL])")
    assert terminal == served["terminal_statuses"]
    assert (
        page.evaluate("import('/workflow/components/ui.js').then(m => m.STATUSES)")
        == served["workflow_statuses"]
    )

    queue, wf_id = uid("can"), uid("chain")
    start(live, wf_id, "Chain", queue)
    worker = RawWorker(live.url, queue)
    worker.poll(wf_id)
    page.evaluate("window.__noReload = 'still here'")
    row = page.locator(f'tr[data-key="{wf_id}"]')
    ex(row.locator(".badge")).to_have_text("RUNNING")
    worker.commands(wf_id, [{"type": "ContinueAsNew", "input": {"n": 2}, "workflow_id": f"{wf_id}-2"}])
    ex(row.locator(".badge")).to_have_text("COMPLETED")
    ex(page.locator(f'tr[data-key="{wf_id}-2"] .badge')).to_have_text("PENDING")
    assert page.evaluate("window.__noReload") == "still here"
    assert p.errors == []
