// The Steps tab: renders a workflow's `pipeline_state` query result ({status?, current_step?,
// steps: [{name, status, started_at?, completed_at?, actions?, expires_at?}], log?: [{time, msg,
// step?}]}) as circles joined by connectors plus a log, and applies later snapshots in place
// (no re-render, no flicker, scroll position kept).

import { WorkflowStatus } from "./protocol.js";
import { h, toDate, fmtDuration, fmtTime, TERMINAL } from "./ui.js";

export const GLYPHS = { waiting: "○", running: "⟳", done: "✓", failed: "✕", cancelled: "⊘", skipped: "·" };
const KNOWN = new Set(Object.keys(GLYPHS));

export function hasSteps(state) {
  const p = state && typeof state === "object" ? state.pipeline_state : null;
  return !!(p && typeof p === "object" && Array.isArray(p.steps) && p.steps.length > 0);
}

// Display-only overlay for runs that ended: a step left "running" becomes failed/cancelled, and
// steps that never started become skipped.
export function effectiveStatus(stepStatus, workflowStatus) {
  const s = String(stepStatus ?? "waiting");
  const wf = String(workflowStatus || "").toUpperCase();
  if (TERMINAL.has(wf) && wf !== WorkflowStatus.COMPLETED) {
    if (s === "running") return wf === WorkflowStatus.CANCELLED ? "cancelled" : "failed";
    if (s === "waiting") return "skipped";
  }
  return s;
}

function timeToSecs(v) {
  if (v === null || v === undefined || v === "") return null;
  if (typeof v === "number") return v > 1e12 ? v / 1000 : v;
  const d = toDate(v);
  return d ? d.getTime() / 1000 : null;
}

function stepTiming(step, eff) {
  const start = timeToSecs(step.started_at);
  const end = timeToSecs(step.completed_at);
  if (eff === "running" && step.expires_at !== undefined && step.expires_at !== null) {
    const exp = timeToSecs(step.expires_at);
    if (exp !== null) {
      const left = exp - Date.now() / 1000;
      return left > 0 ? `expires in ${fmtDuration(left)}` : "expired";
    }
  }
  if (start !== null && end !== null) return fmtDuration(end - start);
  if (start !== null && eff === "running") return `${fmtDuration(Date.now() / 1000 - start)}…`;
  return "";
}

function logKey(e) {
  if (!e || typeof e !== "object") return JSON.stringify(e);
  return `${e.time ?? ""}\u0000${e.msg ?? e.message ?? ""}\u0000${e.step ?? e.stage ?? ""}`;
}

function logStep(e) {
  if (!e || typeof e !== "object") return null;
  const v = e.step ?? e.stage;
  const n = typeof v === "string" ? parseInt(v, 10) : v;
  return Number.isInteger(n) ? n : null;
}

