// Metrics: throughput, queue depth, schedule-to-start latency and failures over the last hour, drawn from
// GET /metrics/series (the engine samples every 10 s; the last point is live). Refreshes every 5 s and
// soon after any live workflow event.

import { api } from "./api.js";
import { barChart, lineChart } from "./charts.js";
import * as live from "./live.js";
import { debounce, emptyState, errorState, h, pageHeader } from "./ui.js";

const KIND = { workflow: "workflow", activity: "activity", workflow_task: "workflow task" };

export function seriesQuery(ns) {
  return api("/metrics/series", { query: { namespace: ns } });
}

// Per-interval counts -> per-minute counts, each at its minute's end (the current minute: partial, at now).
export function perMinute(t, values, now) {
  const out = new Map();
  t.forEach((ts, i) => {
    const minute = Math.min(now, Math.floor((ts - 1e-6) / 60) * 60 + 60);
    out.set(minute, (out.get(minute) || 0) + (values[i] || 0));
  });
  return { t: [...out.keys()], values: [...out.values()] };
}

function fmtSecs(v) {
  if (v === 0) return "0";
  if (v < 1) return `${Math.round(v * 1000)} ms`;
  if (v < 120) return `${v.toFixed(v < 10 ? 1 : 0)} s`;
  return `${(v / 60).toFixed(0)} min`;
}

function card(title, hint, chart, name) {
  return h("section", { class: "card chart-card", "data-chart": name }, h("h2", { class: "chart-title" }, title), h("p", { class: "muted chart-hint" }, hint), chart);
}

export async function render(root, ctx) {
  const { ns } = ctx;
  root.append(pageHeader("Metrics", `Namespace ${ns}, the last hour (live). Prometheus scrapes the same engine at /metrics.`));
  const stats = h("div", { class: "stats" });
  const throughput = lineChart({ label: "Workflows started and completed per minute", format: (v) => String(Math.round(v)), empty: "No workflows in the last hour" });
  const depth = lineChart({ label: "Queue depth per queue", format: (v) => String(Math.round(v)), empty: "No queues with work" });
  const latency = lineChart({ label: "Schedule-to-start latency per queue", format: fmtSecs, empty: "No task claimed yet" });
  const failures = barChart({ label: "Failures by type in the last hour", empty: "No failures in the last hour" });
  const grid = h(
    "div",
    { class: "chart-grid-layout" },
    card("Throughput", "Workflows started and completed per minute", throughput, "throughput"),
    card("Queue depth", "Tasks ready to be claimed, per queue", depth, "depth"),
    card("Schedule-to-start latency", "Mean time from ready to claimed, per queue (10 s intervals)", latency, "latency"),
    card("Failures by type", "Failed workflows, failed activity attempts and failed workflow tasks", failures, "failures"),
  );
  root.append(stats, grid);
  let shown = false;

  async function load() {
    let data;
    try {
      data = await seriesQuery(ns);
    } catch (e) {
      if (!ctx.isCurrent()) return;
      if (!shown) {
        stats.replaceChildren();
        grid.replaceWith(e.status === 404 ? emptyState("Metrics are switched off", e.message) : errorState(e));
      }
      return;
    }
    if (!ctx.isCurrent()) return;
    shown = true;
    const since = data.t.length ? data.t[0] - data.interval_secs : data.now;
    const started = perMinute(data.t, data.started, data.now);
    const completed = perMinute(data.t, data.completed, data.now);
    throughput.update(started.t, [
      { name: "started", values: started.values, color: "var(--accent)" },
      { name: "completed", values: completed.values, color: "var(--green)" },
    ], data.now, since);
    const queues = Object.entries(data.queues);
    depth.update(data.t, queues.map(([q, c]) => ({ name: q, values: c.depth })), data.now, since);
    latency.update(data.t, queues.map(([q, c]) => ({ name: q, values: c.latency })), data.now, since);
    failures.update(data.failures.map((f) => ({ label: `${KIND[f.kind] || f.kind}: ${f.name}`, value: f.count })));
    const sum = (a) => a.reduce((x, y) => x + y, 0);
    const totals = {
      started: sum(data.started),
      completed: sum(data.completed),
      failed: sum(data.failed),
      depth: sum(queues.map(([, c]) => c.depth.at(-1) || 0)),
    };
    const grid0 = root.querySelector('[data-chart="throughput"]');
    if (grid0) Object.assign(grid0.dataset, { started: totals.started, completed: totals.completed });
    stats.replaceChildren(
      ...[
        ["started", "Started (1 h)"],
        ["completed", "Completed (1 h)"],
        ["failed", "Failed (1 h)"],
        ["depth", "Ready tasks now"],
      ].map(([k, l]) => h("div", { class: "stat card", "data-stat": k }, h("div", { class: "stat-value" }, String(totals[k])), h("div", { class: "stat-label muted" }, l))),
    );
  }

  await load();
  const poll = setInterval(load, 5000);
  const soon = debounce(load, 400);
  const unsubscribe = live.subscribe(() => soon());
  return () => {
    clearInterval(poll);
    soon.cancel();
    unsubscribe();
  };
}
