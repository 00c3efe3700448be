// Workflow detail: metadata, input/result/error, event timeline, children, live state and the Steps
// tab (pipeline_state convention), plus Signal / Cancel / Terminate / Continue-as-new.

import { api, enc, wf } from "./api.js";
import * as live from "./live.js";
import { cancelWorkflow, continueAsNew, resetWorkflow, signalWorkflow, terminateWorkflow } from "./actions.js";
import { createStepsPanel, hasSteps } from "./steps.js";
import { clear, emptyState, errorState, fmtDuration, fmtTime, h, jsonBlock, setBadge, statusBadge, table, TERMINAL, timeEl, toast } from "./ui.js";

const TAB_ORDER = ["steps", "overview", "events", "children", "state"];
const TAB_LABELS = { steps: "Steps", overview: "Overview", events: "Events", children: "Children", state: "State" };

export async function render(root, ctx) {
  const id = ctx.id;
  let rec;
  try {
    rec = await wf.get(id);
  } catch (e) {
    root.append(backLink(ctx), e.status === 404 ? emptyState(`Workflow ${id} not found`, "It may have been archived or never existed in this engine.") : errorState(e));
    return null;
  }
  if (!ctx.isCurrent()) return null;

  let events = [];
  let children = [];
  let state = null; // {state, event_seq, created_at} or null
  let stepsShown = false;
  let userPickedTab = !!ctx.params.get("tab");
  let active = ctx.params.get("tab") || null;
  const timers = [];
  let tailTimer = null;
  let tailBusy = false;
  let disposed = false;

  // ---- header
  const badge = statusBadge(rec.status);
  const actionsBox = h("div", { class: "page-actions" });
  const head = h(
    "div",
    { class: "page-header detail-header" },
    h("div", { class: "page-title" }, backLink(ctx), h("h1", { class: "mono wf-id" }, id), h("p", { class: "page-sub" }, badge, " ", h("span", { class: "muted wf-type" }, rec.workflow_type))),
    actionsBox,
  );
  root.append(head);

  function renderActions() {
    const terminal = TERMINAL.has(rec.status);
    actionsBox.replaceChildren(
      h("button", { type: "button", class: "btn", disabled: terminal, onclick: async () => (await signalWorkflow(id)) && refresh() }, "Signal"),
      h("button", { type: "button", class: "btn", disabled: terminal, onclick: async () => (await cancelWorkflow(id)) && refresh() }, "Cancel"),
      h("button", { type: "button", class: "btn btn-danger-ghost", disabled: terminal, onclick: async () => (await terminateWorkflow(id)) && refresh() }, "Terminate"),
      h(
        "button",
        {
          type: "button",
          class: "btn",
          onclick: async () => {
            const res = await continueAsNew(rec);
            if (res && res.workflow_id) ctx.navigate(ctx.workflowHref(res.workflow_id));
          },
        },
        "Continue as new",
      ),
      h(
        "button",
        {
          type: "button",
          class: "btn btn-danger-ghost",
          "data-action": "reset",
          disabled: !!rec.archived_at,
          onclick: async () => {
            const res = await resetWorkflow(rec);
            if (res && res.id) ctx.navigate(ctx.workflowHref(res.id));
          },
        },
        "Reset",
      ),
    );
  }
  renderActions();

  // ---- stuck banner: its workflow tasks keep failing (the code cannot replay its history)
  const stuckBox = h("div", { class: "stuck-banner", role: "alert", hidden: true });
  root.append(stuckBox);
  function renderStuck() {
    const s = rec.stuck;
    stuckBox.hidden = !s;
    if (!s) return stuckBox.replaceChildren();
    stuckBox.replaceChildren(
      h("strong", {}, "Stuck"),
      ` — its workflow tasks failed ${s.failures} times in a row`,
      s.since ? h("span", {}, " since ", timeEl(s.since)) : null,
      h("pre", { class: "stuck-reason" }, s.reason),
      h("span", { class: "muted" }, "Deploy code that can replay its history (see assay replay), or Reset it to an earlier event."),
    );
  }

  // ---- tabs
  const tablist = h("div", { class: "tabs", role: "tablist", "aria-label": "Workflow sections" });
  const panels = h("div", { class: "tab-panels" });
  root.append(tablist, panels);
  const tabs = {};
  const panelEls = {};

  function ensureTab(key) {
    if (tabs[key]) return;
    const tab = h(
      "button",
      { type: "button", role: "tab", id: `tab-${key}`, class: "tab", "aria-controls": `panel-${key}`, "aria-selected": "false", tabindex: "-1", "data-tab": key, onclick: () => selectTab(key, true) },
      TAB_LABELS[key],
      h("span", { class: "tab-count" }),
    );
    const panel = h("section", { role: "tabpanel", id: `panel-${key}`, class: "tab-panel", "aria-labelledby": `tab-${key}`, hidden: true, tabindex: "0" });
    tabs[key] = tab;
    panelEls[key] = panel;
    const before = TAB_ORDER.slice(TAB_ORDER.indexOf(key) + 1).map((k) => tabs[k]).find(Boolean);
    tablist.insertBefore(tab, before || null);
    panels.append(panel);
  }
  tablist.addEventListener("keydown", (ev) => {
    const keys = [...tablist.querySelectorAll('[role="tab"]')].map((t) => t.dataset.tab);
    const i = keys.indexOf(active);
    let next = null;
    if (ev.key === "ArrowRight") next = keys[(i + 1) % keys.length];
    else if (ev.key === "ArrowLeft") next = keys[(i - 1 + keys.length) % keys.length];
    else if (ev.key === "Home") next = keys[0];
    else if (ev.key === "End") next = keys[keys.length - 1];
    if (next) {
      ev.preventDefault();
      selectTab(next, true);
      tabs[next].focus();
    }
  });

  function selectTab(key, byUser = false) {
    if (!tabs[key]) key = "overview";
    if (byUser) {
      userPickedTab = true;
      ctx.setQuery({ tab: key === defaultTab() ? null : key });
    }
    active = key;
    for (const [k, t] of Object.entries(tabs)) {
      const on = k === key;
      t.setAttribute("aria-selected", on ? "true" : "false");
      t.tabIndex = on ? 0 : -1;
      panelEls[k].hidden = !on;
    }
    syncTail();
    if (key === "state") renderState();
  }

  function defaultTab() {
    return stepsShown ? "steps" : "overview";
  }

  function setCount(key, n) {
    const el = tabs[key]?.querySelector(".tab-count");
    if (el) el.textContent = n ? String(n) : "";
  }

  for (const k of ["overview", "events", "children", "state"]) ensureTab(k);

  // ---- overview
  const metaGrid = h("dl", { class: "meta-grid" });
  const ioBox = h("div", { class: "io-grid" });
  panelEls.overview.append(h("div", { class: "card" }, metaGrid), ioBox);

  function renderOverview() {
    const items = [
      ["Status", statusBadge(rec.status)],
      ["Type", rec.workflow_type],
      ["Namespace", rec.namespace],
      ["Task queue", h("span", { class: "mono" }, rec.task_queue)],
      ["Run ID", h("span", { class: "mono" }, rec.run_id || "—")],
      ["Parent", rec.parent_id ? h("a", { href: ctx.workflowHref(rec.parent_id), class: "mono" }, rec.parent_id) : "—"],
      ["Created", timeEl(rec.created_at, { relative: false })],
      ["Updated", timeEl(rec.updated_at, { relative: false })],
      ["Completed", rec.completed_at ? timeEl(rec.completed_at, { relative: false }) : "—"],
      ["Duration", rec.completed_at ? fmtDuration(rec.completed_at - rec.created_at) : TERMINAL.has(rec.status) ? "—" : h("span", {}, "running for ", timeEl(rec.created_at))],
    ];
    if (rec.cancel_requested) items.push(["Cancel", h("span", { class: "badge badge-cancelled" }, "requested")]);
    if (rec.build_ids && rec.build_ids.length) items.push(["Build ids", h("span", { class: "mono build-ids" }, rec.build_ids.join(", "))]);
    if (rec.reset_from) items.push(["Reset from", h("a", { href: ctx.workflowHref(rec.reset_from), class: "mono reset-from" }, rec.reset_from)]);
    if (rec.reset_to) items.push(["Reset to", h("a", { href: ctx.workflowHref(rec.reset_to), class: "mono reset-to" }, rec.reset_to)]);
    if (rec.archived_at) items.push(["Archived", h("span", {}, fmtTime(rec.archived_at), " ", rec.archive_uri || "")]);
    metaGrid.replaceChildren(...items.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    const blocks = [h("div", { class: "card io-card" }, h("h3", {}, "Input"), jsonBlock(rec.input ?? null, { label: "Input" }))];
    if (rec.result !== null && rec.result !== undefined) blocks.push(h("div", { class: "card io-card" }, h("h3", {}, "Result"), jsonBlock(rec.result, { label: "Result" })));
    if (rec.error) blocks.push(h("div", { class: "card io-card io-error" }, h("h3", {}, "Error"), h("pre", { class: "json error-text", tabindex: "0" }, typeof rec.error === "string" ? rec.error : JSON.stringify(rec.error, null, 2))));
    blocks.push(h("div", { class: "card io-card" }, h("h3", {}, "Search attributes"), jsonBlock(rec.search_attributes ?? {}, { label: "Search attributes" })));
    ioBox.replaceChildren(...blocks);
  }

  // ---- events timeline
  const timeline = h("ol", { class: "timeline", "aria-label": "Event history" });
  const eventsToolbar = h(
    "div",
    { class: "toolbar" },
    h("button", { type: "button", class: "btn btn-xs", onclick: () => timeline.querySelectorAll("details").forEach((d) => (d.open = true)) }, "Expand all"),
    h("button", { type: "button", class: "btn btn-xs", onclick: () => timeline.querySelectorAll("details").forEach((d) => (d.open = false)) }, "Collapse all"),
  );
  panelEls.events.append(eventsToolbar, timeline);

  function renderEvents() {
    const have = new Set([...timeline.children].map((li) => li.dataset.seq));
    const t0 = events[0]?.timestamp;
    for (const ev of events) {
      if (have.has(String(ev.seq))) continue;
      const kind = eventKind(ev.event_type);
      timeline.append(
        h(
          "li",
          { class: `event event-${kind}`, dataset: { seq: String(ev.seq), type: ev.event_type } },
          h("span", { class: "event-dot", "aria-hidden": "true" }),
          h(
            "details",
            {},
            h(
              "summary",
              {},
              h("span", { class: "event-seq mono" }, `#${ev.seq}`),
              h("span", { class: "event-type" }, ev.event_type),
              h("span", { class: "event-summary muted" }, eventSummary(ev)),
              h("span", { class: "event-time muted", title: fmtTime(ev.timestamp) }, t0 !== undefined && ev.seq !== events[0].seq ? `+${fmtDuration(ev.timestamp - t0)}` : fmtTime(ev.timestamp)),
            ),
            jsonBlock(ev.payload ?? null, { label: `${ev.event_type} payload` }),
          ),
        ),
      );
    }
    setCount("events", events.length);
    if (!events.length && !timeline.children.length) timeline.append(h("li", { class: "muted" }, "No events."));
  }

  // ---- children
  const { wrap: childWrap, tbody: childBody } = table([{ label: "Workflow ID" }, { label: "Type" }, { label: "Status" }, { label: "Started" }], { caption: "Child workflows" });
  const childEmpty = emptyState("No child workflows");
  panelEls.children.append(h("div", { class: "card card-flush" }, childWrap, childEmpty));

  function renderChildren() {
    childBody.replaceChildren(
      ...children.map((c) =>
        h(
          "tr",
          { "data-id": c.id },
          h("td", {}, h("a", { href: ctx.workflowHref(c.id), class: "mono" }, c.id)),
          h("td", {}, c.workflow_type),
          h("td", {}, statusBadge(c.status)),
          h("td", {}, timeEl(c.created_at)),
        ),
      ),
    );
    childEmpty.hidden = children.length > 0;
    childWrap.hidden = children.length === 0;
    setCount("children", children.length);
  }

  // ---- state
  const stateMeta = h("p", { class: "muted" });
  const stateBody = h("div");
  panelEls.state.append(h("div", { class: "card" }, h("h3", {}, "Latest query snapshot"), stateMeta, stateBody));

  function renderState() {
    if (!state) {
      stateMeta.textContent = "";
      stateBody.replaceChildren(emptyState("No state yet", "Workflows publish state by registering query handlers; the latest snapshot appears here."));
      return;
    }
    stateMeta.textContent = `After event #${state.event_seq} · ${fmtTime(state.created_at)}`;
    const text = JSON.stringify(state.state);
    if (stateBody.dataset.sig !== text) {
      stateBody.dataset.sig = text;
      stateBody.replaceChildren(jsonBlock(state.state, { label: "State" }));
    }
  }

  // ---- steps
  const steps = createStepsPanel({
    onAction: async (step, action) => {
      let user = null;
      try {
        user = localStorage.getItem("assay.user") || null;
      } catch {
        user = null;
      }
      try {
        await wf.signal(id, "step_action", { step, action, user });
        toast(`${action} sent for step "${step}"`);
        tailNow();
      } catch (e) {
        toast(`Step action failed: ${e.message}`, "error");
      }
    },
  });

  function showSteps(pipeline) {
    if (!stepsShown) {
      stepsShown = true;
      ensureTab("steps");
      panelEls.steps.append(steps.el);
      if (!userPickedTab) selectTab("steps");
    }
    steps.update(pipeline, rec.status);
  }

  // Live tail: while the Steps tab is open and the run is not finished, poll pipeline_state every 1 s.
  function syncTail() {
    const want = !disposed && active === "steps" && stepsShown && !TERMINAL.has(rec.status);
    steps.setPolling(want);
    if (want && !tailTimer) tailTimer = setInterval(tailNow, 1000);
    if (!want && tailTimer) {
      clearInterval(tailTimer);
      tailTimer = null;
    }
  }
  async function tailNow() {
    if (tailBusy || disposed) return;
    tailBusy = true;
    try {
      const res = await api(`/workflows/${enc(id)}/state/pipeline_state`);
      if (!disposed && res && res.value) steps.update(res.value, rec.status);
    } catch {
      /* transient: the next tick retries */
    } finally {
      tailBusy = false;
    }
  }

  // ---- loading
  async function loadState() {
    if ("state_seq" in rec && (rec.state_seq === null || rec.state_seq === undefined)) return null;
    if ("has_state" in rec && !rec.has_state) return null;
    try {
      return await api(`/workflows/${enc(id)}/state`);
    } catch (e) {
      if (e.status === 404) return null;
      throw e;
    }
  }

  async function refresh() {
    const [r, evs, kids, st] = await Promise.all([
      wf.get(id),
      api(`/workflows/${enc(id)}/events`),
      api(`/workflows/${enc(id)}/children`),
      loadState().catch(() => state),
    ]);
    if (disposed) return;
    const statusChanged = r.status !== rec.status;
    rec = r;
    events = evs || [];
    children = kids || [];
    state = st;
    setBadge(badge, rec.status);
    if (statusChanged) renderActions();
    renderStuck();
    renderOverview();
    renderEvents();
    renderChildren();
    if (active === "state") renderState();
    if (hasSteps(state?.state)) showSteps(state.state.pipeline_state);
    else if (stepsShown) steps.update(null, rec.status);
    syncTail();
  }

  const refreshSoon = (() => {
    let t = null;
    return () => {
      clearTimeout(t);
      t = setTimeout(() => refresh().catch(() => {}), 120);
    };
  })();

  await refresh();
  if (!ctx.isCurrent()) return () => (disposed = true);
  selectTab(active && tabs[active] ? active : defaultTab());

  const childIds = () => new Set(children.map((c) => c.id));
  const unsubscribe = live.subscribe((ev) => {
    if (ev.workflow_id === id) {
      if (ev.status) setBadge(badge, ev.status);
      refreshSoon();
    } else if (childIds().has(ev.workflow_id)) refreshSoon();
  });
  // Snapshots and timers do not produce stream events: re-read periodically while the run is open.
  timers.push(
    setInterval(() => {
      if (!TERMINAL.has(rec.status)) refresh().catch(() => {});
    }, 3000),
  );

  return () => {
    disposed = true;
    unsubscribe();
    timers.forEach(clearInterval);
    if (tailTimer) clearInterval(tailTimer);
  };
}

function backLink(ctx) {
  return h("a", { href: ctx.href(""), class: "back-link" }, "← Workflows");
}

function eventKind(type) {
  if (/Failed|TimedOut/.test(type)) return "bad";
  if (/Cancel/.test(type)) return "warn";
  if (/Completed|Fired/.test(type)) return "good";
  if (/Signal/.test(type)) return "signal";
  if (/Started|Scheduled|Marker/.test(type)) return "info";
  return "neutral";
}

function eventSummary(ev) {
  const p = ev.payload;
  if (!p || typeof p !== "object") return "";
  if (p.change_id !== undefined) return `${p.change_id} = v${p.version}`;
  if (p.signal) return p.signal;
  if (p.name) return p.name;
  if (p.child_workflow_id) return p.child_workflow_id;
  if (p.error) return String(p.error).slice(0, 80);
  if (p.continued_as_new) return `→ ${p.continued_as_new}`;
  if (p.duration_secs !== undefined) return `${p.duration_secs}s`;
  return "";
}