// Creates the panel. onAction(stepName, action) must return a promise.
export function createStepsPanel({ onAction }) {
  let workflowStatus = "";
  let steps = [];
  let selected = null; // 1-based index filter, or null
  let scrollLock = false;
  const busy = new Set();
  const stepEls = [];
  const renderedLog = [];

  const overall = h("span", { class: "badge badge-outline steps-overall" });
  const progress = h("span", { class: "muted steps-progress" });
  const liveTag = h("span", { class: "live-tag", hidden: true }, h("span", { class: "live-dot", "aria-hidden": "true" }), "live");
  const track = h("ol", { class: "steps-track", "aria-label": "Steps" });
  const filterChip = h("button", { type: "button", class: "chip", hidden: true, onclick: () => select(null) });
  const lockBtn = h("button", { type: "button", class: "btn btn-xs", "aria-pressed": "false", onclick: () => setLock(!scrollLock) }, "Scroll lock");
  const logList = h("ol", { class: "log-list", tabindex: "0", "aria-label": "Step log" });
  const logEmpty = h("p", { class: "muted log-empty" }, "No log entries yet.");
  const el = h(
    "section",
    { class: "steps", "aria-label": "Steps" },
    h("div", { class: "steps-head" }, overall, progress, liveTag),
    h("div", { class: "steps-scroller" }, track),
    h(
      "div",
      { class: "log" },
      h("div", { class: "log-toolbar" }, h("h3", { class: "log-title" }, "Log"), filterChip, h("span", { class: "spacer" }), lockBtn),
      logList,
      logEmpty,
    ),
  );

  function setLock(on) {
    scrollLock = on;
    lockBtn.setAttribute("aria-pressed", on ? "true" : "false");
    lockBtn.textContent = on ? "Scroll locked" : "Scroll lock";
    if (!on) logList.scrollTop = logList.scrollHeight;
  }

  function select(index) {
    selected = selected === index ? null : index;
    for (const s of stepEls) {
      const on = Number(s.li.dataset.index) === selected;
      s.li.classList.toggle("selected", on);
      s.node.setAttribute("aria-pressed", on ? "true" : "false");
    }
    if (selected) {
      const name = steps[selected - 1]?.name ?? `#${selected}`;
      filterChip.textContent = `Step ${selected}: ${name} ×`;
      filterChip.setAttribute("aria-label", `Clear log filter (step ${selected})`);
      filterChip.hidden = false;
    } else filterChip.hidden = true;
    applyFilter();
  }

  function applyFilter() {
    let visible = 0;
    for (const li of logList.children) {
      const st = li.dataset.step ? Number(li.dataset.step) : null;
      const show = !selected || st === null || st === selected;
      li.hidden = !show;
      if (show) visible++;
    }
    logEmpty.hidden = visible > 0;
    logEmpty.textContent = renderedLog.length ? "No log entries for this step." : "No log entries yet.";
  }

  function makeStep(i) {
    const glyph = h("span", { class: "step-glyph", "aria-hidden": "true" });
    const node = h("button", { type: "button", class: "step-node", "aria-pressed": "false", onclick: () => select(i + 1) }, glyph);
    const connector = i > 0 ? h("span", { class: "step-connector", "aria-hidden": "true" }) : null;
    const name = h("span", { class: "step-name" });
    const statusText = h("span", { class: "step-status" });
    const timing = h("span", { class: "step-time muted" });
    const actions = h("div", { class: "step-actions" });
    const li = h("li", { class: "step", dataset: { index: String(i + 1) } }, connector, node, name, statusText, timing, actions);
    return { li, node, glyph, connector, name, statusText, timing, actions, actionsKey: null };
  }

  function updateStep(s, step, i) {
    const raw = String(step?.status ?? "waiting");
    const eff = effectiveStatus(raw, workflowStatus);
    const known = KNOWN.has(eff);
    const visual = known ? eff : "waiting";
    if (s.li.dataset.status !== eff) {
      s.li.dataset.status = eff;
      s.li.className = `step status-${visual}${known ? "" : " status-unknown"}${Number(s.li.dataset.index) === selected ? " selected" : ""}`;
      s.glyph.textContent = GLYPHS[visual];
      s.statusText.textContent = eff;
    }
    const name = String(step?.name ?? `Step ${i + 1}`);
    if (s.name.textContent !== name) s.name.textContent = name;
    s.node.setAttribute("aria-label", `${name}: ${eff}. Show log for this step`);
    s.node.title = `${name} — ${eff}${step?.started_at ? ` · started ${fmtTime(timeToSecs(step.started_at))}` : ""}`;
    const t = stepTiming(step || {}, eff);
    if (s.timing.textContent !== t) s.timing.textContent = t;
    if (s.connector) {
      const prev = effectiveStatus(steps[i - 1]?.status, workflowStatus);
      const state = prev === "done" ? (eff === "running" ? "active" : "done") : "idle";
      if (s.connector.dataset.state !== state) s.connector.dataset.state = state;
    }
    const terminalWf = TERMINAL.has(workflowStatus);
    const acts = Array.isArray(step?.actions) && !terminalWf ? step.actions.map(String) : [];
    const key = JSON.stringify([acts, busy.has(name)]);
    if (s.actionsKey !== key) {
      s.actionsKey = key;
      s.actions.replaceChildren(
        ...acts.map((a) =>
          h(
            "button",
            {
              type: "button",
              class: `btn btn-xs step-action${/^(reject|deny|abort|cancel|fail)/i.test(a) ? " btn-danger-ghost" : ""}`,
              disabled: busy.has(name),
              "data-action": a,
              "aria-label": `${a} ${name}`,
              onclick: () => runAction(name, a),
            },
            a,
          ),
        ),
      );
    }
  }

  async function runAction(stepName, action) {
    busy.add(stepName);
    update(null);
    try {
      await onAction(stepName, action);
    } finally {
      busy.delete(stepName);
      update(null);
    }
  }

  function updateLog(log) {
    const entries = Array.isArray(log) ? log : [];
    const keys = entries.map(logKey);
    const prefixOk = keys.length >= renderedLog.length && renderedLog.every((k, i) => k === keys[i]);
    const wasAtBottom = logList.scrollTop + logList.clientHeight >= logList.scrollHeight - 8;
    const keepTop = logList.scrollTop;
    if (!prefixOk) {
      logList.replaceChildren();
      renderedLog.length = 0;
    }
    const start = renderedLog.length;
    if (start === keys.length) return;
    for (let i = start; i < entries.length; i++) {
      const e = entries[i];
      const st = logStep(e);
      const isObj = e && typeof e === "object";
      const li = h(
        "li",
        { class: `log-entry${isObj && e.level ? ` log-${String(e.level).toLowerCase()}` : ""}`, dataset: st ? { step: String(st) } : {} },
        h("span", { class: "log-time mono" }, isObj && e.time !== undefined ? String(e.time) : ""),
        h("span", { class: "log-step" }, st ? `#${st}` : ""),
        h("span", { class: "log-msg" }, isObj ? String(e.msg ?? e.message ?? JSON.stringify(e)) : String(e)),
      );
      logList.append(li);
      renderedLog.push(keys[i]);
    }
    applyFilter();
    if (scrollLock) logList.scrollTop = keepTop;
    else if (wasAtBottom || start === 0 || !prefixOk) logList.scrollTop = logList.scrollHeight;
  }

  // Applies a pipeline_state value (or null: re-apply the last one, e.g. after a status change).
  let lastPipeline = null;
  function update(pipeline, wfStatus) {
    if (wfStatus !== undefined) workflowStatus = String(wfStatus || "").toUpperCase();
    if (pipeline && typeof pipeline === "object") lastPipeline = pipeline;
    // The overall label follows the run once it has ended (a stale "running" would mislead).
    const ended = TERMINAL.has(workflowStatus);
    const ov = ended || !lastPipeline?.status ? workflowStatus.toLowerCase() : String(lastPipeline.status);
    if (overall.textContent !== ov) overall.textContent = ov;
    overall.dataset.status = ov;
    if (pipeline && typeof pipeline === "object") {
      steps = Array.isArray(pipeline.steps) ? pipeline.steps : [];
      const cur = Number.isInteger(pipeline.current_step) ? pipeline.current_step : null;
      const doneCount = steps.filter((s) => s && s.status === "done").length;
      const p = cur ? `Step ${cur} of ${steps.length}` : `${doneCount} of ${steps.length} done`;
      if (progress.textContent !== p) progress.textContent = p;
      updateLog(pipeline.log);
    }
    while (stepEls.length < steps.length) {
      const s = makeStep(stepEls.length);
      stepEls.push(s);
      track.append(s.li);
    }
    while (stepEls.length > steps.length) stepEls.pop().li.remove();
    steps.forEach((step, i) => updateStep(stepEls[i], step, i));
    if (selected && selected > steps.length) select(null);
  }

  function setPolling(on) {
    liveTag.hidden = !on;
  }

  return { el, update, setPolling, select, get selected() { return selected; } };
}
